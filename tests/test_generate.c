/* Text generation (secap/generate.h) against the PyTorch reference
 * (tests/ref_generate.py) and its contracts.
 *
 *   - greedy and beam search (3 and 4 beams; length penalty 0.5 / 1 / 1.3;
 *     early_stopping false / true / never; num_return_sequences 1-3;
 *     repetition penalty, no-repeat bigrams and min_new_tokens) give the
 *     reference's tokens, EOS flags and scores for 4 prompts per case, each
 *     prompt alone and all four batched (different lengths);
 *   - KV-cached greedy gives the tokens of full recomputation with
 *     secap_llama_forward, from ids and from a prefix of embedding vectors;
 *   - repetition penalty: greedy equals argmax of hand-penalised full-forward
 *     logits; no_repeat_ngram_size 1 and 2 leave no repeated token / bigram
 *     in prompt + output; min_new_tokens holds EOS back;
 *   - sampling: deterministic for a seed, another seed differs, top_k 1 is
 *     greedy, first-token frequencies of 4000 draws follow softmax(logits / T),
 *     top_k and top_p keep to their sets; beam sampling (SECap's settings) is
 *     deterministic and obeys the no-repeat rule;
 *   - SECap's consensus selection; the [decode] config keys; refusals. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"

#include "secap/autograd.h"
#include "secap/generate.h"
#include "secap/ini.h"
#include "secap/llama.h"
#include "secap/ops.h"

#include "secap/spm.h"

#include <hdf5.h>
#include <libgen.h>
#include <sys/wait.h>

static char g_bin[1024];      /* the directory holding secap-generate */
static char g_out[1 << 16];   /* stdout (+ stderr) of the last run */

/* Runs "<bin>/secap-generate <args>"; returns the exit status. */
static int run_tool(const char *args, int with_stderr)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive '%s/secap-generate' %s %s", g_bin, args,
             with_stderr ? "2>&1" : "2>/dev/null");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    printf("  $ secap-generate %s\n%s", args, g_out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static secap_ctx *new_ctx(void)
{
    secap_ctx *c = secap_ctx_new((size_t)64 << 20, (size_t)1 << 30, 1);
    c->training = 0;
    return c;
}

static secap_llama *load_model(secap_ctx *c)
{
    return secap_llama_load(c, tu_ref_path("gen_llama.h5"), NULL);
}

static int32_t *h5ints(hid_t g, const char *name, int64_t *n)
{
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) fail_msg("fixture lacks dataset %s (hint: re-run tests/ref_generate.py build/ref)", name);
    hid_t s = H5Dget_space(d);
    hssize_t k = H5Sget_simple_extent_npoints(s);
    int32_t *x = malloc((size_t)k * sizeof *x);
    assert_non_null(x);
    assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    if (n) *n = (int64_t)k;
    return x;
}

static float *h5floats(hid_t g, const char *name)
{
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) fail_msg("fixture lacks dataset %s", name);
    hid_t s = H5Dget_space(d);
    hssize_t k = H5Sget_simple_extent_npoints(s);
    float *x = malloc((size_t)k * sizeof *x);
    assert_non_null(x);
    assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    H5Sclose(s);
    H5Dclose(d);
    return x;
}

static double attr_d(hid_t g, const char *name)
{
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    if (a < 0) fail_msg("fixture case lacks attribute %s", name);
    double v;
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    return v;
}

static void case_config(hid_t g, secap_decode_config *d)
{
    secap_decode_config_default(d);
    d->num_beams = (int)attr_d(g, "num_beams");
    d->max_new_tokens = (int)attr_d(g, "max_new_tokens");
    d->min_new_tokens = (int)attr_d(g, "min_new_tokens");
    d->repetition_penalty = attr_d(g, "repetition_penalty");
    d->no_repeat_ngram_size = (int)attr_d(g, "no_repeat_ngram_size");
    d->length_penalty = attr_d(g, "length_penalty");
    d->early_stopping = (int)attr_d(g, "early_stopping");
    d->num_return_sequences = (int)attr_d(g, "num_return_sequences");
}

/* Sequence s of r against the reference's sequence q; returns 1 if equal. */
static int same_seq(const secap_gen_result *r, int s, const int32_t *ids, const int32_t *len, const int32_t *eos,
                    const float *score, int q, int M, const char *what)
{
    int ok = r->len[s] == len[q] && r->eos[s] == eos[q];
    for (int i = 0; ok && i < len[q]; i++) ok = r->ids[(size_t)s * r->max_len + i] == ids[(size_t)q * M + i];
    double e = fabs((double)r->score[s] - score[q]), tol = 1e-4 * fmax(1.0, fabs(score[q]));
    printf("  %-40s seq %d: %d tokens%s, score %.6f (ref %.6f)%s\n", what, q, r->len[s], r->eos[s] ? " +EOS" : "",
           r->score[s], score[q], ok && e <= tol ? "" : "  <-- FAIL");
    if (!ok) {
        printf("    C  :");
        for (int i = 0; i < r->len[s]; i++) printf(" %d", r->ids[(size_t)s * r->max_len + i]);
        printf("\n    ref:");
        for (int i = 0; i < len[q]; i++) printf(" %d", ids[(size_t)q * M + i]);
        printf("\n");
    }
    return ok && e <= tol;
}

