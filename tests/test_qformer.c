/* Q-Former parity against PyTorch (tests/ref_qformer.py) and its contracts.
 *
 * Two variants with random weights: "small" (token types, cross-attention
 * every 2nd layer, audio_project, LLM projection) and "blip" (LAVIS layout:
 * no token types, cross-attention in every layer, no audio_project).  For a
 * padded batch (noise in the padded frames, random ids in the padded tokens):
 *   - query-mode and text-mode outputs and every head within 1e-4 relative;
 *   - the gradient of loss = sum_k sum(out_k * r_k) for every parameter and
 *     for the audio input within 1e-4 relative (largest difference printed
 *     per tensor);
 *   - the batch equals each item run alone;
 * plus: a frozen model passes gradients to its input; initialisation from a
 * plain BERT file (query FFN = text FFN, cross-attention and queries
 * random, text mode equal to the reference); random init rules; save and
 * reload; SECap's query-only layout; refusals of bad configs, files and
 * shapes, each naming what is wrong. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"

#include "secap/autograd.h"
#include "secap/ops.h"
#include "secap/qformer.h"

#include "fixture.h"

#define TOL 1e-4

static secap_ctx *new_ctx(void)
{
    secap_ctx *c = secap_ctx_new((size_t)1 << 30, (size_t)2 << 30, 1);
    c->training = 0;   /* dropout off: the reference runs in eval mode */
    return c;
}

/* Relative difference max|c - ref| / max|ref| over `rows` rows of `len`
 * floats, row r taken when keep(r) (NULL: all).  Prints it; counts a failure
 * past tol in *bad instead of stopping, so every tensor gets printed. */
static double compare(const char *what, const float *c, const float *ref, int64_t n, double tol, int *bad)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)c[i] - (double)ref[i]), r = fabs((double)ref[i]);
        if (!(e <= d)) d = e;   /* NaN propagates */
        if (r > m) m = r;
    }
    double rel = m > 0 ? d / m : d;
    int fail = !(rel <= tol);
    printf("  %-72s max |diff| %.3g  rel %.3g%s\n", what, d, rel, fail ? "  <-- FAIL" : "");
    if (fail) (*bad)++;
    return rel;
}

/* Copies rows [0, lens[b]) of x [B, S, H] into a zeroed [B, S, H] buffer. */
static float *valid_rows(const float *x, const int32_t *lens, int64_t B, int64_t S, int64_t H)
{
    float *y = calloc((size_t)(B * S * H), sizeof *y);
    assert_non_null(y);
    for (int64_t b = 0; b < B; b++)
        memcpy(y + b * S * H, x + b * S * H, (size_t)(lens[b] * H) * sizeof *y);
    return y;
}

/* The full file name of entry i of the BERT table or of the root table. */
static const char *full_name(const secap_params *p, int i, int bert, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", bert ? SECAP_QFORMER_PREFIX : "", secap_params_entry(p, i)->name);
    return buf;
}

typedef struct {
    arr audio, frames, ids, lens;
} inputs;

static inputs read_inputs(hid_t h)
{
    inputs in = { h5get(h, "audio", 0), h5get(h, "frames", 1), h5get(h, "ids", 1), h5get(h, "lens", 1) };
    return in;
}

static void inputs_free(inputs *in)
{
    arr_free(&in->audio); arr_free(&in->frames); arr_free(&in->ids); arr_free(&in->lens);
}

/* ------------------------------------------------------------- parity */

