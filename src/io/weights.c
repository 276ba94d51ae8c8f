/* Weight files: HDF5, one root dataset per tensor, config as root attributes.
 * See include/secap/weights.h for the layout and the checking rules.  All
 * HDF5 access goes through secap/h5io.h; this file adds the model-level
 * checks (names used, shapes, dtypes, attribute kinds) and their messages. */
#include "secap/weights.h"
#include "secap/base.h"
#include "secap/h5io.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct secap_weights {
    secap_h5 *h;
    int writing;
    int n;                 /* reader: root datasets, sorted by name */
    char **names;          /* [n] */
    unsigned char *used;   /* [n] read or skipped */
    char **strs;           /* attribute strings handed out, freed on close */
    int nstrs;
};

/* ---- helpers ------------------------------------------------------------ */

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int find(const secap_weights *w, const char *name)
{
    int lo = 0, hi = w->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, w->names[mid]);
        if (!c) return mid;
        if (c < 0) hi = mid - 1; else lo = mid + 1;
    }
    return -1;
}

static void check_reader(const secap_weights *w, const char *fn)
{
    if (!w) secap_fatal("%s: weights handle is NULL", fn);
    if (w->writing) secap_fatal("%s: %s is open for writing, not reading", fn, secap_h5_path(w->h));
}

static void check_writer(const secap_weights *w, const char *fn, const char *name)
{
    if (!w) secap_fatal("%s: weights handle is NULL", fn);
    if (!w->writing) secap_fatal("%s: %s is open for reading, not writing", fn, secap_h5_path(w->h));
    if (!name || !*name || strchr(name, '/'))
        secap_fatal("%s: %s: bad name \"%s\" (hint: names are flat HF state-dict names, no '/')",
                    fn, secap_h5_path(w->h), name ? name : "(null)");
}

/* Frees w, handing back its file, which the caller closes or commits. */
static secap_h5 *free_handle(secap_weights *w)
{
    secap_h5 *h = w->h;
    secap_h5_free_names(w->names, w->n);
    for (int i = 0; i < w->nstrs; i++) free(w->strs[i]);
    free(w->used); free(w->strs);
    free(w);
    return h;
}

/* ---- reading ------------------------------------------------------------ */

static void discard_on_error(void *w) { secap_weights_discard(w); }

secap_weights *secap_weights_open(const char *path)
{
    if (!path) secap_fatal("secap_weights_open: path is NULL");
    if (access(path, R_OK) != 0)
        secap_fatal("weights %s: cannot read: %s (hint: convert a checkpoint with tools/convert_hf.py "
                    "or create one with --init random)", path, strerror(errno));
    if (!secap_h5_is_readable(path))
        secap_fatal("weights %s: not an HDF5 file (hint: weight files are written by tools/convert_hf.py)", path);
    secap_h5 *h = secap_h5_try_open(path, 0);
    if (!h) secap_fatal("weights %s: HDF5 cannot open the file (hint: is it truncated or being written?)", path);
    secap_weights *w = secap_xcalloc(1, sizeof *w, "weights handle");
    w->h = h;
    secap_cleanup cl;
    secap_cleanup_push(&cl, discard_on_error, w);
    w->names = secap_h5_list(h, &w->n);
    secap_cleanup_pop(&cl);
    if (w->n) qsort(w->names, (size_t)w->n, sizeof *w->names, cmp_str);
    w->used = secap_xcalloc((size_t)(w->n ? w->n : 1), 1, "weights used flags");
    return w;
}

const char *secap_weights_path(const secap_weights *w) { return secap_h5_path(w->h); }

int secap_weights_has(const secap_weights *w, const char *name)
{
    if (!w || !name) return 0;
    if (!w->writing) return find(w, name) >= 0;
    return secap_h5_has(w->h, name);
}

int secap_weights_has_attr(const secap_weights *w, const char *name)
{
    secap_h5_desc d;
    return w && name && secap_h5_describe_attr(w->h, NULL, name, &d) == 0;
}

/* 1 when dataset `name` carries the string attribute dtype="bfloat16". */
static int bf16_tagged(secap_h5 *h, const char *name)
{
    secap_h5_desc d;
    char *tag = NULL;
    if (secap_h5_describe_attr(h, name, "dtype", &d) < 0 || d.cls != SECAP_H5_STRING || d.count != 1) return 0;
    secap_h5_get_attr_str(h, name, "dtype", &tag);
    int yes = strcmp(tag, "bfloat16") == 0;
    free(tag);
    return yes;
}

/* Shape and dtype of tensor `name`, failing unless it is a float32 or
 * bfloat16 dataset of the file. */
