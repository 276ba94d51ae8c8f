/* Products with a frozen bf16 weight W [N, K] (PyTorch layout [out, in]),
 * read straight from its bf16 storage, never widened as a whole:
 *
 *   forward          y [M, N]  = x [M, K] W^T (+ bias [N])
 *   input gradient  dx [M, K] += dy [M, N] W
 *
 * (The weight is frozen: it takes no gradient.)  Two kernels, chosen at run
 * time (secap_bf16_kernel_set, $SECAP_BF16_KERNEL; auto = AVX512-BF16 when
 * __builtin_cpu_supports says the CPU has it).  Only the functions marked
 * BF16_TARGET use AVX-512 instructions, so the file builds for any x86-64.
 *
 * AVX512-BF16.  vdpbf16ps adds to lane i of a 16-float accumulator
 *     acc[i] += a[2i] b[2i] + a[2i+1] b[2i+1]       (bf16 a, b; f32 acc).
 *   Precision: the float operand v (x, or dy for the gradient) is split into
 *   two bf16 halves,
 *     hi = bf16(v),  lo = bf16(v - hi),  v = hi + lo + r,  |r| <= 2^-16 |v|
 *   (v - hi is exact, each bf16 keeps 8 significant bits), and each product
 *   is taken twice, hi W + lo W.  A bf16 x bf16 product is exact in f32, so
 *   the errors are the split (2^-16) and the f32 additions, as in sgemm.
 *   Rounding v to bf16 alone (PyTorch's bf16 autocast) costs 2^-8 per
 *   product, measured 500x the error of the split (below): too coarse for
 *   gradients that reach LoRA adapters through a frozen 7B model.  Cost: two
 *   vdpbf16ps per 32 multiply-adds, the instruction count of one float FMA
 *   per 16, reading half the weight bytes; taking hi only would make
 *   compute-bound shapes about 1.5x faster here (BENCHMARKS.md).  vdpbf16ps
 *   flushes denormal inputs and results to zero (|values| < 1.2e-38; lo parts
 *   of |v| < 3e-36).
 *   Forward: inner products straight from the rows of W (no packing): a tile
 *   of 4 rows of x by 4 rows of W keeps 16 accumulators, 32 values of k per
 *   step, reduced across lanes (hsum16) once per K chunk.  x is split into
 *   hi/lo rows, zero padded to a multiple of 32; the last columns of W are
 *   masked.  Per thread: a block of NB_FWD rows of W; K chunks of KC_FWD;
 *   tiles of 4 rows of x (in L1) against the block (in L2).  M = 1
 *   (decoding): 1 x 8 tiles over the whole of K, the threads splitting the
 *   rows of W; memory-bound.
 *   Input gradient: the sum runs over n, so vdpbf16ps needs the pairs
 *   (W[n,k], W[n+1,k]) side by side.  Each thread packs a chunk of NCH_BWD
 *   rows by KB_BWD columns of W into its scratch, interleaving row pairs
 *   with vpunpck{l,h}wd (which also keeps the tile's W contiguous: rows of W
 *   lie K * 2 bytes apart, the same cache sets for K = 4096), and broadcasts
 *   the dy pairs (dy[m,n], dy[m,n+1]).  A tile is 4 rows by 64 columns of
 *   dx (16 accumulators); the unpack leaves the columns in a fixed order
 *   that one permute per 16 undoes.  Threads own blocks of dx columns.
 *
 * Portable.  A panel of W (PANEL_FLOATS, 256 KiB) is widened to float in
 *   per-thread step scratch and multiplied with sgemm, single-threaded inside
 *   the parallel loop: forward, panels of rows of W, y summing over K chunks;
 *   input gradient, panels of columns of W (each thread owns those dx
 *   columns), summing over chunks of rows.  M = 1 (decoding) widens in
 *   registers instead: one dot product per row of W with 64 partial sums;
 *   a widened panel with sgemv measured 2.5x slower (with sgemm 6x),
 *   as the panel is written and read again on a bandwidth-bound product.
 *
 * Error of each output, relative to S = sum_k |x_k| |W_nk| (+ |bias| or
 * |dx0|), with gamma(n) = n u / (1 - n u), u = 2^-24 (any f32 summation
 * order of n terms):
 *   portable  <= gamma(K + 1)
 *   AVX       <= 2^-16 + gamma(2K + 8)   (hi and lo terms, lane reduction)
 * tests/test_bf16.c holds every output to these bounds.  Measured over 512
 * outputs of M = 82, N = K = 4096 with random normal x (bench_bf16): worst
 * 2.0e-7 S, mean 4.4e-8 S (AVX); 2.2e-8, 5.6e-9 (portable; sgemm on the f32
 * weight 2.9e-8, 6.2e-9); x rounded to bf16 1.1e-4, 3.4e-5.
 *
 * Scratch (the x or dy halves, packed or widened panels) comes from the
 * step arena and is rewound before returning. */
