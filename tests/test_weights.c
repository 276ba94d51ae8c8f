/* Weight files: round trip, refusal of bad tensors/attributes, the HuBERT
 * config and name table against the PyTorch reference files
 * (tests/ref_hubert.py), and the frame-count formula against HF's. */
/* testutil.h's EXPECT_FATAL keeps a non-volatile flag across setjmp; it is
 * benign (set again on the longjmp path) but -O3 warns.  Drop this once the
 * flag is volatile there. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"
#include "secap/h5io.h"
#include "secap/hubert.h"
#include "secap/weights.h"
#include "secap/h5io.h"

#include <cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <sys/stat.h>
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
    EXPECT_FATAL(secap_weights_attr_int(w, "layer_norm_eps"), "attribute layer_norm_eps is a float64 scalar, expected one integer or boolean");
    EXPECT_FATAL(secap_weights_attr_int(w, "conv_dim"), "attribute conv_dim is an int64 list of 3, expected one integer");
    EXPECT_FATAL(secap_weights_attr_string(w, "hidden_size"), "attribute hidden_size is an int64 scalar, expected one string");
    int64_t d[2];
    EXPECT_FATAL(secap_weights_attr_ints(w, "conv_dim", d, 2), "conv_dim is an int64 list of 3, expected a list of at most 2 integers or booleans");
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

/* The whole of a small text file, NUL-terminated (freed by the caller). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s: %s (run tests/ref_weights.py build/ref)", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = secap_xmalloc((size_t)n + 1, "file");
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int64_t json_i64(const cJSON *v)
{
    assert_true(cJSON_IsString(v));
    errno = 0;
    char *end;
    long long x = strtoll(v->valuestring, &end, 10);
    assert_true(errno == 0 && *end == 0);
    return x;
}

static double json_f64(const cJSON *v)
{
    assert_true(cJSON_IsString(v));
    char *end;
    double x = strtod(v->valuestring, &end);
    assert_true(*end == 0);
    return x;
}

/* tests/ref_weights.py: every attribute of a config.json written with plain
 * h5py (bools as enums, numpy widths, fixed/variable strings, lists) reads
 * back exactly through the getters its kind allows; None/dict keys are
 * absent; wrong kinds fail naming file, attribute, expected and found; the
 * HuBERT config reads from it; the two tensors match. */