static void parity(const char *tag)
{
    char wfile[64], iofile[64], name[512], what[600];
    snprintf(wfile, sizeof wfile, "qformer_%s.h5", tag);
    snprintf(iofile, sizeof iofile, "qformer_%s_io.h5", tag);
    secap_ctx *c = new_ctx();
    secap_qformer *m = secap_qformer_load(c, tu_ref_path(wfile), 1);
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    hid_t h = h5open(tu_ref_path(iofile));
    inputs in = read_inputs(h);
    int64_t B = in.audio.dims[0], S = in.ids.dims[1], H = cf->hidden_size;

    secap_tensor *audio = secap_leaf(c, 3, in.audio.dims, in.audio.x);
    secap_tensor *out[6];
    static const char *const keys[6] = { "query", "speech_mean", "speech_none", "llm", "text", "text_emb" };
    out[0] = secap_qformer_query(c, m, audio, in.frames.i);
    out[1] = secap_qformer_speech_embed(c, m, out[0], SECAP_QFORMER_POOL_MEAN);
    out[2] = secap_qformer_speech_embed(c, m, out[0], SECAP_QFORMER_POOL_NONE);
    out[3] = cf->llm_width > 0 ? secap_qformer_llm_project(c, m, out[0]) : NULL;
    out[4] = secap_qformer_text(c, m, in.ids.i, in.lens.i, NULL, (int)B, (int)S);
    out[5] = secap_qformer_text_embed(c, m, out[4]);

    int bad = 0;
    secap_tensor *loss = NULL;
    for (int k = 0; k < 6; k++) {
        if (!out[k]) continue;
        snprintf(name, sizeof name, "out/%s", keys[k]);
        arr ref = h5get(h, name, 0);
        assert_int_equal(ref.n, out[k]->n);
        for (int d = 0; d < ref.rank; d++) assert_int_equal(ref.dims[d], out[k]->shape[d]);
        snprintf(what, sizeof what, "%s %s", tag, name);
        if (k == 4) {   /* text rows past lens[b] are unspecified */
            float *cv = valid_rows(secap_f32(out[k]), in.lens.i, B, S, H), *rv = valid_rows(ref.x, in.lens.i, B, S, H);
            compare(what, cv, rv, ref.n, TOL, &bad);
            free(cv); free(rv);
        } else {
            compare(what, secap_f32(out[k]), ref.x, ref.n, TOL, &bad);
        }
        snprintf(name, sizeof name, "r/%s", keys[k]);
        arr r = h5get(h, name, 0);
        secap_tensor *term = secap_sum_all(c, secap_mul(c, out[k], secap_from_data(c, out[k]->ndim, out[k]->shape, r.x)));
        loss = loss ? secap_add(c, loss, term) : term;
        arr_free(&ref); arr_free(&r);
    }
    arr lref = h5get(h, "loss", 0);
    compare("loss", secap_f32(loss), lref.x, 1, TOL, &bad);
    arr_free(&lref);

    secap_backward(c, loss);
    int ngrad = 0;
    for (int t = 0; t < 2; t++) {
        const secap_params *p = t == 0 ? secap_qformer_bert_params(m) : secap_qformer_root_params(m);
        for (int i = 0; i < secap_params_count(p); i++, ngrad++) {
            const secap_param_entry *e = secap_params_entry(p, i);
            full_name(p, i, t == 0, name, sizeof name);
            assert_non_null(e->t->grad);
            char ds[600];
            snprintf(ds, sizeof ds, "grad/%s", name);
            arr g = h5get(h, ds, 0);
            assert_int_equal(g.n, e->t->n);
            snprintf(what, sizeof what, "%s grad %s", tag, name);
            size_t nl = strlen(name);
            if (nl > 13 && !strcmp(name + nl - 13, "self.key.bias")) {
                /* softmax is shift-invariant along the keys: q . b_k adds the
                 * same score to every key, so d loss / d key bias is exactly
                 * 0.  Both sides must be round-off next to key.weight's (the C
                 * side is exactly 0: attn_fwd detaches the key bias). */
                char wn[600];
                snprintf(wn, sizeof wn, "%.*sweight", (int)(strlen(ds) - 4), ds);
                arr gw = h5get(h, wn, 0);
                double scale = 0, dc = 0, dr = 0;
                for (int64_t j = 0; j < gw.n; j++) scale = fmax(scale, fabs(gw.x[j]));
                for (int64_t j = 0; j < g.n; j++) { dc = fmax(dc, fabs(e->t->grad[j])); dr = fmax(dr, fabs(g.x[j])); }
                int fail = !(dr <= 1e-9 * scale) || !(dc <= TOL * scale);
                printf("  %-72s max |C| %.3g, |ref| %.3g (exactly 0; key.weight grad %.3g)%s\n", what, dc, dr, scale,
                       fail ? "  <-- FAIL" : "");
                bad += fail;
                arr_free(&gw);
            } else {
                compare(what, e->t->grad, g.x, g.n, TOL, &bad);
            }
            arr_free(&g);
        }
    }
    arr ga = h5get(h, "grad_audio", 0);
    snprintf(what, sizeof what, "%s grad audio input", tag);
    compare(what, audio->grad, ga.x, ga.n, TOL, &bad);
    arr_free(&ga);
    printf("  %s: %d parameter gradients compared\n", tag, ngrad);
    /* the reference holds exactly the tensors of the table (no extra ones) */
    hid_t gg = H5Gopen2(h, "grad", H5P_DEFAULT);
    H5G_info_t info;
    H5Gget_info(gg, &info);
    H5Gclose(gg);
    assert_int_equal((int)info.nlinks, ngrad);
    if (bad) fail_msg("%s: %d tensors differ from PyTorch by more than %g relative (see above)", tag, bad, TOL);

    inputs_free(&in);
    H5Fclose(h);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

static void test_small_parity(void **st) { (void)st; parity("small"); }
static void test_blip_parity(void **st) { (void)st; parity("blip"); }

/* A padded batch gives every item what it gives alone (C against C, and
 * against the reference's items-alone outputs). */
static void batch_alone(const char *tag)
{
    char wfile[64], iofile[64], what[256];
    snprintf(wfile, sizeof wfile, "qformer_%s.h5", tag);
    snprintf(iofile, sizeof iofile, "qformer_%s_io.h5", tag);
    secap_ctx *c = new_ctx();
    secap_qformer *m = secap_qformer_load(c, tu_ref_path(wfile), 0);
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    hid_t h = h5open(tu_ref_path(iofile));
    inputs in = read_inputs(h);
    arr aq = h5get(h, "alone/query", 0), at = h5get(h, "alone/text", 0);
    int64_t B = in.audio.dims[0], T = in.audio.dims[1], A = in.audio.dims[2], S = in.ids.dims[1];
    int64_t Q = cf->num_query_tokens, H = cf->hidden_size;
    int bad = 0;
    secap_tensor *yq = secap_qformer_query(c, m, secap_from_data(c, 3, in.audio.dims, in.audio.x), in.frames.i);
    secap_tensor *yt = secap_qformer_text(c, m, in.ids.i, in.lens.i, NULL, (int)B, (int)S);
    for (int64_t b = 0; b < B; b++) {
        int32_t f = in.frames.i[b], n = in.lens.i[b];
        secap_tensor *x1 = secap_from_data(c, 3, (int64_t[]){1, f, A}, in.audio.x + b * T * A);
        secap_tensor *q1 = secap_qformer_query(c, m, x1, NULL);
        secap_tensor *t1 = secap_qformer_text(c, m, in.ids.i + b * S, NULL, NULL, 1, n);
        snprintf(what, sizeof what, "%s query: batch item %lld vs alone (C)", tag, (long long)b);
        compare(what, secap_f32(yq) + b * Q * H, secap_f32(q1), Q * H, 1e-5, &bad);
        snprintf(what, sizeof what, "%s query: alone (C) vs alone (PyTorch), item %lld", tag, (long long)b);
        compare(what, secap_f32(q1), aq.x + b * Q * H, Q * H, TOL, &bad);
        snprintf(what, sizeof what, "%s text: batch item %lld vs alone (C)", tag, (long long)b);
        compare(what, secap_f32(yt) + b * S * H, secap_f32(t1), n * H, 1e-5, &bad);
        snprintf(what, sizeof what, "%s text: alone (C) vs alone (PyTorch), item %lld", tag, (long long)b);
        compare(what, secap_f32(t1), at.x + b * S * H, n * H, TOL, &bad);
    }
    /* SECap's behaviour (frames = NULL: padding attended to) does differ */
    secap_tensor *yall = secap_qformer_query(c, m, secap_from_data(c, 3, in.audio.dims, in.audio.x), NULL);
    double d = 0;
    for (int64_t i = Q * H; i < B * Q * H; i++) d = fmax(d, fabs(secap_f32(yall)[i] - secap_f32(yq)[i]));
    printf("  %s: attending to the padded frames changes the padded items by %.3g\n", tag, d);
    assert_true(d > 1e-3);
    if (bad) fail_msg("%s: %d batch/alone comparisons failed (see above)", tag, bad);
    arr_free(&aq); arr_free(&at);
    inputs_free(&in);
    H5Fclose(h);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

static void test_small_batch_alone(void **st) { (void)st; batch_alone("small"); }
static void test_blip_batch_alone(void **st) { (void)st; batch_alone("blip"); }

/* Frozen use (stage 2 option): no parameter takes a gradient, the tape
 * still carries one to the input, equal to the reference's. */
static void test_frozen(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer *m = secap_qformer_load(c, tu_ref_path("qformer_small.h5"), 0);
    hid_t h = h5open(tu_ref_path("qformer_small_io.h5"));
    inputs in = read_inputs(h);
    arr ref = h5get(h, "out/query", 0);
    secap_tensor *audio = secap_leaf(c, 3, in.audio.dims, in.audio.x);
    secap_tensor *q = secap_qformer_query(c, m, audio, in.frames.i);
    int bad = 0;
    compare("frozen query outputs", secap_f32(q), ref.x, ref.n, TOL, &bad);
    assert_true(q->requires_grad);
    /* only the query output term of the loss: d/d audio of sum(q * r) */
    arr r = h5get(h, "r/query", 0);
    secap_backward(c, secap_sum_all(c, secap_mul(c, q, secap_from_data(c, 3, q->shape, r.x))));
    assert_non_null(audio->grad);
    double g = 0;
    for (int64_t i = 0; i < audio->n; i++) g = fmax(g, fabs(audio->grad[i]));
    assert_true(g > 0 && isfinite(g));
    for (int t = 0; t < 2; t++) {
        const secap_params *p = t ? secap_qformer_root_params(m) : secap_qformer_bert_params(m);
        for (int i = 0; i < secap_params_count(p); i++) {
            assert_false(secap_params_entry(p, i)->trainable);
            assert_null(secap_params_entry(p, i)->t->grad);
        }
    }
    assert_int_equal(secap_params_numel(secap_qformer_bert_params(m), 1), 0);
    if (bad) fail_msg("frozen outputs differ");
    arr_free(&ref); arr_free(&r);
    inputs_free(&in);
    H5Fclose(h);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* ------------------------------------------------------------- init */

static double stdev(const secap_tensor *t, double *mean_out)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < t->n; i++) { s += secap_f32(t)[i]; s2 += (double)secap_f32(t)[i] * secap_f32(t)[i]; }
    double mean = s / (double)t->n;
    if (mean_out) *mean_out = mean;
    return sqrt(fmax(s2 / (double)t->n - mean * mean, 0));
}

static int all_equal(const secap_tensor *t, float v)
{
    for (int64_t i = 0; i < t->n; i++) if (secap_f32(t)[i] != v) return 0;
    return 1;
}

/* Checks one tensor against the random rule: LayerNorm weight 1, biases 0,
 * else mean ~0 and std ~ initializer_range. */
static void check_random_rule(const char *name, const secap_tensor *t, double std)
{
    size_t n = strlen(name);
    if (strstr(name, "LayerNorm.weight")) {
        if (!all_equal(t, 1.0f)) fail_msg("%s: LayerNorm weight not all ones", name);
    } else if (n > 5 && !strcmp(name + n - 5, ".bias")) {
        if (!all_equal(t, 0.0f)) fail_msg("%s: bias not all zeros", name);
    } else {
        double mean, s = stdev(t, &mean);
        if (t->n >= 200 && (fabs(s - std) > 0.15 * std || fabs(mean) > 4 * std / sqrt((double)t->n)))
            fail_msg("%s: %lld values with mean %.3g, std %.3g; expected normal(0, %g)", name, (long long)t->n,
                     mean, s, std);
    }
}

static void test_init_bert(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer *ref = secap_qformer_load(c, tu_ref_path("qformer_small.h5"), 0);
    secap_qformer_config extras = *secap_qformer_cfg(ref);
    extras.hidden_size = 1;   /* BERT fields come from the BERT file */
    extras.num_hidden_layers = 99;
    secap_qformer *m = secap_qformer_init_bert(c, tu_ref_path("qformer_small_bert.h5"), &extras, 1, 5);
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    assert_int_equal(cf->hidden_size, secap_qformer_cfg(ref)->hidden_size);
    assert_int_equal(cf->num_hidden_layers, secap_qformer_cfg(ref)->num_hidden_layers);
    assert_int_equal(cf->type_vocab_size, 2);
    assert_int_equal(cf->text_mode, 1);
    double std = cf->initializer_range;
    const secap_params *p = secap_qformer_bert_params(m);
    int ncopy = 0, nfile = 0, nrand = 0;
    char name[512], src[512];
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *e = secap_params_entry(p, i);
        const char *q = strstr(e->name, "_query.");
        assert_true(e->trainable);
        if (q) {   /* a copy of the text feed-forward */
            snprintf(src, sizeof src, "%s%.*s%s", SECAP_QFORMER_PREFIX, (int)(q - e->name), e->name, q + 6);
            secap_tensor *s = secap_qformer_param(m, src);
            assert_non_null(s);
            assert_memory_equal(e->t->data, s->data, (size_t)s->n * sizeof(float));
            assert_true(e->t->data != s->data);
            ncopy++;
        } else if (strstr(e->name, ".crossattention.")) {
            check_random_rule(e->name, e->t, std);
            nrand++;
        } else {   /* from the file: qformer_small's values */
            full_name(p, i, 1, name, sizeof name);
            secap_tensor *s = secap_qformer_param(ref, name);
            assert_non_null(s);
            assert_memory_equal(e->t->data, s->data, (size_t)s->n * sizeof(float));
            nfile++;
        }
    }
    const secap_params *r = secap_qformer_root_params(m);
    for (int i = 0; i < secap_params_count(r); i++)
        check_random_rule(secap_params_entry(r, i)->name, secap_params_entry(r, i)->t, std);
    printf("  init from BERT: %d tensors read, %d copied (query FFN), %d + %d random\n", nfile, ncopy, nrand,
           secap_params_count(r));
    assert_int_equal(ncopy, 6 * cf->num_hidden_layers);
    assert_int_equal(nrand, 10 * ((cf->num_hidden_layers + cf->cross_attention_freq - 1) / cf->cross_attention_freq));

    /* the text mode is qformer_small's */
    hid_t h = h5open(tu_ref_path("qformer_small_io.h5"));
    inputs in = read_inputs(h);
    arr tref = h5get(h, "out/text", 0);
    int64_t B = in.ids.dims[0], S = in.ids.dims[1], H = cf->hidden_size;
    secap_tensor *y = secap_qformer_text(c, m, in.ids.i, in.lens.i, NULL, (int)B, (int)S);
    float *cv = valid_rows(secap_f32(y), in.lens.i, B, S, H), *rv = valid_rows(tref.x, in.lens.i, B, S, H);
    int bad = 0;
    compare("init from BERT: text mode vs reference", cv, rv, tref.n, TOL, &bad);
    free(cv); free(rv);
    if (bad) fail_msg("text mode of the BERT-initialised Q-Former differs");
    /* same seed, same draws; another seed, other draws */
    secap_qformer *m2 = secap_qformer_init_bert(c, tu_ref_path("qformer_small_bert.h5"), &extras, 1, 5);
    secap_qformer *m3 = secap_qformer_init_bert(c, tu_ref_path("qformer_small_bert.h5"), &extras, 1, 6);
    secap_tensor *k1 = secap_qformer_param(m, "Qformer.bert.encoder.layer.0.crossattention.self.key.weight");
    secap_tensor *k2 = secap_qformer_param(m2, "Qformer.bert.encoder.layer.0.crossattention.self.key.weight");
    secap_tensor *k3 = secap_qformer_param(m3, "Qformer.bert.encoder.layer.0.crossattention.self.key.weight");
    assert_memory_equal(k1->data, k2->data, (size_t)k1->n * sizeof(float));
    assert_memory_not_equal(k1->data, k3->data, (size_t)k1->n * sizeof(float));
    secap_qformer_free(m3);
    secap_qformer_free(m2);
    arr_free(&tref);
    inputs_free(&in);
    H5Fclose(h);
    secap_qformer_free(m);
    secap_qformer_free(ref);
    secap_ctx_free(c);
}

