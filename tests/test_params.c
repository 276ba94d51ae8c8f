/* Parameter tables: hashed lookup, patterns, init rules, bindings, strict
 * loading under a prefix, saving, bf16 storage, optimizer groups. */
#include "testutil.h"
#include "secap/h5io.h"
#include "secap/optim.h"
#include "secap/params.h"
#include "secap/weights.h"

/* A toy model: the fields a table binds. */
typedef struct {
    secap_tensor *emb, *q_w, *q_b, *ln_w, *ln_b, *ffq_w, *ff_w, *lora_a, *lora_b;
} toy;

static secap_params *toy_table(toy *m, int H)
{
    secap_params *p = secap_params_new("toy");
    secap_params_default_trainable(p, 1);
    secap_params_add(p, &m->emb, SECAP_SHAPE(10, H), "embeddings.word_embeddings.weight");
    secap_params_add(p, &m->q_w, SECAP_SHAPE(H, H), "layer.%d.attention.self.query.weight", 0);
    secap_params_add(p, &m->q_b, SECAP_SHAPE(H), "layer.%d.attention.self.query.bias", 0);
    secap_params_add(p, &m->ln_w, SECAP_SHAPE(H), "layer.%d.output.LayerNorm.weight", 0);
    secap_params_add(p, &m->ln_b, SECAP_SHAPE(H), "layer.%d.output.LayerNorm.bias", 0);
    int ff = secap_params_add(p, &m->ff_w, SECAP_SHAPE(2 * H, H), "layer.%d.intermediate.dense.weight", 0);
    int ffq = secap_params_add(p, &m->ffq_w, SECAP_SHAPE(2 * H, H), "layer.%d.intermediate_query.dense.weight", 0);
    secap_params_set_copy(p, ffq, ff);
    int a = secap_params_add(p, &m->lora_a, SECAP_SHAPE(4, H), "layer.%d.attention.self.query.lora_A.weight", 0);
    int b = secap_params_add(p, &m->lora_b, SECAP_SHAPE(H, 4), "layer.%d.attention.self.query.lora_B.weight", 0);
    secap_params_set_init(p, a, SECAP_INIT_KAIMING, 0);
    secap_params_set_init(p, b, SECAP_INIT_ZEROS, 0);
    return p;
}

static void fill(float *x, int64_t n, float base)
{
    for (int64_t i = 0; i < n; i++) x[i] = base + 0.001f * (float)i;
}

/* Writes the FILE entries of the toy model under `prefix`, plus `extra`. */
static void write_toy_file(const char *path, const char *prefix, int H, const char *extra, int bad_shape)
{
    secap_weights *w = secap_weights_create(path);
    char name[256];
    float *buf = calloc((size_t)(20 * H * H), sizeof *buf);
    struct { const char *n; int64_t s[2]; int nd; } t[] = {
        {"embeddings.word_embeddings.weight", {10, H}, 2}, {"layer.0.attention.self.query.weight", {H, H}, 2},
        {"layer.0.attention.self.query.bias", {H, 1}, 1}, {"layer.0.output.LayerNorm.weight", {H, 1}, 1},
        {"layer.0.output.LayerNorm.bias", {H, 1}, 1}, {"layer.0.intermediate.dense.weight", {2 * H, H}, 2},
    };
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, t[i].n);
        int64_t s[2] = {t[i].s[0] + (bad_shape && i == 1), t[i].s[1]};
        fill(buf, s[0] * (t[i].nd == 2 ? s[1] : 1), (float)i);
        secap_weights_write(w, name, t[i].nd, s, buf, SECAP_WDTYPE_F32);
    }
    if (extra) secap_weights_write(w, extra, 1, (int64_t[]){3}, buf, SECAP_WDTYPE_F32);
    secap_weights_set_string(w, "model_type", "toy");
    secap_weights_close(w);
    free(buf);
}

