/* The vCLUB estimator: its variational network q_theta(t | q), its own
 * optimizer, the estimator loss and the upper bound U.  The math is in
 * include/secap/losses.h; everything is built from autograd ops.
 *
 * The estimator is a module apart from the model it measures: its table and
 * its AdamW are its own, it is fitted on detached embeddings (step 1 of a
 * training step), and the bound U uses it through detached weight views so
 * the model's backward never touches it (step 2). */
#include "secap/losses.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    secap_tensor *w1, *b1;   /* .0: [Hm, x_dim], [Hm] */
    secap_tensor *w2, *b2;   /* .2: [y_dim, Hm], [y_dim] */
} mlp;

struct secap_vclub {
    secap_vclub_config cfg;
    secap_params *table;
    mlp mu, logvar;          /* p_mu, p_logvar */
    secap_adamw *opt;
};

void secap_vclub_config_default(secap_vclub_config *cfg)
{
    *cfg = (secap_vclub_config){
        .x_dim = 256, .y_dim = 256, .hidden = 256,
        .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f,
    };
}

static void validate(const secap_vclub_config *c)
{
    SECAP_CHECK(c->x_dim > 0 && c->y_dim > 0, "vclub: embedding sizes must be positive (x_dim %d, y_dim %d; "
                "hint: both are the model's embed_dim)", c->x_dim, c->y_dim);
    SECAP_CHECK(c->hidden > 0, "vclub: mi_hidden must be positive, got %d (hint: CLUB's hidden_size h is "
                "mi_hidden = h/2)", c->hidden);
    SECAP_CHECK(isfinite(c->lr) && c->lr > 0, "vclub: mi_lr must be a positive number, got %g", c->lr);
    SECAP_CHECK(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1 && c->eps > 0,
                "vclub: AdamW betas must lie in [0, 1) and eps be positive (got %g, %g, %g)", c->beta1,
                c->beta2, c->eps);
    SECAP_CHECK(isfinite(c->weight_decay) && c->weight_decay >= 0,
                "vclub: mi_weight_decay must be >= 0, got %g", c->weight_decay);
}

static void free_cb(void *e);

static void add_mlp(secap_params *p, mlp *m, const char *name, int in, int hidden, int out)
{
    /* Read from a file when there is one; otherwise nn.Linear's weight rule
     * (the second set_init keeps KAIMING as the random rule). */
    int i = secap_params_add(p, &m->w1, SECAP_SHAPE(hidden, in), "%s.0.weight", name);
    secap_params_set_init(p, i, SECAP_INIT_KAIMING, 0);
    secap_params_set_init(p, i, SECAP_INIT_FILE, 0);
    secap_params_add(p, &m->b1, SECAP_SHAPE(hidden), "%s.0.bias", name);         /* random rule: zeros */
    i = secap_params_add(p, &m->w2, SECAP_SHAPE(out, hidden), "%s.2.weight", name);
    secap_params_set_init(p, i, SECAP_INIT_KAIMING, 0);
    secap_params_set_init(p, i, SECAP_INIT_FILE, 0);
    secap_params_add(p, &m->b2, SECAP_SHAPE(out), "%s.2.bias", name);
}

secap_vclub *secap_vclub_new(secap_ctx *c, const secap_vclub_config *cfg, secap_weights *w, const char *prefix,
                             uint64_t seed)
{
    validate(cfg);
    secap_vclub *e = secap_xcalloc(1, sizeof *e, "vclub");
    secap_cleanup cl;   /* a refused file frees e (tests catch the error) */
    secap_cleanup_push(&cl, free_cb, e);
    e->cfg = *cfg;
    e->table = secap_params_new("vclub");
    secap_params_default_trainable(e->table, 1);
    add_mlp(e->table, &e->mu, "p_mu", cfg->x_dim, cfg->hidden, cfg->y_dim);
    add_mlp(e->table, &e->logvar, "p_logvar", cfg->x_dim, cfg->hidden, cfg->y_dim);
    secap_params_load(e->table, c, w, prefix, seed);
    secap_cleanup_pop(&cl);
    e->opt = secap_adamw_new(cfg->beta1, cfg->beta2, cfg->eps);
    int g = secap_adamw_group(e->opt, 1.0f, cfg->weight_decay);
    secap_adamw_add_params(e->opt, c, e->table, NULL, NULL, g);
    return e;
}

static void free_cb(void *e) { secap_vclub_free(e); }

void secap_vclub_free(secap_vclub *e)
{
    if (!e) return;
    secap_adamw_free(e->opt);
    secap_params_free(e->table);
    free(e);
}

secap_params *secap_vclub_params(secap_vclub *e) { return e->table; }
secap_adamw *secap_vclub_optimizer(secap_vclub *e) { return e->opt; }
const secap_vclub_config *secap_vclub_cfg(const secap_vclub *e) { return &e->cfg; }

/* [B, D] with D == want, or a fatal error naming the function and tensor. */
static void check_2d(const secap_tensor *x, int64_t want, const char *fn, const char *what)
{
    secap_check_live(x, fn);
    char buf[64];
    SECAP_CHECK(x->ndim == 2 && x->shape[1] == want && x->shape[0] >= 1,
                "%s: %s has shape %s, expected [B, %lld] (hint: pass pooled embeddings, one row per pair)", fn,
                what, secap_shape_str(x, buf, sizeof buf), (long long)want);
}

static secap_tensor *w(secap_ctx *c, secap_tensor *p, int fixed) { return fixed ? secap_detach(c, p) : p; }

