/* conv1d by im2col + sgemm, per batch item and group.
 *
 * x [B, Cin, T], w [Cout, Cin/G, K] -> y [B, Cout, To], To = (T + 2p - K)/s + 1.
 * For group g the unfolded input col [Cin/G * K, To] holds
 *   col[ci*K + k, t] = x[b, g*Cin/G + ci, t*s + k - p]   (0 outside [0, T)),
 * so y_g = W_g col with W_g [Cout/G, Cin/G*K] the group's rows of w.
 * Backward: dW_g += dy_g col^T and dx += fold(W_g^T dy_g); col is rebuilt
 * rather than stored. */
#include "ops_internal.h"

typedef struct { int64_t B, Cin, T, Cout, K, To, G, cin, cout; int s, p; } conv_dims;

static void im2col(const conv_dims *d, const float *x, float *col)
{
#pragma omp parallel for if (d->cin * d->K * d->To > OP_PAR_MIN)
    for (int64_t r = 0; r < d->cin * d->K; r++) {
        int64_t ci = r / d->K, k = r % d->K;
        const float *xr = x + ci * d->T;
        float *cr = col + r * d->To;
        for (int64_t t = 0; t < d->To; t++) {
            int64_t i = t * d->s + k - d->p;
            cr[t] = i >= 0 && i < d->T ? xr[i] : 0.0f;
        }
    }
}

/* dx += fold(dcol); rows of one channel are summed serially to avoid races. */
static void col2im_add(const conv_dims *d, const float *dcol, float *dx)
{
#pragma omp parallel for if (d->cin * d->K * d->To > OP_PAR_MIN)
    for (int64_t ci = 0; ci < d->cin; ci++)
        for (int64_t k = 0; k < d->K; k++) {
            const float *cr = dcol + (ci * d->K + k) * d->To;
            float *xr = dx + ci * d->T;
            for (int64_t t = 0; t < d->To; t++) {
                int64_t i = t * d->s + k - d->p;
                if (i >= 0 && i < d->T) xr[i] += cr[t];
            }
        }
}

static void conv1d_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0], *w = n->in[1], *bias = n->nin > 2 ? n->in[2] : NULL;
    const conv_dims *d = n->aux;
    const float *X = secap_f32(x), *W = secap_f32(w), *dy = n->out->grad;
    float *dx = secap_grad(c, x), *dw = secap_grad(c, w), *db = bias ? secap_grad(c, bias) : NULL;
    int64_t rows = d->cin * d->K;
    size_t mark = secap_arena_mark(c->step);
    float *col = op_scratch(c, (size_t)(rows * d->To), "conv1d backward");
    float *dcol = dx ? op_scratch(c, (size_t)(rows * d->To), "conv1d backward") : NULL;
    for (int64_t b = 0; b < d->B; b++)
        for (int64_t g = 0; g < d->G; g++) {
            const float *xg = X + (b * d->Cin + g * d->cin) * d->T;
            const float *dyg = dy + (b * d->Cout + g * d->cout) * d->To;
            const float *Wg = W + g * d->cout * rows;
            if (dw) {
                im2col(d, xg, col);
                op_gemm(0, 1, d->cout, rows, d->To, 1.0f, dyg, d->To, col, d->To, 1.0f, dw + g * d->cout * rows, rows);
            }
            if (dx) {
                op_gemm(1, 0, rows, d->To, d->cout, 1.0f, Wg, rows, dyg, d->To, 0.0f, dcol, d->To);
                col2im_add(d, dcol, dx + (b * d->Cin + g * d->cin) * d->T);
            }
        }
    secap_arena_rewind(c->step, mark);
    if (db) {
#pragma omp parallel for if (n->out->n > OP_PAR_MIN)
        for (int64_t o = 0; o < d->Cout; o++) {
            double s = 0.0;
            for (int64_t b = 0; b < d->B; b++)
                for (int64_t t = 0; t < d->To; t++) s += dy[(b * d->Cout + o) * d->To + t];
            db[o] += (float)s;
        }
    }
}

