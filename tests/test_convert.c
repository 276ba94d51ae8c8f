/* Converted checkpoints load in C (tests/ref_convert_bert.py writes them).
 *
 * bert-base-chinese-style BERT checkpoints (torch zip with `bert.` prefix
 * and gamma/beta spelling, torch legacy format, safetensors) converted by
 * tools/convert_hf.py initialise a Q-Former through secap_qformer_init_bert:
 * every tensor of the checkpoint's BertModel arrives bit for bit under its
 * Q-Former name (compared with convert_bert_expect.h5, written by plain
 * h5py from the checkpoint's values; closing that file with the unknown-
 * tensor check proves every expected tensor was compared), the sizes come
 * from the file's attributes.  SECap's checkpoint layout converted with
 * --secap loads through secap_qformer_load (text_mode 0, no token types), every
 * tensor equal to the checkpoint's, and runs the query mode.  A Q-Former
 * from --init random --config qformer-tiny loads.  A sharded fp16 LLaMA
 * converted to bf16 reads through the weight-file API (tensors and
 * attributes; the LLaMA model itself is issue 10's). */
#include "testutil.h"

#include "secap/qformer.h"

static secap_ctx *new_ctx(void)
{
    secap_ctx *c = secap_ctx_new((size_t)64 << 20, (size_t)64 << 20, 1);
    c->training = 0;
    return c;
}

/* Compares every entry of p found in ex (name = prefix + entry name) with
 * the model's tensor, bit for bit; returns how many were compared. */
static int compare_params(const secap_params *p, const char *prefix, secap_weights *ex, const char *what)
{
    int n = 0;
    char name[512];
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *e = secap_params_entry(p, i);
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        if (!secap_weights_has(ex, name)) continue;
        float *want = malloc((size_t)e->t->n * sizeof(float));
        assert_non_null(want);
        secap_weights_read(ex, name, e->ndim, e->shape, want);
        const float *got = secap_f32(e->t);
        for (int64_t k = 0; k < e->t->n; k++)
            if (memcmp(&got[k], &want[k], sizeof(float)) != 0)
                fail_msg("%s: tensor %s element %lld is %.9g in C, %.9g in the checkpoint (the converter moved "
                         "or rounded it)", what, name, (long long)k, got[k], want[k]);
        free(want);
        n++;
    }
    return n;
}

