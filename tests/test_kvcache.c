/* The KV cache (secap/kvcache.h) with grouped-query, cache-offset attention
 * and per-row RoPE, as a LLaMA decoder uses them.
 *
 *   - incremental decoding through the cache, one token at a time and in
 *     random chunks (rows at different lengths and positions, padded steps
 *     filled with large garbage, rows that skip steps), equals full causal
 *     attention over each whole sequence, in two layers; the unused tail of
 *     the cache is NaN, so reading past a row's length would show;
 *   - reorder (duplicated rows, a cycle) then decode equals decoding the
 *     reordered histories from scratch;
 *   - reset, the cache surviving secap_ctx_reset, and the errors (overflow
 *     past Tmax naming layer, row, position and Tmax; shapes; indices;
 *     stale views). */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"
#include "secap/autograd.h"
#include "secap/kvcache.h"
#include "secap/ops.h"

enum { B = 4, H = 4, G = 2, D = 8, HD = H * D, GD = G * D, TM = 12, NL = 2 };
#define THETA 10000.0f

static secap_ctx *new_ctx(void) { return secap_ctx_new(64u << 20, 256u << 20, 1); }

/* Full sequences per layer: q [B, TM, HD], k, v [B, TM, GD] (before RoPE). */
typedef struct {
    float q[NL][B * TM * HD], k[NL][B * TM * GD], v[NL][B * TM * GD];
} seqs;

static void fill_rand(float *x, int64_t n, secap_rng *r)
{
    for (int64_t i = 0; i < n; i++) x[i] = 2.0f * secap_rng_uniform(r) - 1.0f;
}

static void make_seqs(seqs *s, uint64_t seed)
{
    secap_rng r;
    secap_rng_seed(&r, seed);
    for (int l = 0; l < NL; l++) {
        fill_rand(s->q[l], B * TM * HD, &r);
        fill_rand(s->k[l], B * TM * GD, &r);
        fill_rand(s->v[l], B * TM * GD, &r);
    }
}

static secap_attn_opts opts(const int32_t *key_len, const int32_t *q_pos)
{
    secap_attn_opts o = {.heads = H, .kv_heads = G, .key_len = key_len, .q_pos = q_pos, .causal = 1,
                         .scale = 1.0f / sqrtf((float)D)};
    return o;
}

/* Reference: each layer's whole padded sequences at once, RoPE at 0..TM-1,
 * causal attention with key_len = len (q_pos NULL: the Tk - Tq default). */
static void full_attention(const seqs *s, const int32_t *len, float *out /* [NL][B*TM*HD] */)
{
    secap_ctx *c = new_ctx();
    for (int l = 0; l < NL; l++) {
        secap_tensor *q = secap_from_data(c, SECAP_SHAPE(B, TM, HD), s->q[l]);
        secap_tensor *k = secap_from_data(c, SECAP_SHAPE(B, TM, GD), s->k[l]);
        secap_tensor *v = secap_from_data(c, SECAP_SHAPE(B, TM, GD), s->v[l]);
        secap_attn_opts o = opts(len, NULL);
        secap_tensor *y = secap_attention_ex(c, secap_rope(c, q, H, NULL, THETA), secap_rope(c, k, G, NULL, THETA),
                                             v, &o);
        memcpy(out + (size_t)l * B * TM * HD, secap_f32(y), sizeof(float) * B * TM * HD);
    }
    secap_ctx_free(c);
}

/* One decoding step of every layer: row b feeds its next n[b] steps of s
 * (from its current cache length); the step's padded slots hold garbage.
 * Outputs land in out[l] at the rows' absolute positions.  The step arena
 * is reset at the end, as a generation loop does. */
