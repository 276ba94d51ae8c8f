/* bench_allreduce: the gradient exchange of MPI training on its own.
 *
 *   mpirun -np 2 bin/bench/bench_allreduce [--floats N] [--reps R]
 *
 * Builds one trainable tensor of N floats (default 6,000,000: the demo's
 * caption stage exchanges 3.6-6.0 M, README "Distributed training (MPI)"),
 * registers it with an AdamW optimizer and times R calls (default 20, after
 * 3 warm-ups) of secap_dist_allreduce_grads, the exact call secap-train makes
 * after each backward (bucketed MPI_Allreduce summing over the ranks).
 * Rank 0 prints the median and minimum time per call, the bytes per call and
 * the resulting bus rate.  Comparing the median with a step's time says how
 * much overlapping the exchange with the backward pass could gain at most.
 * Without MPI (or as one process) the call is the identity and the time is
 * the bucket copy alone. */
#include "benchutil.h"

#include "secap/base.h"
#include "secap/dist.h"
#include "secap/optim.h"
#include "secap/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long long floats = 6000000;
    int reps = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--floats") && i + 1 < argc) floats = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_allreduce [--floats N] [--reps R]\n"); return 2; }
    }
    if (floats < 1 || floats > (1LL << 31)) floats = 6000000;
    if (reps < 1 || reps > 10000) reps = 20;
    secap_dist_init();
    secap_threads_init(1);
    secap_ctx *c = secap_ctx_new((size_t)(floats * 4 * 4 + (64 << 20)), (size_t)64 << 20, 1);
    secap_params *p = secap_params_new("bench");
    secap_params_default_trainable(p, 1);
    int i0 = secap_params_add(p, NULL, 1, (int64_t[]){ floats }, "g");
    secap_params_set_init(p, i0, SECAP_INIT_ONES, 0);
    secap_params_load(p, c, NULL, NULL, 1);
    secap_adamw *o = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int g = secap_adamw_group(o, 1.0f, 0.0f);
    secap_adamw_add_params(o, c, p, NULL, NULL, g);
    secap_tensor *t = secap_params_get(p, "g");
    double *ms = secap_xmalloc((size_t)reps * sizeof *ms, "times");
    for (int r = -3; r < reps; r++) {
        for (long long k = 0; k < floats; k++) t->grad[k] = 1.0f + (float)secap_dist_rank();
        double t0 = secap_now();
        secap_dist_allreduce_grads(c, o);
        double dt = secap_now() - t0;
        if (r >= 0) ms[r] = dt * 1e3;
    }
    /* the sum of 1 + rank over the ranks, on every element (the trainer
     * scales each rank's loss, so the exchange itself only sums) */
    double n = secap_dist_size(), want = n + n * (n - 1) / 2.0;
    if (t->grad[0] != (float)want || t->grad[floats - 1] != (float)want)
        secap_fatal("bench_allreduce: gradient %g after the exchange, expected %g", t->grad[0], want);
    double lo = ms[0];
    for (int r = 1; r < reps; r++) lo = ms[r] < lo ? ms[r] : lo;
    double med = median(ms, reps), mb = (double)floats * 4.0 / 1e6;
    if (secap_dist_rank() == 0)
        printf("allreduce of %lld floats (%.1f MB) on %d rank%s: median %.2f ms, min %.2f ms over %d calls "
               "(%.2f GB/s of gradient per rank)\n", floats, mb, secap_dist_size(), secap_dist_size() > 1 ? "s" : "",
               med, lo, reps, mb / med);
    free(ms);
    secap_adamw_free(o);
    secap_params_free(p);
    secap_ctx_free(c);
    secap_dist_finalize();
    return 0;
}
