/* Shape ops: reshape, detach (views), permute, concat, slice, split (copies). */
#include "ops_internal.h"

/* ---- views -------------------------------------------------------------- */

static void reshape_backward(secap_ctx *c, secap_node *n)
{
    float *dx = secap_grad(c, n->in[0]);
    if (!dx) return;
    const float *g = n->out->grad;
#pragma omp parallel for if (n->out->n > OP_PAR_MIN)
    for (int64_t i = 0; i < n->out->n; i++) dx[i] += g[i];
}

secap_tensor *secap_reshape(secap_ctx *c, secap_tensor *x, int ndim, const int64_t *shape)
{
    const char *op = "reshape";
    secap_check_live(x, op);
    if (ndim < 0 || ndim > SECAP_MAX_DIMS) secap_fatal("reshape: %d dims, at most %d", ndim, SECAP_MAX_DIMS);
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    if (n != x->n) {
        char s[96];
        secap_fatal("reshape: %s has %lld elements but the new shape has %lld (hint: the product of the "
                    "dims must stay the same)", secap_shape_str(x, s, sizeof s), (long long)x->n, (long long)n);
    }
    secap_tensor *out = secap_op_view(c, op, x, ndim, shape);
    if (secap_needs_grad(c, &x, 1)) secap_record(c, op, reshape_backward, out, &x, 1);
    return out;
}

secap_tensor *secap_detach(secap_ctx *c, secap_tensor *x)
{
    secap_check_live(x, "detach");
    return secap_op_view(c, "detach", x, x->ndim, x->shape);
}

/* ---- permute ------------------------------------------------------------ */

/* Input strides reordered to output dims, all padded to 4 dims. */
static void permute_strides(const secap_tensor *x, const int *perm, int64_t os[4], int64_t ist[4])
{
    int64_t st[4], acc = 1;
    for (int d = x->ndim - 1; d >= 0; d--) { st[d] = acc; acc *= x->shape[d]; }
    int off = 4 - x->ndim;
    for (int d = 0; d < 4; d++) {
        os[d] = d < off ? 1 : x->shape[perm[d - off]];
        ist[d] = d < off ? 0 : st[perm[d - off]];
    }
}

/* Batched 2-D transpose in 32 x 32 tiles: dst[b][j][i] (+)= src[b][i][j]
 * for src [batch, R, C].  The common permute (swap the last two dims) goes
 * here; the element-wise path below strides through memory. */
static void transpose_tiles(float *dst, const float *src, int64_t batch, int64_t R, int64_t C, int acc)
{
    const int64_t TB = 32;
#pragma omp parallel for collapse(2) if (batch * R * C > OP_PAR_MIN)
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i0 = 0; i0 < R; i0 += TB) {
            const float *s = src + b * R * C;
            float *d = dst + b * R * C;
            int64_t i1 = i0 + TB < R ? i0 + TB : R;
            for (int64_t j0 = 0; j0 < C; j0 += TB) {
                int64_t j1 = j0 + TB < C ? j0 + TB : C;
                for (int64_t j = j0; j < j1; j++)
                    for (int64_t i = i0; i < i1; i++) {
                        if (acc) d[j * R + i] += s[i * C + j];
                        else d[j * R + i] = s[i * C + j];
                    }
            }
        }
}

/* True when perm only swaps the last two of nd dims. */
static int swaps_last_two(const int *perm, int nd)
{
    if (nd < 2 || perm[nd - 1] != nd - 2 || perm[nd - 2] != nd - 1) return 0;
    for (int d = 0; d < nd - 2; d++)
        if (perm[d] != d) return 0;
    return 1;
}

static void permute_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    int perm[4] = {(int)n->i[0], (int)n->i[1], (int)n->i[2], (int)n->i[3]};
    const float *g = n->out->grad;
    if (swaps_last_two(perm, x->ndim)) { /* out [.., C, R] back onto x [.., R, C] */
        int64_t R = x->shape[x->ndim - 2], C = x->shape[x->ndim - 1];
        transpose_tiles(dx, g, x->n / (R * C), C, R, 1);
        return;
    }
    int64_t os[4], ist[4];
    permute_strides(x, perm, os, ist);
