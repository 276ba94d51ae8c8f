/* HuBERT encoder on the autograd engine, Hugging Face `HubertModel` semantics
 * (SECAP.md section 2).  The module is written in pipeline order: loading,
 * the conv feature encoder, the feature projection, the positional conv, the
 * transformer layers, then the driver that runs a padded batch.
 *
 * Frozen forwards (no tape) run through a `run` that owns two scratch
 * contexts and "hops" the live activation from one to the other, resetting
 * the target first: everything else in the source context is dead by then.
 * The transformer hops after every layer; the conv stack, whose activations
 * are the biggest (512 x samples/5 floats after conv 0), hops whenever the
 * current scratch arena holds more than HOP_BYTES.  Trainable forwards run
 * every op on the caller's context so the tape sees the whole graph. */
#include "secap/hubert.h"
#include "secap/audio.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/ops.h"
#include "secap/weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HOP_BYTES ((size_t)256 << 20)
#define CONV_NORM_EPS 1e-5f   /* HF's conv GroupNorm / LayerNorm use the torch default */

typedef struct {
    secap_tensor *w;        /* [Cout, Cin, K] */
    secap_tensor *b;        /* [Cout] or NULL (conv_bias = 0) */
    secap_tensor *norm_w;   /* [Cout] or NULL: GroupNorm (layer 0, "group") or LayerNorm ("layer") */
    secap_tensor *norm_b;   /* [Cout] or NULL */
} conv_layer;

typedef struct {
    secap_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* [H, H], [H] */
    secap_tensor *ln_w, *ln_b;        /* [H] `layer_norm`: after attention (post-LN) or before (pre-LN) */
    secap_tensor *ff1_w, *ff1_b;      /* [I, H], [I] intermediate_dense */
    secap_tensor *ff2_w, *ff2_b;      /* [H, I], [H] output_dense */
    secap_tensor *fln_w, *fln_b;      /* [H] final_layer_norm */
} enc_layer;

struct secap_hubert {
    secap_hubert_config cfg;
    char *path;
    int trainable;
    int do_normalize;
    conv_layer conv[SECAP_HUBERT_MAX_CONV];  /* [cfg.nconv] */
    secap_tensor *fp_ln_w, *fp_ln_b;  /* [C] or NULL (feat_proj_layer_norm = 0) */
    secap_tensor *fp_w, *fp_b;        /* [H, C], [H] */
    secap_tensor *pos_g, *pos_v;      /* [1, 1, K], [H, H/G, K]: trainable models only */
    secap_tensor *pos_w;              /* [H, H/G, K] g v / ||v||, precomputed when frozen */
    secap_tensor *pos_b;              /* [H] */
    secap_tensor *enc_ln_w, *enc_ln_b;/* [H] encoder.layer_norm */
    enc_layer *layers;                /* [L] */
    secap_hubert_tensor *names;       /* [nnames] the name table; parameters point into it */
    secap_tensor **params;            /* [nnames] parallel to names (NULL for g, v when frozen) */
    int nnames;
    secap_ctx *ws[2];                 /* scratch contexts of frozen forwards */
};

/* ---------------------------------------------------------------- loading */

static secap_tensor *param(const secap_hubert *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The parameter called fmt..., which the name table must hold. */
static secap_tensor *param(const secap_hubert *m, const char *fmt, ...)
{
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < m->nnames; i++)
        if (!strcmp(m->names[i].name, name)) return m->params[i];
    secap_fatal("hubert %s: no tensor %s in the name table (hint: secap_hubert_tensors and hubert.c disagree)",
                m->path, name);
}

static int is_pos_gv(const char *name)
{
    return !strcmp(name, "encoder.pos_conv_embed.conv.weight_g") ||
           !strcmp(name, "encoder.pos_conv_embed.conv.weight_v");
}

/* weight = g v / ||v|| for a frozen model, once, via the scratch context so
 * the caller's step arena is untouched. */
