/* HuBERT config from weight-file attributes, validation, frame counts. */
#include "secap/hubert_cfg.h"
#include "secap/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int64_t secap_hubert_frames(int64_t samples, const int *kernel, const int *stride, int nconv)
{
    int64_t n = samples;
    for (int i = 0; i < nconv; i++) {
        if (n < kernel[i]) return 0;
        n = (n - kernel[i]) / stride[i] + 1;   /* n >= k: truncation == floor */
    }
    return n;
}

double secap_hubert_forward_bytes(const secap_hubert_config *c, const int64_t *nsamples, int B, int threads)
{
    int64_t nmax = 0;
    for (int b = 0; b < B; b++) nmax = nsamples[b] > nmax ? nsamples[b] : nmax;
    /* the conv stack runs one utterance at a time: a layer's input, its
     * output, the norm's and GELU's outputs */
    double conv = 0, n = (double)nmax, cin = 1;
    for (int i = 0; i < c->nconv && n >= c->conv_kernel[i]; i++) {
        double out = floor((n - c->conv_kernel[i]) / c->conv_stride[i]) + 1;
        double bytes = 4.0 * (cin * n + 3.0 * c->conv_dim[i] * out);
        conv = bytes > conv ? bytes : conv;
        n = out;
        cin = c->conv_dim[i];
    }
    /* the transformer on the padded batch: residual stream, norm output,
     * q, k, v, attention output, the feed-forward's two [F x I], and the
     * attention's [F x F] scores, one per thread */
    double F = (double)secap_hubert_config_frames(c, nmax);
    double tr = 4.0 * B * F * (6.0 * c->hidden_size + 2.0 * c->intermediate_size) + 4.0 * (threads > 0 ? threads : 1) * F * F;
    return (conv > tr ? conv : tr) + 4.0 * B * F * c->hidden_size;   /* + the result */
}

static void attr_ints(secap_weights *w, const char *name, int *dst, int *n)
{
    int64_t v[SECAP_HUBERT_MAX_CONV];
    int k = secap_weights_attr_ints(w, name, v, SECAP_HUBERT_MAX_CONV);
    for (int i = 0; i < k; i++) {
        if (v[i] < 1 || v[i] > (1 << 20))
            secap_fatal("weights %s: attribute %s[%d] = %lld must be in [1, %d]",
                        secap_weights_path(w), name, i, (long long)v[i], 1 << 20);
        dst[i] = (int)v[i];
    }
    *n = k;
}

