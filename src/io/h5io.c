/* HDF5 helpers: float32/uint16 datasets with deflate, attributes, atomic
 * writes.  The one place that calls HDF5; see include/secap/h5io.h. */
#include "secap/h5io.h"
#include "secap/base.h"
#include "secap/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct secap_h5 {
    hid_t file;
    char *path;      /* the final name */
    char *tmp;       /* the temporary name while created, else NULL */
};

/* HDF5 prints its own error stack by default; we report through secap_fatal. */
static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static secap_h5 *new_handle(hid_t file, const char *path, char *tmp)
{
    secap_h5 *h = secap_xcalloc(1, sizeof *h, "hdf5 handle");
    h->path = secap_xstrdup(path, "hdf5 path");
    h->tmp = tmp;
    h->file = file;
    return h;
}

secap_h5 *secap_h5_try_create(const char *path)
{
    quiet();
    size_t n = strlen(path) + 32;
    char *tmp = secap_xmalloc(n, "hdf5 path");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    secap_tmp_sweep(path);              /* temporaries of killed runs */
    /* Every object on a 64-byte boundary: weight tensors can then be mapped
     * and used in place (secap_weights_mmap) with their elements aligned. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_alignment(fapl, 1, SECAP_H5_ALIGN);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) {
        int e = errno;
        free(tmp);
        errno = e;
        return NULL;
    }
    secap_tmp_register(tmp);            /* removed if the run fails or is interrupted */
    return new_handle(f, path, tmp);
}

secap_h5 *secap_h5_create(const char *path)
{
    secap_h5 *h = secap_h5_try_create(path);
    if (!h)
        secap_fatal("%s.tmp.%ld: cannot create HDF5 file (hint: check that the directory exists and is writable)",
                    path, (long)getpid());
    return h;
}

secap_h5 *secap_h5_try_open(const char *path, int writable)
{
    quiet();
    hid_t f = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    return f < 0 ? NULL : new_handle(f, path, NULL);
}

secap_h5 *secap_h5_open(const char *path, int writable)
{
    secap_h5 *h = secap_h5_try_open(path, writable);
    if (!h) secap_fatal("%s: cannot open as HDF5 (hint: check the path; a damaged file must be rebuilt)", path);
    return h;
}

int secap_h5_is_readable(const char *path)
{
    quiet();
    if (access(path, R_OK) != 0) return 0;
    htri_t ok = H5Fis_hdf5(path);
    return ok > 0;
}

const char *secap_h5_path(const secap_h5 *h) { return h->path; }

/* Closes, renames a created file into place when asked, frees h; failures
 * are reported last, so a handler that catches them leaks nothing. */
static void finish(secap_h5 *h, int commit)
{
    char msg[8400] = "";
    if (H5Fclose(h->file) < 0) {
        snprintf(msg, sizeof msg, "%s: closing the HDF5 file failed (hint: is the disk full?)",
                 h->tmp ? h->tmp : h->path);
    } else if (h->tmp && commit) {
        int fd = open(h->tmp, O_RDONLY);
        if (fd >= 0) { fsync(fd); close(fd); }
        if (rename(h->tmp, h->path) != 0)
            snprintf(msg, sizeof msg, "%s: cannot rename %s into place: %s (hint: check permissions of the directory)",
                     h->path, h->tmp, strerror(errno));
        else { secap_tmp_unregister(h->tmp); free(h->tmp); h->tmp = NULL; }
    }
    if (h->tmp) { unlink(h->tmp); secap_tmp_unregister(h->tmp); }
    free(h->tmp);
    free(h->path);
    free(h);
    if (*msg) secap_fatal("%s", msg);
}

void secap_h5_commit(secap_h5 *h) { finish(h, 1); }

void secap_h5_close(secap_h5 *h)
{
    if (h) finish(h, 0);
}

/* ------------------------------------------------------------ datasets */

