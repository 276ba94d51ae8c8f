/* The stage-1 objective w_mi U + w_con L_con (SECAP.md section 3): each
 * branch is built only when its weight is non-zero, so the paper's
 * ablations (MI alone, contrastive alone) cost only their own branch. */
#include "secap/losses.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void secap_stage1_config_default(secap_stage1_config *s)
{
    *s = (secap_stage1_config){
        .w_mi = 1.0f, .w_con = 1.0f, .w_pair = 1.0f, .w_class = 1.0f,
        .mi_variant = SECAP_VCLUB_FULL,
        .temp_init = SECAP_TEMP_INIT, .temp_min = SECAP_TEMP_MIN, .temp_max = SECAP_TEMP_MAX,
        .mi_monitor = 1,
    };
    secap_vclub_config_default(&s->mi);
}

static double number(const char *key, const char *v, double lo, double hi)
{
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi))
        secap_fatal("config loss.%s = '%s': expected a number in [%g, %g]", key, v, lo, hi);
    return x;
}

int secap_stage1_config_set(secap_stage1_config *s, const char *key, const char *v)
{
    if (!strncmp(key, "loss.", 5)) key += 5;
    if (!strcmp(key, "w_mi")) s->w_mi = (float)number(key, v, 0, 1e6);
    else if (!strcmp(key, "w_con")) s->w_con = (float)number(key, v, 0, 1e6);
    else if (!strcmp(key, "caption_w_mi")) s->caption_w_mi = (float)number(key, v, 0, 1e6);
    else if (!strcmp(key, "caption_w_con")) s->caption_w_con = (float)number(key, v, 0, 1e6);
    else if (!strcmp(key, "w_pair")) s->w_pair = (float)number(key, v, 0, 1e6);
    else if (!strcmp(key, "w_class")) s->w_class = (float)number(key, v, 0, 1e6);
    else if (!strcmp(key, "mi_variant")) {
        if (!strcmp(v, "full")) s->mi_variant = SECAP_VCLUB_FULL;
        else if (!strcmp(v, "sampled")) s->mi_variant = SECAP_VCLUB_SAMPLED;
        else secap_fatal("config loss.mi_variant = '%s': use full or sampled", v);
    } else if (!strcmp(key, "mi_hidden")) s->mi.hidden = (int)number(key, v, 1, 1 << 20);
    else if (!strcmp(key, "mi_warmup")) s->mi_warmup = (int)number(key, v, 0, 1e9);
    else if (!strcmp(key, "mi_lr")) s->mi.lr = (float)number(key, v, 1e-12, 10);
    else if (!strcmp(key, "mi_weight_decay")) s->mi.weight_decay = (float)number(key, v, 0, 10);
    else if (!strcmp(key, "temp_init")) s->temp_init = (float)number(key, v, 1e-6, 100);
    else if (!strcmp(key, "temp_min")) s->temp_min = (float)number(key, v, 1e-6, 100);
    else if (!strcmp(key, "temp_max")) s->temp_max = (float)number(key, v, 1e-6, 100);
    else if (!strcmp(key, "mi_monitor")) {
        if (!strcmp(v, "true") || !strcmp(v, "1")) s->mi_monitor = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0")) s->mi_monitor = 0;
        else secap_fatal("config loss.mi_monitor = '%s': use true or false", v);
    }
    else return -1;
    if (!strcmp(key, "mi_hidden") && s->mi.hidden != number(key, v, 1, 1 << 20))
        secap_fatal("config loss.mi_hidden = '%s': expected a whole number", v);
    if (!strcmp(key, "mi_warmup") && s->mi_warmup != number(key, v, 0, 1e9))
        secap_fatal("config loss.mi_warmup = '%s': expected a whole number of steps", v);
    return 0;
}

void secap_stage1_config_print(const secap_stage1_config *s, FILE *f)
{
    fprintf(f, "loss.w_mi = %g\n", s->w_mi);
    fprintf(f, "loss.w_con = %g\n", s->w_con);
    fprintf(f, "loss.caption_w_mi = %g\n", s->caption_w_mi);
    fprintf(f, "loss.caption_w_con = %g\n", s->caption_w_con);
    fprintf(f, "loss.w_pair = %g\n", s->w_pair);
    fprintf(f, "loss.w_class = %g\n", s->w_class);
    fprintf(f, "loss.mi_variant = %s\n", s->mi_variant == SECAP_VCLUB_SAMPLED ? "sampled" : "full");
    fprintf(f, "loss.mi_warmup = %d\n", s->mi_warmup);
    fprintf(f, "loss.mi_hidden = %d\n", s->mi.hidden);
    fprintf(f, "loss.mi_lr = %g\n", s->mi.lr);
    fprintf(f, "loss.mi_weight_decay = %g\n", s->mi.weight_decay);
    fprintf(f, "loss.temp_init = %g\n", s->temp_init);
    fprintf(f, "loss.temp_min = %g\n", s->temp_min);
    fprintf(f, "loss.temp_max = %g\n", s->temp_max);
    fprintf(f, "loss.mi_monitor = %s\n", s->mi_monitor ? "true" : "false");
}

