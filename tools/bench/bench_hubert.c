/* bench_hubert: frozen HuBERT forward, speed and peak memory.
 *
 *   bin/bench/bench_hubert [--seconds=S] [--reps=N] [--threads=N] [--peak-seconds=S]
 *                          [--only=hubert-base|hubert-large]   (one model, for profiling)
 *
 * 1. HuBERT-base-sized (12 layers, H=768) and HuBERT-large-sized (24 layers,
 *    H=1024) models with random weights (tools/convert_hf.py --init random,
 *    written to build/bench/ when missing), frozen, no tape: the forward over
 *    S = 10 s of speech-like audio, best of N = 3 after a warm-up.  Prints ms,
 *    the model GFLOP (convs, linear layers, attention matmuls; 2 per
 *    multiply-add) and GFLOP/s as a fraction of the sgemm peak (330 GFLOP/s
 *    on 2 cores, SECAP's reference machine).
 * 2. Peak memory: a fresh process (this program re-run with --peak-only)
 *    loads the large model and runs one frozen forward over 30 s of audio;
 *    its getrusage ru_maxrss is the whole process's high-water mark
 *    (weights, activations, OpenBLAS buffers).
 * The times are also written to build/bench/bench_hubert.txt, which
 * tools/bench/bench_hubert_torch.py reads to print the C / PyTorch ratio. */
#include "secap/base.h"
#include "secap/hubert.h"
#include "secap/rng.h"
#include "secap/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEAK_GFLOPS 330.0
#define PEAK_LIMIT_GIB 3.0

/* Gliding harmonics with an envelope and a little noise (as tests/ref_hubert.py). */
static float *speechlike(int64_t n, uint64_t seed)
{
    float *x = secap_xmalloc((size_t)n * sizeof(float), "bench audio");
    secap_rng r;
    secap_rng_seed(&r, seed);
    double phase = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = i / 16000.0, f = 140.0 * (1 + 0.25 * sin(2 * M_PI * 1.3 * t)) + 30 * t, s = 0;
        phase += 2 * M_PI * f / 16000.0;
        for (int h = 1; h <= 10; h++) s += sin(h * phase + h) / h;
        double env = 0.5 + 0.5 * pow(sin(2 * M_PI * 3.0 * t), 2);
        x[i] = (float)(0.2 * s * env + 0.02 * secap_rng_normal(&r));
    }
    return x;
}

/* The random-weight file for a preset, made once with the converter. */
static const char *weights(const char *preset)
{
    static char path[2][256];
    int k = strcmp(preset, "hubert-base") != 0;
    snprintf(path[k], sizeof path[k], "build/bench/%s.h5", preset);
    if (access(path[k], R_OK) != 0) {
        mkdir("build", 0777);
        mkdir("build/bench", 0777);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/convert_hf.py --init random --config %s --out %s",
                 preset, path[k]);
        fprintf(stderr, "bench_hubert: making %s: %s\n", path[k], cmd);
        if (system(cmd) != 0)
            secap_fatal("bench_hubert: '%s' failed (hint: run from the repository root; needs python3-numpy, "
                        "python3-h5py)", cmd);
    }
    return path[k];
}

