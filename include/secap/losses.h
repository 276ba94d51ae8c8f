/* secap/losses.h - stage-1 losses: the vCLUB mutual-information bound and the
 * speech-caption contrastive loss (SECAP.md section 3).
 *
 * Shapes: B batch (pairs), E = embed_dim, Hm = the estimator's hidden width.
 *   q [B, E]  Q-embeddings  (speech_proj of the mean query output)
 *   t [B, E]  T-embeddings  (text_proj of the transcript's [CLS])
 *   k [B, E]  C-embeddings  (text_proj of the caption's [CLS])
 *
 * vCLUB (Cheng et al. 2020).  A variational network q_theta(t | q) =
 * N(mu(q), diag exp(logvar(q))), two MLPs as CLUB's reference code builds
 * them (Linear -> ReLU -> Linear; logvar ends in tanh, so logvar in (-1, 1)):
 *   mu     = W2m relu(W1m q + b1m) + b2m          p_mu.0 / p_mu.2
 *   logvar = tanh(W2v relu(W1v q + b1v) + b2v)    p_logvar.0 / p_logvar.2
 * (CLUB's hidden_size h gives a hidden width h/2; here mi_hidden IS the
 * hidden width.)  With r_id = exp(-logvar_id):
 *   L_est = mean_i sum_d [ (mu_id - t_id)^2 r_id + logvar_id ]    q, t detached
 *   U     = mean_i sum_d (r_id / 2) [ mean_j (mu_id - t_jd)^2 - (mu_id - t_id)^2 ]
 *   U_sampled: mean_j replaced by the single j = perm[i] of one random
 *          permutation of the batch.
 * The full variant's inner mean is computed in O(B E), not O(B^2 E):
 *   mean_j (mu_id - t_jd)^2 = (mu_id - tbar_d)^2 + var_d,
 *   tbar_d = mean_j t_jd,  var_d = mean_j (t_jd - tbar_d)^2.
 * U takes t as stop-gradient and the estimator as fixed (its weights enter
 * through detached views): U's gradient reaches q only.
 *
 * One training step (the trainer's order):
 *   1. secap_vclub_step(c, est, q, t, lr): L_est on detached q, t; zero the
 *      estimator's gradients, backward, AdamW step on the estimator's own
 *      optimizer.  The estimator's nodes are taken off the tape again, so
 *      the model's backward later never walks them.
 *   2. the model's loss w_mi U + w_con L_con (secap_stage1_objective) with
 *      the updated estimator, backward, the model's optimizer step.
 *
 * Contrastive loss.  z = q / |q|, n = k / |k|, s_ij = z_i . n_j / tau, with
 * tau = temp a learnable scalar (init 0.07).  Like BLIP-2 (which runs
 * temp.clamp_(0.001, 0.5) under no_grad at the top of its forward), the
 * stored VALUE is clamped in place to [temp_min, temp_max] before each use
 * (secap_contrastive_loss does it); the gradient with respect to tau is the
 * plain one at the clamped value.  Labels y (emotion classes) give weights
 *   W_ii = w_pair,   W_ip = w_class / n_i  for p != i with y_p = y_i,
 *   n_i = #{p != i : y_p = y_i}   (no such p: the row has only W_ii),
 *   L_s2c = -1/B sum_i sum_j W_ij log softmax_j(s_i.)_j
 *   L_c2s = the same on s^T (the caption i against every speech p);
 *   L_con = (L_s2c + L_c2s) / 2.
 * W is symmetric, so both directions use it.  Without labels W = w_pair I:
 * CLIP / BLIP-2 ITC.  An N x K batch (N classes, K clips each) gives every
 * row K - 1 same-class positives.
 */
#ifndef SECAP_LOSSES_H
#define SECAP_LOSSES_H

#include <stdint.h>
#include <stdio.h>

#include "secap/optim.h"
#include "secap/params.h"
#include "secap/rng.h"
#include "secap/tensor.h"
#include "secap/weights.h"