#pragma omp parallel for collapse(2) if (x->n > OP_PAR_MIN)
    for (int64_t i0 = 0; i0 < os[0]; i0++)
        for (int64_t i1 = 0; i1 < os[1]; i1++)
            for (int64_t i2 = 0; i2 < os[2]; i2++)
                for (int64_t i3 = 0; i3 < os[3]; i3++)
                    dx[i0 * ist[0] + i1 * ist[1] + i2 * ist[2] + i3 * ist[3]] +=
                        g[((i0 * os[1] + i1) * os[2] + i2) * os[3] + i3];
}

secap_tensor *secap_permute(secap_ctx *c, secap_tensor *x, const int *perm)
{
    const char *op = "permute";
    op_check_f32(x, op, "x");
    int seen[SECAP_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++) {
        if (perm[d] < 0 || perm[d] >= x->ndim || seen[perm[d]]++)
            secap_fatal("permute: perm is not a permutation of 0..%d (hint: list every dim once)", x->ndim - 1);
    }
    int64_t os[4], ist[4];
    permute_strides(x, perm, os, ist);
    secap_tensor *out = secap_op_out(c, op, x->ndim, os + (4 - x->ndim), 0);
    const float *X = secap_f32(x);
    float *Y = secap_f32(out);
    if (swaps_last_two(perm, x->ndim)) {
        int64_t R = x->shape[x->ndim - 2], C = x->shape[x->ndim - 1];
        transpose_tiles(Y, X, x->n / (R * C), R, C, 0);
    } else {
#pragma omp parallel for collapse(2) if (x->n > OP_PAR_MIN)
        for (int64_t i0 = 0; i0 < os[0]; i0++)
            for (int64_t i1 = 0; i1 < os[1]; i1++)
                for (int64_t i2 = 0; i2 < os[2]; i2++)
                    for (int64_t i3 = 0; i3 < os[3]; i3++)
                        Y[((i0 * os[1] + i1) * os[2] + i2) * os[3] + i3] =
                            X[i0 * ist[0] + i1 * ist[1] + i2 * ist[2] + i3 * ist[3]];
    }
    if (secap_needs_grad(c, &x, 1)) {
        secap_node *n = secap_record(c, op, permute_backward, out, &x, 1);
        for (int d = 0; d < 4; d++) n->i[d] = d < x->ndim ? perm[d] : 0;
    }
    return out;
}

secap_tensor *secap_transpose(secap_ctx *c, secap_tensor *x, int d0, int d1)
{
    secap_check_live(x, "transpose");
    int a = op_dim("transpose", x, d0), b = op_dim("transpose", x, d1);
    int perm[SECAP_MAX_DIMS] = {0, 1, 2, 3};
    perm[a] = b; perm[b] = a;
    return secap_permute(c, x, perm);
}

/* ---- concat and slice: x viewed as [outer, size(dim), inner] ------------- */

/* Copies (or, with acc, adds) rows of `len` floats: dst[o] <- src[o]. */
static void copy_rows(float *dst, int64_t dstride, const float *src, int64_t sstride, int64_t outer,
                      int64_t len, int acc)
{
#pragma omp parallel for if (outer * len > OP_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *d = dst + o * dstride;
        const float *s = src + o * sstride;
        if (acc) for (int64_t j = 0; j < len; j++) d[j] += s[j];
        else memcpy(d, s, (size_t)len * sizeof(float));
    }
}

