/* src/train/train_internal.h - the trainer's state, shared by trainer.c and
 * ckpt.c. */
#ifndef SECAP_TRAIN_INTERNAL_H
#define SECAP_TRAIN_INTERNAL_H

#include "secap/berttok.h"
#include "secap/featcache.h"
#include "secap/generate.h"
#include "secap/hubert.h"
#include "secap/lmtext.h"
#include "secap/loader.h"
#include "secap/optim.h"
#include "secap/probe.h"
#include "secap/qformer.h"
#include "secap/spm.h"
#include "secap/train.h"

typedef struct {
    float mi, con, est, temp;  /* stage-1 terms */
    int prompt;                /* caption stage: the prompt drawn */
    float caption;             /* caption stage: the cross-entropy term */
    int64_t lm_epoch;          /* lm stage: the text epoch */
} step_terms;

typedef struct {
    secap_train_config cfg;
    int has_stage[SECAP_NSTAGES];
    secap_ctx *c;
    secap_dataset *d;
    int ntrain;
    secap_loader *L;
    secap_loader *dev;           /* dev split for eval.every (NULL until used) */
    int dev_batches;             /* batches of the last evaluation */
    int no_dev;                  /* 1: the dev split is empty */
    int evaluating;              /* 1: dev loss, no estimator update */
    secap_featcache *fc;         /* NULL: features from the encoder */
    secap_hubert *hub;           /* frozen */
    secap_hubert *hub_top;       /* hubert.train_layers > 0: the same file, its top layers trainable */
    secap_params *fnorm;         /* hubert.standardize: feature_norm.{mean, std} [A] (src/train/featnorm.c) */
    secap_tensor *fn_mean, *fn_std;
    secap_qformer *qf;           /* trainable */
    secap_berttok *qtok;         /* the Q-Former's text side */
    secap_vclub *est;            /* stage 1's MI estimator (own optimizer) */
    secap_params *temp;          /* the contrastive temperature */
    secap_llama *llm;            /* frozen base + LoRA */
    secap_spm *spm;              /* the LLaMA's tokenizer: SentencePiece, */
    secap_spm_scratch *spm_scratch;
    secap_berttok *llm_bert;     /* or WordPiece over a vocab.txt */
    secap_lmtext *lmt;           /* stage lm: the train split's packed text */
    secap_lmtext *lmt_dev;       /* and the dev split's (eval) */
    int32_t **prompt_ids;        /* [nprompts][prompt_len[i]] */
    int *prompt_len;
    int nprompts;
    secap_adamw *opt;            /* the current stage's optimizer */
    int opt_loaded;              /* 1: opt came from a checkpoint */
    secap_rng rng;               /* prompts, MI permutations */
    int stage_idx;               /* index into cfg.train.stage; nstages = done */
    int64_t step, total, gstep;  /* step within the stage, its length, global step */
    int64_t loader_epoch, loader_step;
    int bad;                     /* non-finite steps in a row */
    int bar;                     /* progress bar on a terminal */
    double stage_t0;
    int64_t stage_step0;
    int *devcap_idx;             /* eval.caption_every: the dev clips captioned */
    int devcap_n;                /* their count; -1 until first used */
    int32_t *devcap_prompt;      /* decode.prompt in the LLaMA's tokens */
    int devcap_prompt_len;
    double best_cider;           /* best dev CIDEr so far (best.json), -1: none */
    int64_t best_gstep;
    int infer;                   /* 1: built for inference (src/train/infer.c): no LM text */
    secap_params *bridge;        /* qformer.bridge = linear: its table (src/train/bridge.c), else NULL */
    secap_tensor *bridge_w, *bridge_b;   /* [D, A], [D] */
} trainer;

/* src/train/bridge.c: the linear bridge's table (qformer.bridge = linear),
 * tr->bridge; and the caption stage's audio positions for the LLaMA,
 * a [B, T, A] with frames [B] -> [B, num_query_tokens, D], through the
 * Q-Former and audio_llama_project or through the linear bridge. */
void secap_bridge_build(trainer *tr, int A, int D);
secap_tensor *secap_train_audio_tokens(trainer *tr, secap_tensor *a, const int32_t *frames, secap_tensor **qo_out);
/* qformer.freeze_in_caption: registers audio_llama_project (bias in
 * nodecay_group, weight in decay_group) with tr->opt and takes every other
 * Q-Former tensor out of the gradient computation. */
void secap_train_freeze_qformer(trainer *tr, int nodecay_group, int decay_group);

/* src/train/plots.c: tools/plot_run.sh RUN_DIR STAGE when log.plots and
 * gnuplot is installed (a message once when not). */
void secap_train_plot_stage(trainer *tr, const char *stage);

/* src/train/ckpt.c: train.init_from on a fresh run (see secap/train.h):
 * the tensors of this run's tables found in the checkpoint, its RNG and
 * loader state and global step; stage_idx = the stages it finished, which
 * must be a prefix of this run's train.stages. */
void secap_ckpt_init_from(trainer *tr, const char *path);

/* The stage's AdamW over its trainable tables (trainer.c). */
void secap_train_stage_optimizer(trainer *tr, int stage);

/* For inference (src/train/infer.c): the models of tr->cfg as the trainer
 * builds them (tr->c set; tr->d may be NULL with tr->infer), and their
 * release; and the trainable tensors of a checkpoint, nothing else. */
