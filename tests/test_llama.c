/* LLaMA + LoRA parity against PyTorch (tests/ref_llama.py) and its contracts.
 *
 * Three variants with random weights and a random adapter (lora_B non-zero):
 * "gqa" (2 kv heads for 4 query heads, untied lm_head, default rope_theta,
 * LoRA on q_proj/v_proj), "tied" (tied embeddings, rope_theta 1000, LoRA on
 * every projection) and "bf16" (gqa with bf16-rounded projections and
 * embeddings, loaded as bf16 storage).  On SECap's caption batch
 * [BOS][audio vectors][prompt][caption][EOS] (right-padded), against the
 * reference: the batch layout and targets, the logits of every valid step,
 * the caption loss, and the gradients of the loss w.r.t. the audio vectors
 * and every LoRA tensor, within 1e-4 relative (bf16: 3e-4, the bf16 x f32
 * products split x into two bf16 halves, 2^-16 relative), the largest
 * difference printed per tensor.  Plus: KV-cache decoding (a prefill, then
 * one step at a time, rows at different lengths) gives the full forward's
 * logits at every step; adapter export -> reload is bit-identical and
 * writes PEFT's adapter_config.json; the merge tool's merged model without
 * LoRA equals the model with LoRA (for the reference's adapter file and for
 * one exported here); a fresh adapter (PEFT init) changes
 * nothing and only LoRA tensors are trainable; LoRA off still passes
 * gradients to the inputs; refusals name what is wrong.  LM pretraining
 * (train_base): the next-token loss and the gradient of every base tensor
 * (tied embeddings included) within 1e-4 relative, the optimizer groups. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"

#include "secap/autograd.h"
#include "secap/ini.h"
#include "secap/llama.h"
#include "secap/ops.h"
#include "secap/optim.h"

#include "fixture.h"

#define TOL 1e-4
#define TOL_BF16 3e-4

static char *ref(const char *fmt, const char *tag)
{
    char name[256];
    snprintf(name, sizeof name, fmt, tag);
    char *p = strdup(tu_ref_path(name));
    assert_non_null(p);
    return p;
}

static secap_ctx *new_ctx(void)
{
    secap_ctx *c = secap_ctx_new((size_t)256 << 20, (size_t)1 << 30, 1);
    c->training = 0;
    return c;
}

/* max|c - ref| / max|ref|, printed; a failure past tol counts in *bad. */
static double compare(const char *what, const float *c, const float *r, int64_t n, double tol, int *bad)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)c[i] - (double)r[i]), a = fabs((double)r[i]);
        if (!(e <= d)) d = e;
        if (a > m) m = a;
    }
    double rel = m > 0 ? d / m : d;
    int fail = !(rel <= tol);
    printf("  %-72s max |diff| %.3g  rel %.3g%s\n", what, d, rel, fail ? "  <-- FAIL" : "");
    if (fail) (*bad)++;
    return rel;
}

/* The fixture's caption inputs. */
typedef struct {
    arr audio, prompt, plen, caption, clen, lens, targets;
    const int32_t *pp[8], *cp[8];
    int B;
} inputs;

static inputs read_inputs(hid_t h)
{
    inputs in = { h5get(h, "audio", 0), h5get(h, "prompt", 1), h5get(h, "prompt_len", 1), h5get(h, "caption", 1),
                  h5get(h, "caption_len", 1), h5get(h, "lens", 1), h5get(h, "targets", 1), {0}, {0}, 0 };
    in.B = (int)in.audio.dims[0];
    assert_true(in.B <= 8);
    for (int b = 0; b < in.B; b++) {
        in.pp[b] = in.prompt.i + b * in.prompt.dims[1];
        in.cp[b] = in.caption.i + b * in.caption.dims[1];
    }
    return in;
}

static void inputs_free(inputs *in)
{
    arr_free(&in->audio); arr_free(&in->prompt); arr_free(&in->plen); arr_free(&in->caption);
    arr_free(&in->clen); arr_free(&in->lens); arr_free(&in->targets);
}

static secap_llama_batch make_batch(secap_ctx *c, const secap_llama *m, const inputs *in, secap_tensor **audio)
{
    *audio = secap_leaf(c, 3, in->audio.dims, in->audio.x);
    return secap_llama_caption_batch(c, m, *audio, in->pp, in->plen.i, in->cp, in->clen.i, in->B);
}

/* Logits with rows t >= lens[b] zeroed (the reference zeroes them too). */
static float *valid_logits(const secap_tensor *lg, const int32_t *lens)
{
    int64_t B = lg->shape[0], T = lg->shape[1], V = lg->shape[2];
    float *y = calloc((size_t)lg->n, sizeof *y);
    assert_non_null(y);
    for (int64_t b = 0; b < B; b++)
        memcpy(y + b * T * V, secap_f32(lg) + b * T * V, (size_t)(lens[b] * V) * sizeof *y);
    return y;
}

