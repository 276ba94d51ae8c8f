/* Weight files: HDF5, one root dataset per tensor, config as root attributes.
 * See include/secap/weights.h for the layout and the checking rules. */
#include "secap/weights.h"
#include "secap/base.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct secap_weights {
    char *path;            /* the file named by the caller */
    char *tmp;             /* writer: the temporary file, renamed on close */
    hid_t file;
    int writing;
    int n;                 /* reader: root datasets, sorted by name */
    char **names;          /* [n] */
    unsigned char *used;   /* [n] read or skipped */
    char **strs;           /* attribute strings handed out, freed on close */
    int nstrs;
};

/* ---- helpers ------------------------------------------------------------ */

static void hdf5_quiet(void)
{
    static int done;
    if (!done) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); done = 1; }
}

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
    if (w->writing) secap_fatal("%s: %s is open for writing, not reading", fn, w->path);
}

static void check_writer(const secap_weights *w, const char *fn, const char *name)
{
    if (!w) secap_fatal("%s: weights handle is NULL", fn);
    if (!w->writing) secap_fatal("%s: %s is open for reading, not writing", fn, w->path);
    if (!name || !*name || strchr(name, '/'))
        secap_fatal("%s: %s: bad name \"%s\" (hint: names are flat HF state-dict names, no '/')",
                    fn, w->path, name ? name : "(null)");
}

/* ---- reading ------------------------------------------------------------ */

typedef struct { secap_weights *w; int cap; } list_ctx;

static herr_t list_cb(hid_t g, const char *name, const H5L_info_t *info, void *vctx)
{
    (void)g; (void)info;
    list_ctx *c = vctx;
    secap_weights *w = c->w;
    if (w->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        char **nn = realloc(w->names, (size_t)c->cap * sizeof *nn);
        if (!nn) return -1;
        w->names = nn;
    }
    w->names[w->n] = strdup(name);
    if (!w->names[w->n]) return -1;
    w->n++;
    return 0;
}

secap_weights *secap_weights_open(const char *path)
{
    hdf5_quiet();
    if (!path) secap_fatal("secap_weights_open: path is NULL");
    if (access(path, R_OK) != 0)
        secap_fatal("weights %s: cannot read: %s (hint: convert a checkpoint with tools/convert_hf.py "
                    "or create one with --init random)", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        secap_fatal("weights %s: not an HDF5 file (hint: weight files are written by tools/convert_hf.py)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) secap_fatal("weights %s: HDF5 cannot open the file (hint: is it truncated or being written?)", path);
    secap_weights *w = secap_xcalloc(1, sizeof *w, "weights handle");
    w->path = secap_xstrdup(path, "weights path");
    w->file = f;
    list_ctx c = { w, 0 };
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, list_cb, &c) < 0) {
        secap_weights_close(w);
        secap_fatal("weights %s: cannot list the root group (hint: corrupt file?)", path);
    }
    if (w->n) qsort(w->names, (size_t)w->n, sizeof *w->names, cmp_str);
    w->used = secap_xcalloc((size_t)(w->n ? w->n : 1), 1, "weights used flags");
    return w;
}

const char *secap_weights_path(const secap_weights *w) { return w->path; }

int secap_weights_has(const secap_weights *w, const char *name)
{
    if (!w || !name) return 0;
    if (!w->writing) return find(w, name) >= 0;
    return H5Lexists(w->file, name, H5P_DEFAULT) > 0;
}

int secap_weights_has_attr(const secap_weights *w, const char *name)
{
    if (!w || !name) return 0;
    return H5Aexists(w->file, name) > 0;
}

/* Opens dataset `name`, returns its shape and dtype; the dataset id is left
 * open in *dset (caller closes).  All failures close what they opened. */