#include "ops_internal.h"

#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>

#define PANEL_FLOATS (64 * 1024) /* portable: widened W panel per thread */
#define KC_PORT 1024             /* portable forward: K chunk of a panel */
#define NB_FWD 128               /* AVX forward: rows of W per block */
#define KC_FWD 1024              /* AVX forward: K chunk (x tile and W block in cache) */
#define KT_BWD 64                /* AVX input gradient: dx columns per tile */
#define KB_BWD 256               /* AVX input gradient: dx columns per thread block */
#define NCH_BWD 256              /* AVX input gradient: rows of W per packed chunk (even) */

/* ---- kernel choice ------------------------------------------------------- */

static int g_kernel = -1; /* secap_bf16_kernel, resolved; -1 before the first use */

const char *secap_bf16_kernel_name(secap_bf16_kernel k)
{
    switch (k) {
    case SECAP_BF16_KERNEL_AUTO: return "auto";
    case SECAP_BF16_KERNEL_PORTABLE: return "portable";
    case SECAP_BF16_KERNEL_AVX512BF16: return "avx512bf16";
    }
    return "?";
}

int secap_bf16_kernel_supported(secap_bf16_kernel k)
{
    if (k != SECAP_BF16_KERNEL_AVX512BF16) return 1;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16");
}

secap_bf16_kernel secap_bf16_kernel_set(secap_bf16_kernel k)
{
    secap_bf16_kernel prev = secap_bf16_kernel_get();
    if (k == SECAP_BF16_KERNEL_AUTO)
        k = secap_bf16_kernel_supported(SECAP_BF16_KERNEL_AVX512BF16) ? SECAP_BF16_KERNEL_AVX512BF16
                                                                      : SECAP_BF16_KERNEL_PORTABLE;
    else if (k != SECAP_BF16_KERNEL_PORTABLE && k != SECAP_BF16_KERNEL_AVX512BF16)
        secap_fatal("bf16 kernel: unknown kernel %d (hint: SECAP_BF16_KERNEL_AUTO, _PORTABLE or _AVX512BF16)",
                    (int)k);
    if (!secap_bf16_kernel_supported(k))
        secap_fatal("bf16 kernel: avx512bf16 asked for, but this CPU lacks AVX512-BF16 (hint: "
                    "SECAP_BF16_KERNEL=auto or portable)");
    g_kernel = (int)k;
    return prev;
}

secap_bf16_kernel secap_bf16_kernel_get(void)
{
    if (g_kernel < 0) {
        const char *env = getenv("SECAP_BF16_KERNEL");
        secap_bf16_kernel k = SECAP_BF16_KERNEL_AUTO;
        if (env && *env && strcmp(env, "auto")) {
            if (!strcmp(env, "portable")) k = SECAP_BF16_KERNEL_PORTABLE;
            else if (!strcmp(env, "avx512bf16")) k = SECAP_BF16_KERNEL_AVX512BF16;
            else
                secap_fatal("SECAP_BF16_KERNEL=%s: unknown kernel (hint: portable, avx512bf16 or auto)", env);
        }
        g_kernel = (int)SECAP_BF16_KERNEL_PORTABLE; /* so that set() may read a previous value */
        secap_bf16_kernel_set(k);
    }
    return (secap_bf16_kernel)g_kernel;
}

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* bf16 scratch in the step arena (counted in floats by op_scratch). */
static uint16_t *bf16_scratch(secap_ctx *c, int64_t n, const char *what)
{
    return (uint16_t *)op_scratch(c, (size_t)(n + 1) / 2, what);
}

