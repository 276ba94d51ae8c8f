/* Finite-difference gradient tests: one or more cases per op. */
#include "gradcheck.h"

typedef struct { int i[6]; float f[4]; const int32_t *ids, *pos; } gca;

#define BUILD(name) static secap_tensor *name(secap_ctx *c, secap_tensor **in, void *argp)
#define A ((gca *)argp)

BUILD(b_matmul) { return secap_matmul(c, in[0], in[1], A->i[0], A->i[1]); }
BUILD(b_linear) { return secap_linear(c, in[0], in[1], A->i[0] ? in[2] : NULL); }
BUILD(b_add) { return secap_add(c, in[0], in[1]); }
BUILD(b_sub) { return secap_sub(c, in[0], in[1]); }
BUILD(b_mul) { return secap_mul(c, in[0], in[1]); }
BUILD(b_div) { return secap_div(c, in[0], in[1]); }
BUILD(b_scale) { return secap_scale(c, in[0], -1.7f, 0.3f); }
BUILD(b_gelu) { return secap_gelu(c, in[0]); }
BUILD(b_silu) { return secap_silu(c, in[0]); }
BUILD(b_relu) { return secap_relu(c, in[0]); }
BUILD(b_tanh) { return secap_tanh(c, in[0]); }
BUILD(b_exp) { return secap_exp(c, in[0]); }
BUILD(b_log) { return secap_log(c, in[0]); }
BUILD(b_clamp) { return secap_clamp(c, in[0], -0.5f, 0.4f); }
BUILD(b_dropout) { return secap_dropout(c, in[0], 0.3f); }
BUILD(b_layernorm) { return secap_layernorm(c, in[0], in[1], in[2], 1e-5f); }
BUILD(b_rmsnorm) { return secap_rmsnorm(c, in[0], in[1], 1e-6f); }
BUILD(b_groupnorm) { return secap_groupnorm(c, in[0], A->i[0], in[1], in[2], 1e-5f); }
BUILD(b_l2norm) { return secap_l2norm(c, in[0], 1e-12f); }
BUILD(b_weight_norm) { return secap_weight_norm(c, in[0], in[1], A->i[0]); }
BUILD(b_softmax) { return secap_softmax(c, in[0]); }
BUILD(b_log_softmax) { return secap_log_softmax(c, in[0]); }
BUILD(b_logsumexp) { return secap_logsumexp(c, in[0]); }
BUILD(b_ce) { return secap_cross_entropy(c, in[0], A->ids, -100); }
BUILD(b_attention)
{
    return secap_attention(c, in[0], in[1], in[2], A->i[0], A->ids, A->i[1], A->f[0]);
}
BUILD(b_attention_ex)
{
    secap_attn_opts o = {.heads = A->i[0], .kv_heads = A->i[2], .key_len = A->ids, .q_pos = A->pos,
                         .causal = A->i[1], .scale = A->f[0]};
    return secap_attention_ex(c, in[0], in[1], in[2], &o);
}
/* a small decoder block: rope on q and k, GQA attention, a linear, gelu */
BUILD(b_block)
{
    secap_tensor *q = secap_rope_bt(c, in[0], 4, A->pos, 10000.0f), *k = secap_rope_bt(c, in[1], 2, A->pos, 10000.0f);
    secap_attn_opts o = {.heads = 4, .kv_heads = 2, .key_len = A->ids, .causal = 1, .scale = 0.5f};
    return secap_gelu(c, secap_linear(c, secap_attention_ex(c, q, k, in[2], &o), in[3], NULL));
}
BUILD(b_embedding) { return secap_embedding_bt(c, in[0], A->ids, A->i[0], A->i[1]); }
BUILD(b_rope) { return secap_rope(c, in[0], A->i[0], A->ids, 10000.0f); }
BUILD(b_rope_bt) { return secap_rope_bt(c, in[0], A->i[0], A->ids, A->f[0]); }
BUILD(b_conv1d)
{
    return secap_conv1d(c, in[0], in[1], A->i[3] ? in[2] : NULL, A->i[0], A->i[1], A->i[2]);
}
BUILD(b_conv1d_tm) { return secap_conv1d_tm(c, in[0], in[1], A->i[1] ? in[2] : NULL, A->i[0]); }
BUILD(b_reshape_permute)
{
    secap_tensor *r = secap_reshape(c, in[0], SECAP_SHAPE(2, 3, 2, 2));
    int perm[4] = {2, 0, 3, 1};
    return secap_transpose(c, secap_permute(c, r, perm), 0, 3);
}
BUILD(b_transpose_last) { return secap_transpose(c, in[0], -1, -2); }
BUILD(b_concat)
{
    secap_tensor *xs[3] = {in[0], in[1], in[0]};
    return secap_concat(c, xs, 3, A->i[0]);
}
BUILD(b_split)
{
    secap_tensor *parts[3];
    int64_t sizes[3] = {1, 3, 2};
    secap_split(c, in[0], 1, sizes, 3, parts);
    /* use the pieces unequally so each gets a distinct gradient */
    return secap_concat(c, (secap_tensor *[]){parts[2], secap_scale(c, parts[0], 2.0f, 0.0f)}, 2, 1);
}
BUILD(b_sum) { return secap_sum(c, in[0], A->i[0]); }
BUILD(b_mean) { return secap_mean(c, in[0], A->i[0]); }
BUILD(b_mean_all) { return secap_mean_all(c, in[0]); }
BUILD(b_masked_mean) { return secap_masked_mean(c, in[0], A->ids); }
BUILD(b_frozen_linear) { return secap_linear(c, in[0], in[1], NULL); }
BUILD(b_reuse) { return secap_mul(c, secap_tanh(c, in[0]), in[0]); }

