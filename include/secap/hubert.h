/* secap/hubert.h - the HuBERT speech encoder (Hugging Face `HubertModel`).
 *
 * Both variants of SECAP.md section 2, chosen by the weight file's attributes
 * (secap/hubert_cfg.h), never by hard-coded sizes:
 *   "base"   group-norm feature encoder, post-LN transformer;
 *   "large"  layer-norm feature encoder with conv bias, pre-LN ("stable layer
 *            norm") transformer and a final LayerNorm.
 *
 * Pipeline (F = frames, C = conv_dim[-1], H = hidden_size):
 *   wave [N] -> conv stack [C, F] -> LayerNorm(C) -> Linear(C->H) -> zero the
 *   padded frames -> + GELU(weight-normed grouped pos conv) -> transformer
 *   layers (key padding mask) -> [F, H].
 *
 * Padded batches: the conv stack runs on each utterance at its own length, so
 * GroupNorm statistics cover its valid samples only, and the transformer masks
 * padded keys: every utterance's valid frames equal what it gives alone.
 *
 * Memory: a frozen forward (model loaded with trainable = 0, or any model
 * under no-grad) records nothing and runs in the caller's step arena, moving
 * the live activation back down to where it started after every stage, so
 * only the result stays and activations of a 30 s clip never all live at
 * once (the arena peak counts the largest stage).  A trainable forward
 * outside no-grad keeps every activation on the caller's tape.
 * The model holds no mutable state: after loading it is read-only, and
 * several threads may run one model at once, each with its own context.
 * Parameters come from the shared parameter table (secap/params.h): frozen
 * tensors stored as float32 in a converted file point into a read-only
 * mapping of it.
 */
#ifndef SECAP_HUBERT_H
#define SECAP_HUBERT_H

#include <stddef.h>
#include <stdint.h>

#include "secap/hubert_cfg.h"
#include "secap/params.h"
#include "secap/tensor.h"

typedef struct secap_hubert secap_hubert;

/* Loads a weight file (SECAP.md section 7; float32 or bfloat16, widened to
 * float32) into parameters in c's param arena: trainable (gradients
 * allocated) or frozen (trainable = 0).  Refuses, naming the file and tensor,
 * missing, unknown, wrong-shape and wrong-dtype tensors; masked_spec_embed is
 * ignored.  Preprocessing: the file's do_normalize attribute (absent = 0)
 * makes secap_hubert_forward normalise every utterance to zero mean and unit
 * variance over its valid samples, as HF's feature extractor does. */
secap_hubert *secap_hubert_load(secap_ctx *c, const char *path, int trainable);
/* The same with only the last `top` transformer layers trainable (and, for
 * the pre-LN variant, the final LayerNorm: encoder.layer_norm); the rest
 * stays frozen (mapped where the file allows).  top 0 = all frozen, -1 =
 * all trainable (secap_hubert_load's two cases).  For hubert.train_layers:
 * run the lower part frozen (or read it from a feature cache of
 * hidden_states[L - top]) and the top through secap_hubert_layers. */
secap_hubert *secap_hubert_load_top(secap_ctx *c, const char *path, int top);
void secap_hubert_free(secap_hubert *m);

const secap_hubert_config *secap_hubert_cfg(const secap_hubert *m);
int secap_hubert_do_normalize(const secap_hubert *m);
/* The parameter with this HF state-dict name, or NULL (unknown name).  A
 * frozen model also folds weight_g / weight_v of the positional conv into
 * one weight at load; those two stay in the table.  For tests. */
secap_tensor *secap_hubert_param(const secap_hubert *m, const char *name);
/* The model's parameter table (optimizer groups, checkpoints, summaries). */
const secap_params *secap_hubert_params(const secap_hubert *m);
/* The name table a config implies (names, shapes; nothing loaded): every
 * tensor of HF's `HubertModel` state dict, the positional conv's weight norm
 * as weight_g [1, 1, K] and weight_v [H, H/groups, K].  masked_spec_embed is
 * not listed (training-only; see SECAP_HUBERT_IGNORABLE).  Free with
 * secap_params_free. */
secap_params *secap_hubert_table_new(const secap_hubert_config *c);

/* Runs the encoder on a padded batch.
 *   wave      [B, Nmax] 16 kHz samples, row b valid on [0, nsamples[b]); the
 *             rest is ignored (need not be zero)
 *   nsamples  [B] valid samples, each >= the conv receptive field (400 for
 *             the standard stack; fewer stops with an error naming the item)
 *   layer     -1: the last hidden state; 0..L: HF `hidden_states[layer]`
 *             (0 = the transformer input, L = the last hidden state; for the
 *             pre-LN variant L is after the final LayerNorm, and 1..L-1 are
 *             raw layer outputs as HF returns them).  Stops after that layer.
 *   frames_out [B] (may be NULL) valid frames per utterance
 * Returns [B, Fmax, H] in c's step arena, Fmax = max frames; rows past
 * frames_out[b] hold unspecified values. */
secap_tensor *secap_hubert_forward(secap_ctx *c, const secap_hubert *m, const float *wave,
                                   const int64_t *nsamples, int B, int64_t Nmax, int layer,
                                   int32_t *frames_out);

/* Runs transformer layers from..L-1 (and, pre-LN variant, the final
 * LayerNorm) on x = hidden_states[from] [B, F, H] (padded: row b valid on
 * [0, frames[b]); frames NULL: all valid), returning hidden_states[L] (the
 * last hidden state, as secap_hubert_forward with layer -1).  Every op is on
 * the tape unless c is in no-grad: with secap_hubert_load_top the top layers
 * take gradients.  The result in c's step arena; rows past frames[b] are
 * unspecified. */
secap_tensor *secap_hubert_layers(secap_ctx *c, const secap_hubert *m, secap_tensor *x, const int32_t *frames,
                                  int from);

/* The feature-cache key (secap/dataset.h, secap_featcache_key) of this
 * encoder's outputs: encoder = "<weights file name> size=<bytes>
 * mtime=<seconds>", settings = "sr=16000 normalize=<do_normalize>
 * layer=<layer>".  secap-extract writes caches under it; a trainer opening
 * the cache with the same key reuses them, any change makes them stale. */
void secap_hubert_cache_key(const secap_hubert *m, const char *weights_path, int layer,
                            char *encoder, size_t encoder_len, char *settings, size_t settings_len);

/* Multiply-adds x 2 of one forward over utterances of these lengths, up to
 * `layer` as above: convolutions, linear layers and attention matmuls. */
double secap_hubert_flops(const secap_hubert_config *cfg, const int64_t *nsamples, int B, int layer);

#endif
