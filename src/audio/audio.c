/* Audio decoding (libsndfile), downmix, resampling (libsoxr), normalisation. */
#include "secap/audio.h"
#include "secap/base.h"

#include <math.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <soxr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames decoded per sf_readf_float call when downmixing. */
#define CHUNK_FRAMES 16384

/* Process-wide bounds on what a header may claim (set before loader threads
 * start; read-only afterwards). */
static secap_audio_limits g_limits = { SECAP_AUDIO_MIN_RATE, SECAP_AUDIO_MAX_RATE, SECAP_AUDIO_MAX_SECONDS };

void secap_audio_set_limits(const secap_audio_limits *l)
{
    secap_audio_limits d = { SECAP_AUDIO_MIN_RATE, SECAP_AUDIO_MAX_RATE, SECAP_AUDIO_MAX_SECONDS };
    if (!l) l = &d;
    if (!(l->min_rate >= 1 && l->min_rate <= l->max_rate && l->max_seconds > 0))
        secap_fatal("audio limits: sample rates [%d, %d] Hz and longest clip %g s are not a valid range "
                    "(hint: min_sample_rate <= max_sample_rate, both >= 1, max_audio_seconds > 0)",
                    l->min_rate, l->max_rate, l->max_seconds);
    g_limits = *l;
}

secap_audio_limits secap_audio_get_limits(void) { return g_limits; }

static SNDFILE *open_sf(const char *path, SF_INFO *si, char *err, size_t errlen)
{
    memset(si, 0, sizeof *si);
    struct stat stt;
    if (stat(path, &stt) == 0 && S_ISDIR(stt.st_mode)) {
        snprintf(err, errlen, "%s: is a directory, not an audio file (hint: give the path of a WAV/FLAC file)", path);
        return NULL;
    }
    SNDFILE *sf = sf_open(path, SFM_READ, si);
    if (!sf) {
        snprintf(err, errlen, "%s: cannot read audio: %s (hint: check that the file exists and is "
                 "WAV/FLAC/OGG or another format libsndfile reads; re-export it if it is damaged)",
                 path, sf_strerror(NULL));
        return NULL;
    }
    if (si->channels < 1 || si->samplerate < 1 || si->frames < 0) {
        snprintf(err, errlen, "%s: audio header is invalid (%d channels, %d Hz) (hint: re-export the file)",
                 path, si->channels, si->samplerate);
        sf_close(sf);
        return NULL;
    }
    /* An absurd header (1 Hz, 10^12 frames) would ask for a huge buffer
     * before anything is decoded: bound it first. */
    const secap_audio_limits *l = &g_limits;
    if (si->samplerate < l->min_rate || si->samplerate > l->max_rate) {
        snprintf(err, errlen, "%s: sample rate %d Hz is outside [%d, %d] Hz (hint: the header is damaged, or "
                 "the bounds are wrong for this data: set data.min_sample_rate / data.max_sample_rate)",
                 path, si->samplerate, l->min_rate, l->max_rate);
        sf_close(sf);
        return NULL;
    }
    double seconds = (double)si->frames / si->samplerate;
    if (seconds > l->max_seconds) {
        snprintf(err, errlen, "%s: the header declares %lld frames at %d Hz, %.1f s, longer than the %g s limit "
                 "(hint: a damaged header, or split the recording; data.max_audio_seconds raises the limit)",
                 path, (long long)si->frames, si->samplerate, seconds, l->max_seconds);
        sf_close(sf);
        return NULL;
    }
    return sf;
}

int secap_audio_probe(const char *path, secap_audio_info *info, char *err, size_t errlen)
{
    SF_INFO si;
    SNDFILE *sf = open_sf(path, &si, err, errlen);
    memset(info, 0, sizeof *info);
    if (!sf) return -1;
    info->frames = si.frames;
    info->rate = si.samplerate;
    info->channels = si.channels;
    sf_close(sf);
    return 0;
}