static void precompute_pos_weight(secap_ctx *c, secap_hubert *m, secap_weights *w)
{
    const secap_hubert_config *cf = &m->cfg;
    int64_t H = cf->hidden_size, G = cf->num_conv_pos_embedding_groups, K = cf->num_conv_pos_embeddings;
    secap_ctx *s = m->ws[0];
    secap_tensor *g = secap_empty(s, 3, (int64_t[]){1, 1, K});
    secap_tensor *v = secap_empty(s, 3, (int64_t[]){H, H / G, K});
    secap_weights_read(w, "encoder.pos_conv_embed.conv.weight_g", 3, g->shape, secap_f32(g));
    secap_weights_read(w, "encoder.pos_conv_embed.conv.weight_v", 3, v->shape, secap_f32(v));
    secap_tensor *wn = secap_weight_norm(s, g, v, 2);
    m->pos_w = secap_param(c, "encoder.pos_conv_embed.conv.weight (weight-normed)", 3, v->shape, 0);
    memcpy(m->pos_w->data, wn->data, (size_t)wn->n * sizeof(float));
    secap_ctx_reset(s);
}

/* What a failing secap_hubert_load releases (its parameters stay in c). */
typedef struct { secap_weights *w; secap_hubert *m; } hubert_loading;

static void hubert_loading_free(void *arg)
{
    hubert_loading *l = arg;
    secap_weights_close(l->w);
    secap_hubert_free(l->m);
}

secap_hubert *secap_hubert_load(secap_ctx *c, const char *path, int trainable)
{
    secap_weights *w = secap_weights_open(path);
    secap_hubert *m = secap_xcalloc(1, sizeof *m, "hubert model");
    hubert_loading ld = { w, m };
    secap_cleanup cl;
    secap_cleanup_push(&cl, hubert_loading_free, &ld);
    m->path = secap_xstrdup(path, "hubert path");
    m->trainable = trainable != 0;
    secap_hubert_config_read(&m->cfg, w);
    const secap_hubert_config *cf = &m->cfg;
    if (secap_weights_has_attr(w, "do_normalize")) {
        int64_t v = secap_weights_attr_int(w, "do_normalize");
        if (v != 0 && v != 1)
            secap_fatal("weights %s: attribute do_normalize = %lld, expected 0 or 1", path, (long long)v);
        m->do_normalize = (int)v;
    }
    for (int k = 0; k < 2; k++) {
        /* The scratch param arenas stay empty; the step arenas reserve address
         * space only (committed as touched). */
        m->ws[k] = secap_ctx_new((size_t)1 << 20, 0, 0);
        m->ws[k]->no_grad = 1;
        m->ws[k]->training = 0;
    }

    m->nnames = secap_hubert_tensors(cf, NULL, 0);
    m->names = secap_xcalloc((size_t)m->nnames, sizeof *m->names, "hubert name table");
    m->params = secap_xcalloc((size_t)m->nnames, sizeof *m->params, "hubert parameters");
    secap_hubert_tensors(cf, m->names, m->nnames);
    for (int i = 0; i < m->nnames; i++) {
        const secap_hubert_tensor *e = &m->names[i];
        if (!m->trainable && is_pos_gv(e->name)) continue;   /* folded into pos_w below */
        secap_tensor *t = secap_param(c, e->name, e->ndim, e->shape, m->trainable);
        secap_weights_read(w, e->name, e->ndim, e->shape, secap_f32(t));
        m->params[i] = t;
    }
    if (!m->trainable) precompute_pos_weight(c, m, w);
    ld.w = NULL;   /* closed by the check, even when it fails */
    secap_weights_close_checked(w, SECAP_HUBERT_IGNORABLE);

    for (int i = 0; i < cf->nconv; i++) {
        conv_layer *L = &m->conv[i];
        L->w = param(m, "feature_extractor.conv_layers.%d.conv.weight", i);
        if (cf->conv_bias) L->b = param(m, "feature_extractor.conv_layers.%d.conv.bias", i);
        if (cf->feat_extract_norm == SECAP_HUBERT_NORM_LAYER || i == 0) {
            L->norm_w = param(m, "feature_extractor.conv_layers.%d.layer_norm.weight", i);
            L->norm_b = param(m, "feature_extractor.conv_layers.%d.layer_norm.bias", i);
        }
    }
    if (cf->feat_proj_layer_norm) {
        m->fp_ln_w = param(m, "feature_projection.layer_norm.weight");
        m->fp_ln_b = param(m, "feature_projection.layer_norm.bias");
    }
    m->fp_w = param(m, "feature_projection.projection.weight");
    m->fp_b = param(m, "feature_projection.projection.bias");
    if (m->trainable) {
        m->pos_g = param(m, "encoder.pos_conv_embed.conv.weight_g");
        m->pos_v = param(m, "encoder.pos_conv_embed.conv.weight_v");
    }
    m->pos_b = param(m, "encoder.pos_conv_embed.conv.bias");
    m->enc_ln_w = param(m, "encoder.layer_norm.weight");
    m->enc_ln_b = param(m, "encoder.layer_norm.bias");
    m->layers = secap_xcalloc((size_t)cf->num_hidden_layers, sizeof *m->layers, "hubert layers");
    for (int l = 0; l < cf->num_hidden_layers; l++) {
        enc_layer *E = &m->layers[l];
        const char *a = "encoder.layers.%d.attention.%s";
        E->q_w = param(m, a, l, "q_proj.weight");   E->q_b = param(m, a, l, "q_proj.bias");
        E->k_w = param(m, a, l, "k_proj.weight");   E->k_b = param(m, a, l, "k_proj.bias");
        E->v_w = param(m, a, l, "v_proj.weight");   E->v_b = param(m, a, l, "v_proj.bias");
        E->o_w = param(m, a, l, "out_proj.weight"); E->o_b = param(m, a, l, "out_proj.bias");
        E->ln_w = param(m, "encoder.layers.%d.layer_norm.weight", l);
        E->ln_b = param(m, "encoder.layers.%d.layer_norm.bias", l);
        E->ff1_w = param(m, "encoder.layers.%d.feed_forward.intermediate_dense.weight", l);
        E->ff1_b = param(m, "encoder.layers.%d.feed_forward.intermediate_dense.bias", l);
        E->ff2_w = param(m, "encoder.layers.%d.feed_forward.output_dense.weight", l);
        E->ff2_b = param(m, "encoder.layers.%d.feed_forward.output_dense.bias", l);
        E->fln_w = param(m, "encoder.layers.%d.final_layer_norm.weight", l);
        E->fln_b = param(m, "encoder.layers.%d.final_layer_norm.bias", l);
    }
    secap_cleanup_pop(&cl);
    return m;
}