/* hi/lo halves of the rows of v [rows, cols] into [rows, ld] (ld >= cols,
 * zero padded): v = hi + lo + r, |r| <= 2^-16 |v|.  A non-finite hi gets lo = 0. */
static void split_rows(const float *v, int64_t rows, int64_t cols, int64_t ld, uint16_t *hi, uint16_t *lo)
{
#pragma omp parallel for if (rows * cols > OP_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *s = v + r * cols;
        uint16_t *h = hi + r * ld, *l = lo + r * ld;
        for (int64_t k = 0; k < cols; k++) {
            uint16_t b = secap_f32_to_bf16(s[k]);
            float bh = secap_bf16_to_f32(b);
            h[k] = b;
            l[k] = isfinite(bh) ? secap_f32_to_bf16(s[k] - bh) : 0;
        }
        for (int64_t k = cols; k < ld; k++) h[k] = l[k] = 0;
    }
}

/* ---- AVX512-BF16 kernels ------------------------------------------------- */

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#define BF16_INLINE BF16_TARGET static inline __attribute__((always_inline))

/* acc += a . b pairwise (bf16 pairs in 32-bit lanes). */
BF16_INLINE __m512 dp(__m512 acc, __m512i a, __m512i b)
{
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/* The bf16 pair p[0], p[1] in every 32-bit lane. */
BF16_INLINE __m512i pair(const uint16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Lane t of the result is the sum of the 16 lanes of v[t], t < 16. */
BF16_INLINE __m512 hsum16(const __m512 *v)
{
    __m512 s[8], t[4], r[2];
    for (int i = 0; i < 8; i++) /* lane q: [v0 p0, v1 p0, v0 p1, v1 p1], p = pair sums */
        s[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) { /* lane q: the lane-q sums of v[4i .. 4i+3] */
        __m512d a = _mm512_castps_pd(s[2 * i]), b = _mm512_castps_pd(s[2 * i + 1]);
        t[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    for (int i = 0; i < 2; i++) /* lanes (0+1) and (2+3) of t[2i], then of t[2i+1] */
        r[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(r[0], r[1], 0x88), _mm512_shuffle_f32x4(r[0], r[1], 0xdd));
}

/* y[i*ldy + j] += sum_{k0 <= k < k1} (xh + xl)[i*ldx + k] w[j*ldw + k], i < MR, j < NR
 * (MR * NR <= 16).  k0 is a multiple of 32; x rows are zero padded to a
 * multiple of 32 past k1; W columns from k1 on are masked off. */
BF16_INLINE void fwd_tile(const int MR, const int NR, const uint16_t *xh, const uint16_t *xl, int64_t ldx,
                          const uint16_t *w, int64_t ldw, int64_t k0, int64_t k1, float *y, int64_t ldy)
{
    __m512 acc[16];
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    int64_t k = k0;
    for (; k + 32 <= k1; k += 32) {
        __m512i wv[8];
        for (int j = 0; j < NR; j++) wv[j] = _mm512_loadu_si512(w + j * ldw + k);
        for (int i = 0; i < MR; i++) {
            __m512i h = _mm512_loadu_si512(xh + i * ldx + k), l = _mm512_loadu_si512(xl + i * ldx + k);
            for (int j = 0; j < NR; j++) acc[i * NR + j] = dp(dp(acc[i * NR + j], h, wv[j]), l, wv[j]);
        }
    }
    if (k < k1) {
        __mmask32 m = (__mmask32)((1ull << (k1 - k)) - 1);
        __m512i wv[8];
        for (int j = 0; j < NR; j++) wv[j] = _mm512_maskz_loadu_epi16(m, w + j * ldw + k);
        for (int i = 0; i < MR; i++) {
            __m512i h = _mm512_loadu_si512(xh + i * ldx + k), l = _mm512_loadu_si512(xl + i * ldx + k);
            for (int j = 0; j < NR; j++) acc[i * NR + j] = dp(dp(acc[i * NR + j], h, wv[j]), l, wv[j]);
        }
    }
    float s[16];
    _mm512_storeu_ps(s, hsum16(acc));
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) y[i * ldy + j] += s[i * NR + j];
}

#define FWD_CASE(mr, nr) \
    case (mr) * 16 + (nr): fwd_tile(mr, nr, xh, xl, ldx, w, ldw, k0, k1, y, ldy); break;

/* fwd_tile for mr <= 4, nr <= 4, or mr = 1, nr <= 8. */
BF16_TARGET static void fwd_tile_any(int mr, int nr, const uint16_t *xh, const uint16_t *xl, int64_t ldx,
                                     const uint16_t *w, int64_t ldw, int64_t k0, int64_t k1, float *y, int64_t ldy)
{
    switch (mr * 16 + nr) {
        FWD_CASE(1, 1) FWD_CASE(1, 2) FWD_CASE(1, 3) FWD_CASE(1, 4)
        FWD_CASE(1, 5) FWD_CASE(1, 6) FWD_CASE(1, 7) FWD_CASE(1, 8)
        FWD_CASE(2, 1) FWD_CASE(2, 2) FWD_CASE(2, 3) FWD_CASE(2, 4)
        FWD_CASE(3, 1) FWD_CASE(3, 2) FWD_CASE(3, 3) FWD_CASE(3, 4)
        FWD_CASE(4, 1) FWD_CASE(4, 2) FWD_CASE(4, 3) FWD_CASE(4, 4)
    default: secap_fatal("bf16 kernel: no forward tile %d x %d (hint: a bug in bf16_gemm.c)", mr, nr);
    }
}

/* y [M, N] += x [M, K] W^T from the split rows xh, xl [M, ldx]. */
BF16_TARGET static void fwd_avx(const uint16_t *xh, const uint16_t *xl, int64_t ldx, const uint16_t *w,
                                float *y, int64_t M, int64_t N, int64_t K)
{
    if (M == 1) { /* decoding: the threads split the rows of W */
        int64_t tiles = (N + 7) / 8;
#pragma omp parallel for schedule(static) if (N * K > OP_PAR_MIN)
        for (int64_t t = 0; t < tiles; t++) {
            int64_t n = t * 8;
            fwd_tile_any(1, (int)min64(8, N - n), xh, xl, ldx, w + n * K, K, 0, K, y + n, N);
        }
        return;
    }
    /* Blocks of rows of W, small enough that every thread gets several. */
    int nt = omp_get_max_threads();
    int64_t nb = min64(NB_FWD, round_up((N + 4 * nt - 1) / (4 * nt), 4));
    int64_t blocks = (N + nb - 1) / nb;
#pragma omp parallel for schedule(dynamic) if (M * N * K > OP_PAR_MIN * 64)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t n0 = b * nb, n1 = min64(N, n0 + nb);
        for (int64_t k0 = 0; k0 < K; k0 += KC_FWD) {
            int64_t k1 = min64(K, k0 + KC_FWD);
            for (int64_t m = 0; m < M; m += 4) {
                int mr = (int)min64(4, M - m);
                for (int64_t n = n0; n < n1; n += 4)
                    fwd_tile_any(mr, (int)min64(4, n1 - n), xh + m * ldx, xl + m * ldx, ldx, w + n * K, K, k0, k1,
                                 y + m * N + n, N);
            }
        }
    }
}

/* Packs rows [n0, n1) and columns [k0, k0 + kc) of w for the input
 * gradient: per tile of 64 columns, per row pair (n, n+1), the four vectors
 * unpack{lo,hi}(w[n, 32h ..], w[n+1, 32h ..]), h = 0, 1, that is
 * p[(t * pairs + q) * 128 + 32 v], v = 2h + (0 lo, 1 hi).  Missing columns
 * and the partner of an odd last row are zeros. */
BF16_TARGET static void bwd_pack(const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1, int64_t k0, int64_t kc,
                                 uint16_t *p)
{
    int64_t pairs = (n1 - n0 + 1) / 2;
    for (int64_t t = 0; t * KT_BWD < kc; t++) {
        for (int64_t q = 0; q < pairs; q++) {
            int64_t n = n0 + 2 * q;
            uint16_t *dst = p + (t * pairs + q) * 128;
            for (int h = 0; h < 2; h++) {
                int64_t c0 = t * KT_BWD + 32 * h, left = kc - c0;
                __mmask32 m = left >= 32 ? (__mmask32)0xffffffffu : left <= 0 ? 0 : (__mmask32)((1u << left) - 1);
                const uint16_t *src = w + n * ldw + k0 + c0;
                __m512i a = _mm512_maskz_loadu_epi16(m, src);
                __m512i b = n + 1 < n1 ? _mm512_maskz_loadu_epi16(m, src + ldw) : _mm512_setzero_si512();
                _mm512_storeu_si512(dst + 64 * h, _mm512_unpacklo_epi16(a, b));
                _mm512_storeu_si512(dst + 64 * h + 32, _mm512_unpackhi_epi16(a, b));
            }
        }
    }
}

/* dx[i*lddx + k0 + c] += sum_q (dh + dl)[i*ldd + 2q .. 2q+1] . pw[q] for
 * i < MR and c < kc <= 32 * KH (KH = 1 or 2 halves of 32 columns): pw is
 * one tile of bwd_pack (pairs x 128), dh, dl start at the tile's first row
 * and are zero padded to an even length. */
BF16_INLINE void bwd_tile(const int MR, const int KH, const uint16_t *dh, const uint16_t *dl, int64_t ldd,
                          const uint16_t *pw, int64_t pairs, int64_t k0, int64_t kc, float *dx, int64_t lddx)
{
    __m512 acc[4][4]; /* [i][2 * half + (0: unpacklo columns, 1: unpackhi columns)] */
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 2 * KH; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t q = 0; q < pairs; q++) {
        __m512i wv[4];
        for (int v = 0; v < 2 * KH; v++) wv[v] = _mm512_loadu_si512(pw + q * 128 + 32 * v);
        for (int i = 0; i < MR; i++) {
            __m512i bh = pair(dh + i * ldd + 2 * q), bl = pair(dl + i * ldd + 2 * q);
            for (int v = 0; v < 2 * KH; v++) acc[i][v] = dp(dp(acc[i][v], wv[v], bh), wv[v], bl);
        }
    }
    /* unpacklo lane 4q+t holds column 8q+t, unpackhi lane 4q+t column 8q+4+t. */
    const __m512i lo16 = _mm512_set_epi32(23, 22, 21, 20, 7, 6, 5, 4, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i hi16 = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 27, 26, 25, 24, 11, 10, 9, 8);
    for (int h = 0; h < KH; h++) {
        for (int part = 0; part < 2; part++) {
            int64_t c0 = 32 * h + 16 * part, left = kc - c0;
            if (left <= 0) break;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            for (int i = 0; i < MR; i++) {
                __m512 v = _mm512_permutex2var_ps(acc[i][2 * h], part ? hi16 : lo16, acc[i][2 * h + 1]);
                float *d = dx + i * lddx + k0 + c0;
                _mm512_mask_storeu_ps(d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), v));
            }
        }
    }
}