static void decode_step(secap_ctx *c, secap_kvcache *kc, const seqs *s, const int32_t *n, float *out,
                        secap_rng *junk)
{
    int T = 0;
    for (int b = 0; b < B; b++) T = n[b] > T ? n[b] : T;
    if (T == 0) return;
    int prev = secap_no_grad_begin(c);
    for (int l = 0; l < NL; l++) {
        const int32_t *len = secap_kvcache_len(kc, l);
        int32_t pos[B * TM], start[B];
        secap_kvcache_positions(kc, l, T, pos);
        secap_tensor *q = secap_empty(c, SECAP_SHAPE(B, T, HD)), *k = secap_empty(c, SECAP_SHAPE(B, T, GD)),
                     *v = secap_empty(c, SECAP_SHAPE(B, T, GD));
        for (int b = 0; b < B; b++) {
            start[b] = len[b];
            for (int t = 0; t < T; t++) {
                float *qd = secap_f32(q) + (b * T + t) * HD, *kd = secap_f32(k) + (b * T + t) * GD,
                      *vd = secap_f32(v) + (b * T + t) * GD;
                if (t < n[b]) {
                    int p = len[b] + t;
                    assert_int_equal(pos[b * T + t], p);
                    memcpy(qd, s->q[l] + (b * TM + p) * HD, sizeof(float) * HD);
                    memcpy(kd, s->k[l] + (b * TM + p) * GD, sizeof(float) * GD);
                    memcpy(vd, s->v[l] + (b * TM + p) * GD, sizeof(float) * GD);
                } else { /* padding: must never reach a valid output */
                    for (int e = 0; e < HD; e++) qd[e] = 1e3f * (secap_rng_uniform(junk) - 0.5f);
                    for (int e = 0; e < GD; e++) kd[e] = 1e3f * (secap_rng_uniform(junk) - 0.5f);
                    for (int e = 0; e < GD; e++) vd[e] = 1e3f * (secap_rng_uniform(junk) - 0.5f);
                }
            }
        }
        q = secap_rope_bt(c, q, H, pos, THETA);
        k = secap_rope_bt(c, k, G, pos, THETA);
        const int32_t *qpos = secap_kvcache_append(kc, l, k, v, n);
        for (int b = 0; b < B; b++) {
            assert_int_equal(qpos[b], start[b]);
            assert_int_equal(secap_kvcache_len(kc, l)[b], start[b] + n[b]);
        }
        secap_attn_opts o = opts(secap_kvcache_len(kc, l), qpos);
        secap_tensor *y = secap_attention_ex(c, q, secap_kvcache_k(c, kc, l), secap_kvcache_v(c, kc, l), &o);
        assert_false(y->requires_grad);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < n[b]; t++)
                memcpy(out + (size_t)l * B * TM * HD + (b * TM + start[b] + t) * HD,
                       secap_f32(y) + (b * T + t) * HD, sizeof(float) * HD);
    }
    secap_no_grad_end(c, prev);
    secap_ctx_reset(c);
}

/* Largest |a - b| over the valid positions (t < len[b]) of every layer. */
static double max_diff(const float *a, const float *b, const int32_t *len)
{
    double m = 0.0;
    for (int l = 0; l < NL; l++)
        for (int r = 0; r < B; r++)
            for (int64_t i = 0; i < (int64_t)len[r] * HD; i++) {
                size_t at = (size_t)l * B * TM * HD + (size_t)r * TM * HD + (size_t)i;
                double d = fabs((double)a[at] - (double)b[at]);
                if (!(d <= m)) m = d; /* NaN propagates */
            }
    return m;
}

static void check(const char *what, double d, double tol)
{
    print_message("  %-44s max |diff| = %.3g\n", what, d);
    if (!(d <= tol)) fail_msg("%s: max |diff| %.3g > %g", what, d, tol);
}

/* Every float of every layer's K and V, unused tail included, set to NaN. */
static void poison(secap_ctx *c, secap_kvcache *kc)
{
    for (int l = 0; l < NL; l++) {
        secap_tensor *k = secap_kvcache_k(c, kc, l), *v = secap_kvcache_v(c, kc, l);
        for (int64_t i = 0; i < k->n; i++) secap_f32(k)[i] = secap_f32(v)[i] = NAN;
    }
    secap_ctx_reset(c);
}