static void small_cfg(secap_qformer_config *cf)
{
    secap_qformer_config_default(cf);
    cf->hidden_size = 32; cf->num_hidden_layers = 3; cf->num_attention_heads = 4; cf->intermediate_size = 48;
    cf->vocab_size = 50; cf->max_position_embeddings = 20; cf->num_query_tokens = 4; cf->encoder_width = 24;
    cf->audio_width = 40; cf->llm_width = 28; cf->embed_dim = 16;
}

/* Random init, save, reload: every tensor survives bit-exactly and the
 * reloaded model computes the same outputs. */
static void test_random_save_load(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer_config cf;
    small_cfg(&cf);
    cf.initializer_range = 0.05;
    secap_qformer *m = secap_qformer_init_random(c, &cf, 1, 42);
    for (int t = 0; t < 2; t++) {
        const secap_params *p = t ? secap_qformer_root_params(m) : secap_qformer_bert_params(m);
        for (int i = 0; i < secap_params_count(p); i++)
            check_random_rule(secap_params_entry(p, i)->name, secap_params_entry(p, i)->t, 0.05);
    }
    /* cross-attention only in layers 0 and 2; key/value widths W */
    assert_non_null(secap_qformer_param(m, "Qformer.bert.encoder.layer.2.crossattention.self.value.weight"));
    assert_null(secap_qformer_param(m, "Qformer.bert.encoder.layer.1.crossattention.self.value.weight"));
    secap_tensor *kw = secap_qformer_param(m, "Qformer.bert.encoder.layer.0.crossattention.self.key.weight");
    assert_int_equal(kw->shape[0], 32);
    assert_int_equal(kw->shape[1], 24);
    assert_int_equal(secap_qformer_param(m, "query_tokens")->shape[1], 4);
    assert_int_equal(secap_qformer_param(m, "audio_project.weight")->shape[1], 40);

    const char *path = tu_tmp("qformer_rand.h5");
    secap_qformer_save(m, path, 0);
    secap_qformer *m2 = secap_qformer_load(c, path, 0);
    assert_memory_equal(secap_qformer_cfg(m2), &cf, sizeof cf);
    int n = 0;
    for (int t = 0; t < 2; t++) {
        const secap_params *p = t ? secap_qformer_root_params(m) : secap_qformer_bert_params(m);
        const secap_params *p2 = t ? secap_qformer_root_params(m2) : secap_qformer_bert_params(m2);
        assert_int_equal(secap_params_count(p), secap_params_count(p2));
        for (int i = 0; i < secap_params_count(p); i++, n++) {
            const secap_tensor *a = secap_params_entry(p, i)->t, *b = secap_params_entry(p2, i)->t;
            assert_string_equal(secap_params_entry(p, i)->name, secap_params_entry(p2, i)->name);
            assert_memory_equal(a->data, b->data, (size_t)a->n * sizeof(float));
        }
    }
    printf("  saved and reloaded %d tensors\n", n);
    float *x = malloc(2 * 7 * 40 * sizeof *x);
    for (int i = 0; i < 2 * 7 * 40; i++) x[i] = sinf(0.37f * (float)i);
    int32_t frames[2] = {7, 5};
    secap_tensor *y1 = secap_qformer_query(c, m, secap_from_data(c, SECAP_SHAPE(2, 7, 40), x), frames);
    secap_tensor *y2 = secap_qformer_query(c, m2, secap_from_data(c, SECAP_SHAPE(2, 7, 40), x), frames);
    assert_memory_equal(y1->data, y2->data, (size_t)y1->n * sizeof(float));
    secap_tensor *e = secap_qformer_speech_embed(c, m2, y2, SECAP_QFORMER_POOL_MEAN);
    assert_int_equal(e->shape[0], 2);
    assert_int_equal(e->shape[1], 16);
    secap_tensor *l = secap_qformer_llm_project(c, m2, y2);
    assert_int_equal(l->shape[2], 28);
    free(x);
    /* the trainable part only */
    const char *tpath = tu_tmp("qformer_rand_trainable.h5");
    secap_qformer_save(m, tpath, 1);
    secap_qformer *m3 = secap_qformer_load(c, tpath, 1);
    assert_int_equal(secap_params_numel(secap_qformer_bert_params(m3), 1), secap_params_numel(secap_qformer_bert_params(m), 0));
    secap_qformer_free(m3);
    secap_qformer_free(m2);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* SECap's released bridge: no text side, queries and audio only. */
static void test_query_only_layout(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer_config cf;
    small_cfg(&cf);
    cf.text_mode = 0;
    cf.embed_dim = 0;
    secap_qformer *m = secap_qformer_init_random(c, &cf, 0, 3);
    assert_null(secap_qformer_param(m, "Qformer.bert.embeddings.word_embeddings.weight"));
    assert_null(secap_qformer_param(m, "Qformer.bert.encoder.layer.0.intermediate.dense.weight"));
    assert_non_null(secap_qformer_param(m, "Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"));
    assert_non_null(secap_qformer_param(m, "Qformer.bert.embeddings.LayerNorm.weight"));
    const char *path = tu_tmp("qformer_secap_layout.h5");
    secap_qformer_save(m, path, 0);
    secap_qformer *m2 = secap_qformer_load(c, path, 0);
    float x[3 * 40] = {0};
    secap_tensor *y = secap_qformer_query(c, m2, secap_from_data(c, SECAP_SHAPE(1, 3, 40), x), NULL);
    assert_int_equal(y->shape[1], 4);
    int32_t ids[2] = {1, 2};
    EXPECT_FATAL(secap_qformer_text(c, m2, ids, NULL, NULL, 1, 2), "no text mode");
    EXPECT_FATAL(secap_qformer_speech_embed(c, m2, y, SECAP_QFORMER_POOL_MEAN), "no speech_proj");
    EXPECT_FATAL(secap_qformer_text_embed(c, m2, y), "no text_proj");
    secap_qformer_free(m2);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* Token types: an all-zero types array is the default (row 0 added to every
 * token); other types change the output. */
static void test_token_types(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer_config cf;
    small_cfg(&cf);
    secap_qformer *m = secap_qformer_init_random(c, &cf, 0, 4);
    int32_t ids[6] = {2, 7, 9, 2, 11, 0}, lens[2] = {3, 2}, zero[6] = {0}, ones[6] = {0, 1, 1, 0, 1, 1};
    secap_tensor *a = secap_qformer_text(c, m, ids, lens, NULL, 2, 3);
    secap_tensor *b = secap_qformer_text(c, m, ids, lens, zero, 2, 3);
    secap_tensor *d = secap_qformer_text(c, m, ids, lens, ones, 2, 3);
    assert_memory_equal(a->data, b->data, (size_t)a->n * sizeof(float));
    assert_memory_not_equal(a->data, d->data, (size_t)a->n * sizeof(float));
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* Dropout (hidden_dropout_prob) acts in training mode only; with p = 0 the
 * training forward equals the eval one. */
static void test_dropout(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer_config cf;
    small_cfg(&cf);
    cf.hidden_dropout_prob = 0.3;
    secap_qformer *m = secap_qformer_init_random(c, &cf, 1, 4);
    cf.hidden_dropout_prob = 0.0;
    secap_qformer *m0 = secap_qformer_init_random(c, &cf, 1, 4);   /* same seed: same weights */
    float x[2 * 3 * 40];
    for (int i = 0; i < 2 * 3 * 40; i++) x[i] = cosf(0.11f * (float)i);
    secap_tensor *in = secap_from_data(c, SECAP_SHAPE(2, 3, 40), x);
    secap_tensor *eval = secap_qformer_query(c, m, in, NULL);
    c->training = 1;
    secap_tensor *tr = secap_qformer_query(c, m, in, NULL);
    secap_tensor *tr0 = secap_qformer_query(c, m0, in, NULL);
    c->training = 0;
    secap_tensor *eval0 = secap_qformer_query(c, m0, in, NULL);
    assert_memory_equal(eval->data, eval0->data, (size_t)eval->n * sizeof(float));
    assert_memory_equal(tr0->data, eval0->data, (size_t)eval->n * sizeof(float));
    double d = 0;
    for (int64_t i = 0; i < eval->n; i++) d = fmax(d, fabs(secap_f32(tr)[i] - secap_f32(eval)[i]));
    printf("  dropout 0.3 in training changes the query outputs by up to %.3g\n", d);
    assert_true(d > 0.1);
    secap_qformer_free(m0);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* ------------------------------------------------------------- refusals */

static void test_bad_config(void **st)
{
    (void)st;
    secap_qformer_config cf;
    small_cfg(&cf); cf.num_attention_heads = 5;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "not a multiple of num_attention_heads 5");
    small_cfg(&cf); cf.cross_attention_freq = 0;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "cross_attention_freq = 0");
    small_cfg(&cf); cf.num_query_tokens = 0;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "num_query_tokens = 0");
    small_cfg(&cf); cf.encoder_width = 0;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "encoder_width = 0");
    small_cfg(&cf); cf.layer_norm_eps = 0;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "layer_norm_eps");
    small_cfg(&cf); cf.hidden_dropout_prob = 1.0;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "hidden_dropout_prob");
    small_cfg(&cf); cf.text_mode = 1; cf.vocab_size = 0;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "vocab_size");
    small_cfg(&cf); cf.llm_width = -1;
    EXPECT_FATAL(secap_qformer_config_validate(&cf, "test"), "must be >= 0");
    small_cfg(&cf); cf.num_hidden_layers = 0;
    secap_ctx *c = new_ctx();
    EXPECT_FATAL(secap_qformer_init_random(c, &cf, 1, 1), "must all be positive");
    printf("  refused: %s\n", secap_last_error());
    secap_ctx_free(c);
}