static void write_ds(secap_h5 *h, const char *name, hid_t filetype, hid_t memtype, const void *data, int rank,
                     const int64_t *dims, int deflate)
{
    SECAP_CHECK(rank >= 0 && rank <= SECAP_H5_MAX_RANK, "%s: dataset %s: rank %d outside 0..%d",
                h->path, name, rank, SECAP_H5_MAX_RANK);
    SECAP_CHECK(!strchr(name, '/'), "%s: dataset name '%s' contains '/' (hint: escape it; HDF5 reads it as a group)",
                h->path, name);
    hsize_t d[SECAP_H5_MAX_RANK], chunk[SECAP_H5_MAX_RANK];
    int64_t total = 1;
    for (int i = 0; i < rank; i++) { d[i] = (hsize_t)dims[i]; chunk[i] = d[i] ? d[i] : 1; total *= dims[i]; }
    hid_t space = rank ? H5Screate_simple(rank, d, NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (deflate > 0 && total > 0 && rank > 0) {
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    if (H5Lexists(h->file, name, H5P_DEFAULT) > 0) H5Ldelete(h->file, name, H5P_DEFAULT);
    hid_t ds = H5Dcreate2(h->file, name, filetype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1 : total ? H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (st < 0) secap_fatal("%s: cannot write dataset %s (hint: is the disk full?)", h->path, name);
}

void secap_h5_write_f32(secap_h5 *h, const char *name, const float *data, int rank, const int64_t *dims,
                        int deflate)
{
    write_ds(h, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, rank, dims, deflate);
}

void secap_h5_write_u16(secap_h5 *h, const char *name, const uint16_t *data, int rank, const int64_t *dims,
                        int deflate)
{
    write_ds(h, name, H5T_STD_U16LE, H5T_NATIVE_UINT16, data, rank, dims, deflate);
}

int secap_h5_has(secap_h5 *h, const char *name)
{
    return !strchr(name, '/') && H5Lexists(h->file, name, H5P_DEFAULT) > 0;
}

/* 1 when enum type t is h5py's boolean: exactly the members FALSE and TRUE. */
static int is_h5py_bool(hid_t t)
{
    if (H5Tget_class(t) != H5T_ENUM || H5Tget_nmembers(t) != 2) return 0;
    int found = 0;
    for (unsigned i = 0; i < 2; i++) {
        char *m = H5Tget_member_name(t, i);
        if (m && (!strcmp(m, "FALSE") || !strcmp(m, "TRUE"))) found |= m[0] == 'F' ? 1 : 2;
        if (m) H5free_memory(m);
    }
    return found == 3;
}

/* Fills d from a datatype and a dataspace; -1 when HDF5 cannot say. */
static int describe(hid_t type, hid_t space, secap_h5_desc *d)
{
    memset(d, 0, sizeof *d);
    H5T_class_t c = H5Tget_class(type);
    d->cls = c == H5T_INTEGER ? (H5Tget_sign(type) == H5T_SGN_NONE ? SECAP_H5_UINT : SECAP_H5_INT)
           : c == H5T_FLOAT ? SECAP_H5_FLOAT : c == H5T_STRING ? SECAP_H5_STRING
           : c == H5T_ENUM ? (is_h5py_bool(type) ? SECAP_H5_BOOL : SECAP_H5_ENUM) : SECAP_H5_OTHER;
    d->size = (int)H5Tget_size(type);
    d->rank = H5Sget_simple_extent_ndims(space);
    d->count = H5Sget_simple_extent_npoints(space);
    if (c < 0 || d->rank < 0 || d->count < 0) return -1;
    if (d->rank <= SECAP_H5_MAX_RANK) {
        hsize_t x[SECAP_H5_MAX_RANK];
        H5Sget_simple_extent_dims(space, x, NULL);
        for (int i = 0; i < d->rank; i++) d->dims[i] = (int64_t)x[i];
    }
    return 0;
}

static int describe_ds(hid_t ds, secap_h5_desc *d)
{
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    int rc = describe(type, space, d);
    H5Tclose(type);
    H5Sclose(space);
    return rc;
}

int secap_h5_describe(secap_h5 *h, const char *name, secap_h5_desc *d)
{
    if (!secap_h5_has(h, name)) return -1;
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    int rc = describe_ds(ds, d);
    H5Dclose(ds);
    return rc;
}

/* Opens dataset `name` and describes it, stopping when it is missing or of
 * a rank the helpers do not take. */
static hid_t open_ds(secap_h5 *h, const char *name, secap_h5_desc *d)
{
    if (!secap_h5_has(h, name))
        secap_fatal("%s: no dataset named %s (hint: the file was written by another model or version)", h->path, name);
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) secap_fatal("%s: cannot open dataset %s (hint: the file may be damaged)", h->path, name);
    if (describe_ds(ds, d) < 0 || d->rank > SECAP_H5_MAX_RANK) {
        H5Dclose(ds);
        secap_fatal("%s: dataset %s has rank %d, more than %d", h->path, name, d->rank, SECAP_H5_MAX_RANK);
    }
    return ds;
}

int secap_h5_shape(secap_h5 *h, const char *name, int64_t *dims)
{
    secap_h5_desc d;
    H5Dclose(open_ds(h, name, &d));
    memcpy(dims, d.dims, (size_t)d.rank * sizeof *dims);
    return d.rank;
}

/* 0 when dataset `ds` stores enough bytes for what it declares, else -1:
 * deflate shrinks data by at most ~1030:1, so a damaged header claiming a
 * huge extent over a few stored bytes (unwritten chunks read back as fill
 * values) is refused before anything is allocated or read for it. */
static int stored_enough(hid_t ds, const secap_h5_desc *d, uint64_t *stored)
{
    *stored = (uint64_t)H5Dget_storage_size(ds);
    double want = (double)d->count * (double)(d->size > 0 ? d->size : 1);
    return want <= 1100.0 * (double)*stored + 64.0 ? 0 : -1;
}

/* Reads all of an open dataset as memtype; nothing to read is success. */
static herr_t read_all(hid_t ds, hid_t memtype, int64_t count, void *dst)
{
    return count ? H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) : 0;
}

float *secap_h5_read_f32(secap_h5 *h, const char *name, int *rank_out, int64_t *dims_out)
{
    secap_h5_desc d;
    hid_t ds = open_ds(h, name, &d);
    if (d.cls != SECAP_H5_FLOAT) {
        H5Dclose(ds);
        secap_fatal("%s: dataset %s is not floating point (hint: write it as float32)", h->path, name);
    }
    uint64_t stored;
    if (stored_enough(ds, &d, &stored) < 0) {
        H5Dclose(ds);
        secap_fatal("%s: dataset %s declares %lld values but the file holds only %llu bytes of them (hint: the "
                    "file is damaged or was not completely written; rebuild it)", h->path, name,
                    (long long)d.count, (unsigned long long)stored);
    }
    float *out = secap_xmalloc((size_t)d.count * sizeof *out, name);
    if (read_all(ds, H5T_NATIVE_FLOAT, d.count, out) < 0) {
        H5Dclose(ds);
        free(out);
        secap_fatal("%s: cannot read dataset %s (hint: the file may be damaged; rebuild it)", h->path, name);
    }
    H5Dclose(ds);
    if (rank_out) *rank_out = d.rank;
    if (dims_out) memcpy(dims_out, d.dims, (size_t)d.rank * sizeof *dims_out);
    return out;
}

int secap_h5_try_read_f32_block(secap_h5 *h, const char *name, const int64_t *start, const int64_t *count,
                                float *dst)
{
    if (!secap_h5_has(h, name)) return -1;
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t fs = H5Dget_space(ds), ms = -1;
    int rank = H5Sget_simple_extent_ndims(fs);
    herr_t st = -1;
    if (rank >= 1 && rank <= SECAP_H5_MAX_RANK) {
        hsize_t s0[SECAP_H5_MAX_RANK], c0[SECAP_H5_MAX_RANK], total = 1;
        for (int i = 0; i < rank; i++) { s0[i] = (hsize_t)start[i]; c0[i] = (hsize_t)count[i]; total *= c0[i]; }
        if (total == 0) st = 0;
        else if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, s0, NULL, c0, NULL) >= 0 && H5Sselect_valid(fs) > 0) {
            ms = H5Screate_simple(1, &total, NULL);
            st = H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst);
        }
    }
    if (ms >= 0) H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    return st < 0 ? -1 : 0;
}