static int probe(const secap_weights *w, const char *name, int64_t *shape,
                 secap_wdtype *dtype, const char *expect_shape)
{
    const char *path = secap_h5_path(w->h);
    if (find(w, name) < 0)
        secap_fatal("weights %s: missing tensor %s%s%s (hint: the file was converted from a different "
                    "model or config; compare its attributes with the model, or re-run tools/convert_hf.py)",
                    path, name, expect_shape ? ", expected shape " : "", expect_shape ? expect_shape : "");
    secap_h5_desc d;
    if (secap_h5_describe(w->h, name, &d) < 0)
        secap_fatal("weights %s: %s is not a dataset (hint: weight files hold only root datasets)", path, name);
    if (d.rank > SECAP_WEIGHTS_MAX_DIMS)
        secap_fatal("weights %s: tensor %s has %d dimensions (at most %d supported)",
                    path, name, d.rank, SECAP_WEIGHTS_MAX_DIMS);
    memcpy(shape, d.dims, (size_t)d.rank * sizeof *shape);
    if (d.cls == SECAP_H5_FLOAT && d.size == 4) {
        *dtype = SECAP_WDTYPE_F32;
    } else if (d.cls == SECAP_H5_UINT && d.size == 2 && bf16_tagged(w->h, name)) {
        *dtype = SECAP_WDTYPE_BF16;
    } else {
        const char *what = d.cls == SECAP_H5_FLOAT ? (d.size == 8 ? "float64" : d.size == 2 ? "float16" : "float")
                         : d.cls == SECAP_H5_UINT && d.size == 2 ? "uint16 without the attribute dtype=\"bfloat16\""
                         : d.cls == SECAP_H5_INT || d.cls == SECAP_H5_UINT ? "an integer type"
                         : "a non-numeric type";
        secap_fatal("weights %s: tensor %s is stored as %s, expected float32 or bfloat16 "
                    "(hint: re-run tools/convert_hf.py with --dtype fp32 or --dtype bf16)", path, name, what);
    }
    return d.rank;
}

int secap_weights_info(const secap_weights *w, const char *name, int64_t *shape, secap_wdtype *dtype)
{
    check_reader(w, "secap_weights_info");
    secap_wdtype dt;
    int nd = probe(w, name, shape, &dt, NULL);
    if (dtype) *dtype = dt;
    return nd;
}

/* Checks `name` against the expected shape; returns its dtype, *count the
 * number of values. */
static secap_wdtype check_tensor(secap_weights *w, const char *name, int ndim, const int64_t *shape, size_t *count)
{
    char want[256], got[256];
    if (ndim < 0 || ndim > SECAP_WEIGHTS_MAX_DIMS)
        secap_fatal("weights %s: tensor %s: bad expected rank %d", secap_h5_path(w->h), name, ndim);
    fmt_shape(want, sizeof want, ndim, shape);
    int64_t fs[SECAP_WEIGHTS_MAX_DIMS];
    secap_wdtype dt;
    int nd = probe(w, name, fs, &dt, want);
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = fs[i] == shape[i];
    if (!same) {
        fmt_shape(got, sizeof got, nd, fs);
        secap_fatal("weights %s: tensor %s has shape %s, the model expects %s (hint: the file's tensors do "
                    "not match the config the model was built from; check the root attributes)",
                    secap_h5_path(w->h), name, got, want);
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    *count = n;
    return dt;
}

/* Reads tensor `name` of shape [ndim] into dst as `want`: float32 (bfloat16
 * widened exactly) or bfloat16 bits (float32 rounded to nearest even). */
static void read_tensor(secap_weights *w, const char *fn, const char *name, int ndim, const int64_t *shape,
                        secap_wdtype want, void *dst)
{
    check_reader(w, fn);
    size_t n;
    secap_wdtype have = check_tensor(w, name, ndim, shape, &n);
    int rc;
    if (have == SECAP_WDTYPE_BF16) {
        rc = secap_h5_try_read_u16(w->h, name, dst);
    } else if (want == SECAP_WDTYPE_F32) {
        rc = secap_h5_try_read_f32(w->h, name, dst);
    } else {
        float *tmp = malloc(n ? n * sizeof *tmp : 1);
        if (!tmp)
            secap_fatal("weights %s: out of memory reading tensor %s (%zu floats)", secap_h5_path(w->h), name, n);
        rc = secap_h5_try_read_f32(w->h, name, tmp);
        uint16_t *h = dst;
        for (size_t i = 0; rc == 0 && i < n; i++) h[i] = secap_f32_to_bf16(tmp[i]);
        free(tmp);
    }
    if (rc < 0)
        secap_fatal("weights %s: reading tensor %s failed (hint: truncated or corrupt file?)",
                    secap_h5_path(w->h), name);
    w->used[find(w, name)] = 1;
    if (have != SECAP_WDTYPE_BF16 || want != SECAP_WDTYPE_F32) return;
    /* bf16 halves sit at the front of dst: widen from the back so no element
     * is overwritten before it is read (float i covers halves 2i, 2i+1). */
    char *bytes = dst;
    for (size_t i = n; i-- > 0;) {
        uint16_t h;
        memcpy(&h, bytes + 2 * i, 2);
        float f = secap_bf16_to_f32(h);
        memcpy(bytes + 4 * i, &f, 4);
    }
}

void secap_weights_read(secap_weights *w, const char *name, int ndim, const int64_t *shape, float *dst)
{
    read_tensor(w, "secap_weights_read", name, ndim, shape, SECAP_WDTYPE_F32, dst);
}

void secap_weights_read_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape, uint16_t *dst)
{
    read_tensor(w, "secap_weights_read_bf16", name, ndim, shape, SECAP_WDTYPE_BF16, dst);
}

