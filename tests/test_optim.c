/* AdamW against a hand-computed update, clipping, schedules, accumulation,
 * and two small models trained to a stated loss. */
#include "testutil.h"
#include "secap/autograd.h"
#include "secap/ops.h"
#include "secap/optim.h"

static void test_adamw_hand_computed(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(16u << 20, 16u << 20, 1);
    secap_tensor *p = secap_param(c, "p", SECAP_SHAPE(2), 1);
    secap_f32(p)[0] = 1.0f; secap_f32(p)[1] = -2.0f;
    secap_adamw *o = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    secap_adamw_add(o, c, p, secap_adamw_group(o, 1.0f, 0.1f));
    /* Step 1, g = (0.5, -1): m = 0.1g, v = 0.001g^2, mhat = g, vhat = g^2,
     * update = lr * g/|g| = lr * sign(g); decay first: p *= 1 - lr*wd.
     * lr = 0.01, wd = 0.1: p0 = 1*(0.999) - 0.01 = 0.989,
     *                      p1 = -2*(0.999) + 0.01 = -1.988. */
    p->grad[0] = 0.5f; p->grad[1] = -1.0f;
    secap_adamw_step(o, 0.01f);
    assert_float_equal(secap_f32(p)[0], 0.989f, 1e-6);
    assert_float_equal(secap_f32(p)[1], -1.988f, 1e-6);
    /* Step 2, g = (0.25, 0.5):
     * m0 = 0.9*0.05 + 0.1*0.25 = 0.07,   mhat0 = 0.07/0.19
     * v0 = 0.999*0.00025 + 0.001*0.0625 = 0.00031225, vhat0 = v0/0.001999
     * p0 = 0.989*0.999 - 0.01*mhat0/(sqrt(vhat0)+1e-8) */
    p->grad[0] = 0.25f; p->grad[1] = 0.5f;
    secap_adamw_step(o, 0.01f);
    double mh0 = 0.07 / 0.19, vh0 = 0.00031225 / (1 - 0.999 * 0.999);
    double want0 = 0.989 * 0.999 - 0.01 * mh0 / (sqrt(vh0) + 1e-8);
    double m1 = 0.9 * -0.1 + 0.1 * 0.5, v1 = 0.999 * 0.001 + 0.001 * 0.25;
    double want1 = -1.988 * 0.999 - 0.01 * (m1 / 0.19) / (sqrt(v1 / (1 - 0.999 * 0.999)) + 1e-8);
    assert_float_equal(secap_f32(p)[0], want0, 1e-6);
    assert_float_equal(secap_f32(p)[1], want1, 1e-6);
    assert_int_equal(o->step, 2);
    secap_adamw_free(o);
    secap_ctx_free(c);
}

static void test_groups_and_clipping(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(16u << 20, 16u << 20, 1);
    secap_tensor *a = secap_param(c, "a", SECAP_SHAPE(1), 1), *b = secap_param(c, "b", SECAP_SHAPE(1), 1);
    secap_adamw *o = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int g0 = secap_adamw_group(o, 1.0f, 0.0f), g1 = secap_adamw_group(o, 0.5f, 0.0f);
    secap_adamw_add(o, c, a, g0);
    secap_adamw_add(o, c, b, g1);
    a->grad[0] = 3.0f; b->grad[0] = 4.0f;
    double n = secap_clip_grad_norm(o, 1.0);
    assert_float_equal(n, 5.0, 1e-9);
    assert_float_equal(a->grad[0], 0.6f, 1e-5);
    assert_float_equal(b->grad[0], 0.8f, 1e-5);
    secap_adamw_step(o, 0.1f); /* first step moves by lr * lr_mult */
    assert_float_equal(secap_f32(a)[0], -0.1f, 1e-6);
    assert_float_equal(secap_f32(b)[0], -0.05f, 1e-6);
    secap_adamw_zero_grad(o);
    assert_float_equal(a->grad[0], 0.0f, 0);
    EXPECT_FATAL(secap_adamw_add(o, c, secap_param(c, "frozen", SECAP_SHAPE(1), 0), g0), "not a trainable");
    secap_adamw_free(o);
    secap_ctx_free(c);
}

