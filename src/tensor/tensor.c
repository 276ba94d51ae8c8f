/* Contexts and tensor creation. */
#include "secap/tensor.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "arena_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t env_mb(const char *var, size_t dflt_mb)
{
    const char *s = getenv(var);
    long v = s && *s ? atol(s) : 0;
    return (size_t)(v > 0 ? v : (long)dflt_mb) << 20;
}

secap_ctx *secap_ctx_new(size_t param_bytes, size_t step_bytes, uint64_t seed)
{
    secap_ctx *c = secap_xcalloc(1, sizeof *c, "context");
    c->param = secap_arena_new("param", param_bytes ? param_bytes : env_mb("SECAP_PARAM_MB", 16384), 1 << 16);
    c->step = secap_arena_new("step", step_bytes ? step_bytes : env_mb("SECAP_STEP_MB", 32768), 1 << 18);
    c->training = 1;
    secap_rng_seed(&c->rng, seed);
    return c;
}

void secap_ctx_free(secap_ctx *c)
{
    if (!c) return;
    secap_arena_free(c->param);
    secap_arena_free(c->step);
    free(c);
}

void secap_ctx_reset(secap_ctx *c)
{
    c->tape = NULL;
    c->ntape = 0;
    secap_arena_reset(c->step);
}

int secap_no_grad_begin(secap_ctx *c) { return c->no_grad++; }
void secap_no_grad_end(secap_ctx *c, int prev) { c->no_grad = prev; }

const char *secap_shape_str(const secap_tensor *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

void secap_check_live(const secap_tensor *t, const char *op)
{
    if (!t) secap_fatal("%s: input tensor is NULL (hint: an earlier op or load failed)", op);
    if (t->magic != SECAP_TENSOR_MAGIC || t->epoch != secap_arena_epoch(t->arena))
        secap_fatal("%s: input tensor was made before its arena was reset (stale: created in generation %llu, "
                    "arena now at %llu; hint: tensors from the step arena do not survive secap_ctx_reset(); "
                    "keep long-lived values in parameters or copy them out)",
                    op, (unsigned long long)t->epoch,
                    (unsigned long long)(t->magic == SECAP_TENSOR_MAGIC ? secap_arena_epoch(t->arena) : 0));
}

static secap_tensor *make(secap_arena *a, const char *what, int ndim, const int64_t *shape,
                          secap_dtype dt, int zero)
{
    if (ndim < 0 || ndim > SECAP_MAX_DIMS)
        secap_fatal("%s: %d dims requested, at most %d supported (hint: reshape to fewer dims)",
                    what, ndim, SECAP_MAX_DIMS);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) secap_fatal("%s: negative size %lld in dim %d", what, (long long)shape[d], d);
        n *= shape[d];
    }
    secap_tensor *t = secap_arena_header(a, what);
    t->ndim = ndim;
    for (int d = 0; d < SECAP_MAX_DIMS; d++) t->shape[d] = d < ndim ? shape[d] : 1;
    t->n = n;
    t->dtype = dt;
    t->name = what;
    t->data = secap_arena_alloc(a, (size_t)n * (dt == SECAP_BF16 ? 2 : 4), zero, what);
    return t;
}

secap_tensor *secap_empty(secap_ctx *c, int ndim, const int64_t *shape)
{
    return make(c->step, "empty", ndim, shape, SECAP_F32, 0);
}

secap_tensor *secap_zeros(secap_ctx *c, int ndim, const int64_t *shape)
{
    return make(c->step, "zeros", ndim, shape, SECAP_F32, 1);
}

secap_tensor *secap_from_data(secap_ctx *c, int ndim, const int64_t *shape, const float *src)
{
    secap_tensor *t = make(c->step, "from_data", ndim, shape, SECAP_F32, 0);
    memcpy(t->data, src, (size_t)t->n * sizeof(float));
    return t;
}

secap_tensor *secap_leaf(secap_ctx *c, int ndim, const int64_t *shape, const float *src)
{
    secap_tensor *t = make(c->step, "leaf", ndim, shape, SECAP_F32, src == NULL);
    if (src) memcpy(t->data, src, (size_t)t->n * sizeof(float));
    t->requires_grad = 1;
    return t;
}