void secap_weights_skip(secap_weights *w, const char *name)
{
    check_reader(w, "secap_weights_skip");
    int i = find(w, name);
    if (i >= 0) w->used[i] = 1;
}

/* Describes root attribute `name`, failing clearly if missing. */
static void attr_describe(secap_weights *w, const char *name, secap_h5_desc *d)
{
    if (!w) secap_fatal("weights attribute %s: handle is NULL", name);
    if (secap_h5_describe_attr(w->h, NULL, name, d) < 0)
        secap_fatal("weights %s: missing attribute %s (hint: hyper-parameters are root attributes named as in "
                    "HF config.json; re-convert with tools/convert_hf.py)", secap_h5_path(w->h), name);
}

static const char *class_name(secap_h5_class c)
{
    switch (c) {
    case SECAP_H5_INT: case SECAP_H5_UINT: return "an integer";
    case SECAP_H5_FLOAT: return "a float";
    case SECAP_H5_STRING: return "a string";
    case SECAP_H5_ENUM: return "an enum (h5py bool?)";
    default: return "a compound or other type";
    }
}

static int is_int(const secap_h5_desc *d) { return d->cls == SECAP_H5_INT || d->cls == SECAP_H5_UINT; }

/* Fails unless root attribute `name` is one integer (or, with want_float,
 * one number). */
static void check_scalar(secap_weights *w, const char *name, int want_float)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    if (!(is_int(&d) || (want_float && d.cls == SECAP_H5_FLOAT)) || d.count != 1 || d.rank > 1)
        secap_fatal("weights %s: attribute %s is %s with %lld value(s), expected one %s (hint: %s)",
                    secap_h5_path(w->h), name, class_name(d.cls), (long long)d.count,
                    want_float ? "number" : "integer",
                    want_float ? "write numbers as float64" : "write integers and booleans as int64 0/1");
}

int64_t secap_weights_attr_int(secap_weights *w, const char *name)
{
    int64_t v = 0;
    check_scalar(w, name, 0);
    secap_h5_get_attr_int(w->h, NULL, name, &v);
    return v;
}

double secap_weights_attr_double(secap_weights *w, const char *name)
{
    double v = 0;
    check_scalar(w, name, 1);
    secap_h5_get_attr_double(w->h, NULL, name, &v);
    return v;
}

const char *secap_weights_attr_string(secap_weights *w, const char *name)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    if (d.cls != SECAP_H5_STRING || d.count != 1)
        secap_fatal("weights %s: attribute %s is %s with %lld value(s), expected one string",
                    secap_h5_path(w->h), name, class_name(d.cls), (long long)d.count);
    char **ns = realloc(w->strs, (size_t)(w->nstrs + 1) * sizeof *ns);
    if (!ns) secap_fatal("weights %s: out of memory for attribute %s", secap_h5_path(w->h), name);
    w->strs = ns;
    secap_h5_get_attr_str(w->h, NULL, name, &w->strs[w->nstrs]);
    return w->strs[w->nstrs++];
}

int secap_weights_attr_ints(secap_weights *w, const char *name, int64_t *dst, int cap)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    if (!is_int(&d) || d.rank > 1 || d.count < 1 || d.count > cap)
        secap_fatal("weights %s: attribute %s is %s with %lld value(s), expected 1 to %d integers",
                    secap_h5_path(w->h), name, class_name(d.cls), (long long)d.count, cap);
    return secap_h5_get_attr_ints(w->h, NULL, name, dst, cap);
}

