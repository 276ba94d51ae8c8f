/* AdamW with parameter groups, global gradient-norm clipping, schedules. */
#include "secap/optim.h"
#include "secap/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

secap_adamw *secap_adamw_new(float beta1, float beta2, float eps)
{
    if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0))
        secap_fatal("adamw: betas (%g, %g) must lie in [0, 1) and eps %g must be > 0", beta1, beta2, eps);
    secap_adamw *o = secap_xcalloc(1, sizeof *o, "optimizer");
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    return o;
}

void secap_adamw_free(secap_adamw *o)
{
    if (!o) return;
    free(o->slots);
    free(o);
}

int secap_adamw_group(secap_adamw *o, float lr_mult, float weight_decay)
{
    if (o->ngroups == SECAP_MAX_GROUPS) secap_fatal("adamw: more than %d parameter groups", SECAP_MAX_GROUPS);
    o->groups[o->ngroups] = (secap_param_group){lr_mult, weight_decay};
    return o->ngroups++;
}

void secap_adamw_add(secap_adamw *o, secap_ctx *c, secap_tensor *p, int group)
{
    secap_check_live(p, "adamw_add");
    if (!p->is_param || !p->requires_grad || p->dtype != SECAP_F32)
        secap_fatal("adamw: tensor '%s' is not a trainable float32 parameter (hint: create it with "
                    "secap_param(..., trainable=1))", p->name);
    if (group < 0 || group >= o->ngroups)
        secap_fatal("adamw: parameter '%s' added to group %d, but only %d groups exist", p->name, group, o->ngroups);
    if (o->nslots == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->slots = realloc(o->slots, (size_t)o->cap * sizeof *o->slots);
        if (!o->slots) secap_fatal("adamw: out of memory for %d parameter slots", o->cap);
    }
    size_t bytes = (size_t)p->n * sizeof(float);
    o->slots[o->nslots++] = (secap_adamw_slot){
        .param = p, .group = group,
        .m = secap_arena_alloc(c->param, bytes, 1, "adamw m"),
        .v = secap_arena_alloc(c->param, bytes, 1, "adamw v"),
    };
}

int secap_adamw_add_params(secap_adamw *o, secap_ctx *c, const secap_params *p, const char *include,
                           const char *exclude, int group)
{
    int added = 0;
    for (int i = secap_params_next(p, include, -1); i >= 0; i = secap_params_next(p, include, i)) {
        const secap_param_entry *e = secap_params_entry(p, i);
        if (!e->trainable || (exclude && secap_params_match(exclude, e->name))) continue;
        if (!e->t)
            secap_fatal("adamw: parameter table entry %s is not loaded (hint: call secap_params_load first)", e->name);
        int seen = 0;
        for (int s = 0; s < o->nslots && !seen; s++) seen = o->slots[s].param == e->t;
        if (seen) continue;
        secap_adamw_add(o, c, e->t, group);
        added++;
    }
    return added;
}

void secap_adamw_step(secap_adamw *o, float lr)
{
    o->step++;
    double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    for (int s = 0; s < o->nslots; s++) {
        secap_adamw_slot *sl = &o->slots[s];
        const secap_param_group *g = &o->groups[sl->group];
        float a = lr * g->lr_mult, decay = 1.0f - a * g->weight_decay;
        float *p = secap_f32(sl->param), *gr = sl->param->grad, *m = sl->m, *v = sl->v;
        float step_size = (float)(a / bc1), rbc2 = (float)(1.0 / sqrt(bc2));
#pragma omp parallel for if (sl->param->n > 16384)
        for (int64_t i = 0; i < sl->param->n; i++) {
            m[i] = b1 * m[i] + (1.0f - b1) * gr[i];
            v[i] = b2 * v[i] + (1.0f - b2) * gr[i] * gr[i];
            p[i] = p[i] * decay - step_size * m[i] / (sqrtf(v[i]) * rbc2 + eps);
        }
    }
}

void secap_adamw_zero_grad(secap_adamw *o)
{
    for (int s = 0; s < o->nslots; s++)
        memset(o->slots[s].param->grad, 0, (size_t)o->slots[s].param->n * sizeof(float));
}

double secap_clip_grad_norm(secap_adamw *o, double max_norm)
{
    double total = 0.0;
    for (int s = 0; s < o->nslots; s++) {
        const float *g = o->slots[s].param->grad;
        double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) if (o->slots[s].param->n > 16384)
        for (int64_t i = 0; i < o->slots[s].param->n; i++) acc += (double)g[i] * g[i];
        total += acc;
    }
    double norm = sqrt(total);
    if (max_norm > 0 && norm > max_norm && isfinite(norm)) {
        float f = (float)(max_norm / (norm + 1e-6));
        for (int s = 0; s < o->nslots; s++) {
            float *g = o->slots[s].param->grad;
            for (int64_t i = 0; i < o->slots[s].param->n; i++) g[i] *= f;
        }
    }
    return norm;
}

float secap_schedule_lr(const secap_schedule *s, int64_t step)
{
    if (s->warmup > 0 && step < s->warmup) return s->lr * (float)(step + 1) / (float)s->warmup;
    if (s->kind == SECAP_SCHED_CONSTANT || s->total <= s->warmup) return s->lr;
    double t = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    if (t > 1.0) t = 1.0;
    double f = s->kind == SECAP_SCHED_COSINE ? 0.5 * (1.0 + cos(M_PI * t)) : 1.0 - t;
    return (float)(s->min_lr + (s->lr - s->min_lr) * f);
}

secap_sched_kind secap_sched_parse(const char *name)
{
    if (!strcmp(name, "cosine")) return SECAP_SCHED_COSINE;
    if (!strcmp(name, "linear")) return SECAP_SCHED_LINEAR;
    if (!strcmp(name, "constant")) return SECAP_SCHED_CONSTANT;
    secap_fatal("schedule '%s' is unknown (hint: use cosine, linear or constant)", name);
}
