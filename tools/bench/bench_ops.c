/* bench_ops: linear and attention, forward + backward, against their floor.
 *
 * 1. linear, M=2048 rows, K=N=1024, with bias: secap_linear forward and its
 *    backward (dx, dW, db) against the three raw sgemm calls they make.
 * 2. attention, B=8, heads=12, T=256, d=64: the fused op against the same
 *    math done as separate ops (permute, batched matmul, softmax, matmul).
 * 3. one decoding step against a KV cache (secap_attention_ex, Tq = 1,
 *    LLaMA-7B heads: 32 x 128), 4 rows at 256 valid positions, kv heads 32
 *    and 8, in caches of Tmax 256 and 2048: the unused tail must cost
 *    nothing.  GB/s counts the K and V bytes a step must read.
 * Times are the best of 5 after a warm-up; GFLOP/s counts model FLOPs
 * (2 per multiply-add of the matrix products).
 *
 *   bin/bench/bench_ops [--reps N] [--no-decode]
 * Each case also prints one "RESULT bench=ops_..." line (tools/bench/run.py). */
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

static int REPS = 5;   /* timed repetitions after the warm-up (--reps) */

static void randn(secap_tensor *t, secap_rng *r, float s)
{
    for (int64_t i = 0; i < t->n; i++) secap_f32(t)[i] = s * secap_rng_normal(r);
}

static void bench_linear(void)
{
    const int M = 2048, K = 1024, N = 1024;
    secap_ctx *c = secap_ctx_new(256u << 20, 1024u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 1);
    secap_tensor *w = secap_param(c, "w", SECAP_SHAPE(N, K), 1), *b = secap_param(c, "b", SECAP_SHAPE(N), 1);
    randn(w, &r, 0.03f);
    float *X = malloc(sizeof(float) * M * K), *DY = malloc(sizeof(float) * M * N), *Y = malloc(sizeof(float) * M * N),
          *DX = malloc(sizeof(float) * M * K), *DW = calloc((size_t)N * K, sizeof(float));
    for (int64_t i = 0; i < (int64_t)M * K; i++) X[i] = secap_rng_normal(&r);
    for (int64_t i = 0; i < (int64_t)M * N; i++) DY[i] = secap_rng_normal(&r);
    double flops = 3.0 * 2.0 * M * N * K, best_raw = 1e9, best_op = 1e9;
    for (int rep = 0; rep <= REPS; rep++) {
        double t0 = secap_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, X, K, secap_f32(w), K, 0.0f, Y, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, DY, N, secap_f32(w), K, 0.0f, DX, K);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, DY, N, X, K, 1.0f, DW, K);
        double t1 = secap_now();
        if (rep) best_raw = t1 - t0 < best_raw ? t1 - t0 : best_raw;

        secap_tensor *x = secap_leaf(c, SECAP_SHAPE(M, K), X);
        t0 = secap_now();
        secap_tensor *y = secap_linear(c, x, w, b);
        secap_backward_from(c, y, DY);
        t1 = secap_now();
        if (rep) best_op = t1 - t0 < best_op ? t1 - t0 : best_op;
        secap_ctx_reset(c);
    }
    printf("linear fwd+bwd M=%d K=%d N=%d (%.1f GFLOP)\n", M, K, N, flops * 1e-9);
    printf("  raw sgemm x3      %8.2f ms  %7.1f GFLOP/s\n", best_raw * 1e3, flops / best_raw * 1e-9);
    printf("  secap_linear      %8.2f ms  %7.1f GFLOP/s  (%.0f%% of raw sgemm)\n", best_op * 1e3,
           flops / best_op * 1e-9, 100.0 * best_raw / best_op);
    printf("RESULT bench=ops_linear ms=%.3f gflops=%.2f sgemm_ms=%.3f sgemm_gflops=%.2f\n", best_op * 1e3,
           flops / best_op * 1e-9, best_raw * 1e3, flops / best_raw * 1e-9);
    free(X); free(DY); free(Y); free(DX); free(DW);
    secap_ctx_free(c);
}

/* Attention as separate ops: [B,T,H*d] -> [B,H,T,d], S = QK^T*scale,
 * softmax, O = PV, back to [B,T,H*d].  Stores the T x T probabilities. */
static secap_tensor *attention_unfused(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *v, int H)
{
    int64_t B = q->shape[0], T = q->shape[1], d = q->shape[2] / H;
    int perm[4] = {0, 2, 1, 3};
    secap_tensor *qh = secap_permute(c, secap_reshape(c, q, SECAP_SHAPE(B, T, H, d)), perm);
    secap_tensor *kh = secap_permute(c, secap_reshape(c, k, SECAP_SHAPE(B, T, H, d)), perm);
    secap_tensor *vh = secap_permute(c, secap_reshape(c, v, SECAP_SHAPE(B, T, H, d)), perm);
    secap_tensor *s = secap_scale(c, secap_matmul(c, qh, kh, 0, 1), 1.0f / sqrtf((float)d), 0.0f);
    secap_tensor *o = secap_matmul(c, secap_softmax(c, s), vh, 0, 0);
    return secap_reshape(c, secap_permute(c, o, perm), SECAP_SHAPE(B, T, H * d));
}

