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
 *
 * The query heads of one kv head are stacked: the queries of hn heads
 * h0 .. h0+hn-1 form one (hn*Tq) x d matrix (row m = hh*Tq + i), so each
 * product reads K and V once per group rather than once per query head, and
 * a decoding step (Tq = 1) multiplies an r x d block instead of r vectors.
 * The stack is Q in place when hn = 1 (row stride H*d) or Tq = 1 (the heads
 * are adjacent, stride d), otherwise a copy of the (small) query rows.
 * Single rows go through sgemv (sgemm packs its operands, which costs more
 * than the product for one row).  Forward: one OpenMP iteration per (b,
 * group, stack of heads), with its own scratch.  Backward: one iteration
 * per (b, g) walking its stacks in turn, so the shared dK, dV rows have a
 * single writer (no races, no atomics).  BLAS runs single-threaded inside
 * the parallel loop. */
#include "ops_internal.h"

#include <omp.h>

typedef struct {
    int64_t B, Tq, Tk, H, G, d, QW, KW; /* QW = H*d, KW = G*d */
    int64_t hc;                         /* query heads per stack (a group's last stack may be shorter) */
    int causal;
    float scale;
    const int32_t *klen; /* [B] or NULL */
    const int32_t *qpos; /* [B] or NULL */
} attn_dims;

/* At most this many floats of S per stack (r x Tq x Tk would be unbounded). */
#define ATTN_STACK_FLOATS ((int64_t)1 << 20)

/* Absolute position of row b's first query. */
static int64_t attn_pos0(const attn_dims *a, int64_t b) { return a->qpos ? a->qpos[b] : a->Tk - a->Tq; }

/* n_b: keys [0, n_b) are all that row b's queries can see. */
static int64_t attn_keys(const attn_dims *a, int64_t b)
{
    int64_t n = a->klen ? a->klen[b] : a->Tk;
    if (a->causal && attn_pos0(a, b) + a->Tq < n) n = attn_pos0(a, b) + a->Tq;
    return n < 0 ? 0 : n;
}

/* C[M,N] = alpha A op(B) + beta C with A not transposed; one row as sgemv. */
static void attn_gemm(int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *Bm, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M != 1) { op_gemm(0, tb, M, N, K, alpha, A, lda, Bm, ldb, beta, C, ldc); return; }
    if (N == 0) return;
    if (tb) cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, Bm, (int)ldb, A, 1, beta, C, 1);
    else cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, Bm, (int)ldb, A, 1, beta, C, 1);
}

/* The stack of hn heads' query-shaped rows starting at src (query 0 of head
 * h0, row stride QW): src itself when it already is a matrix (returns the
 * row stride in *ld), else gathered into buf [hn*Tq, d]. */
static const float *attn_stack(const attn_dims *a, const float *src, int64_t hn, float *buf, int64_t *ld)
{
    if (hn == 1) { *ld = a->QW; return src; }
    if (a->Tq == 1) { *ld = a->d; return src; }
    for (int64_t hh = 0; hh < hn; hh++)
        for (int64_t i = 0; i < a->Tq; i++)
            memcpy(buf + (hh * a->Tq + i) * a->d, src + i * a->QW + hh * a->d, (size_t)a->d * sizeof(float));
    *ld = a->d;
    return buf;
}

/* Whether a stack of hn heads is Q in place (no gather / scatter). */
static int attn_inplace(const attn_dims *a, int64_t hn) { return hn == 1 || a->Tq == 1; }

/* S [M, n] (row stride n, n = attn_keys > 0) = scale Qs K^T with masks, for
 * the M = hn*Tq stacked rows (row m is query m % Tq).  Backward (rz NULL):
 * reads the row log-sum-exp lse[M] and overwrites S with P = e^(S - lse).
 * Forward: writes lse and leaves S = e^(S - max) unnormalised, with the row
 * factors 1/z in rz[M]; the caller scales the M x d output rather than the
 * M x n probabilities. */