void secap_hubert_free(secap_hubert *m)
{
    if (!m) return;
    secap_ctx_free(m->ws[0]);
    secap_ctx_free(m->ws[1]);
    free(m->layers);
    free(m->params);
    free(m->names);
    free(m->path);
    free(m);
}

const secap_hubert_config *secap_hubert_cfg(const secap_hubert *m) { return &m->cfg; }
int secap_hubert_do_normalize(const secap_hubert *m) { return m->do_normalize; }

secap_tensor *secap_hubert_param(const secap_hubert *m, const char *name)
{
    for (int i = 0; i < m->nnames; i++)
        if (!strcmp(m->names[i].name, name)) return m->params[i];
    return NULL;
}

/* ------------------------------------------------------------ run state */

typedef struct {
    secap_ctx *ctx;      /* where ops write now */
    secap_ctx *ws[2];    /* frozen: the scratch pair; trainable: NULL */
    int k;               /* index of ctx in ws */
} run;

/* Frozen runs: moves x into the other scratch context (reset first) and
 * makes it current, when forced or when the current one holds more than
 * HOP_BYTES.  Every tensor but the returned one is dead afterwards. */
static secap_tensor *hop(run *r, secap_tensor *x, int force)
{
    if (!r->ws[0]) return x;
    if (!force && secap_arena_used(r->ctx->step) < HOP_BYTES) return x;
    secap_ctx *o = r->ws[1 - r->k];
    secap_ctx_reset(o);
    secap_tensor *y = secap_from_data(o, x->ndim, x->shape, secap_f32(x));
    r->k = 1 - r->k;
    r->ctx = o;
    return y;
}

/* ------------------------------------------------------ feature encoder */

