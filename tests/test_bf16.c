/* Products with a frozen bf16 weight (src/ops/bf16_gemm.c), both kernels.
 *
 * Each kernel is checked against a double-precision product over the
 * widened bf16 weights, for many shapes (M = 1, 2, 7, 82; odd N and K, K
 * not a multiple of 32; shapes that cross the kernels' K and N chunks), with
 * and without bias, and for the input gradient accumulating into a dx that
 * already holds values.  The error of each output, divided by
 *   S = |bias or dx0| + sum_k |x_k| |W_nk|,
 * must stay within the bound derived in bf16_gemm.c:
 *   portable:   gamma(K + 1)                 (sgemm in float)
 *   avx512bf16: 2^-16 + gamma(2K + 8)        (x split in two bf16 halves)
 * with gamma(n) = n u / (1 - n u), u = 2^-24.  Rounding x to bf16 alone
 * (one half only) breaks the AVX bound by a factor of 10 or more on these
 * shapes.  Then linear through the autograd, forward and backward, with a
 * bf16 weight against the same weight as float32.
 *
 * On a CPU without AVX512-BF16 the AVX tests print so and are SKIPPED (not
 * counted as passed). */
#include "testutil.h"
#include "secap/autograd.h"
#include "secap/ops.h"
#include "../src/ops/ops_internal.h"

#include <sys/wait.h>

static double gamma_n(double n)
{
    double u = 0x1p-24;
    return n * u / (1.0 - n * u);
}

static double bound(secap_bf16_kernel k, int64_t len)
{
    return k == SECAP_BF16_KERNEL_AVX512BF16 ? 0x1p-16 + gamma_n(2.0 * (double)len + 8) : gamma_n((double)len + 1);
}

typedef struct { int64_t M, N, K; } shape3;

/* M x N x K: odd sizes, K % 32 != 0, K past one forward K chunk (1024),
 * N past one gradient row chunk (512), gradient column tails of 1..63. */
static const shape3 g_shapes[] = {
    {1, 1, 1},      {1, 7, 31},    {1, 9, 33},    {1, 17, 4097 % 600}, {1, 1100, 70},
    {2, 3, 5},      {2, 4, 32},    {2, 33, 65},   {2, 129, 1},         {7, 13, 97},
    {7, 64, 64},    {7, 65, 130},  {7, 5, 1100},  {82, 37, 97},        {82, 130, 255},
    {82, 1037, 70}, {82, 40, 2100}, {5, 301, 257}, {82, 8, 3},
};

static void fill(float *v, int64_t n, secap_rng *r, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * secap_rng_uniform(r);
}

/* A bf16 weight [N, K] with values of varied magnitude (normal * 10^[-2, 1]). */
static void fill_w(uint16_t *w, int64_t n, secap_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        w[i] = secap_f32_to_bf16(secap_rng_normal(r) * powf(10.0f, 3.0f * secap_rng_uniform(r) - 2.0f));
}

/* Worst err / S of got against the double reference, failing past tol. */
typedef struct { double worst; } errstat;

static void check_one(const char *what, const shape3 *s, int64_t i, float got, double ref, double S, double tol,
                      errstat *st)
{
    double e = fabs((double)got - ref) / (S > 1e-30 ? S : 1e-30);
    if (e > st->worst) st->worst = e;
    if (!(e <= tol))
        fail_msg("%s M=%lld N=%lld K=%lld: element %lld is %.9g, reference %.9g (err/S %.3g > bound %.3g; hint: "
                 "see the error bounds in src/ops/bf16_gemm.c)",
                 what, (long long)s->M, (long long)s->N, (long long)s->K, (long long)i, got, ref, e, tol);
}

