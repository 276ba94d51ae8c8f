/* secap/infer.h - captions from a secap-train checkpoint (bin/secap-caption,
 * bin/secap-eval; README "Captioning and evaluation").
 *
 * secap_captioner_open reads a checkpoint (a ckpt-*.h5, or a run directory:
 * its newest checkpoint), rebuilds the models from the config text stored in
 * it exactly as secap-train builds them (the frozen HuBERT and, when the
 * config names one, its feature cache; the Q-Former with
 * audio_llama_project; the LLaMA with its LoRA adapters; the LLaMA's
 * tokenizer), then reads the trained tensors.  The checkpoint must hold a
 * trained caption stage: one written after at least one caption step (at or
 * after the caption stage's end, or during it).  Paths in the stored config
 * (hubert.weights, tokenizers, data.dir) are as the training saw them, i.e.
 * relative to the directory secap-train ran in.
 *
 * Captioning a clip (greedy unless the decode settings say otherwise):
 *   a = HuBERT features [F, A]   (the cache's entry for the clip's id, else
 *                                 the encoder on the 16 kHz audio, normalised
 *                                 when data.normalize)
 *   x = audio_llama_project(Q-Former query mode (a))   [Q, D]
 *   prefix = [BOS] [x] [decode.prompt tokens]  -> secap_generate
 * with the checkpoint's [decode] settings: prompt, max_new_tokens, num_beams;
 * every other secap_generate option (secap/generate.h) at its default unless
 * overridden.  Rows of a batch are padded on the right; a row's caption does
 * not depend on the other rows of its batch up to float rounding order
 * (greedy and beams).
 */
#ifndef SECAP_INFER_H
#define SECAP_INFER_H

#include "secap/generate.h"
#include "secap/train.h"

typedef struct secap_captioner secap_captioner;

/* path: checkpoint file or run directory.  use_cache: 1 reads features
 * from the config's hubert.cache (when it names one), 0 always runs the
 * encoder.  threads: 0 = the config's train.threads rule.  Fails naming the
 * checkpoint on a file that is not a secap-train checkpoint, a checkpoint
 * without a trained caption stage, or a model file its config names that is
 * missing. */
secap_captioner *secap_captioner_open(const char *path, int use_cache, int threads);
void secap_captioner_free(secap_captioner *cp);

/* The resolved checkpoint file, its config and its global step. */
const char *secap_captioner_checkpoint(const secap_captioner *cp);
const secap_train_config *secap_captioner_config(const secap_captioner *cp);
long long secap_captioner_step(const secap_captioner *cp);

/* One decode option: "prompt" (the inference prompt text) or any key of
 * secap_decode_config_set (max_new_tokens, num_beams, do_sample, top_k ...),
 * with or without the "decode." prefix.  Returns non-zero for an unknown
 * key; a bad value is fatal.  Validated when captioning. */
int secap_captioner_set(secap_captioner *cp, const char *key, const char *value);
/* The decode settings in use. */
const secap_decode_config *secap_captioner_decode(const secap_captioner *cp);
const char *secap_captioner_prompt(const secap_captioner *cp);

/* Captions n clips, at most `batch` (<= 0: data.batch_size) per generate
 * call.  ids[i] (NULL, or an entry NULL: none) is the clip's id in the
 * feature cache; audio[i] its audio file (needed when the cache has no
 * entry for it).  out[i] gets a malloc'd UTF-8 caption.  An unreadable
 * audio file is fatal naming it. */
void secap_captioner_run(secap_captioner *cp, int n, const char *const *ids, const char *const *audio, int batch,
                         char **out);

#endif
