/* Grouped-query / cache attention and per-row RoPE against PyTorch
 * (tests/ref_attn.py: scaled_dot_product_attention with explicit boolean
 * masks and repeat_interleave'd K, V; the Hugging Face rotate-half formula).
 *
 * For every case the fixture holds the inputs, a random output gradient
 * dout, PyTorch's float32 output and its input gradients; the C op runs on
 * the same inputs, secap_backward_from(out, dout) gives the gradients, and
 * the largest absolute difference of each tensor is printed and must stay
 * within the tolerance. */
#include "testutil.h"
#include "secap/autograd.h"
#include "secap/h5io.h"
#include "secap/ops.h"

#define FIXTURE "attn_parity.h5"
#define TOL_OUT 1e-5
#define TOL_GRAD 2e-5

typedef struct {
    float *x;
    int rank;
    int64_t dims[SECAP_H5_MAX_RANK];
} arr;

static arr get(secap_h5 *h, const char *cs, const char *what)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cs, what);
    if (!secap_h5_has(h, name))
        fail_msg("%s lacks dataset %s (hint: re-run tests/ref_attn.py build/ref)", FIXTURE, name);
    arr a;
    a.x = secap_h5_read_f32(h, name, &a.rank, a.dims);
    return a;
}

static int32_t *get_ints(secap_h5 *h, const char *cs, const char *what, int64_t n)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", cs, what);
    if (!secap_h5_has(h, name)) return NULL;
    arr a = get(h, cs, what);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)n);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)a.x[i];
    free(a.x);
    return v;
}

static double maxdiff(const float *a, const float *b, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static void check(const char *cs, const char *what, const float *got, const arr *want, int64_t n, double tol)
{
    char label[96];
    snprintf(label, sizeof label, "%s %s", cs, what);
    double d = maxdiff(got, want->x, n);
    printf("  %-32s max |diff| = %.3g (tol %.0e)\n", label, d, tol);
    if (!(d <= tol)) fail_msg("%s: max |diff| %.3g against PyTorch > %g", label, d, tol);
}

static secap_h5 *open_fixture(void)
{
    const char *path = tu_ref_path(FIXTURE);
    if (!secap_h5_is_readable(path))
        fail_msg("cannot read %s (hint: run /usr/bin/python3 tests/ref_attn.py build/ref, or tests/run.sh)", path);
    return secap_h5_open(path, 0);
}

static void attention_case(secap_h5 *h, const char *cs)
{
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    arr cfg = get(h, cs, "config"), q = get(h, cs, "q"), k = get(h, cs, "k"), v = get(h, cs, "v"),
        dout = get(h, cs, "dout"), out = get(h, cs, "out"), dq = get(h, cs, "dq"), dk = get(h, cs, "dk"),
        dv = get(h, cs, "dv");
    assert_int_equal(q.rank, 3);
    assert_int_equal(k.rank, 3);
    int64_t B = q.dims[0];
    int32_t *key_len = get_ints(h, cs, "key_len", B), *q_pos = get_ints(h, cs, "q_pos", B);
    secap_attn_opts o = {.heads = (int)cfg.x[0], .kv_heads = (int)cfg.x[1], .causal = (int)cfg.x[2],
                         .scale = cfg.x[3], .key_len = key_len, .q_pos = q_pos};
    assert_true(o.kv_heads < o.heads); /* every case shares kv heads */
    secap_tensor *tq = secap_leaf(c, 3, q.dims, q.x), *tk = secap_leaf(c, 3, k.dims, k.x),
                 *tv = secap_leaf(c, 3, v.dims, v.x);
    secap_tensor *y = secap_attention_ex(c, tq, tk, tv, &o);
    assert_int_equal(y->n, q.dims[0] * q.dims[1] * q.dims[2]);
    secap_backward_from(c, y, dout.x);
    check(cs, "out", secap_f32(y), &out, y->n, TOL_OUT);
    check(cs, "dq", tq->grad, &dq, tq->n, TOL_GRAD);
    check(cs, "dk", tk->grad, &dk, tk->n, TOL_GRAD);
    check(cs, "dv", tv->grad, &dv, tv->n, TOL_GRAD);
    free(cfg.x); free(q.x); free(k.x); free(v.x); free(dout.x); free(out.x);
    free(dq.x); free(dk.x); free(dv.x); free(key_len); free(q_pos);
    secap_ctx_free(c);
}

static void rope_case(secap_h5 *h, const char *cs)
{
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    arr cfg = get(h, cs, "config"), x = get(h, cs, "x"), dout = get(h, cs, "dout"), out = get(h, cs, "out"),
        dx = get(h, cs, "dx");
    assert_int_equal(x.rank, 3);
    int32_t *pos = get_ints(h, cs, "pos", x.dims[0] * x.dims[1]);
    assert_non_null(pos);
    secap_tensor *tx = secap_leaf(c, 3, x.dims, x.x);
    secap_tensor *y = secap_rope_bt(c, tx, (int)cfg.x[0], pos, cfg.x[1]);
    secap_backward_from(c, y, dout.x);
    check(cs, "out", secap_f32(y), &out, y->n, TOL_OUT);
    check(cs, "dx", tx->grad, &dx, tx->n, TOL_GRAD);
    free(cfg.x); free(x.x); free(dout.x); free(out.x); free(dx.x); free(pos);
    secap_ctx_free(c);
}

static void test_attention_parity(void **st)
{
    (void)st;
    secap_h5 *h = open_fixture();
    const char *cases[] = {"gqa_causal_pad", "gqa_cross_scale", "mqa", "cache_offset", "cache_decode"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) attention_case(h, cases[i]);
    secap_h5_close(h);
}

static void test_rope_parity(void **st)
{
    (void)st;
    secap_h5 *h = open_fixture();
    rope_case(h, "rope_rows");
    rope_case(h, "rope_theta5e5");
    secap_h5_close(h);
}

int main(void)
{
    secap_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_parity),
        cmocka_unit_test(test_rope_parity),
    };
    return cmocka_run_group_tests_name("attention and rope parity with PyTorch", tests, NULL, NULL);
}
