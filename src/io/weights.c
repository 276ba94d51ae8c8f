/* Weight files: HDF5, one root dataset per tensor, config as root attributes.
 * See include/secap/weights.h for the layout and the checking rules.  All
 * HDF5 access goes through secap/h5io.h; this file adds the model-level
 * checks (names used, shapes, dtypes, attribute kinds) and their messages. */
#include "secap/weights.h"
#include "secap/base.h"
#include "secap/h5io.h"
#include "secap/fileutil.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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
    if (secap_is_dir(path))
        secap_fatal("weights %s: is a directory, not a weight file (hint: give the .h5 file written by "
                    "tools/convert_hf.py)", path);
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

/* Float32 tensor `name` [ndim] into bf16 bits dst (rounded to nearest even)
 * a block of at most BLOCK values at a time, so no full-size float32 copy is
 * made.  A block is a run of indices along the outermost dimension k whose
 * inner extent (stride[k] values) fits in BLOCK, at fixed outer indices:
 * blocks come in row-major order and tile the tensor.  0 or -1. */
static int read_f32_as_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape, size_t n,
                            uint16_t *dst)
{
    enum { BLOCK = 1 << 18 };   /* 1 MiB of float32 */
    if (n == 0) return 0;
    float *tmp = malloc((n < BLOCK ? n : BLOCK) * sizeof *tmp);
    if (!tmp) secap_fatal("weights %s: out of memory reading tensor %s", secap_h5_path(w->h), name);
    int rc = 0;
    if (ndim == 0) {
        rc = secap_h5_try_read_f32(w->h, name, tmp);
        if (rc == 0) dst[0] = secap_f32_to_bf16(tmp[0]);
        free(tmp);
        return rc;
    }
    int64_t stride = 1;   /* values per index of dimension k */
    int k = ndim - 1;
    while (k > 0 && stride * shape[k] <= BLOCK) stride *= shape[k--];
    int64_t per = BLOCK / stride > 0 ? BLOCK / stride : 1, outer = 1;
    for (int i = 0; i < k; i++) outer *= shape[i];
    int64_t start[SECAP_WEIGHTS_MAX_DIMS], count[SECAP_WEIGHTS_MAX_DIMS];
    for (int i = 0; i < ndim; i++) { start[i] = 0; count[i] = i < k ? 1 : shape[i]; }
    size_t at = 0;
    for (int64_t o = 0; o < outer && rc == 0; o++) {
        for (int64_t q = o, i = k - 1; i >= 0; i--) { start[i] = q % shape[i]; q /= shape[i]; }
        for (int64_t j = 0; j < shape[k] && rc == 0; j += per) {
            start[k] = j;
            count[k] = shape[k] - j < per ? shape[k] - j : per;
            rc = secap_h5_try_read_f32_block(w->h, name, start, count, tmp);
            size_t m = (size_t)(count[k] * stride);
            for (size_t i = 0; rc == 0 && i < m; i++) dst[at + i] = secap_f32_to_bf16(tmp[i]);
            at += m;
        }
    }
    free(tmp);
    return rc;
}

/* Fails when tensor `name` [ndim] holds a NaN or an infinity (f32 data, or
 * bf16 bits when bf16), naming the element; `doing` is "holds" (read) or
 * "to be written holds". */
static void check_finite(const secap_weights *w, const char *doing, const char *name, int ndim,
                         const int64_t *shape, const void *data, int bf16)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    int64_t bad = bf16 ? secap_find_nonfinite_bf16(data, (int64_t)n) : secap_find_nonfinite(data, (int64_t)n);
    if (bad < 0) return;
    float v = bf16 ? secap_bf16_to_f32(((const uint16_t *)data)[bad]) : ((const float *)data)[bad];
    char idx[256] = "", sh[256];
    size_t k = 0;
    int64_t rest = bad;
    for (int i = 0; i < ndim && k < sizeof idx; i++) {   /* row-major index of element `bad` */
        int64_t st = 1;
        for (int j = i + 1; j < ndim; j++) st *= shape[j];
        k += (size_t)snprintf(idx + k, sizeof idx - k, "%s%lld", i ? ", " : "", (long long)(rest / st));
        rest %= st;
    }
    fmt_shape(sh, sizeof sh, ndim, shape);
    secap_fatal("weights %s: tensor %s %s %s at [%s] of %s (hint: %s)", secap_h5_path(w->h), name, doing,
                secap_nonfinite_name(v), idx, sh,
                w->writing ? "the model diverged or a value was never initialised; fix it before saving"
                           : "the file is damaged or was saved from a diverged model; re-convert it with "
                             "tools/convert_hf.py");
}

/* Reads tensor `name` of shape [ndim] into dst as `want`: float32 (bfloat16
 * widened exactly) or bfloat16 bits (float32 rounded to nearest even).
 * HDF5 reads straight into dst (bf16 widened in place); only float32 to
 * bfloat16 goes through a block-sized buffer. */
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
        rc = read_f32_as_bf16(w, name, ndim, shape, n, dst);
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
    check_finite(w, "holds", name, ndim, shape, dst, 0);
}