#define BWD_CASE(mr, kh) \
    case (mr) * 4 + (kh): bwd_tile(mr, kh, dh, dl, ldd, pw, pairs, k0, kc, dx, lddx); break;

BF16_TARGET static void bwd_tile_any(int mr, int kh, const uint16_t *dh, const uint16_t *dl, int64_t ldd,
                                     const uint16_t *pw, int64_t pairs, int64_t k0, int64_t kc, float *dx,
                                     int64_t lddx)
{
    switch (mr * 4 + kh) {
        BWD_CASE(1, 1) BWD_CASE(1, 2) BWD_CASE(2, 1) BWD_CASE(2, 2)
        BWD_CASE(3, 1) BWD_CASE(3, 2) BWD_CASE(4, 1) BWD_CASE(4, 2)
    default: secap_fatal("bf16 kernel: no gradient tile %d x %d (hint: a bug in bf16_gemm.c)", mr, kh);
    }
}

/* dx [M, K] += dy [M, N] W from the split rows dh, dl [M, ldd]; pack:
 * per-thread scratch of KB_BWD * NCH_BWD bf16. */
BF16_TARGET static void bwd_avx(const uint16_t *dh, const uint16_t *dl, int64_t ldd, const uint16_t *w,
                                float *dx, int64_t M, int64_t N, int64_t K, uint16_t *pack)
{
    int nt = omp_get_max_threads();
    int64_t kb = min64(KB_BWD, round_up((K + 2 * nt - 1) / (2 * nt), KT_BWD));
    int64_t blocks = (K + kb - 1) / kb;
#pragma omp parallel for schedule(dynamic) if (M * N * K > OP_PAR_MIN * 64)
    for (int64_t b = 0; b < blocks; b++) {
        uint16_t *p = pack + (size_t)omp_get_thread_num() * (size_t)(KB_BWD * NCH_BWD);
        int64_t kb0 = b * kb, kbc = min64(kb, K - kb0);
        for (int64_t n0 = 0; n0 < N; n0 += NCH_BWD) {
            int64_t n1 = min64(N, n0 + NCH_BWD), pairs = (n1 - n0 + 1) / 2;
            bwd_pack(w, K, n0, n1, kb0, kbc, p);
            for (int64_t t = 0; t * KT_BWD < kbc; t++) {
                int64_t kc = min64(KT_BWD, kbc - t * KT_BWD);
                for (int64_t m = 0; m < M; m += 4)
                    bwd_tile_any((int)min64(4, M - m), kc > 32 ? 2 : 1, dh + m * ldd + n0, dl + m * ldd + n0, ldd,
                                 p + t * pairs * 128, pairs, kb0 + t * KT_BWD, kc, dx + m * K, K);
            }
        }
    }
}