void secap_stage1_config_validate(const secap_stage1_config *s, const char *where)
{
    SECAP_CHECK(isfinite(s->w_mi) && isfinite(s->w_con) && s->w_mi >= 0 && s->w_con >= 0,
                "%s: w_mi %g and w_con %g must be finite and >= 0", where, s->w_mi, s->w_con);
    SECAP_CHECK(s->w_mi > 0 || s->w_con > 0, "%s: w_mi and w_con are both 0: stage 1 would train nothing "
                "(hint: the paper's ablations set one of them to 0)", where);
    SECAP_CHECK(isfinite(s->caption_w_mi) && isfinite(s->caption_w_con) && s->caption_w_mi >= 0 &&
                    s->caption_w_con >= 0,
                "%s: caption_w_mi %g and caption_w_con %g must be finite and >= 0", where, s->caption_w_mi,
                s->caption_w_con);
    SECAP_CHECK(isfinite(s->w_pair) && isfinite(s->w_class) && s->w_pair >= 0 && s->w_class >= 0 &&
                    s->w_pair + s->w_class > 0,
                "%s: w_pair %g and w_class %g must be >= 0, not both 0", where, s->w_pair, s->w_class);
    SECAP_CHECK(s->mi_variant == SECAP_VCLUB_FULL || s->mi_variant == SECAP_VCLUB_SAMPLED,
                "%s: mi_variant must be full or sampled", where);
    SECAP_CHECK(s->temp_min > 0 && s->temp_min <= s->temp_init && s->temp_init <= s->temp_max,
                "%s: need 0 < temp_min <= temp_init <= temp_max, got %g, %g, %g", where, s->temp_min,
                s->temp_init, s->temp_max);
    SECAP_CHECK(s->mi.hidden > 0 && s->mi.lr > 0 && s->mi.weight_decay >= 0,
                "%s: need mi_hidden > 0, mi_lr > 0, mi_weight_decay >= 0 (got %d, %g, %g)", where, s->mi.hidden,
                s->mi.lr, s->mi.weight_decay);
}

secap_tensor *secap_stage1_objective(secap_ctx *c, const secap_stage1_config *s, const secap_vclub *est,
                                     secap_tensor *temp, secap_tensor *q, secap_tensor *t, secap_tensor *k,
                                     const int32_t *labels, secap_rng *rng, secap_stage1_terms *terms)
{
    secap_stage1_config_validate(s, "stage1_objective");
    secap_tensor *loss = NULL;
    secap_stage1_terms v = {0};
    if (s->w_mi > 0) {
        SECAP_CHECK(est && t, "stage1_objective: w_mi = %g needs the estimator and T-embeddings (hint: "
                    "pass them, or set w_mi = 0)", s->w_mi);
        int32_t *perm = NULL;
        if (s->mi_variant == SECAP_VCLUB_SAMPLED) {
            SECAP_CHECK(rng, "stage1_objective: the sampled vCLUB variant needs an rng");
            perm = secap_xmalloc((size_t)q->shape[0] * sizeof *perm, "vclub permutation");
            secap_vclub_perm(rng, perm, (int)q->shape[0]);
        }
        secap_tensor *u = secap_vclub_bound(c, est, q, t, perm);
        free(perm);
        v.mi = secap_f32(u)[0];
        loss = secap_scale(c, u, s->w_mi, 0.0f);
    }
    if (s->w_con > 0) {
        SECAP_CHECK(k && temp, "stage1_objective: w_con = %g needs C-embeddings and the temperature "
                    "(hint: pass them, or set w_con = 0)", s->w_con);
        secap_tensor *l = secap_contrastive_loss(c, q, k, temp, labels, s->w_pair, s->w_class, s->temp_min,
                                                 s->temp_max);
        v.con = secap_f32(l)[0];
        l = secap_scale(c, l, s->w_con, 0.0f);
        loss = loss ? secap_add(c, loss, l) : l;
    }
    if (terms) *terms = v;
    return loss;
}
