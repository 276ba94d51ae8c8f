/* tools/bench/benchutil.h - shared by the C benchmarks (bench_bf16,
 * bench_caption, bench_decode, bench_stage1, bench_step). */
#ifndef SECAP_BENCHUTIL_H
#define SECAP_BENCHUTIL_H

#include "secap/base.h"
#include "secap/llama.h"

#include <cblas.h>
#include <stdlib.h>

/* The machine's sgemm rate in FLOP/s right now, as the step's products see
 * it: the best of 5 timed 2048 x 1024 x 1024 products (after one warm-up)
 * on the current OpenBLAS threads.  On a shared machine it says how much
 * of the cores a measurement had. */
static inline double bench_sgemm_rate(void)
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

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorts v in place). */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Model FLOPs of one LoRA caption step of a LLaMA (cf) on B rows of T
 * positions: forward + input-gradient backward of every base product
 * (4 N P), attention scores and values 3x, and the LoRA products (r, on
 * ntarget projections of width D) 3x. */
static inline double bench_llama_step_flops(const secap_llama_config *cf, int B, int r, int ntarget, int T)
{
    double D = cf->hidden_size, Im = cf->intermediate_size, V = cf->vocab_size, L = cf->num_hidden_layers;
    double N = (double)B * T;
    double P = L * (4 * D * D + 3 * D * Im) + V * D;
    double attn = L * 4.0 * B * (double)T * T * D;
    double lora = L * ntarget * 2.0 * N * r * (D + D);
    return 2 * P * N * 2 + 3 * attn + 3 * lora;
}

#endif
