/* tests/gradcheck.h - finite-difference gradient checking for ops.
 *
 * gradcheck() builds an op from inputs held as trainable parameters, takes
 * loss = sum(out * R) with a fixed random R (so no symmetry can hide an
 * error), runs backward, and compares every analytic input gradient with the
 * central difference (L(x+h) - L(x-h)) / 2h evaluated in double over the
 * float32 forward.  Large inputs are checked at 40 random positions.  The
 * largest error, relative to max(1, |analytic|, |numeric|), must be <= tol.
 * With gc_from_dout set, the analytic gradient comes from
 * secap_backward_from(out, R) instead (the same loss, no sum/mul nodes).
 */
#ifndef SECAP_GRADCHECK_H
#define SECAP_GRADCHECK_H

#include "testutil.h"
#include "secap/autograd.h"
#include "secap/ops.h"

typedef struct {
    int ndim;
    int64_t shape[4];
    float lo, hi;      /* uniform init range */
    int frozen;        /* 1: a frozen parameter (must get no gradient) */
    int nkinks;        /* values kept >= 4h away from these points */
    float kinks[2];
} gc_input;

typedef secap_tensor *(*gc_build)(secap_ctx *c, secap_tensor **in, void *arg);

static int gc_from_dout;

static double gc_loss(secap_tensor *out, const float *R)
{
    double s = 0.0;
    const float *y = secap_f32(out);
    for (int64_t i = 0; i < out->n; i++) s += (double)y[i] * R[i];
    return s;
}

static secap_tensor *gc_forward(secap_ctx *c, gc_build f, secap_tensor **in, void *arg)
{
    secap_rng_seed(&c->rng, 1234); /* dropout masks repeat across evaluations */
    return f(c, in, arg);
}

/* Returns the largest relative error; fails the test past tol. */
static double gradcheck(const char *name, gc_build f, void *arg, int nin, const gc_input *spec,
                        float h, float tol)
{
    secap_ctx *c = secap_ctx_new(256u << 20, 512u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 99);
    secap_tensor *in[8];
    for (int k = 0; k < nin; k++) {
        in[k] = secap_param(c, "gc_input", spec[k].ndim, spec[k].shape, !spec[k].frozen);
        float *x = secap_f32(in[k]);
        for (int64_t i = 0; i < in[k]->n; i++) {
            float v = spec[k].lo + (spec[k].hi - spec[k].lo) * secap_rng_uniform(&r);
            for (int q = 0; q < spec[k].nkinks; q++)
                if (fabsf(v - spec[k].kinks[q]) < 4 * h) v = spec[k].kinks[q] + (v < spec[k].kinks[q] ? -5 * h : 5 * h);
            x[i] = v;
        }
    }
    secap_tensor *out = gc_forward(c, f, in, arg);
    int64_t on = out->n;
    float *R = secap_xmalloc((size_t)on * sizeof(float), "R");
    for (int64_t i = 0; i < on; i++) R[i] = secap_rng_uniform(&r) * 2.0f - 1.0f;
    if (gc_from_dout) {
        secap_backward_from(c, out, R);
    } else {
        secap_tensor *Rt = secap_from_data(c, out->ndim, out->shape, R);
        secap_backward(c, secap_sum_all(c, secap_mul(c, out, Rt)));
    }

    double worst = 0.0;
    for (int k = 0; k < nin; k++) {
        if (spec[k].frozen) {
            if (in[k]->grad) fail_msg("%s: frozen input %d received a gradient buffer", name, k);
            continue;
        }
        int64_t n = in[k]->n;
        float *x = secap_f32(in[k]);
        float *ga = secap_xmalloc((size_t)n * sizeof(float), "grad copy");
        memcpy(ga, in[k]->grad, (size_t)n * sizeof(float));
        int checks = n <= 64 ? (int)n : 40;
        for (int q = 0; q < checks; q++) {
            int64_t i = n <= 64 ? q : (int64_t)secap_rng_below(&r, (uint64_t)n);
            float v = x[i];
            int prev = secap_no_grad_begin(c);
            secap_ctx_reset(c);
            x[i] = v + h;
            double lp = gc_loss(gc_forward(c, f, in, arg), R);
            secap_ctx_reset(c);
            x[i] = v - h;
            double lm = gc_loss(gc_forward(c, f, in, arg), R);
            x[i] = v;
            secap_no_grad_end(c, prev);
            double num = (lp - lm) / (2.0 * h), ana = ga[i];
            double den = fmax(1.0, fmax(fabs(num), fabs(ana)));
            double err = fabs(num - ana) / den;
            if (err > worst) worst = err;
            if (err > tol)
                fail_msg("%s: input %d element %lld: analytic %.6g numeric %.6g (rel err %.3g > %.3g)",
                         name, k, (long long)i, ana, num, err, tol);
        }
        free(ga);
    }
    print_message("  %-28s max rel err %.2e (tol %.0e)\n", name, worst, tol);
    free(R);
    secap_ctx_free(c);
    return worst;
}

#define GC_IN(lo_, hi_, ...) {.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), \
                              .shape = {__VA_ARGS__}, .lo = (lo_), .hi = (hi_)}

#endif