static void test_schedules(void **st)
{
    (void)st;
    secap_schedule s = {.kind = SECAP_SCHED_COSINE, .lr = 1.0f, .warmup = 10, .total = 110, .min_lr = 0.1f};
    assert_float_equal(secap_schedule_lr(&s, 0), 0.1f, 1e-6);
    assert_float_equal(secap_schedule_lr(&s, 9), 1.0f, 1e-6);
    assert_float_equal(secap_schedule_lr(&s, 10), 1.0f, 1e-6);
    assert_float_equal(secap_schedule_lr(&s, 60), 0.55f, 1e-6);
    assert_float_equal(secap_schedule_lr(&s, 110), 0.1f, 1e-6);
    assert_float_equal(secap_schedule_lr(&s, 500), 0.1f, 1e-6);
    s.kind = SECAP_SCHED_LINEAR;
    assert_float_equal(secap_schedule_lr(&s, 35), 0.775f, 1e-6);
    assert_int_equal(secap_sched_parse("cosine"), SECAP_SCHED_COSINE);
    EXPECT_FATAL(secap_sched_parse("cosin"), "schedule 'cosin' is unknown");
}

/* Toy data: 2-D points, 4 classes by the sign of sin(3x)·y and |p| < 1. */
static int toy_label(float x, float y) { return (sinf(3.0f * x) * y > 0) * 2 + (x * x + y * y < 1.0f); }

static secap_tensor *mlp_loss(secap_ctx *c, secap_tensor **w, const float *xs, const int32_t *ys, int n)
{
    secap_tensor *x = secap_from_data(c, SECAP_SHAPE(n, 2), xs);
    secap_tensor *h = secap_gelu(c, secap_linear(c, x, w[0], w[1]));
    h = secap_gelu(c, secap_linear(c, h, w[2], w[3]));
    return secap_cross_entropy(c, secap_linear(c, h, w[4], w[5]), ys, -100);
}

static void init_param(secap_tensor *p, secap_rng *r, float scale)
{
    for (int64_t i = 0; i < p->n; i++) secap_f32(p)[i] = scale * secap_rng_normal(r);
}

static void test_gradient_accumulation_equals_full_batch(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(16u << 20, 64u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 3);
    int64_t shapes[6][2] = {{16, 2}, {16, 1}, {16, 16}, {16, 1}, {4, 16}, {4, 1}};
    secap_tensor *w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = secap_param(c, "w", shapes[i][1] == 1 ? 1 : 2, shapes[i], 1);
        init_param(w[i], &r, 0.5f);
    }
    float xs[16];
    int32_t ys[8];
    for (int i = 0; i < 8; i++) {
        xs[2 * i] = secap_rng_uniform(&r) * 4 - 2; xs[2 * i + 1] = secap_rng_uniform(&r) * 4 - 2;
        ys[i] = toy_label(xs[2 * i], xs[2 * i + 1]);
    }
    secap_backward(c, mlp_loss(c, w, xs, ys, 8));
    float full[64];
    memcpy(full, w[2]->grad, sizeof full);
    for (int i = 0; i < 6; i++) memset(w[i]->grad, 0, (size_t)w[i]->n * sizeof(float));
    secap_ctx_reset(c);
    for (int half = 0; half < 2; half++) {
        secap_backward(c, secap_scale(c, mlp_loss(c, w, xs + 8 * half, ys + 4 * half, 4), 0.5f, 0.0f));
        secap_ctx_reset(c);
    }
    for (int i = 0; i < 64; i++) assert_float_equal(w[2]->grad[i], full[i], 1e-6);
    secap_ctx_free(c);
}

static void test_train_mlp(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(16u << 20, 64u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 11);
    enum { H = 64, N = 256 };
    int64_t shapes[6][2] = {{H, 2}, {H, 1}, {H, H}, {H, 1}, {4, H}, {4, 1}};
    secap_adamw *o = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int g = secap_adamw_group(o, 1.0f, 1e-4f);
    secap_tensor *w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = secap_param(c, "w", shapes[i][1] == 1 ? 1 : 2, shapes[i], 1);
        init_param(w[i], &r, i % 2 ? 0.0f : 1.0f / sqrtf((float)shapes[i][1]));
        secap_adamw_add(o, c, w[i], g);
    }
    float xs[2 * N];
    int32_t ys[N];
    for (int i = 0; i < N; i++) {
        xs[2 * i] = secap_rng_uniform(&r) * 4 - 2; xs[2 * i + 1] = secap_rng_uniform(&r) * 4 - 2;
        ys[i] = toy_label(xs[2 * i], xs[2 * i + 1]);
    }
    secap_schedule sch = {.kind = SECAP_SCHED_COSINE, .lr = 1e-2f, .warmup = 20, .total = 1500, .min_lr = 1e-4f};
    float loss = 0, first = 0;
    for (int step = 0; step < 1500; step++) {
        secap_tensor *l = mlp_loss(c, w, xs, ys, N);
        loss = secap_f32(l)[0];
        if (step == 0) first = loss;
        secap_backward(c, l);
        secap_clip_grad_norm(o, 5.0);
        secap_adamw_step(o, secap_schedule_lr(&sch, step));
        secap_adamw_zero_grad(o);
        secap_ctx_reset(c);
    }
    print_message("  mlp: loss %.4f -> %.4f (threshold 0.10)\n", first, loss);
    assert_true(loss < 0.10f);
    secap_adamw_free(o);
    secap_ctx_free(c);
}