static void test_lookup_and_patterns(void **st)
{
    (void)st;
    static const char *const leaf[3] = {"w", "a.bias", "b.bias"};
    secap_params *p = secap_params_new("many");
    for (int i = 0; i < 3000; i++) secap_params_add(p, NULL, SECAP_SHAPE(2), "layers.%d.%s", i / 3, leaf[i % 3]);
    assert_int_equal(secap_params_count(p), 3000);
    for (int i = 0; i < 3000; i += 7) {
        char name[64];
        snprintf(name, sizeof name, "layers.%d.%s", i / 3, leaf[i % 3]);
        assert_int_equal(secap_params_find(p, name), i);
    }
    assert_int_equal(secap_params_find(p, "layers.0.nope"), -1);
    EXPECT_FATAL(secap_params_add(p, NULL, SECAP_SHAPE(2), "layers.%d.w", 5), "added twice");
    EXPECT_FATAL(secap_params_add(p, NULL, SECAP_SHAPE(0, 2), "zero"), "size 0 in dim 0");
    int n = 0;
    for (int i = secap_params_next(p, "layers.1?.w, layers.2.*", -1); i >= 0; i = secap_params_next(p, "layers.1?.w, layers.2.*", i)) n++;
    assert_int_equal(n, 10 + 3);
    assert_int_equal(secap_params_set_trainable(p, "*.bias", 1), 2000);
    assert_int_equal(secap_params_numel(p, 1), 4000);
    assert_int_equal(secap_params_bytes(p, 0), 3000 * 2 * 4);
    secap_params_free(p);
}

static void test_load_prefix_bind_copy_init(void **st)
{
    (void)st;
    const int H = 8;
    write_toy_file(tu_tmp("toy.h5"), "Qformer.bert.", H, "query_tokens", 0);
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    toy m = {0};
    secap_params *p = toy_table(&m, H);
    secap_weights *w = secap_weights_open(tu_tmp("toy.h5"));
    secap_params_load(p, c, w, "Qformer.bert.", 7);
    EXPECT_FATAL(secap_weights_close_checked(w, NULL), "query_tokens");   /* the unknown tensor is named */
    /* bindings and values */
    assert_ptr_equal(m.q_w, secap_params_get(p, "layer.0.attention.self.query.weight"));
    assert_float_equal(secap_f32(m.q_w)[5], 1.0f + 0.005f, 1e-6);
    assert_float_equal(secap_f32(m.ff_w)[17], 5.0f + 0.017f, 1e-6);
    /* the copy equals its source and is its own memory */
    assert_memory_equal(m.ffq_w->data, m.ff_w->data, (size_t)m.ff_w->n * sizeof(float));
    assert_ptr_not_equal(m.ffq_w->data, m.ff_w->data);
    /* LoRA: B zeros, A kaiming-uniform within 1/sqrt(fan_in) and spread over it */
    float bound = 1.0f / sqrtf((float)H), mx = 0;
    for (int64_t i = 0; i < m.lora_a->n; i++) {
        float v = fabsf(secap_f32(m.lora_a)[i]);
        assert_true(v <= bound);
        if (v > mx) mx = v;
    }
    assert_true(mx > 0.6f * bound);
    for (int64_t i = 0; i < m.lora_b->n; i++) assert_true(secap_f32(m.lora_b)[i] == 0.0f);
    assert_non_null(m.q_w->grad);
    secap_params_free(p);
    secap_ctx_free(c);
}