static secap_llama *load_variant(secap_ctx *c, const char *tag, int with_adapter, int bf16)
{
    char *w = ref("llama_%s.h5", tag), *a = ref("llama_%s_adapter.h5", tag);
    secap_llama_opts o = { .adapter = with_adapter ? a : NULL, .base_bf16 = bf16, .seed = 5 };
    secap_llama *m = secap_llama_load(c, w, &o);
    free(w); free(a);
    return m;
}

/* ------------------------------------------------------------- parity */

static void parity(const char *tag, int bf16, double tol)
{
    secap_ctx *c = new_ctx();
    secap_llama *m = load_variant(c, tag, 1, bf16);
    char *io = ref("llama_%s_io.h5", tag);
    hid_t h = H5Fopen(io, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0) fail_msg("cannot open %s (hint: run tests/ref_llama.py build/ref)", io);
    inputs in = read_inputs(h);
    secap_tensor *audio;
    secap_llama_batch bt = make_batch(c, m, &in, &audio);
    int64_t T = in.targets.dims[1];
    assert_int_equal(bt.T, T);
    for (int b = 0; b < in.B; b++) assert_int_equal(bt.lens[b], in.lens.i[b]);
    for (int64_t i = 0; i < in.B * T; i++)
        if (bt.targets[i] != in.targets.i[i])
            fail_msg("%s: target %lld is %d, the reference %d", tag, (long long)i, bt.targets[i], in.targets.i[i]);

    int bad = 0;
    char what[512], name[512];
    secap_tensor *logits = secap_llama_forward(c, m, bt.x, bt.lens);
    arr rl = h5get(h, "logits", 0);
    assert_int_equal(rl.n, logits->n);
    float *vl = valid_logits(logits, bt.lens);
    snprintf(what, sizeof what, "%s logits", tag);
    compare(what, vl, rl.x, rl.n, tol, &bad);
    free(vl); arr_free(&rl);
    secap_tensor *loss = secap_llama_loss(c, logits, bt.targets);
    arr lref = h5get(h, "loss", 0);
    snprintf(what, sizeof what, "%s caption loss", tag);
    compare(what, secap_f32(loss), lref.x, 1, tol, &bad);
    arr_free(&lref);

    secap_backward(c, loss);
    arr ga = h5get(h, "grad_audio", 0);
    assert_non_null(audio->grad);
    snprintf(what, sizeof what, "%s grad audio", tag);
    compare(what, audio->grad, ga.x, ga.n, tol, &bad);
    arr_free(&ga);
    const secap_params *lp = secap_llama_lora_params(m);
    assert_non_null(lp);
    assert_true(secap_params_count(lp) > 0);
    for (int i = 0; i < secap_params_count(lp); i++) {
        const secap_param_entry *e = secap_params_entry(lp, i);
        assert_true(e->trainable);
        assert_non_null(e->t->grad);
        snprintf(name, sizeof name, "grad/%s", e->name);
        arr g = h5get(h, name, 0);
        assert_int_equal(g.n, e->t->n);
        snprintf(what, sizeof what, "%s grad %s", tag, e->name);
        compare(what, e->t->grad, g.x, g.n, tol, &bad);
        arr_free(&g);
    }
    /* the base is frozen: no entry trainable, no gradient buffer */
    const secap_params *bp = secap_llama_base_params(m);
    for (int i = 0; i < secap_params_count(bp); i++) {
        const secap_param_entry *e = secap_params_entry(bp, i);
        if (e->trainable || e->t->grad) fail_msg("%s: base tensor %s takes a gradient", tag, e->name);
        int want_bf16 = bf16 && (strstr(e->name, "_proj.") || strstr(e->name, "embed") || strstr(e->name, "lm_head"));
        if ((e->dtype == SECAP_BF16) != want_bf16)
            fail_msg("%s: base tensor %s has storage dtype %d", tag, e->name, (int)e->dtype);
    }
    inputs_free(&in);
    H5Fclose(h);
    free(io);
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("%s: %d tensors differ from the PyTorch reference", tag, bad);
}

static void test_gqa_parity(void **st) { (void)st; parity("gqa", 0, TOL); }
static void test_tied_parity(void **st) { (void)st; parity("tied", 0, TOL); }
static void test_bf16_parity(void **st) { (void)st; parity("bf16", 1, TOL_BF16); }

/* LM pretraining (opts.train_base): the next-token loss of a padded id
 * batch and the gradient of every base tensor (embeddings, norms, every
 * projection, lm_head; tied: the embedding sums the lookup's and the
 * logits' parts) against tests/ref_llama.py's llama_TAG_lm.h5. */