/* ---- portable kernels: widened panels and sgemm ------------------------- */

/* p [rows, cols] = float(w [rows, cols], row stride ldw). */
static void widen(float *p, const uint16_t *w, int64_t ldw, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) p[r * cols + k] = secap_bf16_to_f32(w[r * ldw + k]);
}

/* y [N] += W x [K] for one row of x (decoding), widening on the fly: 64
 * partial sums per row of W, so the compiler vectorises without
 * reassociating. */
static void fwd_portable_row(const float *x, const uint16_t *w, float *y, int64_t N, int64_t K)
{
#pragma omp parallel for schedule(static) if (N * K > OP_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        const uint16_t *wr = w + n * K;
        float acc[64] = {0}, s = 0.0f;
        int64_t k = 0;
        for (; k + 64 <= K; k += 64)
            for (int j = 0; j < 64; j++) acc[j] += x[k + j] * secap_bf16_to_f32(wr[k + j]);
        for (; k < K; k++) s += x[k] * secap_bf16_to_f32(wr[k]);
        for (int j = 0; j < 64; j++) s += acc[j];
        y[n] += s;
    }
}

/* y [M, N] += x [M, K] W^T: panels of nb rows x kc columns of W. */
static void fwd_portable(secap_ctx *c, const float *x, const uint16_t *w, float *y, int64_t M, int64_t N, int64_t K)
{
    int nt = omp_get_max_threads();
    int64_t kc = min64(K, KC_PORT);
    int64_t nb = min64(PANEL_FLOATS / kc, round_up((N + nt - 1) / nt, 4));
    int64_t blocks = (N + nb - 1) / nb;
    float *scratch = op_scratch(c, (size_t)nt * (size_t)(nb * kc), "linear (bf16 weight panels)");
#pragma omp parallel for schedule(dynamic) if (M * N * K > OP_PAR_MIN * 64)
    for (int64_t b = 0; b < blocks; b++) {
        float *p = scratch + (size_t)omp_get_thread_num() * (size_t)(nb * kc);
        int64_t n0 = b * nb, rows = min64(nb, N - n0);
        for (int64_t k0 = 0; k0 < K; k0 += kc) {
            int64_t cols = min64(kc, K - k0);
            widen(p, w + n0 * K + k0, K, rows, cols);
            op_gemm(0, 1, M, rows, cols, 1.0f, x + k0, K, p, cols, 1.0f, y + n0, N);
        }
    }
}

