/* secap/train.h - the training program's library: run configs, stages,
 * checkpoints and exact resume (bin/secap-train; README "Training").
 *
 * A run is configured by one INI file (secap/ini.h) with the sections data,
 * hubert, qformer, llama, lora, lm, loss, optim, train, eval, decode, log, plus
 * --section.key=value overrides.  Every key is validated: an unknown section
 * or key, a bad value or a missing required key stops naming the file, the
 * line, the key and the accepted values.  The resolved config (every key,
 * defaults included) is printed as INI text; that text goes into the run
 * directory (config.ini) and into every checkpoint.
 *
 * Stages run in the order lm, qformer, caption (train.stages picks a
 * subset); each starts from the previous stage's parameters:
 *   qformer  paper stage 1: Q-Former query mode on HuBERT features, text mode
 *            on transcript (T) and caption (C); per step first the vCLUB
 *            estimator update, then w_mi U + w_con L_con (secap/losses.h).
 *   caption  paper stage 2: query outputs -> audio_llama_project -> LLaMA
 *            [BOS][audio][prompt][caption][EOS] -> caption cross entropy;
 *            Q-Former and LoRA train, the LLaMA base is frozen.
 *            Ablations: qformer.bridge = linear (pooled features through
 *            one Linear instead of the Q-Former; no stage qformer) and
 *            qformer.freeze_in_caption (only audio_llama_project and LoRA
 *            train in this stage).
 *   lm       full-parameter LLaMA training on text (secap/lmtext.h: the
 *            train split's captions and transcripts plus [lm] text files,
 *            packed into blocks); the caption stage then freezes the base.
 *
 * Checkpoints (HDF5, SECAP.md section 7) hold the trainable tensors, the
 * AdamW moments and step counts (model and MI estimator), the RNG states,
 * the loader position, the stage and step, the resolved config text and a
 * format version.  Resuming restores all of it, so a run stopped at any step
 * and resumed gives the uninterrupted run's losses bit for bit (same thread
 * count; OpenMP reductions are then deterministic).
 */
#ifndef SECAP_TRAIN_H
#define SECAP_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "secap/dataset.h"
#include "secap/ini.h"
#include "secap/llama.h"
#include "secap/lmtext.h"
#include "secap/losses.h"

#define SECAP_CKPT_FORMAT "secap-train-checkpoint"
#define SECAP_CKPT_VERSION 1

enum { SECAP_STAGE_LM = 0, SECAP_STAGE_QFORMER = 1, SECAP_STAGE_CAPTION = 2, SECAP_NSTAGES = 3 };

