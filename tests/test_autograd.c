/* Tape semantics and bad input: no-grad, accumulation, frozen parameters,
 * stale tensors, non-scalar backward, shape errors, arena exhaustion. */
#include "testutil.h"
#include "secap/autograd.h"
#include "secap/ops.h"

static secap_ctx *new_ctx(void) { return secap_ctx_new(64u << 20, 64u << 20, 1); }

static void fill(secap_tensor *t, float base)
{
    for (int64_t i = 0; i < t->n; i++) secap_f32(t)[i] = base + 0.1f * (float)i;
}

static void test_no_grad_records_nothing(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_tensor *w = secap_param(c, "w", SECAP_SHAPE(3, 2), 1);
    secap_tensor *x = secap_from_data(c, SECAP_SHAPE(1, 2), (float[]){1, 2});
    int prev = secap_no_grad_begin(c);
    secap_tensor *y = secap_linear(c, x, w, NULL);
    secap_no_grad_end(c, prev);
    assert_int_equal(c->ntape, 0);
    assert_false(y->requires_grad);
    EXPECT_FATAL(secap_backward(c, secap_sum_all(c, y)), "under no_grad");
    secap_tensor *y2 = secap_linear(c, x, w, NULL);
    assert_true(c->ntape > 0);
    assert_true(y2->requires_grad);
    secap_ctx_free(c);
}

static void test_gradients_accumulate(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_tensor *w = secap_param(c, "w", SECAP_SHAPE(2), 1);
    fill(w, 1.0f);
    for (int rep = 0; rep < 2; rep++) {
        /* loss = sum(w * w) -> dw = 2w, twice -> 4w */
        secap_backward(c, secap_sum_all(c, secap_mul(c, w, w)));
        secap_ctx_reset(c);
    }
    assert_float_equal(w->grad[0], 4.0f * 1.0f, 1e-6);
    assert_float_equal(w->grad[1], 4.0f * 1.1f, 1e-6);
    secap_ctx_free(c);
}

static void test_second_backward_on_same_tape(void **st)
{
    (void)st;
    /* Two losses sharing a subgraph: the second backward must not see the
     * first one's intermediate gradients. */
    secap_ctx *c = new_ctx();
    secap_tensor *w = secap_param(c, "w", SECAP_SHAPE(2), 1);
    fill(w, 1.0f);
    secap_tensor *h = secap_scale(c, w, 3.0f, 0.0f);
    secap_backward(c, secap_sum_all(c, h));           /* dw = 3 */
    secap_backward(c, secap_sum_all(c, secap_scale(c, h, 2.0f, 0.0f))); /* dw += 6 */
    assert_float_equal(w->grad[0], 9.0f, 1e-6);
    secap_ctx_free(c);
}

/* backward_from(y, dy) on an intermediate y that a later node consumes, after
 * a first backward through that later node: the result is exactly dy . dy/dw
 * added to what was there, with nothing from the first pass leaking in. */
static void test_backward_from_intermediate(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_tensor *w = secap_param(c, "w", SECAP_SHAPE(3), 1);
    fill(w, 1.0f);                                            /* w = 1.0, 1.1, 1.2 */
    secap_tensor *y = secap_mul(c, w, w);                     /* y = w^2, dy/dw = 2w */
    secap_tensor *z = secap_scale(c, y, 5.0f, 0.0f);
    secap_backward(c, secap_sum_all(c, z));                   /* dw = 10 w */
    const float dy[3] = {1.0f, -2.0f, 0.5f};
    secap_backward_from(c, y, dy);                            /* dw += 2 w dy */
    for (int i = 0; i < 3; i++) {
        float wi = 1.0f + 0.1f * (float)i;
        assert_float_equal(w->grad[i], 10.0f * wi + 2.0f * wi * dy[i], 1e-5);
    }
    /* a parameter leaf itself: its gradient receives dout */
    secap_backward_from(c, w, dy);
    assert_float_equal(w->grad[1], 10.0f * 1.1f + 2.0f * 1.1f * dy[1] + dy[1], 1e-5);
    /* scalar special case: backward(loss) == backward_from(loss, 1) */
    secap_tensor *v = secap_param(c, "v", SECAP_SHAPE(2), 1);
    fill(v, 2.0f);
    const float one = 1.0f;
    secap_backward_from(c, secap_sum_all(c, secap_mul(c, v, v)), &one);
    assert_float_equal(v->grad[0], 4.0f, 1e-6);
    assert_float_equal(v->grad[1], 4.2f, 1e-6);

    secap_tensor *nog = secap_zeros(c, SECAP_SHAPE(3));
    EXPECT_FATAL(secap_backward_from(c, nog, dy), "backward_from: the output does not depend");
    EXPECT_FATAL(secap_backward_from(c, y, NULL), "backward_from: the output gradient is NULL");
    secap_ctx_reset(c);
    EXPECT_FATAL(secap_backward_from(c, y, dy), "backward_from: input tensor was made before its arena was reset");
    secap_ctx_free(c);
}

