/* Fuzz target: model weight files (HDF5; src/io/weights.c over
 * src/io/h5io.c): secap_weights_open, every tensor's info and both reads
 * (float32 and bfloat16, which must agree bit for bit), the root attributes
 * a model reads, the HuBERT config (src/nn/hubert_cfg.c), the unused-tensor
 * check on close, and the whole HuBERT loader when the config is small.
 *
 * Input: the bytes of one weight file.  The handle stays usable after a
 * caught error (secap/weights.h), so every step runs in its own FUZZ_TRY. */
#include "fuzz.h"
#include "secap/h5io.h"
#include "secap/hubert.h"
#include "secap/weights.h"

static secap_weights *W;   /* open between the steps of one input */
static char **names;
static int nnames;

static void h5_close(void *h) { secap_h5_close(h); }

static void list_names(const char *path)
{
    secap_h5 *h = secap_h5_try_open(path, 0);
    if (!h) return;
    secap_cleanup cl;
    secap_cleanup_push(&cl, h5_close, h);
    names = secap_h5_list(h, &nnames);
    secap_cleanup_pop(&cl);
    secap_h5_close(h);
}

typedef struct { float *f; uint16_t *b; } bufs;

static void bufs_free(void *arg)
{
    bufs *b = arg;
    free(b->f);
    free(b->b);
}

/* Both reads of one tensor, and their agreement. */
static void read_tensor(const char *name)
{
    int64_t shape[SECAP_WEIGHTS_MAX_DIMS];
    secap_wdtype dt;
    int nd = secap_weights_info(W, name, shape, &dt);
    if (nd < 0 || nd > SECAP_WEIGHTS_MAX_DIMS || (dt != SECAP_WDTYPE_F32 && dt != SECAP_WDTYPE_BF16))
        fuzz_die("%s: rank %d, dtype %d", name, nd, (int)dt);
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (shape[i] < 0) fuzz_die("%s: negative dimension", name);
        if (shape[i] > (1 << 22) || (n *= (size_t)(shape[i] ? shape[i] : 1)) > (1u << 22)) return; /* > 16 MB */
    }
    for (int i = 0; i < nd; i++) if (!shape[i]) n = 0;
    bufs b = { secap_xmalloc((n + 1) * sizeof(float), "f32"), secap_xmalloc((n + 1) * sizeof(uint16_t), "bf16") };
    secap_cleanup cl;
    secap_cleanup_push(&cl, bufs_free, &b);
    secap_weights_read(W, name, nd, shape, b.f);
    secap_weights_read_bf16(W, name, nd, shape, b.b);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &b.f[i], 4);
        uint16_t want = dt == SECAP_WDTYPE_BF16 ? (uint16_t)(u >> 16) : secap_f32_to_bf16(b.f[i]);
        if (b.b[i] != want || (dt == SECAP_WDTYPE_BF16 && (u & 0xffffu)))
            fuzz_die("%s[%zu]: float32 read %08x, bfloat16 read %04x", name, i, u, b.b[i]);
    }
    secap_cleanup_pop(&cl);
    bufs_free(&b);
}

static const char *const INT_ATTRS[] = { "hidden_size", "num_hidden_layers", "do_normalize", "conv_bias", NULL };
static const char *const INTS_ATTRS[] = { "conv_dim", "conv_kernel", "conv_stride", NULL };

static void read_attrs(void)
{
    if (secap_weights_has_attr(W, "model_type")) secap_weights_attr_string(W, "model_type");
    if (secap_weights_has_attr(W, "layer_norm_eps")) secap_weights_attr_double(W, "layer_norm_eps");
    for (const char *const *a = INT_ATTRS; *a; a++)
        if (secap_weights_has_attr(W, *a)) secap_weights_attr_int(W, *a);
    for (const char *const *a = INTS_ATTRS; *a; a++) {
        int64_t v[SECAP_HUBERT_MAX_CONV];
        if (secap_weights_has_attr(W, *a)) {
            int k = secap_weights_attr_ints(W, *a, v, SECAP_HUBERT_MAX_CONV);
            if (k < 1 || k > SECAP_HUBERT_MAX_CONV) fuzz_die("%s: %d values", *a, k);
        }
    }
}

static secap_hubert_config cfg;
static int cfg_ok;

static void read_config(void)
{
    secap_hubert_config_read(&cfg, W);
    cfg_ok = 1;
}

/* The parameter count of cfg, or -1 when it passes 1M floats. */
static int64_t config_params(void)
{
    secap_params *p = secap_hubert_table_new(&cfg);
    int n = secap_params_count(p);
    int64_t total = n >= 1 ? 0 : -1;
    for (int i = 0; i < n && total >= 0; i++) {
        const secap_param_entry *t = secap_params_entry(p, i);
        int64_t k = 1;
        for (int d = 0; d < t->ndim && k <= (1 << 20); d++) k *= t->shape[d];
        total = k > (1 << 20) ? -1 : total + k;
        if (total > (1 << 20)) total = -1;
    }
    secap_params_free(p);
    return total;
}

typedef struct { secap_ctx *c; secap_hubert *m; } model;

static void model_free(void *arg)
{
    model *m = arg;
    secap_hubert_free(m->m);
    secap_ctx_free(m->c);
}

static void load_hubert(const char *path)
{
    model m = { secap_ctx_new((size_t)16 << 20, (size_t)16 << 20, 1), NULL };
    secap_cleanup cl;
    secap_cleanup_push(&cl, model_free, &m);
    m.m = secap_hubert_load(m.c, path, 0);
    if (secap_hubert_cfg(m.m)->hidden_size != cfg.hidden_size) fuzz_die("loader and config disagree");
    secap_cleanup_pop(&cl);
    model_free(&m);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("w.h5", data, size);
    names = NULL;
    nnames = 0;
    W = NULL;
    cfg_ok = 0;
    FUZZ_TRY(list_names(path));
    FUZZ_TRY(W = secap_weights_open(path));
    if (W) {
        for (int i = 0; i < nnames; i++) {
            if (!secap_weights_has(W, names[i])) fuzz_die("listed tensor %s is not in the file", names[i]);
            FUZZ_TRY(read_tensor(names[i]));
        }
        FUZZ_TRY(read_attrs());
        FUZZ_TRY(read_config());
        secap_weights *w = W;
        W = NULL;   /* closed by the check, even when it fails */
        FUZZ_TRY(secap_weights_close_checked(w, NULL));
    }
    secap_h5_free_names(names, nnames);
    if (cfg_ok && config_params() > 0) FUZZ_TRY(load_hubert(path));
}