/* Writes m's config and tensors into path with one change: skip a tensor,
 * give one a wrong shape, add an unknown one, or set an attribute. */
typedef enum { EDIT_SKIP, EDIT_SHAPE, EDIT_EXTRA, EDIT_ATTR_STR, EDIT_ATTR_INT } edit_kind;

static void write_edited(const secap_qformer *m, const char *path, edit_kind kind, const char *name, const char *sval,
                         int64_t ival)
{
    secap_weights *w = secap_weights_create(path);
    secap_qformer_config_write(secap_qformer_cfg(m), w);
    char full[512];
    for (int t = 0; t < 2; t++) {
        const secap_params *p = t ? secap_qformer_root_params(m) : secap_qformer_bert_params(m);
        for (int i = 0; i < secap_params_count(p); i++) {
            const secap_param_entry *e = secap_params_entry(p, i);
            full_name(p, i, t == 0, full, sizeof full);
            if (!strcmp(full, name) && kind == EDIT_SKIP) continue;
            int64_t shape[4];
            memcpy(shape, e->shape, sizeof shape);
            if (!strcmp(full, name) && kind == EDIT_SHAPE) {
                float *tmp = calloc((size_t)(e->t->n * 2), sizeof *tmp);
                shape[0] *= 2;
                secap_weights_write(w, full, e->ndim, shape, tmp, SECAP_WDTYPE_F32);
                free(tmp);
                continue;
            }
            secap_weights_write(w, full, e->ndim, shape, secap_f32(e->t), SECAP_WDTYPE_F32);
        }
    }
    float z[3] = {0};
    if (kind == EDIT_EXTRA) secap_weights_write(w, name, 1, (int64_t[]){3}, z, SECAP_WDTYPE_F32);
    if (kind == EDIT_ATTR_STR) secap_weights_set_string(w, name, sval);
    if (kind == EDIT_ATTR_INT) secap_weights_set_int(w, name, ival);
    secap_weights_close(w);
}