static void test_incremental_equals_full(void **st)
{
    (void)st;
    static seqs s;
    static float ref[NL * B * TM * HD], got[NL * B * TM * HD];
    make_seqs(&s, 7);
    const int32_t len[B] = {12, 7, 1, 10};
    full_attention(&s, len, ref);
    secap_ctx *c = new_ctx();
    secap_kvcache *kc = secap_kvcache_new(NL, B, 16, GD);
    secap_kvcache_dims dm = secap_kvcache_shape(kc);
    assert_int_equal(dm.layers, NL);
    assert_int_equal(dm.tmax, 16);
    assert_int_equal(dm.bytes, (size_t)NL * 2 * B * 16 * GD * sizeof(float));
    secap_rng junk, sched;
    secap_rng_seed(&junk, 3);
    secap_rng_seed(&sched, 5);
    for (int mode = 0; mode < 2; mode++) {
        secap_kvcache_reset(kc);
        poison(c, kc);
        for (int i = 0; i < NL * B * TM * HD; i++) got[i] = NAN;
        for (int steps = 0;; steps++) {
            int32_t n[B], busy = 0;
            const int32_t *cur = secap_kvcache_len(kc, 0);
            for (int b = 0; b < B; b++) {
                int rem = len[b] - cur[b];
                /* mode 0: one token per step; mode 1: chunks of 0..4, a
                 * long first chunk (prefill) for some rows */
                int want = mode == 0 ? 1 : (int)secap_rng_below(&sched, 5);
                if (mode == 1 && steps == 0 && b % 2 == 0) want = 6;
                n[b] = rem < want ? rem : want;
                busy |= rem > 0;
            }
            if (!busy) break;
            decode_step(c, kc, &s, n, got, &junk);
            assert_true(steps < 100);
        }
        for (int l = 0; l < NL; l++)
            for (int b = 0; b < B; b++) assert_int_equal(secap_kvcache_len(kc, l)[b], len[b]);
        check(mode == 0 ? "one token at a time == full causal attention"
                        : "random chunks == full causal attention", max_diff(got, ref, len), 2e-6);
    }
    secap_kvcache_free(kc);
    secap_ctx_free(c);
}

/* Feeds rows their histories, reorders, decodes more; the same as feeding
 * each row the history of its source from scratch and decoding the same
 * continuation.  hist and cont hold the per-row data of both phases. */
static void reorder_case(const int32_t *src, const char *what)
{
    static seqs hist, cont, moved;
    static float out_a[NL * B * TM * HD], out_b[NL * B * TM * HD];
    make_seqs(&hist, 11);
    make_seqs(&cont, 12);
    const int32_t hl[B] = {5, 3, 7, 4};
    secap_rng junk;
    secap_rng_seed(&junk, 9);
    secap_ctx *c = new_ctx();
    secap_kvcache *kc = secap_kvcache_new(NL, B, TM, GD);
    poison(c, kc);

    /* A: histories (in two chunks), reorder, continue */
    int32_t n1[B], n2[B];
    for (int b = 0; b < B; b++) { n1[b] = hl[b] / 2; n2[b] = hl[b] - n1[b]; }
    decode_step(c, kc, &hist, n1, out_a, &junk);
    decode_step(c, kc, &hist, n2, out_a, &junk);
    secap_kvcache_reorder(kc, src);
    int32_t L[B];
    for (int b = 0; b < B; b++) {
        L[b] = hl[src[b]];
        for (int l = 0; l < NL; l++) assert_int_equal(secap_kvcache_len(kc, l)[b], L[b]);
    }
    /* the continuation of row b sits at its positions L[b].. of `moved`:
     * history of src[b], then new tokens */
    for (int l = 0; l < NL; l++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < TM; t++) {
                const seqs *from = t < L[b] ? &hist : &cont;
                int row = t < L[b] ? src[b] : b;
                memcpy(moved.q[l] + (b * TM + t) * HD, from->q[l] + (row * TM + t) * HD, sizeof(float) * HD);
                memcpy(moved.k[l] + (b * TM + t) * GD, from->k[l] + (row * TM + t) * GD, sizeof(float) * GD);
                memcpy(moved.v[l] + (b * TM + t) * GD, from->v[l] + (row * TM + t) * GD, sizeof(float) * GD);
            }
    const int32_t steps[3][B] = {{1, 1, 1, 1}, {2, 1, 0, 3}, {1, 2, 1, 1}};
    int32_t end[B];
    for (int b = 0; b < B; b++) end[b] = L[b] + steps[0][b] + steps[1][b] + steps[2][b];
    for (int i = 0; i < 3; i++) decode_step(c, kc, &moved, steps[i], out_a, &junk);

    /* B: a fresh cache prefilled with the moved histories, same steps */
    secap_kvcache *fresh = secap_kvcache_new(NL, B, TM, GD);
    poison(c, fresh);
    decode_step(c, fresh, &moved, L, out_b, &junk);
    for (int i = 0; i < 3; i++) decode_step(c, fresh, &moved, steps[i], out_b, &junk);

    /* compare the continuation positions [L[b], end[b]) only */
    double m = 0.0;
    for (int l = 0; l < NL; l++)
        for (int b = 0; b < B; b++)
            for (int64_t i = (int64_t)L[b] * HD; i < (int64_t)end[b] * HD; i++) {
                size_t at = (size_t)l * B * TM * HD + (size_t)b * TM * HD + (size_t)i;
                double d = fabs((double)out_a[at] - (double)out_b[at]);
                if (!(d <= m)) m = d;
            }
    check(what, m, 1e-6);
    secap_kvcache_free(fresh);
    secap_kvcache_free(kc);
    secap_ctx_free(c);
}