static void test_h5py_attrs(void **st)
{
    (void)st;
    char *text = slurp(tu_ref_path("weights_h5py_expect.json"));
    cJSON *root = cJSON_Parse(text);
    assert_non_null(root);
    const char *path = tu_ref_path("weights_h5py.h5");
    secap_weights *w = secap_weights_open(path);
    int checked = 0, nattrs = cJSON_GetArraySize(cJSON_GetObjectItem(root, "attrs"));
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(root, "attrs")) {
        const char *name = cJSON_GetObjectItem(a, "name")->valuestring;
        const char *kind = cJSON_GetObjectItem(a, "kind")->valuestring;
        const cJSON *v = cJSON_GetObjectItem(a, "value");
        int64_t iv[16];
        double dv[16];
        if (!secap_weights_has_attr(w, name)) fail_msg("attribute %s missing", name);
        if (!strcmp(kind, "int") || !strcmp(kind, "bool")) {
            int64_t want = json_i64(v), got = secap_weights_attr_int(w, name);
            if (got != want) fail_msg("%s: attr_int %lld, h5py wrote %lld", name, (long long)got, (long long)want);
            assert_int_equal(secap_weights_attr_ints(w, name, iv, 16), 1);   /* a scalar is a 1-list */
            assert_true(iv[0] == want);
            /* integers widen where a double is asked; booleans are refused */
            if (kind[0] == 'i') assert_true(secap_weights_attr_double(w, name) == (double)want);
            else EXPECT_FATAL(secap_weights_attr_double(w, name), "is a boolean scalar, expected one number");
        } else if (!strcmp(kind, "double")) {
            double want = json_f64(v), got = secap_weights_attr_double(w, name);
            if (got != want) fail_msg("%s: attr_double %.17g, h5py wrote %.17g", name, got, want);
            assert_int_equal(secap_weights_attr_doubles(w, name, dv, 16), 1);
            assert_true(dv[0] == want);
        } else if (!strcmp(kind, "string")) {
            const char *got = secap_weights_attr_string(w, name);
            if (strcmp(got, v->valuestring)) fail_msg("%s: attr_string \"%s\", h5py wrote \"%s\"", name, got, v->valuestring);
        } else if (!strcmp(kind, "ints") || !strcmp(kind, "doubles")) {
            int n = cJSON_GetArraySize(v), isint = kind[0] == 'i';
            int got = isint ? secap_weights_attr_ints(w, name, iv, 16) : secap_weights_attr_doubles(w, name, dv, 16);
            if (got != n) fail_msg("%s: %d values, h5py wrote %d", name, got, n);
            for (int i = 0; i < n; i++) {
                const cJSON *e = cJSON_GetArrayItem(v, i);
                if (isint ? iv[i] != json_i64(e) : dv[i] != json_f64(e))
                    fail_msg("%s[%d]: C read %.17g, h5py wrote %s", name, i, isint ? (double)iv[i] : dv[i],
                             e->valuestring);
            }
        } else {
            fail_msg("unknown kind %s", kind);
        }
        checked++;
    }
    printf("h5py attributes checked: %d\n", checked);
    assert_int_equal(checked, nattrs);
    assert_true(checked >= 60);
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(root, "absent"))
        if (secap_weights_has_attr(w, a->valuestring)) fail_msg("%s should have been skipped", a->valuestring);

    /* wrong kinds: file, attribute, expected vs found, hint */
    int64_t iv[4];
    double dv[4];
    EXPECT_FATAL(secap_weights_attr_int(w, "layer_norm_eps"),
                 "attribute layer_norm_eps is a float64 scalar, expected one integer or boolean (hint:");
    EXPECT_FATAL(secap_weights_attr_int(w, "np_float16"), "np_float16 is a float16 scalar, expected one integer");
    EXPECT_FATAL(secap_weights_attr_int(w, "hidden_act"), "hidden_act is a string scalar, expected one integer");
    EXPECT_FATAL(secap_weights_attr_int(w, "conv_dim"), "conv_dim is an int64 list of 7, expected one integer");
    EXPECT_FATAL(secap_weights_attr_int(w, "bad_uint64_big"), "attribute bad_uint64_big on / = 18446744073709551615 does not fit a signed 64-bit integer");
    EXPECT_FATAL(secap_weights_attr_int(w, "bad_uint64_big"), path);
    EXPECT_FATAL(secap_weights_attr_double(w, "conv_bias"), "conv_bias is a boolean scalar, expected one number");
    EXPECT_FATAL(secap_weights_attr_double(w, "model_type"), "model_type is a string scalar, expected one number");
    EXPECT_FATAL(secap_weights_attr_string(w, "conv_bias"), "conv_bias is a boolean scalar, expected one string");
    EXPECT_FATAL(secap_weights_attr_string(w, "bad_strings"), "bad_strings is a string list of 2, expected one string");
    EXPECT_FATAL(secap_weights_attr_ints(w, "layer_weights", iv, 4),
                 "layer_weights is a float64 list of 3, expected a list of at most 4 integers or booleans");
    EXPECT_FATAL(secap_weights_attr_ints(w, "conv_dim", iv, 4), "conv_dim is an int64 list of 7, expected a list "
                 "of at most 4 integers or booleans (hint: the config holds more entries");
    EXPECT_FATAL(secap_weights_attr_ints(w, "bad_matrix", iv, 4), "bad_matrix is a 2-D int64 array of 4 values");
    EXPECT_FATAL(secap_weights_attr_doubles(w, "architectures", dv, 4), "architectures is a string list of 1, "
                 "expected a list of at most 4 numbers");
    EXPECT_FATAL(secap_weights_attr_doubles(w, "frozen_layers", dv, 4), "frozen_layers is a boolean list of 3");
    EXPECT_FATAL(secap_weights_attr_int(w, "task_specific_params"), "missing attribute task_specific_params");

    /* the HuBERT config reads from h5py's kinds (conv_bias = True, ...) */
    secap_hubert_config c;
    secap_hubert_config_read(&c, w);
    assert_int_equal(c.conv_bias, 1);
    assert_int_equal(c.do_stable_layer_norm, 1);
    assert_int_equal(c.feat_proj_layer_norm, 1);
    assert_int_equal(c.feat_extract_norm, SECAP_HUBERT_NORM_LAYER);
    assert_int_equal(c.hidden_size, 32);
    assert_int_equal(c.num_hidden_layers, 2);
    assert_int_equal(c.nconv, 7);
    assert_int_equal(c.conv_dim[6], 40);
    assert_int_equal(c.conv_kernel[0], 10);
    assert_int_equal(c.conv_stride[6], 2);
    assert_int_equal(c.num_conv_pos_embeddings, 16);
    assert_true(c.layer_norm_eps == 1e-5);

    /* the tensors */
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(root, "tensors")) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        const cJSON *shp = cJSON_GetObjectItem(t, "shape"), *val = cJSON_GetObjectItem(t, "value");
        int nd = cJSON_GetArraySize(shp), n = cJSON_GetArraySize(val);
        int64_t shape[4];
        for (int i = 0; i < nd; i++) shape[i] = cJSON_GetArrayItem(shp, i)->valueint;
        float x[64];
        assert_true(n <= 64);
        secap_weights_read(w, name, nd, shape, x);
        int bf = !strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, "bf16");
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(val, i);
            float want = bf ? secap_bf16_to_f32((uint16_t)json_i64(e)) : (float)json_f64(e);
            if (x[i] != want) fail_msg("%s[%d] = %.9g, h5py wrote %.9g", name, i, x[i], want);
        }
    }
    secap_weights_close_checked(w, NULL);
    cJSON_Delete(root);
    free(text);
}