void secap_weights_read_bf16(secap_weights *w, const char *name, int ndim, const int64_t *shape, uint16_t *dst)
{
    read_tensor(w, "secap_weights_read_bf16", name, ndim, shape, SECAP_WDTYPE_BF16, dst);
    check_finite(w, "holds", name, ndim, shape, dst, 1);
}

/* ---- mapping ------------------------------------------------------------ */

struct secap_wmap {
    const unsigned char *base;   /* [size] the whole file, PROT_READ */
    size_t size;
    dev_t dev;                   /* which file: tensors are looked up through a */
    ino_t ino;                   /* reader of this same file */
    char path[1024];
};

/* The reader's own descriptor and its identity; fails naming the file. */
static int reader_fd(secap_weights *w, struct stat *st)
{
    int fd = secap_h5_fd(w->h);
    if (fd < 0 || fstat(fd, st) != 0)
        secap_fatal("weights %s: cannot find the file HDF5 reads (hint: the file must be opened by "
                    "secap_weights_open, which uses HDF5's default POSIX driver)", secap_h5_path(w->h));
    return fd;
}

secap_wmap *secap_weights_mmap(secap_weights *w)
{
    check_reader(w, "secap_weights_mmap");
    const char *path = secap_h5_path(w->h);
    struct stat st;
    /* HDF5's own descriptor: the mapping is of the very file the reader
     * describes, even if the path was renamed over since it was opened. */
    int fd = reader_fd(w, &st);
    if (st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX)
        secap_fatal("weights %s: cannot map a file of %lld bytes", path, (long long)st.st_size);
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        secap_fatal("weights %s: cannot map its %lld bytes: %s (hint: is the address space limited, ulimit -v?)",
                    path, (long long)st.st_size, strerror(errno));
    secap_wmap *m = secap_xcalloc(1, sizeof *m, "weight mapping");
    m->base = p;
    m->size = (size_t)st.st_size;
    m->dev = st.st_dev;
    m->ino = st.st_ino;
    snprintf(m->path, sizeof m->path, "%s", path);
    return m;
}

const void *secap_wmap_tensor(secap_wmap *m, secap_weights *w, const char *name, int ndim, const int64_t *shape,
                              secap_wdtype want)
{
    check_reader(w, "secap_wmap_tensor");
    const char *path = secap_h5_path(w->h);
    if (!m) secap_fatal("weights %s: secap_wmap_tensor(%s): mapping is NULL", path, name);
    struct stat st;
    reader_fd(w, &st);
    if (st.st_dev != m->dev || st.st_ino != m->ino)
        secap_fatal("weights %s: tensor %s: the mapping is of another file (%s) (hint: pass the reader the "
                    "mapping was made from)", path, name, m->path);
    if (want != SECAP_WDTYPE_F32 && want != SECAP_WDTYPE_BF16)
        secap_fatal("weights %s: tensor %s: unknown dtype %d", path, name, (int)want);
    size_t n;
    secap_wdtype have = check_tensor(w, name, ndim, shape, &n);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return NULL;   /* the file's little-endian bytes are not this host's values */
#endif
    if (have != want) return NULL;
    int64_t off, nb;
    size_t esize = want == SECAP_WDTYPE_F32 ? 4 : 2;
    if (secap_h5_raw_extent(w->h, name, want == SECAP_WDTYPE_F32 ? SECAP_H5_RAW_F32LE : SECAP_H5_RAW_U16LE,
                            &off, &nb) < 0)
        return NULL;   /* chunked, compressed, external, big-endian or empty: read it */
    if ((size_t)nb != n * esize || off % (int64_t)esize) return NULL;   /* misaligned elements: read it */
    if (off < 0 || (uint64_t)off > m->size || (uint64_t)nb > m->size - (uint64_t)off)
        secap_fatal("weights %s: tensor %s lies at bytes %lld..%lld, past the end of the %zu-byte file (hint: the "
                    "file is truncated; convert it again)", path, name, (long long)off, (long long)(off + nb),
                    m->size);
    /* the values are checked as a read checks them (this touches every page
     * once; they stay clean, file-backed and shared) */
    check_finite(w, "holds", name, ndim, shape, m->base + off, want == SECAP_WDTYPE_BF16);
    w->used[find(w, name)] = 1;
    return m->base + off;
}

size_t secap_wmap_bytes(const secap_wmap *m) { return m ? m->size : 0; }

