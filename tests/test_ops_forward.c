/* Forward values of the ops against direct double-precision formulas. */
#include "testutil.h"
#include <float.h>
#include "secap/ops.h"
#include "../src/ops/ops_internal.h"   /* op_expf */

static secap_rng g_rng;

static secap_tensor *rnd(secap_ctx *c, int ndim, const int64_t *shape, float lo, float hi)
{
    secap_tensor *t = secap_empty(c, ndim, shape);
    for (int64_t i = 0; i < t->n; i++) secap_f32(t)[i] = lo + (hi - lo) * secap_rng_uniform(&g_rng);
    return t;
}

static void expect_close(const char *what, const float *got, const double *want, int64_t n, double tol)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (e > worst) worst = e;
        if (e > tol) fail_msg("%s: element %lld is %.7g, expected %.7g", what, (long long)i, got[i], want[i]);
    }
    print_message("  %-24s max abs err %.2e\n", what, worst);
}

static void test_matmul_linear(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    secap_tensor *a = rnd(c, SECAP_SHAPE(2, 5, 7), -1, 1), *w = rnd(c, SECAP_SHAPE(3, 7), -1, 1),
                 *b = rnd(c, SECAP_SHAPE(3), -1, 1);
    secap_tensor *y = secap_linear(c, a, w, b);
    double ref[30];
    for (int r = 0; r < 10; r++)
        for (int o = 0; o < 3; o++) {
            double s = secap_f32(b)[o];
            for (int k = 0; k < 7; k++) s += (double)secap_f32(a)[r * 7 + k] * secap_f32(w)[o * 7 + k];
            ref[r * 3 + o] = s;
        }
    expect_close("linear", secap_f32(y), ref, 30, 1e-5);
    secap_tensor *m = secap_matmul(c, a, w, 0, 1);
    for (int i = 0; i < 30; i++) ref[i] -= secap_f32(b)[i % 3];
    expect_close("matmul a w^T", secap_f32(m), ref, 30, 1e-5);

    /* bf16 weight: the f32 product on the rounded values, up to the split of x
     * into two bf16 halves on the avx512bf16 kernel: |err| <= 2^-16 sum |x| |w|
     * (<= 7 here; tests/test_bf16.c checks each output against its own bound). */
    secap_tensor *wb = secap_param_bf16(c, "wb", SECAP_SHAPE(3, 7));
    secap_tensor *wr = secap_empty(c, SECAP_SHAPE(3, 7));
    for (int i = 0; i < 21; i++) {
        ((uint16_t *)wb->data)[i] = secap_f32_to_bf16(secap_f32(w)[i]);
        secap_f32(wr)[i] = secap_bf16_to_f32(((uint16_t *)wb->data)[i]);
    }
    secap_tensor *yb = secap_linear(c, a, wb, NULL), *yr = secap_linear(c, a, wr, NULL);
    double want[30];
    for (int i = 0; i < 30; i++) want[i] = secap_f32(yr)[i];
    expect_close("linear bf16 weight", secap_f32(yb), want, 30, 7 * 0x1p-16 + 1e-6);
    secap_ctx_free(c);
}

/* Attention against softmax(QK^T scale) V in double, masks included: G kv
 * heads (query head h reads kv head h / (H/G)), per-row query positions
 * qpos (NULL: Tk - Tq).  G == H goes through secap_attention (the wrapper),
 * otherwise through secap_attention_ex. */