/* Both directions of one kernel over every shape; returns worst err/S. */
static void check_kernel(secap_bf16_kernel k, double *worst_fwd, double *worst_bwd)
{
    secap_bf16_kernel prev = secap_bf16_kernel_set(k);
    assert_int_equal(secap_bf16_kernel_get(), k);
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 7);
    errstat f = {0}, b = {0};
    char what[96];
    for (size_t si = 0; si < sizeof g_shapes / sizeof g_shapes[0]; si++) {
        const shape3 *s = &g_shapes[si];
        int64_t M = s->M, N = s->N, K = s->K;
        float *x = secap_xmalloc(sizeof(float) * (size_t)(M * K), "x"), *bias = secap_xmalloc(sizeof(float) * (size_t)N, "bias");
        float *y = secap_xmalloc(sizeof(float) * (size_t)(M * N), "y"), *dy = secap_xmalloc(sizeof(float) * (size_t)(M * N), "dy");
        float *dx = secap_xmalloc(sizeof(float) * (size_t)(M * K), "dx"), *dx0 = secap_xmalloc(sizeof(float) * (size_t)(M * K), "dx0");
        uint16_t *w = secap_xmalloc(sizeof(uint16_t) * (size_t)(N * K), "w");
        fill(x, M * K, &r, -2, 2);
        fill(bias, N, &r, -1, 1);
        fill(dy, M * N, &r, -1, 1);
        fill(dx0, M * K, &r, -1, 1);
        fill_w(w, N * K, &r);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            for (int64_t i = 0; i < M * N; i++) y[i] = NAN; /* the kernel must overwrite y */
            op_bf16_linear(c, x, w, with_bias ? bias : NULL, y, M, N, K);
            snprintf(what, sizeof what, "%s forward%s", secap_bf16_kernel_name(k), with_bias ? " +bias" : "");
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) {
                    double ref = with_bias ? bias[n] : 0.0, S = fabs(ref);
                    for (int64_t q = 0; q < K; q++) {
                        double p = (double)x[m * K + q] * secap_bf16_to_f32(w[n * K + q]);
                        ref += p;
                        S += fabs(p);
                    }
                    check_one(what, s, m * N + n, y[m * N + n], ref, S, bound(k, K), &f);
                }
        }
        memcpy(dx, dx0, sizeof(float) * (size_t)(M * K));
        op_bf16_linear_dx(c, dy, w, dx, M, N, K);
        snprintf(what, sizeof what, "%s input gradient (dx += dy W)", secap_bf16_kernel_name(k));
        for (int64_t m = 0; m < M; m++)
            for (int64_t q = 0; q < K; q++) {
                double ref = dx0[m * K + q], S = fabs(ref);
                for (int64_t n = 0; n < N; n++) {
                    double p = (double)dy[m * N + n] * secap_bf16_to_f32(w[n * K + q]);
                    ref += p;
                    S += fabs(p);
                }
                check_one(what, s, m * K + q, dx[m * K + q], ref, S, bound(k, N), &b);
            }
        if (secap_arena_used(c->step) != 0)
            fail_msg("%s: %zu bytes of step scratch left after the kernels (hint: rewind to the mark)",
                     secap_bf16_kernel_name(k), secap_arena_used(c->step));
        free(x); free(bias); free(y); free(dy); free(dx); free(dx0); free(w);
    }
    print_message("  %-10s forward        worst err/S %.2e over %zu shapes\n", secap_bf16_kernel_name(k), f.worst,
                  sizeof g_shapes / sizeof g_shapes[0]);
    print_message("  %-10s input gradient worst err/S %.2e\n", secap_bf16_kernel_name(k), b.worst);
    *worst_fwd = f.worst;
    *worst_bwd = b.worst;
    secap_ctx_free(c);
    secap_bf16_kernel_set(prev);
}

static int avx_or_skip(void)
{
    if (secap_bf16_kernel_supported(SECAP_BF16_KERNEL_AVX512BF16)) return 1;
    print_message("  AVX512-BF16: this CPU lacks avx512_bf16 -- the avx512bf16 kernel is NOT tested here "
                  "(SKIPPED, not passed); only the portable kernel ran\n");
    return 0;
}

/* $SECAP_BF16_KERNEL is read at the first use, so each case runs in a child. */
static int child_kernel(const char *env)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("SECAP_BF16_KERNEL", env, 1);
        exit((int)secap_bf16_kernel_get() + 10); /* a fatal error exits 1 */
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) fail_msg("bf16 kernel: fork for SECAP_BF16_KERNEL=%s failed", env);
    return WEXITSTATUS(st);
}