static void test_frozen_param_no_grad(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_tensor *w = secap_param(c, "frozen", SECAP_SHAPE(2, 2), 0);
    secap_tensor *x = secap_leaf(c, SECAP_SHAPE(1, 2), (float[]){1, 2});
    fill(w, 0.5f);
    secap_backward(c, secap_sum_all(c, secap_linear(c, x, w, NULL)));
    assert_null(w->grad);
    assert_non_null(x->grad);
    /* d/dx sum(x W^T) = column sums of W: w = [[.5,.6],[.7,.8]] */
    assert_float_equal(x->grad[0], 1.2f, 1e-6);
    assert_float_equal(x->grad[1], 1.4f, 1e-6);
    secap_ctx_free(c);
}

static void test_bad_input(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_tensor *a = secap_zeros(c, SECAP_SHAPE(2, 3));
    secap_tensor *b = secap_zeros(c, SECAP_SHAPE(4, 5));
    EXPECT_FATAL(secap_matmul(c, a, b, 0, 0), "matmul: shape mismatch [2, 3] vs [4, 5]");
    EXPECT_FATAL(secap_add(c, a, b), "add: shape mismatch [2, 3] vs [4, 5] (hint: dims must match or be 1");
    EXPECT_FATAL(secap_linear(c, a, b, NULL), "linear: shape mismatch");
    EXPECT_FATAL(secap_reshape(c, a, SECAP_SHAPE(5)), "reshape: [2, 3] has 6 elements but the new shape has 5");
    EXPECT_FATAL(secap_attention(c, secap_zeros(c, SECAP_SHAPE(1, 2, 6)), secap_zeros(c, SECAP_SHAPE(1, 2, 6)),
                                 secap_zeros(c, SECAP_SHAPE(1, 2, 6)), 4, NULL, 0, 1.0f),
                 "does not split into 4 heads");
    secap_tensor *q8 = secap_zeros(c, SECAP_SHAPE(1, 2, 8)), *k4 = secap_zeros(c, SECAP_SHAPE(1, 3, 4));
    secap_attn_opts o = {.heads = 4, .kv_heads = 3, .scale = 1.0f};
    EXPECT_FATAL(secap_attention_ex(c, q8, k4, k4, &o), "4 query heads do not share 3 kv heads evenly");
    o.kv_heads = 1; /* head_dim 2, one kv head: k must be 2 wide */
    EXPECT_FATAL(secap_attention_ex(c, q8, k4, k4, &o), "k's width must be kv_heads*head_dim");
    o.kv_heads = 2;
    EXPECT_FATAL(secap_attention_ex(c, q8, k4, secap_zeros(c, SECAP_SHAPE(1, 2, 4)), &o),
                 "k and v must have the same shape");
    o.q_pos = (int32_t[]){-1};
    EXPECT_FATAL(secap_attention_ex(c, q8, k4, k4, &o), "query position -1 for batch item 0 is negative");
    o.q_pos = NULL; o.key_len = (int32_t[]){4};
    EXPECT_FATAL(secap_attention_ex(c, q8, k4, k4, &o), "key length 4 for batch item 0 outside [0, 3]");
    EXPECT_FATAL(secap_attention_ex(c, q8, k4, k4, NULL), "attention: options are NULL");
    int32_t bad[1] = {7};
    EXPECT_FATAL(secap_cross_entropy(c, a, bad, -100), "target 7 at row 0 is outside [0, 3)");
    EXPECT_FATAL(secap_embedding(c, b, bad, 1), "id 7 at position 0 outside the table [0, 4)");
    secap_tensor *bf = secap_param_bf16(c, "wbf", SECAP_SHAPE(2, 3));
    EXPECT_FATAL(secap_gelu(c, bf), "gelu: x is bf16");

    secap_tensor *leaf = secap_leaf(c, SECAP_SHAPE(2, 2), NULL);
    EXPECT_FATAL(secap_backward(c, secap_scale(c, leaf, 1.0f, 0.0f)),
                 "backward: loss has shape [2, 2] (4 elements); backward needs a scalar");

    secap_ctx_reset(c);
    EXPECT_FATAL(secap_gelu(c, a), "gelu: input tensor was made before its arena was reset");
    secap_ctx_free(c);
}