#define T(name) static void name(void **state)

T(test_matmul)
{
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gca a = {.i = {ta, tb}};
            gc_input in[2] = {GC_IN(-1, 1, ta ? 5 : 4, ta ? 4 : 5), GC_IN(-1, 1, tb ? 3 : 5, tb ? 5 : 3)};
            gradcheck("matmul 2d", b_matmul, &a, 2, in, 1e-2f, 2e-3f);
            gc_input bt[2] = {GC_IN(-1, 1, 2, ta ? 5 : 4, ta ? 4 : 5), GC_IN(-1, 1, 2, tb ? 3 : 5, tb ? 5 : 3)};
            gradcheck("matmul batched", b_matmul, &a, 2, bt, 1e-2f, 2e-3f);
            gc_input sh[2] = {GC_IN(-1, 1, 2, 3, ta ? 5 : 4, ta ? 4 : 5), GC_IN(-1, 1, tb ? 3 : 5, tb ? 5 : 3)};
            gradcheck("matmul shared b", b_matmul, &a, 2, sh, 1e-2f, 2e-3f);
        }
}

T(test_linear)
{
    (void)state;
    gca a = {.i = {1}};
    gc_input in[3] = {GC_IN(-1, 1, 2, 3, 6), GC_IN(-1, 1, 4, 6), GC_IN(-1, 1, 4)};
    gradcheck("linear+bias", b_linear, &a, 3, in, 1e-2f, 2e-3f);
    a.i[0] = 0;
    gradcheck("linear", b_linear, &a, 2, in, 1e-2f, 2e-3f);
}

T(test_frozen_passes_gradient)
{
    (void)state;
    gc_input in[2] = {GC_IN(-1, 1, 3, 5), GC_IN(-1, 1, 4, 5)};
    in[1].frozen = 1;
    gradcheck("frozen weight", b_frozen_linear, NULL, 2, in, 1e-2f, 2e-3f);
}

T(test_broadcast_binary)
{
    (void)state;
    gc_build ops[4] = {b_add, b_sub, b_mul, b_div};
    const char *names[4] = {"add", "sub", "mul", "div"};
    for (int k = 0; k < 4; k++) {
        float lo = k == 3 ? 0.5f : -1.0f;
        gc_input s1[2] = {GC_IN(-1, 1, 2, 3, 4), GC_IN(lo, 1.5f, 4)};
        gc_input s2[2] = {GC_IN(-1, 1, 2, 3, 4), GC_IN(lo, 1.5f, 3, 1)};
        gc_input s3[2] = {GC_IN(-1, 1, 2, 1, 4), GC_IN(lo, 1.5f, 2, 3, 1)};
        gc_input s4[2] = {GC_IN(-1, 1, 3, 4), GC_IN(lo, 1.5f, 3, 4)};
        gradcheck(names[k], ops[k], NULL, 2, s1, 1e-2f, 2e-3f);
        gradcheck(names[k], ops[k], NULL, 2, s2, 1e-2f, 2e-3f);
        gradcheck(names[k], ops[k], NULL, 2, s3, 1e-2f, 2e-3f);
        gradcheck(names[k], ops[k], NULL, 2, s4, 1e-2f, 2e-3f);
    }
}