static void test_load_errors(void **st)
{
    (void)st;
    const int H = 8;
    write_toy_file(tu_tmp("bad.h5"), "", H, NULL, 1);
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    toy m = {0};
    secap_params *p = toy_table(&m, H);
    secap_weights *w = secap_weights_open(tu_tmp("bad.h5"));
    EXPECT_FATAL(secap_params_load(p, c, w, NULL, 0), "layer.0.attention.self.query.weight");
    secap_weights_close(w);
    secap_params_free(p);
    /* a missing tensor under a wrong prefix names file and tensor */
    write_toy_file(tu_tmp("ok.h5"), "", H, NULL, 0);
    p = toy_table(&m, H);
    w = secap_weights_open(tu_tmp("ok.h5"));
    EXPECT_FATAL(secap_params_load(p, c, w, "Qformer.bert.", 0), "Qformer.bert.embeddings.word_embeddings.weight");
    assert_non_null(strstr(secap_last_error(), "ok.h5"));
    secap_weights_close(w);
    secap_params_free(p);
    /* a NaN in a tensor that would be mapped is refused like a read one */
    secap_h5 *h = secap_h5_create(tu_tmp("nan.h5"));
    float vals[4] = {1, 2, NAN, 4};
    secap_h5_write_f32(h, "w", vals, 2, (int64_t[]){2, 2}, 0);
    secap_h5_commit(h);
    p = secap_params_new("nan");
    secap_params_add(p, NULL, SECAP_SHAPE(2, 2), "w");
    w = secap_weights_open(tu_tmp("nan.h5"));
    EXPECT_FATAL(secap_params_load(p, c, w, NULL, 0), "tensor w holds NaN at [1, 0]");
    secap_weights_close(w);
    secap_params_free(p);
    /* trainable bf16 is refused */
    p = secap_params_new("toy");
    secap_params_add(p, NULL, SECAP_SHAPE(2, 2), "w");
    secap_params_set_trainable(p, "*", 1);
    secap_params_set_dtype(p, "*", SECAP_BF16);
    EXPECT_FATAL(secap_params_load(p, c, NULL, NULL, 0), "trainable but stored as bf16");
    secap_params_free(p);
    secap_ctx_free(c);
}

/* Random init: the same values whatever the table order, normal stats. */
static void test_random_init_order_free(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    secap_params *a = secap_params_new("a"), *b = secap_params_new("b");
    secap_params_default_std(a, 0.5f);
    secap_params_default_std(b, 0.5f);
    secap_params_add(a, NULL, SECAP_SHAPE(100, 100), "x.weight");
    secap_params_add(a, NULL, SECAP_SHAPE(100), "x.bias");
    secap_params_add(a, NULL, SECAP_SHAPE(100), "norm.weight");
    secap_params_add(b, NULL, SECAP_SHAPE(100), "norm.weight");
    secap_params_add(b, NULL, SECAP_SHAPE(100, 100), "x.weight");
    secap_params_load(a, c, NULL, NULL, 42);
    secap_params_load(b, c, NULL, NULL, 42);
    secap_tensor *wa = secap_params_get(a, "x.weight"), *wb = secap_params_get(b, "x.weight");
    assert_memory_equal(wa->data, wb->data, (size_t)wa->n * sizeof(float));
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < wa->n; i++) { s += secap_f32(wa)[i]; s2 += secap_f32(wa)[i] * (double)secap_f32(wa)[i]; }
    double mean = s / (double)wa->n, sd = sqrt(s2 / (double)wa->n - mean * mean);
    assert_true(fabs(mean) < 0.02 && fabs(sd - 0.5) < 0.02);
    assert_true(secap_f32(secap_params_get(a, "x.bias"))[3] == 0.0f);
    assert_true(secap_f32(secap_params_get(a, "norm.weight"))[3] == 1.0f);
    secap_params_free(a);
    secap_params_free(b);
    secap_ctx_free(c);
}