static void load_fails(const char *path, const char *s1, const char *s2)
{
    secap_ctx *c = new_ctx();
    EXPECT_FATAL(secap_qformer_load(c, path, 1), s1);
    if (s2 && !strstr(secap_last_error(), s2)) fail_msg("error \"%s\" lacks \"%s\"", secap_last_error(), s2);
    printf("  refused: %s\n", secap_last_error());
    secap_ctx_free(c);
}

static void test_bad_files(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer_config cf;
    small_cfg(&cf);
    secap_qformer *m = secap_qformer_init_random(c, &cf, 0, 9);
    const char *victim = "Qformer.bert.encoder.layer.2.crossattention.self.key.weight";
    const char *p;
    p = tu_tmp("qf_missing.h5");
    write_edited(m, p, EDIT_SKIP, victim, NULL, 0);
    load_fails(p, victim, "qf_missing.h5");
    p = tu_tmp("qf_missing_root.h5");
    write_edited(m, p, EDIT_SKIP, "audio_project.bias", NULL, 0);
    load_fails(p, "audio_project.bias", NULL);
    p = tu_tmp("qf_shape.h5");
    write_edited(m, p, EDIT_SHAPE, "Qformer.bert.encoder.layer.1.output_query.dense.weight", NULL, 0);
    load_fails(p, "Qformer.bert.encoder.layer.1.output_query.dense.weight", NULL);
    p = tu_tmp("qf_unknown.h5");
    write_edited(m, p, EDIT_EXTRA, "Qformer.bert.encoder.layer.1.crossattention.self.key.weight", NULL, 0);
    load_fails(p, "Qformer.bert.encoder.layer.1.crossattention.self.key.weight", NULL);
    p = tu_tmp("qf_position_ids.h5");   /* LAVIS's buffer is ignored */
    write_edited(m, p, EDIT_EXTRA, "Qformer.bert.embeddings.position_ids", NULL, 0);
    secap_qformer_free(secap_qformer_load(c, p, 0));
    p = tu_tmp("qf_bert_type.h5");
    write_edited(m, p, EDIT_ATTR_STR, "model_type", "bert", 0);   /* overwrites the attribute */
    load_fails(p, "not a Q-Former file", "model_type");
    p = tu_tmp("qf_act.h5");
    write_edited(m, p, EDIT_ATTR_STR, "hidden_act", "gelu_new", 0);
    load_fails(p, "hidden_act", "gelu_new");
    p = tu_tmp("qf_freq.h5");
    write_edited(m, p, EDIT_ATTR_INT, "cross_attention_freq", NULL, 0);
    load_fails(p, "cross_attention_freq = 0", NULL);
    p = tu_tmp("qf_heads.h5");
    write_edited(m, p, EDIT_ATTR_INT, "num_attention_heads", NULL, 3);
    load_fails(p, "not a multiple of num_attention_heads 3", NULL);
    /* a Q-Former file is not a BERT file */
    EXPECT_FATAL(secap_qformer_init_bert(c, tu_ref_path("qformer_small.h5"), &cf, 1, 1), "model_type");
    printf("  refused: %s\n", secap_last_error());
    secap_qformer_free(m);
    secap_ctx_free(c);
}