int secap_h5_raw_extent(secap_h5 *h, const char *name, secap_h5_raw raw, int64_t *offset, int64_t *nbytes)
{
    if (!secap_h5_has(h, name)) return -1;
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    hid_t want = raw == SECAP_H5_RAW_F32LE ? H5T_IEEE_F32LE : raw == SECAP_H5_RAW_U16LE ? H5T_STD_U16LE : -1;
    hssize_t n = H5Sget_simple_extent_npoints(space);
    int ok = want >= 0 && H5Tequal(type, want) > 0 && n > 0 && dcpl >= 0
          && H5Pget_layout(dcpl) == H5D_CONTIGUOUS && H5Pget_nfilters(dcpl) == 0 && H5Pget_external_count(dcpl) == 0;
    haddr_t addr = ok ? H5Dget_offset(ds) : HADDR_UNDEF;
    ok = ok && addr != HADDR_UNDEF && H5Dget_storage_size(ds) == (hsize_t)n * H5Tget_size(type);
    if (ok) {
        *offset = (int64_t)addr;
        *nbytes = (int64_t)n * (int64_t)H5Tget_size(type);
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Sclose(space);
    H5Tclose(type);
    H5Dclose(ds);
    return ok ? 0 : -1;
}

int secap_h5_fd(secap_h5 *h)
{
    void *handle = NULL;
    if (H5Fget_vfd_handle(h->file, H5P_DEFAULT, &handle) < 0 || !handle) return -1;
    return *(int *)handle;   /* the sec2 (POSIX) driver's handle is its descriptor */
}

static int try_read(secap_h5 *h, const char *name, hid_t memtype, void *dst)
{
    if (!secap_h5_has(h, name)) return -1;
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    secap_h5_desc d;
    uint64_t stored;
    int rc = describe_ds(ds, &d) < 0 || stored_enough(ds, &d, &stored) < 0 ||
             read_all(ds, memtype, d.count, dst) < 0 ? -1 : 0;
    H5Dclose(ds);
    return rc;
}

int secap_h5_try_read_f32(secap_h5 *h, const char *name, float *dst)
{
    return try_read(h, name, H5T_NATIVE_FLOAT, dst);
}

int secap_h5_try_read_u16(secap_h5 *h, const char *name, uint16_t *dst)
{
    return try_read(h, name, H5T_NATIVE_UINT16, dst);
}

typedef struct { char **v; int n, cap; } name_list;

static herr_t add_name(hid_t g, const char *name, const H5L_info_t *info, void *ctx)
{
    (void)g; (void)info;
    name_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)l->cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
    }
    if (!(l->v[l->n] = strdup(name))) return -1;
    l->n++;
    return 0;
}

