/* Fused multi-head attention.
 *
 * For one (batch b, head h), with Q [Tq, d], K, V [Tk, d] read in place from
 * the [B, T, H*d] activations (row stride H*d, so no head transpose):
 *   S = scale * Q K^T, masked to -inf (padding keys, future keys if causal)
 *   lse_i = log sum_j e^(S_ij),  P = e^(S - lse),  O = P V
 * Backward recomputes S and P from lse (the only per-row state kept), then
 *   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *   dQ = scale * dS K,  dK = scale * dS^T Q.
 * Each (b, h) is independent: one OpenMP iteration with its own Tq x Tk
 * scratch; the sgemm calls inside run single-threaded there. */
#include "ops_internal.h"

#include <omp.h>

typedef struct {
    int64_t B, Tq, Tk, H, d, HD;
    int causal;
    float scale;
    const int32_t *klen; /* [B] or NULL */
} attn_dims;

/* S = scale Q K^T with masks.  Backward (rz NULL): reads the row
 * log-sum-exp lse[Tq] and overwrites S with P = e^(S - lse).  Forward:
 * writes lse and leaves S = e^(S - m) unnormalised, with the row factors
 * 1/z in rz[Tq]; the caller scales the Tq x d output rather than the
 * Tq x Tk probabilities. */
static void attn_probs(const attn_dims *a, int64_t b, const float *Q, const float *K, float *S, float *lse,
                       float *rz)
{
    int64_t Tq = a->Tq, Tk = a->Tk, kl = a->klen ? a->klen[b] : Tk, shift = Tk - Tq;
    op_gemm(0, 1, Tq, Tk, a->d, a->scale, Q, a->HD, K, a->HD, 0.0f, S, Tk);
    for (int64_t i = 0; i < Tq; i++) {
        float *s = S + i * Tk;
        int64_t lim = kl;
        if (a->causal && i + shift + 1 < lim) lim = i + shift + 1;
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
        for (int64_t j = lim; j < Tk; j++) s[j] = 0.0f;
    }
}

static void attention_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    attn_dims a = *(attn_dims *)n->aux;
    const float *Q = secap_f32(q), *K = secap_f32(k), *V = secap_f32(v), *O = secap_f32(n->out),
                *dO = n->out->grad, *LSE = secap_f32(n->saved[0]);
    float *dQ = secap_grad(c, q), *dK = secap_grad(c, k), *dV = secap_grad(c, v);
    int64_t Tq = a.Tq, Tk = a.Tk, d = a.d, HD = a.HD;
    int nt = omp_get_max_threads();
    size_t mark = secap_arena_mark(c->step);
    float *scratch = op_scratch(c, (size_t)(2 * Tq * Tk + Tq) * (size_t)nt, "attention backward");
#pragma omp parallel for schedule(dynamic)
    for (int64_t bh = 0; bh < a.B * a.H; bh++) {
        int64_t b = bh / a.H, h = bh % a.H;
        float *P = scratch + (size_t)omp_get_thread_num() * (size_t)(2 * Tq * Tk + Tq);
        float *dP = P + Tq * Tk, *Di = dP + Tq * Tk;
        const float *Qh = Q + b * Tq * HD + h * d, *Kh = K + b * Tk * HD + h * d, *Vh = V + b * Tk * HD + h * d;
        const float *Oh = O + b * Tq * HD + h * d, *dOh = dO + b * Tq * HD + h * d;
        attn_probs(&a, b, Qh, Kh, P, (float *)LSE + bh * Tq, NULL);
        if (dV) op_gemm(1, 0, Tk, d, Tq, 1.0f, P, Tk, dOh, HD, 1.0f, dV + b * Tk * HD + h * d, HD);
        if (!dQ && !dK) continue;
        op_gemm(0, 1, Tq, Tk, d, 1.0f, dOh, HD, Vh, HD, 0.0f, dP, Tk);
        for (int64_t i = 0; i < Tq; i++) {
            double s = 0.0;
            for (int64_t j = 0; j < d; j++) s += (double)dOh[i * HD + j] * Oh[i * HD + j];
            Di[i] = (float)s;
        }
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t j = 0; j < Tk; j++) dP[i * Tk + j] = P[i * Tk + j] * (dP[i * Tk + j] - Di[i]);
        if (dQ) op_gemm(0, 0, Tq, d, Tk, a.scale, dP, Tk, Kh, HD, 1.0f, dQ + b * Tq * HD + h * d, HD);
        if (dK) op_gemm(1, 0, Tk, d, Tq, a.scale, dP, Tk, Qh, HD, 1.0f, dK + b * Tk * HD + h * d, HD);
    }
    secap_arena_rewind(c->step, mark);
}

secap_tensor *secap_attention(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *v,
                              int heads, const int32_t *key_len, int causal, float scale)
{
    const char *op = "attention";
    op_check_f32(q, op, "q");
    op_check_f32(k, op, "k");
    op_check_f32(v, op, "v");
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3)
        op_shape_error(op, q, k, "q, k, v must be [B, T, heads*head_dim]");
    if (!op_same_shape(k, v)) op_shape_error(op, k, v, "k and v must have the same shape");
    if (q->shape[0] != k->shape[0] || q->shape[2] != k->shape[2])
        op_shape_error(op, q, k, "q and k must agree in batch and width");
    if (heads <= 0 || q->shape[2] % heads)
        secap_fatal("attention: width %lld does not split into %d heads", (long long)q->shape[2], heads);
    attn_dims a = {.B = q->shape[0], .Tq = q->shape[1], .Tk = k->shape[1], .H = heads,
                   .HD = q->shape[2], .d = q->shape[2] / heads, .causal = causal, .scale = scale};
    if (key_len) {
        int32_t *kl = secap_arena_alloc(c->step, (size_t)a.B * sizeof(int32_t), 0, op);
        for (int64_t b = 0; b < a.B; b++) {
            if (key_len[b] < 0 || key_len[b] > a.Tk)
                secap_fatal("attention: key length %d for batch item %lld outside [0, %lld]",
                            key_len[b], (long long)b, (long long)a.Tk);
            kl[b] = key_len[b];
        }
        a.klen = kl;
    }
    secap_tensor *out = secap_op_out(c, op, 3, q->shape, 0);
    int64_t lshape[3] = {a.B, a.H, a.Tq};
    secap_tensor *lse = secap_op_out(c, op, 3, lshape, 0);
    const float *Q = secap_f32(q), *K = secap_f32(k), *V = secap_f32(v);
    float *O = secap_f32(out), *LSE = secap_f32(lse);
    int nt = omp_get_max_threads();
    int64_t Tq = a.Tq, Tk = a.Tk, d = a.d, HD = a.HD;
    size_t mark = secap_arena_mark(c->step);
    float *scratch = op_scratch(c, (size_t)(Tq * Tk + Tq) * (size_t)nt, op);
#pragma omp parallel for schedule(dynamic)
    for (int64_t bh = 0; bh < a.B * a.H; bh++) {
        int64_t b = bh / a.H, h = bh % a.H;
        float *P = scratch + (size_t)omp_get_thread_num() * (size_t)(Tq * Tk + Tq), *rz = P + Tq * Tk;
        float *Oh = O + b * Tq * HD + h * d;
        attn_probs(&a, b, Q + b * Tq * HD + h * d, K + b * Tk * HD + h * d, P, LSE + bh * Tq, rz);
        op_gemm(0, 0, Tq, d, Tk, 1.0f, P, Tk, V + b * Tk * HD + h * d, HD, 0.0f, Oh, HD);
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t j = 0; j < d; j++) Oh[i * HD + j] *= rz[i];
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