/* The run config: one struct per section; comments name the keys. */
typedef struct {
    secap_data_config data;       /* [data] (secap/dataset.h); data.dir below */
    char data_dir[1024];          /* data.dir: dataset directory or .jsonl manifest (required) */
    char init_from[1024];         /* train.init_from: a checkpoint (or run dir) saved at a stage end; a
                                     fresh run reads its tensors, RNG and loader state and skips the
                                     stages it finished ("" = off; src/train/ckpt.c) */
    struct {                      /* [hubert] */
        char weights[1024];       /* weights: HuBERT weight file (required) */
        char cache[1024];         /* cache: feature cache (secap-extract --out); "" = extract on the fly */
        int layer;                /* layer: -1 last hidden state, 0..L */
        int standardize;          /* standardize: features standardised per dimension with the
                                     train split's mean / std (src/train/featnorm.c) */
        int train_layers;         /* train_layers: the last N transformer layers train (stages
                                     qformer and caption) on hidden_states[L - N], which
                                     hubert.layer must then name; 0 = HuBERT frozen */
    } hubert;
    struct {                      /* [qformer] */
        char weights[1024];       /* weights: a Q-Former file to start from ("" = none) */
        char bert[1024];          /* bert: a BERT file to initialise from (bert-base-chinese) */
        char vocab[1024];         /* vocab: the text side's vocab.txt (required) */
        int lower_case;           /* lower_case */
        int hidden_size, num_hidden_layers, num_attention_heads, intermediate_size;
        int num_query_tokens, cross_attention_freq, encoder_width, embed_dim;
        int max_position_embeddings; /* the longest transcript / caption in tokens */
        double dropout;           /* hidden_dropout_prob */
        double initializer_range; /* initializer_range: std of the random init (BERT's, 0.02); used
                                     only when the Q-Former starts from random weights; tests of tiny
                                     models raise it so that different inputs give different
                                     embeddings (tests/test_dist.c) */
        char bridge[16];          /* bridge: qformer | linear (ablation: HuBERT features average-pooled
                                     over time into num_query_tokens segments, one Linear A -> D;
                                     no Q-Former, no stage qformer; src/train/bridge.c) */
        int freeze_in_caption;    /* freeze_in_caption: ablation, the Q-Former frozen in stage caption
                                     (audio_llama_project and LoRA still train) */
    } qformer;
    struct {                      /* [llama] */
        char weights[1024];       /* weights: base weight file ("" = random init from the sizes) */
        char tokenizer[1024];     /* tokenizer: tokenizer.model (SentencePiece) or a vocab.txt (WordPiece) */
        int vocab_size;           /* 0: the tokenizer's size */
        int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads;
        int max_position_embeddings;
        int bf16;                 /* bf16: store the frozen base as bfloat16 */
        int max_caption_tokens;   /* captions are cut to this many tokens */
    } llama;
    struct {                      /* [augment] (src/train/augment.c): training steps of stages qformer
                                     and caption only; 0 = off */
        double noise;             /* noise: std of Gaussian noise added to every feature */
        int time_masks;           /* time_masks: spans of frames set to 0 per clip */
        double time_mask_width;   /* time_mask_width: a span's longest width, a fraction of the clip */
        int feature_masks;        /* feature_masks: bands of feature dimensions set to 0 per clip */
        int feature_mask_width;   /* feature_mask_width: a band's most dimensions */
    } augment;
    secap_lora_config lora;       /* [lora] (secap/llama.h) */
    secap_lm_config lm;           /* [lm] (secap/lmtext.h): block_size, batch_size, seed, prompts, text */
    secap_stage1_config loss;     /* [loss] (secap/losses.h) */
    struct {                      /* [optim] */
        double lr, min_lr, weight_decay, beta1, beta2, eps, max_grad_norm;
        int64_t warmup;           /* warmup steps */
        char schedule[16];        /* cosine | linear | constant */
    } optim;
    struct {                      /* [train] */
        char out_dir[1024];       /* out_dir: the run directory (required) */
        int64_t max_steps;        /* max_steps: optimizer steps per stage, 0 = from epochs (required) */
        double epochs;            /* epochs: per stage when max_steps = 0 */
        char stage_steps[128];    /* stage_steps: "lm:1000,caption:600" overrides max_steps per stage */
        int64_t steps_of[SECAP_NSTAGES]; /* parsed stage_steps; -1 = max_steps */
        char stages[64];          /* stages: comma list of lm, qformer, caption (required) */
        int stage[SECAP_NSTAGES]; /* the stages in run order */
        int nstages;
        uint64_t seed;            /* seed: model init, dropout, prompts, MI permutations */
        int64_t save_every;       /* save_every: steps between checkpoints, 0 = stage ends only */
        int keep;                 /* keep: checkpoints kept */
        int max_bad_steps;        /* max_bad_steps: non-finite steps in a row that stop the run */
        int64_t stop_at_step;     /* stop_at_step: save and exit 0 after this global step (0 = off) */
        char prompts[1024];       /* prompts: file of caption prompts, one a line ("" = built-in) */
        int threads;              /* threads: 0 = $SECAP_THREADS or every core */
        double dist_timeout;      /* dist_timeout: MPI runs, seconds without a finished step before the
                                     job is aborted (secap/dist.h watchdog; 0 = off) */
        double dist_bucket_mb;    /* dist_bucket_mb: MPI runs, MiB of gradients per MPI_Allreduce */
        int dist_overlap;         /* dist_overlap: MPI runs, exchange buckets during the backward pass */
    } train;
    struct {                      /* [eval] */
        int64_t every;            /* every: dev loss every N steps (0 = off) */
        int batches;              /* batches: dev batches per evaluation */
        int64_t caption_every;    /* caption_every: caption stage, dev captions scored every N steps
                                     (0 = off); the best by CIDEr kept as best.h5 */
        int caption_clips;        /* caption_clips: the first N dev clips captioned */
        int probe_clips;          /* probe_clips: stage-1 dev probes on the first N dev clips
                                     (dev loader order; 0 = all) */
    } eval;
    struct {                      /* [decode] (read by the decoder; validated here) */
        char prompt[512];
        int max_new_tokens, num_beams;
    } decode;
    struct {                      /* [log] */
        int64_t every;            /* every: a plain log line every N steps when stderr is not a tty */
        char progress[16];        /* progress: auto | bar | lines */
        int plots;                /* plots: loss-curve PNGs in <out_dir>/plots at each stage end
                                     (tools/plot_run.sh, gnuplot) */
    } log;
} secap_train_config;

/* Reads a config file.  A file may start from another: a [config] section
 * with `base = FILE` (relative to the directory of the file naming it, up
 * to 8 levels) reads FILE first and puts this file's keys on top, each key
 * keeping the file:line it came from; [config] takes no other key and is
 * gone from the result.  Errors name the file, the line and the key. */
secap_ini *secap_train_config_load(const char *path);
/* Defaults for every key (the required ones empty / -1). */
void secap_train_config_default(secap_train_config *t);
/* Fills t from ini: every section applied, every value checked, required
 * keys present, unknown sections and keys refused (file, line, key and the
 * accepted values in each message). */
void secap_train_config_from_ini(secap_train_config *t, secap_ini *ini);
/* The resolved config as INI text (every key); malloc'd. */
char *secap_train_config_text(const secap_train_config *t);
/* Stage name <-> SECAP_STAGE_*; -1 for an unknown name. */
const char *secap_stage_name(int stage);
int secap_stage_parse(const char *name);

/* What bin/secap-train was asked for. */
typedef struct {
    const char *config;      /* --config (NULL with --resume: the checkpoint's config) */
    const char *resume;      /* --resume: checkpoint file or run directory, or NULL */
    char **overrides;        /* --section.key=value arguments */
    int noverrides;
    int init_random;         /* --init random: no weight file is read for the models */
    int dry_run;             /* --dry-run: validate, print the model summary, exit */
} secap_train_opts;

/* The whole run; returns the exit status (0: done, or stopped by a signal
 * or train.stop_at_step after saving).  Errors stop through secap_fatal. */
int secap_train_main(const secap_train_opts *o);

/* The checkpoint an argument names: the file itself, or the newest
 * ckpt-*.h5 of a run directory.  `what` names the argument in messages
 * ("--resume", "--checkpoint", "train.init_from", ...).  malloc'd; fails
 * naming what is missing. */
char *secap_ckpt_resolve(const char *what, const char *path);

#endif