static void test_arena_out_of_memory(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(1u << 20, 1u << 20, 1);
    secap_tensor *x = secap_zeros(c, SECAP_SHAPE(64, 64)); /* 16 KiB */
    EXPECT_FATAL(secap_matmul(c, x, secap_zeros(c, SECAP_SHAPE(64, 8192)), 0, 0),
                 "arena 'step' out of memory");
    assert_true(secap_arena_peak(c->step) > 0);
    secap_ctx_free(c);
}

static void test_bf16_roundtrip(void **st)
{
    (void)st;
    float vals[5] = {1.0f, -2.5f, 3.14159f, 1e-3f, 65504.0f};
    for (int i = 0; i < 5; i++) {
        float r = secap_bf16_to_f32(secap_f32_to_bf16(vals[i]));
        assert_true(fabsf(r - vals[i]) <= fabsf(vals[i]) * (1.0f / 256.0f));
    }
    assert_int_equal(secap_f32_to_bf16(1.0f), 0x3f80);
}

/* A NaN/inf loss stops before backward, naming the op where it started. */
static void test_nonfinite_loss(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_tensor *w = secap_param(c, "w", SECAP_SHAPE(1, 3), 1);
    fill(w, -1.0f);                                     /* -1, -0.9, -0.8 */
    secap_tensor *h = secap_scale(c, w, 2.0f, 0.0f);
    secap_tensor *l = secap_log(c, h);                  /* log of negatives: NaN */
    secap_tensor *loss = secap_sum_all(c, secap_scale(c, l, 1.0f, 0.0f));
    EXPECT_FATAL(secap_backward(c, loss), "backward: the loss is NaN; the first non-finite value on the tape is "
                                          "element 0 of the [1, 3] output of op log");
    assert_true(w->grad[0] == 0.0f);                    /* nothing propagated */
    secap_ctx_reset(c);
    secap_tensor *x = secap_from_data(c, SECAP_SHAPE(1), (float[]){INFINITY});
    secap_tensor *loss2 = secap_sum_all(c, secap_mul(c, secap_sum_all(c, w), x));
    EXPECT_FATAL(secap_backward(c, loss2), "the loss is -inf");
    secap_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_grad_records_nothing),
        cmocka_unit_test(test_gradients_accumulate),
        cmocka_unit_test(test_second_backward_on_same_tape),
        cmocka_unit_test(test_backward_from_intermediate),
        cmocka_unit_test(test_frozen_param_no_grad),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_arena_out_of_memory),
        cmocka_unit_test(test_bf16_roundtrip),
        cmocka_unit_test(test_nonfinite_loss),
    };
    return cmocka_run_group_tests_name("autograd", tests, NULL, NULL);
}
