/* Normalisations: layernorm, rmsnorm, groupnorm, L2, weight norm.
 *
 * With xhat = (x - mean) * rstd over a group of n elements and dxhat = dy * w,
 * the input gradient of a mean/variance normalisation is
 *   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
 * and of an RMS normalisation (no mean removed)
 *   dx = rstd * (dxhat - xhat * mean(dxhat * xhat)).
 * Statistics are accumulated in double so long rows lose nothing. */
#include "ops_internal.h"

/* Per row: mean and rstd (center = 1) or just rstd of the RMS (center = 0). */
static void row_stats(const float *x, int64_t n, int center, float eps, float *mean, float *rstd)
{
    float m = center ? (float)(op_sum(x, n) / (double)n) : 0.0f;
    *mean = m;
    *rstd = (float)(1.0 / sqrt(op_sumsq_dev(x, n, m) / (double)n + eps));
}

/* dx for one group; w may be NULL (weight 1) and is indexed by j / wdiv. */
static void group_dx(float *dx, const float *dy, const float *x, int64_t n, float mean, float rstd,
                     const float *w, int64_t wdiv, int center)
{
    float sd = 0.0f, sdx = 0.0f;
#pragma omp simd reduction(+ : sd, sdx)
    for (int64_t j = 0; j < n; j++) {
        float xh = (x[j] - mean) * rstd, dxh = dy[j] * (w ? w[j / wdiv] : 1.0f);
        sd += dxh; sdx += dxh * xh;
    }
    float md = center ? sd / (float)n : 0.0f, mdx = sdx / (float)n;
    for (int64_t j = 0; j < n; j++) {
        float xh = (x[j] - mean) * rstd, dxh = dy[j] * (w ? w[j / wdiv] : 1.0f);
        dx[j] += rstd * (dxh - md - xh * mdx);
    }
}

/* ---- layernorm and rmsnorm (last dim) ------------------------------------ */

static void rownorm_backward(secap_ctx *c, secap_node *n)
{
    int center = (int)n->i[0];
    secap_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    const float *X = secap_f32(x), *dy = n->out->grad, *mean = secap_f32(n->saved[0]),
                *rstd = secap_f32(n->saved[1]), *W = w ? secap_f32(w) : NULL;
    float *dx = secap_grad(c, x), *dw = w ? secap_grad(c, w) : NULL, *db = b ? secap_grad(c, b) : NULL;
    if (dx) {
#pragma omp parallel for if (x->n > OP_PAR_MIN)
        for (int64_t r = 0; r < R; r++)
            group_dx(dx + r * D, dy + r * D, X + r * D, D, mean[r], rstd[r], W, 1, center);
    }
    if (dw || db) { /* column sums over rows, blocks of columns per thread */
#pragma omp parallel for if (x->n > OP_PAR_MIN)
        for (int64_t j0 = 0; j0 < D; j0 += 256) {
            int64_t len = D - j0 < 256 ? D - j0 : 256;
            float sw[256] = {0}, sb[256] = {0};
            for (int64_t r = 0; r < R; r++) {
                const float *g = dy + r * D + j0, *xr = X + r * D + j0;
                float m = mean[r], s = rstd[r];
                for (int64_t j = 0; j < len; j++) {
                    sw[j] += g[j] * (xr[j] - m) * s;
                    sb[j] += g[j];
                }
            }
            for (int64_t j = 0; j < len; j++) {
                if (dw) dw[j0 + j] += sw[j];
                if (db) db[j0 + j] += sb[j];
            }
        }
    }
}

static secap_tensor *rownorm(secap_ctx *c, const char *op, int center, secap_tensor *x,
                             secap_tensor *w, secap_tensor *b, float eps)
{
    op_check_f32(x, op, "x");
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    if (w) { op_check_f32(w, op, "weight"); if (w->n != D) op_shape_error(op, x, w, "weight must be [last dim of x]"); }
    if (b) { op_check_f32(b, op, "bias"); if (b->n != D) op_shape_error(op, x, b, "bias must be [last dim of x]"); }
    secap_tensor *out = secap_op_out(c, op, x->ndim, x->shape, 0);
    secap_tensor *mean = secap_op_out(c, op, 1, &R, 0), *rstd = secap_op_out(c, op, 1, &R, 0);
    const float *X = secap_f32(x), *W = w ? secap_f32(w) : NULL, *B = b ? secap_f32(b) : NULL;
    float *Y = secap_f32(out), *M = secap_f32(mean), *S = secap_f32(rstd);
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        row_stats(X + r * D, D, center, eps, &M[r], &S[r]);
        for (int64_t j = 0; j < D; j++) {
            float v = (X[r * D + j] - M[r]) * S[r];
            Y[r * D + j] = v * (W ? W[j] : 1.0f) + (B ? B[j] : 0.0f);
        }
    }
    secap_tensor *in[3] = {x, w, b};
    if (secap_needs_grad(c, in, 3)) {
        secap_node *n = secap_record(c, op, rownorm_backward, out, in, 3);
        n->i[0] = center; n->saved[0] = mean; n->saved[1] = rstd;
    }
    return out;
}

