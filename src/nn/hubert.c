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
    secap_tensor *pos_g, *pos_v;      /* [1, 1, K], [H, H/G, K] weight_g, weight_v */
    secap_tensor *pos_w;              /* [H, H/G, K] g v / ||v||, precomputed when frozen, else NULL */
    secap_tensor *pos_b;              /* [H] */
    secap_tensor *enc_ln_w, *enc_ln_b;/* [H] encoder.layer_norm */
    enc_layer *layers;                /* [L] */
    secap_params *params;             /* the name table; owns names and the file mapping */
};

/* ---------------------------------------------------------------- loading */

#define AT(obj, field) ((obj) ? &(obj)->field : NULL)

/* The HF state-dict name table, in the order HF lists it: every tensor the
 * config implies, bound to its field of m (m NULL: names and shapes only). */
static void hubert_table(secap_params *p, const secap_hubert_config *c, secap_hubert *m)
{
    int64_t H = c->hidden_size, F = c->intermediate_size, cin = 1;
    for (int i = 0; i < c->nconv; i++) {
        conv_layer *L = m ? &m->conv[i] : NULL;
        int64_t d = c->conv_dim[i];
        secap_params_add(p, AT(L, w), SECAP_SHAPE(d, cin, c->conv_kernel[i]), "feature_extractor.conv_layers.%d.conv.weight", i);
        if (c->conv_bias) secap_params_add(p, AT(L, b), SECAP_SHAPE(d), "feature_extractor.conv_layers.%d.conv.bias", i);
        if (c->feat_extract_norm == SECAP_HUBERT_NORM_LAYER || i == 0) {
            secap_params_add(p, AT(L, norm_w), SECAP_SHAPE(d), "feature_extractor.conv_layers.%d.layer_norm.weight", i);
            secap_params_add(p, AT(L, norm_b), SECAP_SHAPE(d), "feature_extractor.conv_layers.%d.layer_norm.bias", i);
        }
        cin = d;
    }
    if (c->feat_proj_layer_norm) {
        secap_params_add(p, AT(m, fp_ln_w), SECAP_SHAPE(cin), "feature_projection.layer_norm.weight");
        secap_params_add(p, AT(m, fp_ln_b), SECAP_SHAPE(cin), "feature_projection.layer_norm.bias");
    }
    secap_params_add(p, AT(m, fp_w), SECAP_SHAPE(H, cin), "feature_projection.projection.weight");
    secap_params_add(p, AT(m, fp_b), SECAP_SHAPE(H), "feature_projection.projection.bias");
    int64_t K = c->num_conv_pos_embeddings, G = c->num_conv_pos_embedding_groups;
    secap_params_add(p, AT(m, pos_g), SECAP_SHAPE(1, 1, K), "encoder.pos_conv_embed.conv.weight_g");
    secap_params_add(p, AT(m, pos_v), SECAP_SHAPE(H, H / G, K), "encoder.pos_conv_embed.conv.weight_v");
    secap_params_add(p, AT(m, pos_b), SECAP_SHAPE(H), "encoder.pos_conv_embed.conv.bias");
    secap_params_add(p, AT(m, enc_ln_w), SECAP_SHAPE(H), "encoder.layer_norm.weight");
    secap_params_add(p, AT(m, enc_ln_b), SECAP_SHAPE(H), "encoder.layer_norm.bias");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        enc_layer *E = m ? &m->layers[l] : NULL;
        const char *a = "encoder.layers.%d.attention.%s";
        secap_params_add(p, AT(E, q_w), SECAP_SHAPE(H, H), a, l, "q_proj.weight");
        secap_params_add(p, AT(E, q_b), SECAP_SHAPE(H), a, l, "q_proj.bias");
        secap_params_add(p, AT(E, k_w), SECAP_SHAPE(H, H), a, l, "k_proj.weight");
        secap_params_add(p, AT(E, k_b), SECAP_SHAPE(H), a, l, "k_proj.bias");
        secap_params_add(p, AT(E, v_w), SECAP_SHAPE(H, H), a, l, "v_proj.weight");
        secap_params_add(p, AT(E, v_b), SECAP_SHAPE(H), a, l, "v_proj.bias");
        secap_params_add(p, AT(E, o_w), SECAP_SHAPE(H, H), a, l, "out_proj.weight");
        secap_params_add(p, AT(E, o_b), SECAP_SHAPE(H), a, l, "out_proj.bias");
        secap_params_add(p, AT(E, ln_w), SECAP_SHAPE(H), "encoder.layers.%d.layer_norm.weight", l);
        secap_params_add(p, AT(E, ln_b), SECAP_SHAPE(H), "encoder.layers.%d.layer_norm.bias", l);
        secap_params_add(p, AT(E, ff1_w), SECAP_SHAPE(F, H), "encoder.layers.%d.feed_forward.intermediate_dense.weight", l);
        secap_params_add(p, AT(E, ff1_b), SECAP_SHAPE(F), "encoder.layers.%d.feed_forward.intermediate_dense.bias", l);
        secap_params_add(p, AT(E, ff2_w), SECAP_SHAPE(H, F), "encoder.layers.%d.feed_forward.output_dense.weight", l);
        secap_params_add(p, AT(E, ff2_b), SECAP_SHAPE(H), "encoder.layers.%d.feed_forward.output_dense.bias", l);
        secap_params_add(p, AT(E, fln_w), SECAP_SHAPE(H), "encoder.layers.%d.final_layer_norm.weight", l);
        secap_params_add(p, AT(E, fln_b), SECAP_SHAPE(H), "encoder.layers.%d.final_layer_norm.bias", l);
    }
}