static void bench_attention(void)
{
    const int B = 8, H = 12, T = 256, d = 64, HD = H * d;
    secap_ctx *c = secap_ctx_new(64u << 20, 4096u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 2);
    int64_t n = (int64_t)B * T * HD;
    float *Q = malloc(sizeof(float) * n), *K = malloc(sizeof(float) * n), *V = malloc(sizeof(float) * n),
          *DO = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) {
        Q[i] = secap_rng_normal(&r); K[i] = secap_rng_normal(&r);
        V[i] = secap_rng_normal(&r); DO[i] = secap_rng_normal(&r);
    }
    /* model FLOPs: forward QK^T and PV, backward four products */
    double fwd = 2.0 * 2.0 * B * H * (double)T * T * d, flops = 3.0 * fwd;
    double best[2] = {1e9, 1e9}, peak[2] = {0, 0};
    for (int mode = 0; mode < 2; mode++)
        for (int rep = 0; rep <= REPS; rep++) {
            secap_tensor *q = secap_leaf(c, SECAP_SHAPE(B, T, HD), Q), *k = secap_leaf(c, SECAP_SHAPE(B, T, HD), K),
                         *v = secap_leaf(c, SECAP_SHAPE(B, T, HD), V);
            size_t base = secap_arena_used(c->step);
            double t0 = secap_now();
            secap_tensor *o = mode == 0 ? secap_attention(c, q, k, v, H, NULL, 0, 1.0f / sqrtf((float)d))
                                        : attention_unfused(c, q, k, v, H);
            secap_backward_from(c, o, DO);
            double t1 = secap_now();
            if (rep) best[mode] = t1 - t0 < best[mode] ? t1 - t0 : best[mode];
            size_t used = secap_arena_used(c->step) - base;
            peak[mode] = (double)used;
            secap_ctx_reset(c);
        }
    printf("attention fwd+bwd B=%d heads=%d T=%d d=%d (%.2f GFLOP model)\n", B, H, T, d, flops * 1e-9);
    printf("  fused             %8.2f ms  %7.1f GFLOP/s  step memory %6.1f MiB\n", best[0] * 1e3,
           flops / best[0] * 1e-9, peak[0] / 1048576.0);
    printf("  separate ops      %8.2f ms  %7.1f GFLOP/s  step memory %6.1f MiB\n", best[1] * 1e3,
           flops / best[1] * 1e-9, peak[1] / 1048576.0);
    printf("RESULT bench=ops_attention ms=%.3f gflops=%.2f separate_ms=%.3f\n", best[0] * 1e3,
           flops / best[0] * 1e-9, best[1] * 1e3);
    free(Q); free(K); free(V); free(DO);
    secap_ctx_free(c);
}

static void bench_decode(void)
{
    const int B = 4, H = 32, d = 128, len = 256, steps = 50;
    secap_ctx *c = secap_ctx_new(64u << 20, 1024u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 3);
    printf("attention decode step B=%d heads=%d d=%d, %d cached positions (median of %d steps)\n", B, H, d, len,
           steps);
    for (int gi = 0; gi < 2; gi++)
        for (int ti = 0; ti < 2; ti++) {
            int G = gi ? 8 : 32, Tmax = ti ? 2048 : len;
            float *K = malloc(sizeof(float) * (size_t)B * Tmax * G * d), *V = malloc(sizeof(float) * (size_t)B * Tmax * G * d);
            for (int64_t i = 0; i < (int64_t)B * Tmax * G * d; i++) { K[i] = secap_rng_normal(&r); V[i] = secap_rng_normal(&r); }
            int32_t klen[4] = {len, len, len, len}, qpos[4] = {len - 1, len - 1, len - 1, len - 1};
            secap_attn_opts o = {.heads = H, .kv_heads = G, .key_len = klen, .q_pos = qpos, .causal = 1,
                                 .scale = 1.0f / sqrtf((float)d)};
            double t[64];
            for (int s = 0; s <= steps; s++) {
                secap_tensor *q = secap_empty(c, SECAP_SHAPE(B, 1, H * d));
                randn(q, &r, 1.0f);
                secap_tensor *k = secap_wrap_f32(c, "k", SECAP_SHAPE(B, Tmax, G * d), K),
                             *v = secap_wrap_f32(c, "v", SECAP_SHAPE(B, Tmax, G * d), V);
                double t0 = secap_now();
                secap_attention_ex(c, q, k, v, &o);
                if (s) t[s - 1] = secap_now() - t0;
                secap_ctx_reset(c);
            }
            for (int i = 1; i < steps; i++) /* insertion sort for the median */
                for (int j = i; j > 0 && t[j] < t[j - 1]; j--) { double x = t[j]; t[j] = t[j - 1]; t[j - 1] = x; }
            double med = t[steps / 2], bytes = 2.0 * B * len * G * d * sizeof(float);
            printf("  kv heads %2d, Tmax %4d  %8.3f ms  %6.1f GB/s of K,V\n", G, Tmax, med * 1e3, bytes / med * 1e-9);
            free(K); free(V);
        }
    secap_ctx_free(c);
}

int main(int argc, char **argv)
{
    int decode = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) REPS = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-decode")) decode = 0;
        else secap_fatal("bench_ops: unknown argument %s (hint: --reps N, --no-decode)", argv[i]);
    }
    if (REPS < 1 || REPS > 100) secap_fatal("bench_ops: --reps %d outside [1, 100]", REPS);
    secap_threads_init(0);
    printf("threads: %d\n", secap_threads());
    bench_linear();
    bench_attention();
    if (decode) bench_decode();
    return 0;
}
