/* Fuzz target: audio files through libsndfile (src/audio/audio.c): the
 * header probe, decoding with downmix, resampling to 16 kHz with libsoxr,
 * normalisation and cropping, as dataset validation and the loader do.
 *
 * Input: the bytes of one audio file (WAV, FLAC, OGG, AIFF, AU, ... as
 * libsndfile detects it from the content). */
#include "fuzz.h"
#include "secap/audio.h"

#include <math.h>

static void decode(const char *path, int probed, const secap_audio_info *info)
{
    char err[1024];
    secap_audio a;
    if (secap_audio_load(path, SECAP_SAMPLE_RATE, &a, err, sizeof err) != 0) {
        if (a.x || a.n) fuzz_die("failed load left samples");
        if (!strstr(err, path)) fuzz_die("message does not name the file: %s", err);
        return;
    }
    if (probed != 0) fuzz_die("load succeeded where the probe failed");
    int64_t want = info->rate == SECAP_SAMPLE_RATE ? info->frames
                 : (int64_t)llround((double)info->frames * SECAP_SAMPLE_RATE / info->rate);
    if (a.n != want || a.rate != SECAP_SAMPLE_RATE)
        fuzz_die("%lld samples at %d Hz, expected %lld at 16 kHz", (long long)a.n, a.rate, (long long)want);
    secap_rng rng;
    secap_rng_seed(&rng, 1);
    int64_t s = secap_crop_start(a.n, SECAP_MIN_SAMPLES, &rng);
    if (s < 0 || (a.n > SECAP_MIN_SAMPLES && s > a.n - SECAP_MIN_SAMPLES)) fuzz_die("crop start %lld", (long long)s);
    secap_audio_normalize(a.x, a.n);
    secap_audio_free(&a);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("in.wav", data, size);
    char err[1024];
    secap_audio_info info;
    int probed = secap_audio_probe(path, &info, err, sizeof err);
    if (probed == 0 && (info.rate < 1 || info.channels < 1 || info.frames < 0))
        fuzz_die("probe accepted %d Hz, %d channels, %lld frames", info.rate, info.channels, (long long)info.frames);
    FUZZ_TRY(decode(path, probed, &info));
}