static void concat_backward(secap_ctx *c, secap_node *n)
{
    int dim = (int)n->i[0];
    secap_tensor *out = n->out;
    int64_t outer = op_prod(out, 0, dim), inner = op_prod(out, dim + 1, out->ndim), off = 0;
    for (int k = 0; k < n->nin; k++) {
        secap_tensor *x = n->in[k];
        int64_t len = x->shape[dim] * inner;
        float *dx = secap_grad(c, x);
        if (dx) copy_rows(dx, len, out->grad + off, out->shape[dim] * inner, outer, len, 1);
        off += len;
    }
}

secap_tensor *secap_concat(secap_ctx *c, secap_tensor *const *xs, int n, int dim)
{
    const char *op = "concat";
    if (n <= 0) secap_fatal("concat: no inputs");
    op_check_f32(xs[0], op, "input 0");
    int d = op_dim(op, xs[0], dim);
    int64_t shape[SECAP_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[d] = 0;
    for (int k = 0; k < n; k++) {
        op_check_f32(xs[k], op, "input");
        if (xs[k]->ndim != xs[0]->ndim) op_shape_error(op, xs[0], xs[k], "inputs need the same number of dims");
        for (int e = 0; e < xs[0]->ndim; e++)
            if (e != d && xs[k]->shape[e] != xs[0]->shape[e])
                op_shape_error(op, xs[0], xs[k], "inputs must match in every dim but the concat dim");
        shape[d] += xs[k]->shape[d];
    }
    secap_tensor *out = secap_op_out(c, op, xs[0]->ndim, shape, 0);
    int64_t outer = op_prod(out, 0, d), inner = op_prod(out, d + 1, out->ndim), off = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = xs[k]->shape[d] * inner;
        copy_rows(secap_f32(out) + off, shape[d] * inner, secap_f32(xs[k]), len, outer, len, 0);
        off += len;
    }
    if (secap_needs_grad(c, xs, n)) secap_record(c, op, concat_backward, out, xs, n)->i[0] = d;
    return out;
}

static void slice_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *dx = secap_grad(c, x);
    if (!dx) return;
    int dim = (int)n->i[0];
    int64_t start = n->i[1], outer = op_prod(x, 0, dim), inner = op_prod(x, dim + 1, x->ndim);
    int64_t len = n->out->shape[dim] * inner;
    copy_rows(dx + start * inner, x->shape[dim] * inner, n->out->grad, len, outer, len, 1);
}

secap_tensor *secap_slice(secap_ctx *c, secap_tensor *x, int dim, int64_t start, int64_t len)
{
    const char *op = "slice";
    op_check_f32(x, op, "x");
    int d = op_dim(op, x, dim);
    if (start < 0 || len < 0 || start + len > x->shape[d]) {
        char s[96];
        secap_fatal("slice: [%lld, %lld) outside dim %d of %s", (long long)start, (long long)(start + len), d,
                    secap_shape_str(x, s, sizeof s));
    }
    int64_t shape[SECAP_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = len;
    secap_tensor *out = secap_op_out(c, op, x->ndim, shape, 0);
    int64_t outer = op_prod(x, 0, d), inner = op_prod(x, d + 1, x->ndim);
    copy_rows(secap_f32(out), len * inner, secap_f32(x) + start * inner, x->shape[d] * inner, outer, len * inner, 0);
    if (secap_needs_grad(c, &x, 1)) {
        secap_node *n = secap_record(c, op, slice_backward, out, &x, 1);
        n->i[0] = d; n->i[1] = start;
    }
    return out;
}

void secap_split(secap_ctx *c, secap_tensor *x, int dim, const int64_t *sizes, int n, secap_tensor **outs)
{
    secap_check_live(x, "split");
    int d = op_dim("split", x, dim);
    int64_t total = 0;
    for (int k = 0; k < n; k++) total += sizes[k];
    if (total != x->shape[d])
        secap_fatal("split: sizes add up to %lld but dim %d has %lld", (long long)total, d, (long long)x->shape[d]);
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        outs[k] = secap_slice(c, x, d, off, sizes[k]);
        off += sizes[k];
    }
}
