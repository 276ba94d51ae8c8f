/* matmul and linear through OpenBLAS sgemm.
 *
 * Backward rules, for C = op(A) op(B) with dC given:
 *   C = A B      dA += dC B^T    dB += A^T dC
 *   C = A B^T    dA += dC B      dB += dC^T A
 *   C = A^T B    dA += B dC^T    dB += A dC
 *   C = A^T B^T  dA += B^T dC^T  dB += dC^T A^T
 * Each is one more sgemm with beta = 1, which accumulates.  linear with a
 * frozen bf16 weight runs both of its products on the bf16 storage
 * (bf16_gemm.c); the weight takes no gradient.  linear's forward on a
 * single row (a decoding step) calls sgemv instead of sgemm, which would pack
 * the whole weight for one row (bench_decode: see BENCHMARKS.md). */
#include "ops_internal.h"

/* ---- matmul ------------------------------------------------------------- */

typedef struct { int64_t batch, M, N, K; int ta, tb, bshared; } mm_dims;

static void mm_dims_of(const secap_tensor *a, const secap_tensor *b, int ta, int tb, mm_dims *d)
{
    const char *op = "matmul";
    if (a->ndim < 2 || b->ndim < 2) op_shape_error(op, a, b, "both operands need at least 2 dims");
    int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int64_t br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    d->M = ta ? ac : ar;
    d->K = ta ? ar : ac;
    int64_t kb = tb ? bc : br;
    d->N = tb ? br : bc;
    d->ta = ta; d->tb = tb;
    if (d->K != kb) op_shape_error(op, a, b, "inner dimensions differ; check the transpose flags");
    d->batch = op_prod(a, 0, a->ndim - 2);
    d->bshared = b->ndim == 2;
    if (!d->bshared) {
        if (b->ndim != a->ndim) op_shape_error(op, a, b, "b must be 2-D or have a's leading dims");
        for (int i = 0; i < a->ndim - 2; i++)
            if (a->shape[i] != b->shape[i]) op_shape_error(op, a, b, "batch dims differ");
    }
}

/* C[batch] = op(A[batch]) op(B[batch or shared]) (+ beta C). */
static void mm_run(const mm_dims *d, const float *A, const float *B, float *C, float beta)
{
    int64_t lda = d->ta ? d->M : d->K, ldb = d->tb ? d->K : d->N;
    if (d->bshared && !d->ta) { /* one big gemm over all leading rows */
        op_gemm(0, d->tb, d->batch * d->M, d->N, d->K, 1.0f, A, lda, B, ldb, beta, C, d->N);
        return;
    }
    int64_t sa = d->M * d->K, sb = d->bshared ? 0 : d->K * d->N, sc = d->M * d->N;
    int small = d->M * d->N * d->K < (1 << 18) && d->batch > 1;
#pragma omp parallel for if (small)
    for (int64_t i = 0; i < d->batch; i++)
        op_gemm(d->ta, d->tb, d->M, d->N, d->K, 1.0f, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, d->N);
}

static void matmul_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *a = n->in[0], *b = n->in[1];
    mm_dims d;
    mm_dims_of(a, b, (int)n->i[0], (int)n->i[1], &d);
    const float *A = secap_f32(a), *B = secap_f32(b), *dC = n->out->grad;
    float *dA = secap_grad(c, a), *dB = secap_grad(c, b);
    int64_t lda = d.ta ? d.M : d.K, ldb = d.tb ? d.K : d.N;
    int64_t sa = d.M * d.K, sb = d.bshared ? 0 : d.K * d.N, sc = d.M * d.N;
    int small = d.M * d.N * d.K < (1 << 18) && d.batch > 1;
    if (dA) {
        if (d.bshared && !d.ta) { /* dA [bM, K] += dC [bM, N] op(B)^T */
            op_gemm(0, !d.tb, d.batch * d.M, d.K, d.N, 1.0f, dC, d.N, B, ldb, 1.0f, dA, lda);
        } else {
#pragma omp parallel for if (small)
            for (int64_t i = 0; i < d.batch; i++) {
                if (!d.ta) /* dA [M,K] += dC op(B)^T */
                    op_gemm(0, !d.tb, d.M, d.K, d.N, 1.0f, dC + i * sc, d.N, B + i * sb, ldb, 1.0f, dA + i * sa, lda);
                else       /* dA [K,M] += op(B) dC^T */
                    op_gemm(d.tb, 1, d.K, d.M, d.N, 1.0f, B + i * sb, ldb, dC + i * sc, d.N, 1.0f, dA + i * sa, lda);
            }
        }
    }
    if (dB) {
        if (d.bshared && !d.ta) {
            if (!d.tb) op_gemm(1, 0, d.K, d.N, d.batch * d.M, 1.0f, A, lda, dC, d.N, 1.0f, dB, ldb);
            else       op_gemm(1, 0, d.N, d.K, d.batch * d.M, 1.0f, dC, d.N, A, lda, 1.0f, dB, ldb);
        } else {
            /* Shared B accumulates over the batch: run serially then. */
#pragma omp parallel for if (small && !d.bshared)
            for (int64_t i = 0; i < d.batch; i++) {
                if (!d.tb) /* dB [K,N] += op(A)^T dC */
                    op_gemm(!d.ta, 0, d.K, d.N, d.M, 1.0f, A + i * sa, lda, dC + i * sc, d.N, 1.0f, dB + i * sb, ldb);
                else       /* dB [N,K] += dC^T op(A) */
                    op_gemm(1, d.ta, d.N, d.K, d.M, 1.0f, dC + i * sc, d.N, A + i * sa, lda, 1.0f, dB + i * sb, ldb);
            }
        }
    }
}