T(test_pointwise)
{
    (void)state;
    gc_input x = GC_IN(-2, 2, 3, 7);
    gradcheck("scale", b_scale, NULL, 1, &x, 1e-2f, 2e-3f);
    gradcheck("gelu", b_gelu, NULL, 1, &x, 1e-2f, 2e-3f);
    gradcheck("silu", b_silu, NULL, 1, &x, 1e-2f, 2e-3f);
    gradcheck("tanh", b_tanh, NULL, 1, &x, 1e-2f, 2e-3f);
    gradcheck("exp", b_exp, NULL, 1, &x, 1e-3f, 2e-3f);
    gradcheck("tensor used twice", b_reuse, NULL, 1, &x, 1e-2f, 2e-3f);
    gc_input pos = GC_IN(0.3f, 3, 3, 7);
    gradcheck("log", b_log, NULL, 1, &pos, 1e-3f, 2e-3f);
    gc_input kink = GC_IN(-2, 2, 3, 7);
    kink.nkinks = 1; kink.kinks[0] = 0.0f;
    gradcheck("relu", b_relu, NULL, 1, &kink, 1e-2f, 2e-3f);
    gc_input kink2 = GC_IN(-1, 1, 3, 7);
    kink2.nkinks = 2; kink2.kinks[0] = -0.5f; kink2.kinks[1] = 0.4f;
    gradcheck("clamp", b_clamp, NULL, 1, &kink2, 1e-2f, 2e-3f);
}

T(test_dropout)
{
    (void)state;
    gc_input x = GC_IN(-2, 2, 4, 9);
    gradcheck("dropout", b_dropout, NULL, 1, &x, 1e-2f, 2e-3f);
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 5);
    int64_t n = 100000;
    secap_tensor *ones = secap_scale(c, secap_zeros(c, 1, &n), 0.0f, 1.0f);
    secap_tensor *y = secap_dropout(c, ones, 0.25f);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = secap_f32(y)[i];
        if (v == 0.0f) zeros++;
        else assert_float_equal(v, 1.0f / 0.75f, 1e-6);
    }
    assert_true(llabs(zeros - n / 4) < n / 100);
    c->training = 0;
    assert_ptr_equal(secap_dropout(c, ones, 0.25f), ones);
    secap_ctx_free(c);
}

T(test_norms)
{
    (void)state;
    gc_input ln[3] = {GC_IN(-2, 2, 2, 3, 8), GC_IN(0.5f, 1.5f, 8), GC_IN(-1, 1, 8)};
    gradcheck("layernorm", b_layernorm, NULL, 3, ln, 1e-2f, 3e-3f);
    gradcheck("rmsnorm", b_rmsnorm, NULL, 2, ln, 1e-2f, 3e-3f);
    gca g = {.i = {2}};
    gc_input gn[3] = {GC_IN(-2, 2, 2, 4, 5), GC_IN(0.5f, 1.5f, 4), GC_IN(-1, 1, 4)};
    gradcheck("groupnorm 2 groups", b_groupnorm, &g, 3, gn, 1e-2f, 3e-3f);
    g.i[0] = 4;
    gradcheck("groupnorm per channel", b_groupnorm, &g, 3, gn, 1e-2f, 3e-3f);
    gc_input l2 = GC_IN(-2, 2, 3, 6);
    gradcheck("l2norm", b_l2norm, NULL, 1, &l2, 1e-2f, 3e-3f);
    gca w = {.i = {2}};
    gc_input wn[2] = {GC_IN(0.5f, 2, 1, 1, 5), GC_IN(-1, 1, 4, 3, 5)};
    gradcheck("weight_norm dim 2", b_weight_norm, &w, 2, wn, 1e-2f, 3e-3f);
    w.i[0] = 0;
    gc_input wn0[2] = {GC_IN(0.5f, 2, 4, 1, 1), GC_IN(-1, 1, 4, 3, 5)};
    gradcheck("weight_norm dim 0", b_weight_norm, &w, 2, wn0, 1e-2f, 3e-3f);
}

