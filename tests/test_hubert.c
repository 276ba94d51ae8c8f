/* HuBERT parity against PyTorch (tests/ref_hubert.py, tests/ref_hubert_demo.py).
 *
 * For both variants ("base": group-norm conv stack, post-LN; "large":
 * layer-norm conv stack with bias, pre-LN + final LN) with random weights:
 *   - one utterance: every HF hidden_states[i] and last_hidden_state within
 *     1e-4 absolute on every frame;
 *   - a padded batch of 3 lengths (noise in the padding): each utterance's
 *     valid frames equal it run alone, every layer, 1e-4;
 *   - the same through the trainable (taped) path, and a backward pass;
 *   - real speech (a demo-corpus utterance, or espeak-ng speech when the
 *     corpus is absent) read through secap_audio_load;
 *   - bfloat16 weights load and stay close to the float32 outputs;
 *   - the loader refuses missing, unknown, wrong-shape and wrong-dtype
 *     tensors, naming each. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"

#include <omp.h>
#include "secap/audio.h"
#include "secap/autograd.h"
#include "secap/h5io.h"
#include "secap/hubert.h"
#include "secap/ops.h"

#include <hdf5.h>
#include <unistd.h>

#define TOL 1e-4

typedef struct {
    float *x;
    int rank;
    int64_t dims[SECAP_H5_MAX_RANK];
} arr;

/* The fixtures keep datasets in groups (single/, batch/), which the flat
 * secap_h5 helpers refuse; read them with HDF5 directly, as float32. */
static hid_t h5open(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open %s (hint: run tests/ref_hubert.py build/ref)", path);
    return f;
}

static arr h5get(hid_t f, const char *name)
{
    arr a;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) fail_msg("fixture lacks dataset %s (hint: re-run the tests/ref_hubert*.py scripts)", name);
    hid_t s = H5Dget_space(d);
    a.rank = H5Sget_simple_extent_ndims(s);
    hsize_t dims[SECAP_H5_MAX_RANK];
    H5Sget_simple_extent_dims(s, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < a.rank; i++) { a.dims[i] = (int64_t)dims[i]; n *= dims[i]; }
    a.x = malloc(n * sizeof(float));
    assert_non_null(a.x);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.x) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    return a;
}

/* Max |C - ref| over rows [0, rows) of [rows, H] slabs. */
static double maxdiff(const float *c, const float *ref, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)c[i] - (double)ref[i]);
        if (!(d <= m)) m = d;   /* NaN propagates */
    }
    return m;
}

static void check(const char *what, double d, double tol)
{
    printf("  %-48s max |diff| = %.3g\n", what, d);
    if (!(d <= tol)) fail_msg("%s: max |diff| %.3g > %g", what, d, tol);
}

static secap_ctx *new_ctx(void) { return secap_ctx_new((size_t)1 << 30, (size_t)4 << 30, 1); }

