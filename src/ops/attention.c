/* Fused multi-head attention, grouped-query, with per-row query positions.
 *
 * q [B, Tq, H*d]; k, v [B, Tk, G*d] with G kv heads, H = G*r: query head h
 * reads kv head g = h / r (Hugging Face repeat_kv order), read in place from
 * the activations (row strides H*d and G*d), so neither the heads nor the
 * shared K and V are ever copied.  For one (batch b, head h):
 *   query i sits at absolute position p_i = q_pos[b] + i (Tk - Tq + i
 *   without q_pos); it sees key j when j < key_len[b] and, if causal,
 *   j <= p_i.  Row b never reads a key at or past
 *   n_b = min(key_len[b], causal ? p_{Tq-1} + 1 : Tk), so S is Tq x n_b and
 *   K, V rows past n_b (a cache's unused tail) are never touched.
 *   S = scale * Q K^T, masked to -inf where a key is not visible
 *   lse_i = log sum_j e^(S_ij),  P = e^(S - lse),  O = P V
 * Backward recomputes S and P from lse (the only per-row state kept), then
 *   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *   dQ = scale * dS K,  dK = scale * dS^T Q,
 * where dK, dV of kv head g sum over its r query heads.
 * Forward: each (b, h) is one OpenMP iteration with its own Tq x Tk scratch.
 * Backward: each (b, g) is one iteration that walks its r query heads in
 * turn, so the shared dK, dV rows have a single writer (no races, no
 * atomics).  The sgemm calls inside run single-threaded there. */
#include "ops_internal.h"

#include <omp.h>

typedef struct {
    int64_t B, Tq, Tk, H, G, d, QW, KW; /* QW = H*d, KW = G*d */
    int causal;
    float scale;
    const int32_t *klen; /* [B] or NULL */
    const int32_t *qpos; /* [B] or NULL */
} attn_dims;

/* Absolute position of row b's first query. */
static int64_t attn_pos0(const attn_dims *a, int64_t b) { return a->qpos ? a->qpos[b] : a->Tk - a->Tq; }

/* n_b: keys [0, n_b) are all that row b's queries can see. */
static int64_t attn_keys(const attn_dims *a, int64_t b)
{
    int64_t n = a->klen ? a->klen[b] : a->Tk;
    if (a->causal && attn_pos0(a, b) + a->Tq < n) n = attn_pos0(a, b) + a->Tq;
    return n < 0 ? 0 : n;
}

/* S [Tq, n] (row stride n, n = attn_keys > 0) = scale Q K^T with masks.
 * Backward (rz NULL): reads the row log-sum-exp lse[Tq] and overwrites S
 * with P = e^(S - lse).  Forward: writes lse and leaves S = e^(S - m)
 * unnormalised, with the row factors 1/z in rz[Tq]; the caller scales the
 * Tq x d output rather than the Tq x n probabilities. */
static void attn_probs(const attn_dims *a, int64_t b, int64_t n, const float *Q, const float *K, float *S,
                       float *lse, float *rz)
{
    int64_t Tq = a->Tq, p0 = attn_pos0(a, b);
    op_gemm(0, 1, Tq, n, a->d, a->scale, Q, a->QW, K, a->KW, 0.0f, S, n);
    for (int64_t i = 0; i < Tq; i++) {
        float *s = S + i * n;
        int64_t lim = n;
        if (a->causal && p0 + i + 1 < lim) lim = p0 + i + 1;
        if (lim < 0) lim = 0;
        if (!rz) { /* backward: P = e^(S - lse) */
            float l = lse[i];
            for (int64_t j = 0; j < lim; j++) s[j] = op_expf(s[j] - l);
        } else {   /* forward: e^(S - m), z = its sum, lse = m + log z */
            float m = -INFINITY, z = 0.0f;
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < lim; j++) m = s[j] > m ? s[j] : m;
#pragma omp simd reduction(+ : z)
            for (int64_t j = 0; j < lim; j++) {
                s[j] = op_expf(s[j] - m);
                z += s[j];
            }
            rz[i] = lim ? 1.0f / z : 0.0f;
            lse[i] = lim ? m + logf(z) : -INFINITY;
        }
        for (int64_t j = lim; j < n; j++) s[j] = 0.0f;
    }
}