T(test_softmax_family)
{
    (void)state;
    gc_input x = GC_IN(-3, 3, 3, 2, 7);
    gradcheck("softmax", b_softmax, NULL, 1, &x, 1e-2f, 2e-3f);
    gradcheck("log_softmax", b_log_softmax, NULL, 1, &x, 1e-2f, 2e-3f);
    gradcheck("logsumexp", b_logsumexp, NULL, 1, &x, 1e-2f, 2e-3f);
    int32_t t[5] = {3, -100, 0, 6, 2};
    gca a = {.ids = t};
    gc_input l = GC_IN(-3, 3, 5, 7);
    gradcheck("cross_entropy ignore", b_ce, &a, 1, &l, 1e-2f, 2e-3f);
}

T(test_attention)
{
    (void)state;
    int32_t klen[2] = {5, 3};
    gca a = {.i = {2, 0}, .f = {0.5f}};
    gc_input self[3] = {GC_IN(-1, 1, 2, 5, 8), GC_IN(-1, 1, 2, 5, 8), GC_IN(-1, 1, 2, 5, 8)};
    gradcheck("attention", b_attention, &a, 3, self, 1e-2f, 3e-3f);
    a.ids = klen;
    gradcheck("attention key padding", b_attention, &a, 3, self, 1e-2f, 3e-3f);
    a.ids = NULL; a.i[1] = 1;
    gradcheck("attention causal", b_attention, &a, 3, self, 1e-2f, 3e-3f);
    gc_input cross[3] = {GC_IN(-1, 1, 2, 3, 8), GC_IN(-1, 1, 2, 6, 8), GC_IN(-1, 1, 2, 6, 8)};
    int32_t klen2[2] = {6, 0}; /* second item: every key masked -> zeros */
    a.i[1] = 0; a.ids = klen2;
    gradcheck("attention cross, empty keys", b_attention, &a, 3, cross, 1e-2f, 3e-3f);

    /* grouped-query: 4 query heads of size 4 on 2 and on 1 kv heads; the
     * shared dK, dV sum over their query heads */
    gca g = {.i = {4, 0, 2}, .f = {0.5f}};
    gc_input gqa[3] = {GC_IN(-1, 1, 2, 5, 16), GC_IN(-1, 1, 2, 6, 8), GC_IN(-1, 1, 2, 6, 8)};
    gradcheck("attention gqa 4/2", b_attention_ex, &g, 3, gqa, 1e-2f, 3e-3f);
    int32_t gl[2] = {6, 2};
    g.i[1] = 1; g.ids = gl;
    gradcheck("attention gqa 4/2 causal pad", b_attention_ex, &g, 3, gqa, 1e-2f, 3e-3f);
    gca m = {.i = {4, 1, 1}, .f = {0.5f}, .ids = gl};
    gc_input mqa[3] = {GC_IN(-1, 1, 2, 5, 16), GC_IN(-1, 1, 2, 6, 4), GC_IN(-1, 1, 2, 6, 4)};
    gradcheck("attention gqa 4/1 causal pad", b_attention_ex, &m, 3, mqa, 1e-2f, 3e-3f);
    /* 3 query heads on one kv head at 600 x 600: S of a whole group exceeds
     * a stack (2^20 floats), so stacks of 2 heads and 1 share dK, dV */
    int32_t bl[1] = {590};
    gca big = {.i = {3, 1, 1}, .f = {0.5f}, .ids = bl};
    gc_input bin[3] = {GC_IN(-1, 1, 1, 600, 6), GC_IN(-1, 1, 1, 600, 2), GC_IN(-1, 1, 1, 600, 2)};
    gradcheck("attention gqa 3/1 600 split stacks", b_attention_ex, &big, 3, bin, 1e-2f, 3e-3f);

    /* new queries against a cache [B, Tmax=8]: row 0 at positions 5..7 of
     * 8 keys, row 1 at 1..3 of 4 (its last query sees all), row 2 sees no
     * key; keys past a row's length must get exactly zero gradient */
    int32_t ck[3] = {8, 4, 0}, cp[3] = {5, 1, 0};
    gca o = {.i = {4, 1, 2}, .f = {0.5f}, .ids = ck, .pos = cp};
    gc_input cache[3] = {GC_IN(-1, 1, 3, 3, 16), GC_IN(-1, 1, 3, 8, 8), GC_IN(-1, 1, 3, 8, 8)};
    gradcheck("attention cache offset causal", b_attention_ex, &o, 3, cache, 1e-2f, 3e-3f);
    int32_t dk[3] = {3, 8, 6}, dp[3] = {2, 7, 5};
    gca s1 = {.i = {4, 1, 2}, .f = {0.5f}, .ids = dk, .pos = dp};
    gc_input step[3] = {GC_IN(-1, 1, 3, 1, 16), GC_IN(-1, 1, 3, 8, 8), GC_IN(-1, 1, 3, 8, 8)};
    gradcheck("attention cache decode step", b_attention_ex, &s1, 3, step, 1e-2f, 3e-3f);
}