/* dx [M, K] += dy [M, N] W: panels of nch rows x kb columns of W, each
 * thread owning a block of dx columns. */
static void bwd_portable(secap_ctx *c, const float *dy, const uint16_t *w, float *dx, int64_t M, int64_t N,
                         int64_t K)
{
    int nt = omp_get_max_threads();
    int64_t kb = min64(round_up((K + nt - 1) / nt, 16), 256);
    if (kb > K) kb = K;
    int64_t nch = min64(N, PANEL_FLOATS / kb);
    int64_t blocks = (K + kb - 1) / kb;
    float *scratch = op_scratch(c, (size_t)nt * (size_t)(nch * kb), "linear backward (bf16 weight panels)");
#pragma omp parallel for schedule(dynamic) if (M * N * K > OP_PAR_MIN * 64)
    for (int64_t b = 0; b < blocks; b++) {
        float *p = scratch + (size_t)omp_get_thread_num() * (size_t)(nch * kb);
        int64_t k0 = b * kb, cols = min64(kb, K - k0);
        for (int64_t n0 = 0; n0 < N; n0 += nch) {
            int64_t rows = min64(nch, N - n0);
            widen(p, w + n0 * K + k0, K, rows, cols);
            op_gemm(0, 0, M, cols, rows, 1.0f, dy + n0, N, p, cols, 1.0f, dx + k0, K);
        }
    }
}

