/* Checks and scratch buffers shared by the ops. */
#include "ops_internal.h"

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

void op_colsum_add(float *dst, const float *src, int64_t rows, int64_t cols)
{
    const int64_t blk = 256;
#pragma omp parallel for if (rows * cols > OP_PAR_MIN)
    for (int64_t j0 = 0; j0 < cols; j0 += blk) {
        int64_t len = cols - j0 < blk ? cols - j0 : blk;
        float acc[256] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *row = src + r * cols + j0;
            for (int64_t j = 0; j < len; j++) acc[j] += row[j];
        }
        for (int64_t j = 0; j < len; j++) dst[j0 + j] += acc[j];
    }
}

void op_fill_rows(float *dst, const float *row, int64_t rows, int64_t cols)
{
#pragma omp parallel for if (rows * cols > OP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * cols, row, (size_t)cols * sizeof(float));
}