/* One utterance through the conv stack: wave [n] -> [1, F, C] (time-major).
 * The convs run time-major (secap_conv1d_tm: sgemms over strided views, and
 * the "layer" LayerNorm is then over the last dim, no transposes).  The
 * "group" variant's conv 0 runs channel-major, where GroupNorm(C groups)
 * takes per-channel statistics over contiguous rows; one transpose then
 * switches to time-major. */
static secap_tensor *feature_encoder(run *r, const secap_hubert *m, const float *wave, int64_t n)
{
    const secap_hubert_config *cf = &m->cfg;
    int group = cf->feat_extract_norm == SECAP_HUBERT_NORM_GROUP, first = 0;
    secap_tensor *x;
    if (group) {
        const conv_layer *L = &m->conv[0];
        x = secap_from_data(r->ctx, 3, (int64_t[]){1, 1, n}, wave);
        if (m->do_normalize) secap_audio_normalize(secap_f32(x), n);
        x = hop(r, secap_conv1d(r->ctx, x, L->w, L->b, cf->conv_stride[0], 0, 1), 0);
        if (L->norm_w) x = hop(r, secap_groupnorm(r->ctx, x, (int)x->shape[1], L->norm_w, L->norm_b, CONV_NORM_EPS), 0);
        x = hop(r, secap_transpose(r->ctx, secap_gelu(r->ctx, x), 1, 2), 0);
        first = 1;
    } else {
        x = secap_from_data(r->ctx, 3, (int64_t[]){1, n, 1}, wave);
        if (m->do_normalize) secap_audio_normalize(secap_f32(x), n);
    }
    for (int i = first; i < cf->nconv; i++) {
        const conv_layer *L = &m->conv[i];
        x = hop(r, secap_conv1d_tm(r->ctx, x, L->w, L->b, cf->conv_stride[i]), 0);
        if (L->norm_w) x = hop(r, secap_layernorm(r->ctx, x, L->norm_w, L->norm_b, CONV_NORM_EPS), 0);
        x = hop(r, secap_gelu(r->ctx, x), 0);
    }
    return x;
}

/* ---------------------------------------------------------- transformer */

/* x [B, F, H] -> x + GELU(conv(x)), the grouped positional conv with
 * "same" padding; HF's HubertSamePadLayer drops the last frame when K is even. */
static secap_tensor *pos_conv_add(run *r, const secap_hubert *m, secap_tensor *x)
{
    const secap_hubert_config *cf = &m->cfg;
    secap_ctx *c = r->ctx;
    int K = cf->num_conv_pos_embeddings;
    int64_t F = x->shape[1];
    secap_tensor *w = m->pos_w ? m->pos_w : secap_weight_norm(c, m->pos_g, m->pos_v, 2);
    secap_tensor *p = secap_conv1d(c, secap_transpose(c, x, 1, 2), w, m->pos_b, 1, K / 2,
                                   cf->num_conv_pos_embedding_groups);
    if (p->shape[2] != F) p = secap_slice(c, p, 2, 0, F);
    p = secap_transpose(c, secap_gelu(c, p), 1, 2);
    return secap_add(c, x, p);
}

static secap_tensor *self_attention(secap_ctx *c, const secap_hubert *m, const enc_layer *E, secap_tensor *x,
                                    const int32_t *key_len)
{
    int heads = m->cfg.num_attention_heads;
    float scale = 1.0f / sqrtf((float)(m->cfg.hidden_size / heads));
    secap_tensor *q = secap_linear(c, x, E->q_w, E->q_b);
    secap_tensor *k = secap_linear(c, x, E->k_w, E->k_b);
    secap_tensor *v = secap_linear(c, x, E->v_w, E->v_b);
    secap_tensor *a = secap_attention(c, q, k, v, heads, key_len, 0, scale);
    return secap_linear(c, a, E->o_w, E->o_b);
}

static secap_tensor *feed_forward(secap_ctx *c, const enc_layer *E, secap_tensor *x)
{
    return secap_linear(c, secap_gelu(c, secap_linear(c, x, E->ff1_w, E->ff1_b)), E->ff2_w, E->ff2_b);
}