/* Decodes every frame of an open file into mono x [frames]; returns frames read. */
static int64_t read_mono(SNDFILE *sf, const SF_INFO *si, float *x)
{
    int C = si->channels;
    float *buf = secap_xmalloc((size_t)CHUNK_FRAMES * (size_t)C * sizeof(float), "audio decode buffer");
    int64_t done = 0;
    while (done < si->frames) {
        sf_count_t want = si->frames - done < CHUNK_FRAMES ? si->frames - done : CHUNK_FRAMES;
        sf_count_t got = sf_readf_float(sf, buf, want);
        if (got <= 0) break;
        for (sf_count_t i = 0; i < got; i++) {
            float s = 0.0f;
            for (int c = 0; c < C; c++) s += buf[i * C + c];
            x[done + i] = s / (float)C;
        }
        done += got;
    }
    free(buf);
    return done;
}

int secap_audio_load(const char *path, int rate, secap_audio *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    SF_INFO si;
    SNDFILE *sf = open_sf(path, &si, err, errlen);
    if (!sf) return -1;
    float *mono = secap_xmalloc((size_t)si.frames * sizeof(float), path);
    int64_t got = read_mono(sf, &si, mono);
    sf_close(sf);
    if (got < si.frames) {
        snprintf(err, errlen, "%s: audio is truncated: the header declares %lld frames but only %lld "
                 "could be decoded (hint: re-export or re-download the file)",
                 path, (long long)si.frames, (long long)got);
        free(mono);
        return -1;
    }
    /* A float file can hold NaN or inf: refuse it here, before resampling
     * spreads it and the encoder turns a clip into NaN features. */
    int64_t bad = secap_find_nonfinite(mono, got);
    if (bad >= 0) {
        snprintf(err, errlen, "%s: sample %lld (%.3f s, mean of %d channel%s) is %s (hint: the file holds "
                 "non-finite floats; re-export it from the source recording)", path, (long long)bad,
                 (double)bad / si.samplerate, si.channels, si.channels == 1 ? "" : "s",
                 secap_nonfinite_name(mono[bad]));
        free(mono);
        return -1;
    }
    out->rate = rate;
    if (si.samplerate == rate) {
        out->x = mono;
        out->n = got;
        return 0;
    }
    out->x = secap_resample(mono, got, si.samplerate, rate, &out->n);
    free(mono);
    return 0;
}

secap_audio secap_audio_load_or_die(const char *path, int rate)
{
    char err[1024];
    secap_audio a;
    if (secap_audio_load(path, rate, &a, err, sizeof err)) secap_fatal("%s", err);
    return a;
}

void secap_audio_free(secap_audio *a)
{
    free(a->x);
    memset(a, 0, sizeof *a);
}

float *secap_resample(const float *x, int64_t n, int in_rate, int out_rate, int64_t *n_out)
{
    SECAP_CHECK(in_rate > 0 && out_rate > 0, "resample: invalid rates %d -> %d Hz", in_rate, out_rate);
    int64_t want = (int64_t)llround((double)n * out_rate / in_rate);
    float *y = secap_xcalloc((size_t)want + 1, sizeof(float), "resampled audio");
    *n_out = want;
    if (n == 0) return y;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    size_t done = 0;
    soxr_error_t e = soxr_oneshot(in_rate, out_rate, 1, x, (size_t)n, NULL,
                                  y, (size_t)want, &done, &io, &q, NULL);
    if (e) {
        free(y);
        secap_fatal("resample %d -> %d Hz: libsoxr: %s (hint: check the libsoxr installation)", in_rate, out_rate, e);
    }
    /* soxr delivers round(n * ratio) samples once flushed; zero-fill any shortfall. */
    return y;
}

void secap_audio_normalize(float *x, int64_t n)
{
    if (n <= 0) return;
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    double mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) { double d = x[i] - mean; s2 += d * d; }
    double inv = 1.0 / sqrt(s2 / (double)n + 1e-7);
    for (int64_t i = 0; i < n; i++) x[i] = (float)((x[i] - mean) * inv);
}

int64_t secap_crop_start(int64_t n, int64_t max_n, secap_rng *rng)
{
    if (max_n <= 0 || n <= max_n || !rng) return 0;
    return (int64_t)secap_rng_below(rng, (uint64_t)(n - max_n + 1));
}
