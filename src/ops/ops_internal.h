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

/* A reusable buffer (grows, never shrinks) for transient scratch such as a
 * bf16 weight converted to f32; slot separates concurrent users. */
float *op_scratch(int slot, size_t floats);
enum { SCRATCH_BF16_A, SCRATCH_BF16_B, SCRATCH_ATTN, SCRATCH_COL, SCRATCH_DCOL, SCRATCH_SLOTS };

/* Row-major sgemm: C[M,N] = alpha op(A) op(B) + beta C. */
static inline void op_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, const float *B, int64_t ldb,
                           float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Parallel loops only pay off above this many elements. */
#define OP_PAR_MIN 16384

#endif
