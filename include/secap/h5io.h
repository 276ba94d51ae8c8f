/* secap/h5io.h - small HDF5 helpers shared by the feature cache, weight
 * files and checkpoints.
 *
 * A secap_h5 is one open file.  Files made with secap_h5_create are written
 * to "<path>.tmp.<pid>" and only appear under <path> at secap_h5_commit (an
 * atomic rename), so a crash never leaves a half-written file behind under
 * the real name.  Datasets are float32 arrays of rank 1 to 8, stored chunked
 * and deflate-compressed when asked; names may contain dots
 * ("encoder.layers.3.attention.q_proj.weight") but not '/', which HDF5 reads
 * as a group separator.  Attributes are strings, int64 or double, on the
 * root (obj NULL) or on a dataset.  Every failure stops through secap_fatal
 * naming the file, the object and a fix.
 */
#ifndef SECAP_H5IO_H
#define SECAP_H5IO_H

#include <stdint.h>

#define SECAP_H5_MAX_RANK 8

typedef struct secap_h5 secap_h5;

/* A new file, written to a temporary name until secap_h5_commit. */
secap_h5 *secap_h5_create(const char *path);
/* An existing file, read-only (writable 0) or read-write (1). */
secap_h5 *secap_h5_open(const char *path, int writable);
/* Closes a created file and renames it into place; for an opened file, the
 * same as secap_h5_close. */
void secap_h5_commit(secap_h5 *h);
/* Closes; a created file that was never committed is deleted. */
void secap_h5_close(secap_h5 *h);
const char *secap_h5_path(const secap_h5 *h);

/* 1 when the file at `path` exists and HDF5 can open it, else 0. */
int secap_h5_is_readable(const char *path);

/* Writes data [dims[0] x ... x dims[rank-1]] as float32 dataset `name`;
 * deflate 0 stores it uncompressed, 1-9 is the zlib level. */
void secap_h5_write_f32(secap_h5 *h, const char *name, const float *data, int rank, const int64_t *dims,
                        int deflate);
/* 1 when dataset `name` exists. */
int secap_h5_has(secap_h5 *h, const char *name);
/* Shape of `name`: returns its rank and fills dims [SECAP_H5_MAX_RANK]. */
int secap_h5_shape(secap_h5 *h, const char *name, int64_t *dims);
/* Reads `name` converted to float32 into a new buffer; rank and dims as
 * above (either may be NULL).  Stops when it is missing. */
float *secap_h5_read_f32(secap_h5 *h, const char *name, int *rank, int64_t *dims);
/* Names of the root datasets, in HDF5's order; *n set.  Free with
 * secap_h5_free_names. */
char **secap_h5_list(secap_h5 *h, int *n);
void secap_h5_free_names(char **names, int n);

/* Attributes on the root (obj NULL) or on dataset obj; set overwrites. */
void secap_h5_set_attr_str(secap_h5 *h, const char *obj, const char *key, const char *value);
void secap_h5_set_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t value);
void secap_h5_set_attr_double(secap_h5 *h, const char *obj, const char *key, double value);
/* Gets return 0 when found, -1 when the attribute is absent.  The string is
 * malloc'ed. */
int secap_h5_get_attr_str(secap_h5 *h, const char *obj, const char *key, char **value);
int secap_h5_get_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t *value);
int secap_h5_get_attr_double(secap_h5 *h, const char *obj, const char *key, double *value);

#endif