static void check_attention_ex(secap_ctx *c, int B, int Tq, int Tk, int H, int G, int d, const int32_t *klen,
                               const int32_t *qpos, int causal, const char *what)
{
    int HD = H * d, GD = G * d, r = H / G;
    secap_tensor *q = rnd(c, SECAP_SHAPE(B, Tq, HD), -1, 1), *k = rnd(c, SECAP_SHAPE(B, Tk, GD), -1, 1),
                 *v = rnd(c, SECAP_SHAPE(B, Tk, GD), -1, 1);
    float scale = 1.0f / sqrtf((float)d);
    secap_attn_opts o = {.heads = H, .kv_heads = G, .key_len = klen, .q_pos = qpos, .causal = causal,
                         .scale = scale};
    secap_tensor *out = G == H && !qpos ? secap_attention(c, q, k, v, H, klen, causal, scale)
                                        : secap_attention_ex(c, q, k, v, &o);
    double *ref = malloc(sizeof(double) * (size_t)out->n), *sc = malloc(sizeof(double) * (size_t)Tk);
    const float *Q = secap_f32(q), *K = secap_f32(k), *V = secap_f32(v);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                double mx = -1e300, z = 0.0;
                int lim = klen ? klen[b] : Tk, p = (qpos ? qpos[b] : Tk - Tq) + i, g = h / r;
                if (causal && p + 1 < lim) lim = p + 1;
                for (int j = 0; j < lim; j++) {
                    sc[j] = 0.0;
                    for (int e = 0; e < d; e++) sc[j] += (double)Q[(b * Tq + i) * HD + h * d + e] * K[(b * Tk + j) * GD + g * d + e];
                    sc[j] *= scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j < lim; j++) z += exp(sc[j] - mx);
                for (int e = 0; e < d; e++) {
                    double acc = 0.0;
                    for (int j = 0; j < lim; j++) acc += exp(sc[j] - mx) / z * V[(b * Tk + j) * GD + g * d + e];
                    ref[(b * Tq + i) * HD + h * d + e] = acc; /* 0 when no key is visible */
                }
            }
    expect_close(what, secap_f32(out), ref, out->n, 1e-5);
    free(ref);
    free(sc);
}

static void check_attention(secap_ctx *c, int B, int Tq, int Tk, int H, int d, const int32_t *klen, int causal,
                            const char *what)
{
    check_attention_ex(c, B, Tq, Tk, H, H, d, klen, NULL, causal, what);
}

static void test_attention_values(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    int32_t klen[2] = {6, 4};
    check_attention(c, 2, 4, 6, 2, 3, klen, 0, "attention pad");
    check_attention(c, 2, 4, 6, 2, 3, klen, 1, "attention causal+pad");
    /* more queries than one block of the fused kernel (128 rows) */
    int32_t klen2[2] = {300, 170};
    check_attention(c, 2, 300, 300, 2, 8, klen2, 1, "attention 300 causal+pad");
    check_attention(c, 1, 260, 90, 1, 8, NULL, 0, "attention 260 x 90 cross");
    /* grouped-query: 6 query heads on 2 and on 1 kv heads */
    check_attention_ex(c, 2, 5, 7, 6, 2, 4, klen, NULL, 1, "gqa 6/2 causal+pad");
    check_attention_ex(c, 2, 5, 7, 6, 1, 4, NULL, NULL, 0, "gqa 6/1 (multi-query)");
    /* new queries against a cache: per-row offsets and lengths, one row
     * with no visible key (its output must be zeros) */
    int32_t klen3[3] = {9, 4, 0}, qpos3[3] = {6, 1, 0};
    check_attention_ex(c, 3, 3, 12, 4, 2, 4, klen3, qpos3, 1, "cache offset gqa causal");
    int32_t klen4[3] = {1, 12, 5}, qpos4[3] = {0, 11, 3};
    check_attention_ex(c, 3, 1, 12, 4, 4, 4, klen4, qpos4, 1, "cache decode step");
    check_attention_ex(c, 3, 140, 150, 4, 2, 8, (int32_t[]){150, 77, 140}, (int32_t[]){10, 0, 3}, 1,
                       "cache offset 140 x 150");
    /* 3 query heads per kv head at 600 x 600 exceed one stack of S (2^20
     * floats): stacks of 2 heads and 1 */
    check_attention_ex(c, 1, 600, 600, 3, 1, 4, (int32_t[]){590}, NULL, 1, "gqa 3/1 600 x 600 split stacks");
    secap_ctx_free(c);
}