secap_tensor *secap_conv1d(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *bias,
                           int stride, int pad, int groups)
{
    const char *op = "conv1d";
    op_check_f32(x, op, "x");
    op_check_f32(w, op, "weight");
    if (x->ndim != 3 || w->ndim != 3) op_shape_error(op, x, w, "x [B, Cin, T] and weight [Cout, Cin/groups, K]");
    if (stride <= 0 || pad < 0 || groups <= 0)
        secap_fatal("conv1d: stride %d, padding %d, groups %d (hint: stride and groups >= 1, padding >= 0)",
                    stride, pad, groups);
    conv_dims d = {.B = x->shape[0], .Cin = x->shape[1], .T = x->shape[2], .Cout = w->shape[0],
                   .K = w->shape[2], .G = groups, .s = stride, .p = pad};
    if (d.Cin % groups || d.Cout % groups || w->shape[1] != d.Cin / groups)
        op_shape_error(op, x, w, "weight must be [Cout, Cin/groups, K] with Cin and Cout divisible by groups");
    if (bias) {
        op_check_f32(bias, op, "bias");
        if (bias->n != d.Cout) op_shape_error(op, w, bias, "bias must be [Cout]");
    }
    d.cin = d.Cin / groups;
    d.cout = d.Cout / groups;
    d.To = (d.T + 2 * pad - d.K) / stride + 1;
    if (d.T + 2 * pad < d.K) {
        char s[96];
        secap_fatal("conv1d: input %s is shorter than the kernel (%lld) (hint: the audio is too short for "
                    "this encoder; drop or pad such items)", secap_shape_str(x, s, sizeof s), (long long)d.K);
    }
    int64_t shape[3] = {d.B, d.Cout, d.To}, rows = d.cin * d.K;
    secap_tensor *out = secap_op_out(c, op, 3, shape, 0);
    size_t mark = secap_arena_mark(c->step);
    float *col = op_scratch(c, (size_t)(rows * d.To), op);
    const float *X = secap_f32(x), *W = secap_f32(w), *Bv = bias ? secap_f32(bias) : NULL;
    float *Y = secap_f32(out);
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t g = 0; g < d.G; g++) {
            float *yg = Y + (b * d.Cout + g * d.cout) * d.To;
            if (Bv)
                for (int64_t o = 0; o < d.cout; o++)
                    for (int64_t t = 0; t < d.To; t++) yg[o * d.To + t] = Bv[g * d.cout + o];
            im2col(&d, X + (b * d.Cin + g * d.cin) * d.T, col);
            op_gemm(0, 0, d.cout, d.To, rows, 1.0f, W + g * d.cout * rows, rows, col, d.To, Bv ? 1.0f : 0.0f, yg, d.To);
        }
    secap_arena_rewind(c->step, mark);
    secap_tensor *in[3] = {x, w, bias};
    int nin = bias ? 3 : 2;
    if (secap_needs_grad(c, in, nin)) {
        secap_node *n = secap_record(c, op, conv1d_backward, out, in, nin);
        conv_dims *saved = secap_arena_alloc(c->step, sizeof *saved, 0, op);
        *saved = d;
        n->aux = saved;
    }
    return out;
}

/* ---- time-major conv1d ----------------------------------------------------
 * With x [T, Cin] row-major, taps j*s .. j*s+s-1 of output t read the rows
 * s(t+j) .. s(t+j)+s-1, which are one contiguous run of s*Cin floats, and
 * consecutive t are s*Cin apart.  So with A_j the view of x at offset
 * j*s*Cin (To rows, leading dimension s*Cin) and W_j [Cout, n_j*Cin] the
 * weights of chunk j's n_j taps, repacked tap-major:
 *   y = sum_j A_j W_j^T,   dA_j += dy W_j,   dW_j += dy^T A_j.
 * Chunks overlap in x, so their gemms run one after another. */

typedef struct { int64_t B, T, Cin, Cout, K, To, s, chunks, ld; } tm_dims;

/* taps in chunk j */
static int64_t tm_taps(const tm_dims *d, int64_t j)
{
    int64_t left = d->K - j * d->s;
    return left < d->s ? left : d->s;
}

/* w [Cout, Cin, K] -> wp [chunks, Cout, s*Cin] with wp[j][co][(k - j s) Cin + ci] = w[co][ci][k]
 * (and the reverse, accumulating, for the gradient). */
static void tm_pack(const tm_dims *d, const float *w, float *wp, int unpack_add)
{
#pragma omp parallel for if (d->Cout * d->Cin * d->K > OP_PAR_MIN)
    for (int64_t co = 0; co < d->Cout; co++)
        for (int64_t k = 0; k < d->K; k++) {
            int64_t j = k / d->s;
            float *packed = wp + (j * d->Cout + co) * d->ld + (k - j * d->s) * d->Cin; /* [Cin], contiguous */
            float *orig = (float *)w + co * d->Cin * d->K + k;                         /* [Cin], stride K */
            if (unpack_add)
                for (int64_t ci = 0; ci < d->Cin; ci++) orig[ci * d->K] += packed[ci];
            else
                for (int64_t ci = 0; ci < d->Cin; ci++) packed[ci] = orig[ci * d->K];
        }
}

