/* HDF5 helpers: float32 datasets with deflate, attributes, atomic writes. */
#include "secap/h5io.h"
#include "secap/base.h"

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

secap_h5 *secap_h5_create(const char *path)
{
    quiet();
    secap_h5 *h = secap_xcalloc(1, sizeof *h, "hdf5 handle");
    h->path = secap_xstrdup(path, "hdf5 path");
    size_t n = strlen(path) + 32;
    h->tmp = secap_xmalloc(n, "hdf5 path");
    snprintf(h->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    h->file = H5Fcreate(h->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (h->file < 0)
        secap_fatal("%s: cannot create HDF5 file (hint: check that the directory exists and is writable)", h->tmp);
    return h;
}

secap_h5 *secap_h5_open(const char *path, int writable)
{
    quiet();
    hid_t f = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        secap_fatal("%s: cannot open as HDF5 (hint: check the path; a damaged file must be rebuilt)", path);
    secap_h5 *h = secap_xcalloc(1, sizeof *h, "hdf5 handle");
    h->path = secap_xstrdup(path, "hdf5 path");
    h->file = f;
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

static void close_file(secap_h5 *h)
{
    if (H5Fclose(h->file) < 0) secap_fatal("%s: closing the HDF5 file failed (hint: is the disk full?)",
                                           h->tmp ? h->tmp : h->path);
}

void secap_h5_commit(secap_h5 *h)
{
    close_file(h);
    if (h->tmp && rename(h->tmp, h->path) != 0)
        secap_fatal("%s: cannot rename %s into place (hint: check permissions of the directory)", h->path, h->tmp);
    free(h->tmp);
    free(h->path);
    free(h);
}

void secap_h5_close(secap_h5 *h)
{
    if (!h) return;
    close_file(h);
    if (h->tmp) unlink(h->tmp);
    free(h->tmp);
    free(h->path);
    free(h);
}

void secap_h5_write_f32(secap_h5 *h, const char *name, const float *data, int rank, const int64_t *dims,
                        int deflate)
{
    SECAP_CHECK(rank >= 1 && rank <= SECAP_H5_MAX_RANK, "%s: dataset %s: rank %d outside 1..%d",
                h->path, name, rank, SECAP_H5_MAX_RANK);
    SECAP_CHECK(!strchr(name, '/'), "%s: dataset name '%s' contains '/' (hint: escape it; HDF5 reads it as a group)",
                h->path, name);
    hsize_t d[SECAP_H5_MAX_RANK], chunk[SECAP_H5_MAX_RANK];
    int64_t total = 1;
    for (int i = 0; i < rank; i++) { d[i] = (hsize_t)dims[i]; chunk[i] = d[i] ? d[i] : 1; total *= dims[i]; }
    hid_t space = H5Screate_simple(rank, d, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (deflate > 0 && total > 0) {
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_deflate(dcpl, (unsigned)deflate);
    }
    if (H5Lexists(h->file, name, H5P_DEFAULT) > 0) H5Ldelete(h->file, name, H5P_DEFAULT);
    hid_t ds = H5Dcreate2(h->file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t st = ds < 0 ? -1 : total ? H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (st < 0) secap_fatal("%s: cannot write dataset %s (hint: is the disk full?)", h->path, name);
}

int secap_h5_has(secap_h5 *h, const char *name)
{
    return !strchr(name, '/') && H5Lexists(h->file, name, H5P_DEFAULT) > 0;
}

static hid_t open_ds(secap_h5 *h, const char *name)
{
    if (!secap_h5_has(h, name))
        secap_fatal("%s: no dataset named %s (hint: the file was written by another model or version)", h->path, name);
    hid_t ds = H5Dopen2(h->file, name, H5P_DEFAULT);
    if (ds < 0) secap_fatal("%s: cannot open dataset %s (hint: the file may be damaged)", h->path, name);
    return ds;
}

static int ds_shape(secap_h5 *h, hid_t ds, const char *name, int64_t *dims)
{
    hid_t space = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > SECAP_H5_MAX_RANK) {
        H5Sclose(space);
        secap_fatal("%s: dataset %s has rank %d, more than %d", h->path, name, rank, SECAP_H5_MAX_RANK);
    }
    hsize_t d[SECAP_H5_MAX_RANK];
    H5Sget_simple_extent_dims(space, d, NULL);
    for (int i = 0; i < rank; i++) dims[i] = (int64_t)d[i];
    H5Sclose(space);
    return rank;
}

int secap_h5_shape(secap_h5 *h, const char *name, int64_t *dims)
{
    hid_t ds = open_ds(h, name);
    int rank = ds_shape(h, ds, name, dims);
    H5Dclose(ds);
    return rank;
}

float *secap_h5_read_f32(secap_h5 *h, const char *name, int *rank_out, int64_t *dims_out)
{
    hid_t ds = open_ds(h, name);
    int64_t dims[SECAP_H5_MAX_RANK];
    int rank = ds_shape(h, ds, name, dims);
    hid_t type = H5Dget_type(ds);
    int is_float = H5Tget_class(type) == H5T_FLOAT;
    H5Tclose(type);
    if (!is_float) {
        H5Dclose(ds);
        secap_fatal("%s: dataset %s is not floating point (hint: write it as float32)", h->path, name);
    }
    int64_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    float *out = secap_xmalloc((size_t)total * sizeof *out, name);
    if (total && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        H5Dclose(ds);
        free(out);
        secap_fatal("%s: cannot read dataset %s (hint: the file may be damaged; rebuild it)", h->path, name);
    }
    H5Dclose(ds);
    if (rank_out) *rank_out = rank;
    if (dims_out) memcpy(dims_out, dims, (size_t)rank * sizeof *dims);
    return out;
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
    l->v[l->n++] = secap_xstrdup(name, "dataset name");
    return 0;
}

char **secap_h5_list(secap_h5 *h, int *n)
{
    name_list l = {0};
    if (H5Literate(h->file, H5_INDEX_NAME, H5_ITER_INC, NULL, add_name, &l) < 0)
        secap_fatal("%s: cannot list the datasets (hint: the file may be damaged)", h->path);
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

static void write_attr(secap_h5 *h, const char *obj, const char *key, hid_t type, const void *value)
{
    hid_t o = open_obj(h, obj);
    if (H5Aexists(o, key) > 0) H5Adelete(o, key);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, key, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, type, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    H5Oclose(o);
    if (st < 0) secap_fatal("%s: cannot write attribute %s on %s", h->path, key, obj ? obj : "/");
}

void secap_h5_set_attr_str(secap_h5 *h, const char *obj, const char *key, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    write_attr(h, obj, key, t, value);
    H5Tclose(t);
}

void secap_h5_set_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t value)
{
    write_attr(h, obj, key, H5T_NATIVE_INT64, &value);
}

void secap_h5_set_attr_double(secap_h5 *h, const char *obj, const char *key, double value)
{
    write_attr(h, obj, key, H5T_NATIVE_DOUBLE, &value);
}

/* Opens attribute key, or returns -1 when absent. */
static hid_t open_attr(secap_h5 *h, const char *obj, const char *key, hid_t *o)
{
    *o = open_obj(h, obj);
    if (H5Aexists(*o, key) <= 0) { H5Oclose(*o); return -1; }
    return H5Aopen(*o, key, H5P_DEFAULT);
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
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        st = H5Aread(a, mt, &s);
        *value = secap_xstrdup(s ? s : "", "attribute");
        if (s) H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        *value = secap_xcalloc(n + 1, 1, "attribute");
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(ft));
        st = H5Aread(a, mt, *value);
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    H5Oclose(o);
    if (st < 0) secap_fatal("%s: cannot read attribute %s", h->path, key);
    return 0;
}

static int read_num_attr(secap_h5 *h, const char *obj, const char *key, hid_t type, void *value)
{
    hid_t o, a = open_attr(h, obj, key, &o);
    if (a < 0) return -1;
    herr_t st = H5Aread(a, type, value);
    H5Aclose(a);
    H5Oclose(o);
    if (st < 0) secap_fatal("%s: attribute %s on %s is not a number", h->path, key, obj ? obj : "/");
    return 0;
}

int secap_h5_get_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t *value)
{
    return read_num_attr(h, obj, key, H5T_NATIVE_INT64, value);
}

int secap_h5_get_attr_double(secap_h5 *h, const char *obj, const char *key, double *value)
{
    return read_num_attr(h, obj, key, H5T_NATIVE_DOUBLE, value);
}
