/* secap/ckpt_qformer.h - the stage-1 Q-Former of a secap-train checkpoint
 * (bin/secap-embed --model RUN_DIR | ckpt-*.h5 | best.h5).
 *
 * secap_ckpt_qformer_open reads a checkpoint (a file, or a run directory:
 * its newest ckpt-*.h5), rebuilds the models from the config text stored in
 * it with the trainer's own builder (as secap/infer.h's captioner does:
 * secap_train_build_models, then secap_ckpt_load_params over them), so the
 * Q-Former has exactly the sizes, tokenizer settings and trained tensors of
 * the run.  The frozen HuBERT of the config comes with it (features for
 * audio), and the feature cache when the config names one.  Paths in the
 * stored config are as secap-train saw them (relative to where it ran). */
#ifndef SECAP_CKPT_QFORMER_H
#define SECAP_CKPT_QFORMER_H

#include "secap/hubert.h"
#include "secap/qformer.h"
#include "secap/train.h"

typedef struct secap_ckpt_qformer secap_ckpt_qformer;

/* 1 when path is a run directory or an HDF5 file whose root attribute
 * "format" is SECAP_CKPT_FORMAT; 0 otherwise (e.g. a Q-Former file). */
int secap_is_train_checkpoint(const char *path);
/* threads: 0 = the config's train.threads rule.  Fails naming the
 * checkpoint when it is not a secap-train checkpoint, its run has no
 * Q-Former (train.stages = lm), or a model file its config names is
 * missing.  A checkpoint saved before any qformer step gives the Q-Former
 * as initialised, with a warning on stderr. */
secap_ckpt_qformer *secap_ckpt_qformer_open(const char *path, int threads);
void secap_ckpt_qformer_free(secap_ckpt_qformer *k);
/* The context the models live in (use it for every forward). */
secap_ctx *secap_ckpt_qformer_ctx(secap_ckpt_qformer *k);
const secap_qformer *secap_ckpt_qformer_model(const secap_ckpt_qformer *k);
const secap_hubert *secap_ckpt_qformer_hubert(const secap_ckpt_qformer *k);
/* A run with hubert.train_layers = N > 0: its HuBERT with the trained top N
 * layers (secap_hubert_layers on hidden_states[hubert.layer]); NULL otherwise. */
const secap_hubert *secap_ckpt_qformer_hubert_top(const secap_ckpt_qformer *k);
/* A run with hubert.standardize: standardises features x [T, A] in place
 * with the run's train-split statistics; a no-op otherwise. */
void secap_ckpt_qformer_normalize(const secap_ckpt_qformer *k, float *x, int64_t T, int64_t A);
const secap_train_config *secap_ckpt_qformer_config(const secap_ckpt_qformer *k);
/* The checkpoint file read (a run directory resolved) and its global step. */
const char *secap_ckpt_qformer_path(const secap_ckpt_qformer *k);
long long secap_ckpt_qformer_step(const secap_ckpt_qformer *k);

#endif
