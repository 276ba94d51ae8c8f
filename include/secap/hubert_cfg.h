/* secap/hubert_cfg.h - HuBERT hyper-parameters and the frame-count formula.
 *
 * The config is read from a weight file's root attributes, named as in the
 * Hugging Face config.json (see secap/weights.h); nothing is hard-coded.
 * Semantics follow HF `HubertModel` (SECAP.md section 2).
 */
#ifndef SECAP_HUBERT_CFG_H
#define SECAP_HUBERT_CFG_H

#include <stdint.h>

#include "secap/weights.h"

#define SECAP_HUBERT_MAX_CONV 16

typedef enum {
    SECAP_HUBERT_NORM_GROUP = 0,  /* GroupNorm(C, C) after conv 0 only ("base") */
    SECAP_HUBERT_NORM_LAYER = 1,  /* LayerNorm over channels after every conv ("large") */
} secap_hubert_norm;

typedef struct {
    int hidden_size;                     /* H */
    int num_hidden_layers;               /* L */
    int num_attention_heads;             /* H % heads == 0 */
    int intermediate_size;               /* FFN width */
    int nconv;                           /* feature-encoder conv layers (7) */
    int conv_dim[SECAP_HUBERT_MAX_CONV];     /* [nconv] output channels */
    int conv_kernel[SECAP_HUBERT_MAX_CONV];  /* [nconv] */
    int conv_stride[SECAP_HUBERT_MAX_CONV];  /* [nconv] */
    int conv_bias;                       /* conv layers have a bias */
    secap_hubert_norm feat_extract_norm;
    int do_stable_layer_norm;            /* 1: pre-LN + final LN; 0: post-LN, LN after pos add */
    int feat_proj_layer_norm;            /* LayerNorm(conv_dim[-1]) before the projection;
                                            optional attribute, HF default 1 */
    int num_conv_pos_embeddings;         /* pos conv kernel K (even: last frame dropped) */
    int num_conv_pos_embedding_groups;   /* pos conv groups, H % groups == 0 */
    double layer_norm_eps;               /* transformer / projection LNs; the conv
                                            LayerNorms and GroupNorm use 1e-5 as in HF */
} secap_hubert_config;

/* Fills c from w's root attributes and validates it.  Requires model_type
 * "hubert", hidden_act and feat_extract_activation "gelu" (exact erf GELU).
 * Fails naming the file and the attribute. */
void secap_hubert_config_read(secap_hubert_config *c, secap_weights *w);

/* Checks ranges and divisibility; `where` names the source in messages. */
void secap_hubert_config_validate(const secap_hubert_config *c, const char *where);

/* Frames out of the conv stack for `samples` input samples, HF
 * `_get_feat_extract_output_lengths`: per layer n = floor((n - k) / s) + 1.
 * Returns 0 when the input is shorter than the receptive field (HF would
 * give 0 or a negative count there). */
int64_t secap_hubert_frames(int64_t samples, const int *kernel, const int *stride, int nconv);

/* fnmatch patterns a HuBERT loader passes to secap_weights_close_checked(). */
extern const char *const SECAP_HUBERT_IGNORABLE[];

/* About how many bytes of activations a frozen forward (secap_hubert_forward)
 * over B utterances of these lengths holds at once, from the config alone:
 * the larger of the conv stack's widest layer on the longest utterance and
 * the transformer's batch activations with the attention scores of
 * `threads` threads ([F x F] each), plus the result.  Programs compare it
 * with the memory they have before starting (a conv_stride of 1 makes every
 * sample a frame: 320 times the activations, 10^5 times the scores). */
double secap_hubert_forward_bytes(const secap_hubert_config *c, const int64_t *nsamples, int B, int threads);

static inline int64_t secap_hubert_config_frames(const secap_hubert_config *c, int64_t samples)
{
    return secap_hubert_frames(samples, c->conv_kernel, c->conv_stride, c->nconv);
}

#endif