char **secap_h5_list(secap_h5 *h, int *n)
{
    name_list l = {0};
    if (H5Literate(h->file, H5_INDEX_NAME, H5_ITER_INC, NULL, add_name, &l) < 0) {
        secap_h5_free_names(l.v, l.n);
        secap_fatal("%s: cannot list the datasets (hint: the file may be damaged)", h->path);
    }
    *n = l.n;
    return l.v;
}

void secap_h5_free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* ------------------------------------------------------------ attributes */

static hid_t open_obj(secap_h5 *h, const char *obj)
{
    if (!obj) return H5Oopen(h->file, "/", H5P_DEFAULT);
    if (!secap_h5_has(h, obj)) secap_fatal("%s: no dataset named %s to hold an attribute", h->path, obj);
    return H5Oopen(h->file, obj, H5P_DEFAULT);
}

/* Writes a scalar (n < 0) or 1-D [n] attribute. */
static void write_attr(secap_h5 *h, const char *obj, const char *key, hid_t filetype, hid_t memtype, int n,
                       const void *value)
{
    hid_t o = open_obj(h, obj);
    if (H5Aexists(o, key) > 0) H5Adelete(o, key);
    hsize_t dim = n < 0 ? 1 : (hsize_t)n;
    hid_t space = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(o, key, filetype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, memtype, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Oclose(o);
    if (st < 0) secap_fatal("%s: cannot write attribute %s on %s", h->path, key, obj ? obj : "/");
}

/* A UTF-8 string type: fixed length n, or H5T_VARIABLE. */
static hid_t str_type(size_t n, H5T_cset_t cset)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, n);
    H5Tset_cset(t, cset);
    return t;
}