static void test_env_choice(void **st)
{
    (void)st;
    int avx = secap_bf16_kernel_supported(SECAP_BF16_KERNEL_AVX512BF16);
    assert_int_equal(child_kernel("portable"), 10 + SECAP_BF16_KERNEL_PORTABLE);
    assert_int_equal(child_kernel("auto"), 10 + (avx ? SECAP_BF16_KERNEL_AVX512BF16 : SECAP_BF16_KERNEL_PORTABLE));
    assert_int_equal(child_kernel(""), 10 + (avx ? SECAP_BF16_KERNEL_AVX512BF16 : SECAP_BF16_KERNEL_PORTABLE));
    assert_int_equal(child_kernel("avx512bf16"), avx ? 10 + SECAP_BF16_KERNEL_AVX512BF16 : 1);
    print_message("  (one error line on stderr expected next: an unknown SECAP_BF16_KERNEL)\n");
    assert_int_equal(child_kernel("avx512"), 1);
    if (!avx)
        EXPECT_FATAL(secap_bf16_kernel_set(SECAP_BF16_KERNEL_AVX512BF16), "lacks AVX512-BF16");
    print_message("  this CPU: avx512_bf16 %s; auto picks %s\n", avx ? "present" : "absent",
                  secap_bf16_kernel_name(avx ? SECAP_BF16_KERNEL_AVX512BF16 : SECAP_BF16_KERNEL_PORTABLE));
}

static void test_portable_kernel(void **st)
{
    (void)st;
    double f, b;
    check_kernel(SECAP_BF16_KERNEL_PORTABLE, &f, &b);
}

static void test_avx512bf16_kernel(void **st)
{
    (void)st;
    if (!avx_or_skip()) skip();
    double f, b;
    check_kernel(SECAP_BF16_KERNEL_AVX512BF16, &f, &b);
    /* The split must actually be used: bf16(x) alone gives ~1e-4. */
    if (f > 1e-5 || b > 1e-5)
        fail_msg("avx512bf16: worst err/S %.2e (forward) %.2e (gradient) looks like x rounded to bf16 "
                 "(hint: both halves of the split must enter the product)", f, b);
}

/* y = linear(x, W, bias) with W bf16 against the same W in float32, through
 * the autograd: y, dx and dbias, for one kernel.  loss = sum(y * R). */