static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 8.0 - 4.0);
    }
}

/* A file with tensors of odd byte sizes, so that only alignment keeps the
 * next one on an element boundary: f32 [3, 5], bf16 [7], f32 [2, 3],
 * bf16 [4, 33], and a chunked, deflated f32 [6, 4] and bf16 [10]. */
static void write_mappable(const char *path, float *a, float *b, float *c, float *d, float *e, uint16_t *f)
{
    fill(a, 15, 1); fill(b, 7, 2); fill(c, 6, 3); fill(d, 132, 4); fill(e, 24, 5);
    for (int i = 0; i < 10; i++) f[i] = secap_f32_to_bf16((float)i - 4.5f);
    secap_weights *w = secap_weights_create(path);
    secap_weights_write(w, "a", 2, (int64_t[]){ 3, 5 }, a, SECAP_WDTYPE_F32);
    secap_weights_write(w, "b", 1, (int64_t[]){ 7 }, b, SECAP_WDTYPE_BF16);
    secap_weights_write(w, "c", 2, (int64_t[]){ 2, 3 }, c, SECAP_WDTYPE_F32);
    secap_weights_write(w, "d", 2, (int64_t[]){ 4, 33 }, d, SECAP_WDTYPE_BF16);
    secap_weights_set_int(w, "hidden_size", 5);
    secap_weights_close(w);
    /* another writer's chunked, compressed datasets */
    secap_h5 *h = secap_h5_open(path, 1);
    secap_h5_write_f32(h, "zip.f32", e, 2, (int64_t[]){ 6, 4 }, 4);
    secap_h5_write_u16(h, "zip.bf16", f, 1, (int64_t[]){ 10 }, 4);
    secap_h5_set_attr_vstr(h, "zip.bf16", "dtype", "bfloat16");
    secap_h5_close(h);
}

