/* Helpers shared by the op implementations in src/ops (not public). */
#ifndef SECAP_OPS_INTERNAL_H
#define SECAP_OPS_INTERNAL_H

#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* <complex.h>, pulled in by OpenBLAS headers, defines I. */
#undef I

/* A new step-arena output named after the op. */
secap_tensor *secap_op_out(secap_ctx *c, const char *op, int ndim, const int64_t *shape, int zero);
/* A header sharing x's data under a new shape (views: reshape, detach). */
secap_tensor *secap_op_view(secap_ctx *c, const char *op, const secap_tensor *x, int ndim, const int64_t *shape);

/* Live, float32 input. */
void op_check_f32(const secap_tensor *t, const char *op, const char *arg);
/* Fails with both shapes and a hint. */
_Noreturn void op_shape_error(const char *op, const secap_tensor *a, const secap_tensor *b, const char *hint);
int op_same_shape(const secap_tensor *a, const secap_tensor *b);
/* Normalises a possibly negative dim against ndim, failing with the op name. */
int op_dim(const char *op, const secap_tensor *t, int dim);
/* Product of dims [from, to). */
int64_t op_prod(const secap_tensor *t, int from, int to);

/* Transient kernel scratch from c's step arena (counted in its peak, no
 * global buffers, so contexts on different threads never share one):
 *   size_t mark = secap_arena_mark(c->step);
 *   float *buf = op_scratch(c, n, "op");  ...kernel...
 *   secap_arena_rewind(c->step, mark);
 * Allocate outputs and gradients (secap_grad) before the mark, record the
 * node after the rewind. */
static inline float *op_scratch(secap_ctx *c, size_t floats, const char *op)
{
    return (float *)secap_arena_alloc(c->step, floats * sizeof(float), 0, op);
}

/* Row-major sgemm: C[M,N] = alpha op(A) op(B) + beta C. */
static inline void op_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, const float *B, int64_t ldb,
                           float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* e^x in float, vectorisable (no libm call, no branches): Cephes' expf,
 * relative error below 2e-7 wherever e^x is a normal float.  Defined for
 * every input: NaN gives NaN; x below -87.3365 (e^x under FLT_MIN), -inf
 * included, gives 0; x above 88.7228 and +inf give +inf.  The argument is
 * clamped before the float -> int conversion (NaN too, which a plain
 * clamp lets through and whose conversion is undefined), the exponent k is
 * clamped to [-126, 127] before it is shifted into place (never negative),
 * and k = 128 (e^x in [2^127, FLT_MAX]) is one extra doubling. */
static inline float op_expf(float x)
{
    float xc = x < 88.8f ? x : 88.8f;        /* NaN -> 88.8; replaced at the end */
    xc = xc > -88.0f ? xc : -88.0f;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick (vectorises, unlike rintf) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t k = (int32_t)n;                  /* [-127, 128] */
    int32_t kc = k < 127 ? k : 127;
    kc = kc > -126 ? kc : -126;
    int32_t bits = (kc + 127) * (1 << 23);   /* 2^kc */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = k > 127 ? y * 2.0f : y;
    y = x < -87.33654f ? 0.0f : y;
    return x == x ? y : x;
}

/* Sums in float SIMD lanes over blocks of 1024, blocks added in double:
 * vectorised (OpenMP simd reductions may reassociate) and still accurate
 * for long rows. */
static inline double op_sum(const float *x, int64_t n)
{
    double s = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += 1024) {
        int64_t len = n - j0 < 1024 ? n - j0 : 1024;
        float p = 0.0f;
#pragma omp simd reduction(+ : p)
        for (int64_t j = 0; j < len; j++) p += x[j0 + j];
        s += p;
    }
    return s;
}

/* sum_j (x[j] - m)^2, blocked as op_sum. */
static inline double op_sumsq_dev(const float *x, int64_t n, float m)
{
    double s = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += 1024) {
        int64_t len = n - j0 < 1024 ? n - j0 : 1024;
        float p = 0.0f;
#pragma omp simd reduction(+ : p)
        for (int64_t j = 0; j < len; j++) p += (x[j0 + j] - m) * (x[j0 + j] - m);
        s += p;
    }
    return s;
}

/* dst[r * cols + j] = row[j] for every r < rows (a bias before a beta=1 gemm). */
void op_fill_rows(float *dst, const float *row, int64_t rows, int64_t cols);

/* dst[j] += sum_r src[r * cols + j]: column sums of a row-major matrix,
 * each thread owning a block of columns and reading rows contiguously. */
void op_colsum_add(float *dst, const float *src, int64_t rows, int64_t cols);

/* Products with a frozen bf16 weight w [N, K], read in place (bf16_gemm.c;
 * kernel chosen by secap_bf16_kernel_get, scratch from c's step arena):
 *   op_bf16_linear:     y [M, N]  = x [M, K] w^T (+ bias [N], or NULL)
 *   op_bf16_linear_dx: dx [M, K] += dy [M, N] w */
void op_bf16_linear(secap_ctx *c, const float *x, const uint16_t *w, const float *bias, float *y, int64_t M,
                    int64_t N, int64_t K);
void op_bf16_linear_dx(secap_ctx *c, const float *dy, const uint16_t *w, float *dx, int64_t M, int64_t N,
                       int64_t K);

/* Parallel loops only pay off above this many elements. */
#define OP_PAR_MIN 16384

#endif