static void check_autograd(secap_bf16_kernel k)
{
    secap_bf16_kernel prev = secap_bf16_kernel_set(k);
    const int64_t B = 2, T = 41, Din = 75, Dout = 33; /* 82 rows */
    secap_ctx *c = secap_ctx_new(64u << 20, 256u << 20, 1);
    secap_rng r;
    secap_rng_seed(&r, 11);
    float *X = secap_xmalloc(sizeof(float) * (size_t)(B * T * Din), "X"), *R = secap_xmalloc(sizeof(float) * (size_t)(B * T * Dout), "R");
    fill(X, B * T * Din, &r, -1, 1);
    fill(R, B * T * Dout, &r, -1, 1);
    secap_tensor *wb = secap_param_bf16(c, "w.bf16", SECAP_SHAPE(Dout, Din));
    secap_tensor *wf = secap_param(c, "w.f32", SECAP_SHAPE(Dout, Din), 0);
    fill_w(wb->data, wb->n, &r);
    for (int64_t i = 0; i < wb->n; i++) secap_f32(wf)[i] = secap_bf16_to_f32(((uint16_t *)wb->data)[i]);
    float *Y[2], *DX[2], *DB[2];
    for (int v = 0; v < 2; v++) { /* v = 0: bf16 weight, 1: float32 */
        secap_tensor *b = secap_param(c, v ? "b.f32" : "b.bf16", SECAP_SHAPE(Dout), 1);
        secap_rng br;
        secap_rng_seed(&br, 3);
        fill(secap_f32(b), Dout, &br, -1, 1);
        secap_tensor *x = secap_leaf(c, SECAP_SHAPE(B, T, Din), X);
        secap_tensor *y = secap_linear(c, x, v ? wf : wb, b);
        secap_backward(c, secap_sum_all(c, secap_mul(c, y, secap_from_data(c, SECAP_SHAPE(B, T, Dout), R))));
        if (v == 0 && wb->grad) fail_msg("linear: the frozen bf16 weight received a gradient buffer");
        Y[v] = secap_xmalloc(sizeof(float) * (size_t)y->n, "Y");
        DX[v] = secap_xmalloc(sizeof(float) * (size_t)x->n, "DX");
        DB[v] = secap_xmalloc(sizeof(float) * (size_t)Dout, "DB");
        memcpy(Y[v], secap_f32(y), sizeof(float) * (size_t)y->n);
        memcpy(DX[v], x->grad, sizeof(float) * (size_t)x->n);
        memcpy(DB[v], b->grad, sizeof(float) * (size_t)Dout);
        secap_ctx_reset(c);
    }
    /* Both sides carry rounding errors: allow each its bound. */
    double tol_y = bound(k, Din) + gamma_n((double)Din + 1), tol_dx = bound(k, Dout) + gamma_n((double)Dout + 1);
    double wy = 0, wx = 0, wdb = 0;
    const uint16_t *w = wb->data;
    for (int64_t m = 0; m < B * T; m++) {
        for (int64_t n = 0; n < Dout; n++) {
            double S = 1.0; /* |bias| <= 1 */
            for (int64_t q = 0; q < Din; q++) S += fabs(X[m * Din + q] * secap_bf16_to_f32(w[n * Din + q]));
            double e = fabs((double)Y[0][m * Dout + n] - Y[1][m * Dout + n]) / S;
            wy = e > wy ? e : wy;
            if (e > tol_y)
                fail_msg("linear %s: y[%lld, %lld] bf16 weight %.9g vs float32 weight %.9g (err/S %.3g > %.3g)",
                         secap_bf16_kernel_name(k), (long long)m, (long long)n, Y[0][m * Dout + n], Y[1][m * Dout + n], e, tol_y);
        }
        for (int64_t q = 0; q < Din; q++) {
            double S = 0.0;
            for (int64_t n = 0; n < Dout; n++) S += fabs(R[m * Dout + n] * secap_bf16_to_f32(w[n * Din + q]));
            double e = fabs((double)DX[0][m * Din + q] - DX[1][m * Din + q]) / (S > 1e-30 ? S : 1e-30);
            wx = e > wx ? e : wx;
            if (e > tol_dx)
                fail_msg("linear %s: dx[%lld, %lld] bf16 weight %.9g vs float32 weight %.9g (err/S %.3g > %.3g)",
                         secap_bf16_kernel_name(k), (long long)m, (long long)q, DX[0][m * Din + q], DX[1][m * Din + q], e, tol_dx);
        }
    }
    for (int64_t n = 0; n < Dout; n++) { /* db = column sums of R, the same code for both weights */
        double e = fabs((double)DB[0][n] - DB[1][n]);
        wdb = e > wdb ? e : wdb;
        if (e != 0.0) fail_msg("linear %s: dbias[%lld] %.9g vs %.9g (must be identical)", secap_bf16_kernel_name(k),
                               (long long)n, DB[0][n], DB[1][n]);
    }
    print_message("  linear autograd %-10s y err/S %.2e, dx err/S %.2e, dbias err %.1e\n", secap_bf16_kernel_name(k),
                  wy, wx, wdb);
    for (int v = 0; v < 2; v++) { free(Y[v]); free(DX[v]); free(DB[v]); }
    free(X); free(R);
    secap_ctx_free(c);
    secap_bf16_kernel_set(prev);
}

static void test_linear_autograd_portable(void **st)
{
    (void)st;
    check_autograd(SECAP_BF16_KERNEL_PORTABLE);
}

static void test_linear_autograd_avx512bf16(void **st)
{
    (void)st;
    if (!avx_or_skip()) skip();
    check_autograd(SECAP_BF16_KERNEL_AVX512BF16);
}

int main(void)
{
    secap_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_choice), /* first: the parent has not read the variable yet */
        cmocka_unit_test(test_portable_kernel),
        cmocka_unit_test(test_avx512bf16_kernel),
        cmocka_unit_test(test_linear_autograd_portable),
        cmocka_unit_test(test_linear_autograd_avx512bf16),
    };
    return cmocka_run_group_tests_name("bf16 weight products", tests, NULL, NULL);
}