secap_tensor *secap_matmul(secap_ctx *c, secap_tensor *a, secap_tensor *b, int ta, int tb)
{
    op_check_f32(a, "matmul", "a");
    op_check_f32(b, "matmul", "b");
    mm_dims d;
    mm_dims_of(a, b, ta, tb, &d);
    int64_t shape[SECAP_MAX_DIMS];
    for (int i = 0; i < a->ndim - 2; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = d.M;
    shape[a->ndim - 1] = d.N;
    secap_tensor *out = secap_op_out(c, "matmul", a->ndim, shape, 0);
    mm_run(&d, secap_f32(a), secap_f32(b), secap_f32(out), 0.0f);
    secap_tensor *in[2] = {a, b};
    if (secap_needs_grad(c, in, 2)) {
        secap_node *n = secap_record(c, "matmul", matmul_backward, out, in, 2);
        n->i[0] = ta; n->i[1] = tb;
    }
    return out;
}

/* ---- linear ------------------------------------------------------------- */

static void linear_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0], *w = n->in[1], *bias = n->nin > 2 ? n->in[2] : NULL;
    int64_t Din = w->shape[1], Dout = w->shape[0], Rows = x->n / Din;
    const float *dy = n->out->grad;
    float *dx = secap_grad(c, x), *dw = secap_grad(c, w), *db = bias ? secap_grad(c, bias) : NULL;
    if (dx && w->dtype == SECAP_BF16) op_bf16_linear_dx(c, dy, w->data, dx, Rows, Dout, Din);
    else if (dx) op_gemm(0, 0, Rows, Din, Dout, 1.0f, dy, Dout, secap_f32(w), Din, 1.0f, dx, Din);
    if (dw) op_gemm(1, 0, Dout, Din, Rows, 1.0f, dy, Dout, secap_f32(x), Din, 1.0f, dw, Din);
    if (db) op_colsum_add(db, dy, Rows, Dout);
}

secap_tensor *secap_linear(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *bias)
{
    const char *op = "linear";
    op_check_f32(x, op, "x");
    secap_check_live(w, op);
    if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
        op_shape_error(op, x, w, "x [..., in] needs weight [out, in] (PyTorch layout)");
    if (bias) {
        op_check_f32(bias, op, "bias");
        if (bias->ndim != 1 || bias->shape[0] != w->shape[0])
            op_shape_error(op, w, bias, "bias must be [out]");
    }
    int64_t Din = w->shape[1], Dout = w->shape[0], Rows = x->n / Din;
    int64_t shape[SECAP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = Dout;
    secap_tensor *out = secap_op_out(c, op, x->ndim, shape, 0);
    float *y = secap_f32(out);
    if (w->dtype == SECAP_BF16) {
        op_bf16_linear(c, secap_f32(x), w->data, bias ? secap_f32(bias) : NULL, y, Rows, Dout, Din);
    } else {
        if (bias) op_fill_rows(y, secap_f32(bias), Rows, Dout);
        if (Rows == 1)   /* one row (a decoding step): sgemm would pack all of W for it, sgemv streams W once */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)Dout, (int)Din, 1.0f, secap_f32(w), (int)Din,
                        secap_f32(x), 1, bias ? 1.0f : 0.0f, y, 1);
        else
            op_gemm(0, 1, Rows, Dout, Din, 1.0f, secap_f32(x), Din, secap_f32(w), Din, bias ? 1.0f : 0.0f, y,
                    Dout);
    }
    secap_tensor *in[3] = {x, w, bias};
    int nin = bias ? 3 : 2;
    if (secap_needs_grad(c, in, nin)) secap_record(c, op, linear_backward, out, in, nin);
    return out;
}