static void test_conv_and_norms(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    int B = 2, Cin = 4, T = 11, Cout = 6, K = 3, G = 2, s = 2, p = 1, To = (T + 2 * p - K) / s + 1;
    secap_tensor *x = rnd(c, SECAP_SHAPE(2, 4, 11), -1, 1), *w = rnd(c, SECAP_SHAPE(6, 2, 3), -1, 1),
                 *bias = rnd(c, SECAP_SHAPE(6), -1, 1);
    secap_tensor *y = secap_conv1d(c, x, w, bias, s, p, G);
    assert_int_equal(y->shape[2], To);
    double ref[2 * 6 * 6];
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Cout; o++)
            for (int t = 0; t < To; t++) {
                int g = o / (Cout / G);
                double acc = secap_f32(bias)[o];
                for (int ci = 0; ci < Cin / G; ci++)
                    for (int kk = 0; kk < K; kk++) {
                        int i = t * s + kk - p;
                        if (i < 0 || i >= T) continue;
                        acc += (double)secap_f32(w)[(o * (Cin / G) + ci) * K + kk] *
                               secap_f32(x)[(b * Cin + g * (Cin / G) + ci) * T + i];
                    }
                ref[(b * Cout + o) * To + t] = acc;
            }
    expect_close("conv1d", secap_f32(y), ref, B * Cout * To, 1e-5);

    /* groupnorm with 2 groups over x [2, 4, 11] */
    secap_tensor *gw = rnd(c, SECAP_SHAPE(4), 0.5f, 1.5f), *gb = rnd(c, SECAP_SHAPE(4), -1, 1);
    secap_tensor *gn = secap_groupnorm(c, x, 2, gw, gb, 1e-5f);
    double gref[88];
    for (int b = 0; b < 2; b++)
        for (int g = 0; g < 2; g++) {
            double m = 0, v = 0;
            for (int j = 0; j < 22; j++) m += secap_f32(x)[(b * 4 + g * 2) * 11 + j];
            m /= 22;
            for (int j = 0; j < 22; j++) { double dd = secap_f32(x)[(b * 4 + g * 2) * 11 + j] - m; v += dd * dd; }
            v /= 22;
            for (int j = 0; j < 22; j++) {
                int ch = g * 2 + j / 11, idx = (b * 4 + g * 2) * 11 + j;
                gref[idx] = (secap_f32(x)[idx] - m) / sqrt(v + 1e-5) * secap_f32(gw)[ch] + secap_f32(gb)[ch];
            }
        }
    expect_close("groupnorm", secap_f32(gn), gref, 88, 1e-5);

    /* layernorm and rmsnorm over the last dim of x viewed [8, 11] */
    secap_tensor *lw = rnd(c, SECAP_SHAPE(11), 0.5f, 1.5f), *lb = rnd(c, SECAP_SHAPE(11), -1, 1);
    secap_tensor *ln = secap_layernorm(c, x, lw, lb, 1e-5f), *rn = secap_rmsnorm(c, x, lw, 1e-6f);
    double lref[88], rref[88];
    for (int r = 0; r < 8; r++) {
        const float *xr = secap_f32(x) + r * 11;
        double m = 0, v = 0, ms = 0;
        for (int j = 0; j < 11; j++) { m += xr[j]; ms += (double)xr[j] * xr[j]; }
        m /= 11; ms /= 11;
        for (int j = 0; j < 11; j++) v += (xr[j] - m) * (xr[j] - m);
        v /= 11;
        for (int j = 0; j < 11; j++) {
            lref[r * 11 + j] = (xr[j] - m) / sqrt(v + 1e-5) * secap_f32(lw)[j] + secap_f32(lb)[j];
            rref[r * 11 + j] = xr[j] / sqrt(ms + 1e-6) * secap_f32(lw)[j];
        }
    }
    expect_close("layernorm", secap_f32(ln), lref, 88, 1e-5);
    expect_close("rmsnorm", secap_f32(rn), rref, 88, 1e-5);
    secap_ctx_free(c);
}