/* secap_weights_mmap: mapped tensors equal what read gives (f32 and bf16),
 * sit on 64-byte boundaries, stay valid after the reader is closed; chunked
 * or compressed tensors and dtype mismatches give NULL, mark nothing, and
 * still read; wrong shapes and missing tensors fail naming file and tensor. */
static void test_mmap(void **st)
{
    (void)st;
    const char *p = tu_tmp("mapped.h5");
    float a[15], b[7], c[6], d[132], e[24];
    uint16_t f[10];
    write_mappable(p, a, b, c, d, e, f);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);

    secap_weights *w = secap_weights_open(p);
    secap_wmap *m = secap_weights_mmap(w);
    assert_int_equal(secap_wmap_bytes(m), (size_t)sb.st_size);
    const float *ma = secap_wmap_tensor(m, w, "a", 2, (int64_t[]){ 3, 5 }, SECAP_WDTYPE_F32);
    const float *mc = secap_wmap_tensor(m, w, "c", 2, (int64_t[]){ 2, 3 }, SECAP_WDTYPE_F32);
    const uint16_t *mb = secap_wmap_tensor(m, w, "b", 1, (int64_t[]){ 7 }, SECAP_WDTYPE_BF16);
    const uint16_t *md = secap_wmap_tensor(m, w, "d", 2, (int64_t[]){ 4, 33 }, SECAP_WDTYPE_BF16);
    assert_non_null(ma); assert_non_null(mb); assert_non_null(mc); assert_non_null(md);
    const void *ptrs[4] = { ma, mb, mc, md };
    for (int i = 0; i < 4; i++) assert_int_equal((uintptr_t)ptrs[i] % SECAP_H5_ALIGN, 0);
    float ra[15], rc[6];
    uint16_t rb[7], rd[132];
    secap_weights_read(w, "a", 2, (int64_t[]){ 3, 5 }, ra);
    secap_weights_read(w, "c", 2, (int64_t[]){ 2, 3 }, rc);
    secap_weights_read_bf16(w, "b", 1, (int64_t[]){ 7 }, rb);
    secap_weights_read_bf16(w, "d", 2, (int64_t[]){ 4, 33 }, rd);
    assert_memory_equal(ma, ra, sizeof ra);
    assert_memory_equal(ma, a, sizeof a);
    assert_memory_equal(mc, c, sizeof c);
    assert_memory_equal(mb, rb, sizeof rb);
    assert_memory_equal(md, rd, sizeof rd);
    for (int i = 0; i < 132; i++) assert_int_equal(md[i], secap_f32_to_bf16(d[i]));

    /* stored as another dtype than asked: NULL (the caller reads and converts) */
    assert_null(secap_wmap_tensor(m, w, "a", 2, (int64_t[]){ 3, 5 }, SECAP_WDTYPE_BF16));
    assert_null(secap_wmap_tensor(m, w, "b", 1, (int64_t[]){ 7 }, SECAP_WDTYPE_F32));
    /* chunked + deflated: NULL; read still works */
    assert_null(secap_wmap_tensor(m, w, "zip.f32", 2, (int64_t[]){ 6, 4 }, SECAP_WDTYPE_F32));
    assert_null(secap_wmap_tensor(m, w, "zip.bf16", 1, (int64_t[]){ 10 }, SECAP_WDTYPE_BF16));
    float re[24];
    uint16_t rf[10];
    secap_weights_read(w, "zip.f32", 2, (int64_t[]){ 6, 4 }, re);
    secap_weights_read_bf16(w, "zip.bf16", 1, (int64_t[]){ 10 }, rf);
    assert_memory_equal(re, e, sizeof e);
    assert_memory_equal(rf, f, sizeof f);
    /* checked as read is: shape, presence; naming file and tensor */
    EXPECT_FATAL(secap_wmap_tensor(m, w, "a", 2, (int64_t[]){ 5, 3 }, SECAP_WDTYPE_F32),
                 "tensor a has shape [3, 5], the model expects [5, 3]");
    EXPECT_FATAL(secap_wmap_tensor(m, w, "a", 1, (int64_t[]){ 15 }, SECAP_WDTYPE_F32), p);
    EXPECT_FATAL(secap_wmap_tensor(m, w, "zip.f32", 2, (int64_t[]){ 4, 6 }, SECAP_WDTYPE_F32),
                 "tensor zip.f32 has shape [6, 4], the model expects [4, 6]");
    EXPECT_FATAL(secap_wmap_tensor(m, w, "nope", 1, (int64_t[]){ 2 }, SECAP_WDTYPE_F32), "missing tensor nope");
    secap_weights_close_checked(w, NULL);

    /* valid after the reader is closed */
    float sum = 0;
    for (int i = 0; i < 15; i++) sum += ma[i] - a[i];
    assert_true(sum == 0);
    assert_memory_equal(md, rd, sizeof rd);

    /* a NULL result marks nothing: the tensor is still unread at close */
    w = secap_weights_open(p);
    secap_wmap *m2 = secap_weights_mmap(w);
    assert_null(secap_wmap_tensor(m2, w, "zip.f32", 2, (int64_t[]){ 6, 4 }, SECAP_WDTYPE_F32));
    assert_null(secap_wmap_tensor(m2, w, "a", 2, (int64_t[]){ 3, 5 }, SECAP_WDTYPE_BF16));
    assert_non_null(secap_wmap_tensor(m2, w, "b", 1, (int64_t[]){ 7 }, SECAP_WDTYPE_BF16));
    /* a mapping of another file is refused */
    write_small(tu_tmp("other.h5"));
    secap_weights *o = secap_weights_open(tu_tmp("other.h5"));
    EXPECT_FATAL(secap_wmap_tensor(m2, o, "enc.a.weight", 2, (int64_t[]){ 2, 3 }, SECAP_WDTYPE_F32),
                 "the mapping is of another file");
    secap_weights_close(o);
    EXPECT_FATAL(secap_weights_close_checked(w, NULL), "5 unknown tensor(s) the model does not use: a, c, d, zip.bf16, zip.f32");
    secap_wmap_free(m2);

    /* the old file renamed over by a new one: the mapping keeps the old data */
    write_mappable(tu_tmp("new.h5"), a, b, c, d, e, f);
    assert_int_equal(rename(tu_tmp("new.h5"), p), 0);
    assert_memory_equal(ma, ra, sizeof ra);
    secap_wmap_free(m);
    secap_wmap_free(NULL);
}