static double bench(const char *preset, double seconds, int reps, FILE *out)
{
    secap_ctx *c = secap_ctx_new(0, 0, 1);
    double t0 = secap_now();
    secap_hubert *m = secap_hubert_load(c, weights(preset), 0);
    double tload = secap_now() - t0;
    const secap_hubert_config *cf = secap_hubert_cfg(m);
    int64_t n = (int64_t)(seconds * 16000);
    float *x = speechlike(n, 7);
    double best = 1e30, gflop = secap_hubert_flops(cf, &n, 1, -1) / 1e9;
    int32_t frames = 0;
    for (int r = 0; r <= reps; r++) {   /* r = 0 is the warm-up */
        t0 = secap_now();
        secap_tensor *y = secap_hubert_forward(c, m, x, &n, 1, n, -1, &frames);
        double t = secap_now() - t0;
        if (!isfinite(secap_f32(y)[0])) secap_fatal("bench_hubert: non-finite output");
        if (r && t < best) best = t;
        secap_ctx_reset(c);
    }
    /* the front end alone: conv stack, projection, positional conv (layer 0) */
    double front = 1e30, gfront = secap_hubert_flops(cf, &n, 1, 0) / 1e9;
    for (int r = 0; r <= reps; r++) {
        t0 = secap_now();
        secap_hubert_forward(c, m, x, &n, 1, n, 0, NULL);
        double t = secap_now() - t0;
        if (r && t < front) front = t;
        secap_ctx_reset(c);
    }
    printf("%-13s L=%-2d H=%-4d %4.1f s audio (%d frames): %8.1f ms  %6.1f GFLOP  %6.1f GFLOP/s = %4.1f%% of %.0f "
           "(load %.2f s, %d threads)\n", preset, cf->num_hidden_layers, cf->hidden_size, seconds, frames,
           best * 1e3, gflop, gflop / best, 100 * gflop / best / PEAK_GFLOPS, PEAK_GFLOPS, tload, secap_threads());
    printf("%-13s   of which conv stack + projection + pos conv: %7.1f ms  %6.1f GFLOP  %6.1f GFLOP/s; "
           "transformer: %7.1f ms  %6.1f GFLOP/s\n", "", front * 1e3, gfront, gfront / front, (best - front) * 1e3,
           (gflop - gfront) / (best - front));
    printf("RESULT bench=hubert preset=%s seconds=%.1f ms=%.3f gflop=%.3f front_ms=%.3f frames=%d\n", preset, seconds,
           best * 1e3, gflop, front * 1e3, frames);
    if (out) fprintf(out, "%s %.3f %.3f %.1f %d\n", preset, best * 1e3, gflop, seconds, secap_threads());
    free(x);
    secap_hubert_free(m);
    secap_ctx_free(c);
    return best;
}

/* Loads the large model and runs one frozen forward over `seconds`; prints
 * the process's peak resident set. */
static void peak_only(double seconds)
{
    secap_ctx *c = secap_ctx_new(0, 0, 1);
    secap_hubert *m = secap_hubert_load(c, weights("hubert-large"), 0);
    int64_t n = (int64_t)(seconds * 16000);
    float *x = speechlike(n, 7);
    double t0 = secap_now();
    int32_t frames;
    secap_hubert_forward(c, m, x, &n, 1, n, -1, &frames);
    double t = secap_now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double gib = ru.ru_maxrss / 1024.0 / 1024.0;
    printf("hubert-large  peak memory, frozen forward over %.0f s (%d frames, %.1f s): ru_maxrss %.2f GiB "
           "(limit %.1f GiB: %s)\n", seconds, frames, t, gib, PEAK_LIMIT_GIB, gib < PEAK_LIMIT_GIB ? "ok" : "OVER");
    free(x);
    secap_hubert_free(m);
    secap_ctx_free(c);
    exit(gib < PEAK_LIMIT_GIB ? 0 : 1);
}

int main(int argc, char **argv)
{
    double seconds = 10, peak_seconds = 30;
    int reps = 3, threads = 2, only_peak = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--seconds=", 10)) seconds = atof(argv[i] + 10);
        else if (!strncmp(argv[i], "--reps=", 7)) reps = atoi(argv[i] + 7);
        else if (!strncmp(argv[i], "--threads=", 10)) threads = atoi(argv[i] + 10);
        else if (!strncmp(argv[i], "--peak-seconds=", 15)) peak_seconds = atof(argv[i] + 15);
        else if (!strcmp(argv[i], "--peak-only")) only_peak = 1;
        else if (!strncmp(argv[i], "--only=", 7)) only = argv[i] + 7;
        else {
            fprintf(stderr, "usage: bench_hubert [--seconds=10] [--reps=3] [--threads=2] [--peak-seconds=30] "
                            "[--peak-only] [--only=hubert-base|hubert-large]\n");
            return 2;
        }
    }
    secap_threads_init(threads);
    if (only_peak) peak_only(peak_seconds);

    if (only) {   /* one model, no file, no peak run (profiling) */
        bench(only, seconds, reps, NULL);
        return 0;
    }
    FILE *out = fopen("build/bench/bench_hubert.txt.tmp", "w");
    if (out) fprintf(out, "# preset ms gflop audio_seconds threads (bin/bench/bench_hubert)\n");
    bench("hubert-base", seconds, reps, out);
    bench("hubert-large", seconds, reps, out);
    if (out) {
        fclose(out);
        rename("build/bench/bench_hubert.txt.tmp", "build/bench/bench_hubert.txt");
    }
    fflush(stdout);
    /* peak memory in a fresh process, so this one's high-water mark does not count */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --peak-only --threads=%d --peak-seconds=%g", argv[0], threads, peak_seconds);
    return system(cmd) == 0 ? 0 : 1;
}