/* Attention block task: output, at every position, the token at position 0
 * (only attention can move it there). */
static void test_train_attention_block(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(16u << 20, 128u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 5);
    enum { V = 8, T = 6, D = 32, B = 32, HEADS = 4 };
    secap_adamw *o = secap_adamw_new(0.9f, 0.98f, 1e-8f);
    int g = secap_adamw_group(o, 1.0f, 0.0f);
    secap_tensor *emb = secap_param(c, "emb", SECAP_SHAPE(V, D), 1), *pos = secap_param(c, "pos", SECAP_SHAPE(T, D), 1);
    secap_tensor *wq = secap_param(c, "wq", SECAP_SHAPE(D, D), 1), *wk = secap_param(c, "wk", SECAP_SHAPE(D, D), 1),
                 *wv = secap_param(c, "wv", SECAP_SHAPE(D, D), 1), *wo = secap_param(c, "wo", SECAP_SHAPE(D, D), 1),
                 *lnw = secap_param(c, "lnw", SECAP_SHAPE(D), 1), *lnb = secap_param(c, "lnb", SECAP_SHAPE(D), 1),
                 *head = secap_param(c, "head", SECAP_SHAPE(V, D), 1);
    secap_tensor *all[] = {emb, pos, wq, wk, wv, wo, lnw, lnb, head};
    for (int i = 0; i < 9; i++) {
        init_param(all[i], &r, i < 2 ? 1.0f : 1.0f / sqrtf(D));
        secap_adamw_add(o, c, all[i], g);
    }
    for (int j = 0; j < D; j++) { secap_f32(lnw)[j] = 1.0f; secap_f32(lnb)[j] = 0.0f; }
    float loss = 0, first = 0;
    int32_t ids[B * T], tgt[B * T];
    for (int step = 0; step < 400; step++) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                ids[b * T + t] = (int32_t)secap_rng_below(&r, V);
                tgt[b * T + t] = ids[b * T];
            }
        secap_tensor *x = secap_add(c, secap_embedding_bt(c, emb, ids, B, T), pos);
        secap_tensor *a = secap_attention(c, secap_linear(c, x, wq, NULL), secap_linear(c, x, wk, NULL),
                                          secap_linear(c, x, wv, NULL), HEADS, NULL, 0, 1.0f / sqrtf(D / HEADS));
        x = secap_layernorm(c, secap_add(c, x, secap_linear(c, a, wo, NULL)), lnw, lnb, 1e-5f);
        secap_tensor *logits = secap_reshape(c, secap_linear(c, x, head, NULL), SECAP_SHAPE(B * T, V));
        secap_tensor *l = secap_cross_entropy(c, logits, tgt, -100);
        loss = secap_f32(l)[0];
        if (step == 0) first = loss;
        secap_backward(c, l);
        secap_adamw_step(o, 3e-3f);
        secap_adamw_zero_grad(o);
        secap_ctx_reset(c);
    }
    print_message("  attention block: loss %.4f -> %.4f (threshold 0.05)\n", first, loss);
    assert_true(loss < 0.05f);
    secap_adamw_free(o);
    secap_ctx_free(c);
}

int main(void)
{
    secap_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_hand_computed),
        cmocka_unit_test(test_groups_and_clipping),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_gradient_accumulation_equals_full_batch),
        cmocka_unit_test(test_train_mlp),
        cmocka_unit_test(test_train_attention_block),
    };
    return cmocka_run_group_tests_name("optimizer", tests, NULL, NULL);
}