/* Files from other writers: a user block before HDF5's data, element-
 * misaligned and big-endian contiguous datasets (NULL: read instead). */
static void test_mmap_foreign(void **st)
{
    (void)st;
    const char *p = tu_tmp("foreign.h5");
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, 512);
    hid_t fh = H5Fcreate(p, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);   /* default alignment: 1 */
    H5Pclose(fcpl);
    float x[3] = { 1.5f, -2, 3 }, y[3] = { 4, 5, -6.25f };
    uint16_t u[3] = { 0x3f80, 0x4000, 0xc040 };
    hsize_t three = 3;
    hid_t sp = H5Screate_simple(1, &three, NULL);
    const char *names[6] = { "u0", "f0", "u1", "f1", "u2", "be" };
    for (int i = 0; i < 6; i++) {
        int isu = names[i][0] == 'u';
        hid_t ft = isu ? H5T_STD_U16LE : i == 5 ? H5T_IEEE_F32BE : H5T_IEEE_F32LE;
        hid_t ds = H5Dcreate2(fh, names[i], ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(ds, isu ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, isu ? (void *)u
                 : i == 1 ? (void *)x : (void *)y);
        if (isu) {
            hid_t t = H5Tcopy(H5T_C_S1), ss = H5Screate(H5S_SCALAR);
            H5Tset_size(t, H5T_VARIABLE);
            const char *tag = "bfloat16";
            hid_t at = H5Acreate2(ds, "dtype", t, ss, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(at, t, &tag);
            H5Aclose(at); H5Sclose(ss); H5Tclose(t);
        }
        H5Dclose(ds);
    }
    H5Sclose(sp);
    H5Fclose(fh);

    secap_weights *w = secap_weights_open(p);
    secap_wmap *m = secap_weights_mmap(w);
    secap_h5 *h = secap_h5_open(p, 0);
    int mapped = 0, misaligned = 0;
    for (int i = 0; i < 6; i++) {
        int isu = names[i][0] == 'u';
        secap_wdtype dt = isu ? SECAP_WDTYPE_BF16 : SECAP_WDTYPE_F32;
        const void *q = secap_wmap_tensor(m, w, names[i], 1, (int64_t[]){ 3 }, dt);
        int64_t off, nb;
        int contiguous_le = secap_h5_raw_extent(h, names[i], isu ? SECAP_H5_RAW_U16LE : SECAP_H5_RAW_F32LE,
                                                &off, &nb) == 0;
        assert_int_equal(contiguous_le, i != 5);   /* the big-endian one is not F32LE */
        int aligned = contiguous_le && off % (isu ? 2 : 4) == 0;
        misaligned += contiguous_le && !aligned;
        if (aligned) {
            assert_true(off >= 512);   /* past the user block */
            assert_non_null(q);
            assert_memory_equal(q, isu ? (const void *)u : i == 1 ? (const void *)x : (const void *)y, 3 * (isu ? 2 : 4));
            mapped++;
        } else {
            assert_null(q);
        }
        float r[3];
        secap_weights_read(w, names[i], 1, (int64_t[]){ 3 }, r);   /* read works either way */
        for (int j = 0; j < 3; j++)
            assert_true(r[j] == (isu ? secap_bf16_to_f32(u[j]) : i == 1 ? x[j] : y[j]));
    }
    printf("foreign file: %d mapped, %d misaligned (read instead), 1 big-endian (read instead)\n", mapped, misaligned);
    assert_true(mapped >= 2);
    assert_true(misaligned >= 1);   /* the layout above puts f0 on an odd boundary */
    secap_h5_close(h);
    secap_weights_close_checked(w, NULL);
    secap_wmap_free(m);
}

/* float32 tensors read as bf16 piece by piece: every shape that makes the
 * block walk take a different dimension, against element-wise rounding. */
static void test_read_bf16_blocks(void **st)
{
    (void)st;
    const char *p = tu_tmp("blocks.h5");
    static const int64_t shapes[][3] = {
        { 3, 300001, 1 },    /* rows larger than a block: blocks along dim 1 */
        { 600, 1001, 1 },    /* blocks of whole rows */
        { 5, 200001, 2 },    /* blocks along the middle dim */
        { 1, 1, 1 },
    };
    static const int nds[] = { 2, 2, 3, 0 };
    size_t maxn = 5 * 200001 * 2;
    float *x = secap_xmalloc(maxn * sizeof *x, "x");
    uint16_t *h = secap_xmalloc(maxn * sizeof *h, "h");
    fill(x, maxn, 9);
    x[1] = 1.00390625f;   /* a tie, to even */
    secap_weights *w = secap_weights_create(p);
    for (int t = 0; t < 4; t++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        secap_weights_write(w, name, nds[t], shapes[t], x, SECAP_WDTYPE_F32);
    }
    secap_weights_close(w);
    /* the same, chunked and deflated */
    secap_h5 *f = secap_h5_open(p, 1);
    secap_h5_write_f32(f, "zip", x, 2, shapes[1], 1);
    secap_h5_close(f);
    w = secap_weights_open(p);
    for (int t = 0; t < 5; t++) {
        char name[16];
        snprintf(name, sizeof name, t < 4 ? "t%d" : "zip", t);
        int k = t < 4 ? t : 1;
        size_t n = 1;
        for (int i = 0; i < nds[k]; i++) n *= (size_t)shapes[k][i];
        memset(h, 0xff, n * sizeof *h);
        secap_weights_read_bf16(w, name, nds[k], shapes[k], h);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += h[i] != secap_f32_to_bf16(x[i]);
        if (bad) fail_msg("%s: %zu of %zu values differ from element-wise rounding", name, bad, n);
    }
    assert_int_equal(h[1], 0x3f80);
    secap_weights_close_checked(w, NULL);
    free(x);
    free(h);
}

/* Reads every tensor of the name table; nothing may be left over but the
 * ignorable names.  Returns a checksum of all values. */
static double load_all(const char *path, int use_bf16, int *ntensors)
{
    secap_weights *w = secap_weights_open(path);
    secap_hubert_config c;
    secap_hubert_config_read(&c, w);
    secap_params *table = secap_hubert_table_new(&c);
    int n = secap_params_count(table);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const secap_param_entry *t = secap_params_entry(table, i);
        size_t cnt = 1;
        for (int d = 0; d < t->ndim; d++) cnt *= (size_t)t->shape[d];
        float *x = secap_xmalloc(cnt * sizeof *x, "tensor");
        if (use_bf16) {
            uint16_t *h = secap_xmalloc(cnt * sizeof *h, "tensor");
            secap_weights_read_bf16(w, t->name, t->ndim, t->shape, h);
            for (size_t j = 0; j < cnt; j++) x[j] = secap_bf16_to_f32(h[j]);
            free(h);
        } else {
            secap_weights_read(w, t->name, t->ndim, t->shape, x);
        }
        for (size_t j = 0; j < cnt; j++) sum += x[j] * (double)((j % 7) + 1);
        free(x);
    }
    secap_params_free(table);
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

    /* the converter's files map whole: every tensor in place, equal to read */
    static const char *const mapped_files[2] = { "hubert_large_small.h5", "hubert_large_small_bf16.h5" };
    for (int f = 0; f < 2; f++) {
        secap_weights *w = secap_weights_open(tu_ref_path(mapped_files[f]));
        secap_wmap *m = secap_weights_mmap(w);
        secap_hubert_config cf;
        secap_hubert_config_read(&cf, w);
        secap_params *table = secap_hubert_table_new(&cf);
        int nt = secap_params_count(table);
        for (int i = 0; i < nt; i++) {
            const secap_param_entry *t = secap_params_entry(table, i);
            size_t cnt = 1;
            for (int d = 0; d < t->ndim; d++) cnt *= (size_t)t->shape[d];
            const void *p = secap_wmap_tensor(m, w, t->name, t->ndim, t->shape,
                                              f ? SECAP_WDTYPE_BF16 : SECAP_WDTYPE_F32);
            if (!p) fail_msg("%s: %s was not mapped", mapped_files[f], t->name);
            void *r = secap_xmalloc(cnt * 4, "tensor");
            if (f) secap_weights_read_bf16(w, t->name, t->ndim, t->shape, r);
            else secap_weights_read(w, t->name, t->ndim, t->shape, r);
            if (memcmp(p, r, cnt * (f ? 2 : 4))) fail_msg("%s: %s mapped != read", mapped_files[f], t->name);
            free(r);
        }
        secap_params_free(table);
        secap_weights_close_checked(w, SECAP_HUBERT_IGNORABLE);
        secap_wmap_free(m);
    }

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
        cmocka_unit_test(test_mmap),
        cmocka_unit_test(test_mmap_foreign),
        cmocka_unit_test(test_read_bf16_blocks),
        cmocka_unit_test(test_nonfinite_refused),
        cmocka_unit_test(test_ref_config),
        cmocka_unit_test(test_h5py_attrs),
        cmocka_unit_test(test_ref_tensors),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests_name("weights", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