static int probe(const secap_weights *w, const char *name, int64_t *shape,
                 secap_wdtype *dtype, hid_t *dset, const char *expect_shape)
{
    if (find(w, name) < 0)
        secap_fatal("weights %s: missing tensor %s%s%s (hint: the file was converted from a different "
                    "model or config; compare its attributes with the model, or re-run tools/convert_hf.py)",
                    w->path, name, expect_shape ? ", expected shape " : "", expect_shape ? expect_shape : "");
    hid_t d = H5Dopen2(w->file, name, H5P_DEFAULT);
    if (d < 0) secap_fatal("weights %s: %s is not a dataset (hint: weight files hold only root datasets)", w->path, name);
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > SECAP_WEIGHTS_MAX_DIMS) {
        H5Tclose(ty); H5Sclose(sp); H5Dclose(d);
        secap_fatal("weights %s: tensor %s has %d dimensions (at most %d supported)",
                    w->path, name, nd, SECAP_WEIGHTS_MAX_DIMS);
    }
    hsize_t dims[SECAP_WEIGHTS_MAX_DIMS];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int i = 0; i < nd; i++) shape[i] = (int64_t)dims[i];
    H5T_class_t cls = H5Tget_class(ty);
    size_t size = H5Tget_size(ty);
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(ty) : H5T_SGN_ERROR;
    H5Tclose(ty); H5Sclose(sp);

    int is_bf16_attr = 0;
    if (H5Aexists(d, "dtype") > 0) {
        char tag[32] = "";
        hid_t a = H5Aopen(d, "dtype", H5P_DEFAULT);
        hid_t at = H5Aget_type(a);
        if (H5Tget_class(at) == H5T_STRING) {
            if (H5Tis_variable_str(at) > 0) {
                char *s = NULL;
                hid_t mt = H5Tcopy(H5T_C_S1);
                H5Tset_size(mt, H5T_VARIABLE);
                H5Tset_cset(mt, H5Tget_cset(at));
                if (H5Aread(a, mt, &s) >= 0 && s) { snprintf(tag, sizeof tag, "%s", s); H5free_memory(s); }
                H5Tclose(mt);
            } else {
                size_t n = H5Tget_size(at);
                if (n < sizeof tag) { H5Aread(a, at, tag); tag[n] = 0; }
            }
        }
        H5Tclose(at); H5Aclose(a);
        is_bf16_attr = strcmp(tag, "bfloat16") == 0;
    }
    if (cls == H5T_FLOAT && size == 4) {
        *dtype = SECAP_WDTYPE_F32;
    } else if (cls == H5T_INTEGER && size == 2 && sign == H5T_SGN_NONE && is_bf16_attr) {
        *dtype = SECAP_WDTYPE_BF16;
    } else {
        H5Dclose(d);
        const char *what = cls == H5T_FLOAT ? (size == 8 ? "float64" : size == 2 ? "float16" : "float")
                         : cls == H5T_INTEGER ? (size == 2 && sign == H5T_SGN_NONE ? "uint16 without the attribute dtype=\"bfloat16\""
                                                                                    : "an integer type")
                         : "a non-numeric type";
        secap_fatal("weights %s: tensor %s is stored as %s, expected float32 or bfloat16 "
                    "(hint: re-run tools/convert_hf.py with --dtype fp32 or --dtype bf16)", w->path, name, what);
    }
    *dset = d;
    return nd;
}

int secap_weights_info(const secap_weights *w, const char *name, int64_t *shape, secap_wdtype *dtype)
{
    check_reader(w, "secap_weights_info");
    hid_t d;
    secap_wdtype dt;
    int nd = probe(w, name, shape, &dt, &d, NULL);
    H5Dclose(d);
    if (dtype) *dtype = dt;
    return nd;
}

/* Opens and checks `name` against the expected shape; returns dataset id. */
static hid_t open_checked(secap_weights *w, const char *name, int ndim, const int64_t *shape,
                          secap_wdtype *dtype, size_t *count)
{
    char want[256], got[256];
    if (ndim < 0 || ndim > SECAP_WEIGHTS_MAX_DIMS)
        secap_fatal("weights %s: tensor %s: bad expected rank %d", w->path, name, ndim);
    fmt_shape(want, sizeof want, ndim, shape);
    int64_t fs[SECAP_WEIGHTS_MAX_DIMS];
    hid_t d;
    int nd = probe(w, name, fs, dtype, &d, want);
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = fs[i] == shape[i];
    if (!same) {
        H5Dclose(d);
        fmt_shape(got, sizeof got, nd, fs);
        secap_fatal("weights %s: tensor %s has shape %s, the model expects %s (hint: the file's tensors do "
                    "not match the config the model was built from; check the root attributes)",
                    w->path, name, got, want);
    }
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    *count = n;
    return d;
}

static void read_raw(secap_weights *w, const char *name, hid_t d, hid_t memtype, void *dst)
{
    herr_t rc = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst);
    H5Dclose(d);
    if (rc < 0) secap_fatal("weights %s: reading tensor %s failed (hint: truncated or corrupt file?)", w->path, name);
    w->used[find(w, name)] = 1;
}

