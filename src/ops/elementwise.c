/* Broadcasting binary ops and pointwise unary ops. */
#include "ops_internal.h"

/* EXPR for i in [0, N) (N a local of the caller), one loop per op kind so
 * each one vectorises. */
#define PW_LOOP(EXPR)                                           \
    do {                                                        \
        _Pragma("omp parallel for if (N > OP_PAR_MIN)")         \
        for (int64_t i = 0; i < N; i++) EXPR;                   \
    } while (0)

/* ---- broadcasting ------------------------------------------------------- */

/* Shapes padded on the left to 4 dims, so every loop below is 4 deep. */
static void pad4(const secap_tensor *t, int64_t s[4])
{
    int off = 4 - t->ndim;
    for (int d = 0; d < 4; d++) s[d] = d < off ? 1 : t->shape[d - off];
}

static void strides4(const int64_t s[4], const int64_t os[4], int64_t st[4])
{
    int64_t acc = 1;
    for (int d = 3; d >= 0; d--) {
        st[d] = s[d] == 1 && os[d] != 1 ? 0 : acc;
        acc *= s[d];
    }
}

/* dst (shape ds) += src (shape os) summed over the dims where dst is 1. */
static void reduce_add(float *dst, const int64_t ds[4], const float *src, const int64_t os[4])
{
    int64_t dn = ds[0] * ds[1] * ds[2] * ds[3];
    int64_t ost[4] = {os[1] * os[2] * os[3], os[2] * os[3], os[3], 1};
    int64_t r[4];
    for (int d = 0; d < 4; d++) r[d] = ds[d] == os[d] ? 1 : os[d];
#pragma omp parallel for if (dn > 64)
    for (int64_t j = 0; j < dn; j++) {
        int64_t j3 = j % ds[3], j2 = j / ds[3] % ds[2], j1 = j / (ds[3] * ds[2]) % ds[1],
                j0 = j / (ds[3] * ds[2] * ds[1]);
        double s = 0.0;
        for (int64_t k0 = 0; k0 < r[0]; k0++)
            for (int64_t k1 = 0; k1 < r[1]; k1++)
                for (int64_t k2 = 0; k2 < r[2]; k2++)
                    for (int64_t k3 = 0; k3 < r[3]; k3++)
                        s += src[(r[0] > 1 ? k0 : j0) * ost[0] + (r[1] > 1 ? k1 : j1) * ost[1] +
                                 (r[2] > 1 ? k2 : j2) * ost[2] + (r[3] > 1 ? k3 : j3)];
        dst[j] += (float)s;
    }
}

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };
static const char *bin_name[] = {"add", "sub", "mul", "div"};

static inline float bin_apply(int k, float a, float b)
{
    switch (k) {
    case BIN_ADD: return a + b;
    case BIN_SUB: return a - b;
    case BIN_MUL: return a * b;
    default: return a / b;
    }
}

/* Visits every output element with the matching a and b offsets. */
#define BCAST_LOOP(os, sa, sb, BODY)                                                   \
    _Pragma("omp parallel for collapse(3) if (os[0] * os[1] * os[2] * os[3] > OP_PAR_MIN)") \
    for (int64_t i0 = 0; i0 < os[0]; i0++)                                             \
        for (int64_t i1 = 0; i1 < os[1]; i1++)                                         \
            for (int64_t i2 = 0; i2 < os[2]; i2++)                                     \
                for (int64_t i3 = 0; i3 < os[3]; i3++) {                               \
                    int64_t o = ((i0 * os[1] + i1) * os[2] + i2) * os[3] + i3;         \
                    int64_t ia = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3];    \
                    int64_t ib = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3];    \
                    BODY;                                                              \
                }

/* d(a op b)/da and /db times g, for the elementwise op k. */
static void binary_backward(secap_ctx *c, secap_node *n)
{
    int k = (int)n->i[0];
    secap_tensor *a = n->in[0], *b = n->in[1], *out = n->out;
    int64_t as[4], bs[4], os[4], sa[4], sb[4];
    pad4(a, as); pad4(b, bs); pad4(out, os);
    strides4(as, os, sa); strides4(bs, os, sb);
    const float *g = out->grad, *A = secap_f32(a), *B = secap_f32(b);
    float *ga = secap_grad(c, a), *gb = secap_grad(c, b);
    int64_t on = out->n;
    for (int side = 0; side < 2; side++) {
        float *gd = side ? gb : ga;
        if (!gd) continue;
        int full = op_same_shape(side ? b : a, out);
        float *t = full ? gd : secap_arena_alloc(c->step, (size_t)on * sizeof(float), 0, bin_name[k]);
        BCAST_LOOP(os, sa, sb, {
            float v;
            if (k == BIN_ADD) v = g[o];
            else if (k == BIN_SUB) v = side ? -g[o] : g[o];
            else if (k == BIN_MUL) v = g[o] * (side ? A[ia] : B[ib]);
            else v = side ? -g[o] * A[ia] / (B[ib] * B[ib]) : g[o] / B[ib];
            if (full) t[o] += v; else t[o] = v;
        });
        if (!full) reduce_add(gd, side ? bs : as, t, os);
    }
}