static void attention_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    attn_dims a = *(attn_dims *)n->aux;
    const float *Q = secap_f32(q), *K = secap_f32(k), *V = secap_f32(v), *O = secap_f32(n->out),
                *dO = n->out->grad, *LSE = secap_f32(n->saved[0]);
    float *dQ = secap_grad(c, q), *dK = secap_grad(c, k), *dV = secap_grad(c, v);
    int64_t Tq = a.Tq, Tk = a.Tk, d = a.d, QW = a.QW, KW = a.KW, r = a.H / a.G;
    int nt = omp_get_max_threads();
    size_t mark = secap_arena_mark(c->step);
    float *scratch = op_scratch(c, (size_t)(2 * Tq * Tk + Tq) * (size_t)nt, "attention backward");
#pragma omp parallel for schedule(dynamic)
    for (int64_t bg = 0; bg < a.B * a.G; bg++) {
        int64_t b = bg / a.G, g = bg % a.G, nk = attn_keys(&a, b);
        if (nk == 0) continue; /* no visible key: the output was zeros */
        float *P = scratch + (size_t)omp_get_thread_num() * (size_t)(2 * Tq * Tk + Tq);
        float *dP = P + Tq * nk, *Di = dP + Tq * nk;
        const float *Kg = K + b * Tk * KW + g * d, *Vg = V + b * Tk * KW + g * d;
        for (int64_t h = g * r; h < (g + 1) * r; h++) {
            const float *Qh = Q + b * Tq * QW + h * d, *Oh = O + b * Tq * QW + h * d;
            const float *dOh = dO + b * Tq * QW + h * d;
            attn_probs(&a, b, nk, Qh, Kg, P, (float *)LSE + (b * a.H + h) * Tq, NULL);
            if (dV) op_gemm(1, 0, nk, d, Tq, 1.0f, P, nk, dOh, QW, 1.0f, dV + b * Tk * KW + g * d, KW);
            if (!dQ && !dK) continue;
            op_gemm(0, 1, Tq, nk, d, 1.0f, dOh, QW, Vg, KW, 0.0f, dP, nk);
            for (int64_t i = 0; i < Tq; i++) {
                double s = 0.0;
                for (int64_t j = 0; j < d; j++) s += (double)dOh[i * QW + j] * Oh[i * QW + j];
                Di[i] = (float)s;
            }
            for (int64_t i = 0; i < Tq; i++)
                for (int64_t j = 0; j < nk; j++) dP[i * nk + j] = P[i * nk + j] * (dP[i * nk + j] - Di[i]);
            if (dQ) op_gemm(0, 0, Tq, d, nk, a.scale, dP, nk, Kg, KW, 1.0f, dQ + b * Tq * QW + h * d, QW);
            if (dK) op_gemm(1, 0, nk, d, Tq, a.scale, dP, nk, Qh, QW, 1.0f, dK + b * Tk * KW + g * d, KW);
        }
    }
    secap_arena_rewind(c->step, mark);
}

/* A copy of a per-row int array in the step arena (the node keeps it). */
static int32_t *attn_copy_rows(secap_ctx *c, const int32_t *x, int64_t B)
{
    int32_t *y = secap_arena_alloc(c->step, (size_t)B * sizeof(int32_t), 0, "attention");
    memcpy(y, x, (size_t)B * sizeof(int32_t));
    return y;
}

