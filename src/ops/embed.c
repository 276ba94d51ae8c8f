/* Embedding lookup and rotary position embedding. */
#include "ops_internal.h"

/* ---- embedding ---------------------------------------------------------- */

static void embedding_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *w = n->in[0];
    float *dw = secap_grad(c, w);
    if (!dw) return;
    int64_t D = w->shape[1], cnt = n->i[0];
    const int32_t *ids = n->aux;
    const float *g = n->out->grad;
    /* Rows may repeat, so the scatter runs serially. */
    for (int64_t r = 0; r < cnt; r++) {
        float *dst = dw + (int64_t)ids[r] * D;
        const float *src = g + r * D;
        for (int64_t j = 0; j < D; j++) dst[j] += src[j];
    }
}

static secap_tensor *embed(secap_ctx *c, secap_tensor *w, const int32_t *ids, int ndim, const int64_t *oshape)
{
    const char *op = "embedding";
    secap_check_live(w, op);
    if (w->ndim != 2) op_shape_error(op, w, NULL, "the table must be [vocab, dim]");
    int64_t V = w->shape[0], D = w->shape[1], cnt = 1;
    for (int d = 0; d < ndim - 1; d++) cnt *= oshape[d];
    int32_t *cp = secap_arena_alloc(c->step, (size_t)cnt * sizeof(int32_t), 0, op);
    for (int64_t r = 0; r < cnt; r++) {
        if (ids[r] < 0 || ids[r] >= V)
            secap_fatal("embedding: id %d at position %lld outside the table [0, %lld) "
                        "(hint: tokenizer and model vocabularies differ?)", ids[r], (long long)r, (long long)V);
        cp[r] = ids[r];
    }
    secap_tensor *out = secap_op_out(c, op, ndim, oshape, 0);
    float *Y = secap_f32(out);
#pragma omp parallel for if (cnt * D > OP_PAR_MIN)
    for (int64_t r = 0; r < cnt; r++) {
        if (w->dtype == SECAP_BF16) {
            const uint16_t *src = (const uint16_t *)w->data + (int64_t)cp[r] * D;
            for (int64_t j = 0; j < D; j++) Y[r * D + j] = secap_bf16_to_f32(src[j]);
        } else {
            memcpy(Y + r * D, secap_f32(w) + (int64_t)cp[r] * D, (size_t)D * sizeof(float));
        }
    }
    if (secap_needs_grad(c, &w, 1)) {
        secap_node *n = secap_record(c, op, embedding_backward, out, &w, 1);
        n->aux = cp; n->i[0] = cnt;
    }
    return out;
}

secap_tensor *secap_embedding(secap_ctx *c, secap_tensor *w, const int32_t *ids, int64_t n)
{
    secap_check_live(w, "embedding");
    int64_t shape[2] = {n, w->shape[1]};
    return embed(c, w, ids, 2, shape);
}

secap_tensor *secap_embedding_bt(secap_ctx *c, secap_tensor *w, const int32_t *ids, int64_t B, int64_t T)
{
    secap_check_live(w, "embedding");
    int64_t shape[3] = {B, T, w->shape[1]};
    return embed(c, w, ids, 3, shape);
}

/* ---- rotary embedding (HF rotate-half) ----------------------------------
 * For head dim d and i < d/2, with inv_i = 1 / theta^(2i/d) and angle
 * a = pos * inv_i (both float32, as HF computes them):
 *   y[i]       = x[i] cos a - x[i+d/2] sin a
 *   y[i+d/2]   = x[i+d/2] cos a + x[i] sin a
 * pos is per (row, step) [B, T] (padded batches, beams at different
 * lengths) or shared by every row [T] (stride 0).  The backward is the
 * rotation by -a. */

typedef struct {
    const int32_t *pos; /* [B, T] (stride T) or [T] (stride 0), or NULL: t */
    int64_t pstride;
    const float *inv;   /* [d/2] inverse frequencies */
} rope_args;

static void rope_apply(const float *X, float *Y, int64_t B, int64_t T, int64_t H, int64_t d, const rope_args *r,
                       float sign, int accumulate)
{
    int64_t half = d / 2, HD = H * d;
#pragma omp parallel for collapse(2) if (B * T * HD > OP_PAR_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            float p = (float)(r->pos ? r->pos[b * r->pstride + t] : t);
            for (int64_t i = 0; i < half; i++) {
                float a = p * r->inv[i], cs = cosf(a), sn = sign * sinf(a);
                for (int64_t h = 0; h < H; h++) {
                    const float *x = X + (b * T + t) * HD + h * d;
                    float *y = Y + (b * T + t) * HD + h * d;
                    float y1 = x[i] * cs - x[i + half] * sn, y2 = x[i + half] * cs + x[i] * sn;
                    if (accumulate) { y[i] += y1; y[i + half] += y2; }
                    else { y[i] = y1; y[i + half] = y2; }
                }
            }
        }
}

static void rope_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    rope_apply(n->out->grad, dx, x->shape[0], x->shape[1], n->i[0], x->shape[2] / n->i[0], n->aux, -1.0f, 1);
}

/* pos has npos entries read with row stride pstride (0: shared by rows). */
static secap_tensor *rope(secap_ctx *c, secap_tensor *x, int heads, const int32_t *pos, int64_t npos,
                          int64_t pstride, float theta)
{
    const char *op = "rope";
    op_check_f32(x, op, "x");
    if (x->ndim != 3) op_shape_error(op, x, NULL, "x must be [B, T, heads*head_dim]");
    if (heads <= 0 || x->shape[2] % heads || (x->shape[2] / heads) % 2)
        secap_fatal("rope: width %lld does not split into %d heads of even size", (long long)x->shape[2], heads);
    if (!(theta > 0.0f)) secap_fatal("rope: theta %g must be positive (hint: LLaMA uses 10000)", (double)theta);
    int64_t d = x->shape[2] / heads;
    rope_args *r = secap_arena_alloc(c->step, sizeof *r, 1, op);
    float *inv = secap_arena_alloc(c->step, (size_t)(d / 2) * sizeof(float), 0, op);
    for (int64_t i = 0; i < d / 2; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)d);
    r->inv = inv;
    if (pos) {
        int32_t *pc = secap_arena_alloc(c->step, (size_t)npos * sizeof(int32_t), 0, op);
        memcpy(pc, pos, (size_t)npos * sizeof(int32_t));
        r->pos = pc;
        r->pstride = pstride;
    }
    secap_tensor *out = secap_op_out(c, op, 3, x->shape, 0);
    rope_apply(secap_f32(x), secap_f32(out), x->shape[0], x->shape[1], heads, d, r, 1.0f, 0);
    if (secap_needs_grad(c, &x, 1)) {
        secap_node *n = secap_record(c, op, rope_backward, out, &x, 1);
        n->aux = r; n->i[0] = heads; n->f[0] = theta;
    }
    return out;
}

secap_tensor *secap_rope(secap_ctx *c, secap_tensor *x, int heads, const int32_t *pos, float theta)
{
    secap_check_live(x, "rope");
    return rope(c, x, heads, pos, x->shape[1], 0, theta);
}

secap_tensor *secap_rope_bt(secap_ctx *c, secap_tensor *x, int heads, const int32_t *pos_bt, float theta)
{
    secap_check_live(x, "rope");
    return rope(c, x, heads, pos_bt, x->shape[0] * x->shape[1], x->shape[1], theta);
}
