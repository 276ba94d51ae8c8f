/* The tape: recording and the backward pass (the one dispatch point). */
#include "secap/autograd.h"
#include "secap/base.h"
#include "arena_internal.h"

#include <math.h>
#include <string.h>

int secap_needs_grad(const secap_ctx *c, secap_tensor *const *in, int nin)
{
    if (c->no_grad) return 0;
    for (int i = 0; i < nin; i++)
        if (in[i] && in[i]->requires_grad) return 1;
    return 0;
}

secap_node *secap_record(secap_ctx *c, const char *op, secap_backward_fn bw,
                         secap_tensor *out, secap_tensor *const *in, int nin)
{
    secap_node *n = secap_arena_alloc(c->step, sizeof *n, 1, op);
    n->in = secap_arena_alloc(c->step, sizeof(secap_tensor *) * (size_t)(nin ? nin : 1), 0, op);
    memcpy(n->in, in, sizeof(secap_tensor *) * (size_t)nin);
    n->nin = nin;
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->prev = c->tape;
    out->requires_grad = 1;
    c->tape = n;
    c->ntape++;
    return n;
}

float *secap_grad(secap_ctx *c, secap_tensor *t)
{
    if (!t || !t->requires_grad) return NULL;
    if (!t->grad) t->grad = secap_arena_alloc(c->step, (size_t)t->n * sizeof(float), 1, "grad");
    return t->grad;
}

void secap_backward_from(secap_ctx *c, secap_tensor *out, const float *dout)
{
    secap_check_live(out, "backward_from");
    if (!dout)
        secap_fatal("backward_from: the output gradient is NULL (hint: pass [%lld] floats shaped like the "
                    "output, or call secap_backward on a scalar loss)", (long long)out->n);
    if (!out->requires_grad)
        secap_fatal("backward_from: the output does not depend on any tensor that takes a gradient "
                    "(hint: was it computed under no_grad, or are all parameters frozen?)");
    /* Intermediate gradients from an earlier backward over the same tape
     * (e.g. a second loss in one step) must not leak into this one; nodes
     * newer than out keep a NULL gradient and are skipped. */
    for (secap_node *n = c->tape; n; n = n->prev) n->out->grad = NULL;
    float *g = secap_grad(c, out);
    for (int64_t i = 0; i < out->n; i++) g[i] += dout[i];
    for (secap_node *n = c->tape; n; n = n->prev) {
        if (n->out->grad) n->backward(c, n);
        if (c->after_node) c->after_node(c->after_node_arg, n);
    }
}

/* A NaN or infinite loss stops before it reaches the gradients, naming the
 * earliest op on the tape whose output is not finite (where it started). */
static _Noreturn void report_nonfinite_loss(secap_ctx *c, secap_tensor *loss)
{
    const secap_node *first = NULL;
    int64_t at = -1;
    for (const secap_node *n = c->tape; n; n = n->prev) {   /* newest first: keep the oldest hit */
        if (n->out->dtype != SECAP_F32) continue;
        int64_t k = secap_find_nonfinite(secap_f32(n->out), n->out->n);
        if (k >= 0) { first = n; at = k; }
    }
    const char *what = secap_nonfinite_name(secap_f32(loss)[0]);
    const char *hint = "lower the learning rate or clip gradients; check the inputs and weights for NaN/inf";
    if (!first) secap_fatal("backward: the loss is %s (hint: %s)", what, hint);
    char s[64];
    secap_shape_str(first->out, s, sizeof s);
    secap_fatal("backward: the loss is %s; the first non-finite value on the tape is element %lld of the %s "
                "output of op %s (hint: %s)", what, (long long)at, s, first->op, hint);
}

void secap_backward(secap_ctx *c, secap_tensor *loss)
{
    char s[64];
    secap_check_live(loss, "backward");
    if (loss->n != 1)
        secap_fatal("backward: loss has shape %s (%lld elements); backward needs a scalar "
                    "(hint: reduce it with secap_mean_all or secap_sum_all first, or give the output "
                    "gradient to secap_backward_from)",
                    secap_shape_str(loss, s, sizeof s), (long long)loss->n);
    if (!loss->requires_grad)
        secap_fatal("backward: loss does not depend on any tensor that takes a gradient "
                    "(hint: was it computed under no_grad, or are all parameters frozen?)");
    if (!isfinite(secap_f32(loss)[0])) report_nonfinite_loss(c, loss);
    const float one = 1.0f;
    secap_backward_from(c, loss, &one);
}
