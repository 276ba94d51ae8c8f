/* Sums and means over a dim, over everything, and over valid time steps. */
#include "ops_internal.h"

/* ---- over one dim: x viewed as [outer, K, inner] -> [outer, inner] ------- */

static void reduce_dim_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    int64_t outer = n->i[0], K = n->i[1], inner = n->i[2];
    float s = n->f[0];
    const float *g = n->out->grad;
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < inner; i++) dx[(o * K + k) * inner + i] += s * g[o * inner + i];
}

static secap_tensor *reduce_dim(secap_ctx *c, const char *op, secap_tensor *x, int dim, int mean)
{
    op_check_f32(x, op, "x");
    int d = op_dim(op, x, dim);
    int64_t outer = op_prod(x, 0, d), K = x->shape[d], inner = op_prod(x, d + 1, x->ndim);
    int64_t shape[SECAP_MAX_DIMS];
    for (int e = 0, k = 0; e < x->ndim; e++)
        if (e != d) shape[k++] = x->shape[e];
    secap_tensor *out = secap_op_out(c, op, x->ndim - 1, shape, 0);
    float s = mean ? 1.0f / (float)(K ? K : 1) : 1.0f;
    const float *X = secap_f32(x);
    float *Y = secap_f32(out);
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t j = 0; j < outer * inner; j++) {
        int64_t o = j / inner, i = j % inner;
        double acc = 0.0;
        for (int64_t k = 0; k < K; k++) acc += X[(o * K + k) * inner + i];
        Y[j] = (float)acc * s;
    }
    if (secap_needs_grad(c, &x, 1)) {
        secap_node *n = secap_record(c, op, reduce_dim_backward, out, &x, 1);
        n->i[0] = outer; n->i[1] = K; n->i[2] = inner; n->f[0] = s;
    }
    return out;
}

secap_tensor *secap_sum(secap_ctx *c, secap_tensor *x, int dim) { return reduce_dim(c, "sum", x, dim, 0); }
secap_tensor *secap_mean(secap_ctx *c, secap_tensor *x, int dim) { return reduce_dim(c, "mean", x, dim, 1); }

/* ---- over everything ---------------------------------------------------- */

static secap_tensor *reduce_all(secap_ctx *c, const char *op, secap_tensor *x, int mean)
{
    op_check_f32(x, op, "x");
    int64_t one = x->n;
    secap_tensor *flat = secap_reshape(c, x, 1, &one);
    secap_tensor *out = reduce_dim(c, op, flat, 0, mean);
    return out;
}

secap_tensor *secap_sum_all(secap_ctx *c, secap_tensor *x) { return reduce_all(c, "sum_all", x, 0); }
secap_tensor *secap_mean_all(secap_ctx *c, secap_tensor *x) { return reduce_all(c, "mean_all", x, 1); }

/* ---- masked mean over time: x [B, T, D], len [B] -> [B, D] --------------- */

static void masked_mean_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    const int32_t *len = n->aux;
    const float *g = n->out->grad;
#pragma omp parallel for collapse(2) if (x->n > OP_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            if (t >= len[b]) continue;
            float s = 1.0f / (float)len[b];
            for (int64_t j = 0; j < D; j++) dx[(b * T + t) * D + j] += s * g[b * D + j];
        }
}

secap_tensor *secap_masked_mean(secap_ctx *c, secap_tensor *x, const int32_t *len)
{
    const char *op = "masked_mean";
    op_check_f32(x, op, "x");
    if (x->ndim != 3) op_shape_error(op, x, NULL, "x must be [B, T, D]");
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[2];
    int32_t *lc = secap_arena_alloc(c->step, (size_t)B * sizeof(int32_t), 0, op);
    for (int64_t b = 0; b < B; b++) {
        if (len[b] < 0 || len[b] > T)
            secap_fatal("masked_mean: length %d of batch item %lld outside [0, %lld]", len[b], (long long)b, (long long)T);
        lc[b] = len[b];
    }
    int64_t shape[2] = {B, D};
    secap_tensor *out = secap_op_out(c, op, 2, shape, 0);
    const float *X = secap_f32(x);
    float *Y = secap_f32(out);
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < D; j++) {
            double s = 0.0;
            for (int64_t t = 0; t < lc[b]; t++) s += X[(b * T + t) * D + j];
            Y[b * D + j] = lc[b] ? (float)(s / lc[b]) : 0.0f;
        }
    if (secap_needs_grad(c, &x, 1)) secap_record(c, op, masked_mean_backward, out, &x, 1)->aux = lc;
    return out;
}