secap_params *secap_hubert_table_new(const secap_hubert_config *c)
{
    secap_params *p = secap_params_new("hubert");
    hubert_table(p, c, NULL);
    return p;
}

/* weight = g v / ||v|| for a frozen model, once, in step scratch. */
static void precompute_pos_weight(secap_ctx *c, secap_hubert *m)
{
    size_t mark = secap_arena_mark(c->step);
    secap_tensor *wn = secap_weight_norm(c, m->pos_g, m->pos_v, 2);
    m->pos_w = secap_param_uninit(c, "encoder.pos_conv_embed.conv.weight (weight-normed)", 3, wn->shape,
                                  SECAP_F32, 0);
    memcpy(m->pos_w->data, wn->data, (size_t)wn->n * sizeof(float));
    secap_arena_rewind(c->step, mark);
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
    return secap_hubert_load_top(c, path, trainable ? -1 : 0);
}

secap_hubert *secap_hubert_load_top(secap_ctx *c, const char *path, int top)
{
    secap_weights *w = secap_weights_open(path);
    secap_hubert *m = secap_xcalloc(1, sizeof *m, "hubert model");
    hubert_loading ld = { w, m };
    secap_cleanup cl;
    secap_cleanup_push(&cl, hubert_loading_free, &ld);
    m->path = secap_xstrdup(path, "hubert path");
    m->trainable = top != 0;
    secap_hubert_config_read(&m->cfg, w);
    const secap_hubert_config *cf = &m->cfg;
    if (top < -1 || top > cf->num_hidden_layers)
        secap_fatal("hubert %s: %d trainable top layers asked of a %d-layer model (hint: 0..%d)", path, top,
                    cf->num_hidden_layers, cf->num_hidden_layers);
    if (secap_weights_has_attr(w, "do_normalize")) {
        int64_t v = secap_weights_attr_int(w, "do_normalize");
        if (v != 0 && v != 1)
            secap_fatal("weights %s: attribute do_normalize = %lld, expected 0 or 1", path, (long long)v);
        m->do_normalize = (int)v;
    }
    m->layers = secap_xcalloc((size_t)cf->num_hidden_layers, sizeof *m->layers, "hubert layers");
    m->params = secap_params_new("hubert");
    secap_params_default_trainable(m->params, top == -1);
    hubert_table(m->params, cf, m);
    if (top > 0) {   /* the last `top` layers (and the pre-LN variant's final LayerNorm) */
        for (int l = cf->num_hidden_layers - top; l < cf->num_hidden_layers; l++) {
            char pat[64];
            snprintf(pat, sizeof pat, "encoder.layers.%d.*", l);
            secap_params_set_trainable(m->params, pat, 1);
        }
        if (cf->do_stable_layer_norm) secap_params_set_trainable(m->params, "encoder.layer_norm.*", 1);
    }
    secap_params_load(m->params, c, w, NULL, 0);
    ld.w = NULL;   /* closed by the check, even when it fails */
    secap_weights_close_checked(w, SECAP_HUBERT_IGNORABLE);
    if (!m->trainable) precompute_pos_weight(c, m);
    secap_cleanup_pop(&cl);
    return m;
}

void secap_hubert_free(secap_hubert *m)
{
    if (!m) return;
    secap_params_free(m->params);
    free(m->layers);
    free(m->path);
    free(m);
}