static void test_reorder_then_decode(void **st)
{
    (void)st;
    reorder_case((const int32_t[]){2, 0, 2, 1}, "reorder {2,0,2,1} then decode == from scratch");
    reorder_case((const int32_t[]){1, 2, 0, 0}, "reorder {1,2,0,0} (cycle) then decode");
    reorder_case((const int32_t[]){0, 1, 2, 3}, "reorder identity then decode");
    reorder_case((const int32_t[]){3, 3, 3, 3}, "reorder all from row 3 then decode");
}

static void test_errors(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_kvcache *kc = secap_kvcache_new(NL, B, 8, GD);
    secap_tensor *k6 = secap_zeros(c, SECAP_SHAPE(B, 6, GD)), *k3 = secap_zeros(c, SECAP_SHAPE(B, 3, GD));
    secap_kvcache_append(kc, 1, k6, k6, NULL);
    EXPECT_FATAL(secap_kvcache_append(kc, 1, k3, k3, NULL),
                 "kvcache append: layer 1 row 0: 3 new steps at position 6 would end at 9, past Tmax 8");
    EXPECT_FATAL(secap_kvcache_append(kc, 1, k3, k3, (const int32_t[]){2, 2, 3, 0}), "layer 1 row 2");
    assert_non_null(strstr(secap_last_error(), "hint:"));
    /* refused appends leave every row as it was */
    for (int b = 0; b < B; b++) assert_int_equal(secap_kvcache_len(kc, 1)[b], 6);
    secap_kvcache_append(kc, 1, k3, k3, (const int32_t[]){2, 2, 0, 1});
    assert_int_equal(secap_kvcache_len(kc, 1)[2], 6);
    assert_int_equal(secap_kvcache_len(kc, 1)[3], 7);
    assert_int_equal(secap_kvcache_len(kc, 0)[0], 0);
    EXPECT_FATAL(secap_kvcache_append(kc, 0, k3, k3, (const int32_t[]){4, 0, 0, 0}),
                 "layer 0 row 0: 4 new steps outside [0, 3]");
    EXPECT_FATAL(secap_kvcache_append(kc, 2, k3, k3, NULL), "kvcache append: layer 2 outside [0, 2)");
    EXPECT_FATAL(secap_kvcache_append(kc, 0, secap_zeros(c, SECAP_SHAPE(B, 3, HD)), k3, NULL),
                 "k is [4, 3, 32] but the cache holds rows [4, T, 16]");
    EXPECT_FATAL(secap_kvcache_append(kc, 0, k3, secap_zeros(c, SECAP_SHAPE(B, 2, GD)), NULL),
                 "k has 3 steps but v has 2");
    EXPECT_FATAL(secap_kvcache_reorder(kc, (const int32_t[]){0, 1, 4, 0}), "src[2] = 4 outside [0, 4)");
    EXPECT_FATAL(secap_kvcache_k(c, kc, -1), "kvcache k: layer -1 outside [0, 2)");
    EXPECT_FATAL(secap_kvcache_new(2, 0, 8, GD), "every size must be positive");
    /* views go stale with the step arena; the cache itself does not */
    secap_tensor *view = secap_kvcache_k(c, kc, 1);
    secap_ctx_reset(c);
    EXPECT_FATAL(secap_gelu(c, view), "gelu: input tensor was made before its arena was reset");
    assert_int_equal(secap_kvcache_len(kc, 1)[3], 7);
    secap_kvcache_reset(kc);
    for (int l = 0; l < NL; l++)
        for (int b = 0; b < B; b++) assert_int_equal(secap_kvcache_len(kc, l)[b], 0);
    secap_kvcache_free(kc);
    secap_ctx_free(c);
}

int main(void)
{
    secap_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_incremental_equals_full),
        cmocka_unit_test(test_reorder_then_decode),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("kvcache", tests, NULL, NULL);
}