void secap_h5_set_attr_str(secap_h5 *h, const char *obj, const char *key, const char *value)
{
    hid_t t = str_type(strlen(value) + 1, H5T_CSET_UTF8);
    write_attr(h, obj, key, t, t, -1, value);
    H5Tclose(t);
}

void secap_h5_set_attr_vstr(secap_h5 *h, const char *obj, const char *key, const char *value)
{
    hid_t t = str_type(H5T_VARIABLE, H5T_CSET_UTF8);
    write_attr(h, obj, key, t, t, -1, &value);
    H5Tclose(t);
}

void secap_h5_set_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t value)
{
    write_attr(h, obj, key, H5T_STD_I64LE, H5T_NATIVE_INT64, -1, &value);
}

void secap_h5_set_attr_ints(secap_h5 *h, const char *obj, const char *key, const int64_t *value, int n)
{
    SECAP_CHECK(n >= 1, "%s: attribute %s: empty integer list", h->path, key);
    write_attr(h, obj, key, H5T_STD_I64LE, H5T_NATIVE_INT64, n, value);
}

void secap_h5_set_attr_double(secap_h5 *h, const char *obj, const char *key, double value)
{
    write_attr(h, obj, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, -1, &value);
}

/* Opens attribute key, or returns -1 when absent. */
static hid_t open_attr(secap_h5 *h, const char *obj, const char *key, hid_t *o)
{
    *o = open_obj(h, obj);
    if (H5Aexists(*o, key) <= 0) { H5Oclose(*o); return -1; }
    return H5Aopen(*o, key, H5P_DEFAULT);
}

int secap_h5_describe_attr(secap_h5 *h, const char *obj, const char *key, secap_h5_desc *d)
{
    hid_t o, a = open_attr(h, obj, key, &o);
    if (a < 0) return -1;
    hid_t type = H5Aget_type(a), space = H5Aget_space(a);
    int rc = describe(type, space, d);
    H5Tclose(type);
    H5Sclose(space);
    H5Aclose(a);
    H5Oclose(o);
    return rc;
}

int secap_h5_get_attr_str(secap_h5 *h, const char *obj, const char *key, char **value)
{
    hid_t o, a = open_attr(h, obj, key, &o);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    if (H5Tget_class(ft) != H5T_STRING) {
        H5Tclose(ft); H5Aclose(a); H5Oclose(o);
        secap_fatal("%s: attribute %s on %s is not a string", h->path, key, obj ? obj : "/");
    }
    herr_t st;
    if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        hid_t mt = str_type(H5T_VARIABLE, H5Tget_cset(ft));
        st = H5Aread(a, mt, &s);
        *value = secap_xstrdup(s ? s : "", "attribute");
        if (s) H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        *value = secap_xcalloc(n + 1, 1, "attribute");
        hid_t mt = str_type(n + 1, H5Tget_cset(ft));
        st = H5Aread(a, mt, *value);
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    H5Oclose(o);
    if (st < 0) {
        free(*value);
        *value = NULL;
        secap_fatal("%s: cannot read attribute %s", h->path, key);
    }
    return 0;
}

/* An enum FALSE = 0, TRUE = 1 over int64: HDF5 converts enums by member
 * name, so reading an h5py bool (over int8) into it gives 0/1 as int64. */
static hid_t bool_memtype(void)
{
    hid_t t = H5Tenum_create(H5T_NATIVE_INT64);
    int64_t f = 0, tr = 1;
    H5Tenum_insert(t, "FALSE", &f);
    H5Tenum_insert(t, "TRUE", &tr);
    return t;
}

/* Reads the `count` values of attribute key into dst as int64 (as_double 0)
 * or double (1), whatever width, signedness or float format the file uses.
 * Integers, unsigned integers and h5py booleans give int64; floats and
 * integers give double.  Returns -1 when absent; stops on any other kind,
 * more than cap values, or an unsigned value past INT64_MAX. */