const secap_hubert_config *secap_hubert_cfg(const secap_hubert *m) { return &m->cfg; }
int secap_hubert_do_normalize(const secap_hubert *m) { return m->do_normalize; }
const secap_params *secap_hubert_params(const secap_hubert *m) { return m->params; }

secap_tensor *secap_hubert_param(const secap_hubert *m, const char *name)
{
    return secap_params_get(m->params, name);
}

/* ------------------------------------------------------------ run state */

/* Where a forward runs: always the caller's context.  A frozen forward (no
 * tape) keeps the live activation at `base` in the step arena and, at stage
 * boundaries, moves it back down there and drops everything above it, so
 * only one stage's activations exist at a time and two threads can run one
 * model with a context each.  A trainable forward keeps every activation
 * for the tape. */
typedef struct {
    secap_ctx *ctx;
    int frozen;
    size_t base;         /* frozen: arena offset of the live activation */
} run;

/* Frozen runs: moves x to r->base and frees what lies above it, when forced
 * or when more than HOP_BYTES lie above the base.  Every tensor but the
 * returned one is dead afterwards. */
static secap_tensor *hop(run *r, secap_tensor *x, int force)
{
    if (!r->frozen) return x;
    if (!force && secap_arena_used(r->ctx->step) - r->base < HOP_BYTES) return x;
    int64_t shape[SECAP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    const void *src = x->data;
    secap_arena_rewind(r->ctx->step, r->base);
    secap_tensor *y = secap_empty(r->ctx, x->ndim, shape);   /* lands at base, at or below src */
    memmove(y->data, src, (size_t)y->n * sizeof(float));
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

    run r = { .ctx = c, .frozen = !m->trainable || c->no_grad > 0 };
    int64_t C = cf->conv_dim[cf->nconv - 1];

    /* conv stack per utterance at its own length, gathered into [B, Fmax, C]
     * with zero rows past each utterance's frames */
    secap_tensor *x;
    if (r.frozen) {
        size_t base0 = secap_arena_mark(c->step);
        x = secap_zeros(c, 3, (int64_t[]){B, Fmax, C});   /* at base0 */
        r.base = secap_arena_mark(c->step);
        for (int b = 0; b < B; b++) {
            secap_tensor *f = feature_encoder(&r, m, wave + (size_t)b * (size_t)Nmax, nsamples[b]);
            memcpy(secap_f32(x) + (size_t)b * (size_t)(Fmax * C), f->data, (size_t)f->n * sizeof(float));
            secap_arena_rewind(c->step, r.base);
        }
        r.base = base0;   /* the transformer keeps its live activation where x is */
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
    x = hop(&r, x, 1);   /* frozen: the result alone, where the batch started */
    if (frames_out) memcpy(frames_out, frames, (size_t)B * sizeof *frames);
    free(frames);
    return x;
}

secap_tensor *secap_hubert_layers(secap_ctx *c, const secap_hubert *m, secap_tensor *x, const int32_t *frames,
                                  int from)
{
    const secap_hubert_config *cf = &m->cfg;
    int L = cf->num_hidden_layers;
    char sb[64];
    secap_check_live(x, "hubert_layers");
    if (from < 0 || from > L)
        secap_fatal("hubert_layers: start layer %d of a %d-layer model (hint: 0..%d, the index of the "
                    "hidden_states entry x holds)", from, L, L);
    if (x->dtype != SECAP_F32 || x->ndim != 3 || x->shape[2] != cf->hidden_size)
        secap_fatal("hubert_layers: x is %s, expected float32 [B, F, %d] (hint: hidden_states[%d] of this model)",
                    secap_shape_str(x, sb, sizeof sb), cf->hidden_size, from);
    int64_t B = x->shape[0], F = x->shape[1];
    const int32_t *key_len = NULL;
    if (frames)
        for (int64_t b = 0; b < B; b++) {
            if (frames[b] < 1 || frames[b] > F)
                secap_fatal("hubert_layers: item %lld has %d valid frames, outside [1, %lld]", (long long)b,
                            frames[b], (long long)F);
            if (frames[b] < F) key_len = frames;
        }
    if (from == L) return x;   /* hidden_states[L] is the output already */
    for (int l = from; l < L; l++) x = encoder_layer(c, m, &m->layers[l], x, key_len);
    if (cf->do_stable_layer_norm) x = secap_layernorm(c, x, m->enc_ln_w, m->enc_ln_b, (float)cf->layer_norm_eps);
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
