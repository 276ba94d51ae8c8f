/* secap/audio.h - reading speech audio as the models want it.
 *
 * Any format libsndfile reads (WAV, FLAC, OGG/Vorbis, AIFF, ...) at any bit
 * depth is decoded to float32, downmixed to mono (mean of the channels) and
 * resampled with libsoxr at high quality (SOXR_HQ: 20-bit precision, 91%
 * bandwidth) to the target rate, 16 kHz for HuBERT.
 *
 * Loading does not stop the program on bad input: it returns non-zero and a
 * message naming the file, what is wrong and a fix, so dataset validation can
 * collect every problem before reporting.
 */
#ifndef SECAP_AUDIO_H
#define SECAP_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "secap/rng.h"

#define SECAP_SAMPLE_RATE 16000
/* Shortest usable clip: one HuBERT frame (conv receptive field) at 16 kHz. */
#define SECAP_MIN_SAMPLES 400

typedef struct {
    float  *x;     /* [n] mono samples in [-1, 1] */
    int64_t n;     /* number of samples */
    int     rate;  /* samples per second */
} secap_audio;

/* What the file header says, without decoding the samples. */
typedef struct {
    int64_t frames;    /* frames at the file's own rate */
    int     rate;      /* the file's sample rate */
    int     channels;
} secap_audio_info;

/* Bounds on what an audio header may claim, checked by secap_audio_probe
 * and secap_audio_load before any buffer is sized from it: sample rates in
 * [min_rate, max_rate] Hz and at most max_seconds of audio.  Process-wide;
 * set them before loader threads start (secap_dataset_read applies the
 * data.min_sample_rate, data.max_sample_rate and data.max_audio_seconds
 * keys).  NULL restores the defaults below; an empty range stops. */
#define SECAP_AUDIO_MIN_RATE 4000
#define SECAP_AUDIO_MAX_RATE 384000
#define SECAP_AUDIO_MAX_SECONDS 3600.0
typedef struct {
    int min_rate, max_rate;   /* Hz */
    double max_seconds;       /* longest clip */
} secap_audio_limits;
void secap_audio_set_limits(const secap_audio_limits *l);
secap_audio_limits secap_audio_get_limits(void);

/* Reads the header of `path`.  Returns 0, or -1 with a message in err. */
int secap_audio_probe(const char *path, secap_audio_info *info, char *err, size_t errlen);

/* Decodes `path`, downmixes to mono and resamples to `rate` (no resampling
 * when the file already has it).  Returns 0 and fills *out (free with
 * secap_audio_free), or -1 with a message in err and *out zeroed.  A file
 * whose data ends before the length its header declares is an error, and so
 * is a NaN or infinite sample (the message names it and its time). */
int secap_audio_load(const char *path, int rate, secap_audio *out, char *err, size_t errlen);

/* Same, but a problem stops the program through secap_fatal(). */
secap_audio secap_audio_load_or_die(const char *path, int rate);

void secap_audio_free(secap_audio *a);

/* Resamples x [n] from in_rate to out_rate with libsoxr HQ.  Returns a new
 * buffer of *n_out = round(n * out_rate / in_rate) samples. */
float *secap_resample(const float *x, int64_t n, int in_rate, int out_rate, int64_t *n_out);

/* In place: x = (x - mean) / sqrt(var + 1e-7) over all n samples, as the
 * Hugging Face Wav2Vec2FeatureExtractor does with do_normalize=True. */
void secap_audio_normalize(float *x, int64_t n);

/* Start of a crop of at most max_n samples from a clip of n samples: a
 * uniform random start drawn from rng (training), or 0 when rng is NULL
 * (evaluation: the head).  Returns 0 when n <= max_n or max_n <= 0. */
int64_t secap_crop_start(int64_t n, int64_t max_n, secap_rng *rng);

#endif