secap_tensor *secap_layernorm(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *b, float eps)
{
    return rownorm(c, "layernorm", 1, x, w, b, eps);
}

secap_tensor *secap_rmsnorm(secap_ctx *c, secap_tensor *x, secap_tensor *w, float eps)
{
    return rownorm(c, "rmsnorm", 0, x, w, NULL, eps);
}

/* ---- groupnorm: x [B, C, T] ---------------------------------------------- */

static void groupnorm_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t B = x->shape[0], C = x->shape[1], T = x->shape[2], G = n->i[0], cg = C / G;
    const float *X = secap_f32(x), *dy = n->out->grad, *mean = secap_f32(n->saved[0]),
                *rstd = secap_f32(n->saved[1]), *W = w ? secap_f32(w) : NULL;
    float *dx = secap_grad(c, x), *dw = w ? secap_grad(c, w) : NULL, *db = b ? secap_grad(c, b) : NULL;
    if (dx) {
#pragma omp parallel for collapse(2) if (x->n > OP_PAR_MIN)
        for (int64_t bi = 0; bi < B; bi++)
            for (int64_t g = 0; g < G; g++) {
                int64_t off = (bi * C + g * cg) * T;
                group_dx(dx + off, dy + off, X + off, cg * T, mean[bi * G + g], rstd[bi * G + g],
                         W ? W + g * cg : NULL, T, 1);
            }
    }
    if (dw || db) {
#pragma omp parallel for if (x->n > OP_PAR_MIN)
        for (int64_t ch = 0; ch < C; ch++) {
            double sw = 0.0, sb = 0.0;
            for (int64_t bi = 0; bi < B; bi++) {
                int64_t s = bi * G + ch / cg;
                for (int64_t t = 0; t < T; t++) {
                    float g = dy[(bi * C + ch) * T + t];
                    sw += g * (X[(bi * C + ch) * T + t] - mean[s]) * rstd[s];
                    sb += g;
                }
            }
            if (dw) dw[ch] += (float)sw;
            if (db) db[ch] += (float)sb;
        }
    }
}

secap_tensor *secap_groupnorm(secap_ctx *c, secap_tensor *x, int groups, secap_tensor *w,
                              secap_tensor *b, float eps)
{
    const char *op = "groupnorm";
    op_check_f32(x, op, "x");
    if (x->ndim != 3) op_shape_error(op, x, NULL, "groupnorm takes x [B, C, T]");
    int64_t B = x->shape[0], C = x->shape[1], T = x->shape[2], G = groups;
    if (G <= 0 || C % G) secap_fatal("groupnorm: %lld channels do not split into %d groups", (long long)C, groups);
    if (w) { op_check_f32(w, op, "weight"); if (w->n != C) op_shape_error(op, x, w, "weight must be [C]"); }
    if (b) { op_check_f32(b, op, "bias"); if (b->n != C) op_shape_error(op, x, b, "bias must be [C]"); }
    int64_t ns = B * G, cg = C / G;
    secap_tensor *out = secap_op_out(c, op, 3, x->shape, 0);
    secap_tensor *mean = secap_op_out(c, op, 1, &ns, 0), *rstd = secap_op_out(c, op, 1, &ns, 0);
    const float *X = secap_f32(x), *W = w ? secap_f32(w) : NULL, *Bv = b ? secap_f32(b) : NULL;
    float *Y = secap_f32(out), *M = secap_f32(mean), *S = secap_f32(rstd);
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t s = 0; s < ns; s++) {
        int64_t off = s * cg * T; /* (bi * C + g * cg) * T */
        row_stats(X + off, cg * T, 1, eps, &M[s], &S[s]);
        for (int64_t cc = 0; cc < cg; cc++) { /* y = x * a + b per channel */
            int64_t ch = (s % G) * cg + cc;
            float a = S[s] * (W ? W[ch] : 1.0f), b0 = (Bv ? Bv[ch] : 0.0f) - M[s] * a;
            const float *xr = X + off + cc * T;
            float *yr = Y + off + cc * T;
            for (int64_t t = 0; t < T; t++) yr[t] = xr[t] * a + b0;
        }
    }
    secap_tensor *in[3] = {x, w, b};
    if (secap_needs_grad(c, in, 3)) {
        secap_node *n = secap_record(c, op, groupnorm_backward, out, in, 3);
        n->i[0] = G; n->saved[0] = mean; n->saved[1] = rstd;
    }
    return out;
}

