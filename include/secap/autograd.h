/* secap/autograd.h - the tape and reverse-mode differentiation.
 *
 * Each op's builder computes its output with the forward kernel and, when an
 * input requires a gradient and no-grad mode is off, records a node: the op's
 * name, its inputs, its output, whatever the backward rule needs, and a
 * pointer to that rule.  secap_backward(loss) walks the tape from the newest
 * node to the oldest (secap_backward_from: from any tensor, with a given output
 * gradient); each rule *adds* into its inputs' gradients, so a tensor
 * used twice accumulates both contributions.  Parameter gradients accumulate
 * across calls until the optimizer zeroes them (gradient accumulation).
 */
#ifndef SECAP_AUTOGRAD_H
#define SECAP_AUTOGRAD_H

#include "secap/tensor.h"

typedef void (*secap_backward_fn)(secap_ctx *c, secap_node *n);

struct secap_node {
    secap_backward_fn backward;
    const char *op;
    secap_tensor *out;
    secap_tensor **in;      /* [nin] */
    int nin;
    secap_tensor *saved[3]; /* tensors the rule needs (e.g. mean, rstd) */
    void *aux;              /* op-specific data in the step arena */
    float f[4];             /* scalar arguments */
    int64_t i[8];           /* integer arguments */
    secap_node *prev;
};

/* True when an op with these inputs must record itself. */
int secap_needs_grad(const secap_ctx *c, secap_tensor *const *in, int nin);
/* Records a node (call only when secap_needs_grad); marks out requires_grad. */
secap_node *secap_record(secap_ctx *c, const char *op, secap_backward_fn bw,
                         secap_tensor *out, secap_tensor *const *in, int nin);
/* The gradient buffer of t, allocated (zeroed) on first use; NULL when t
 * takes no gradient (frozen parameter, constant). */
float *secap_grad(secap_ctx *c, secap_tensor *t);

/* d loss / d everything: loss must be a scalar (one element).  The same as
 * secap_backward_from(c, loss, &1.0f). */
void secap_backward(secap_ctx *c, secap_tensor *loss);
/* Reverse pass from any taped tensor `out` with a given output gradient
 * dout [out->n] (the vector in a vector-Jacobian product): adds dout into
 * out's gradient and replays the tape, so every input receives
 * sum_i dout[i] * d out[i] / d input.  Nodes recorded after `out` take no
 * part.  Intermediate gradients from an earlier backward over the same tape
 * are cleared first; parameter gradients accumulate as with
 * secap_backward. */
void secap_backward_from(secap_ctx *c, secap_tensor *out, const float *dout);

#endif