/* One encoder layer, x [B, F, H] -> [B, F, H]. */
static secap_tensor *encoder_layer(secap_ctx *c, const secap_hubert *m, const enc_layer *E, secap_tensor *x,
                                   const int32_t *key_len)
{
    float eps = (float)m->cfg.layer_norm_eps;
    if (m->cfg.do_stable_layer_norm) {   /* pre-LN: HubertEncoderLayerStableLayerNorm */
        x = secap_add(c, x, self_attention(c, m, E, secap_layernorm(c, x, E->ln_w, E->ln_b, eps), key_len));
        return secap_add(c, x, feed_forward(c, E, secap_layernorm(c, x, E->fln_w, E->fln_b, eps)));
    }
    /* post-LN: HubertEncoderLayer */
    x = secap_layernorm(c, secap_add(c, x, self_attention(c, m, E, x, key_len)), E->ln_w, E->ln_b, eps);
    return secap_layernorm(c, secap_add(c, x, feed_forward(c, E, x)), E->fln_w, E->fln_b, eps);
}

/* ---------------------------------------------------------------- driver */

secap_tensor *secap_hubert_forward(secap_ctx *c, const secap_hubert *m, const float *wave,
                                   const int64_t *nsamples, int B, int64_t Nmax, int layer,
                                   int32_t *frames_out)
{
    const secap_hubert_config *cf = &m->cfg;
    int L = cf->num_hidden_layers;
    if (B < 1) secap_fatal("hubert_forward: batch of %d utterances (hint: pass at least one)", B);
    if (layer < -1 || layer > L)
        secap_fatal("hubert_forward: layer %d of a %d-layer model (hint: -1 for the last hidden state, or 0..%d)",
                    layer, L, L);
    int stop = layer < 0 ? L : layer;
    int32_t *frames = secap_xmalloc((size_t)B * sizeof *frames, "hubert frames");
    int64_t Fmax = 0;
    for (int b = 0; b < B; b++) {
        if (nsamples[b] < 0 || nsamples[b] > Nmax)
            secap_fatal("hubert_forward: utterance %d has %lld samples, outside [0, %lld] (hint: nsamples[b] "
                        "must not pass the padded length)", b, (long long)nsamples[b], (long long)Nmax);
        int64_t f = secap_hubert_config_frames(cf, nsamples[b]);
        if (f < 1)
            secap_fatal("hubert %s: utterance %d has %lld samples, fewer than the %d-sample receptive field of "
                        "the conv stack (hint: drop clips shorter than %.3f s or pad them)", m->path, b,
                        (long long)nsamples[b], SECAP_MIN_SAMPLES, SECAP_MIN_SAMPLES / (double)SECAP_SAMPLE_RATE);
        frames[b] = (int32_t)f;
        if (f > Fmax) Fmax = f;
    }
    int padded = 0;
    for (int b = 0; b < B; b++) padded |= frames[b] != Fmax;

    int frozen = !m->trainable || c->no_grad > 0;
    run r = { .ctx = c };
    if (frozen) {
        r.ws[0] = m->ws[0];
        r.ws[1] = m->ws[1];
        secap_ctx_reset(r.ws[0]);
        r.ctx = r.ws[0];
    }
    int64_t C = cf->conv_dim[cf->nconv - 1], H = cf->hidden_size;

    /* conv stack per utterance at its own length, gathered into [B, Fmax, C]
     * with zero rows past each utterance's frames */
    secap_tensor *x;
    if (frozen) {
        float *feats = secap_xcalloc((size_t)(B * Fmax * C), sizeof(float), "hubert features");
        for (int b = 0; b < B; b++) {
            secap_tensor *f = feature_encoder(&r, m, wave + (size_t)b * (size_t)Nmax, nsamples[b]);
            memcpy(feats + (size_t)b * (size_t)(Fmax * C), f->data, (size_t)f->n * sizeof(float));
        }
        secap_ctx *o = r.ws[1 - r.k];   /* start the transformer in a clean context */
        secap_ctx_reset(o);
        r.k = 1 - r.k;
        r.ctx = o;
        x = secap_from_data(r.ctx, 3, (int64_t[]){B, Fmax, C}, feats);
        free(feats);
    } else {
        secap_tensor **parts = secap_xmalloc((size_t)B * sizeof *parts, "hubert batch parts");
        for (int b = 0; b < B; b++) {
            secap_tensor *f = feature_encoder(&r, m, wave + (size_t)b * (size_t)Nmax, nsamples[b]);
            if (frames[b] < Fmax) {
                secap_tensor *pad = secap_zeros(c, 3, (int64_t[]){1, Fmax - frames[b], C});
                f = secap_concat(c, (secap_tensor *[]){f, pad}, 2, 1);
            }
            parts[b] = f;
        }
        x = B == 1 ? parts[0] : secap_concat(c, parts, B, 0);
        free(parts);
    }

    /* feature projection, then zero the padded frames (HF: hidden_states[~mask] = 0) */
    secap_ctx *cx = r.ctx;
    if (m->fp_ln_w) x = secap_layernorm(cx, x, m->fp_ln_w, m->fp_ln_b, (float)cf->layer_norm_eps);
    x = secap_linear(cx, x, m->fp_w, m->fp_b);
    if (padded) {
        secap_tensor *mask = secap_zeros(cx, 3, (int64_t[]){B, Fmax, 1});
        for (int b = 0; b < B; b++)
            for (int64_t t = 0; t < frames[b]; t++) secap_f32(mask)[b * Fmax + t] = 1.0f;
        x = secap_mul(cx, x, mask);
    }
    x = pos_conv_add(&r, m, x);
    if (!cf->do_stable_layer_norm)
        x = secap_layernorm(cx, x, m->enc_ln_w, m->enc_ln_b, (float)cf->layer_norm_eps);
    const int32_t *key_len = padded ? frames : NULL;
    for (int l = 0; l < stop; l++) {
        x = hop(&r, x, 1);
        x = encoder_layer(r.ctx, m, &m->layers[l], x, key_len);
    }
    if (cf->do_stable_layer_norm && stop == L)
        x = secap_layernorm(r.ctx, x, m->enc_ln_w, m->enc_ln_b, (float)cf->layer_norm_eps);
    if (frozen) x = secap_from_data(c, 3, (int64_t[]){B, Fmax, H}, secap_f32(x));
    if (frames_out) memcpy(frames_out, frames, (size_t)B * sizeof *frames);
    free(frames);
    return x;
}