static void check_bert(const char *file)
{
    secap_ctx *c = new_ctx();
    secap_qformer_config extras;
    secap_qformer_config_default(&extras);
    extras.num_query_tokens = 4;
    extras.encoder_width = 24;
    extras.audio_width = 20;
    extras.llm_width = 40;
    extras.embed_dim = 16;
    secap_qformer *m = secap_qformer_init_bert(c, tu_ref_path(file), &extras, 1, 7);
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    /* config.json of ref_convert_bert.py: BERT_CFG */
    assert_int_equal(cf->hidden_size, 32);
    assert_int_equal(cf->num_hidden_layers, 3);
    assert_int_equal(cf->num_attention_heads, 4);
    assert_int_equal(cf->intermediate_size, 48);
    assert_int_equal(cf->vocab_size, 99);
    assert_int_equal(cf->max_position_embeddings, 40);
    assert_int_equal(cf->type_vocab_size, 2);
    assert_true(cf->layer_norm_eps == 1e-12);
    assert_int_equal(cf->num_query_tokens, 4);
    assert_int_equal(cf->text_mode, 1);
    secap_weights *ex = secap_weights_open(tu_ref_path("convert_bert_expect.h5"));
    int n = compare_params(secap_qformer_bert_params(m), SECAP_QFORMER_PREFIX, ex, file);
    secap_weights_close_checked(ex, NULL);   /* every expected tensor was compared */
    printf("  %s: %d BERT tensors equal the checkpoint's\n", file, n);
    assert_int_equal(n, 5 + 16 * 3);
    /* the text mode runs on the converted weights */
    int32_t ids[6] = { 2, 5, 98, 0, 7, 1 }, lens[2] = { 3, 2 };
    secap_tensor *y = secap_qformer_text(c, m, ids, lens, NULL, 2, 3);
    for (int64_t k = 0; k < y->n; k++)
        if (!isfinite(secap_f32(y)[k])) fail_msg("%s: text mode output %lld is not finite", file, (long long)k);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

static void test_bert_zip(void **st) { (void)st; check_bert("convert_bert_bin.h5"); }
static void test_bert_legacy(void **st) { (void)st; check_bert("convert_bert_old.h5"); }
static void test_bert_safetensors(void **st) { (void)st; check_bert("convert_bert_st.h5"); }

static void check_secap(const char *file)
{
    secap_ctx *c = new_ctx();
    secap_qformer *m = secap_qformer_load(c, tu_ref_path(file), 1);
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    assert_int_equal(cf->text_mode, 0);
    assert_int_equal(cf->type_vocab_size, 0);
    assert_int_equal(cf->embed_dim, 0);
    assert_int_equal(cf->hidden_size, 32);
    assert_int_equal(cf->num_hidden_layers, 3);
    assert_int_equal(cf->num_query_tokens, 5);
    assert_int_equal(cf->cross_attention_freq, 2);
    assert_int_equal(cf->encoder_width, 24);
    assert_int_equal(cf->audio_width, 20);
    assert_int_equal(cf->llm_width, 40);
    secap_weights *ex = secap_weights_open(tu_ref_path("convert_secap_expect.h5"));
    int nb = compare_params(secap_qformer_bert_params(m), SECAP_QFORMER_PREFIX, ex, file);
    int nr = compare_params(secap_qformer_root_params(m), "", ex, file);
    secap_weights_close_checked(ex, NULL);
    printf("  %s: %d BERT + %d root tensors equal the checkpoint's\n", file, nb, nr);
    assert_int_equal(nb, secap_params_count(secap_qformer_bert_params(m)));
    assert_int_equal(nr, secap_params_count(secap_qformer_root_params(m)));
    /* query mode -> LLM inputs [B, Q, D] */
    float audio[2 * 7 * 20];
    for (int k = 0; k < 2 * 7 * 20; k++) audio[k] = sinf(0.37f * (float)k);
    int32_t frames[2] = { 7, 4 };
    secap_tensor *q = secap_qformer_query(c, m, secap_from_data(c, 3, (int64_t[]){2, 7, 20}, audio), frames);
    secap_tensor *y = secap_qformer_llm_project(c, m, q);
    assert_int_equal(y->n, 2 * 5 * 40);
    for (int64_t k = 0; k < y->n; k++)
        if (!isfinite(secap_f32(y)[k])) fail_msg("%s: LLM input %lld is not finite", file, (long long)k);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

static void test_secap_plain(void **st) { (void)st; check_secap("convert_secap.h5"); }
static void test_secap_lightning(void **st) { (void)st; check_secap("convert_secap_pl.h5"); }

/* --init random --config qformer-tiny (tools/convert_hf.py) loads */
static void test_random_qformer(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer *m = secap_qformer_load(c, tu_ref_path("qformer_tiny.h5"), 0);
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    assert_int_equal(cf->hidden_size, 32);
    assert_int_equal(cf->num_hidden_layers, 3);
    assert_int_equal(cf->num_query_tokens, 4);
    assert_int_equal(cf->embed_dim, 16);
    assert_int_equal(cf->text_mode, 1);
    secap_tensor *t = secap_qformer_param(m, "Qformer.bert.encoder.layer.2.crossattention.self.key.weight");
    assert_non_null(t);
    assert_int_equal(t->n, 32 * 24);
    double s2 = 0;
    for (int64_t k = 0; k < t->n; k++) s2 += (double)secap_f32(t)[k] * secap_f32(t)[k];
    double sd = sqrt(s2 / (double)t->n);
    if (fabs(sd - 0.02) > 0.003) fail_msg("qformer_tiny.h5: cross-attention key std %g, expected 0.02", sd);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* A sharded fp16 LLaMA converted to bf16 (tests/ref_convert_llama.py) reads
 * through the weight-file API: every tensor bfloat16 with torch's rounding,
 * nothing else in the file, LLaMA's attributes. */
static void test_llama_bf16(void **st)
{
    (void)st;
    secap_weights *w = secap_weights_open(tu_ref_path("convert_llama_bf16.h5"));
    secap_weights *ex = secap_weights_open(tu_ref_path("convert_llama_expect.h5"));
    assert_string_equal(secap_weights_attr_string(w, "model_type"), "llama");
    assert_string_equal(secap_weights_attr_string(w, "hidden_act"), "silu");
    assert_int_equal(secap_weights_attr_int(w, "num_attention_heads"), 4);
    assert_int_equal(secap_weights_attr_int(w, "num_key_value_heads"), 2);
    assert_int_equal(secap_weights_attr_int(w, "tie_word_embeddings"), 0);
    assert_true(secap_weights_attr_double(w, "rope_theta") == 500000.0);
    assert_true(secap_weights_attr_double(w, "rms_norm_eps") == 1e-5);
    int64_t L = secap_weights_attr_int(w, "num_hidden_layers"), n = 0;
    char name[256];
    for (int64_t i = -3; i < 9 * L; i++) {   /* -3, -2, -1: model.norm, embed_tokens, lm_head */
        static const char *const per[9] = { "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                            "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
                                            "input_layernorm", "post_attention_layernorm" };
        if (i == -3) snprintf(name, sizeof name, "model.norm.weight");
        else if (i == -2) snprintf(name, sizeof name, "model.embed_tokens.weight");
        else if (i == -1) snprintf(name, sizeof name, "lm_head.weight");
        else snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)(i / 9), per[i % 9]);
        int64_t shape[SECAP_WEIGHTS_MAX_DIMS];
        secap_wdtype dt;
        int nd = secap_weights_info(w, name, shape, &dt);
        if (dt != SECAP_WDTYPE_BF16) fail_msg("convert_llama_bf16.h5: %s is not stored as bfloat16", name);
        int64_t cnt = 1;
        for (int d = 0; d < nd; d++) cnt *= shape[d];
        float *got = malloc((size_t)cnt * sizeof(float)), *want = malloc((size_t)cnt * sizeof(float));
        assert_non_null(got);
        assert_non_null(want);
        secap_weights_read(w, name, nd, shape, got);
        secap_weights_read(ex, name, nd, shape, want);
        if (memcmp(got, want, (size_t)cnt * sizeof(float)))
            fail_msg("convert_llama_bf16.h5: %s differs from torch's bf16 rounding of the checkpoint", name);
        free(got);
        free(want);
        n++;
    }
    printf("  convert_llama_bf16.h5: %lld tensors equal torch's bf16 rounding\n", (long long)n);
    assert_int_equal(n, 3 + 9 * L);
    secap_weights_close_checked(w, NULL);    /* nothing else in the file */
    secap_weights_close_checked(ex, NULL);   /* and every expected tensor compared */
}

static void test_refusals(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    /* a BERT file is not a Q-Former file, and a Q-Former file is no BERT
     * file (the config readers secap_qformer_load / _init_bert use; called on
     * handles this test closes, so the fatal paths leak nothing) */
    secap_qformer_config x;
    secap_weights *w = secap_weights_open(tu_ref_path("convert_bert_bin.h5"));
    EXPECT_FATAL(secap_qformer_config_read(&x, w), "model_type");
    secap_weights_close(w);
    w = secap_weights_open(tu_ref_path("convert_secap.h5"));
    secap_qformer_config_default(&x);
    EXPECT_FATAL(secap_qformer_config_read_bert(&x, w), "model_type");
    secap_weights_close(w);
    secap_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_zip),
        cmocka_unit_test(test_bert_legacy),
        cmocka_unit_test(test_bert_safetensors),
        cmocka_unit_test(test_secap_plain),
        cmocka_unit_test(test_secap_lightning),
        cmocka_unit_test(test_random_qformer),
        cmocka_unit_test(test_llama_bf16),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
