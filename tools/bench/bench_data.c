/* bench_data - the data pipeline on the demo corpus (data/demo).
 *
 * Reports: reading + validating the tables and headers; decoding and
 * resampling every utterance 24 kHz -> 16 kHz on one thread; one epoch of
 * padded, length-bucketed batches through the prefetching loader; and the
 * overlap check: a consumer that "computes" for a fixed time per step (a
 * sleep standing in for the accelerator) and the time it waited for data.
 * Skips with exit 0 when data/demo is missing (make demo builds it).
 */
#include "secap/audio.h"
#include "secap/base.h"
#include "secap/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* One epoch through a loader; the consumer sleeps `compute` s per batch. */
static void run_epoch(const secap_dataset *d, const secap_data_config *c, double compute,
                      double audio_s, const char *label)
{
    double t0 = secap_now();
    secap_loader *L = secap_loader_create(d, -1, 1, c);
    int nb = secap_loader_batches(L);
    int64_t pad = 0, valid = 0;
    for (int k = 0; k < nb; k++) {
        const secap_batch *b = secap_loader_next(L);
        for (int i = 0; i < b->B; i++) { valid += b->lengths[i]; pad += b->T - b->lengths[i]; }
        if (compute > 0) sleep_s(compute);
    }
    double dt = secap_now() - t0, wait = secap_loader_wait_seconds(L);
    printf("%-34s %4d batches in %6.2f s (%5.0fx real time), consumer waited %6.2f s (%4.1f%%), "
           "padding %.1f%%\n", label, nb, dt, audio_s / dt, wait, 100.0 * wait / dt,
           100.0 * (double)pad / (double)(pad + valid));
    secap_loader_free(L);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "data/demo";
    char scp[1024];
    snprintf(scp, sizeof scp, "%s/wav.scp", dir);
    if (access(scp, R_OK) != 0) {
        printf("bench_data: skipped: %s not found (run `make demo` or tools/make_demo_corpus.py first)\n", scp);
        return 0;
    }
    secap_data_config c;
    secap_data_config_default(&c);
    c.batch_size = 16;
    c.workers = 2;
    c.prefetch = 8;

    double t0 = secap_now();
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(dir, &c, &probs);
    secap_dataset_validate(d, &probs);
    secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_FAIL);
    double t_read = secap_now() - t0;
    double audio_s = 0;
    for (int i = 0; i < d->n; i++) audio_s += (double)d->items[i].n_samples / SECAP_SAMPLE_RATE;
    printf("bench_data: %s: %d utterances, %.2f h of audio; %d cores\n", dir, d->n, audio_s / 3600,
           (int)sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-34s %.3f s\n", "read tables + validate headers", t_read);

    t0 = secap_now();
    for (int i = 0; i < d->n; i++) {
        secap_audio a = secap_audio_load_or_die(d->items[i].audio, SECAP_SAMPLE_RATE);
        secap_audio_free(&a);
    }
    double t_dec = secap_now() - t0;
    printf("%-34s %.2f s (%.0fx real time, %.2f ms per utterance)\n", "decode + resample, 1 thread",
           t_dec, audio_s / t_dec, 1e3 * t_dec / d->n);

    run_epoch(d, &c, 0.0, audio_s, "epoch, 2 loader threads, no compute");
    /* Per-batch loading cost on 2 threads, then a step 1.5x as long. */
    double per_batch = t_dec / ((double)d->n / c.batch_size) / c.workers;
    double compute = 1.5 * per_batch;
    char label[64];
    snprintf(label, sizeof label, "epoch, %.0f ms compute per step", 1e3 * compute);
    run_epoch(d, &c, compute, audio_s, label);

    secap_problems_free(&probs);
    secap_dataset_free(d);
    return 0;
}
