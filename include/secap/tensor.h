/* secap/tensor.h - tensors, arenas and the op context.
 *
 * A tensor is a contiguous row-major float32 array of up to 4 dims (or a
 * bf16 array, a storage type for frozen weights that only linear and
 * embedding read).  Tensors never own memory: they live in an arena.
 *
 *   param arena  parameters, gradients, optimizer state; lives for the run.
 *   step arena   activations, the autograd tape and backward scratch; reset
 *                with secap_ctx_reset() after every optimizer step.
 *
 * Arenas reserve address space up front (mmap, MAP_NORESERVE) so only the
 * memory actually touched is committed; secap_arena_peak() reports the
 * high-water mark of a dry-run step, which is how arenas are sized.  A tensor
 * remembers the arena generation it was made in: using one after its arena
 * was reset is a fatal error naming the op, not a silent read of garbage.
 */
#ifndef SECAP_TENSOR_H
#define SECAP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "secap/bf16.h"
#include "secap/rng.h"

#define SECAP_MAX_DIMS 4

typedef enum { SECAP_F32 = 0, SECAP_BF16 = 1 } secap_dtype;

typedef struct secap_arena secap_arena;

typedef struct secap_tensor {
    void *data;                      /* [n] float or uint16 (bf16) */
    float *grad;                     /* [n] or NULL: allocated lazily in backward */
    int64_t shape[SECAP_MAX_DIMS];   /* dims beyond ndim are 1 */
    int64_t n;                       /* element count */
    int ndim;
    secap_dtype dtype;
    uint8_t requires_grad;           /* a gradient flows into this tensor */
    uint8_t is_param;                /* lives in the param arena; grad preallocated */
    uint32_t magic;                  /* SECAP_TENSOR_MAGIC while the header is live */
    uint64_t epoch;                  /* arena generation at creation */
    secap_arena *arena;
    const char *name;                /* parameter name, or the op that made it */
} secap_tensor;

#define SECAP_TENSOR_MAGIC 0x7e5a0c11u

/* ---- arenas -------------------------------------------------------------- */

/* Reserves `bytes` of address space (committed only when touched) and room
 * for `max_tensors` tensor headers per generation.  `name` appears in errors. */
secap_arena *secap_arena_new(const char *name, size_t bytes, int max_tensors);
void secap_arena_free(secap_arena *a);
/* Drops everything allocated since creation; tensors made before become stale. */
void secap_arena_reset(secap_arena *a);
/* 64-byte aligned, uninitialised (zeroed when `zero`).  `what` names the op. */
void *secap_arena_alloc(secap_arena *a, size_t bytes, int zero, const char *what);
size_t secap_arena_used(const secap_arena *a);
size_t secap_arena_peak(const secap_arena *a);
size_t secap_arena_capacity(const secap_arena *a);
/* Transient kernel scratch, stack-like: take a mark, allocate, and rewind to
 * the mark when the kernel is done.  The scratch counts in the peak (so a
 * dry-run step sizes it) but does not stay allocated.  Nothing that must
 * survive may be allocated from the arena between the mark and the rewind. */
size_t secap_arena_mark(const secap_arena *a);
void secap_arena_rewind(secap_arena *a, size_t mark);

/* ---- context ------------------------------------------------------------- */

typedef struct secap_node secap_node;

typedef struct secap_ctx {
    secap_arena *param;   /* long-lived */
    secap_arena *step;    /* reset every step */
    secap_node *tape;     /* last recorded node (a backward-linked list) */
    int64_t ntape;
    int no_grad;          /* >0: record nothing */
    int training;         /* dropout active */
    secap_rng rng;        /* dropout and other in-graph randomness */
    /* Called after each node of a backward pass, whether or not the node had
     * a gradient to pass back (the MPI gradient exchange launches a bucket
     * once the last node that uses its tensors is done: src/train/dist.c);
     * NULL: none. */
    void (*after_node)(void *arg, const secap_node *n);
    void *after_node_arg;
} secap_ctx;

/* Sizes in bytes; 0 picks defaults ($SECAP_PARAM_MB / $SECAP_STEP_MB, else
 * 16 GiB / 32 GiB of reserved address space). */
secap_ctx *secap_ctx_new(size_t param_bytes, size_t step_bytes, uint64_t seed);
void secap_ctx_free(secap_ctx *c);
/* Clears the tape and the step arena (end of an optimizer step). */
void secap_ctx_reset(secap_ctx *c);
/* Enter/leave no-grad mode; returns the previous depth for nesting. */
int secap_no_grad_begin(secap_ctx *c);
void secap_no_grad_end(secap_ctx *c, int prev);

/* ---- creation ------------------------------------------------------------ */

/* A step-arena tensor (uninitialised / zeroed), no gradient. */
secap_tensor *secap_empty(secap_ctx *c, int ndim, const int64_t *shape);
secap_tensor *secap_zeros(secap_ctx *c, int ndim, const int64_t *shape);
/* A step-arena tensor filled from `src` (copied). */
secap_tensor *secap_from_data(secap_ctx *c, int ndim, const int64_t *shape, const float *src);
/* A leaf that receives a gradient (inputs of gradient tests). */
secap_tensor *secap_leaf(secap_ctx *c, int ndim, const int64_t *shape, const float *src);
/* A parameter in the param arena: trainable (grad allocated, zeroed) or
 * frozen (no grad; gradients still flow through ops that use it). */
secap_tensor *secap_param(secap_ctx *c, const char *name, int ndim, const int64_t *shape,
                          int trainable);
/* A frozen bf16 parameter (storage only; read by linear and embedding). */
secap_tensor *secap_param_bf16(secap_ctx *c, const char *name, int ndim, const int64_t *shape);
/* A step-arena header over float32 memory the caller owns (e.g. a KV
 * cache's buffers, secap/kvcache.h): no copy, no gradient.  The header is
 * stale after secap_ctx_reset(); the memory must outlive it. */
secap_tensor *secap_wrap_f32(secap_ctx *c, const char *name, int ndim, const int64_t *shape, float *data);

/* A parameter the caller fills at once (a load): no zero-fill of the data;
 * trainable ones (float32 only) get a zeroed gradient. */
secap_tensor *secap_param_uninit(secap_ctx *c, const char *name, int ndim, const int64_t *shape,
                                 secap_dtype dtype, int trainable);
/* A frozen parameter whose read-only data lives outside the arenas (a
 * mapping of a weight file, which must outlive the tensor). */
secap_tensor *secap_param_external(secap_ctx *c, const char *name, int ndim, const int64_t *shape,
                                   secap_dtype dtype, const void *data);

/* Convenience shapes: S(2, 3) -> (int64_t[]){2, 3} with ndim 2. */
#define SECAP_SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

static inline float *secap_f32(const secap_tensor *t) { return (float *)t->data; }

/* Fails with op name and shapes unless t is a live tensor. */
void secap_check_live(const secap_tensor *t, const char *op);
/* "[2, 3, 4]" into buf; returns buf. */
const char *secap_shape_str(const secap_tensor *t, char *buf, size_t len);

#endif