static void test_pointwise_values(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    secap_tensor *x = secap_from_data(c, SECAP_SHAPE(4), (float[]){1.0f, -0.5f, 3.0f, 0.0f});
    double gelu[4] = {0.8413447460685429, -0.15426876936299344, 2.9959502, 0.0};
    expect_close("gelu (erf)", secap_f32(secap_gelu(c, x)), gelu, 4, 1e-6);
    /* dense sweep: GELU and SiLU over [-8, 8] against double libm */
    int64_t nn = 4001;
    secap_tensor *sweep = secap_empty(c, 1, &nn);
    double *gref = malloc(sizeof(double) * 4001), *sref = malloc(sizeof(double) * 4001);
    for (int i = 0; i < 4001; i++) {
        double v = -8.0 + 16.0 * i / 4000.0;
        secap_f32(sweep)[i] = (float)v;
        v = secap_f32(sweep)[i];
        gref[i] = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        sref[i] = v / (1.0 + exp(-v));
    }
    expect_close("gelu sweep [-8, 8]", secap_f32(secap_gelu(c, sweep)), gref, nn, 1e-6);
    expect_close("silu sweep [-8, 8]", secap_f32(secap_silu(c, sweep)), sref, nn, 1e-6);
    free(gref); free(sref);
    double silu[4] = {0.7310585786300049, -0.18877033, 2.857722500, 0.0};
    expect_close("silu", secap_f32(secap_silu(c, x)), silu, 4, 1e-6);
    /* log_softmax and cross-entropy of [1, -0.5, 3, 0] */
    double lse = log(exp(1.0) + exp(-0.5) + exp(3.0) + 1.0), ls[4];
    for (int i = 0; i < 4; i++) ls[i] = secap_f32(x)[i] - lse;
    expect_close("log_softmax", secap_f32(secap_log_softmax(c, x)), ls, 4, 1e-6);
    secap_tensor *l2 = secap_reshape(c, x, SECAP_SHAPE(1, 4));
    int32_t t[1] = {2};
    double ce = lse - 3.0;
    expect_close("cross_entropy", secap_f32(secap_cross_entropy(c, l2, t, -100)), &ce, 1, 1e-6);
    secap_ctx_free(c);
}

static void test_rope_matches_rotate_half(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    int T = 5, H = 2, d = 8, half = d / 2;
    secap_tensor *x = rnd(c, SECAP_SHAPE(1, 5, 16), -1, 1);
    secap_tensor *y = secap_rope(c, x, H, NULL, 10000.0f);
    double ref[80];
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *xv = secap_f32(x) + t * 16 + h * d;
            for (int i = 0; i < d; i++) {
                double inv = 1.0 / pow(10000.0, (double)(2 * (i % half)) / d), a = t * inv;
                double rot = i < half ? -xv[i + half] : xv[i - half]; /* rotate_half */
                ref[t * 16 + h * d + i] = xv[i] * cos(a) + rot * sin(a);
            }
        }
    expect_close("rope rotate-half", secap_f32(y), ref, 80, 1e-5);
    secap_ctx_free(c);
}

/* Per-row positions [B, T] against the rotate-half formula in double, and
 * secap_rope_bt with every row at the shared positions equals secap_rope. */
static void test_rope_per_row_positions(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    enum { B = 3, T = 4, H = 2, d = 8, W = H * d, half = d / 2 };
    int32_t pos[B * T] = {5, 6, 7, 8, 0, 1, 2, 2, 300, 301, 302, 303};
    secap_tensor *x = rnd(c, SECAP_SHAPE(B, T, W), -1, 1);
    secap_tensor *y = secap_rope_bt(c, x, H, pos, 10000.0f);
    double ref[B * T * W];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                const float *xv = secap_f32(x) + (b * T + t) * W + h * d;
                for (int i = 0; i < d; i++) {
                    double inv = 1.0 / pow(10000.0, (double)(2 * (i % half)) / d), a = pos[b * T + t] * inv;
                    double rot = i < half ? -xv[i + half] : xv[i - half];
                    ref[(b * T + t) * W + h * d + i] = xv[i] * cos(a) + rot * sin(a);
                }
            }
    /* float32 angles (as HF) at position ~300 are off by ~1e-6 */
    expect_close("rope per-row positions", secap_f32(y), ref, B * T * W, 2e-5);
    int32_t shared[T] = {4, 9, 10, 11}, rows[B * T];
    for (int b = 0; b < B; b++) memcpy(rows + b * T, shared, sizeof shared);
    secap_tensor *ys = secap_rope(c, x, H, shared, 10000.0f), *yb = secap_rope_bt(c, x, H, rows, 10000.0f);
    if (memcmp(secap_f32(ys), secap_f32(yb), sizeof(float) * B * T * W))
        fail_msg("rope_bt with every row at the shared positions differs from rope");
    secap_tensor *y0 = secap_rope(c, x, H, NULL, 10000.0f), *y0b = secap_rope_bt(c, x, H, NULL, 10000.0f);
    if (memcmp(secap_f32(y0), secap_f32(y0b), sizeof(float) * B * T * W))
        fail_msg("rope_bt with NULL positions differs from rope with NULL positions");
    secap_ctx_free(c);
}

