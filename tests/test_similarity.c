/* tests/test_similarity.c - SECap's sentence similarity against the PyTorch
 * reference (tests/ref_similarity.py: an ERNIE with a task-type embedding,
 * converted by tools/convert_hf.py, and a plain BERT), the threshold shares,
 * and the loader's errors.  Embeddings and cosines within 1e-4 of float64
 * PyTorch. */
#include "testutil.h"

#include <cJSON.h>

#include "secap/similarity.h"

#define TOL 1e-4

/* Debian 12's cmocka has no assert_double_equal. */
#define assert_near(a, b, tol)                                                              \
    do {                                                                                    \
        double a_ = (a), b_ = (b);                                                          \
        if (!(fabs(a_ - b_) <= (tol))) fail_msg("%s = %.17g, expected %.17g (tolerance %g)", #a, a_, b_, (double)(tol)); \
    } while (0)

/* tu_ref_path returns one static buffer: two paths in one call need copies. */
static char ref_buf[4][4096];
static const char *refp(int k, const char *name)
{
    snprintf(ref_buf[k], sizeof ref_buf[k], "%s", tu_ref_path(name));
    return ref_buf[k];
}
#define VOCAB refp(1, "sim_vocab.txt")

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open the reference fixture (hint: run tests/ref_similarity.py build/ref, or "
                     "tests/run.sh)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) fail_msg("%s: not JSON", path);
    return j;
}

/* arr of strings -> malloc'd array of borrowed pointers */
static const char **strings(const cJSON *arr, int *n)
{
    *n = cJSON_GetArraySize(arr);
    const char **s = malloc((size_t)*n * sizeof *s);
    for (int i = 0; i < *n; i++) s[i] = cJSON_GetArrayItem(arr, i)->valuestring;
    return s;
}

static double maxdiff_row(const cJSON *row, const double *got, int n)
{
    assert_int_equal(cJSON_GetArraySize(row), n);
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs(cJSON_GetArrayItem(row, i)->valuedouble - got[i]));
    return d;
}

static void parity(const char *tag)
{
    char wpath[64], rpath[64];
    snprintf(wpath, sizeof wpath, "sim_%s.h5", tag);
    snprintf(rpath, sizeof rpath, "sim_%s_ref.json", tag);
    cJSON *ref = load_json(tu_ref_path(rpath));
    secap_simmodel *m = secap_sim_load(refp(0, wpath), VOCAB, NULL);
    int H = secap_sim_dim(m), n, nr;
    assert_int_equal(H, 32);
    const char **hyps = strings(cJSON_GetObjectItem(ref, "hyps"), &n);
    const char **refs = strings(cJSON_GetObjectItem(ref, "refs"), &nr);
    assert_int_equal(n, nr);

    /* embeddings */
    float *emb = malloc((size_t)n * (size_t)H * sizeof *emb);
    double *row = malloc((size_t)(n > H ? n : H) * sizeof *row);
    secap_sim_embed(m, n, hyps, emb);
    double d_emb = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < H; j++) row[j] = emb[(size_t)i * (size_t)H + (size_t)j];
        d_emb = fmax(d_emb, maxdiff_row(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "emb_hyp"), i), row, H));
    }
    /* pair cosines */
    double *cos = malloc((size_t)n * sizeof *cos);
    secap_sim_pairs(m, n, hyps, refs, cos);
    double d_cos = maxdiff_row(cJSON_GetObjectItem(ref, "cos"), cos, n);
    /* the identical pair */
    assert_true(fabs(cos[1] - 1.0) < 1e-6);
    /* matrix over the hypotheses */
    double *mat = malloc((size_t)n * (size_t)n * sizeof *mat);
    secap_sim_matrix(m, n, hyps, mat);
    double d_mat = 0;
    for (int i = 0; i < n; i++) {
        d_mat = fmax(d_mat, maxdiff_row(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "matrix"), i),
                                        mat + (size_t)i * (size_t)n, n));
        assert_true(fabs(mat[(size_t)i * (size_t)n + (size_t)i] - 1.0) < 1e-6);
    }
    /* items with 1..3 references, and the summary */
    const cJSON *ir = cJSON_GetObjectItem(ref, "item_refs");
    const char ***irefs = malloc((size_t)n * sizeof *irefs);
    int *nrefs = malloc((size_t)n * sizeof *nrefs);
    for (int i = 0; i < n; i++) irefs[i] = strings(cJSON_GetArrayItem(ir, i), &nrefs[i]);
    double *items = malloc((size_t)n * sizeof *items);
    secap_sim_items(m, n, hyps, (const char *const *const *)irefs, nrefs, items);
    double d_items = maxdiff_row(cJSON_GetObjectItem(ref, "items"), items, n);
    secap_sim_summary s;
    secap_sim_summarize(items, n, &s);
    double want_sim = cJSON_GetObjectItem(ref, "similarity")->valuedouble;
    printf("  %s: max |diff| embeddings %.3g, cosines %.3g, matrix %.3g, items %.3g; similarity %.4f (torch %.4f), "
           "shares %.3f %.3f %.3f\n", tag, d_emb, d_cos, d_mat, d_items, s.similarity, want_sim, s.share[0],
           s.share[1], s.share[2]);
    assert_true(d_emb < TOL);
    assert_true(d_cos < TOL);
    assert_true(d_mat < TOL);
    assert_true(d_items < TOL);
    assert_true(fabs(s.similarity - want_sim) < 100 * TOL);
    assert_int_equal(s.n, n);
    for (int t = 0; t < SECAP_SIM_NTHRESH; t++)
        assert_near(s.share[t], cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "share"), t)->valuedouble, 1e-12);
    /* item scores do not depend on how texts are batched */
    secap_sim_opts o;
    secap_sim_opts_default(&o);
    o.batch = 1;
    secap_simmodel *m1 = secap_sim_load(refp(0, wpath), VOCAB, &o);
    double *cos1 = malloc((size_t)n * sizeof *cos1);
    secap_sim_pairs(m1, n, hyps, refs, cos1);
    for (int i = 0; i < n; i++) assert_true(fabs(cos1[i] - cos[i]) < 1e-5);
    secap_sim_free(m1);

    for (int i = 0; i < n; i++) free(irefs[i]);
    free(irefs); free(nrefs); free(items); free(mat); free(cos); free(cos1); free(row); free(emb);
    free(hyps); free(refs);
    secap_sim_free(m);
    cJSON_Delete(ref);
}