static void ref_case(const char *name)
{
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    hid_t f = H5Fopen(tu_ref_path("gen_cases.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open gen_cases.h5 (hint: run tests/ref_generate.py build/ref)");
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    if (g < 0) fail_msg("gen_cases.h5 lacks case %s", name);
    secap_decode_config d;
    case_config(g, &d);
    int64_t np, nall;
    int32_t *prompts = h5ints(g, "prompts", NULL), *plen = h5ints(g, "prompt_len", &np);
    int32_t *ids = h5ints(g, "ids", &nall), *len = h5ints(g, "len", NULL), *eos = h5ints(g, "eos", NULL);
    float *score = h5floats(g, "score");
    int P = (int)np, K = d.num_return_sequences, M = d.max_new_tokens, bad = 0;
    assert_int_equal(nall, (int64_t)P * K * M);
    const int32_t *rows[8];
    for (int p = 0; p < P; p++) rows[p] = prompts + (size_t)p * 8;
    char what[96];
    for (int p = 0; p < P; p++) {   /* each prompt alone */
        secap_gen_result r;
        secap_generate_ids(c, m, &rows[p], &plen[p], 1, &d, &r);
        assert_int_equal(r.rows, 1);
        assert_int_equal(r.per_row, K);
        snprintf(what, sizeof what, "%s alone", name);
        for (int k = 0; k < K; k++) bad += !same_seq(&r, k, ids, len, eos, score, p * K + k, M, what);
        secap_gen_result_free(&r);
    }
    secap_gen_result r;   /* all prompts batched, different lengths */
    secap_generate_ids(c, m, rows, plen, P, &d, &r);
    snprintf(what, sizeof what, "%s batched", name);
    for (int s = 0; s < P * K; s++) bad += !same_seq(&r, s, ids, len, eos, score, s, M, what);
    secap_gen_result_free(&r);
    free(prompts); free(plen); free(ids); free(len); free(eos); free(score);
    H5Gclose(g);
    H5Fclose(f);
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("%s: %d sequences differ from the PyTorch reference", name, bad);
}

static void test_ref_greedy(void **st) { (void)st; ref_case("greedy"); }
static void test_ref_greedy_penalties(void **st) { (void)st; ref_case("greedy_penalties"); }
static void test_ref_beam3(void **st) { (void)st; ref_case("beam3"); }
static void test_ref_beam4_early(void **st) { (void)st; ref_case("beam4_early"); }
static void test_ref_beam3_never(void **st) { (void)st; ref_case("beam3_never"); }

/* ------------------------------------------------ against full recompute */

/* argmax over V of row t of logits [1, T, V] after the optional penalty. */
static int argmax_pen(const float *lg, int V, const int32_t *seq, int n, double rp)
{
    double best = -INFINITY;
    int bi = 0;
    for (int v = 0; v < V; v++) {
        double s = lg[v];
        if (rp != 1.0)
            for (int i = 0; i < n; i++)
                if (seq[i] == v) { s = s < 0 ? s * rp : s / rp; break; }
        if (s > best) { best = s; bi = v; }
    }
    return bi;
}

/* Greedy by recomputing the whole sequence with secap_llama_forward each
 * step: x0 [1, T0, D] prefix vectors, then embeddings of the new tokens. */
static int full_greedy(secap_ctx *c, const secap_llama *m, const float *x0, int T0, const int32_t *ctx, int nctx,
                       int maxn, double rp, int32_t *out)
{
    const secap_llama_config *mc = secap_llama_cfg(m);
    int D = mc->hidden_size, V = mc->vocab_size, n = 0;
    int32_t seq[128];
    if (nctx) memcpy(seq, ctx, (size_t)nctx * sizeof *seq);
    for (int step = 0; step < maxn; step++) {
        size_t mark = secap_arena_mark(c->step);
        int T = T0 + n;
        secap_tensor *x = secap_empty(c, SECAP_SHAPE(1, T, D));
        memcpy(secap_f32(x), x0, (size_t)T0 * D * sizeof(float));
        if (n) {
            secap_tensor *e = secap_llama_embed(c, m, out, 1, n);
            memcpy(secap_f32(x) + (size_t)T0 * D, secap_f32(e), (size_t)n * D * sizeof(float));
        }
        secap_tensor *y = secap_llama_forward(c, m, x, NULL);
        int t = argmax_pen(secap_f32(y) + (size_t)(T - 1) * V, V, seq, nctx + n, rp);
        secap_arena_rewind(c->step, mark);
        if (t == mc->eos_token_id) break;
        out[n++] = t;
        seq[nctx + n - 1] = t;
    }
    return n;
}

static void expect_tokens(const char *what, const secap_gen_result *r, int s, const int32_t *want, int n, int *bad)
{
    int ok = r->len[s] == n;
    for (int i = 0; ok && i < n; i++) ok = r->ids[(size_t)s * r->max_len + i] == want[i];
    printf("  %-56s %d tokens%s\n", what, r->len[s], ok ? "" : "  <-- FAIL");
    if (!ok) (*bad)++;
}

static void test_greedy_equals_full_forward(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    const secap_llama_config *mc = secap_llama_cfg(m);
    int D = mc->hidden_size, bad = 0;
    secap_rng rng;
    secap_rng_seed(&rng, 5);
    secap_decode_config d;
    secap_decode_config_default(&d);
    d.max_new_tokens = 24;
    for (int trial = 0; trial < 3; trial++) {
        /* from ids */
        int32_t p[9] = { 1 }, want[64];
        int L = 3 + 2 * trial;
        for (int i = 1; i < L; i++) p[i] = 3 + (int32_t)secap_rng_below(&rng, (uint64_t)mc->vocab_size - 3);
        const int32_t *row = p;
        secap_gen_result r;
        secap_generate_ids(c, m, &row, &L, 1, &d, &r);
        secap_tensor *e = secap_llama_embed(c, m, p, 1, L);
        float x0[9 * 64];
        memcpy(x0, secap_f32(e), (size_t)L * D * sizeof(float));
        int n = full_greedy(c, m, x0, L, p, 0, d.max_new_tokens, 1.0, want);
        char what[96];
        snprintf(what, sizeof what, "greedy from %d ids vs full forward", L);
        expect_tokens(what, &r, 0, want, n, &bad);
        secap_gen_result_free(&r);
        /* from a prefix of embeddings: [BOS] [3 random vectors] [ids] */
        int T0 = L + 3;
        float xv[12 * 64];
        memcpy(xv, x0, (size_t)D * sizeof(float));
        for (int i = 0; i < 3 * D; i++) xv[D + i] = 0.5f * secap_rng_normal(&rng);
        memcpy(xv + 4 * D, x0 + D, (size_t)(L - 1) * D * sizeof(float));
        secap_tensor *pre = secap_from_data(c, SECAP_SHAPE(1, T0, D), xv);
        secap_generate(c, m, pre, NULL, NULL, NULL, &d, &r);
        n = full_greedy(c, m, xv, T0, NULL, 0, d.max_new_tokens, 1.0, want);
        snprintf(what, sizeof what, "greedy from %d embedding vectors vs full forward", T0);
        expect_tokens(what, &r, 0, want, n, &bad);
        secap_gen_result_free(&r);
    }
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("%d KV-cached greedy runs differ from full recomputation", bad);
}

/* ------------------------------------------------------ processors */

static void test_repetition_penalty(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    int D = secap_llama_cfg(m)->hidden_size, bad = 0;
    /* prompt with repeats; penalties < 1 (rewards repeats) and > 1 */
    int32_t p[8] = { 1, 17, 17, 40, 5, 17, 40, 9 };
    int L = 8;
    const int32_t *row = p;
    double pens[3] = { 3.0, 1.7, 0.6 };
    int differs = 0;
    secap_decode_config d;
    secap_decode_config_default(&d);
    d.max_new_tokens = 16;
    secap_gen_result r0;
    secap_generate_ids(c, m, &row, &L, 1, &d, &r0);
    for (int k = 0; k < 3; k++) {
        d.repetition_penalty = pens[k];
        secap_gen_result r;
        secap_generate_ids(c, m, &row, &L, 1, &d, &r);
        secap_tensor *e = secap_llama_embed(c, m, p, 1, L);
        float x0[8 * 64];
        memcpy(x0, secap_f32(e), (size_t)L * D * sizeof(float));
        int32_t want[32];
        int n = full_greedy(c, m, x0, L, p, L, d.max_new_tokens, pens[k], want);
        char what[96];
        snprintf(what, sizeof what, "repetition_penalty %.1f vs hand-penalised argmax", pens[k]);
        expect_tokens(what, &r, 0, want, n, &bad);
        if (r.len[0] != r0.len[0] || memcmp(r.ids, r0.ids, (size_t)r.len[0] * sizeof *r.ids)) differs++;
        secap_gen_result_free(&r);
    }
    assert_true(differs >= 1);   /* the penalty changes something */
    secap_gen_result_free(&r0);
    secap_llama_free(m);
    secap_ctx_free(c);
    if (bad) fail_msg("repetition penalty differs from HF's rule");
}

static void test_no_repeat_ngram_and_min_new(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    int eos = secap_llama_cfg(m)->eos_token_id;
    int32_t p[6] = { 1, 30, 31, 30, 31, 12 };
    int L = 6;
    const int32_t *row = p;
    for (int beams = 1; beams <= 3; beams += 2)
        for (int n = 1; n <= 2; n++) {
            secap_decode_config d;
            secap_decode_config_default(&d);
            d.max_new_tokens = n == 1 ? 40 : 30;
            d.min_new_tokens = d.max_new_tokens;   /* no EOS at all */
            d.num_beams = beams;
            d.no_repeat_ngram_size = n;
            secap_gen_result r;
            secap_generate_ids(c, m, &row, &L, 1, &d, &r);
            int32_t seq[64];
            memcpy(seq, p, sizeof p);
            memcpy(seq + L, r.ids, (size_t)r.len[0] * sizeof *seq);
            int T = L + r.len[0];
            printf("  no_repeat_ngram_size %d, %d beam(s): %d tokens\n", n, beams, r.len[0]);
            assert_int_equal(r.len[0], d.max_new_tokens);
            assert_int_equal(r.eos[0], 0);
            for (int i = 0; i < r.len[0]; i++) assert_int_not_equal(r.ids[i], eos);
            /* no n-gram that starts in the output repeats an earlier one */
            for (int i = L - n + 1; i + n <= T; i++)
                for (int j = 0; j < i; j++)
                    if (!memcmp(seq + i, seq + j, (size_t)n * sizeof *seq))
                        fail_msg("n = %d: the n-gram at %d repeats the one at %d", n, i, j);
            secap_gen_result_free(&r);
        }
    /* the prompt's own repeated bigram "30 31" is allowed (it is input) */
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* ------------------------------------------------------ sampling */

static void test_sampling(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    const secap_llama_config *mc = secap_llama_cfg(m);
    int V = mc->vocab_size, D = mc->hidden_size;
    int32_t p[5] = { 1, 44, 8, 61, 23 };
    int L = 5;
    const int32_t *row = p;
    secap_decode_config d;
    secap_decode_config_default(&d);
    d.do_sample = 1;
    d.top_k = 0;
    d.temperature = 1.5;
    d.max_new_tokens = 20;
    d.num_return_sequences = 6;
    d.seed = 11;
    secap_gen_result a, b, e;
    secap_generate_ids(c, m, &row, &L, 1, &d, &a);
    secap_generate_ids(c, m, &row, &L, 1, &d, &b);
    assert_memory_equal(a.len, b.len, 6 * sizeof *a.len);
    assert_memory_equal(a.ids, b.ids, (size_t)6 * a.max_len * sizeof *a.ids);
    assert_memory_equal(a.score, b.score, 6 * sizeof *a.score);
    d.seed = 12;
    secap_generate_ids(c, m, &row, &L, 1, &d, &e);
    assert_true(memcmp(a.ids, e.ids, (size_t)6 * a.max_len * sizeof *a.ids) != 0);
    int distinct = 0;   /* draws of one row differ from each other */
    for (int s = 1; s < 6; s++) distinct += memcmp(a.ids, a.ids + (size_t)s * a.max_len, 20 * sizeof *a.ids) != 0;
    assert_true(distinct >= 3);
    secap_gen_result_free(&a); secap_gen_result_free(&b); secap_gen_result_free(&e);

    /* top_k 1 is greedy */
    secap_decode_config g;
    secap_decode_config_default(&g);
    g.max_new_tokens = 20;
    secap_gen_result gr, kr;
    secap_generate_ids(c, m, &row, &L, 1, &g, &gr);
    d.top_k = 1;
    d.num_return_sequences = 1;
    secap_generate_ids(c, m, &row, &L, 1, &d, &kr);
    assert_int_equal(kr.len[0], gr.len[0]);
    assert_memory_equal(kr.ids, gr.ids, (size_t)gr.len[0] * sizeof *gr.ids);
    printf("  top_k 1 sampling = greedy: %d tokens\n", gr.len[0]);
    secap_gen_result_free(&gr); secap_gen_result_free(&kr);

    /* first-token frequencies of N draws against softmax(logits / T) */
    enum { N = 4000 };
    secap_tensor *x = secap_llama_embed(c, m, p, 1, L);
    secap_tensor *y = secap_llama_forward(c, m, x, NULL);
    const float *lg = secap_f32(y) + (size_t)(L - 1) * V;
    double T = 1.5, mx = -INFINITY, z = 0, prob[128];
    for (int v = 0; v < V; v++) if (lg[v] / T > mx) mx = lg[v] / T;
    for (int v = 0; v < V; v++) z += prob[v] = exp(lg[v] / T - mx);
    for (int v = 0; v < V; v++) prob[v] /= z;
    d.top_k = 0;
    d.max_new_tokens = 1;
    d.num_return_sequences = N / 4;   /* 4 rows of the same prompt x 1000 draws */
    d.seed = 1;   /* fixed: the test is deterministic; other seeds gave 2.2 - 4.1 */
    const int32_t *rows4[4] = { p, p, p, p };
    int32_t lens4[4] = { L, L, L, L };
    secap_gen_result fr;
    secap_generate_ids(c, m, rows4, lens4, 4, &d, &fr);
    int cnt[128] = { 0 };
    for (int s = 0; s < N; s++) cnt[fr.len[s] ? fr.ids[(size_t)s * fr.max_len] : mc->eos_token_id]++;
    double worst = 0;
    int wv = 0;
    for (int v = 0; v < V; v++) {
        double f = (double)cnt[v] / N, sd = sqrt(prob[v] * (1 - prob[v]) / N) + 1e-9;
        double zv = fabs(f - prob[v]) / sd;
        if (zv > worst) { worst = zv; wv = v; }
    }
    printf("  %d draws: largest |freq - p| / sd over %d tokens = %.2f (token %d: %d draws, p %.5f)\n", N, V, worst,
           wv, cnt[wv], prob[wv]);
    assert_true(worst < 4.5);
    secap_gen_result_free(&fr);

    /* top_k 3 and top_p 0.5 keep to their sets */
    int ord[128];
    for (int v = 0; v < V; v++) ord[v] = v;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (prob[ord[j]] > prob[ord[i]]) { int t = ord[i]; ord[i] = ord[j]; ord[j] = t; }
    int nucleus = 0;
    for (double cum = 0; nucleus < V && cum < 0.5; nucleus++) cum += prob[ord[nucleus]];
    for (int mode = 0; mode < 2; mode++) {
        d.top_k = mode == 0 ? 3 : 0;
        d.top_p = mode == 0 ? 1.0 : 0.5;
        d.num_return_sequences = 500;
        secap_gen_result tr;
        secap_generate_ids(c, m, &row, &L, 1, &d, &tr);
        int allowed = mode == 0 ? 3 : nucleus, seen[128] = { 0 }, kinds = 0;
        for (int s = 0; s < 500; s++) {
            int t = tr.len[s] ? tr.ids[(size_t)s * tr.max_len] : mc->eos_token_id, ok = 0;
            for (int i = 0; i < allowed; i++) ok |= ord[i] == t;
            if (!ok) fail_msg("%s: drew token %d outside the %d allowed", mode ? "top_p 0.5" : "top_k 3", t, allowed);
            if (!seen[t]++) kinds++;
        }
        printf("  %s: 500 draws from %d kinds, %d allowed\n", mode ? "top_p 0.5" : "top_k 3", kinds, allowed);
        assert_true(kinds == allowed || (allowed > 3 && kinds >= 2));
        secap_gen_result_free(&tr);
    }
    (void)D;
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* SECap's decoding: beam sampling, 5 beams, top-k 10, top-p 0.95,
 * repetition penalty 10, no-repeat bigrams, 3 to 50 new tokens. */
static void test_beam_sample_secap(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    secap_decode_config d;
    secap_decode_config_default(&d);
    d.num_beams = 5; d.do_sample = 1; d.top_k = 10; d.top_p = 0.95; d.repetition_penalty = 10.0;
    d.no_repeat_ngram_size = 2; d.min_new_tokens = 3; d.max_new_tokens = 50; d.early_stopping = 1;
    d.num_return_sequences = 2;
    int32_t p0[4] = { 1, 20, 21, 22 }, p1[7] = { 1, 5, 6, 7, 8, 9, 10 };
    const int32_t *rows[2] = { p0, p1 };
    int32_t lens[2] = { 4, 7 };
    secap_gen_result a, b, e;
    d.seed = 7;
    secap_generate_ids(c, m, rows, lens, 2, &d, &a);
    secap_generate_ids(c, m, rows, lens, 2, &d, &b);
    d.seed = 8;
    secap_generate_ids(c, m, rows, lens, 2, &d, &e);
    assert_memory_equal(a.len, b.len, 4 * sizeof *a.len);
    assert_memory_equal(a.ids, b.ids, (size_t)4 * a.max_len * sizeof *a.ids);
    int diff = 0;
    for (int s = 0; s < 4; s++) {
        printf("  beam sample seq %d: %d tokens%s score %.4f\n", s, a.len[s], a.eos[s] ? " +EOS" : "", a.score[s]);
        assert_true(a.len[s] + a.eos[s] >= 3);
        if (s % 2 == 1) assert_true(a.score[s] <= a.score[s - 1]);   /* best first */
        diff |= a.len[s] != e.len[s] || memcmp(a.ids + (size_t)s * a.max_len, e.ids + (size_t)s * e.max_len,
                                                (size_t)a.len[s] * sizeof *a.ids);
        /* no bigram repeats within prompt + output */
        int32_t seq[64];
        int L = lens[s / 2];
        memcpy(seq, rows[s / 2], (size_t)L * sizeof *seq);
        memcpy(seq + L, a.ids + (size_t)s * a.max_len, (size_t)a.len[s] * sizeof *seq);
        for (int i = L - 1; i + 2 <= L + a.len[s]; i++)
            for (int j = 0; j < i; j++)
                if (seq[i] == seq[j] && seq[i + 1] == seq[j + 1]) fail_msg("beam sample seq %d repeats a bigram", s);
    }
    assert_true(diff);
    secap_gen_result_free(&a); secap_gen_result_free(&b); secap_gen_result_free(&e);
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* ------------------------------------------------------ consensus, config */

static void test_consensus(void **st)
{
    (void)st;
    /* 4 candidates (exact binary fractions); means 0: (1+.75+.5+.25)/4 = .625,
     * 1: (.75+1+.5+.25)/4 = .625, 2: (.5+.5+1+.5)/4 = .625, 3: (.25+.25+.5+1)/4 = .5:
     * the three ties are kept in index order, 3 is dropped */
    const float s4[16] = { 1, .75f, .5f, .25f, .75f, 1, .5f, .25f, .5f, .5f, 1, .5f, .25f, .25f, .5f, 1 };
    int idx[4];
    secap_select_consensus(s4, 4, 3, idx);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 2);
    /* SECap: 8 draws, keep 5; a random symmetric matrix against a brute-force ranking */
    secap_rng r;
    secap_rng_seed(&r, 4);
    float s8[64];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j <= i; j++) s8[i * 8 + j] = s8[j * 8 + i] = i == j ? 1.0f : secap_rng_uniform(&r);
    int k5[5];
    secap_select_consensus(s8, 8, 5, k5);
    double mean[8];
    for (int i = 0; i < 8; i++) {
        mean[i] = 0;
        for (int j = 0; j < 8; j++) mean[i] += s8[i * 8 + j];
        mean[i] /= 8;
    }
    for (int a = 0; a < 5; a++) {
        if (a) assert_true(mean[k5[a]] <= mean[k5[a - 1]]);
        for (int i = 0; i < 8; i++) {   /* every dropped candidate scores below every kept one */
            int kept = 0;
            for (int b = 0; b < 5; b++) kept |= k5[b] == i;
            if (!kept) assert_true(mean[i] <= mean[k5[a]]);
        }
    }
    EXPECT_FATAL(secap_select_consensus(s8, 8, 9, k5), "keep = 9");
    float bad[4] = { 1, NAN, 0, 1 };
    EXPECT_FATAL(secap_select_consensus(bad, 2, 1, k5), "sim[0, 1]");
}

static void test_config(void **st)
{
    (void)st;
    secap_decode_config d;
    secap_decode_config_default(&d);
    assert_int_equal(d.max_new_tokens, 64);
    assert_int_equal(d.num_beams, 1);
    assert_int_equal(d.do_sample, 0);
    secap_ini *ini = secap_ini_new();
    secap_ini_set(ini, "decode.num_beams", "5", "test");
    secap_ini_set(ini, "decode.do_sample", "true", "test");
    secap_ini_set(ini, "decode.top_k", "10", "test");
    secap_ini_set(ini, "decode.top_p", "0.95", "test");
    secap_ini_set(ini, "decode.repetition_penalty", "10.0", "test");
    secap_ini_set(ini, "decode.no_repeat_ngram_size", "2", "test");
    secap_ini_set(ini, "decode.min_new_tokens", "3", "test");
    secap_ini_set(ini, "decode.max_new_tokens", "50", "test");
    secap_ini_set(ini, "decode.early_stopping", "true", "test");
    secap_ini_set(ini, "decode.seed", "42", "test");
    secap_ini_apply(ini, "decode", &d, secap_decode_config_set);
    secap_ini_check_used(ini, "decode");
    secap_decode_config_validate(&d, "test");
    assert_int_equal(d.num_beams, 5);
    assert_int_equal(d.do_sample, 1);
    assert_int_equal(d.top_k, 10);
    assert_true(d.top_p == 0.95 && d.repetition_penalty == 10.0);
    assert_int_equal(d.no_repeat_ngram_size, 2);
    assert_int_equal(d.min_new_tokens, 3);
    assert_int_equal(d.max_new_tokens, 50);
    assert_int_equal(d.early_stopping, SECAP_EARLY_STOP_TRUE);
    assert_true(d.seed == 42);
    secap_ini_set(ini, "decode.beams", "4", "test");
    secap_ini_apply(ini, "decode", &d, secap_decode_config_set);
    EXPECT_FATAL(secap_ini_check_used(ini, "decode"), "decode.beams");
    secap_ini_free(ini);
    assert_int_not_equal(secap_decode_config_set(&d, "beam_width", "3"), 0);
    assert_int_equal(secap_decode_config_set(&d, "early_stopping", "never"), 0);
    assert_int_equal(d.early_stopping, SECAP_EARLY_STOP_NEVER);
    EXPECT_FATAL(secap_decode_config_set(&d, "top_p", "1.5"), "decode.top_p = '1.5'");
    EXPECT_FATAL(secap_decode_config_set(&d, "num_beams", "2.5"), "not an integer");
    EXPECT_FATAL(secap_decode_config_set(&d, "do_sample", "yes"), "decode.do_sample");
    EXPECT_FATAL(secap_decode_config_set(&d, "early_stopping", "soon"), "never");
    EXPECT_FATAL(secap_decode_config_set(&d, "temperature", "0"), "decode.temperature");
    secap_decode_config_default(&d);
    d.num_return_sequences = 2;
    EXPECT_FATAL(secap_decode_config_validate(&d, "cfgX"), "greedy decoding returns one sequence");
    d.num_beams = 3;
    d.num_return_sequences = 4;
    EXPECT_FATAL(secap_decode_config_validate(&d, "cfgX"), "exceeds num_beams");
    d.num_return_sequences = 1;
    d.min_new_tokens = 100;
    EXPECT_FATAL(secap_decode_config_validate(&d, "cfgX"), "min_new_tokens = 100");
}

static void test_refusals(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    secap_decode_config d;
    secap_decode_config_default(&d);
    int32_t p[3] = { 1, 5, 90 }, L = 3;
    const int32_t *row = p;
    secap_gen_result r;
    EXPECT_FATAL(secap_generate_ids(c, m, &row, &L, 1, &d, &r), "token id 90");
    p[2] = 6;
    d.max_new_tokens = 62;   /* 3 + 62 > 64 positions */
    EXPECT_FATAL(secap_generate_ids(c, m, &row, &L, 1, &d, &r), "max_position_embeddings 64");
    d.max_new_tokens = 8;
    secap_tensor *x = secap_zeros(c, SECAP_SHAPE(1, 3, 16));
    EXPECT_FATAL(secap_generate(c, m, x, NULL, NULL, NULL, &d, &r), "expected float32 [B, T, 32]");
    x = secap_zeros(c, SECAP_SHAPE(2, 3, 32));
    int32_t bl[2] = { 3, 4 };
    EXPECT_FATAL(secap_generate(c, m, x, bl, NULL, NULL, &d, &r), "prefix_lens[1] = 4");
    secap_llama_free(m);
    secap_ctx_free(c);
}

/* ------------------------------------------------------ the program */

/* Lines of the result r as the program prints them with --ids. */
static void result_lines(const secap_gen_result *r, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (int s = 0; s < r->rows * r->per_row; s++) {
        for (int i = 0; i < r->len[s]; i++)
            k += (size_t)snprintf(buf + k, cap - k, i ? " %d" : "%d", r->ids[(size_t)s * r->max_len + i]);
        k += (size_t)snprintf(buf + k, cap - k, "\n");
    }
}

static void test_program(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_llama *m = load_model(c);
    char model[4200], tok[4200], args[12288], want[8192];
    snprintf(model, sizeof model, "%s", tu_ref_path("gen_llama.h5"));
    snprintf(tok, sizeof tok, "%s", tu_ref_path("spm_hand.model"));
    /* --ids with beam options = the library's result */
    int32_t p[5] = { 1, 40, 41, 7, 19 }, L = 5;
    const int32_t *row = p;
    secap_decode_config d;
    secap_decode_config_default(&d);
    d.num_beams = 3; d.num_return_sequences = 2; d.max_new_tokens = 12; d.length_penalty = 0.7;
    d.repetition_penalty = 1.3;
    secap_gen_result r;
    secap_generate_ids(c, m, &row, &L, 1, &d, &r);
    result_lines(&r, want, sizeof want);
    secap_gen_result_free(&r);
    snprintf(args, sizeof args, "--llama '%s' --prompt-ids '1 40 41 7 19' --ids --num-beams 3 "
             "--num-return-sequences=2 --max-new-tokens 12 --length-penalty 0.7 --repetition-penalty 1.3 --threads 1",
             model);
    assert_int_equal(run_tool(args, 0), 0);
    assert_string_equal(g_out, want);
    /* --tokenizer --prompt: the prompt encoded with BOS, as --prompt-ids */
    secap_spm *sp = secap_spm_load(tok);
    secap_spm_scratch *sc = secap_spm_scratch_new();
    const int32_t *enc;
    const char *text = "abc ab";
    int n = (int)secap_spm_encode(sp, text, strlen(text), SECAP_SPM_ADD_BOS, sc, &enc);
    assert_true(n >= 2);
    secap_decode_config_default(&d);
    d.max_new_tokens = 9;
    secap_generate_ids(c, m, &enc, &n, 1, &d, &r);
    result_lines(&r, want, sizeof want);
    snprintf(args, sizeof args, "--llama '%s' --tokenizer '%s' --prompt '%s' --ids --greedy --max-new-tokens 9",
             model, tok, text);
    assert_int_equal(run_tool(args, 0), 0);
    assert_string_equal(g_out, want);
    /* text: the decoded ids the tokenizer knows */
    int32_t keep[64];
    int k = 0;
    for (int i = 0; i < r.len[0]; i++) if (r.ids[i] < secap_spm_vocab_size(sp)) keep[k++] = r.ids[i];
    char *dec = secap_spm_decode(sp, keep, (size_t)k, NULL);
    snprintf(want, sizeof want, "%s\n", dec);
    free(dec);
    snprintf(args, sizeof args, "--llama '%s' --tokenizer '%s' --prompt '%s' --max-new-tokens 9", model, tok, text);
    assert_int_equal(run_tool(args, 0), 0);
    assert_string_equal(g_out, want);
    secap_gen_result_free(&r);
    secap_spm_scratch_free(sc);
    secap_spm_free(sp);
    /* clear errors */
    struct { const char *args, *want; } bad[] = {
        { "--prompt-ids '1 2'", "--llama is required" },
        { "--llama '%s' --prompt-ids '1 2' --prompt x --ids", "exactly one of --prompt" },
        { "--llama '%s' --prompt x --ids", "--prompt needs --tokenizer" },
        { "--llama '%s' --prompt-ids '1 2'", "needs --tokenizer" },
        { "--llama '%s' --prompt-ids '1 x' --ids", "\"x\" is not a token id" },
        { "--llama '%s' --prompt-ids '1 200' --ids", "prompt id 200" },
        { "--llama '%s' --prompt-ids '1 2' --ids --greedy --num-beams 2", "--greedy and --num-beams" },
        { "--llama '%s' --prompt-ids '1 2' --ids --top-p 1.5", "top_p = '1.5'" },
        { "--llama '%s' --prompt-ids '1 2' --ids --num-beams 2 --num-return-sequences 3", "exceeds num_beams" },
        { "--llama '%s' --prompt-ids '1 2' --ids --beams 2", "unknown argument \"--beams\"" },
        { "--llama /nonexistent.h5 --prompt-ids '1 2' --ids", "/nonexistent.h5" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, bad[i].args, model);
        if (run_tool(args, 1) != 1) fail_msg("secap-generate %s: expected exit 1", args);
        if (!strstr(g_out, bad[i].want)) fail_msg("secap-generate %s: output lacks \"%s\"", args, bad[i].want);
    }
    /* --lora (a file, and a directory holding adapter_model.h5) = the library with the adapter loaded */
    char base[4200], adapter[4200], dir[1100], cmd[16384];
    snprintf(base, sizeof base, "%s", tu_ref_path("llama_gqa.h5"));
    snprintf(adapter, sizeof adapter, "%s", tu_ref_path("llama_gqa_adapter.h5"));
    secap_llama_opts o = { .adapter = adapter };
    secap_llama *ml = secap_llama_load(c, base, &o);
    secap_decode_config_default(&d);
    d.max_new_tokens = 10;
    secap_generate_ids(c, ml, &row, &L, 1, &d, &r);
    result_lines(&r, want, sizeof want);
    secap_gen_result_free(&r);
    secap_llama *mb = secap_llama_load(c, base, NULL);   /* the adapter must matter */
    char plain[8192];
    secap_generate_ids(c, mb, &row, &L, 1, &d, &r);
    result_lines(&r, plain, sizeof plain);
    secap_gen_result_free(&r);
    assert_string_not_equal(want, plain);
    snprintf(dir, sizeof dir, "%s", tu_tmp("adapter_dir"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s' '%s/adapter_model.h5'", dir, dir, adapter, dir);
    assert_int_equal(system(cmd), 0);
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "--llama '%s' --lora '%s' --prompt-ids '1 40 41 7 19' --ids --max-new-tokens 10",
                 base, k ? dir : adapter);
        assert_int_equal(run_tool(args, 0), 0);
        assert_string_equal(g_out, want);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    secap_llama_free(ml);
    secap_llama_free(mb);
    assert_int_equal(run_tool("--help", 0), 0);
    assert_non_null(strstr(g_out, "usage: secap-generate"));
    secap_llama_free(m);
    secap_ctx_free(c);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char resolved[1024];
    snprintf(g_bin, sizeof g_bin, "%s/..", dirname(self));   /* <bin>/tests/.. */
    if (realpath(g_bin, resolved)) snprintf(g_bin, sizeof g_bin, "%s", resolved);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_greedy),
        cmocka_unit_test(test_ref_greedy_penalties),
        cmocka_unit_test(test_ref_beam3),
        cmocka_unit_test(test_ref_beam4_early),
        cmocka_unit_test(test_ref_beam3_never),
        cmocka_unit_test(test_greedy_equals_full_forward),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_no_repeat_ngram_and_min_new),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_beam_sample_secap),
        cmocka_unit_test(test_consensus),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_program),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