/* ---- vCLUB estimator (src/nn/vclub.c) ------------------------------------ */

typedef enum { SECAP_VCLUB_FULL = 0, SECAP_VCLUB_SAMPLED = 1 } secap_vclub_variant;

typedef struct {
    int x_dim;           /* E of q */
    int y_dim;           /* E of t */
    int hidden;          /* Hm: hidden width of each MLP (config mi_hidden) */
    /* the estimator's own AdamW */
    float lr;            /* mi_lr */
    float beta1, beta2, eps;
    float weight_decay;  /* mi_weight_decay */
} secap_vclub_config;

/* x_dim = y_dim = 256, hidden 256, lr 1e-3, betas 0.9 / 0.999, eps 1e-8,
 * weight decay 0. */
void secap_vclub_config_default(secap_vclub_config *cfg);

typedef struct secap_vclub secap_vclub;

/* A new estimator: its parameter table (model "vclub", every entry
 * trainable, names as PyTorch's nn.Sequential spells them):
 *   p_mu.0.weight [Hm, x_dim]      p_mu.0.bias [Hm]
 *   p_mu.2.weight [y_dim, Hm]      p_mu.2.bias [y_dim]
 *   p_logvar.0.weight, p_logvar.0.bias, p_logvar.2.weight, p_logvar.2.bias
 * read from w under prefix (a checkpoint: prefix e.g. "mi_estimator.",
 * shapes checked, missing tensors refused) or, with w NULL, initialised
 * like nn.Linear's weights (kaiming-uniform, bound 1/sqrt(fan_in)) with zero
 * biases (nn.Linear draws its biases uniformly), drawn from `seed`; and a
 * fresh AdamW over that table (one group, cfg's weight decay; its moments
 * are not part of the file).  Validates cfg (positive sizes, lr > 0),
 * failing with the key name.  Does not close w. */
secap_vclub *secap_vclub_new(secap_ctx *c, const secap_vclub_config *cfg, secap_weights *w, const char *prefix,
                             uint64_t seed);
void secap_vclub_free(secap_vclub *e);
/* The table (checkpoints: secap_params_write under a prefix such as
 * "mi_estimator."; tests). */
secap_params *secap_vclub_params(secap_vclub *e);
secap_adamw *secap_vclub_optimizer(secap_vclub *e);
const secap_vclub_config *secap_vclub_cfg(const secap_vclub *e);

/* mu, logvar [B, y_dim] of q [B, x_dim].  fixed: the weights enter detached
 * (no gradient reaches the estimator). */
void secap_vclub_forward(secap_ctx *c, const secap_vclub *e, secap_tensor *q, int fixed, secap_tensor **mu,
                         secap_tensor **logvar);
/* L_est (scalar) on detached q, t; gradients reach the estimator only. */
secap_tensor *secap_vclub_est_loss(secap_ctx *c, const secap_vclub *e, secap_tensor *q, secap_tensor *t);
/* U (scalar) with the estimator fixed and t stop-gradient; gradients reach
 * q only.  perm NULL: the full variant; else perm [B] a permutation of
 * 0..B-1 (the sampled variant, pair i against t_perm[i]). */
secap_tensor *secap_vclub_bound(secap_ctx *c, const secap_vclub *e, secap_tensor *q, secap_tensor *t,
                                const int32_t *perm);
/* One estimator update (step 1 above) at learning rate lr; returns L_est
 * before the update.  Leaves c's tape as it found it (the nodes made here
 * stay in the step arena until secap_ctx_reset).  Fails if L_est is not
 * finite, naming the estimator and the step. */
float secap_vclub_step(secap_ctx *c, secap_vclub *e, secap_tensor *q, secap_tensor *t, float lr);
/* A uniformly random permutation of 0..B-1 into perm [B]. */
void secap_vclub_perm(secap_rng *r, int32_t *perm, int B);

/* ---- contrastive loss (src/nn/contrastive.c) ----------------------------- */