static void lm_parity(const char *tag)
{
    secap_ctx *c = new_ctx();
    char *w = ref("llama_%s.h5", tag), *io = ref("llama_%s_lm.h5", tag);
    secap_llama_opts o = { .train_base = 1 };
    secap_llama *m = secap_llama_load(c, w, &o);
    assert_true(secap_llama_train_base(m));
    hid_t h = H5Fopen(io, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0) fail_msg("cannot open %s (hint: run tests/ref_llama.py build/ref)", io);
    arr ids = h5get(h, "ids", 1), lens = h5get(h, "lens", 1), tg = h5get(h, "targets", 1), lref = h5get(h, "loss", 0);
    int B = (int)ids.dims[0], T = (int)ids.dims[1];
    secap_tensor *x = secap_llama_embed(c, m, ids.i, B, T);
    secap_tensor *loss = secap_llama_loss(c, secap_llama_forward(c, m, x, lens.i), tg.i);
    int bad = 0;
    char what[512], name[512];
    snprintf(what, sizeof what, "%s lm loss (train_base)", tag);
    compare(what, secap_f32(loss), lref.x, 1, TOL, &bad);
    secap_backward(c, loss);
    const secap_params *bp = secap_llama_base_params(m);
    int n = secap_params_count(bp);
    assert_int_equal(n, secap_llama_cfg(m)->tie_word_embeddings ? 20 : 21);
    for (int i = 0; i < n; i++) {
        const secap_param_entry *e = secap_params_entry(bp, i);
        if (!e->trainable || e->dtype != SECAP_F32 || !e->t->grad)
            fail_msg("%s: base tensor %s is not a trainable f32 parameter with a gradient", tag, e->name);
        snprintf(name, sizeof name, "grad/%s", e->name);
        arr g = h5get(h, name, 0);
        assert_int_equal(g.n, e->t->n);
        snprintf(what, sizeof what, "%s lm grad %s", tag, e->name);
        compare(what, e->t->grad, g.x, g.n, TOL, &bad);
        arr_free(&g);
    }
    arr_free(&ids); arr_free(&lens); arr_free(&tg); arr_free(&lref);
    H5Fclose(h);
    free(w); free(io);
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("%s: %d LM tensors differ from the PyTorch reference", tag, bad);
}

static void test_lm_parity_gqa(void **st) { (void)st; lm_parity("gqa"); }
static void test_lm_parity_tied(void **st) { (void)st; lm_parity("tied"); }

/* train_base: the optimizer groups of secap_llama.h (norms without decay),
 * every base tensor moves after one AdamW step, and bf16 storage is
 * refused. */
static void test_train_base_optimizer(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    char *w = ref("llama_%s.h5", "tied");
    secap_llama_opts o = { .train_base = 1 };
    secap_llama *m = secap_llama_load(c, w, &o);
    const secap_params *bp = secap_llama_base_params(m);
    const secap_llama_config *cf = secap_llama_cfg(m);
    secap_adamw *opt = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int g0 = secap_adamw_group(opt, 1.0f, 0.0f), g1 = secap_adamw_group(opt, 1.0f, 0.1f);
    int nd = secap_adamw_add_params(opt, c, bp, SECAP_LLAMA_NO_DECAY, NULL, g0);
    int d = secap_adamw_add_params(opt, c, bp, NULL, NULL, g1);
    assert_int_equal(nd, 2 * cf->num_hidden_layers + 1);
    assert_int_equal(nd + d, secap_params_count(bp));
    for (int i = 0; i < opt->nslots; i++) {
        const char *nm = opt->slots[i].param->name;
        assert_true(secap_params_find(bp, nm) >= 0);
        int is_norm = strstr(nm, "norm.weight") != NULL;
        if (is_norm != (opt->slots[i].group == g0)) fail_msg("%s sits in group %d", nm, opt->slots[i].group);
    }
    int n = secap_params_count(bp);
    float **before = calloc((size_t)n, sizeof *before);
    assert_non_null(before);
    for (int i = 0; i < n; i++) {
        const secap_tensor *t = secap_params_entry(bp, i)->t;
        before[i] = malloc((size_t)t->n * sizeof(float));
        assert_non_null(before[i]);
        memcpy(before[i], t->data, (size_t)t->n * sizeof(float));
    }
    int32_t ids[2 * 6] = { 1, 5, 9, 13, 17, 2, 1, 7, 7, 30, 60, 2 }, tg[2 * 6], lens[2] = { 6, 6 };
    for (int i = 0; i < 12; i++) tg[i] = i % 6 == 5 ? SECAP_LLAMA_IGNORE : ids[i + 1];
    secap_tensor *x = secap_llama_embed(c, m, ids, 2, 6);
    secap_backward(c, secap_llama_loss(c, secap_llama_forward(c, m, x, lens), tg));
    secap_adamw_step(opt, 1e-3f);
    for (int i = 0; i < n; i++) {
        const secap_param_entry *e = secap_params_entry(bp, i);
        if (!memcmp(before[i], e->t->data, (size_t)e->t->n * sizeof(float)))
            fail_msg("after an AdamW step %s did not move", e->name);
        free(before[i]);
    }
    free(before);
    secap_adamw_free(opt);
    secap_llama_free(m);
    secap_llama_opts ob = { .train_base = 1, .base_bf16 = 1 };
    EXPECT_FATAL(secap_llama_load(c, w, &ob), "base_bf16");
    free(w);
    secap_ctx_free(c);
}