/* The analytic gradients from secap_backward_from(out, dout) with a
 * non-scalar out, against finite differences of sum(out * dout). */
T(test_backward_from)
{
    (void)state;
    gc_from_dout = 1;
    gca m = {.i = {0, 1}};
    gc_input mm[2] = {GC_IN(-1, 1, 3, 4), GC_IN(-1, 1, 5, 4)};
    gradcheck("backward_from matmul", b_matmul, &m, 2, mm, 1e-2f, 2e-3f);
    int32_t ck[3] = {8, 4, 0}, cp[3] = {5, 1, 0};
    gca o = {.i = {4, 1, 2}, .f = {0.5f}, .ids = ck, .pos = cp};
    gc_input cache[3] = {GC_IN(-1, 1, 3, 3, 16), GC_IN(-1, 1, 3, 8, 8), GC_IN(-1, 1, 3, 8, 8)};
    gradcheck("backward_from cache attention", b_attention_ex, &o, 3, cache, 1e-2f, 3e-3f);
    int32_t kl[2] = {5, 3}, pbt[10] = {0, 1, 2, 3, 4, 6, 7, 8, 8, 8};
    gca bl = {.ids = kl, .pos = pbt};
    gc_input blk[4] = {GC_IN(-1, 1, 2, 5, 16), GC_IN(-1, 1, 2, 5, 8), GC_IN(-1, 1, 2, 5, 8), GC_IN(-1, 1, 6, 16)};
    gradcheck("backward_from rope+gqa+linear+gelu", b_block, &bl, 4, blk, 1e-2f, 3e-3f);
    gc_from_dout = 0;
    gradcheck("same block via backward(sum)", b_block, &bl, 4, blk, 1e-2f, 3e-3f);
}

T(test_embeddings)
{
    (void)state;
    int32_t ids[6] = {1, 4, 1, 0, 4, 4};
    gca a = {.i = {2, 3}, .ids = ids};
    gc_input w = GC_IN(-1, 1, 5, 4);
    gradcheck("embedding repeated ids", b_embedding, &a, 1, &w, 1e-2f, 2e-3f);
    int32_t pos[4] = {3, 4, 5, 6};
    gca r = {.i = {2}, .ids = pos};
    gc_input x = GC_IN(-1, 1, 2, 4, 8);
    gradcheck("rope offset positions", b_rope, &r, 1, &x, 1e-2f, 2e-3f);
    r.ids = NULL;
    gradcheck("rope", b_rope, &r, 1, &x, 1e-2f, 2e-3f);
    /* a position per row and step: rows at different offsets, a padded row
     * repeating its last position, a beam far along */
    int32_t pbt[12] = {0, 1, 2, 3, 7, 8, 9, 9, 500, 501, 502, 503};
    gca rb = {.i = {2}, .f = {10000.0f}, .ids = pbt};
    gc_input xb = GC_IN(-1, 1, 3, 4, 8);
    gradcheck("rope per-row positions", b_rope_bt, &rb, 1, &xb, 1e-2f, 2e-3f);
    rb.f[0] = 500000.0f; rb.i[0] = 1;
    gradcheck("rope per-row theta 5e5", b_rope_bt, &rb, 1, &xb, 1e-2f, 2e-3f);
}