#define SECAP_TEMP_INIT 0.07f
#define SECAP_TEMP_MIN 0.001f
#define SECAP_TEMP_MAX 0.5f

/* A table (model "contrastive") holding the one trainable scalar
 * "temp" [], for the model's optimizer: read from w under prefix (a
 * checkpoint; must be positive), or = init when w is NULL.  Write it with
 * secap_params_write.  Does not close w. */
secap_params *secap_contrastive_params_new(secap_ctx *c, float init, secap_weights *w, const char *prefix);

/* L_con (scalar).  q, k [B, E]; temp a scalar parameter (shape [] or [1]),
 * its value clamped in place to [tmin, tmax] first; labels [B] emotion class
 * ids (>= 0) or NULL.  w_pair, w_class >= 0, and some positive must weigh:
 * w_pair > 0, or labels with w_class > 0.  Gradients reach q, k and temp. */
secap_tensor *secap_contrastive_loss(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *temp,
                                     const int32_t *labels, float w_pair, float w_class, float tmin, float tmax);

/* ---- the stage-1 objective (src/nn/stage1.c) ----------------------------- */

/* Config section [loss] (README "Stage-1 losses"); keys in comments. */
typedef struct {
    float w_mi;                   /* weight of U; 0: U not computed */
    float w_con;                  /* weight of L_con; 0: not computed */
    float w_pair, w_class;        /* contrastive positives */
    float caption_w_mi;           /* caption stage: weight of U added to the caption loss; 0: off */
    float caption_w_con;          /* caption stage: weight of L_con added to the caption loss; 0: off */
    secap_vclub_variant mi_variant;  /* mi_variant = full | sampled */
    float temp_init, temp_min, temp_max;
    int mi_warmup;                /* mi_warmup: stage qformer ramps the weight of U linearly,
                                     w_mi * min(1, (step + 1) / mi_warmup); 0 = off */
    int mi_monitor;               /* mi_monitor = true: with w_mi = 0 the trainer still fits
                                     the estimator on detached embeddings and logs U */
    secap_vclub_config mi;        /* mi_hidden, mi_lr, mi_weight_decay; x_dim and
                                     y_dim are the model's embed_dim (the trainer
                                     sets them), betas / eps fixed at defaults */
} secap_stage1_config;

/* w_mi 1, w_con 1, w_pair 1, w_class 1, full variant, temp 0.07 in
 * [0.001, 0.5], mi as secap_vclub_config_default. */
void secap_stage1_config_default(secap_stage1_config *s);
/* Sets one key ("loss.w_mi" or "w_mi"); returns -1 for a key it does not
 * know (secap_ini_apply's contract); fails naming the key on a bad value. */
int secap_stage1_config_set(secap_stage1_config *s, const char *key, const char *value);
/* The config as "loss.key = value" lines (logs, checkpoints). */
void secap_stage1_config_print(const secap_stage1_config *s, FILE *f);
/* Ranges (weights >= 0 and finite, not both zero, temp_min < temp_init <=
 * temp_max); `where` names the source in messages. */
void secap_stage1_config_validate(const secap_stage1_config *s, const char *where);

typedef struct {
    float mi;     /* U's value (0 when w_mi = 0) */
    float con;    /* L_con's value (0 when w_con = 0) */
} secap_stage1_terms;

/* w_mi U + w_con L_con (scalar), each branch built only when its weight is
 * non-zero.  est and t are only read when w_mi > 0, k and temp only when
 * w_con > 0.  The sampled variant draws its permutation from rng.  terms
 * (may be NULL) receives the two values for logging.  Call after
 * secap_vclub_step for the same batch. */
secap_tensor *secap_stage1_objective(secap_ctx *c, const secap_stage1_config *s, const secap_vclub *est,
                                     secap_tensor *temp, secap_tensor *q, secap_tensor *t, secap_tensor *k,
                                     const int32_t *labels, secap_rng *rng, secap_stage1_terms *terms);

#endif
