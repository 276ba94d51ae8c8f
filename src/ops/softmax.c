/* Softmax, log-softmax, log-sum-exp and cross-entropy over the last dim.
 *
 *   softmax      y = e^(x - lse)        dx = y * (g - sum(g * y))
 *   log_softmax  y = x - lse            dx = g - softmax(x) * sum(g)
 *   logsumexp    y = lse                dx = g * softmax(x)
 *   cross-entropy over valid rows r:  L = mean_r (lse_r - x_r[t_r])
 *                                     dx_r = g / count * (softmax(x_r) - onehot(t_r))
 * lse is computed with the row maximum subtracted, in double. */
#include "ops_internal.h"

static float row_lse(const float *x, int64_t D)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < D; j++) m = x[j] > m ? x[j] : m;
    if (m == -INFINITY) return m;
    double s = 0.0;
    float e[256]; /* exponentials in blocks: the exp loop vectorises */
    for (int64_t j0 = 0; j0 < D; j0 += 256) {
        int64_t len = D - j0 < 256 ? D - j0 : 256;
        for (int64_t j = 0; j < len; j++) e[j] = op_expf(x[j0 + j] - m);
        float part = 0.0f;
        for (int64_t j = 0; j < len; j++) part += e[j];
        s += part;
    }
    return m + (float)log(s);
}

enum { SM_SOFTMAX, SM_LOGSOFTMAX, SM_LSE };
static const char *sm_name[] = {"softmax", "log_softmax", "logsumexp"};

static void sm_backward(secap_ctx *c, secap_node *n)
{
    int k = (int)n->i[0];
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    const float *X = secap_f32(x), *Y = secap_f32(n->out), *g = n->out->grad;
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = X + r * D, *yr = Y + r * D, *gr = g + r * D;
        float *d = dx + r * D;
        if (k == SM_SOFTMAX) {
            double s = 0.0;
            for (int64_t j = 0; j < D; j++) s += gr[j] * yr[j];
            for (int64_t j = 0; j < D; j++) d[j] += yr[j] * (gr[j] - (float)s);
        } else if (k == SM_LOGSOFTMAX) {
            double s = 0.0;
            for (int64_t j = 0; j < D; j++) s += gr[j];
            for (int64_t j = 0; j < D; j++) d[j] += gr[j] - op_expf(yr[j]) * (float)s;
        } else {
            float lse = Y[r];
            for (int64_t j = 0; j < D; j++) d[j] += g[r] * op_expf(xr[j] - lse);
        }
    }
}

static secap_tensor *sm(secap_ctx *c, int k, secap_tensor *x)
{
    const char *op = sm_name[k];
    op_check_f32(x, op, "x");
    if (x->ndim < 1) op_shape_error(op, x, NULL, "needs at least one dim");
    int64_t D = x->shape[x->ndim - 1], R = x->n / D;
    secap_tensor *out = k == SM_LSE ? secap_op_out(c, op, x->ndim - 1, x->shape, 0)
                                    : secap_op_out(c, op, x->ndim, x->shape, 0);
    const float *X = secap_f32(x);
    float *Y = secap_f32(out);
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        float lse = row_lse(X + r * D, D);
        if (k == SM_LSE) { Y[r] = lse; continue; }
        for (int64_t j = 0; j < D; j++) {
            float v = X[r * D + j] - lse;
            Y[r * D + j] = k == SM_SOFTMAX ? op_expf(v) : v;
        }
    }
    if (secap_needs_grad(c, &x, 1)) secap_record(c, op, sm_backward, out, &x, 1)->i[0] = k;
    return out;
}

secap_tensor *secap_softmax(secap_ctx *c, secap_tensor *x) { return sm(c, SM_SOFTMAX, x); }
secap_tensor *secap_log_softmax(secap_ctx *c, secap_tensor *x) { return sm(c, SM_LOGSOFTMAX, x); }
secap_tensor *secap_logsumexp(secap_ctx *c, secap_tensor *x) { return sm(c, SM_LSE, x); }

/* ---- cross-entropy ------------------------------------------------------ */

static void ce_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    int64_t count = n->i[1];
    if (!dx || count == 0) return;
    int64_t R = x->shape[0], V = x->shape[1];
    const int32_t *t = n->aux, ign = (int32_t)n->i[0];
    const float *X = secap_f32(x), *lse = secap_f32(n->saved[0]);
    float g = n->out->grad[0] / (float)count;
#pragma omp parallel for if (x->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        if (t[r] == ign) continue;
        for (int64_t j = 0; j < V; j++) dx[r * V + j] += g * op_expf(X[r * V + j] - lse[r]);
        dx[r * V + t[r]] -= g;
    }
}

secap_tensor *secap_cross_entropy(secap_ctx *c, secap_tensor *logits, const int32_t *targets,
                                  int32_t ignore_index)
{
    const char *op = "cross_entropy";
    op_check_f32(logits, op, "logits");
    if (logits->ndim != 2) op_shape_error(op, logits, NULL, "logits must be [N, V]; reshape first");
    int64_t R = logits->shape[0], V = logits->shape[1], count = 0;
    int32_t *t = secap_arena_alloc(c->step, (size_t)R * sizeof(int32_t), 0, op);
    for (int64_t r = 0; r < R; r++) {
        t[r] = targets[r];
        if (t[r] == ignore_index) continue;
        if (t[r] < 0 || t[r] >= V)
            secap_fatal("cross_entropy: target %d at row %lld is outside [0, %lld) (hint: vocabulary size "
                        "mismatch, or padding not set to the ignore index %d)",
                        t[r], (long long)r, (long long)V, ignore_index);
        count++;
    }
    secap_tensor *lse = secap_op_out(c, op, 1, &R, 0), *out = secap_op_out(c, op, 0, NULL, 0);
    const float *X = secap_f32(logits);
    float *L = secap_f32(lse);
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) if (logits->n > OP_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        if (t[r] == ignore_index) continue;
        L[r] = row_lse(X + r * V, V);
        total += (double)L[r] - X[r * V + t[r]];
    }
    secap_f32(out)[0] = count ? (float)(total / (double)count) : 0.0f;
    if (secap_needs_grad(c, &logits, 1)) {
        secap_node *n = secap_record(c, op, ce_backward, out, &logits, 1);
        n->aux = t; n->i[0] = ignore_index; n->i[1] = count; n->saved[0] = lse;
    }
    return out;
}
