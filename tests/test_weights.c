/* Weight files: round trip, refusal of bad tensors/attributes, the HuBERT
 * config and name table against the PyTorch reference files
 * (tests/ref_hubert.py), and the frame-count formula against HF's. */
/* testutil.h's EXPECT_FATAL keeps a non-volatile flag across setjmp; it is
 * benign (set again on the longjmp path) but -O3 warns.  Drop this once the
 * flag is volatile there. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"
#include "secap/hubert_cfg.h"
#include "secap/weights.h"
#include "secap/h5io.h"

#include <hdf5.h>
#include <unistd.h>

/* A small file: a [2,3] f32, b [4] bf16, c scalar-ish [1] f32, attributes. */
static void write_small(const char *path)
{
    secap_weights *w = secap_weights_create(path);
    float a[6] = { 1, -2, 3.5f, 1e-3f, -0.0f, 7 };
    float b[4] = { 1.0f, 1.00390625f, 1.005859375f, -3.14159f };  /* ties / rounding */
    float c[1] = { 42 };
    int64_t sa[2] = { 2, 3 }, sb[1] = { 4 }, sc[1] = { 1 };
    secap_weights_write(w, "enc.a.weight", 2, sa, a, SECAP_WDTYPE_F32);
    secap_weights_write(w, "enc.b", 1, sb, b, SECAP_WDTYPE_BF16);
    secap_weights_write(w, "masked_spec_embed", 1, sc, c, SECAP_WDTYPE_F32);
    secap_weights_set_int(w, "hidden_size", 64);
    secap_weights_set_double(w, "layer_norm_eps", 1e-5);
    secap_weights_set_string(w, "feat_extract_norm", "layer");
    int64_t dims[3] = { 512, 256, 128 };
    secap_weights_set_ints(w, "conv_dim", dims, 3);
    /* the file appears only on close */
    assert_int_equal(access(path, F_OK), -1);
    secap_weights_close(w);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_bf16_rounding(void **st)
{
    (void)st;
    assert_int_equal(secap_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(secap_f32_to_bf16(1.00390625f), 0x3f80);     /* tie -> even */
    assert_int_equal(secap_f32_to_bf16(1.01171875f), 0x3f82);     /* tie -> even (up) */
    assert_int_equal(secap_f32_to_bf16(1.005859375f), 0x3f81);    /* above half -> up */
    assert_true(isnan(secap_bf16_to_f32(secap_f32_to_bf16(NAN))));
    assert_true(isinf(secap_bf16_to_f32(secap_f32_to_bf16(INFINITY))));
    assert_true(secap_bf16_to_f32(0x4049) == 3.140625f);
}

static void test_roundtrip(void **st)
{
    (void)st;
    const char *p = tu_tmp("small.h5");
    write_small(p);
    secap_weights *w = secap_weights_open(p);
    assert_true(secap_weights_has(w, "enc.a.weight"));
    assert_false(secap_weights_has(w, "enc.nope"));
    assert_true(secap_weights_has_attr(w, "hidden_size"));
    assert_false(secap_weights_has_attr(w, "nope"));
    int64_t shape[SECAP_WEIGHTS_MAX_DIMS];
    secap_wdtype dt;
    assert_int_equal(secap_weights_info(w, "enc.b", shape, &dt), 1);
    assert_int_equal(shape[0], 4);
    assert_int_equal(dt, SECAP_WDTYPE_BF16);
    assert_int_equal(secap_weights_info(w, "enc.a.weight", shape, &dt), 2);
    assert_int_equal(dt, SECAP_WDTYPE_F32);

    float a[6], b[4];
    int64_t sa[2] = { 2, 3 }, sb[1] = { 4 };
    secap_weights_read(w, "enc.a.weight", 2, sa, a);
    assert_true(a[0] == 1 && a[1] == -2 && a[2] == 3.5f && a[3] == 1e-3f && a[5] == 7 && signbit(a[4]));
    secap_weights_read(w, "enc.b", 1, sb, b);
    assert_true(b[0] == 1.0f && b[1] == 1.0f && b[2] == 1.0078125f && b[3] == -3.140625f);
    uint16_t h[6];
    secap_weights_read_bf16(w, "enc.b", 1, sb, h);
    assert_int_equal(h[3], 0xc049);
    secap_weights_read_bf16(w, "enc.a.weight", 2, sa, h);   /* f32 -> bf16 */
    assert_int_equal(h[2], 0x4060);

    assert_int_equal(secap_weights_attr_int(w, "hidden_size"), 64);
    assert_true(secap_weights_attr_double(w, "layer_norm_eps") == 1e-5);
    assert_true(secap_weights_attr_double(w, "hidden_size") == 64.0);   /* int widens */
    assert_string_equal(secap_weights_attr_string(w, "feat_extract_norm"), "layer");
    int64_t d[8];
    assert_int_equal(secap_weights_attr_ints(w, "conv_dim", d, 8), 3);
    assert_true(d[0] == 512 && d[1] == 256 && d[2] == 128);
    assert_int_equal(secap_weights_attr_ints(w, "hidden_size", d, 8), 1);
    assert_int_equal(d[0], 64);
    const char *allow[] = { "masked_spec_*", NULL };
    secap_weights_close_checked(w, allow);

    /* skip() also counts as used */
    w = secap_weights_open(p);
    secap_weights_read(w, "enc.a.weight", 2, sa, a);
    secap_weights_read(w, "enc.b", 1, sb, b);
    secap_weights_skip(w, "masked_spec_embed");
    secap_weights_skip(w, "not_there");
    secap_weights_close_checked(w, NULL);
}

static void test_refusals(void **st)
{
    (void)st;
    const char *p = tu_tmp("refuse.h5");
    write_small(p);
    secap_weights *w = secap_weights_open(p);
    float buf[16];
    int64_t s23[2] = { 2, 3 }, s32[2] = { 3, 2 }, s6[1] = { 6 };
    EXPECT_FATAL(secap_weights_read(w, "enc.c.weight", 2, s23, buf), "missing tensor enc.c.weight, expected shape [2, 3]");
    EXPECT_FATAL(secap_weights_read(w, "enc.a.weight", 2, s32, buf), "enc.a.weight has shape [2, 3], the model expects [3, 2]");
    EXPECT_FATAL(secap_weights_read(w, "enc.a.weight", 1, s6, buf), "expects [6]");
    EXPECT_FATAL(secap_weights_read(w, "enc.a.weight", 1, s6, buf), p);
    EXPECT_FATAL(secap_weights_attr_int(w, "num_hidden_layers"), "missing attribute num_hidden_layers");
    EXPECT_FATAL(secap_weights_attr_int(w, "layer_norm_eps"), "attribute layer_norm_eps is a float");
    EXPECT_FATAL(secap_weights_attr_int(w, "conv_dim"), "with 3 value(s), expected one integer");
    EXPECT_FATAL(secap_weights_attr_string(w, "hidden_size"), "expected one string");
    int64_t d[2];
    EXPECT_FATAL(secap_weights_attr_ints(w, "conv_dim", d, 2), "expected 1 to 2 integers");
    /* the handle survives caught errors */
    secap_weights_read(w, "enc.a.weight", 2, s23, buf);
    /* enc.b and masked_spec_embed never read: both named */
    EXPECT_FATAL(secap_weights_close_checked(w, NULL), "2 unknown tensor(s) the model does not use: enc.b, masked_spec_embed");

    /* dtypes the writer never makes: float64, uint16 without the tag, int32 */
    const char *q = tu_tmp("dtypes.h5");
    hid_t f = H5Fcreate(q, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dim = 2;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    double dv[2] = { 1, 2 };
    uint16_t uv[2] = { 1, 2 };
    int32_t iv[2] = { 1, 2 };
    hid_t ds = H5Dcreate2(f, "f64", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, dv); H5Dclose(ds);
    ds = H5Dcreate2(f, "u16", H5T_STD_U16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, uv); H5Dclose(ds);
    ds = H5Dcreate2(f, "i32", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, iv); H5Dclose(ds);
    hid_t g = H5Gcreate2(f, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); H5Gclose(g);
    H5Sclose(sp); H5Fclose(f);
    w = secap_weights_open(q);
    int64_t s2[1] = { 2 };
    EXPECT_FATAL(secap_weights_read(w, "f64", 1, s2, buf), "tensor f64 is stored as float64, expected float32 or bfloat16");
    EXPECT_FATAL(secap_weights_read(w, "u16", 1, s2, buf), "uint16 without the attribute dtype=\"bfloat16\"");
    EXPECT_FATAL(secap_weights_read(w, "i32", 1, s2, buf), "stored as an integer type");
    EXPECT_FATAL(secap_weights_read(w, "grp", 1, s2, buf), "grp is not a dataset");
    const char *allow[] = { "f64", "u16", NULL };
    EXPECT_FATAL(secap_weights_close_checked(w, allow), "2 unknown tensor(s) the model does not use: grp, i32");

    /* opening */
    EXPECT_FATAL(secap_weights_open(tu_tmp("absent.h5")), "absent.h5: cannot read");
    FILE *txt = fopen(tu_tmp("text.h5"), "w");
    fputs("not hdf5\n", txt);
    fclose(txt);
    EXPECT_FATAL(secap_weights_open(tu_tmp("text.h5")), "not an HDF5 file");
    EXPECT_FATAL(secap_weights_open(tu_dir), "is a directory, not a weight file");

    /* writing */
    w = secap_weights_create(tu_tmp("dup.h5"));
    int64_t s1[1] = { 1 };
    secap_weights_write(w, "x", 1, s1, buf, SECAP_WDTYPE_F32);
    EXPECT_FATAL(secap_weights_write(w, "x", 1, s1, buf, SECAP_WDTYPE_F32), "tensor x written twice");
    EXPECT_FATAL(secap_weights_write(w, "a/b", 1, s1, buf, SECAP_WDTYPE_F32), "bad name \"a/b\"");
    secap_weights_discard(w);
    assert_int_equal(access(tu_tmp("dup.h5"), F_OK), -1);
    EXPECT_FATAL(secap_weights_create("/nonexistent_dir_secap/x.h5"), "cannot create the temporary file");
}

/* Values of tests/ref_hubert.py's LARGE config. */
static void test_ref_config(void **st)
{
    (void)st;
    secap_weights *w = secap_weights_open(tu_ref_path("hubert_large_small.h5"));
    secap_hubert_config c;
    secap_hubert_config_read(&c, w);
    assert_int_equal(c.hidden_size, 96);
    assert_int_equal(c.num_hidden_layers, 3);
    assert_int_equal(c.num_attention_heads, 4);
    assert_int_equal(c.intermediate_size, 256);
    assert_int_equal(c.nconv, 7);
    static const int dim[7] = { 64, 64, 96, 96, 128, 128, 160 }, k[7] = { 10, 3, 3, 3, 3, 2, 2 },
                     s[7] = { 5, 2, 2, 2, 2, 2, 2 };
    for (int i = 0; i < 7; i++) {
        assert_int_equal(c.conv_dim[i], dim[i]);
        assert_int_equal(c.conv_kernel[i], k[i]);
        assert_int_equal(c.conv_stride[i], s[i]);
    }
    assert_int_equal(c.conv_bias, 1);
    assert_int_equal(c.feat_extract_norm, SECAP_HUBERT_NORM_LAYER);
    assert_int_equal(c.do_stable_layer_norm, 1);
    assert_int_equal(c.feat_proj_layer_norm, 1);
    assert_int_equal(c.num_conv_pos_embeddings, 16);
    assert_int_equal(c.num_conv_pos_embedding_groups, 8);
    assert_true(c.layer_norm_eps == 1e-5);
    assert_int_equal(secap_hubert_config_frames(&c, 24000), 74);
    secap_weights_close(w);

    w = secap_weights_open(tu_ref_path("hubert_base_small.h5"));
    secap_hubert_config_read(&c, w);
    assert_int_equal(c.hidden_size, 64);
    assert_int_equal(c.feat_extract_norm, SECAP_HUBERT_NORM_GROUP);
    assert_int_equal(c.do_stable_layer_norm, 0);
    assert_int_equal(c.conv_bias, 0);
    assert_int_equal(c.conv_dim[6], 512);
    assert_int_equal(c.num_conv_pos_embeddings, 128);
    assert_int_equal(c.num_conv_pos_embedding_groups, 16);
    secap_weights_close(w);
}

/* Reads every tensor of the name table; nothing may be left over but the
 * ignorable names.  Returns a checksum of all values. */
static double load_all(const char *path, int use_bf16, int *ntensors)
{
    secap_weights *w = secap_weights_open(path);
    secap_hubert_config c;
    secap_hubert_config_read(&c, w);
    int n = secap_hubert_tensors(&c, NULL, 0);
    secap_hubert_tensor *t = secap_xmalloc((size_t)n * sizeof *t, "table");
    assert_int_equal(secap_hubert_tensors(&c, t, n), n);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        size_t cnt = 1;
        for (int d = 0; d < t[i].ndim; d++) cnt *= (size_t)t[i].shape[d];
        float *x = secap_xmalloc(cnt * sizeof *x, "tensor");
        if (use_bf16) {
            uint16_t *h = secap_xmalloc(cnt * sizeof *h, "tensor");
            secap_weights_read_bf16(w, t[i].name, t[i].ndim, t[i].shape, h);
            for (size_t j = 0; j < cnt; j++) x[j] = secap_bf16_to_f32(h[j]);
            free(h);
        } else {
            secap_weights_read(w, t[i].name, t[i].ndim, t[i].shape, x);
        }
        for (size_t j = 0; j < cnt; j++) sum += x[j] * (double)((j % 7) + 1);
        free(x);
    }
    free(t);
    secap_weights_close_checked(w, SECAP_HUBERT_IGNORABLE);
    *ntensors = n;
    return sum;
}

static void test_ref_tensors(void **st)
{
    (void)st;
    int n;
    load_all(tu_ref_path("hubert_base_small.h5"), 0, &n);
    assert_int_equal(n, 7 + 2 + 4 + 5 + 2 * 16);   /* convs, LN0, proj LN+lin, pos conv+enc LN, layers */
    double a = load_all(tu_ref_path("hubert_large_small.h5"), 1, &n);   /* f32 -> bf16 in C */
    double b = load_all(tu_ref_path("hubert_large_small_bf16.h5"), 1, &n); /* bf16 from Python */
    double c = load_all(tu_ref_path("hubert_large_small_bf16.h5"), 0, &n); /* bf16 widened */
    printf("large checksum via C rounding %.9g, Python rounding %.9g, widened %.9g\n", a, b, c);
    assert_true(a == b && b == c);   /* C and Python round identically */
    assert_int_equal(n, 7 * 4 + 4 + 5 + 3 * 16);

    /* without the allow-list, masked_spec_embed of the base file is unknown */
    secap_weights *w = secap_weights_open(tu_ref_path("hubert_base_small.h5"));
    secap_hubert_config cfg;
    secap_hubert_config_read(&cfg, w);
    int64_t s[3] = { 64, 64, 128 };
    float *v = secap_xmalloc(64 * 4 * 128 * sizeof *v, "v");
    EXPECT_FATAL(secap_weights_read(w, "encoder.pos_conv_embed.conv.weight_v", 3, s, v),
                 "has shape [64, 4, 128], the model expects [64, 64, 128]");
    free(v);
    EXPECT_FATAL(secap_weights_close_checked(w, NULL), "masked_spec_embed");
}

static void test_config_refusals(void **st)
{
    (void)st;
    const char *p = tu_tmp("cfg.h5");
    int64_t k[7] = { 10, 3, 3, 3, 3, 2, 2 }, s[7] = { 5, 2, 2, 2, 2, 2, 2 }, d[7] = { 8, 8, 8, 8, 8, 8, 8 };
    for (int variant = 0; variant < 4; variant++) {
        secap_weights *w = secap_weights_create(p);
        secap_weights_set_string(w, "model_type", "hubert");
        secap_weights_set_string(w, "hidden_act", "gelu");
        secap_weights_set_string(w, "feat_extract_activation", "gelu");
        secap_weights_set_string(w, "feat_extract_norm", variant == 3 ? "batch" : "group");
        secap_weights_set_int(w, "hidden_size", variant == 0 ? 10 : 16);
        secap_weights_set_int(w, "num_hidden_layers", 1);
        secap_weights_set_int(w, "num_attention_heads", 4);
        secap_weights_set_int(w, "intermediate_size", 32);
        secap_weights_set_ints(w, "conv_dim", d, 7);
        secap_weights_set_ints(w, "conv_kernel", k, variant == 1 ? 6 : 7);
        secap_weights_set_ints(w, "conv_stride", s, 7);
        if (variant != 2) secap_weights_set_int(w, "conv_bias", 0);
        secap_weights_set_int(w, "do_stable_layer_norm", 0);
        secap_weights_set_int(w, "num_conv_pos_embeddings", 16);
        secap_weights_set_int(w, "num_conv_pos_embedding_groups", 2);
        secap_weights_set_double(w, "layer_norm_eps", 1e-5);
        secap_weights_close(w);
        w = secap_weights_open(p);
        secap_hubert_config c;
        static const char *const want[4] = {
            "hidden_size 10 is not a multiple of num_attention_heads 4",
            "conv_dim, conv_kernel and conv_stride have 7, 6 and 7 entries",
            "missing attribute conv_bias",
            "feat_extract_norm = \"batch\"",
        };
        EXPECT_FATAL(secap_hubert_config_read(&c, w), want[variant]);
        secap_weights_close(w);
    }
}

/* secap_hubert_frames == HF _get_feat_extract_output_lengths (hubert_frames.txt). */
static void test_frames(void **st)
{
    (void)st;
    static const int k[7] = { 10, 3, 3, 3, 3, 2, 2 }, s[7] = { 5, 2, 2, 2, 2, 2, 2 };
    FILE *f = fopen(tu_ref_path("hubert_frames.txt"), "r");
    if (!f) fail_msg("cannot open %s (run tests/ref_hubert.py build/ref)", tu_ref_path("hubert_frames.txt"));
    char line[256];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        long long samples, frames;
        if (sscanf(line, "%lld %lld", &samples, &frames) != 2) fail_msg("bad line: %s", line);
        long long got = secap_hubert_frames(samples, k, s, 7);
        if (got != frames && bad++ < 5) printf("samples %lld: C %lld, HF %lld\n", samples, got, frames);
        n++;
    }
    fclose(f);
    printf("frame counts checked: %d lengths, %d mismatches\n", n, bad);
    assert_true(n > 2000);
    assert_int_equal(bad, 0);
    assert_int_equal(secap_hubert_frames(400, k, s, 7), 1);
    assert_int_equal(secap_hubert_frames(399, k, s, 7), 0);
    assert_int_equal(secap_hubert_frames(0, k, s, 7), 0);
    assert_int_equal(secap_hubert_frames(160000, k, s, 7), 499);
}

/* NaN / inf in a weight file are refused on read with the tensor and the
 * element; the writer refuses to store them. */
static void test_nonfinite_refused(void **st)
{
    (void)st;
    const char *p = tu_tmp("nan.h5");
    secap_h5 *h = secap_h5_create(p);
    float a[6] = { 1, 2, 3, 4, 5, NAN };
    uint16_t b[3] = { 0x3f80, 0x7f80 /* +inf */, 0x3f80 };
    int64_t sa[2] = { 2, 3 }, sb[1] = { 3 };
    secap_h5_write_f32(h, "enc.a.weight", a, 2, sa, 0);
    secap_h5_write_u16(h, "enc.b.bias", b, 1, sb, 0);
    secap_h5_set_attr_vstr(h, "enc.b.bias", "dtype", "bfloat16");
    secap_h5_commit(h);
    secap_weights *w = secap_weights_open(p);
    float buf[8];
    uint16_t hb[8];
    EXPECT_FATAL(secap_weights_read(w, "enc.a.weight", 2, sa, buf), "tensor enc.a.weight holds NaN at [1, 2] of [2, 3]");
    EXPECT_FATAL(secap_weights_read(w, "enc.a.weight", 2, sa, buf), p);
    EXPECT_FATAL(secap_weights_read(w, "enc.b.bias", 1, sb, buf), "tensor enc.b.bias holds +inf at [1] of [3]");
    EXPECT_FATAL(secap_weights_read_bf16(w, "enc.b.bias", 1, sb, hb), "tensor enc.b.bias holds +inf at [1]");
    EXPECT_FATAL(secap_weights_read_bf16(w, "enc.a.weight", 2, sa, hb), "holds NaN at [1, 2]");
    secap_weights_discard(w);

    w = secap_weights_create(tu_tmp("nan_out.h5"));
    float c[2] = { -INFINITY, 0 };
    int64_t sc[1] = { 2 };
    EXPECT_FATAL(secap_weights_write(w, "x", 1, sc, c, SECAP_WDTYPE_F32), "tensor x to be written holds -inf at [0]");
    EXPECT_FATAL(secap_weights_write(w, "y", 1, sc, c, SECAP_WDTYPE_BF16), "tensor y to be written holds -inf");
    EXPECT_FATAL(secap_weights_write_bf16(w, "z", 1, sb, b), "tensor z to be written holds +inf at [1]");
    secap_weights_discard(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_nonfinite_refused),
        cmocka_unit_test(test_ref_config),
        cmocka_unit_test(test_ref_tensors),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests_name("weights", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