static void test_parity_ernie(void **st) { (void)st; parity("ernie"); }
static void test_parity_bert(void **st) { (void)st; parity("bert"); }

/* "above 0.5" is strict: an item at exactly a threshold is not counted. */
static void test_threshold_shares(void **st)
{
    (void)st;
    const double items[8] = {0.5, 0.50001, 0.6, 0.7, 0.8, 0.9, 0.1, -0.2};
    secap_sim_summary s;
    secap_sim_summarize(items, 8, &s);
    assert_int_equal(s.n, 8);
    assert_near(s.similarity, 100.0 * (0.5 + 0.50001 + 0.6 + 0.7 + 0.8 + 0.9 + 0.1 - 0.2) / 8, 1e-9);
    assert_near(s.share[0], 5.0 / 8, 1e-15);   /* 0.50001 0.6 0.7 0.8 0.9 */
    assert_near(s.share[1], 3.0 / 8, 1e-15);   /* 0.7 0.8 0.9 */
    assert_near(s.share[2], 1.0 / 8, 1e-15);   /* 0.9 */
    const double all_high[2] = {0.95, 1.0};
    secap_sim_summarize(all_high, 2, &s);
    for (int t = 0; t < SECAP_SIM_NTHRESH; t++) assert_near(s.share[t], 1.0, 0);
    EXPECT_FATAL(secap_sim_summarize(items, 0, &s), "no items");
}

/* Keep the 5 of 8 draws most similar to all draws; ties go to the earlier draw. */
static void test_select(void **st)
{
    (void)st;
    enum { N = 8 };
    /* row means: draw i's similarity to draw j is a[i] * a[j], except 1 on the diagonal */
    const double a[N] = {0.9, 0.1, 0.8, 0.5, 0.5, 0.95, 0.2, 0.7};
    double sim[N * N], score[N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) sim[i * N + j] = i == j ? 1.0 : a[i] * a[j];
    int kept[N];
    assert_int_equal(secap_sim_select(sim, N, 5, kept, score), 5);
    /* means rank 5 > 0 > 2 > 7 > {3, 4 tie} > 6 > 1: keep 0 2 3 5 7 (3 before 4) */
    const int want[5] = {0, 2, 3, 5, 7};
    for (int k = 0; k < 5; k++) assert_int_equal(kept[k], want[k]);
    double sum0 = 1;
    for (int j = 1; j < N; j++) sum0 += a[0] * a[j];
    assert_near(score[0], sum0 / N, 1e-15);
    assert_int_equal(secap_sim_select(sim, N, 8, kept, NULL), 8);
    for (int k = 0; k < 8; k++) assert_int_equal(kept[k], k);
    EXPECT_FATAL(secap_sim_select(sim, N, 9, kept, NULL), "keep 9 of 8");
}

static void test_cosine(void **st)
{
    (void)st;
    const float a[3] = {1, 2, 2}, b[3] = {-2, -4, -4}, z[3] = {0, 0, 0}, c[3] = {2, -1, 0};
    assert_near(secap_sim_cosine(a, a, 3), 1.0, 1e-12);
    assert_near(secap_sim_cosine(a, b, 3), -1.0, 1e-12);
    assert_near(secap_sim_cosine(a, c, 3), 0.0, 1e-12);
    assert_near(secap_sim_cosine(a, z, 3), 0.0, 0);   /* F.normalize: a zero vector stays zero */
}

static void test_errors(void **st)
{
    (void)st;
    /* a vocabulary with more entries than the model's embedding table */
    const char *big = tu_tmp("big_vocab.txt");
    FILE *f = fopen(big, "w");
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", f);
    for (int i = 0; i < 200; i++) fprintf(f, "w%d\n", i);
    fclose(f);
    EXPECT_FATAL(secap_sim_load(refp(0, "sim_bert.h5"), big, NULL), "embeds only");
    EXPECT_FATAL(secap_sim_load(tu_tmp("no_such_model.h5"), VOCAB, NULL), "no_such_model.h5");
    secap_sim_opts o;
    secap_sim_opts_default(&o);
    o.max_len = 1;
    EXPECT_FATAL(secap_sim_load(refp(0, "sim_bert.h5"), VOCAB, &o), "max_len");
    /* every item needs a reference */
    secap_simmodel *m = secap_sim_load(refp(0, "sim_bert.h5"), VOCAB, NULL);
    const char *h[1] = {"开心"};
    const char *const *r[1] = {NULL};
    int nr[1] = {0};
    double item[1];
    EXPECT_FATAL(secap_sim_items(m, 1, h, r, nr, item), "references");
    secap_sim_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_ernie),
        cmocka_unit_test(test_parity_bert),
        cmocka_unit_test(test_threshold_shares),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