void secap_wmap_free(secap_wmap *m)
{
    if (!m) return;
    munmap((void *)m->base, m->size);
    free(m);
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

/* What an attribute holds, for messages: "an int64 scalar", "a float32 list of 3". */
static void attr_kind(char *buf, size_t cap, const secap_h5_desc *d)
{
    const char *t;
    char tb[32];
    switch (d->cls) {
    case SECAP_H5_INT: case SECAP_H5_UINT: case SECAP_H5_FLOAT:
        snprintf(tb, sizeof tb, "%s%d", d->cls == SECAP_H5_INT ? "int" : d->cls == SECAP_H5_UINT ? "uint" : "float",
                 8 * d->size);
        t = tb;
        break;
    case SECAP_H5_STRING: t = "string"; break;
    case SECAP_H5_BOOL: t = "boolean"; break;
    case SECAP_H5_ENUM: t = "enum (not h5py's bool)"; break;
    default: t = "compound or other"; break;
    }
    const char *an = t[0] == 'i' || t[0] == 'e' ? "an" : "a";
    if (d->rank == 0) snprintf(buf, cap, "%s %s scalar", an, t);
    else if (d->rank == 1) snprintf(buf, cap, "%s %s list of %lld", an, t, (long long)d->count);
    else snprintf(buf, cap, "a %d-D %s array of %lld values", d->rank, t, (long long)d->count);
}

static int is_int(const secap_h5_desc *d)
{
    return d->cls == SECAP_H5_INT || d->cls == SECAP_H5_UINT || d->cls == SECAP_H5_BOOL;
}

static int is_num(const secap_h5_desc *d)
{
    return d->cls == SECAP_H5_INT || d->cls == SECAP_H5_UINT || d->cls == SECAP_H5_FLOAT;
}

/* Fails naming file and attribute: what was expected, what it holds, a hint. */
static _Noreturn void attr_wrong(secap_weights *w, const char *name, const secap_h5_desc *d, const char *want,
                                 const char *hint)
{
    char got[96];
    attr_kind(got, sizeof got, d);
    secap_fatal("weights %s: attribute %s is %s, expected %s (hint: %s)", secap_h5_path(w->h), name, got, want, hint);
}

/* Integers and booleans become int64; a double also takes any integer. */
int64_t secap_weights_attr_int(secap_weights *w, const char *name)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    if (!is_int(&d) || d.count != 1 || d.rank > 1)
        attr_wrong(w, name, &d, "one integer or boolean",
                   "config.json holds a different kind of value here; write integers and booleans as scalars");
    int64_t v = 0;
    secap_h5_get_attr_int(w->h, NULL, name, &v);
    return v;
}

double secap_weights_attr_double(secap_weights *w, const char *name)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    if (!is_num(&d) || d.count != 1 || d.rank > 1)
        attr_wrong(w, name, &d, "one number (float or integer)", "write numbers as float or integer scalars");
    double v = 0;
    secap_h5_get_attr_double(w->h, NULL, name, &v);
    return v;
}

const char *secap_weights_attr_string(secap_weights *w, const char *name)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    if (d.cls != SECAP_H5_STRING || d.count != 1 || d.rank > 1)
        attr_wrong(w, name, &d, "one string", "write text as a str (variable length) or bytes (fixed length)");
    char **ns = realloc(w->strs, (size_t)(w->nstrs + 1) * sizeof *ns);
    if (!ns) secap_fatal("weights %s: out of memory for attribute %s", secap_h5_path(w->h), name);
    w->strs = ns;
    secap_h5_get_attr_str(w->h, NULL, name, &w->strs[w->nstrs]);
    return w->strs[w->nstrs++];
}

/* An empty list (h5py writes [] as float64 [0]) has no element kind: 0 of
 * anything numeric. */
static void check_list(secap_weights *w, const char *name, const secap_h5_desc *d, int ok, int cap,
                       const char *what)
{
    char want[96];
    snprintf(want, sizeof want, "a list of at most %d %s", cap, what);
    if (d->rank > 1 || d->count > cap || !(ok || (d->count == 0 && (is_num(d) || d->cls == SECAP_H5_BOOL))))
        attr_wrong(w, name, d, want, d->count > cap ? "the config holds more entries than the model supports"
                                                    : "write lists as 1-D numeric arrays");
}

int secap_weights_attr_ints(secap_weights *w, const char *name, int64_t *dst, int cap)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    check_list(w, name, &d, is_int(&d), cap, "integers or booleans");
    return d.count ? secap_h5_get_attr_ints(w->h, NULL, name, dst, cap) : 0;
}

int secap_weights_attr_doubles(secap_weights *w, const char *name, double *dst, int cap)
{
    secap_h5_desc d;
    attr_describe(w, name, &d);
    check_list(w, name, &d, is_num(&d), cap, "numbers");
    return d.count ? secap_h5_get_attr_doubles(w->h, NULL, name, dst, cap) : 0;
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
    check_finite(w, "to be written holds", name, ndim, shape, data, 0);
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
    check_finite(w, "to be written holds", name, ndim, shape, data, 1);
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

int secap_weights_attr_int_in(secap_weights *w, const char *name, int64_t lo, int64_t hi)
{
    int64_t v = secap_weights_attr_int(w, name);
    if (v < lo || v > hi)
        secap_fatal("weights %s: attribute %s = %lld is out of range [%lld, %lld] (hint: check the config.json the "
                    "file was converted from)", secap_weights_path(w), name, (long long)v, (long long)lo,
                    (long long)hi);
    return (int)v;
}

void secap_weights_require_string(secap_weights *w, const char *name, const char *want, const char *hint)
{
    const char *s = secap_weights_attr_string(w, name);
    if (strcmp(s, want) != 0)
        secap_fatal("weights %s: attribute %s = \"%s\", only \"%s\" is supported (hint: %s)",
                    secap_weights_path(w), name, s, want, hint);
}