static void test_weight_norm_values(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    secap_tensor *g = rnd(c, SECAP_SHAPE(1, 1, 3), 0.5f, 2), *v = rnd(c, SECAP_SHAPE(2, 2, 3), -1, 1);
    secap_tensor *w = secap_weight_norm(c, g, v, 2);
    double ref[12];
    for (int k = 0; k < 3; k++) {
        double nrm = 0;
        for (int j = 0; j < 4; j++) nrm += (double)secap_f32(v)[j * 3 + k] * secap_f32(v)[j * 3 + k];
        nrm = sqrt(nrm);
        for (int j = 0; j < 4; j++) ref[j * 3 + k] = secap_f32(g)[k] * secap_f32(v)[j * 3 + k] / nrm;
    }
    expect_close("weight_norm dim 2", secap_f32(w), ref, 12, 1e-6);
    secap_ctx_free(c);
}

/* conv1d_tm on [B, T, Cin] equals conv1d on [B, Cin, T], transposed. */
static void test_conv1d_tm_matches_conv1d(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    int cfg[3][4] = {{3, 2, 5, 7}, {10, 5, 1, 6}, {2, 2, 4, 4}}; /* K, stride, Cin, Cout */
    for (int q = 0; q < 3; q++) {
        int K = cfg[q][0], s = cfg[q][1], Cin = cfg[q][2], Cout = cfg[q][3];
        secap_tensor *x = rnd(c, SECAP_SHAPE(2, 57, Cin), -1, 1), *w = rnd(c, SECAP_SHAPE(Cout, Cin, K), -1, 1),
                     *b = rnd(c, SECAP_SHAPE(Cout), -1, 1);
        secap_tensor *tm = secap_conv1d_tm(c, x, w, b, s);
        secap_tensor *ref = secap_transpose(c, secap_conv1d(c, secap_transpose(c, x, 1, 2), w, b, s, 0, 1), 1, 2);
        assert_int_equal(tm->n, ref->n);
        double *want = malloc(sizeof(double) * (size_t)ref->n);
        for (int64_t i = 0; i < ref->n; i++) want[i] = secap_f32(ref)[i];
        expect_close("conv1d_tm vs conv1d", secap_f32(tm), want, ref->n, 1e-5);
        free(want);
    }
    secap_ctx_free(c);
}

/* conv1d against a direct sum in double where the padding is wider than the
 * input (every tap of some frames reads zeros), strides 1-3, groups. */
static void test_conv1d_wide_padding(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    int cfg[4][6] = {{1, 2, 5, 9, 12, 1}, {4, 4, 7, 3, 6, 2}, {3, 6, 2, 4, 1, 3}, {2, 4, 16, 8, 10, 1}};
    for (int q = 0; q < 4; q++) {   /* Cin, Cout, K, pad, T, stride; groups 2 when Cin and Cout allow */
        int Cin = cfg[q][0], Cout = cfg[q][1], K = cfg[q][2], p = cfg[q][3], T = cfg[q][4], s = cfg[q][5];
        int G = Cin % 2 == 0 && Cout % 2 == 0 ? 2 : 1, To = (T + 2 * p - K) / s + 1, B = 2;
        secap_tensor *x = rnd(c, SECAP_SHAPE(B, Cin, T), -1, 1), *w = rnd(c, SECAP_SHAPE(Cout, Cin / G, K), -1, 1);
        secap_tensor *y = secap_conv1d(c, x, w, NULL, s, p, G);
        assert_int_equal(y->shape[2], To);
        double *ref = calloc((size_t)(B * Cout * To), sizeof *ref);
        for (int b = 0; b < B; b++)
            for (int o = 0; o < Cout; o++)
                for (int t = 0; t < To; t++)
                    for (int ci = 0; ci < Cin / G; ci++)
                        for (int k = 0; k < K; k++) {
                            int i = t * s + k - p, g = o / (Cout / G);
                            if (i >= 0 && i < T)
                                ref[(b * Cout + o) * To + t] += (double)secap_f32(w)[(o * (Cin / G) + ci) * K + k] *
                                                                secap_f32(x)[(b * Cin + g * (Cin / G) + ci) * T + i];
                        }
        expect_close("conv1d wide padding", secap_f32(y), ref, B * Cout * To, 1e-5);
        free(ref);
    }
    secap_ctx_free(c);
}