void secap_train_build_models(trainer *tr, int init_random);
void secap_train_free_models(trainer *tr);
void secap_ckpt_load_params(trainer *tr, const char *path);

/* src/train/infer.c, shared by secap_captioner_run and the trainer's dev
 * captioning (eval.caption_every): captions n clips with tr's models in
 * memory (secap/infer.h's recipe; dec validated by the caller), at most
 * `batch` (<= 0: data.batch_size) per generate call; out[i] malloc'd.  Runs
 * without gradients and with c->training = 0, both restored on return;
 * sampling draws from tr->c->rng: a caller that must not disturb it saves
 * and restores it (the trainer does, for every decode setting). */
void secap_train_caption(trainer *tr, const secap_decode_config *dec, const int32_t *prompt, int prompt_len, int n,
                         const char *const *ids, const char *const *audio, int batch, char **out);
/* text in the LLaMA's tokens, no BOS/EOS; *out malloc'd; returns the count. */
int secap_train_encode_prompt(trainer *tr, const char *text, int32_t **out);

/* trainer.c, for src/train/probe.c: the features of a batch [B, T, A] in
 * the step arena (frames [B] set), and text-mode embeddings [B, E] of texts
 * (text_proj of the [CLS] output), both as the stage-1 step makes them. */
secap_tensor *secap_train_batch_features(trainer *tr, const secap_batch *b, int32_t *frames);
/* hubert.train_layers: the trainable top HuBERT layers on x = hidden_states[L - N] [B, T, A]
 * (x itself when hubert.train_layers = 0). */
secap_tensor *secap_train_hubert_top(trainer *tr, secap_tensor *x, const int32_t *frames);
/* hubert.standardize (src/train/featnorm.c): the table (mean 0, std 1), the
 * train split's statistics from the feature cache, and their application in
 * place to features [T, A] or a padded batch [B, T, A] (valid frames only;
 * frames NULL: all).  No-ops without the table. */
void secap_featnorm_build(trainer *tr, int A);
void secap_featnorm_fit(trainer *tr);
void secap_featnorm_apply(const trainer *tr, float *x, int64_t T, int64_t A);
void secap_featnorm_apply_batch(const trainer *tr, secap_tensor *x, const int32_t *frames);
secap_tensor *secap_train_text_embed(trainer *tr, const char *const *texts, int B);

/* src/train/probe.c: the stage-1 dev probes (definitions in its header
 * comment), run at every eval.every of stage qformer. */
typedef struct {
    int n;                       /* probe clips */
    double r1, r5;               /* speech -> caption recall@1, @5 */
    double chance1, chance5;     /* their chance levels */
    double centroid, majority;   /* emotion centroid probe accuracy; the largest class's share */
    double mi;                   /* vCLUB bound U on dev (full variant), NAN without an estimator */
    double tx_r1, tx_chance;     /* transcript probe recall@1 (ridge map, held-out half); chance */
    double tx_auc;               /* its matching AUC (chance 0.5) */
} secap_probe_result;
/* Returns 0 (r zeroed) when there is no dev split, fewer than 2 clips, or
 * the dev loader is not made yet (dev_loss makes it). */
int secap_train_probe(trainer *tr, secap_probe_result *r);
/* The fields into metrics.jsonl (",\"dev_r1\":..." ...) and a log line. */
void secap_train_probe_report(const trainer *tr, const secap_probe_result *r, FILE *mf, const char *sname);
/* src/train/ckpt.c */
char *secap_ckpt_config_text(const char *path);
/* The config saved in checkpoint `path` into *cfg (defaults, then its text;
 * format and version checked) and where it was saved: the stage index, the
 * step within that stage and the global step. */
void secap_ckpt_read_config(const char *path, secap_train_config *cfg, int64_t *stage_idx, int64_t *step,
                            int64_t *gstep);
/* Number of ckpt-*.h5 in dir; *newest = the newest name (static buffer). */
int secap_ckpt_has_any(const char *dir, char **newest);
/* A checkpoint's config names `key` = path: refused naming both when it is
 * empty or unreadable (secap-caption, secap-eval, secap-embed). */
void secap_ckpt_need_file(const char *ckpt, const char *key, const char *path);
/* Inference from checkpoint ckpt, tr->cfg read from it: the stages, threads
 * (0: the config's rule), an inference context, the models built and the
 * checkpoint's trainable tensors read over them. */
void secap_ckpt_open_models(trainer *tr, const char *ckpt, int threads);
secap_ini *secap_ini_from_text(const char *text, const char *origin);
void secap_ckpt_check_config(const char *path, const char *saved, const char *now);
/* Writes <out_dir>/ckpt-<gstep>.h5 atomically; with_opt: the stage's AdamW
 * moments too (0 at a stage boundary: the next stage starts fresh).  Then
 * removes checkpoints beyond train.keep. */
void secap_ckpt_save(trainer *tr, int with_opt);
void secap_ckpt_load(trainer *tr, const char *path);

/* src/train/augment.c: [augment] on a training step's features x [B, Tmax, A]
 * (frames [B]) in place; nothing unless ctx->training and a key is set.
 * secap_augment_clip augments one clip's valid frames x [T, A] with the
 * draws of (t->train.seed, gstep, item). */
int secap_augment_active(const secap_train_config *t);
void secap_augment_clip(const secap_train_config *t, int64_t gstep, int item, float *x, int64_t T, int64_t A);
void secap_augment_batch(trainer *tr, const secap_batch *b, secap_tensor *x, const int32_t *frames);

#endif