static secap_tensor *binary(secap_ctx *c, int k, secap_tensor *a, secap_tensor *b)
{
    const char *op = bin_name[k];
    op_check_f32(a, op, "a");
    op_check_f32(b, op, "b");
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t as[4], bs[4], os[4], sa[4], sb[4];
    pad4(a, as); pad4(b, bs);
    for (int d = 0; d < 4; d++) {
        if (as[d] != bs[d] && as[d] != 1 && bs[d] != 1)
            op_shape_error(op, a, b, "dims must match or be 1 to broadcast (aligned from the right)");
        os[d] = as[d] == 1 ? bs[d] : as[d];
    }
    strides4(as, os, sa); strides4(bs, os, sb);
    secap_tensor *out = secap_op_out(c, op, nd, os + (4 - nd), 0);
    float *O = secap_f32(out);
    const float *A = secap_f32(a), *B = secap_f32(b);
    if (op_same_shape(a, b)) { /* no broadcasting: one flat loop per kind */
        int64_t N = out->n;
        switch (k) {
        case BIN_ADD: PW_LOOP(O[i] = A[i] + B[i]); break;
        case BIN_SUB: PW_LOOP(O[i] = A[i] - B[i]); break;
        case BIN_MUL: PW_LOOP(O[i] = A[i] * B[i]); break;
        default: PW_LOOP(O[i] = A[i] / B[i]); break;
        }
    } else {
        BCAST_LOOP(os, sa, sb, O[o] = bin_apply(k, A[ia], B[ib]));
    }
    secap_tensor *in[2] = {a, b};
    if (secap_needs_grad(c, in, 2)) secap_record(c, op, binary_backward, out, in, 2)->i[0] = k;
    return out;
}

secap_tensor *secap_add(secap_ctx *c, secap_tensor *a, secap_tensor *b) { return binary(c, BIN_ADD, a, b); }
secap_tensor *secap_sub(secap_ctx *c, secap_tensor *a, secap_tensor *b) { return binary(c, BIN_SUB, a, b); }
secap_tensor *secap_mul(secap_ctx *c, secap_tensor *a, secap_tensor *b) { return binary(c, BIN_MUL, a, b); }
secap_tensor *secap_div(secap_ctx *c, secap_tensor *a, secap_tensor *b) { return binary(c, BIN_DIV, a, b); }

/* ---- pointwise ---------------------------------------------------------- */

enum { UN_GELU, UN_SILU, UN_RELU, UN_TANH, UN_EXP, UN_LOG, UN_SCALE, UN_CLAMP, UN_DROPOUT };
static const char *un_name[] = {"gelu", "silu", "relu", "tanh", "exp", "log", "scale", "clamp", "dropout"};

/* erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7) on top of
 * op_expf, so GELU loops vectorise; libm's erff is a scalar call. */
static inline float erf_f(float x)
{
    float ax = fabsf(x), t = 1.0f / (1.0f + 0.3275911f * ax);
    float poly = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    return copysignf(1.0f - poly * op_expf(-ax * ax), x);
}
static inline float gelu_f(float x) { return 0.5f * x * (1.0f + erf_f(x * (float)M_SQRT1_2)); }
static inline float gelu_df(float x)
{
    return 0.5f * (1.0f + erf_f(x * (float)M_SQRT1_2)) + x * op_expf(-0.5f * x * x) * 0.3989422804014327f;
}
static inline float sigm(float x) { return 1.0f / (1.0f + op_expf(-x)); }