/* ---- L2 normalisation over the last dim ---------------------------------- */

static void l2norm_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    const float *Y = secap_f32(n->out), *g = n->out->grad, *nrm = secap_f32(n->saved[0]);
    float eps = n->f[0];
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *y = Y + r * D, *gr = g + r * D;
        if (nrm[r] > eps) {
            double gy = 0.0;
            for (int64_t j = 0; j < D; j++) gy += gr[j] * y[j];
            for (int64_t j = 0; j < D; j++) dx[r * D + j] += (gr[j] - y[j] * (float)gy) / nrm[r];
        } else {
            for (int64_t j = 0; j < D; j++) dx[r * D + j] += gr[j] / eps;
        }
    }
}

secap_tensor *secap_l2norm(secap_ctx *c, secap_tensor *x, float eps)
{
    const char *op = "l2norm";
    op_check_f32(x, op, "x");
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    secap_tensor *out = secap_op_out(c, op, x->ndim, x->shape, 0), *nrm = secap_op_out(c, op, 1, &R, 0);
    const float *X = secap_f32(x);
    float *Y = secap_f32(out), *N = secap_f32(nrm);
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        double s = 0.0;
        for (int64_t j = 0; j < D; j++) s += (double)X[r * D + j] * X[r * D + j];
        N[r] = (float)sqrt(s);
        float den = N[r] > eps ? N[r] : eps;
        for (int64_t j = 0; j < D; j++) Y[r * D + j] = X[r * D + j] / den;
    }
    if (secap_needs_grad(c, &x, 1)) {
        secap_node *n = secap_record(c, op, l2norm_backward, out, &x, 1);
        n->saved[0] = nrm; n->f[0] = eps;
    }
    return out;
}

/* ---- weight normalisation: v viewed as [outer, K, inner], norm per k ----- */

static void weight_norm_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *g = n->in[0], *v = n->in[1];
    int64_t O = n->i[0], K = n->i[1], In = n->i[2];
    const float *G = secap_f32(g), *V = secap_f32(v), *dw = n->out->grad, *nrm = secap_f32(n->saved[0]);
    float *dg = secap_grad(c, g), *dv = secap_grad(c, v);
#pragma omp parallel for if (v->n > OP_PAR_MIN)
    for (int64_t k = 0; k < K; k++) {
        double s = 0.0; /* sum of dw * v over the slice */
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < In; i++) s += (double)dw[(o * K + k) * In + i] * V[(o * K + k) * In + i];
        if (dg) dg[k] += (float)(s / nrm[k]);
        if (dv) {
            float a = G[k] / nrm[k], bcoef = (float)(s / ((double)nrm[k] * nrm[k]));
            for (int64_t o = 0; o < O; o++)
                for (int64_t i = 0; i < In; i++) {
                    int64_t j = (o * K + k) * In + i;
                    dv[j] += a * (dw[j] - V[j] * bcoef);
                }
        }
    }
}

secap_tensor *secap_weight_norm(secap_ctx *c, secap_tensor *g, secap_tensor *v, int dim)
{
    const char *op = "weight_norm";
    op_check_f32(g, op, "g");
    op_check_f32(v, op, "v");
    int d = op_dim(op, v, dim);
    int64_t O = op_prod(v, 0, d), K = v->shape[d], In = op_prod(v, d + 1, v->ndim);
    if (g->n != K) op_shape_error(op, g, v, "g must hold one scale per index of v along dim");
    secap_tensor *out = secap_op_out(c, op, v->ndim, v->shape, 0), *nrm = secap_op_out(c, op, 1, &K, 0);
    const float *G = secap_f32(g), *V = secap_f32(v);
    float *W = secap_f32(out), *N = secap_f32(nrm);
    for (int64_t k = 0; k < K; k++) {
        double s = 0.0;
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < In; i++) s += (double)V[(o * K + k) * In + i] * V[(o * K + k) * In + i];
        N[k] = (float)sqrt(s);
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < In; i++) W[(o * K + k) * In + i] = G[k] * V[(o * K + k) * In + i] / N[k];
    }
    secap_tensor *in[2] = {g, v};
    if (secap_needs_grad(c, in, 2)) {
        secap_node *n = secap_record(c, op, weight_norm_backward, out, in, 2);
        n->i[0] = O; n->i[1] = K; n->i[2] = In; n->saved[0] = nrm;
    }
    return out;
}