void secap_weights_read(secap_weights *w, const char *name, int ndim, const int64_t *shape, float *dst)
{
    check_reader(w, "secap_weights_read");
    secap_wdtype dt;
    size_t n;
    hid_t d = open_checked(w, name, ndim, shape, &dt, &n);
    if (dt == SECAP_WDTYPE_F32) { read_raw(w, name, d, H5T_NATIVE_FLOAT, dst); return; }
    /* bf16: read the halves into the front of dst, widen from the back so no
     * element is overwritten before it is read (float i covers halves 2i, 2i+1). */
    read_raw(w, name, d, H5T_NATIVE_UINT16, dst);
    char *bytes = (char *)dst;
    for (size_t i = n; i-- > 0;) {
        uint16_t h;
        memcpy(&h, bytes + 2 * i, 2);
        float f = secap_bf16_to_f32(h);
        memcpy(bytes + 4 * i, &f, 4);
    }
}

void secap_weights_read_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape, uint16_t *dst)
{
    check_reader(w, "secap_weights_read_bf16");
    secap_wdtype dt;
    size_t n;
    hid_t d = open_checked(w, name, ndim, shape, &dt, &n);
    if (dt == SECAP_WDTYPE_BF16) { read_raw(w, name, d, H5T_NATIVE_UINT16, dst); return; }
    float *tmp = malloc(n ? n * sizeof *tmp : 1);
    if (!tmp) { H5Dclose(d); secap_fatal("weights %s: out of memory reading tensor %s (%zu floats)", w->path, name, n); }
    herr_t rc = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp);
    H5Dclose(d);
    if (rc < 0) { free(tmp); secap_fatal("weights %s: reading tensor %s failed (hint: truncated or corrupt file?)", w->path, name); }
    for (size_t i = 0; i < n; i++) dst[i] = secap_f32_to_bf16(tmp[i]);
    free(tmp);
    w->used[find(w, name)] = 1;
}

void secap_weights_skip(secap_weights *w, const char *name)
{
    check_reader(w, "secap_weights_skip");
    int i = find(w, name);
    if (i >= 0) w->used[i] = 1;
}

/* Opens root attribute `name`, failing clearly if missing. */
static hid_t attr_open(secap_weights *w, const char *name, H5T_class_t *cls, hssize_t *npoints, int *rank)
{
    if (!w) secap_fatal("weights attribute %s: handle is NULL", name);
    if (H5Aexists(w->file, name) <= 0)
        secap_fatal("weights %s: missing attribute %s (hint: hyper-parameters are root attributes named as in "
                    "HF config.json; re-convert with tools/convert_hf.py)", w->path, name);
    hid_t a = H5Aopen(w->file, name, H5P_DEFAULT);
    if (a < 0) secap_fatal("weights %s: cannot open attribute %s", w->path, name);
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    *cls = H5Tget_class(t);
    *npoints = H5Sget_simple_extent_npoints(s);
    *rank = H5Sget_simple_extent_ndims(s);
    H5Tclose(t); H5Sclose(s);
    return a;
}

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "an integer";
    case H5T_FLOAT: return "a float";
    case H5T_STRING: return "a string";
    case H5T_ENUM: return "an enum (h5py bool?)";
    default: return "a compound or other type";
    }
}

static void scalar_read(secap_weights *w, const char *name, int want_float, hid_t memtype, void *dst)
{
    H5T_class_t cls; hssize_t np; int rank;
    hid_t a = attr_open(w, name, &cls, &np, &rank);
    int ok_cls = cls == H5T_INTEGER || (want_float && cls == H5T_FLOAT);
    if (!ok_cls || np != 1 || rank > 1) {
        H5Aclose(a);
        secap_fatal("weights %s: attribute %s is %s with %lld value(s), expected one %s (hint: %s)",
                    w->path, name, class_name(cls), (long long)np, want_float ? "number" : "integer",
                    want_float ? "write numbers as float64" : "write integers and booleans as int64 0/1");
    }
    herr_t rc = H5Aread(a, memtype, dst);
    H5Aclose(a);
    if (rc < 0) secap_fatal("weights %s: cannot read attribute %s", w->path, name);
}