void secap_hubert_cache_key(const secap_hubert *m, const char *weights_path, int layer,
                            char *encoder, size_t encoder_len, char *settings, size_t settings_len)
{
    struct stat st;
    if (stat(weights_path, &st) != 0)
        secap_fatal("hubert cache key: cannot stat %s (hint: pass the weight file the model was loaded from)",
                    weights_path);
    const char *base = strrchr(weights_path, '/');
    base = base ? base + 1 : weights_path;
    snprintf(encoder, encoder_len, "%s size=%lld mtime=%lld", base, (long long)st.st_size, (long long)st.st_mtime);
    snprintf(settings, settings_len, "sr=%d normalize=%d layer=%d", SECAP_SAMPLE_RATE, m->do_normalize, layer);
}

double secap_hubert_flops(const secap_hubert_config *cf, const int64_t *nsamples, int B, int layer)
{
    int L = cf->num_hidden_layers, stop = layer < 0 || layer > L ? L : layer;
    double H = cf->hidden_size, I = cf->intermediate_size, G = cf->num_conv_pos_embedding_groups,
           K = cf->num_conv_pos_embeddings, total = 0;
    for (int b = 0; b < B; b++) {
        double n = (double)nsamples[b], cin = 1;
        for (int i = 0; i < cf->nconv; i++) {
            n = floor((n - cf->conv_kernel[i]) / cf->conv_stride[i]) + 1;
            if (n < 1) { n = 0; break; }
            total += 2.0 * cf->conv_dim[i] * cin * cf->conv_kernel[i] * n;
            cin = cf->conv_dim[i];
        }
        double F = n;
        total += 2.0 * F * cin * H;                           /* feature projection */
        total += 2.0 * H * (H / G) * K * F;                   /* positional conv */
        total += stop * (2.0 * F * H * H * 4                   /* q, k, v, out */
                         + 2.0 * F * H * I * 2                 /* FFN */
                         + 2.0 * 2.0 * F * F * H);             /* Q K^T and P V */
    }
    return total;
}