static secap_tensor *param_new(secap_ctx *c, const char *name, int ndim, const int64_t *shape, secap_dtype dt,
                               int trainable, int zero)
{
    if (trainable && dt != SECAP_F32)
        secap_fatal("parameter '%s': a trainable parameter must be float32 (hint: bf16 is a storage type for "
                    "frozen weights)", name);
    secap_tensor *t = make(c->param, name, ndim, shape, dt, zero);
    t->is_param = 1;
    if (trainable) {
        t->requires_grad = 1;
        t->grad = secap_arena_alloc(c->param, (size_t)t->n * sizeof(float), 1, name);
    }
    return t;
}

secap_tensor *secap_param(secap_ctx *c, const char *name, int ndim, const int64_t *shape, int trainable)
{
    return param_new(c, name, ndim, shape, SECAP_F32, trainable, 1);
}

secap_tensor *secap_param_bf16(secap_ctx *c, const char *name, int ndim, const int64_t *shape)
{
    return param_new(c, name, ndim, shape, SECAP_BF16, 0, 1);
}

secap_tensor *secap_param_uninit(secap_ctx *c, const char *name, int ndim, const int64_t *shape,
                                 secap_dtype dtype, int trainable)
{
    return param_new(c, name, ndim, shape, dtype, trainable, 0);
}

secap_tensor *secap_param_external(secap_ctx *c, const char *name, int ndim, const int64_t *shape,
                                   secap_dtype dtype, const void *data)
{
    if (ndim < 0 || ndim > SECAP_MAX_DIMS)
        secap_fatal("%s: %d dims requested, at most %d supported", name, ndim, SECAP_MAX_DIMS);
    secap_tensor *t = make(c->param, name, 0, NULL, dtype, 0);   /* header (and one unused element) */
    t->ndim = ndim;
    t->n = 1;
    for (int d = 0; d < SECAP_MAX_DIMS; d++) {
        t->shape[d] = d < ndim ? shape[d] : 1;
        if (d < ndim) t->n *= shape[d];
    }
    t->data = (void *)data;   /* read-only: only frozen parameters point here */
    t->is_param = 1;
    return t;
}

secap_tensor *secap_wrap_f32(secap_ctx *c, const char *name, int ndim, const int64_t *shape, float *data)
{
    if (!data) secap_fatal("%s: wrapping NULL memory as a tensor (hint: allocate the buffer first)", name);
    if (ndim < 0 || ndim > SECAP_MAX_DIMS)
        secap_fatal("%s: %d dims requested, at most %d supported (hint: reshape to fewer dims)",
                    name, ndim, SECAP_MAX_DIMS);
    secap_tensor *t = secap_arena_header(c->step, name);
    int64_t n = 1;
    for (int d = 0; d < SECAP_MAX_DIMS; d++) {
        if (d < ndim && shape[d] < 0) secap_fatal("%s: negative size %lld in dim %d", name, (long long)shape[d], d);
        t->shape[d] = d < ndim ? shape[d] : 1;
        if (d < ndim) n *= shape[d];
    }
    t->ndim = ndim;
    t->n = n;
    t->dtype = SECAP_F32;
    t->data = data;
    t->name = name;
    return t;
}

/* Used by ops: a step-arena output tensor named after the op. */
secap_tensor *secap_op_out(secap_ctx *c, const char *op, int ndim, const int64_t *shape, int zero)
{
    return make(c->step, op, ndim, shape, SECAP_F32, zero);
}

/* Used by ops: a step-arena header sharing x's data with a new shape. */
secap_tensor *secap_op_view(secap_ctx *c, const char *op, const secap_tensor *x, int ndim, const int64_t *shape)
{
    secap_tensor *t = secap_arena_header(c->step, op);
    t->ndim = ndim;
    int64_t n = 1;
    for (int d = 0; d < SECAP_MAX_DIMS; d++) {
        t->shape[d] = d < ndim ? shape[d] : 1;
        if (d < ndim) n *= shape[d];
    }
    t->n = n;
    t->dtype = x->dtype;
    t->data = x->data;
    t->name = op;
    return t;
}