void secap_weights_close_checked(secap_weights *w, const char *const *allow)
{
    check_reader(w, "secap_weights_close_checked");
    char msg[3000];
    size_t k = 0;
    int bad = 0;
    for (int i = 0; i < w->n; i++) {
        if (w->used[i]) continue;
        int ok = 0;
        for (const char *const *p = allow; p && *p && !ok; p++) ok = fnmatch(*p, w->names[i], 0) == 0;
        if (ok) continue;
        if (k < sizeof msg - 200) k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%s", bad ? ", " : "", w->names[i]);
        else if (k < sizeof msg - 40) k += (size_t)snprintf(msg + k, sizeof msg - k, ", ...");
        bad++;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s", secap_h5_path(w->h));
    secap_h5_close(free_handle(w));
    if (bad)
        secap_fatal("weights %s: %d unknown tensor(s) the model does not use: %s (hint: the file holds "
                    "another model's or a larger config's tensors, or names differ from the HF state dict)",
                    path, bad, msg);
}

/* ---- writing ------------------------------------------------------------ */

secap_weights *secap_weights_create(const char *path)
{
    if (!path || !*path) secap_fatal("secap_weights_create: empty path");
    secap_h5 *h = secap_h5_try_create(path);
    if (!h)
        secap_fatal("weights %s: cannot create the temporary file next to it: %s (hint: does the directory "
                    "exist and is it writable?)", path, strerror(errno));
    secap_weights *w = secap_xcalloc(1, sizeof *w, "weights handle");
    w->h = h;
    w->writing = 1;
    return w;
}

/* Fails unless `name` is new and shape [ndim] is valid; returns its count. */
static size_t check_new(secap_weights *w, const char *name, int ndim, const int64_t *shape)
{
    const char *path = secap_h5_path(w->h);
    if (ndim < 0 || ndim > SECAP_WEIGHTS_MAX_DIMS)
        secap_fatal("weights %s: tensor %s: rank %d not supported", path, name, ndim);
    if (secap_h5_has(w->h, name)) secap_fatal("weights %s: tensor %s written twice", path, name);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) secap_fatal("weights %s: tensor %s: negative dimension %lld", path, name, (long long)shape[i]);
        n *= (size_t)shape[i];
    }
    return n;
}

/* bfloat16 bits as a uint16 dataset tagged dtype="bfloat16". */
static void write_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape, const uint16_t *data)
{
    secap_h5_write_u16(w->h, name, data, ndim, shape, 0);
    secap_h5_set_attr_vstr(w->h, name, "dtype", "bfloat16");
}

void secap_weights_write(secap_weights *w, const char *name, int ndim, const int64_t *shape,
                         const float *data, secap_wdtype dtype)
{
    check_writer(w, "secap_weights_write", name);
    size_t n = check_new(w, name, ndim, shape);
    if (dtype == SECAP_WDTYPE_F32) {
        secap_h5_write_f32(w->h, name, data, ndim, shape, 0);
        return;
    }
    if (dtype != SECAP_WDTYPE_BF16)
        secap_fatal("weights %s: tensor %s: unknown dtype %d", secap_h5_path(w->h), name, (int)dtype);
    uint16_t *h = secap_xmalloc(n ? n * sizeof *h : 1, "bf16 conversion buffer");
    for (size_t i = 0; i < n; i++) h[i] = secap_f32_to_bf16(data[i]);
    write_bf16(w, name, ndim, shape, h);
    free(h);
}

void secap_weights_write_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape,
                              const uint16_t *data)
{
    check_writer(w, "secap_weights_write_bf16", name);
    check_new(w, name, ndim, shape);
    write_bf16(w, name, ndim, shape, data);
}

void secap_weights_set_int(secap_weights *w, const char *name, int64_t v)
{
    check_writer(w, "secap_weights_set_int", name);
    secap_h5_set_attr_int(w->h, NULL, name, v);
}

void secap_weights_set_double(secap_weights *w, const char *name, double v)
{
    check_writer(w, "secap_weights_set_double", name);
    secap_h5_set_attr_double(w->h, NULL, name, v);
}

void secap_weights_set_ints(secap_weights *w, const char *name, const int64_t *v, int n)
{
    check_writer(w, "secap_weights_set_ints", name);
    if (n < 1) secap_fatal("weights %s: attribute %s: empty integer list", secap_h5_path(w->h), name);
    secap_h5_set_attr_ints(w->h, NULL, name, v, n);
}

void secap_weights_set_string(secap_weights *w, const char *name, const char *v)
{
    check_writer(w, "secap_weights_set_string", name);
    secap_h5_set_attr_vstr(w->h, NULL, name, v ? v : "");
}

void secap_weights_discard(secap_weights *w)
{
    if (w) secap_h5_close(free_handle(w));
}

void secap_weights_close(secap_weights *w)
{
    if (!w) return;
    int writing = w->writing;
    secap_h5 *h = free_handle(w);
    if (writing) secap_h5_commit(h);
    else secap_h5_close(h);
}