void secap_hubert_config_read(secap_hubert_config *c, secap_weights *w)
{
    memset(c, 0, sizeof *c);
    const char *path = secap_weights_path(w);
    secap_weights_require_string(w, "model_type", "hubert", "this is not a HuBERT weight file");
    secap_weights_require_string(w, "hidden_act", "gelu", "the encoder implements exact (erf) GELU");
    secap_weights_require_string(w, "feat_extract_activation", "gelu", "the conv stack implements exact (erf) GELU");
    c->hidden_size = secap_weights_attr_int_in(w, "hidden_size", 1, 1 << 16);
    c->num_hidden_layers = secap_weights_attr_int_in(w, "num_hidden_layers", 1, 1024);
    c->num_attention_heads = secap_weights_attr_int_in(w, "num_attention_heads", 1, 1 << 12);
    c->intermediate_size = secap_weights_attr_int_in(w, "intermediate_size", 1, 1 << 20);
    int nd, nk, ns;
    attr_ints(w, "conv_dim", c->conv_dim, &nd);
    attr_ints(w, "conv_kernel", c->conv_kernel, &nk);
    attr_ints(w, "conv_stride", c->conv_stride, &ns);
    if (nd != nk || nd != ns)
        secap_fatal("weights %s: conv_dim, conv_kernel and conv_stride have %d, %d and %d entries; they must "
                    "agree (hint: check config.json)", path, nd, nk, ns);
    c->nconv = nd;
    c->conv_bias = secap_weights_attr_int_in(w, "conv_bias", 0, 1);
    const char *norm = secap_weights_attr_string(w, "feat_extract_norm");
    if (!strcmp(norm, "group")) c->feat_extract_norm = SECAP_HUBERT_NORM_GROUP;
    else if (!strcmp(norm, "layer")) c->feat_extract_norm = SECAP_HUBERT_NORM_LAYER;
    else secap_fatal("weights %s: attribute feat_extract_norm = \"%s\", expected \"group\" or \"layer\"", path, norm);
    c->do_stable_layer_norm = secap_weights_attr_int_in(w, "do_stable_layer_norm", 0, 1);
    c->feat_proj_layer_norm = secap_weights_has_attr(w, "feat_proj_layer_norm")
                            ? secap_weights_attr_int_in(w, "feat_proj_layer_norm", 0, 1) : 1;
    if (secap_weights_has_attr(w, "conv_pos_batch_norm") && secap_weights_attr_int(w, "conv_pos_batch_norm"))
        secap_fatal("weights %s: attribute conv_pos_batch_norm = 1: the BatchNorm positional conv is not "
                    "supported (hint: only the weight-norm positional conv of HubertModel is)", path);
    c->num_conv_pos_embeddings = secap_weights_attr_int_in(w, "num_conv_pos_embeddings", 1, 1 << 16);
    c->num_conv_pos_embedding_groups = secap_weights_attr_int_in(w, "num_conv_pos_embedding_groups", 1, 1 << 16);
    c->layer_norm_eps = secap_weights_attr_double(w, "layer_norm_eps");
    secap_hubert_config_validate(c, path);
}

void secap_hubert_config_validate(const secap_hubert_config *c, const char *where)
{
    if (c->hidden_size < 1 || c->num_hidden_layers < 1 || c->num_attention_heads < 1 || c->intermediate_size < 1)
        secap_fatal("hubert config %s: hidden_size %d, num_hidden_layers %d, num_attention_heads %d and "
                    "intermediate_size %d must all be positive", where, c->hidden_size, c->num_hidden_layers,
                    c->num_attention_heads, c->intermediate_size);
    if (c->hidden_size % c->num_attention_heads)
        secap_fatal("hubert config %s: hidden_size %d is not a multiple of num_attention_heads %d",
                    where, c->hidden_size, c->num_attention_heads);
    if (c->num_conv_pos_embeddings < 1 || c->num_conv_pos_embedding_groups < 1 ||
        c->hidden_size % c->num_conv_pos_embedding_groups)
        secap_fatal("hubert config %s: num_conv_pos_embeddings %d must be positive and hidden_size %d a "
                    "multiple of num_conv_pos_embedding_groups %d", where, c->num_conv_pos_embeddings,
                    c->hidden_size, c->num_conv_pos_embedding_groups);
    if (c->nconv < 1 || c->nconv > SECAP_HUBERT_MAX_CONV)
        secap_fatal("hubert config %s: %d conv layers, expected 1 to %d", where, c->nconv, SECAP_HUBERT_MAX_CONV);
    for (int i = 0; i < c->nconv; i++)
        if (c->conv_dim[i] < 1 || c->conv_kernel[i] < 1 || c->conv_stride[i] < 1)
            secap_fatal("hubert config %s: conv layer %d has dim %d, kernel %d, stride %d; all must be positive",
                        where, i, c->conv_dim[i], c->conv_kernel[i], c->conv_stride[i]);
    if (c->feat_extract_norm != SECAP_HUBERT_NORM_GROUP && c->feat_extract_norm != SECAP_HUBERT_NORM_LAYER)
        secap_fatal("hubert config %s: feat_extract_norm %d is neither group nor layer", where, (int)c->feat_extract_norm);
    if (!(c->layer_norm_eps > 0 && c->layer_norm_eps < 1))
        secap_fatal("hubert config %s: layer_norm_eps = %g must be in (0, 1)", where, c->layer_norm_eps);
}

const char *const SECAP_HUBERT_IGNORABLE[] = { "masked_spec_embed", NULL };
