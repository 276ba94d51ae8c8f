/* Findings of the fuzz targets (tests/fuzz/, README.md "Reliability") as unit
 * tests: each case builds the damaged input the fuzzer found, in its
 * simplest form, and checks the reader refuses it with a clear message.  In
 * the sanitizer build LeakSanitizer also checks that the refusal leaks
 * nothing (tests/run.sh). */
#include "testutil.h"
#include "secap/dataset.h"
#include "secap/featcache.h"
#include "secap/h5io.h"
#include "secap/score.h"

#include <hdf5.h>

/* A feature cache whose root attributes match key {"enc", "set"}, holding
 * `name` as an uncompressed [rows x 3] dataset of type `type`, or, with
 * rows < 0, as a chunked deflated [2^28 x 3] float dataset never written
 * (its chunks read back as fill values: a huge extent in a small file). */
static void write_cache(const char *path, const char *name, hid_t type, int64_t rows)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    const char *attrs[3][2] = { { "format", "secap-features-2" }, { "encoder", "enc" }, { "settings", "set" } };
    for (int i = 0; i < 3; i++) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(attrs[i][1]) + 1);
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, attrs[i][0], t, s, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(H5Awrite(a, t, attrs[i][1]) >= 0);
        H5Aclose(a); H5Sclose(s); H5Tclose(t);
    }
    hsize_t dims[2] = { rows < 0 ? (hsize_t)1 << 28 : (hsize_t)rows, 3 }, chunk[2] = { 1024, 3 };
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (rows < 0) { H5Pset_chunk(dcpl, 2, chunk); H5Pset_deflate(dcpl, 4); }
    hid_t d = H5Dcreate2(f, name, type, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(d >= 0);
    if (rows > 0) {
        double v[64] = { 0 };
        assert_true(rows * 3 <= 64);
        assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    }
    H5Dclose(d); H5Pclose(dcpl); H5Sclose(s); H5Fclose(f);
}

/* featcache: features stored as integers were refused but leaked the
 * dataset name (fuzz target featcache, seed-ints.h5). */
static void test_featcache_int_features(void **st)
{
    (void)st;
    const char *p = tu_tmp("ints.h5");
    write_cache(p, "a", H5T_STD_I32LE, 2);
    secap_featcache_key key = { "enc", "set" };
    int rebuilt = -1;
    secap_featcache *fc = secap_featcache_open(p, &key, &rebuilt);
    assert_int_equal(rebuilt, 0);
    assert_true(secap_featcache_has(fc, "a"));
    int64_t F, D;
    EXPECT_FATAL(secap_featcache_get(fc, "a", &F, &D), "the dataset is not a float32");
    secap_featcache_close(fc);
}

/* h5io: a dataset declaring 2^28 x 3 floats over a few stored bytes made
 * every read allocate 3 GB and spend minutes in H5Dread (fuzz target
 * featcache, regress-huge-extent): refused before allocating. */
static void test_huge_extent(void **st)
{
    (void)st;
    const char *p = tu_tmp("huge.h5");
    write_cache(p, "a", H5T_IEEE_F32LE, -1);
    secap_h5 *h = secap_h5_open(p, 0);
    EXPECT_FATAL(secap_h5_read_f32(h, "a", NULL, NULL), "dataset a declares 805306368 values but the file holds only");
    float small[4];
    assert_int_equal(secap_h5_try_read_f32(h, "a", small), -1);
    secap_h5_close(h);
    secap_featcache_key key = { "enc", "set" };
    secap_featcache *fc = secap_featcache_open(p, &key, NULL);
    int64_t F, D;
    EXPECT_FATAL(secap_featcache_get(fc, "a", &F, &D), "features of a are damaged");
    secap_featcache_close(fc);
    /* a real all-zero dataset compresses well but stays readable */
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = { 4096, 64 }, chunk[2] = { 4096, 64 };
    hid_t s = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    H5Pset_deflate(dcpl, 9);
    hid_t d = H5Dcreate2(f, "zeros", H5T_IEEE_F32LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    float *z = calloc(4096 * 64, sizeof *z);
    assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z) >= 0);
    free(z);
    H5Dclose(d); H5Pclose(dcpl); H5Sclose(s); H5Fclose(f);
    h = secap_h5_open(p, 0);
    int rank;
    int64_t shape[SECAP_H5_MAX_RANK];
    float *x = secap_h5_read_f32(h, "zeros", &rank, shape);
    assert_int_equal(rank, 2);
    assert_int_equal(shape[0], 4096);
    free(x);
    secap_h5_close(h);
}

/* score: a corpus without a single token (punctuation and empty captions
 * only) did pointer arithmetic on a NULL token array (UBSan; fuzz target
 * score_json, regress-no-tokens). */
static void test_score_no_tokens(void **st)
{
    (void)st;
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    const char *refs[2] = { "。", "" };
    secap_corpus_add(c, "a", "", refs, 2);
    secap_corpus_add(c, "b", "！？", refs, 1);
    secap_scores total, per[2];
    secap_score(c, SECAP_METRIC_ALL, &total, per);
    /* BLEU, METEOR and CIDEr-D have nothing to match: 0.  ROUGE_L is 1: the
     * toolkit splits "" into [""], one empty token matching the other. */
    for (int k = 0; k < 4; k++) assert_true(total.bleu[k] == 0);
    assert_true(total.meteor == 0 && total.cider == 0);
    assert_true(total.rouge_l == 1);
    for (int i = 0; i < 2; i++) assert_true(per[i].meteor == 0 && per[i].cider == 0 && per[i].bleu[3] == 0);
    secap_corpus_free(c);
}

/* data config: "nan" passed every range check (comparisons with NaN are
 * false), then (int)NaN was undefined (UBSan; fuzz target ini,
 * regress-nan-value). */
static void test_config_nan(void **st)
{
    (void)st;
    secap_data_config c;
    secap_data_config_default(&c);
    EXPECT_FATAL(secap_data_config_set(&c, "batch_size", "nan"), "data.batch_size = 'nan': not a number");
    EXPECT_FATAL(secap_data_config_set(&c, "data.max_seconds", "NAN"), "not a number in [0, 1e+06]");
    EXPECT_FATAL(secap_data_config_set(&c, "seed", "-nan"), "data.seed");
    EXPECT_FATAL(secap_data_config_set(&c, "split_ratios", "nan,0,1"), "split_ratios = 'nan,0,1'");
    EXPECT_FATAL(secap_data_config_set(&c, "split_ratios", "0.5,0.5,nan"), "summing to 1");
    assert_int_equal(c.batch_size, 8);
    assert_true(c.max_seconds == 0 && c.split_ratios[0] == 0.9);
    assert_int_equal(secap_data_config_set(&c, "max_seconds", "2.5"), 0);
    assert_true(c.max_seconds == 2.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_nan),
        cmocka_unit_test(test_score_no_tokens),
        cmocka_unit_test(test_featcache_int_features),
        cmocka_unit_test(test_huge_extent),
    };
    return cmocka_run_group_tests_name("fuzz_regress", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