static int read_num_attr(secap_h5 *h, const char *obj, const char *key, int as_double, void *dst, int64_t cap)
{
    const char *where = obj ? obj : "/";
    hid_t o, a = open_attr(h, obj, key, &o);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), space = H5Aget_space(a);
    secap_h5_desc d;
    int ok = describe(ft, space, &d) == 0;
    H5Sclose(space);
    int is_bool = ok && d.cls == SECAP_H5_BOOL;
    int uns = ok && d.cls == SECAP_H5_UINT;
    int kind_ok = ok && (d.cls == SECAP_H5_INT || uns || (as_double ? d.cls == SECAP_H5_FLOAT : is_bool));
    herr_t st = -1;
    if (kind_ok && d.count <= cap) {
        hid_t mt = as_double ? H5T_NATIVE_DOUBLE : is_bool ? bool_memtype() : uns ? H5T_NATIVE_UINT64
                 : H5T_NATIVE_INT64;
        st = d.count ? H5Aread(a, mt, dst) : 0;
        if (is_bool && !as_double) H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    H5Oclose(o);
    if (!kind_ok)
        secap_fatal("%s: attribute %s on %s holds %s, not %s (hint: write it as %s)", h->path, key, where,
                    !ok ? "an unreadable type" : d.cls == SECAP_H5_STRING ? "a string"
                    : d.cls == SECAP_H5_FLOAT ? "floating-point values" : d.cls == SECAP_H5_BOOL ? "booleans"
                    : d.cls == SECAP_H5_ENUM ? "an enum other than h5py's bool" : "a compound or other type",
                    as_double ? "numbers" : "integers", as_double ? "a float or integer" : "an integer or bool");
    if (d.count > cap)
        secap_fatal("%s: attribute %s on %s holds %lld values, at most %lld fit (hint: check the config value)",
                    h->path, key, where, (long long)d.count, (long long)cap);
    if (st < 0) secap_fatal("%s: cannot read attribute %s on %s (hint: the file may be damaged)", h->path, key, where);
    if (uns && !as_double)
        for (int64_t i = 0; i < d.count; i++)
            if (((const uint64_t *)dst)[i] > (uint64_t)INT64_MAX)
                secap_fatal("%s: attribute %s on %s = %llu does not fit a signed 64-bit integer (hint: "
                            "no hyper-parameter is that large; check the value in config.json)", h->path, key,
                            where, (unsigned long long)((const uint64_t *)dst)[i]);
    return (int)d.count;
}

/* A scalar getter: the attribute must hold exactly one value. */
static int read_one(secap_h5 *h, const char *obj, const char *key, int as_double, void *dst)
{
    secap_h5_desc d;
    if (secap_h5_describe_attr(h, obj, key, &d) < 0) return -1;
    if (d.count != 1)
        secap_fatal("%s: attribute %s on %s holds %lld values, expected one (hint: write a scalar)",
                    h->path, key, obj ? obj : "/", (long long)d.count);
    read_num_attr(h, obj, key, as_double, dst, 1);
    return 0;
}

int secap_h5_get_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t *value)
{
    return read_one(h, obj, key, 0, value);
}

int secap_h5_get_attr_double(secap_h5 *h, const char *obj, const char *key, double *value)
{
    return read_one(h, obj, key, 1, value);
}

/* A list getter: rank 0 or 1. */
static int read_list(secap_h5 *h, const char *obj, const char *key, int as_double, void *dst, int cap)
{
    secap_h5_desc d;
    if (secap_h5_describe_attr(h, obj, key, &d) < 0) return -1;
    if (d.rank > 1)
        secap_fatal("%s: attribute %s on %s has %d dimensions, expected a list (hint: write a 1-D array)",
                    h->path, key, obj ? obj : "/", d.rank);
    return read_num_attr(h, obj, key, as_double, dst, cap);
}

int secap_h5_get_attr_ints(secap_h5 *h, const char *obj, const char *key, int64_t *dst, int cap)
{
    return read_list(h, obj, key, 0, dst, cap);
}

int secap_h5_get_attr_doubles(secap_h5 *h, const char *obj, const char *key, double *dst, int cap)
{
    return read_list(h, obj, key, 1, dst, cap);
}