/* ---- entry points -------------------------------------------------------- */

void op_bf16_linear(secap_ctx *c, const float *x, const uint16_t *w, const float *bias, float *y, int64_t M,
                    int64_t N, int64_t K)
{
    if (M == 0 || N == 0) return;
    if (bias) op_fill_rows(y, bias, M, N);
    else memset(y, 0, (size_t)(M * N) * sizeof(float));
    if (K == 0) return;
    size_t mark = secap_arena_mark(c->step);
    if (secap_bf16_kernel_get() == SECAP_BF16_KERNEL_AVX512BF16) {
        int64_t ld = round_up(K, 32);
        uint16_t *xh = bf16_scratch(c, M * ld, "linear (bf16 weight: x halves)");
        uint16_t *xl = bf16_scratch(c, M * ld, "linear (bf16 weight: x halves)");
        split_rows(x, M, K, ld, xh, xl);
        fwd_avx(xh, xl, ld, w, y, M, N, K);
    } else if (M == 1) {
        fwd_portable_row(x, w, y, N, K);
    } else {
        fwd_portable(c, x, w, y, M, N, K);
    }
    secap_arena_rewind(c->step, mark);
}

void op_bf16_linear_dx(secap_ctx *c, const float *dy, const uint16_t *w, float *dx, int64_t M, int64_t N,
                       int64_t K)
{
    if (M == 0 || N == 0 || K == 0) return;
    size_t mark = secap_arena_mark(c->step);
    if (secap_bf16_kernel_get() == SECAP_BF16_KERNEL_AVX512BF16) {
        int64_t ld = round_up(N, 2);
        uint16_t *dh = bf16_scratch(c, M * ld, "linear backward (bf16 weight: dy halves)");
        uint16_t *dl = bf16_scratch(c, M * ld, "linear backward (bf16 weight: dy halves)");
        uint16_t *pack = bf16_scratch(c, (int64_t)omp_get_max_threads() * KB_BWD * NCH_BWD,
                                      "linear backward (bf16 weight: packed panels)");
        split_rows(dy, M, N, ld, dh, dl);
        bwd_avx(dh, dl, ld, w, dx, M, N, K, pack);
    } else {
        bwd_portable(c, dy, w, dx, M, N, K);
    }
    secap_arena_rewind(c->step, mark);
}