static void test_bad_shapes(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_qformer_config cf;
    small_cfg(&cf);
    secap_qformer *m = secap_qformer_init_random(c, &cf, 1, 9);
    float x[2 * 5 * 40] = {0};
    secap_tensor *good = secap_from_data(c, SECAP_SHAPE(2, 5, 40), x);
    EXPECT_FATAL(secap_qformer_query(c, m, secap_from_data(c, SECAP_SHAPE(2, 5, 24), x), NULL), "expected float32 [B, T, 40]");
    printf("  refused: %s\n", secap_last_error());
    EXPECT_FATAL(secap_qformer_query(c, m, secap_from_data(c, SECAP_SHAPE(10, 40), x), NULL), "audio features [10, 40]");
    int32_t frames[2] = {5, 0};
    EXPECT_FATAL(secap_qformer_query(c, m, good, frames), "item 1 has 0 valid frames");
    frames[1] = 6;
    EXPECT_FATAL(secap_qformer_query(c, m, good, frames), "outside [1, 5]");
    int32_t ids[2 * 21] = {0}, lens[2] = {3, 4};
    EXPECT_FATAL(secap_qformer_text(c, m, ids, NULL, NULL, 1, 21), "more than max_position_embeddings = 20");
    printf("  refused: %s\n", secap_last_error());
    ids[6] = 50;
    EXPECT_FATAL(secap_qformer_text(c, m, ids, lens, NULL, 2, 5), "token id 50 at item 1, position 1");
    ids[6] = 0;
    lens[0] = 6;
    EXPECT_FATAL(secap_qformer_text(c, m, ids, lens, NULL, 2, 5), "item 0 has 6 tokens");
    lens[0] = 3;
    int32_t types[10] = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_FATAL(secap_qformer_text(c, m, ids, lens, types, 2, 5), "token type 2");
    types[2] = 1;
    secap_tensor *t = secap_qformer_text(c, m, ids, lens, types, 2, 5);
    EXPECT_FATAL(secap_qformer_speech_embed(c, m, t, SECAP_QFORMER_POOL_MEAN), "expected query outputs [B, 4, 32]");
    printf("  refused: %s\n", secap_last_error());
    secap_tensor *q = secap_qformer_query(c, m, good, NULL);
    EXPECT_FATAL(secap_qformer_text_embed(c, m, secap_reshape(c, q, 2, (int64_t[]){8, 32})), "text outputs");
    EXPECT_FATAL(secap_qformer_llm_project(c, m, secap_reshape(c, q, 3, (int64_t[]){2, 2, 64})), "[2, 2, 64]");
    secap_qformer_free(m);
    secap_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_parity),
        cmocka_unit_test(test_blip_parity),
        cmocka_unit_test(test_small_batch_alone),
        cmocka_unit_test(test_blip_batch_alone),
        cmocka_unit_test(test_frozen),
        cmocka_unit_test(test_init_bert),
        cmocka_unit_test(test_random_save_load),
        cmocka_unit_test(test_query_only_layout),
        cmocka_unit_test(test_token_types),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
