/* The stage-1 objective w_mi U + w_con L_con (SECAP.md section 3): each
 * branch is built only when its weight is non-zero, so the paper's
 * ablations (MI alone, contrastive alone) cost only their own branch. */
#include "secap/losses.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <math.h>
#include <stdlib.h>

void secap_stage1_config_default(secap_stage1_config *s)
{
    *s = (secap_stage1_config){
        .w_mi = 1.0f, .w_con = 1.0f, .w_pair = 1.0f, .w_class = 1.0f,
        .mi_variant = SECAP_VCLUB_FULL,
        .temp_init = SECAP_TEMP_INIT, .temp_min = SECAP_TEMP_MIN, .temp_max = SECAP_TEMP_MAX,
    };
}

void secap_stage1_config_validate(const secap_stage1_config *s, const char *where)
{
    SECAP_CHECK(isfinite(s->w_mi) && isfinite(s->w_con) && s->w_mi >= 0 && s->w_con >= 0,
                "%s: w_mi %g and w_con %g must be finite and >= 0", where, s->w_mi, s->w_con);
    SECAP_CHECK(s->w_mi > 0 || s->w_con > 0, "%s: w_mi and w_con are both 0: stage 1 would train nothing "
                "(hint: the paper's ablations set one of them to 0)", where);
    SECAP_CHECK(isfinite(s->w_pair) && isfinite(s->w_class) && s->w_pair >= 0 && s->w_class >= 0 &&
                    s->w_pair + s->w_class > 0,
                "%s: w_pair %g and w_class %g must be >= 0, not both 0", where, s->w_pair, s->w_class);
    SECAP_CHECK(s->mi_variant == SECAP_VCLUB_FULL || s->mi_variant == SECAP_VCLUB_SAMPLED,
                "%s: mi_variant must be full or sampled", where);
    SECAP_CHECK(s->temp_min > 0 && s->temp_min <= s->temp_init && s->temp_init <= s->temp_max,
                "%s: need 0 < temp_min <= temp_init <= temp_max, got %g, %g, %g", where, s->temp_min,
                s->temp_init, s->temp_max);
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