static secap_tensor *run_mlp(secap_ctx *c, const mlp *m, secap_tensor *x, int fixed)
{
    secap_tensor *h = secap_relu(c, secap_linear(c, x, w(c, m->w1, fixed), w(c, m->b1, fixed)));
    return secap_linear(c, h, w(c, m->w2, fixed), w(c, m->b2, fixed));
}

void secap_vclub_forward(secap_ctx *c, const secap_vclub *e, secap_tensor *q, int fixed, secap_tensor **mu,
                         secap_tensor **logvar)
{
    check_2d(q, e->cfg.x_dim, "vclub_forward", "q");
    *mu = run_mlp(c, &e->mu, q, fixed);
    *logvar = secap_tanh(c, run_mlp(c, &e->logvar, q, fixed));
}

secap_tensor *secap_vclub_est_loss(secap_ctx *c, const secap_vclub *e, secap_tensor *q, secap_tensor *t)
{
    check_2d(q, e->cfg.x_dim, "vclub_est_loss", "q");
    check_2d(t, e->cfg.y_dim, "vclub_est_loss", "t");
    SECAP_CHECK(q->shape[0] == t->shape[0], "vclub_est_loss: q has %lld rows, t %lld (hint: one T-embedding "
                "per Q-embedding)", (long long)q->shape[0], (long long)t->shape[0]);
    secap_tensor *mu, *lv;
    secap_vclub_forward(c, e, secap_detach(c, q), 0, &mu, &lv);
    secap_tensor *d = secap_sub(c, mu, secap_detach(c, t));
    secap_tensor *r = secap_exp(c, secap_scale(c, lv, -1.0f, 0.0f));
    secap_tensor *nll = secap_add(c, secap_mul(c, secap_mul(c, d, d), r), lv);   /* [B, E] */
    return secap_scale(c, secap_sum_all(c, nll), 1.0f / (float)q->shape[0], 0.0f);
}

secap_tensor *secap_vclub_bound(secap_ctx *c, const secap_vclub *e, secap_tensor *q, secap_tensor *t,
                                const int32_t *perm)
{
    check_2d(q, e->cfg.x_dim, "vclub_bound", "q");
    check_2d(t, e->cfg.y_dim, "vclub_bound", "t");
    int64_t B = q->shape[0], D = t->shape[1];
    SECAP_CHECK(t->shape[0] == B, "vclub_bound: q has %lld rows, t %lld (hint: one T-embedding per "
                "Q-embedding)", (long long)B, (long long)t->shape[0]);
    secap_tensor *mu, *lv;
    secap_vclub_forward(c, e, q, 1, &mu, &lv);
    secap_tensor *ts = secap_detach(c, t);
    secap_tensor *r = secap_exp(c, secap_scale(c, lv, -1.0f, 0.0f));   /* 1 / variance [B, D] */
    secap_tensor *dp = secap_sub(c, mu, ts);
    secap_tensor *pos = secap_mul(c, dp, dp);                          /* (mu_i - t_i)^2 */
    secap_tensor *neg;                                                 /* mean_j (mu_i - t_j)^2 */
    if (!perm) {
        secap_tensor *tbar = secap_mean(c, ts, 0);                     /* [D] */
        secap_tensor *tc = secap_sub(c, ts, tbar);
        secap_tensor *var = secap_mean(c, secap_mul(c, tc, tc), 0);    /* [D] */
        secap_tensor *dm = secap_sub(c, mu, tbar);
        neg = secap_add(c, secap_mul(c, dm, dm), var);
    } else {
        secap_tensor *tp = secap_empty(c, 2, (int64_t[]){B, D});
        const float *src = secap_f32(ts);
        for (int64_t i = 0; i < B; i++) {
            SECAP_CHECK(perm[i] >= 0 && perm[i] < B, "vclub_bound: perm[%lld] = %d lies outside [0, %lld) "
                        "(hint: pass a permutation of the batch rows)", (long long)i, perm[i], (long long)B);
            memcpy(secap_f32(tp) + i * D, src + (int64_t)perm[i] * D, (size_t)D * sizeof(float));
        }
        secap_tensor *dn = secap_sub(c, mu, tp);
        neg = secap_mul(c, dn, dn);
    }
    secap_tensor *gap = secap_mul(c, secap_sub(c, neg, pos), r);
    return secap_scale(c, secap_sum_all(c, gap), 0.5f / (float)B, 0.0f);
}

float secap_vclub_step(secap_ctx *c, secap_vclub *e, secap_tensor *q, secap_tensor *t, float lr)
{
    SECAP_CHECK(!c->no_grad, "vclub_step: called in no-grad mode (hint: the estimator step needs a "
                "backward; end secap_no_grad first)");
    secap_node *tape = c->tape;
    int64_t ntape = c->ntape;
    secap_tensor *loss = secap_vclub_est_loss(c, e, q, t);
    float v = secap_f32(loss)[0];
    SECAP_CHECK(isfinite(v), "vclub_step: the estimator loss L_est is %g at estimator step %lld "
                "(hint: non-finite Q- or T-embeddings, or mi_lr too high)", v, (long long)e->opt->step + 1);
    secap_adamw_zero_grad(e->opt);
    secap_backward(c, loss);
    secap_adamw_step(e->opt, lr);
    c->tape = tape;     /* the estimator's nodes leave the tape (memory stays until reset) */
    c->ntape = ntape;
    return v;
}

void secap_vclub_perm(secap_rng *r, int32_t *perm, int B)
{
    for (int i = 0; i < B; i++) perm[i] = i;
    for (int i = B - 1; i > 0; i--) {   /* Fisher-Yates */
        int j = (int)secap_rng_below(r, (uint64_t)i + 1);
        int32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
}