static void unary_backward(secap_ctx *c, secap_node *n)
{
    int k = (int)n->i[0];
    secap_tensor *x = n->in[0];
    float *gx = secap_grad(c, x);
    if (!gx) return;
    const float *X = secap_f32(x), *Y = secap_f32(n->out), *g = n->out->grad;
    const uint8_t *mask = n->aux;
    float p0 = n->f[0], p1 = n->f[1];
    int64_t N = x->n;
    switch (k) {
    case UN_GELU: PW_LOOP(gx[i] += g[i] * gelu_df(X[i])); break;
    case UN_SILU: PW_LOOP({ float s = sigm(X[i]); gx[i] += g[i] * s * (1.0f + X[i] * (1.0f - s)); }); break;
    case UN_RELU: PW_LOOP(gx[i] += X[i] > 0.0f ? g[i] : 0.0f); break;
    case UN_TANH: PW_LOOP(gx[i] += g[i] * (1.0f - Y[i] * Y[i])); break;
    case UN_EXP: PW_LOOP(gx[i] += g[i] * Y[i]); break;
    case UN_LOG: PW_LOOP(gx[i] += g[i] / X[i]); break;
    case UN_SCALE: PW_LOOP(gx[i] += g[i] * p0); break;
    case UN_CLAMP: PW_LOOP(gx[i] += X[i] >= p0 && X[i] <= p1 ? g[i] : 0.0f); break;
    default: PW_LOOP(gx[i] += mask[i] ? g[i] * p0 : 0.0f); break; /* dropout: p0 = 1/(1-p) */
    }
}

static secap_tensor *unary(secap_ctx *c, int k, secap_tensor *x, float p0, float p1)
{
    const char *op = un_name[k];
    op_check_f32(x, op, "x");
    secap_tensor *out = secap_op_out(c, op, x->ndim, x->shape, 0);
    const float *X = secap_f32(x);
    float *Y = secap_f32(out);
    uint8_t *mask = NULL;
    int64_t N = x->n;
    if (k == UN_DROPOUT) { /* draw the mask serially so it depends only on the seed */
        mask = secap_arena_alloc(c->step, (size_t)N, 0, op);
        for (int64_t i = 0; i < N; i++) mask[i] = secap_rng_uniform(&c->rng) >= p1;
    }
    switch (k) {
    case UN_GELU: PW_LOOP(Y[i] = gelu_f(X[i])); break;
    case UN_SILU: PW_LOOP(Y[i] = X[i] * sigm(X[i])); break;
    case UN_RELU: PW_LOOP(Y[i] = X[i] > 0.0f ? X[i] : 0.0f); break;
    case UN_TANH: PW_LOOP(Y[i] = tanhf(X[i])); break;
    case UN_EXP: PW_LOOP(Y[i] = expf(X[i])); break;
    case UN_LOG: PW_LOOP(Y[i] = logf(X[i])); break;
    case UN_SCALE: PW_LOOP(Y[i] = X[i] * p0 + p1); break;
    case UN_CLAMP: PW_LOOP(Y[i] = X[i] < p0 ? p0 : X[i] > p1 ? p1 : X[i]); break;
    default: PW_LOOP(Y[i] = mask[i] ? X[i] * p0 : 0.0f); break;
    }
    if (secap_needs_grad(c, &x, 1)) {
        secap_node *n = secap_record(c, op, unary_backward, out, &x, 1);
        n->i[0] = k; n->f[0] = p0; n->f[1] = p1; n->aux = mask;
    }
    return out;
}

secap_tensor *secap_gelu(secap_ctx *c, secap_tensor *x) { return unary(c, UN_GELU, x, 0, 0); }
secap_tensor *secap_silu(secap_ctx *c, secap_tensor *x) { return unary(c, UN_SILU, x, 0, 0); }
secap_tensor *secap_relu(secap_ctx *c, secap_tensor *x) { return unary(c, UN_RELU, x, 0, 0); }
secap_tensor *secap_tanh(secap_ctx *c, secap_tensor *x) { return unary(c, UN_TANH, x, 0, 0); }
secap_tensor *secap_exp(secap_ctx *c, secap_tensor *x) { return unary(c, UN_EXP, x, 0, 0); }
secap_tensor *secap_log(secap_ctx *c, secap_tensor *x) { return unary(c, UN_LOG, x, 0, 0); }
secap_tensor *secap_scale(secap_ctx *c, secap_tensor *x, float s, float t) { return unary(c, UN_SCALE, x, s, t); }

secap_tensor *secap_clamp(secap_ctx *c, secap_tensor *x, float lo, float hi)
{
    if (!(lo <= hi)) secap_fatal("clamp: lower bound %g above upper bound %g", lo, hi);
    return unary(c, UN_CLAMP, x, lo, hi);
}

secap_tensor *secap_dropout(secap_ctx *c, secap_tensor *x, float p)
{
    if (!(p >= 0.0f && p < 1.0f)) secap_fatal("dropout: probability %g outside [0, 1)", p);
    if (!c->training || p == 0.0f) return x;
    return unary(c, UN_DROPOUT, x, 1.0f / (1.0f - p), p);
}