/* Single utterance: every hidden state and the last one. */
static void single(const char *wfile, const char *iofile, const char *tag, int trainable)
{
    secap_ctx *c = new_ctx();
    secap_hubert *m = secap_hubert_load(c, tu_ref_path(wfile), trainable);
    int L = secap_hubert_cfg(m)->num_hidden_layers, H = secap_hubert_cfg(m)->hidden_size;
    hid_t h = h5open(tu_ref_path(iofile));
    arr wave = h5get(h, "wave"), hs = h5get(h, "single/hidden_states"), last = h5get(h, "single/last_hidden_state");
    assert_int_equal(hs.rank, 3);
    assert_int_equal(hs.dims[0], L + 1);
    assert_int_equal(hs.dims[2], H);
    int64_t F = hs.dims[1], n = wave.dims[0];
    char what[128];
    for (int layer = -1; layer <= L; layer++) {
        int32_t frames;
        secap_tensor *y = secap_hubert_forward(c, m, wave.x, &n, 1, n, layer, &frames);
        assert_int_equal(frames, F);
        assert_int_equal(y->shape[1], F);
        assert_int_equal(y->shape[2], H);
        const float *ref = layer < 0 ? last.x : hs.x + (size_t)layer * (size_t)(F * H);
        if (layer < 0) snprintf(what, sizeof what, "%s single last_hidden_state", tag);
        else snprintf(what, sizeof what, "%s single hidden_states[%d]", tag, layer);
        check(what, maxdiff(secap_f32(y), ref, F * H), TOL);
        secap_ctx_reset(c);
    }
    free(wave.x); free(hs.x); free(last.x);
    H5Fclose(h);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

/* Padded batch of three lengths against each utterance run alone. */
static void batch(const char *wfile, const char *iofile, const char *tag, int trainable)
{
    secap_ctx *c = new_ctx();
    secap_hubert *m = secap_hubert_load(c, tu_ref_path(wfile), trainable);
    int L = secap_hubert_cfg(m)->num_hidden_layers, H = secap_hubert_cfg(m)->hidden_size;
    hid_t h = h5open(tu_ref_path(iofile));
    arr wave = h5get(h, "batch/wave"), len = h5get(h, "batch/lengths"), fr = h5get(h, "batch/frames"),
        hs = h5get(h, "batch/hidden_states"), last = h5get(h, "batch/last_hidden_state");
    int B = (int)wave.dims[0];
    int64_t N = wave.dims[1], F = last.dims[1], n[8];
    assert_true(B <= 8);
    for (int b = 0; b < B; b++) n[b] = (int64_t)len.x[b];
    char what[128];
    for (int layer = -1; layer <= L; layer++) {
        if (trainable && layer >= 0 && layer < L) continue;   /* the taped path: last state only */
        int32_t frames[8];
        secap_tensor *y = secap_hubert_forward(c, m, wave.x, n, B, N, layer, frames);
        assert_int_equal(y->shape[0], B);
        assert_int_equal(y->shape[1], F);
        const float *ref = layer < 0 ? last.x : hs.x + (size_t)layer * (size_t)(B * F * H);
        double d = 0;
        for (int b = 0; b < B; b++) {
            assert_int_equal(frames[b], (int32_t)fr.x[b]);
            double db = maxdiff(secap_f32(y) + (size_t)b * (size_t)(F * H), ref + (size_t)b * (size_t)(F * H),
                                (int64_t)frames[b] * H);
            d = db > d || db != db ? db : d;
        }
        if (layer < 0) snprintf(what, sizeof what, "%s batch%s last_hidden_state", tag, trainable ? " (taped)" : "");
        else snprintf(what, sizeof what, "%s batch hidden_states[%d]", tag, layer);
        check(what, d, TOL);
        secap_ctx_reset(c);
    }
    free(wave.x); free(len.x); free(fr.x); free(hs.x); free(last.x);
    H5Fclose(h);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

static void test_base_single(void **st) { (void)st; single("hubert_base_small.h5", "hubert_base_io.h5", "base", 0); }
static void test_large_single(void **st) { (void)st; single("hubert_large_small.h5", "hubert_large_io.h5", "large", 0); }
static void test_base_batch(void **st) { (void)st; batch("hubert_base_small.h5", "hubert_base_io.h5", "base", 0); }
static void test_large_batch(void **st) { (void)st; batch("hubert_large_small.h5", "hubert_large_io.h5", "large", 0); }

/* The trainable model outside no-grad records a tape: same numbers, and a
 * backward pass fills finite, non-zero gradients from the last layer down to
 * the first conv (and the weight-normed positional conv's g and v). */
static double grad_absmax(const secap_tensor *t)
{
    assert_non_null(t);
    assert_non_null(t->grad);
    double m = 0;
    for (int64_t i = 0; i < t->n; i++) {
        double a = fabs((double)t->grad[i]);
        if (!(a <= m)) m = a;
    }
    return m;
}

static void taped(const char *wfile, const char *iofile, const char *tag)
{
    batch(wfile, iofile, tag, 1);
    secap_ctx *c = new_ctx();
    secap_hubert *m = secap_hubert_load(c, tu_ref_path(wfile), 1);
    int L = secap_hubert_cfg(m)->num_hidden_layers;
    hid_t h = h5open(tu_ref_path(iofile));
    arr wave = h5get(h, "batch/wave"), len = h5get(h, "batch/lengths");
    int64_t n[3] = { (int64_t)len.x[0], (int64_t)len.x[1], (int64_t)len.x[2] };
    int32_t frames[3];
    secap_tensor *y = secap_hubert_forward(c, m, wave.x, n, 3, wave.dims[1], -1, frames);
    assert_true(y->requires_grad);
    secap_backward(c, secap_mean_all(c, secap_masked_mean(c, secap_mul(c, y, y), frames)));
    char name[128];
    static const char *const probe[] = { "feature_extractor.conv_layers.0.conv.weight",
                                         "feature_projection.projection.weight",
                                         "encoder.pos_conv_embed.conv.weight_g",
                                         "encoder.pos_conv_embed.conv.weight_v" };
    for (int i = 0; i < 4; i++) {
        double g = grad_absmax(secap_hubert_param(m, probe[i]));
        printf("  %s taped: max |grad %s| = %.3g\n", tag, probe[i], g);
        assert_true(isfinite(g) && g > 0);
    }
    snprintf(name, sizeof name, "encoder.layers.%d.feed_forward.output_dense.bias", L - 1);
    double g = grad_absmax(secap_hubert_param(m, name));
    assert_true(isfinite(g) && g > 0);
    assert_null(secap_hubert_param(m, "no.such.tensor"));
    free(wave.x); free(len.x);
    H5Fclose(h);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

/* hubert.train_layers: the reference's hidden_states[from] of the padded
 * batch through layers from..L-1 (secap_hubert_layers) gives the reference's
 * last hidden state, for every `from`; a model loaded with its top layer
 * trainable takes gradients there only. */
static void top_layers(const char *wfile, const char *iofile, const char *tag)
{
    secap_ctx *c = new_ctx();
    secap_hubert *m = secap_hubert_load_top(c, tu_ref_path(wfile), 1);
    int L = secap_hubert_cfg(m)->num_hidden_layers, H = secap_hubert_cfg(m)->hidden_size;
    hid_t h = h5open(tu_ref_path(iofile));
    arr fr = h5get(h, "batch/frames"), hs = h5get(h, "batch/hidden_states"), last = h5get(h, "batch/last_hidden_state");
    int B = (int)last.dims[0];
    int64_t F = last.dims[1];
    assert_true(B <= 8);
    int32_t frames[8];
    for (int b = 0; b < B; b++) frames[b] = (int32_t)fr.x[b];
    char what[128];
    for (int from = 0; from <= L; from++) {
        secap_tensor *x = secap_empty(c, 3, (int64_t[]){B, F, H});
        memcpy(secap_f32(x), hs.x + (size_t)from * (size_t)(B * F * H), (size_t)(B * F * H) * sizeof(float));
        secap_tensor *y = secap_hubert_layers(c, m, x, frames, from);
        double d = 0;
        for (int b = 0; b < B; b++) {
            double db = maxdiff(secap_f32(y) + (size_t)b * (size_t)(F * H), last.x + (size_t)b * (size_t)(F * H),
                                (int64_t)frames[b] * H);
            d = db > d || db != db ? db : d;
        }
        snprintf(what, sizeof what, "%s hidden_states[%d] -> layers %d..%d -> last_hidden_state", tag, from, from, L - 1);
        check(what, d, TOL);
        if (from == L - 1) {   /* the trainable top: gradients in layer L-1 only */
            secap_backward(c, secap_mean_all(c, secap_masked_mean(c, secap_mul(c, y, y), frames)));
            char name[128];
            snprintf(name, sizeof name, "encoder.layers.%d.feed_forward.output_dense.weight", L - 1);
            double g = grad_absmax(secap_hubert_param(m, name));
            snprintf(name, sizeof name, "encoder.layers.%d.attention.q_proj.weight", L - 1);
            double gq = grad_absmax(secap_hubert_param(m, name));
            printf("  %s top layer %d: max |grad| output_dense %.3g, q_proj %.3g\n", tag, L - 1, g, gq);
            assert_true(isfinite(g) && g > 0 && isfinite(gq) && gq > 0);
            if (L > 1) {
                secap_tensor *w0 = secap_hubert_param(m, "encoder.layers.0.feed_forward.output_dense.weight");
                assert_non_null(w0);
                if (w0->requires_grad) fail_msg("%s: layer 0 of a top-1 model takes gradients", tag);
            }
        }
        secap_ctx_reset(c);
    }
    EXPECT_FATAL(secap_hubert_layers(c, m, secap_empty(c, 3, (int64_t[]){1, 4, H + 1}), NULL, 0), "expected float32");
    EXPECT_FATAL(secap_hubert_layers(c, m, secap_empty(c, 3, (int64_t[]){1, 4, H}), NULL, L + 1), "start layer");
    EXPECT_FATAL(secap_hubert_load_top(c, tu_ref_path(wfile), L + 1), "trainable top layers");
    free(fr.x); free(hs.x); free(last.x);
    H5Fclose(h);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

static void test_base_top_layers(void **st) { (void)st; top_layers("hubert_base_small.h5", "hubert_base_io.h5", "base"); }
static void test_large_top_layers(void **st) { (void)st; top_layers("hubert_large_small.h5", "hubert_large_io.h5", "large"); }

static void test_base_taped(void **st) { (void)st; taped("hubert_base_small.h5", "hubert_base_io.h5", "base"); }
static void test_large_taped(void **st) { (void)st; taped("hubert_large_small.h5", "hubert_large_io.h5", "large"); }

/* bfloat16 weights widen exactly to float32: close to the f32 model's output
 * (weights rounded to 8 significant bits, so not within 1e-4). */
static void test_large_bf16(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_hubert *m = secap_hubert_load(c, tu_ref_path("hubert_large_small_bf16.h5"), 0);
    hid_t h = h5open(tu_ref_path("hubert_large_io.h5"));
    arr wave = h5get(h, "wave"), last = h5get(h, "single/last_hidden_state");
    int64_t n = wave.dims[0];
    secap_tensor *y = secap_hubert_forward(c, m, wave.x, &n, 1, n, -1, NULL);
    double d = maxdiff(secap_f32(y), last.x, y->n);
    check("large bf16 weights vs f32 reference", d, 0.1);
    assert_true(d > 0);   /* it really is the rounded file */
    free(wave.x); free(last.x);
    H5Fclose(h);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

/* Real speech: the 16 kHz wav written by tests/ref_hubert_demo.py, read
 * through the audio loader, must equal the samples PyTorch used; the encoder
 * output must match within 1e-4 for both variants. */
static void test_real_speech(void **st)
{
    (void)st;
    const char *io = tu_ref_path("hubert_demo_io.h5");
    if (access(io, R_OK) != 0) {
        printf("  SKIPPED: %s absent (tests/ref_hubert_demo.py writes it)\n", io);
        skip();
    }
    hid_t h = h5open(io);
    char src[512] = "";
    FILE *fs = fopen(tu_ref_path("hubert_demo_source.txt"), "r");
    if (fs) { if (!fgets(src, sizeof src, fs)) src[0] = 0; fclose(fs); }
    src[strcspn(src, "\n")] = 0;
    printf("  real speech: %s\n", src);
    char err[512];
    secap_audio a;
    char wpath[4096];
    snprintf(wpath, sizeof wpath, "%s", tu_ref_path("hubert_demo_16k.wav"));
    if (secap_audio_load(wpath, SECAP_SAMPLE_RATE, &a, err, sizeof err) != 0) fail_msg("%s", err);
    arr wave = h5get(h, "wave");
    assert_int_equal(a.n, wave.dims[0]);
    check("demo wav: secap_audio_load vs PyTorch samples", maxdiff(a.x, wave.x, a.n), 0.0);
    static const char *const tags[2] = { "base", "large" };
    for (int v = 0; v < 2; v++) {
        char name[128], what[128];
        secap_ctx *c = new_ctx();
        snprintf(name, sizeof name, "hubert_%s_demo.h5", tags[v]);
        secap_hubert *m = secap_hubert_load(c, tu_ref_path(name), 0);
        int L = secap_hubert_cfg(m)->num_hidden_layers;
        snprintf(name, sizeof name, "%s/hidden_states", tags[v]);
        arr hs = h5get(h, name);
        int64_t F = hs.dims[1], H = hs.dims[2];
        for (int layer = 0; layer <= L; layer++) {
            int32_t frames;
            secap_tensor *y = secap_hubert_forward(c, m, a.x, &a.n, 1, a.n, layer, &frames);
            assert_int_equal(frames, F);
            snprintf(what, sizeof what, "%s real speech hidden_states[%d]", tags[v], layer);
            check(what, maxdiff(secap_f32(y), hs.x + (size_t)layer * (size_t)(F * H), F * H), TOL);
            secap_ctx_reset(c);
        }
        free(hs.x);
        secap_hubert_free(m);
        secap_ctx_free(c);
    }
    free(wave.x);
    secap_audio_free(&a);
    H5Fclose(h);
}

/* ------------------------------------------------------------- refusals */

/* A copy of the base weights at dst, opened read-write with HDF5. */
static hid_t copy_weights(const char *dst)
{
    char cmd[4096 + 600];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", tu_ref_path("hubert_base_small.h5"), dst);
    assert_int_equal(system(cmd), 0);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static void put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    double *zero = calloc(n, sizeof(double));
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zero);
    free(zero);
    H5Dclose(d);
    H5Sclose(s);
}

static void load_fails(const char *path, const char *substr1, const char *substr2)
{
    secap_ctx *c = new_ctx();
    EXPECT_FATAL(secap_hubert_load(c, path, 0), substr1);
    if (substr2 && !strstr(secap_last_error(), substr2))
        fail_msg("error \"%s\" lacks \"%s\"", secap_last_error(), substr2);
    printf("  refused: %s\n", secap_last_error());
    secap_ctx_free(c);
}

static void test_refusals(void **st)
{
    (void)st;
    char p[512];
    const char *victim = "encoder.layers.1.attention.k_proj.bias";

    snprintf(p, sizeof p, "%s", tu_tmp("missing.h5"));
    hid_t f = copy_weights(p);
    assert_true(H5Ldelete(f, victim, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    load_fails(p, victim, "missing");

    snprintf(p, sizeof p, "%s", tu_tmp("unknown.h5"));
    f = copy_weights(p);
    put(f, "encoder.layers.9.extra.weight", H5T_IEEE_F32LE, 1, (hsize_t[]){4});
    H5Fclose(f);
    load_fails(p, "encoder.layers.9.extra.weight", "unknown");

    snprintf(p, sizeof p, "%s", tu_tmp("shape.h5"));
    f = copy_weights(p);
    assert_true(H5Ldelete(f, victim, H5P_DEFAULT) >= 0);
    put(f, victim, H5T_IEEE_F32LE, 1, (hsize_t[]){65});
    H5Fclose(f);
    load_fails(p, victim, "shape");

    snprintf(p, sizeof p, "%s", tu_tmp("dtype.h5"));
    f = copy_weights(p);
    assert_true(H5Ldelete(f, victim, H5P_DEFAULT) >= 0);
    put(f, victim, H5T_IEEE_F64LE, 1, (hsize_t[]){64});
    H5Fclose(f);
    load_fails(p, victim, "float32 or bfloat16");

    /* masked_spec_embed is in the base file and is ignored: the copy loads */
    snprintf(p, sizeof p, "%s", tu_tmp("ok.h5"));
    f = copy_weights(p);
    H5Fclose(f);
    secap_ctx *c = new_ctx();
    secap_hubert_free(secap_hubert_load(c, p, 0));
    secap_ctx_free(c);
}

/* One frozen model, two threads, a context each: both match the reference
 * (the model holds no mutable state).  The result is all a frozen forward
 * leaves in the caller's step arena; its stages count in the peak. */
static void test_shared_model_threads(void **st)
{
    (void)st;
    secap_ctx *c0 = new_ctx();
    secap_hubert *m = secap_hubert_load(c0, tu_ref_path("hubert_base_small.h5"), 0);
    int H = secap_hubert_cfg(m)->hidden_size;
    const secap_params *p = secap_hubert_params(m);
    for (int i = 0; i < secap_params_count(p); i++)   /* the converter's file maps whole */
        if (!secap_params_entry(p, i)->mapped) fail_msg("%s was copied, not mapped", secap_params_entry(p, i)->name);
    hid_t h = h5open(tu_ref_path("hubert_base_io.h5"));
    arr wave = h5get(h, "batch/wave"), len = h5get(h, "batch/lengths"), last = h5get(h, "batch/last_hidden_state");
    int B = (int)wave.dims[0];
    int64_t N = wave.dims[1], F = last.dims[1], n[8];
    assert_true(B <= 8);
    for (int b = 0; b < B; b++) n[b] = (int64_t)len.x[b];
    double diff[2] = {-1, -1};
    size_t grown[2] = {0, 0}, bytes[2] = {0, 0}, peak[2] = {0, 0};
#pragma omp parallel num_threads(2)
    {
        int k = omp_get_thread_num();
        secap_ctx *c = new_ctx();
        int32_t frames[8];
        size_t before = secap_arena_used(c->step);
        secap_tensor *y = secap_hubert_forward(c, m, wave.x, n, B, N, -1, frames);
        grown[k] = secap_arena_used(c->step) - before;
        bytes[k] = (size_t)y->n * sizeof(float);
        peak[k] = secap_arena_peak(c->step);
        double d = 0;
        for (int b = 0; b < B; b++) {
            double db = maxdiff(secap_f32(y) + (size_t)b * (size_t)(F * H), last.x + (size_t)b * (size_t)(F * H),
                                (int64_t)frames[b] * H);
            d = db > d || db != db ? db : d;
        }
        diff[k] = d;
        secap_ctx_free(c);
    }
    for (int k = 0; k < 2; k++) {
        char what[64];
        snprintf(what, sizeof what, "base batch, thread %d of 2", k);
        check(what, diff[k], TOL);
        assert_int_equal(grown[k], (bytes[k] + 63) & ~(size_t)63);
        assert_true(peak[k] > 4 * grown[k]);
    }
    free(wave.x); free(len.x); free(last.x);
    H5Fclose(h);
    secap_hubert_free(m);
    secap_ctx_free(c0);
}

/* Too-short input and a bad layer index stop with a clear message. */
static void test_input_refusals(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_hubert *m = secap_hubert_load(c, tu_ref_path("hubert_base_small.h5"), 0);
    float w[1000] = {0};
    int64_t n[2] = { 1000, 399 };
    EXPECT_FATAL(secap_hubert_forward(c, m, w, n, 2, 1000, -1, NULL), "utterance 1 has 399 samples");
    EXPECT_FATAL(secap_hubert_forward(c, m, w, n, 1, 1000, 7, NULL), "layer 7");
    int32_t fr;
    secap_tensor *y = secap_hubert_forward(c, m, w, n, 1, 1000, -1, &fr);
    assert_int_equal(fr, secap_hubert_config_frames(secap_hubert_cfg(m), 1000));
    assert_int_equal(y->shape[1], fr);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

int main(void)
{
    secap_threads_init(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_single),
        cmocka_unit_test(test_large_single),
        cmocka_unit_test(test_base_batch),
        cmocka_unit_test(test_large_batch),
        cmocka_unit_test(test_base_taped),
        cmocka_unit_test(test_large_taped),
        cmocka_unit_test(test_base_top_layers),
        cmocka_unit_test(test_large_top_layers),
        cmocka_unit_test(test_large_bf16),
        cmocka_unit_test(test_real_speech),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_input_refusals),
        cmocka_unit_test(test_shared_model_threads),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
