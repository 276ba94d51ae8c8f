/* bench_bf16: products with a frozen bf16 weight (src/ops/bf16_gemm.c)
 * against sgemm on the same weight in float32, same threads.
 *
 *   decode    x [1, 4096]  with W [4096, 4096] and [11008, 4096]: y = x W^T
 *   training  x [82, 4096] with the same W: y = x W^T and dx += dy W
 *
 * Each case runs its variants (sgemm on the f32 weight, the avx512bf16
 * kernel when the CPU has it, the portable kernel) one after another, REPS
 * times, and prints the median time of each (interleaved, so a busy
 * neighbour hits all variants alike), GFLOP/s (2 M N K), the weight bytes
 * read per second, time / sgemm time and whether the target is met
 * (decoding: at most 0.6x sgemm's time; training: at least 0.9x sgemm's
 * throughput).  sgemv on the f32 weight is shown for decoding as the best
 * f32 baseline (secap_linear on f32 weights calls sgemm).  Then the error of each variant on
 * 512 outputs of the training shape, relative to S = sum |x| |W| against a
 * double product, with x rounded to bf16 (PyTorch bf16 autocast) for
 * comparison.
 *
 *   bin/bench/bench_bf16 [--reps N] [--quick] [--case decode|forward|grad]
 * (SECAP_THREADS threads; --quick: W [4096, 4096] only; --case: one case)
 */
#include "benchutil.h"
#include "secap/base.h"
#include "secap/ops.h"
#include "../../src/ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V_SGEMM, V_SGEMV, V_AVX, V_PORT, NV };
static const char *vname[NV] = {"sgemm f32", "sgemv f32", "avx512bf16", "portable"};

typedef struct {
    int64_t N, K;
    uint16_t *wb; /* [N, K] bf16 */
    float *wf;    /* [N, K] the same values in float32 */
} weight;

static weight make_weight(int64_t N, int64_t K, secap_rng *r)
{
    weight w = {N, K, secap_xmalloc(sizeof(uint16_t) * (size_t)(N * K), "W bf16"),
                secap_xmalloc(sizeof(float) * (size_t)(N * K), "W f32")};
    for (int64_t i = 0; i < N * K; i++) {
        w.wb[i] = secap_f32_to_bf16(0.02f * secap_rng_normal(r));
        w.wf[i] = secap_bf16_to_f32(w.wb[i]);
    }
    return w;
}

/* One call of variant v: forward y = x W^T, or (grad) dx += dy W. */
static void run(secap_ctx *c, int v, int grad, const weight *w, int64_t M, const float *in, float *out)
{
    int64_t N = w->N, K = w->K;
    if (v == V_SGEMV) { /* decode only: y = W x */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, w->wf, (int)K, in, 1, 0.0f, out, 1);
        return;
    }
    if (v == V_SGEMM) {
        if (grad) op_gemm(0, 0, M, K, N, 1.0f, in, N, w->wf, K, 1.0f, out, K);
        else op_gemm(0, 1, M, N, K, 1.0f, in, K, w->wf, K, 0.0f, out, N);
        return;
    }
    secap_bf16_kernel_set(v == V_AVX ? SECAP_BF16_KERNEL_AVX512BF16 : SECAP_BF16_KERNEL_PORTABLE);
    if (grad) op_bf16_linear_dx(c, in, w->wb, out, M, N, K);
    else op_bf16_linear(c, in, w->wb, NULL, out, M, N, K);
}

static void bench_case(secap_ctx *c, const char *what, int grad, const weight *w, int64_t M, int reps, int have_avx,
                       secap_rng *r)
{
    int64_t N = w->N, K = w->K, nin = grad ? M * N : M * K, nout = grad ? M * K : M * N;
    float *in = secap_xmalloc(sizeof(float) * (size_t)nin, "input"), *out = secap_xcalloc((size_t)nout, sizeof(float), "output");
    for (int64_t i = 0; i < nin; i++) in[i] = secap_rng_normal(r);
    double t[NV][64];
#define SKIP(v) (((v) == V_AVX && !have_avx) || ((v) == V_SGEMV && M != 1))
    for (int v = 0; v < NV; v++) /* warm-up */
        if (!SKIP(v)) run(c, v, grad, w, M, in, out);
    for (int rep = 0; rep < reps; rep++)
        for (int v = 0; v < NV; v++) {
            if (SKIP(v)) continue;
            double t0 = secap_now();
            run(c, v, grad, w, M, in, out);
            t[v][rep] = secap_now() - t0;
        }
    double flop = 2.0 * (double)M * (double)N * (double)K, base = median(t[V_SGEMM], reps);
    printf("%s: M=%lld N=%lld K=%lld, %s, median of %d\n", what, (long long)M, (long long)N, (long long)K,
           grad ? "dx += dy W" : "y = x W^T", reps);
    for (int v = 0; v < NV; v++) {
        if (v == V_AVX && !have_avx) {
            printf("  %-11s (this CPU lacks AVX512-BF16: not run)\n", vname[v]);
            continue;
        }
        if (SKIP(v)) continue;
        double m = median(t[v], reps), bytes = (double)(N * K) * (v <= V_SGEMV ? 4.0 : 2.0);
        printf("  %-11s %9.3f ms  %7.1f GFLOP/s  %6.1f GB/s of weight  %5.2fx sgemm time  (min %.3f, max %.3f ms)",
               vname[v], m * 1e3, flop / m * 1e-9, bytes / m * 1e-9, m / base, t[v][0] * 1e3,
               t[v][reps - 1] * 1e3);
        /* Targets: decoding at most 0.6x the f32 time; training at least 0.9x sgemm's throughput. */
        if (v >= V_AVX) printf("  target %s", m / base <= (M == 1 ? 0.6 : 1.0 / 0.9) ? "met" : "MISSED");
        printf("\n");
        /* one machine-readable line per variant (tools/bench/run.py) */
        printf("RESULT bench=bf16 case=%s M=%lld N=%lld K=%lld variant=%s ms=%.4f gflops=%.2f\n",
               grad ? "grad" : (M == 1 ? "decode" : "forward"), (long long)M, (long long)N, (long long)K,
               v == V_SGEMM ? "sgemm" : v == V_SGEMV ? "sgemv" : v == V_AVX ? "avx512bf16" : "portable", m * 1e3,
               flop / m * 1e-9);
    }
    fflush(stdout);
    free(in);
    free(out);
}