/* Save the trainable part, read it back into a fresh table. */
static void test_save_roundtrip_bf16(void **st)
{
    (void)st;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    secap_params *p = secap_params_new("rt");
    secap_params_add(p, NULL, SECAP_SHAPE(3, 5), "frozen.weight");
    secap_params_add(p, NULL, SECAP_SHAPE(5, 3), "lora.weight");
    secap_params_set_trainable(p, "lora.*", 1);
    secap_params_set_dtype(p, "frozen.*", SECAP_BF16);
    secap_params_load(p, c, NULL, NULL, 3);
    assert_int_equal(secap_params_get(p, "frozen.weight")->dtype, SECAP_BF16);
    secap_weights *w = secap_weights_create(tu_tmp("rt.h5"));
    secap_params_write(p, w, "base_model.", 1);
    secap_weights_set_int(w, "r", 8);
    secap_weights_close(w);
    w = secap_weights_open(tu_tmp("rt.h5"));
    assert_false(secap_weights_has(w, "base_model.frozen.weight"));
    secap_params *q = secap_params_new("rt2");
    secap_params_default_trainable(q, 1);
    secap_params_add(q, NULL, SECAP_SHAPE(5, 3), "lora.weight");
    secap_params_load(q, c, w, "base_model.", 0);
    secap_weights_close_checked(w, NULL);
    assert_memory_equal(secap_params_get(q, "lora.weight")->data, secap_params_get(p, "lora.weight")->data, 15 * sizeof(float));
    /* full save keeps bf16 bits */
    w = secap_weights_create(tu_tmp("full.h5"));
    secap_params_write(p, w, NULL, 0);
    secap_weights_close(w);
    w = secap_weights_open(tu_tmp("full.h5"));
    int64_t shape[8];
    secap_wdtype dt;
    assert_int_equal(secap_weights_info(w, "frozen.weight", shape, &dt), 2);
    assert_int_equal(dt, SECAP_WDTYPE_BF16);
    secap_params *r = secap_params_new("rt3");
    secap_params_add(r, NULL, SECAP_SHAPE(3, 5), "frozen.weight");
    secap_params_add(r, NULL, SECAP_SHAPE(5, 3), "lora.weight");
    secap_params_set_dtype(r, "frozen.*", SECAP_BF16);
    secap_params_load(r, c, w, NULL, 0);
    secap_weights_close_checked(w, NULL);
    /* frozen entries point into the file mapping, which outlives the reader */
    assert_true(secap_params_entry(r, secap_params_find(r, "frozen.weight"))->mapped);
    assert_true(secap_params_entry(r, secap_params_find(r, "lora.weight"))->mapped);
    assert_memory_equal(secap_params_get(r, "frozen.weight")->data, secap_params_get(p, "frozen.weight")->data, 15 * 2);
    assert_memory_equal(secap_params_get(r, "lora.weight")->data, secap_params_get(p, "lora.weight")->data, 15 * 4);
    assert_false(secap_params_get(r, "frozen.weight")->requires_grad);
    /* trainable entries are never mapped (they change) */
    assert_false(secap_params_entry(q, 0)->mapped);
    secap_params_free(p);
    secap_params_free(q);
    secap_params_free(r);
    secap_ctx_free(c);
}

/* Optimizer groups from patterns: no decay on biases and norms. */
static void test_adamw_groups(void **st)
{
    (void)st;
    const int H = 8;
    secap_ctx *c = secap_ctx_new(64u << 20, 64u << 20, 1);
    toy m = {0};
    secap_params *p = toy_table(&m, H);
    secap_params_set_trainable(p, "embeddings.*", 0);
    secap_params_load(p, c, NULL, NULL, 1);
    secap_adamw *o = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int nd = secap_adamw_group(o, 1.0f, 0.0f), d = secap_adamw_group(o, 1.0f, 0.1f);
    assert_int_equal(secap_adamw_add_params(o, c, p, "*.bias,*LayerNorm*", NULL, nd), 3);
    assert_int_equal(secap_adamw_add_params(o, c, p, NULL, "*lora_*", d), 3);   /* q_w, ff_w, ffq_w */
    assert_int_equal(secap_adamw_add_params(o, c, p, NULL, NULL, d), 2);        /* the LoRA pair, once */
    assert_int_equal(o->nslots, 8);
    for (int s = 0; s < o->nslots; s++) {
        const char *n = o->slots[s].param->name;
        int want = strstr(n, ".bias") || strstr(n, "LayerNorm") ? nd : d;
        assert_int_equal(o->slots[s].group, want);
        assert_null(strstr(n, "embeddings"));
    }
    secap_adamw_free(o);
    secap_params_free(p);
    secap_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_and_patterns),
        cmocka_unit_test(test_load_prefix_bind_copy_init),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_random_init_order_free),
        cmocka_unit_test(test_save_roundtrip_bf16),
        cmocka_unit_test(test_adamw_groups),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
