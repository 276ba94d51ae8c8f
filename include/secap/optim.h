/* secap/optim.h - AdamW, gradient clipping and learning-rate schedules.
 *
 * AdamW as torch.optim.AdamW (decoupled weight decay): for step t,
 *   p <- p - lr * wd * p
 *   m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * Parameters sit in groups with their own lr multiplier and weight decay
 * (e.g. no decay for norms and biases).  Moments live in the param arena.
 *
 * Gradient accumulation: run k micro-batches, each backward on loss / k,
 * then clip and step once; gradients add up in the parameters' buffers
 * until secap_adamw_zero_grad().
 */
#ifndef SECAP_OPTIM_H
#define SECAP_OPTIM_H

#include "secap/params.h"
#include "secap/tensor.h"

#define SECAP_MAX_GROUPS 8

typedef struct {
    float lr_mult;      /* multiplies the scheduled lr */
    float weight_decay; /* decoupled decay coefficient */
} secap_param_group;

typedef struct {
    secap_tensor *param;
    float *m, *v;       /* [param->n] first and second moments */
    int group;
} secap_adamw_slot;

typedef struct {
    float beta1, beta2, eps;
    int64_t step;                              /* steps taken so far */
    secap_param_group groups[SECAP_MAX_GROUPS];
    int ngroups;
    secap_adamw_slot *slots;                   /* [nslots] */
    int nslots, cap;
} secap_adamw;

secap_adamw *secap_adamw_new(float beta1, float beta2, float eps);
void secap_adamw_free(secap_adamw *o);
/* Adds a group; returns its index. */
int secap_adamw_group(secap_adamw *o, float lr_mult, float weight_decay);
/* Registers a trainable parameter; moments come from c's param arena. */
void secap_adamw_add(secap_adamw *o, secap_ctx *c, secap_tensor *p, int group);
/* Registers the trainable entries of a loaded parameter table whose names
 * match `include` and not `exclude` (comma-separated fnmatch patterns; NULL
 * include = all, NULL exclude = none), skipping tensors already registered,
 * so groups are built most specific first:
 *   secap_adamw_add_params(o, c, p, "*.bias,*norm*,*LayerNorm*", NULL, no_decay);
 *   secap_adamw_add_params(o, c, p, NULL, NULL, decay);
 * Returns the number added. */
int secap_adamw_add_params(secap_adamw *o, secap_ctx *c, const secap_params *p, const char *include,
                           const char *exclude, int group);
/* One update with the scheduled learning rate. */
void secap_adamw_step(secap_adamw *o, float lr);
void secap_adamw_zero_grad(secap_adamw *o);
/* Global L2 norm of every registered gradient; when max_norm > 0 and the
 * norm exceeds it, scales all gradients by max_norm / norm.  Returns the
 * norm before clipping (non-finite if a gradient is). */
double secap_clip_grad_norm(secap_adamw *o, double max_norm);

typedef enum { SECAP_SCHED_CONSTANT, SECAP_SCHED_COSINE, SECAP_SCHED_LINEAR } secap_sched_kind;

typedef struct {
    secap_sched_kind kind;
    float lr;           /* peak learning rate */
    int64_t warmup;     /* steps of linear warm-up from 0 */
    int64_t total;      /* steps at which decay reaches min_lr */
    float min_lr;       /* floor after decay */
} secap_schedule;

/* Learning rate for step (0-based): linear warm-up over `warmup` steps
 * (lr * (step+1) / warmup), then cosine or linear decay to min_lr at total. */
float secap_schedule_lr(const secap_schedule *s, int64_t step);
/* "cosine" / "linear" / "constant" -> kind; fails naming the bad value. */
secap_sched_kind secap_sched_parse(const char *name);

#endif