T(test_conv1d)
{
    (void)state;
    gca a = {.i = {2, 1, 2, 1}};
    gc_input in[3] = {GC_IN(-1, 1, 2, 4, 9), GC_IN(-1, 1, 6, 2, 3), GC_IN(-1, 1, 6)};
    gradcheck("conv1d s2 p1 g2 bias", b_conv1d, &a, 3, in, 1e-2f, 3e-3f);
    gca b = {.i = {5, 0, 1, 0}};
    gc_input in2[2] = {GC_IN(-1, 1, 1, 1, 42), GC_IN(-1, 1, 3, 1, 10)};
    gradcheck("conv1d k10 s5", b_conv1d, &b, 2, in2, 1e-2f, 3e-3f);
    gca p = {.i = {1, 4, 4, 1}};
    gc_input in3[3] = {GC_IN(-1, 1, 1, 8, 7), GC_IN(-1, 1, 8, 2, 8), GC_IN(-1, 1, 8)};
    gradcheck("conv1d pos-conv like", b_conv1d, &p, 3, in3, 1e-2f, 3e-3f);
    /* time-major: K=3 s=2 (two chunks, the second partial), K=10 s=5, K=2 s=2, K=4 s=1 */
    int ks[4][2] = {{3, 2}, {10, 5}, {2, 2}, {4, 1}};
    for (int q = 0; q < 4; q++) {
        gca t = {.i = {ks[q][1], q != 2}};
        gc_input tin[3] = {GC_IN(-1, 1, 2, 23, q == 1 ? 1 : 3), GC_IN(-1, 1, 4, q == 1 ? 1 : 3, ks[q][0]),
                           GC_IN(-1, 1, 4)};
        gradcheck("conv1d_tm", b_conv1d_tm, &t, q != 2 ? 3 : 2, tin, 1e-2f, 3e-3f);
    }
}

T(test_shape_ops)
{
    (void)state;
    gc_input x = GC_IN(-1, 1, 4, 6);
    gradcheck("reshape/permute/transpose", b_reshape_permute, NULL, 1, &x, 1e-2f, 2e-3f);
    gc_input tl = GC_IN(-1, 1, 2, 5, 7);
    gradcheck("transpose last two (tiled)", b_transpose_last, NULL, 1, &tl, 1e-2f, 2e-3f);
    gca a = {.i = {1}};
    gc_input cc[2] = {GC_IN(-1, 1, 2, 3, 4), GC_IN(-1, 1, 2, 2, 4)};
    gradcheck("concat dim 1", b_concat, &a, 2, cc, 1e-2f, 2e-3f);
    a.i[0] = 2;
    gc_input cc2[2] = {GC_IN(-1, 1, 2, 3, 4), GC_IN(-1, 1, 2, 3, 1)};
    gradcheck("concat last dim", b_concat, &a, 2, cc2, 1e-2f, 2e-3f);
    gc_input sp = GC_IN(-1, 1, 3, 6);
    gradcheck("split/slice", b_split, NULL, 1, &sp, 1e-2f, 2e-3f);
}

T(test_reductions)
{
    (void)state;
    gc_input x = GC_IN(-1, 1, 2, 3, 4);
    for (int d = 0; d < 3; d++) {
        gca a = {.i = {d}};
        gradcheck("sum dim", b_sum, &a, 1, &x, 1e-2f, 2e-3f);
        gradcheck("mean dim", b_mean, &a, 1, &x, 1e-2f, 2e-3f);
    }
    gradcheck("mean_all", b_mean_all, NULL, 1, &x, 1e-2f, 2e-3f);
    int32_t len[2] = {2, 0};
    gca m = {.ids = len};
    gradcheck("masked_mean", b_masked_mean, &m, 1, &x, 1e-2f, 2e-3f);
}

int main(void)
{
    secap_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_frozen_passes_gradient),
        cmocka_unit_test(test_broadcast_binary), cmocka_unit_test(test_pointwise),
        cmocka_unit_test(test_dropout),       cmocka_unit_test(test_norms),
        cmocka_unit_test(test_softmax_family), cmocka_unit_test(test_attention),
        cmocka_unit_test(test_backward_from),
        cmocka_unit_test(test_embeddings),    cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_shape_ops),     cmocka_unit_test(test_reductions),
    };
    return cmocka_run_group_tests_name("op gradients", tests, NULL, NULL);
}