static void test_transpose_tiled(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    secap_tensor *x = rnd(c, SECAP_SHAPE(3, 37, 45), -1, 1);
    secap_tensor *y = secap_transpose(c, x, 1, 2);
    assert_int_equal(y->shape[1], 45);
    double *ref = malloc(sizeof(double) * (size_t)x->n);
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 37; i++)
            for (int j = 0; j < 45; j++) ref[(b * 45 + j) * 37 + i] = secap_f32(x)[(b * 37 + i) * 45 + j];
    expect_close("transpose [3,37,45] 1<->2", secap_f32(y), ref, x->n, 0.0);
    free(ref);
    secap_ctx_free(c);
}

/* op_expf is defined for every float: NaN stays NaN, -inf and inputs whose
 * e^x is below FLT_MIN give at most FLT_MIN (0 for -inf), overflow gives
 * +inf, and the normal range keeps its 2e-7 relative accuracy up to FLT_MAX.  (Before the fix NaN hit an
 * undefined float->int conversion and a negative left shift, which UBSan
 * stops on, and the clamped range gave e^-inf = 1e-38, e^+inf = 2e38.) */
static void test_expf_every_input(void **st)
{
    (void)st;
    volatile float nan = NAN, inf = INFINITY;
    assert_true(isnan(op_expf(nan)));
    assert_true(isnan(op_expf(-nan)));
    assert_true(op_expf(-inf) == 0.0f);
    assert_true(op_expf(-1000.0f) == 0.0f);
    assert_true(op_expf(-FLT_MAX) == 0.0f);
    assert_true(isinf(op_expf(inf)) && op_expf(inf) > 0);
    assert_true(isinf(op_expf(89.0f)) && isinf(op_expf(FLT_MAX)));
    assert_true(op_expf(0.0f) == 1.0f);
    double worst_rel = 0, worst_sub = 0;
    for (float x = -110.0f; x < 89.0f; x += 0.0137f) {
        double want = exp((double)x);
        float got = op_expf(x);
        if (want < FLT_MIN) {          /* below the normal range: absolute error */
            double e = fabs(got - want);
            if (e > worst_sub) worst_sub = e;
            if (e > FLT_MIN) fail_msg("op_expf(%.9g) = %.9g, expected %.9g (below FLT_MIN)", x, got, want);
        } else if (want > FLT_MAX / (1 + 2.5e-7)) {   /* overflow, or the last ulps before it */
            if (!isinf(got) && fabs(got - want) / want > 2.5e-7)
                fail_msg("op_expf(%.9g) = %.9g, expected +inf", x, got);
        } else {
            double e = fabs(got - want) / want;
            if (e > worst_rel) worst_rel = e;
            if (e > 2.5e-7) fail_msg("op_expf(%.9g) = %.9g, expected %.9g (relative error %.2e)", x, got, want, e);
        }
    }
    print_message("  op_expf: max rel err %.2e (normal), max abs err %.2e (below FLT_MIN)\n", worst_rel, worst_sub);

    /* softmax with masked (-inf) entries gives exact zeros, a NaN row stays NaN */
    secap_ctx *c = secap_ctx_new(16u << 20, 64u << 20, 1);
    secap_tensor *x = secap_empty(c, SECAP_SHAPE(2, 3));
    float v[6] = {0.0f, -INFINITY, 1.0f, NAN, 0.0f, 1.0f};
    memcpy(secap_f32(x), v, sizeof v);
    secap_tensor *y = secap_softmax(c, x);
    assert_true(secap_f32(y)[1] == 0.0f);
    assert_true(fabsf(secap_f32(y)[0] + secap_f32(y)[2] - 1.0f) < 1e-6f);
    assert_true(isnan(secap_f32(y)[3]) && isnan(secap_f32(y)[4]));
    secap_ctx_free(c);
}

int main(void)
{
    secap_rng_seed(&g_rng, 2024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expf_every_input), cmocka_unit_test(test_matmul_linear),    cmocka_unit_test(test_attention_values),
        cmocka_unit_test(test_conv_and_norms),   cmocka_unit_test(test_pointwise_values),
        cmocka_unit_test(test_rope_matches_rotate_half),
        cmocka_unit_test(test_rope_per_row_positions), cmocka_unit_test(test_weight_norm_values),
        cmocka_unit_test(test_transpose_tiled),  cmocka_unit_test(test_conv1d_tm_matches_conv1d),
        cmocka_unit_test(test_conv1d_wide_padding),
    };
    return cmocka_run_group_tests_name("op values", tests, NULL, NULL);
}