/* Full-forward logits [B, T, V] of the fixture's batch (no tape). */
static secap_tensor *full_logits(secap_ctx *c, const secap_llama *m, const inputs *in, secap_llama_batch *bt)
{
    int prev = secap_no_grad_begin(c);
    secap_tensor *a;
    *bt = make_batch(c, m, in, &a);
    secap_tensor *lg = secap_llama_forward(c, m, bt->x, bt->lens);
    secap_no_grad_end(c, prev);
    return lg;
}

/* --------------------------------------------------------- KV-cache decode */

static void kv_decode(const char *tag)
{
    secap_ctx *c = new_ctx();
    secap_llama *m = load_variant(c, tag, 1, 0);
    char *io = ref("llama_%s_io.h5", tag);
    hid_t h = H5Fopen(io, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    inputs in = read_inputs(h);
    secap_llama_batch bt;
    secap_tensor *full = full_logits(c, m, &in, &bt);
    int64_t B = bt.B, T = bt.T, D = bt.x->shape[2], V = full->shape[2];
    secap_kvcache *kc = secap_llama_kvcache_new(m, B, T + 2);
    int bad = 0, checked = 0;
    int32_t n[8];
    float *got = malloc((size_t)(B * V) * sizeof *got), *want = malloc((size_t)(B * V) * sizeof *want);
    assert_non_null(got); assert_non_null(want);
    /* a prefill of 3, 4, 5 steps (rows at different lengths, x padded to 5),
     * then one step at a time; a row that is complete takes n = 0 */
    for (int it = 0; it < 64; it++) {
        int64_t step = it == 0 ? 5 : 1;
        secap_tensor *x = secap_zeros(c, SECAP_SHAPE(B, step, D));
        int any = 0;
        for (int64_t b = 0; b < B; b++) {
            int64_t done = secap_kvcache_len(kc, 0)[b];
            int64_t k = it == 0 ? 3 + (b % 3) : 1;
            if (k > bt.lens[b] - done) k = bt.lens[b] - done;
            n[b] = (int32_t)k;
            for (int64_t s = 0; s < k; s++)
                memcpy(secap_f32(x) + (b * step + s) * D, secap_f32(bt.x) + (b * T + done + s) * D,
                       (size_t)D * sizeof(float));
            if (k) any = 1;
        }
        if (!any) break;
        secap_tensor *lg = secap_llama_decode(c, m, kc, x, n);
        assert_int_equal(lg->shape[0], B);
        assert_int_equal(lg->shape[1], V);
        int rows = 0;
        for (int64_t b = 0; b < B; b++) {
            if (!n[b]) continue;
            int64_t p = secap_kvcache_len(kc, 0)[b] - 1;   /* position of the last new step */
            memcpy(got + rows * V, secap_f32(lg) + b * V, (size_t)V * sizeof *got);
            memcpy(want + rows * V, secap_f32(full) + (b * T + p) * V, (size_t)V * sizeof *want);
            rows++;
        }
        char what[128];
        snprintf(what, sizeof what, "%s decode call %d (%d rows)", tag, it, rows);
        compare(what, got, want, rows * V, TOL, &bad);
        checked += rows;
    }
    for (int64_t b = 0; b < B; b++) assert_int_equal(secap_kvcache_len(kc, 0)[b], bt.lens[b]);
    assert_true(checked >= bt.lens[0]);
    free(got); free(want);
    secap_kvcache_free(kc);
    inputs_free(&in);
    H5Fclose(h);
    free(io);
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("%s: %d decode steps differ from the full forward", tag, bad);
}

static void test_kv_decode_gqa(void **st) { (void)st; kv_decode("gqa"); }
static void test_kv_decode_tied(void **st) { (void)st; kv_decode("tied"); }

/* ------------------------------------------------- adapters: export, merge */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_adapter_roundtrip(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_variant(c, "gqa", 1, 0);
    const char *dir = tu_tmp("adapter");
    secap_llama_save_adapter(m, dir);
    const char *json = slurp(tu_tmp("adapter/adapter_config.json"));
    static const char *const keys[] = { "\"peft_type\": \"LORA\"", "\"task_type\": \"CAUSAL_LM\"", "\"r\": 4",
                                        "\"lora_alpha\": 8", "\"lora_dropout\": 0.05", "\"bias\": \"none\"",
                                        "\"target_modules\": [\"q_proj\", \"v_proj\"]" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strstr(json, keys[i])) fail_msg("adapter_config.json lacks %s:\n%s", keys[i], json);

    char *w = ref("llama_%s.h5", "gqa");
    secap_llama_opts o = { .adapter = tu_tmp("adapter/adapter_model.h5") };
    secap_llama *m2 = secap_llama_load(c, w, &o);
    const secap_params *p1 = secap_llama_lora_params(m), *p2 = secap_llama_lora_params(m2);
    assert_int_equal(secap_params_count(p1), secap_params_count(p2));
    for (int i = 0; i < secap_params_count(p1); i++) {
        const secap_param_entry *a = secap_params_entry(p1, i), *b = secap_params_entry(p2, i);
        assert_string_equal(a->name, b->name);
        assert_true(!strncmp(a->name, "base_model.model.model.layers.", 30));
        assert_int_equal(a->t->n, b->t->n);
        if (memcmp(a->t->data, b->t->data, (size_t)a->t->n * sizeof(float)))
            fail_msg("reloaded adapter tensor %s differs", a->name);
    }
    const secap_lora_config *l2 = secap_llama_lora_cfg(m2);
    assert_int_equal(l2->r, 4);
    assert_true(l2->alpha == 8.0 && l2->dropout == 0.05);
    assert_string_equal(l2->target_modules, "q_proj,v_proj");

    hid_t h = H5Fopen(tu_ref_path("llama_gqa_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    inputs in = read_inputs(h);
    secap_llama_batch b1, b2;
    secap_tensor *y1 = full_logits(c, m, &in, &b1), *y2 = full_logits(c, m2, &in, &b2);
    if (memcmp(y1->data, y2->data, (size_t)y1->n * sizeof(float))) fail_msg("logits differ after adapter reload");
    inputs_free(&in);
    H5Fclose(h);
    free(w);
    secap_llama_free(m2);
    secap_llama_free(m);
    secap_ctx_free(c);
}

static void test_merged_equals_lora(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_variant(c, "gqa", 1, 0);
    char *mp = ref("llama_%s_merged.h5", "gqa");
    secap_llama *mm = secap_llama_load(c, mp, NULL);
    assert_null(secap_llama_lora_params(mm));
    assert_null(secap_llama_lora_cfg(mm));
    secap_llama *base = load_variant(c, "gqa", 0, 0);
    hid_t h = H5Fopen(tu_ref_path("llama_gqa_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    inputs in = read_inputs(h);
    secap_llama_batch b1, b2, b3;
    secap_tensor *y1 = full_logits(c, m, &in, &b1), *y2 = full_logits(c, mm, &in, &b2),
                 *y3 = full_logits(c, base, &in, &b3);
    float *v1 = valid_logits(y1, b1.lens), *v2 = valid_logits(y2, b1.lens), *v3 = valid_logits(y3, b1.lens);
    int bad = 0;
    compare("merged (no LoRA) vs base + adapter logits", v2, v1, y1->n, TOL, &bad);
    /* the adapter must matter, or the comparison above proves nothing */
    int same = 0;
    double d = compare("base alone vs base + adapter logits (must differ)", v3, v1, y1->n, INFINITY, &same);
    if (!(d > 1e-3)) fail_msg("the adapter changes the logits by only %g: the merge test is vacuous", d);
    /* the same with the adapter this library writes (its attributes and
     * names), merged by the tool: the tool reads what the C side exports */
    secap_llama_save_adapter(m, tu_tmp("exported"));
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/merge_lora.py --base '%s' --adapter '%s' --out '%s'",
             tu_ref_path("llama_gqa.h5"), tu_tmp("exported/adapter_model.h5"), tu_tmp("merged_c.h5"));
    int rc = system(cmd);
    if (rc != 0) fail_msg("merge_lora.py failed (exit %d): %s (hint: run from the repository root)", rc, cmd);
    secap_llama *mc = secap_llama_load(c, tu_tmp("merged_c.h5"), NULL);
    secap_llama_batch b4;
    secap_tensor *y4 = full_logits(c, mc, &in, &b4);
    float *v4 = valid_logits(y4, b1.lens);
    compare("merged C-exported adapter (no LoRA) vs base + adapter logits", v4, v1, y1->n, TOL, &bad);
    free(v4);
    secap_llama_free(mc);
    free(v1); free(v2); free(v3);
    inputs_free(&in);
    H5Fclose(h);
    free(mp);
    secap_llama_free(base);
    secap_llama_free(mm);
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("merged model differs from the model with LoRA");
}

/* A fresh adapter (PEFT init: A kaiming-uniform, B zeros) leaves the
 * outputs as they are; only LoRA tensors are trainable; the defaults. */
static void test_peft_init(void **st)
{
    (void)st;
    secap_lora_config l;
    secap_lora_config_default(&l);
    assert_int_equal(l.r, 8);
    assert_true(l.alpha == 16 && l.dropout == 0.05);
    assert_string_equal(l.target_modules, "q_proj,v_proj");
    l.r = 3;
    secap_ctx *c = new_ctx();
    char *w = ref("llama_%s.h5", "tied");
    secap_llama_opts o = { .lora = &l, .seed = 9 };
    secap_llama *m = secap_llama_load(c, w, &o);
    secap_llama *base = secap_llama_load(c, w, NULL);
    const secap_params *lp = secap_llama_lora_params(m);
    assert_int_equal(secap_params_count(lp), 2 * 2 * 2);   /* 2 layers x {q, v} x {A, B} */
    int nb = 0, na = 0;
    for (int i = 0; i < secap_params_count(lp); i++) {
        const secap_param_entry *e = secap_params_entry(lp, i);
        const float *x = secap_f32(e->t);
        if (strstr(e->name, ".lora_B.")) {
            for (int64_t k = 0; k < e->t->n; k++) assert_true(x[k] == 0.0f);
            nb++;
        } else {
            assert_true(strstr(e->name, ".lora_A.") != NULL);
            assert_int_equal(e->shape[0], 3);
            float bound = 1.0f / sqrtf((float)e->shape[1]), mx = 0;
            for (int64_t k = 0; k < e->t->n; k++) {
                assert_true(fabsf(x[k]) <= bound);
                if (fabsf(x[k]) > mx) mx = fabsf(x[k]);
            }
            assert_true(mx > 0.5f * bound);
            na++;
        }
    }
    assert_int_equal(na, 4);
    assert_int_equal(nb, 4);
    hid_t h = H5Fopen(tu_ref_path("llama_tied_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    inputs in = read_inputs(h);
    secap_llama_batch b1, b2;
    secap_tensor *y1 = full_logits(c, m, &in, &b1), *y2 = full_logits(c, base, &in, &b2);
    int bad = 0;
    compare("fresh adapter vs no adapter logits", secap_f32(y1), secap_f32(y2), y1->n, 0.0, &bad);
    assert_int_equal(bad, 0);
    inputs_free(&in);
    H5Fclose(h);
    free(w);
    secap_llama_free(base);
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* Only LoRA tensors get optimizer state: the base table registers nothing,
 * an AdamW step moves every LoRA tensor and leaves the base weights. */
static void test_optimizer_lora_only(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_variant(c, "gqa", 1, 0);
    const secap_params *bp = secap_llama_base_params(m), *lp = secap_llama_lora_params(m);
    secap_adamw *o = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int g = secap_adamw_group(o, 1.0f, 0.0f);
    assert_int_equal(secap_adamw_add_params(o, c, bp, NULL, NULL, g), 0);
    assert_int_equal(secap_adamw_add_params(o, c, lp, "*.lora_*", NULL, g), secap_params_count(lp));
    int nl = secap_params_count(lp), nb = secap_params_count(bp);
    float **before = calloc((size_t)(nl + nb), sizeof *before);
    assert_non_null(before);
    for (int i = 0; i < nl + nb; i++) {
        const secap_tensor *t = secap_params_entry(i < nl ? lp : bp, i < nl ? i : i - nl)->t;
        before[i] = malloc((size_t)t->n * sizeof(float));
        assert_non_null(before[i]);
        memcpy(before[i], t->data, (size_t)t->n * sizeof(float));
    }
    hid_t h = H5Fopen(tu_ref_path("llama_gqa_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    inputs in = read_inputs(h);
    secap_tensor *audio;
    secap_llama_batch bt = make_batch(c, m, &in, &audio);
    secap_backward(c, secap_llama_loss(c, secap_llama_forward(c, m, bt.x, bt.lens), bt.targets));
    secap_adamw_step(o, 1e-3f);
    for (int i = 0; i < nl + nb; i++) {
        const secap_param_entry *e = secap_params_entry(i < nl ? lp : bp, i < nl ? i : i - nl);
        int moved = memcmp(before[i], e->t->data, (size_t)e->t->n * sizeof(float)) != 0;
        if (moved != (i < nl)) fail_msg("after an AdamW step %s %s", e->name, moved ? "moved" : "did not move");
        free(before[i]);
    }
    free(before);
    inputs_free(&in);
    H5Fclose(h);
    secap_adamw_free(o);
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* LoRA off (SECap's released setting): every weight frozen, the gradient
 * still reaches the audio vectors; dropout on the LoRA input in training. */
static void test_frozen_and_dropout(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *base = load_variant(c, "gqa", 0, 1);
    hid_t h = H5Fopen(tu_ref_path("llama_gqa_io.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(h >= 0);
    inputs in = read_inputs(h);
    secap_tensor *audio;
    secap_llama_batch bt = make_batch(c, base, &in, &audio);
    secap_tensor *loss = secap_llama_loss(c, secap_llama_forward(c, base, bt.x, bt.lens), bt.targets);
    secap_backward(c, loss);
    assert_non_null(audio->grad);
    float mx = 0;
    for (int64_t i = 0; i < audio->n; i++) mx = fmaxf(mx, fabsf(audio->grad[i]));
    printf("  LoRA off, bf16 base: max |d loss / d audio| = %g\n", mx);
    assert_true(mx > 1e-6f && isfinite(mx));
    secap_ctx_reset(c);

    /* training mode: dropout (0.05) on the LoRA input changes the logits;
     * eval mode gives the same logits twice */
    secap_llama *m = load_variant(c, "gqa", 1, 0);
    secap_llama_batch b1, b2, b3;
    secap_tensor *e1 = full_logits(c, m, &in, &b1), *e2 = full_logits(c, m, &in, &b2);
    assert_memory_equal(e1->data, e2->data, (size_t)e1->n * sizeof(float));
    c->training = 1;
    secap_tensor *t1 = full_logits(c, m, &in, &b3);
    c->training = 0;
    int differs = memcmp(t1->data, e1->data, (size_t)e1->n * sizeof(float)) != 0;
    if (!differs) fail_msg("LoRA dropout had no effect in training mode");
    inputs_free(&in);
    H5Fclose(h);
    secap_llama_free(m);
    secap_llama_free(base);
    secap_ctx_free(c);
}

/* Batch layout without prompts: lens, targets (caption and EOS only). */
static void test_batch_layout(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_variant(c, "gqa", 0, 0);
    secap_tensor *audio = secap_zeros(c, SECAP_SHAPE(2, 3, 32));
    int32_t cap0[2] = { 7, 9 };
    const int32_t *caps[2] = { cap0, NULL };
    int32_t clen[2] = { 2, 0 };
    secap_llama_batch bt = secap_llama_caption_batch(c, m, audio, NULL, NULL, caps, clen, 2);
    assert_int_equal(bt.T, 7);
    assert_int_equal(bt.lens[0], 7);
    assert_int_equal(bt.lens[1], 5);
    const int I = SECAP_LLAMA_IGNORE;
    const int32_t want[14] = { I, I, I, 7, 9, 2, I,    /* [BOS][a a a] 7 9 EOS */
                               I, I, I, 2, I, I, I };  /* [BOS][a a a] EOS pad pad */
    for (int i = 0; i < 14; i++)
        if (bt.targets[i] != want[i]) fail_msg("target %d is %d, want %d", i, bt.targets[i], want[i]);
    /* step 0 is the BOS embedding, steps 1..3 the audio vectors (zeros here) */
    const float *x = secap_f32(bt.x), *E = NULL;
    secap_tensor *bos = secap_llama_embed(c, m, (int32_t[]){ 1 }, 1, 1);
    E = secap_f32(bos);
    for (int d = 0; d < 32; d++) {
        assert_true(x[d] == E[d]);
        assert_true(x[32 + d] == 0.0f);
    }
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* The [lora] section of a run config. */
static void test_lora_ini(void **st)
{
    (void)st;
    secap_ini *ini = secap_ini_new();
    secap_ini_set(ini, "lora.r", "16", "test");
    secap_ini_set(ini, "lora.lora_alpha", "32", "test");
    secap_ini_set(ini, "lora.lora_dropout", "0.1", "test");
    secap_ini_set(ini, "lora.target_modules", "q_proj,k_proj,v_proj,o_proj", "test");
    secap_lora_config l;
    secap_lora_config_default(&l);
    secap_ini_apply(ini, "lora", &l, secap_lora_config_set);
    secap_ini_check_used(ini, "lora");
    secap_lora_config_validate(&l, "test");
    assert_int_equal(l.r, 16);
    assert_true(l.alpha == 32 && l.dropout == 0.1);
    assert_string_equal(l.target_modules, "q_proj,k_proj,v_proj,o_proj");
    secap_ini_set(ini, "lora.rank", "4", "test");
    secap_ini_apply(ini, "lora", &l, secap_lora_config_set);
    EXPECT_FATAL(secap_ini_check_used(ini, "lora"), "lora.rank");
    assert_int_equal(secap_lora_config_set(&l, "r", "8"), 0);
    EXPECT_FATAL(secap_lora_config_set(&l, "r", "8.5"), "not an integer");
    EXPECT_FATAL(secap_lora_config_set(&l, "lora_dropout", "abc"), "lora.lora_dropout");
    secap_ini_free(ini);
}

/* ------------------------------------------------------------- refusals */

static void test_refusals(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    char *adapter = ref("llama_%s_adapter.h5", "gqa"), *tied = ref("llama_%s.h5", "tied");
    EXPECT_FATAL(secap_llama_load(c, adapter, NULL), "expected \"llama\"");
    secap_llama_opts o = { .adapter = adapter };
    /* an adapter made for another base model: lora_B of q_proj is [32, 4] in
     * both, but the tied base has 4 kv heads, so v_proj's lora_B shape differs */
    EXPECT_FATAL(secap_llama_load(c, tied, &o), "lora_B");
    secap_lora_config l;
    secap_lora_config_default(&l);
    snprintf(l.target_modules, sizeof l.target_modules, "q_proj,qkv_proj");
    secap_llama_opts o2 = { .lora = &l };
    EXPECT_FATAL(secap_llama_load(c, tied, &o2), "\"qkv_proj\" is not a LLaMA projection");
    secap_lora_config_default(&l);
    l.dropout = 1.5;
    EXPECT_FATAL(secap_lora_config_validate(&l, "test"), "lora_dropout");
    secap_llama_config cf;
    secap_llama_config_default(&cf);
    cf.num_key_value_heads = 5;
    EXPECT_FATAL(secap_llama_config_validate(&cf, "test"), "num_key_value_heads");
    secap_llama_config_default(&cf);
    cf.num_attention_heads = 3;
    EXPECT_FATAL(secap_llama_config_validate(&cf, "test"), "multiple of num_attention_heads");

    secap_llama *m = secap_llama_load(c, tied, NULL);
    EXPECT_FATAL(secap_llama_save_adapter(m, tu_tmp("none")), "no adapters");
    int32_t bad_ids[2] = { 1, 61 };
    EXPECT_FATAL(secap_llama_embed(c, m, bad_ids, 1, 2), "token id 61");
    secap_tensor *x = secap_zeros(c, SECAP_SHAPE(1, 3, 16));
    EXPECT_FATAL(secap_llama_forward(c, m, x, NULL), "hidden_size");
    secap_tensor *x2 = secap_zeros(c, SECAP_SHAPE(1, 65, 32));
    EXPECT_FATAL(secap_llama_forward(c, m, x2, NULL), "max_position_embeddings");
    secap_llama_free(m);

    /* writing a config and reading it back; the missing-attribute defaults */
    secap_llama_config_default(&cf);
    cf.vocab_size = 11; cf.hidden_size = 8; cf.intermediate_size = 12; cf.num_hidden_layers = 1;
    cf.num_attention_heads = 2; cf.num_key_value_heads = 1; cf.max_position_embeddings = 16;
    secap_llama_opts o3 = { .seed = 3 };
    secap_llama *r = secap_llama_init_random(c, &cf, &o3);
    secap_llama_save(r, tu_tmp("rand.h5"));
    secap_llama *r2 = secap_llama_load(c, tu_tmp("rand.h5"), NULL);
    assert_memory_equal(secap_llama_cfg(r2), &cf, sizeof cf);
    const secap_params *p1 = secap_llama_base_params(r), *p2 = secap_llama_base_params(r2);
    for (int i = 0; i < secap_params_count(p1); i++)
        assert_memory_equal(secap_params_entry(p1, i)->t->data, secap_params_entry(p2, i)->t->data,
                            (size_t)secap_params_entry(p1, i)->t->n * sizeof(float));
    secap_llama_free(r2);
    secap_llama_free(r);
    free(adapter); free(tied);
    secap_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gqa_parity),
        cmocka_unit_test(test_tied_parity),
        cmocka_unit_test(test_bf16_parity),
        cmocka_unit_test(test_lm_parity_gqa),
        cmocka_unit_test(test_lm_parity_tied),
        cmocka_unit_test(test_train_base_optimizer),
        cmocka_unit_test(test_kv_decode_gqa),
        cmocka_unit_test(test_kv_decode_tied),
        cmocka_unit_test(test_adapter_roundtrip),
        cmocka_unit_test(test_merged_equals_lora),
        cmocka_unit_test(test_peft_init),
        cmocka_unit_test(test_optimizer_lora_only),
        cmocka_unit_test(test_frozen_and_dropout),
        cmocka_unit_test(test_batch_layout),
        cmocka_unit_test(test_lora_ini),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