secap_tensor *secap_attention_ex(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *v,
                                 const secap_attn_opts *o)
{
    const char *op = "attention";
    op_check_f32(q, op, "q");
    op_check_f32(k, op, "k");
    op_check_f32(v, op, "v");
    if (!o) secap_fatal("attention: options are NULL (hint: fill a secap_attn_opts, at least heads and scale)");
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3)
        op_shape_error(op, q, k, "q must be [B, Tq, heads*head_dim], k and v [B, Tk, kv_heads*head_dim]");
    if (!op_same_shape(k, v)) op_shape_error(op, k, v, "k and v must have the same shape");
    int H = o->heads, G = o->kv_heads ? o->kv_heads : o->heads;
    if (H <= 0 || q->shape[2] % H)
        secap_fatal("attention: width %lld does not split into %d heads", (long long)q->shape[2], H);
    if (G <= 0 || H % G)
        secap_fatal("attention: %d query heads do not share %d kv heads evenly (hint: heads must be a "
                    "multiple of kv_heads; kv_heads 0 means as many as heads)", H, o->kv_heads);
    int64_t d = q->shape[2] / H;
    if (q->shape[0] != k->shape[0] || k->shape[2] != G * d)
        op_shape_error(op, q, k, G == H ? "q and k must agree in batch and width"
                                        : "q and k must agree in batch, and k's width must be kv_heads*head_dim");
    attn_dims a = {.B = q->shape[0], .Tq = q->shape[1], .Tk = k->shape[1], .H = H, .G = G, .d = d,
                   .QW = q->shape[2], .KW = k->shape[2], .causal = o->causal, .scale = o->scale};
    for (int64_t b = 0; o->key_len && b < a.B; b++)
        if (o->key_len[b] < 0 || o->key_len[b] > a.Tk)
            secap_fatal("attention: key length %d for batch item %lld outside [0, %lld]", o->key_len[b],
                        (long long)b, (long long)a.Tk);
    for (int64_t b = 0; o->q_pos && b < a.B; b++)
        if (o->q_pos[b] < 0)
            secap_fatal("attention: query position %d for batch item %lld is negative (hint: q_pos[b] is the "
                        "absolute position of row b's first query, e.g. its cache length before this step)",
                        o->q_pos[b], (long long)b);
    if (o->key_len) a.klen = attn_copy_rows(c, o->key_len, a.B);
    if (o->q_pos) a.qpos = attn_copy_rows(c, o->q_pos, a.B);
    secap_tensor *out = secap_op_out(c, op, 3, q->shape, 0);
    int64_t lshape[3] = {a.B, a.H, a.Tq};
    secap_tensor *lse = secap_op_out(c, op, 3, lshape, 0);
    const float *Q = secap_f32(q), *K = secap_f32(k), *V = secap_f32(v);
    float *O = secap_f32(out), *LSE = secap_f32(lse);
    int nt = omp_get_max_threads();
    int64_t Tq = a.Tq, Tk = a.Tk, QW = a.QW, KW = a.KW, r = a.H / a.G;
    size_t mark = secap_arena_mark(c->step);
    float *scratch = op_scratch(c, (size_t)(Tq * Tk + Tq) * (size_t)nt, op);
#pragma omp parallel for schedule(dynamic)
    for (int64_t bh = 0; bh < a.B * a.H; bh++) {
        int64_t b = bh / a.H, h = bh % a.H, g = h / r, nk = attn_keys(&a, b);
        float *P = scratch + (size_t)omp_get_thread_num() * (size_t)(Tq * Tk + Tq), *rz = P + Tq * Tk;
        float *Oh = O + b * Tq * QW + h * d;
        if (nk == 0) { /* no visible key anywhere in the row */
            for (int64_t i = 0; i < Tq; i++) {
                memset(Oh + i * QW, 0, (size_t)d * sizeof(float));
                LSE[bh * Tq + i] = -INFINITY;
            }
            continue;
        }
        attn_probs(&a, b, nk, Q + b * Tq * QW + h * d, K + b * Tk * KW + g * d, P, LSE + bh * Tq, rz);
        op_gemm(0, 0, Tq, d, nk, 1.0f, P, nk, V + b * Tk * KW + g * d, KW, 0.0f, Oh, QW);
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t j = 0; j < d; j++) Oh[i * QW + j] *= rz[i];
    }
    secap_arena_rewind(c->step, mark);
    secap_tensor *in[3] = {q, k, v};
    if (secap_needs_grad(c, in, 3)) {
        secap_node *n = secap_record(c, op, attention_backward, out, in, 3);
        attn_dims *saved = secap_arena_alloc(c->step, sizeof *saved, 0, op);
        *saved = a;
        n->aux = saved;
        n->saved[0] = lse;
    }
    return out;
}

secap_tensor *secap_attention(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *v,
                              int heads, const int32_t *key_len, int causal, float scale)
{
    secap_attn_opts o = {.heads = heads, .kv_heads = heads, .key_len = key_len, .causal = causal, .scale = scale};
    return secap_attention_ex(c, q, k, v, &o);
}