static void conv1d_tm_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0], *w = n->in[1], *bias = n->nin > 2 ? n->in[2] : NULL;
    const tm_dims *d = n->aux;
    const float *X = secap_f32(x), *dy = n->out->grad, *wp = secap_f32(n->saved[0]);
    float *dx = secap_grad(c, x), *dw = secap_grad(c, w), *db = bias ? secap_grad(c, bias) : NULL;
    float *dwp = dw ? secap_arena_alloc(c->step, (size_t)(d->chunks * d->Cout * d->ld) * sizeof(float), 1, "conv1d_tm dw")
                    : NULL;
    for (int64_t b = 0; b < d->B; b++) {
        const float *xb = X + b * d->T * d->Cin, *dyb = dy + b * d->To * d->Cout;
        for (int64_t j = 0; j < d->chunks; j++) {
            int64_t kin = tm_taps(d, j) * d->Cin;
            if (dx) op_gemm(0, 0, d->To, kin, d->Cout, 1.0f, dyb, d->Cout, wp + j * d->Cout * d->ld, d->ld, 1.0f,
                            dx + b * d->T * d->Cin + j * d->ld, d->ld);
            if (dwp) op_gemm(1, 0, d->Cout, kin, d->To, 1.0f, dyb, d->Cout, xb + j * d->ld, d->ld, 1.0f,
                             dwp + j * d->Cout * d->ld, d->ld);
        }
    }
    if (dwp) tm_pack(d, dw, dwp, 1);
    if (db) op_colsum_add(db, dy, d->B * d->To, d->Cout);
}

secap_tensor *secap_conv1d_tm(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *bias, int stride)
{
    const char *op = "conv1d_tm";
    op_check_f32(x, op, "x");
    op_check_f32(w, op, "weight");
    if (x->ndim != 3 || w->ndim != 3 || w->shape[1] != x->shape[2])
        op_shape_error(op, x, w, "x [B, T, Cin] (time-major) and weight [Cout, Cin, K]");
    if (stride <= 0) secap_fatal("conv1d_tm: stride %d (hint: stride >= 1)", stride);
    tm_dims d = {.B = x->shape[0], .T = x->shape[1], .Cin = x->shape[2], .Cout = w->shape[0], .K = w->shape[2],
                 .s = stride};
    if (bias) {
        op_check_f32(bias, op, "bias");
        if (bias->n != d.Cout) op_shape_error(op, w, bias, "bias must be [Cout]");
    }
    if (d.T < d.K) {
        char sx[96];
        secap_fatal("conv1d_tm: input %s is shorter than the kernel (%lld) (hint: the audio is too short for "
                    "this encoder; drop or pad such items)", secap_shape_str(x, sx, sizeof sx), (long long)d.K);
    }
    d.To = (d.T - d.K) / d.s + 1;
    d.chunks = (d.K + d.s - 1) / d.s;
    d.ld = d.s * d.Cin;
    secap_tensor *wp = secap_op_out(c, op, 1, (int64_t[]){d.chunks * d.Cout * d.ld}, 0);
    tm_pack(&d, secap_f32(w), secap_f32(wp), 0);
    int64_t shape[3] = {d.B, d.To, d.Cout};
    secap_tensor *out = secap_op_out(c, op, 3, shape, 0);
    float *Y = secap_f32(out);
    const float *X = secap_f32(x), *Wp = secap_f32(wp);
    if (bias) op_fill_rows(Y, secap_f32(bias), d.B * d.To, d.Cout);
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t j = 0; j < d.chunks; j++)
            op_gemm(0, 1, d.To, d.Cout, tm_taps(&d, j) * d.Cin, 1.0f, X + b * d.T * d.Cin + j * d.ld, d.ld,
                    Wp + j * d.Cout * d.ld, d.ld, bias || j ? 1.0f : 0.0f, Y + b * d.To * d.Cout, d.Cout);
    secap_tensor *in[3] = {x, w, bias};
    int nin = bias ? 3 : 2;
    if (secap_needs_grad(c, in, nin)) {
        secap_node *n = secap_record(c, op, conv1d_tm_backward, out, in, nin);
        tm_dims *saved = secap_arena_alloc(c->step, sizeof *saved, 0, op);
        *saved = d;
        n->aux = saved;
        n->saved[0] = wp;
    }
    return out;
}