int64_t secap_weights_attr_int(secap_weights *w, const char *name)
{
    int64_t v = 0;
    scalar_read(w, name, 0, H5T_NATIVE_INT64, &v);
    return v;
}

double secap_weights_attr_double(secap_weights *w, const char *name)
{
    double v = 0;
    scalar_read(w, name, 1, H5T_NATIVE_DOUBLE, &v);
    return v;
}

const char *secap_weights_attr_string(secap_weights *w, const char *name)
{
    H5T_class_t cls; hssize_t np; int rank;
    hid_t a = attr_open(w, name, &cls, &np, &rank);
    if (cls != H5T_STRING || np != 1) {
        H5Aclose(a);
        secap_fatal("weights %s: attribute %s is %s with %lld value(s), expected one string",
                    w->path, name, class_name(cls), (long long)np);
    }
    hid_t t = H5Aget_type(a);
    char *out = NULL;
    herr_t rc;
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        rc = H5Aread(a, mt, &s);
        H5Tclose(mt);
        if (rc >= 0) {
            out = strdup(s ? s : "");
            if (s) H5free_memory(s);
        }
    } else {
        size_t n = H5Tget_size(t);
        out = calloc(n + 1, 1);
        rc = out ? H5Aread(a, t, out) : -1;
    }
    H5Tclose(t); H5Aclose(a);
    if (rc < 0 || !out) { free(out); secap_fatal("weights %s: cannot read string attribute %s", w->path, name); }
    char **ns = realloc(w->strs, (size_t)(w->nstrs + 1) * sizeof *ns);
    if (!ns) { free(out); secap_fatal("weights %s: out of memory for attribute %s", w->path, name); }
    w->strs = ns;
    w->strs[w->nstrs++] = out;
    return out;
}

int secap_weights_attr_ints(secap_weights *w, const char *name, int64_t *dst, int cap)
{
    H5T_class_t cls; hssize_t np; int rank;
    hid_t a = attr_open(w, name, &cls, &np, &rank);
    if (cls != H5T_INTEGER || rank > 1 || np < 1 || np > cap) {
        H5Aclose(a);
        secap_fatal("weights %s: attribute %s is %s with %lld value(s), expected 1 to %d integers",
                    w->path, name, class_name(cls), (long long)np, cap);
    }
    herr_t rc = H5Aread(a, H5T_NATIVE_INT64, dst);
    H5Aclose(a);
    if (rc < 0) secap_fatal("weights %s: cannot read attribute %s", w->path, name);
    return (int)np;
}

static void free_handle(secap_weights *w)
{
    for (int i = 0; i < w->n; i++) free(w->names[i]);
    for (int i = 0; i < w->nstrs; i++) free(w->strs[i]);
    free(w->names); free(w->used); free(w->strs);
    free(w->path); free(w->tmp);
    free(w);
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
    snprintf(path, sizeof path, "%s", w->path);
    H5Fclose(w->file);
    free_handle(w);
    if (bad)
        secap_fatal("weights %s: %d unknown tensor(s) the model does not use: %s (hint: the file holds "
                    "another model's or a larger config's tensors, or names differ from the HF state dict)",
                    path, bad, msg);
}

/* ---- writing ------------------------------------------------------------ */

secap_weights *secap_weights_create(const char *path)
{
    hdf5_quiet();
    if (!path || !*path) secap_fatal("secap_weights_create: empty path");
    size_t n = strlen(path) + 32;
    char *tmp = secap_xmalloc(n, "weights temp path");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        int e = errno;
        free(tmp);
        secap_fatal("weights %s: cannot create the temporary file next to it: %s (hint: does the directory "
                    "exist and is it writable?)", path, strerror(e));
    }
    secap_weights *w = secap_xcalloc(1, sizeof *w, "weights handle");
    w->path = secap_xstrdup(path, "weights path");
    w->tmp = tmp;
    w->file = f;
    w->writing = 1;
    return w;
}

