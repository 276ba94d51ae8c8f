/* Checks and scratch buffers shared by the ops. */
#include "ops_internal.h"

#include <stdlib.h>

void op_check_f32(const secap_tensor *t, const char *op, const char *arg)
{
    secap_check_live(t, op);
    if (t->dtype != SECAP_F32)
        secap_fatal("%s: %s is bf16 but this op needs float32 (hint: bf16 is a storage type for "
                    "frozen weights read by linear and embedding)", op, arg);
}

void op_shape_error(const char *op, const secap_tensor *a, const secap_tensor *b, const char *hint)
{
    char sa[96], sb[96];
    secap_fatal("%s: shape mismatch %s vs %s (hint: %s)", op, secap_shape_str(a, sa, sizeof sa),
                b ? secap_shape_str(b, sb, sizeof sb) : "-", hint);
}

int op_same_shape(const secap_tensor *a, const secap_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

int op_dim(const char *op, const secap_tensor *t, int dim)
{
    int d = dim < 0 ? dim + t->ndim : dim;
    if (d < 0 || d >= t->ndim) {
        char s[96];
        secap_fatal("%s: dim %d out of range for shape %s (hint: dims count from 0, or -1 for the last)",
                    op, dim, secap_shape_str(t, s, sizeof s));
    }
    return d;
}

int64_t op_prod(const secap_tensor *t, int from, int to)
{
    int64_t p = 1;
    for (int d = from; d < to; d++) p *= t->shape[d];
    return p;
}

float *op_scratch(int slot, size_t floats)
{
    static float *buf[SCRATCH_SLOTS];
    static size_t cap[SCRATCH_SLOTS];
    if (floats > cap[slot]) {
        free(buf[slot]);
        buf[slot] = secap_xmalloc(floats * sizeof(float), "op scratch");
        cap[slot] = floats;
    }
    return buf[slot];
}