/* Worst and mean err / S on 512 outputs of y = x W^T (M = 82). */
static void accuracy(secap_ctx *c, const weight *w, int have_avx, secap_rng *r)
{
    const int64_t M = 82, N = w->N, K = w->K;
    float *x = secap_xmalloc(sizeof(float) * (size_t)(M * K), "x"), *y = secap_xmalloc(sizeof(float) * (size_t)(M * N), "y");
    for (int64_t i = 0; i < M * K; i++) x[i] = secap_rng_normal(r);
    int64_t idx[512];
    for (int q = 0; q < 512; q++) idx[q] = (int64_t)secap_rng_below(r, (uint64_t)(M * N));
    printf("error on 512 outputs of M=%lld N=%lld K=%lld, |y - exact| / sum|x||W|:\n", (long long)M, (long long)N,
           (long long)K);
    for (int v = 0; v <= NV; v++) { /* NV: x rounded to bf16, in double (autocast) */
        if ((v == V_AVX && !have_avx) || v == V_SGEMV) continue;
        if (v < NV) run(c, v, 0, w, M, x, y);
        double worst = 0, sum = 0;
        for (int q = 0; q < 512; q++) {
            int64_t m = idx[q] / N, n = idx[q] % N;
            double ref = 0, S = 0, rb = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)x[m * K + k] * w->wf[n * K + k];
                ref += p;
                S += fabs(p);
                rb += (double)secap_bf16_to_f32(secap_f32_to_bf16(x[m * K + k])) * w->wf[n * K + k];
            }
            double e = fabs((v < NV ? y[idx[q]] : rb) - ref) / S;
            worst = e > worst ? e : worst;
            sum += e;
        }
        printf("  %-22s worst %.2e  mean %.2e\n", v < NV ? vname[v] : "x rounded to bf16", worst, sum / 512);
    }
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    int reps = 9, quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--case") && i + 1 < argc) only = argv[++i];
        else secap_fatal("bench_bf16: unknown argument %s (hint: --reps N, --quick, --case decode|forward|grad)", argv[i]);
    }
    if (reps < 1 || reps > 64) secap_fatal("bench_bf16: --reps %d outside [1, 64]", reps);
    secap_threads_init(0);
    int have_avx = secap_bf16_kernel_supported(SECAP_BF16_KERNEL_AVX512BF16);
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *p = strchr(line, ':');
                if (p) snprintf(model, sizeof model, "%s", p + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    printf("bf16 products: %s, %d threads, AVX512-BF16 %s\n", model, secap_threads(), have_avx ? "yes" : "no");
    secap_ctx *c = secap_ctx_new(64u << 20, 1024u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 5);
    int64_t Ns[2] = {4096, 11008};
    for (int i = 0; i < (quick ? 1 : 2); i++) {
        weight w = make_weight(Ns[i], 4096, &r);
        if (!only || !strcmp(only, "decode"))
            bench_case(c, "decode", 0, &w, 1, reps * 3 > 64 ? 64 : reps * 3, have_avx, &r);
        if (!only || !strcmp(only, "forward")) bench_case(c, "training forward", 0, &w, 82, reps, have_avx, &r);
        if (!only || !strcmp(only, "grad")) bench_case(c, "training input gradient", 1, &w, 82, reps, have_avx, &r);
        if (i == 0 && !only) accuracy(c, &w, have_avx, &r);
        free(w.wb);
        free(w.wf);
    }
    secap_ctx_free(c);
    return 0;
}