static void write_ds(secap_weights *w, const char *name, int ndim, const int64_t *shape,
                     hid_t filetype, hid_t memtype, const void *data, int bf16)
{
    if (ndim < 0 || ndim > SECAP_WEIGHTS_MAX_DIMS)
        secap_fatal("weights %s: tensor %s: rank %d not supported", w->path, name, ndim);
    if (H5Lexists(w->file, name, H5P_DEFAULT) > 0)
        secap_fatal("weights %s: tensor %s written twice", w->path, name);
    hsize_t dims[SECAP_WEIGHTS_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) secap_fatal("weights %s: tensor %s: negative dimension %lld", w->path, name, (long long)shape[i]);
        dims[i] = (hsize_t)shape[i];
    }
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(w->file, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (rc >= 0 && bf16) {
        hid_t st = H5Tcopy(H5T_C_S1), as = H5Screate(H5S_SCALAR);
        H5Tset_size(st, H5T_VARIABLE);
        H5Tset_cset(st, H5T_CSET_UTF8);
        const char *tag = "bfloat16";
        hid_t a = H5Acreate2(d, "dtype", st, as, H5P_DEFAULT, H5P_DEFAULT);
        rc = a < 0 ? -1 : H5Awrite(a, st, &tag);
        if (a >= 0) H5Aclose(a);
        H5Sclose(as); H5Tclose(st);
    }
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    if (rc < 0) secap_fatal("weights %s: writing tensor %s failed (hint: disk full?)", w->path, name);
}

void secap_weights_write(secap_weights *w, const char *name, int ndim, const int64_t *shape,
                         const float *data, secap_wdtype dtype)
{
    check_writer(w, "secap_weights_write", name);
    if (dtype == SECAP_WDTYPE_F32) {
        write_ds(w, name, ndim, shape, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, 0);
        return;
    }
    if (dtype != SECAP_WDTYPE_BF16) secap_fatal("weights %s: tensor %s: unknown dtype %d", w->path, name, (int)dtype);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)(shape[i] > 0 ? shape[i] : 0);
    uint16_t *h = secap_xmalloc(n * sizeof *h, "bf16 conversion buffer");
    for (size_t i = 0; i < n; i++) h[i] = secap_f32_to_bf16(data[i]);
    write_ds(w, name, ndim, shape, H5T_STD_U16LE, H5T_NATIVE_UINT16, h, 1);
    free(h);
}

void secap_weights_write_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape,
                              const uint16_t *data)
{
    check_writer(w, "secap_weights_write_bf16", name);
    write_ds(w, name, ndim, shape, H5T_STD_U16LE, H5T_NATIVE_UINT16, data, 1);
}

static void set_attr(secap_weights *w, const char *name, hid_t filetype, hid_t memtype,
                     int n, const void *data)
{
    if (H5Aexists(w->file, name) > 0) H5Adelete(w->file, name);
    hsize_t dim = (hsize_t)n;
    hid_t sp = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(w->file, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, memtype, data);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    if (rc < 0) secap_fatal("weights %s: writing attribute %s failed", w->path, name);
}

void secap_weights_set_int(secap_weights *w, const char *name, int64_t v)
{
    check_writer(w, "secap_weights_set_int", name);
    set_attr(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &v);
}

void secap_weights_set_double(secap_weights *w, const char *name, double v)
{
    check_writer(w, "secap_weights_set_double", name);
    set_attr(w, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, -1, &v);
}

void secap_weights_set_ints(secap_weights *w, const char *name, const int64_t *v, int n)
{
    check_writer(w, "secap_weights_set_ints", name);
    if (n < 1) secap_fatal("weights %s: attribute %s: empty integer list", w->path, name);
    set_attr(w, name, H5T_STD_I64LE, H5T_NATIVE_INT64, n, v);
}

void secap_weights_set_string(secap_weights *w, const char *name, const char *v)
{
    check_writer(w, "secap_weights_set_string", name);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    const char *p = v ? v : "";
    set_attr(w, name, st, st, -1, &p);
    H5Tclose(st);
}

void secap_weights_discard(secap_weights *w)
{
    if (!w) return;
    H5Fclose(w->file);
    if (w->writing) unlink(w->tmp);
    free_handle(w);
}

void secap_weights_close(secap_weights *w)
{
    if (!w) return;
    if (!w->writing) {
        H5Fclose(w->file);
        free_handle(w);
        return;
    }
    char path[4096], tmp[4096];
    snprintf(path, sizeof path, "%s", w->path);
    snprintf(tmp, sizeof tmp, "%s", w->tmp);
    herr_t rc = H5Fclose(w->file);
    free_handle(w);
    if (rc < 0) { unlink(tmp); secap_fatal("weights %s: closing the file failed (hint: disk full?)", path); }
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        secap_fatal("weights %s: cannot rename %s over it: %s", path, tmp, strerror(e));
    }
}
