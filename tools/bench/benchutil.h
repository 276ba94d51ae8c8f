/* tools/bench/benchutil.h - shared by the step benchmarks (bench_caption,
 * bench_stage1, bench_step). */
#ifndef SECAP_BENCHUTIL_H
#define SECAP_BENCHUTIL_H

#include "secap/base.h"

#include <cblas.h>
#include <stdlib.h>

/* The machine's sgemm rate in FLOP/s right now, as the step's products see
 * it: the best of 5 timed 2048 x 1024 x 1024 products (after one warm-up)
 * on the current OpenBLAS threads.  On a shared machine it says how much
 * of the cores a measurement had. */
static double bench_sgemm_rate(void)
{
    const int M = 2048, K = 1024, N = 1024;
    float *a = secap_xmalloc(sizeof(float) * M * K, "sgemm probe"), *b = secap_xmalloc(sizeof(float) * K * N,
          "sgemm probe"), *c = secap_xmalloc(sizeof(float) * M * N, "sgemm probe");
    for (int i = 0; i < M * K; i++) a[i] = (float)((i * 7) % 13) * 0.01f;
    for (int i = 0; i < K * N; i++) b[i] = (float)((i * 5) % 11) * 0.01f;
    double best = 1e9;
    for (int rep = 0; rep <= 5; rep++) {
        double t0 = secap_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
        double t = secap_now() - t0;
        if (rep && t < best) best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * M * N * K / best;
}

#endif