static void attn_probs(const attn_dims *a, int64_t b, int64_t M, int64_t n, const float *Qs, int64_t ldq,
                       const float *K, float *S, float *lse, float *rz)
{
    int64_t p0 = attn_pos0(a, b);
    attn_gemm(1, M, n, a->d, a->scale, Qs, ldq, K, a->KW, 0.0f, S, n);
    for (int64_t m = 0; m < M; m++) {
        float *s = S + m * n;
        int64_t lim = n, i = m % a->Tq;
        if (a->causal && p0 + i + 1 < lim) lim = p0 + i + 1;
        if (lim < 0) lim = 0;
        if (!rz) { /* backward: P = e^(S - lse) */
            float l = lse[m];
            for (int64_t j = 0; j < lim; j++) s[j] = op_expf(s[j] - l);
        } else {   /* forward: e^(S - mx), z = its sum, lse = mx + log z */
            float mx = -INFINITY, z = 0.0f;
#pragma omp simd reduction(max : mx)
            for (int64_t j = 0; j < lim; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd reduction(+ : z)
            for (int64_t j = 0; j < lim; j++) {
                s[j] = op_expf(s[j] - mx);
                z += s[j];
            }
            rz[m] = lim ? 1.0f / z : 0.0f;
            lse[m] = lim ? mx + logf(z) : -INFINITY;
        }
        for (int64_t j = lim; j < n; j++) s[j] = 0.0f;
    }
}

/* Per-thread scratch floats: forward S, rz, stacked Q and O; backward P,
 * dP, Di, stacked Q, dO and dQ. */
static size_t attn_fwd_scratch(const attn_dims *a)
{
    int64_t M = a->hc * a->Tq;
    return (size_t)(M * a->Tk + M + 2 * M * a->d);
}

static size_t attn_bwd_scratch(const attn_dims *a)
{
    int64_t M = a->hc * a->Tq;
    return (size_t)(2 * M * a->Tk + M + 3 * M * a->d);
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
    size_t per = attn_bwd_scratch(&a), mark = secap_arena_mark(c->step);
    float *scratch = op_scratch(c, per * (size_t)nt, "attention backward");
#pragma omp parallel for schedule(dynamic)
    for (int64_t bg = 0; bg < a.B * a.G; bg++) {
        int64_t b = bg / a.G, g = bg % a.G, nk = attn_keys(&a, b);
        if (nk == 0) continue; /* no visible key: the output was zeros */
        int64_t Mx = a.hc * Tq;
        float *P = scratch + (size_t)omp_get_thread_num() * per, *dP = P + Mx * nk, *Di = dP + Mx * nk;
        float *qbuf = Di + Mx, *dobuf = qbuf + Mx * d, *dqbuf = dobuf + Mx * d;
        const float *Kg = K + b * Tk * KW + g * d, *Vg = V + b * Tk * KW + g * d;
        for (int64_t h0 = g * r; h0 < (g + 1) * r; h0 += a.hc) {
            int64_t hn = (g + 1) * r - h0 < a.hc ? (g + 1) * r - h0 : a.hc, M = hn * Tq, ldq, ldo;
            const float *Qs = attn_stack(&a, Q + b * Tq * QW + h0 * d, hn, qbuf, &ldq);
            const float *dOs = attn_stack(&a, dO + b * Tq * QW + h0 * d, hn, dobuf, &ldo);
            attn_probs(&a, b, M, nk, Qs, ldq, Kg, P, (float *)LSE + (b * a.H + h0) * Tq, NULL);
            if (dV) op_gemm(1, 0, nk, d, M, 1.0f, P, nk, dOs, ldo, 1.0f, dV + b * Tk * KW + g * d, KW);
            if (!dQ && !dK) continue;
            attn_gemm(1, M, nk, d, 1.0f, dOs, ldo, Vg, KW, 0.0f, dP, nk);
            for (int64_t m = 0; m < M; m++) {
                int64_t hh = m / Tq, i = m % Tq;
                const float *o = O + b * Tq * QW + i * QW + (h0 + hh) * d;
                const float *go = dO + b * Tq * QW + i * QW + (h0 + hh) * d;
                double s = 0.0;
                for (int64_t j = 0; j < d; j++) s += (double)go[j] * o[j];
                Di[m] = (float)s;
            }
            for (int64_t m = 0; m < M; m++)
                for (int64_t j = 0; j < nk; j++) dP[m * nk + j] = P[m * nk + j] * (dP[m * nk + j] - Di[m]);
            if (dQ) {
                float *dQh = dQ + b * Tq * QW + h0 * d;
                if (attn_inplace(&a, hn)) {
                    attn_gemm(0, M, d, nk, a.scale, dP, nk, Kg, KW, 1.0f, dQh, hn == 1 ? QW : d);
                } else {
                    op_gemm(0, 0, M, d, nk, a.scale, dP, nk, Kg, KW, 0.0f, dqbuf, d);
                    for (int64_t hh = 0; hh < hn; hh++)
                        for (int64_t i = 0; i < Tq; i++) {
                            float *dst = dQh + i * QW + hh * d;
                            const float *src = dqbuf + (hh * Tq + i) * d;
                            for (int64_t j = 0; j < d; j++) dst[j] += src[j];
                        }
                }
            }
            if (dK) op_gemm(1, 0, nk, d, M, a.scale, dP, nk, Qs, ldq, 1.0f, dK + b * Tk * KW + g * d, KW);
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
    int64_t r = a.H / a.G, Tq = a.Tq, Tk = a.Tk, QW = a.QW, KW = a.KW;
    a.hc = r;
    if (a.hc * Tq * Tk > ATTN_STACK_FLOATS) a.hc = Tq * Tk >= ATTN_STACK_FLOATS ? 1 : ATTN_STACK_FLOATS / (Tq * Tk);
    secap_tensor *out = secap_op_out(c, op, 3, q->shape, 0);
    int64_t lshape[3] = {a.B, a.H, a.Tq};
    secap_tensor *lse = secap_op_out(c, op, 3, lshape, 0);
    const float *Q = secap_f32(q), *K = secap_f32(k), *V = secap_f32(v);
    float *O = secap_f32(out), *LSE = secap_f32(lse);
    int nt = omp_get_max_threads();
    int64_t nst = (r + a.hc - 1) / a.hc; /* stacks per group */
    size_t per = attn_fwd_scratch(&a), mark = secap_arena_mark(c->step);
    float *scratch = op_scratch(c, per * (size_t)nt, op);
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < a.B * a.G * nst; t++) {
        int64_t b = t / (a.G * nst), g = t / nst % a.G, h0 = g * r + t % nst * a.hc, nk = attn_keys(&a, b);
        int64_t hn = (g + 1) * r - h0 < a.hc ? (g + 1) * r - h0 : a.hc, M = hn * Tq, Mx = a.hc * Tq, ldq;
        float *S = scratch + (size_t)omp_get_thread_num() * per, *rz = S + Mx * Tk, *qbuf = rz + Mx,
              *obuf = qbuf + Mx * d;
        float *Oh = O + b * Tq * QW + h0 * d, *lse_h = LSE + (b * a.H + h0) * Tq;
        if (nk == 0) { /* no visible key anywhere in the row */
            for (int64_t hh = 0; hh < hn; hh++)
                for (int64_t i = 0; i < Tq; i++) memset(Oh + i * QW + hh * d, 0, (size_t)d * sizeof(float));
            for (int64_t m = 0; m < M; m++) lse_h[m] = -INFINITY;
            continue;
        }
        const float *Qs = attn_stack(&a, Q + b * Tq * QW + h0 * d, hn, qbuf, &ldq);
        attn_probs(&a, b, M, nk, Qs, ldq, K + b * Tk * KW + g * d, S, lse_h, rz);
        int inpl = attn_inplace(&a, hn);
        int64_t ldo = inpl ? (hn == 1 ? QW : d) : d;
        float *Os = inpl ? Oh : obuf;
        attn_gemm(0, M, d, nk, 1.0f, S, nk, V + b * Tk * KW + g * d, KW, 0.0f, Os, ldo);
        for (int64_t m = 0; m < M; m++) {
            float *dst = inpl ? Os + m * ldo : Oh + (m % Tq) * QW + (m / Tq) * d;
            const float *src = Os + m * ldo;
            for (int64_t j = 0; j < d; j++) dst[j] = src[j] * rz[m];
        }
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
