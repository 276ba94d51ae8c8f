/* secap/h5io.h - the one HDF5 layer: the feature cache, weight files
 * (secap/weights.h) and checkpoints all go through it.
 *
 * A secap_h5 is one open file.  Files made with secap_h5_create are written
 * to "<path>.tmp.<pid>" and only appear under <path> at secap_h5_commit (an
 * fsync and an atomic rename), so a crash never leaves a half-written file
 * behind under the real name.  Datasets are float32 or uint16 arrays of rank
 * 0 (a scalar) to 8, stored chunked and deflate-compressed when asked; names
 * may contain dots ("encoder.layers.3.attention.q_proj.weight") but not '/',
 * which HDF5 reads as a group separator.  Attributes are written as strings,
 * int64 (scalars or 1-D arrays) or double, on the root (obj NULL) or on a
 * dataset; they are read back whatever way h5py wrote them (any integer or
 * float width, booleans, fixed or variable-length strings).
 * Every failure stops through secap_fatal naming the file, the object and a
 * fix, except in the secap_h5_try_* functions and secap_h5_describe*, which
 * print nothing and return NULL or -1 so that a caller can word its own
 * error (errno holds the system's reason where there is one).  HDF5's own
 * error printing is always off.
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
/* The same two, returning NULL instead of stopping. */
secap_h5 *secap_h5_try_create(const char *path);
secap_h5 *secap_h5_try_open(const char *path, int writable);
/* Closes a created file, syncs it and renames it into place; for an opened
 * file, the same as secap_h5_close.  h is freed (and an uncommitted
 * temporary file deleted) before any failure is reported. */
void secap_h5_commit(secap_h5 *h);
/* Closes; a created file that was never committed is deleted. */
void secap_h5_close(secap_h5 *h);
const char *secap_h5_path(const secap_h5 *h);

/* 1 when the file at `path` exists and HDF5 can open it, else 0. */
int secap_h5_is_readable(const char *path);

/* Writes data [dims[0] x ... x dims[rank-1]] as float32 dataset `name`,
 * replacing one of that name; rank 0 is a scalar (dims may be NULL);
 * deflate 0 stores it uncompressed and contiguous, 1-9 is the zlib level. */
void secap_h5_write_f32(secap_h5 *h, const char *name, const float *data, int rank, const int64_t *dims,
                        int deflate);
/* The same for uint16 (bfloat16 bits in weight files). */
void secap_h5_write_u16(secap_h5 *h, const char *name, const uint16_t *data, int rank, const int64_t *dims,
                        int deflate);
/* 1 when dataset `name` exists. */
int secap_h5_has(secap_h5 *h, const char *name);
/* Shape of `name`: returns its rank and fills dims [SECAP_H5_MAX_RANK]. */
int secap_h5_shape(secap_h5 *h, const char *name, int64_t *dims);
/* Reads `name` converted to float32 into a new buffer; rank and dims as
 * above (either may be NULL).  Stops when it is missing, or when the file
 * stores too few bytes for the extent it declares (more than deflate can
 * explain: a damaged header), before allocating anything for it. */
float *secap_h5_read_f32(secap_h5 *h, const char *name, int *rank, int64_t *dims);
/* Names of the root datasets, in HDF5's order; *n set.  Free with
 * secap_h5_free_names. */
char **secap_h5_list(secap_h5 *h, int *n);
void secap_h5_free_names(char **names, int n);
/* Reads all of dataset `name` into dst (its count values), converted by HDF5
 * to float32 / uint16.  0, or -1 when it is absent, unreadable or stores too
 * few bytes for its extent (as above). */
int secap_h5_try_read_f32(secap_h5 *h, const char *name, float *dst);
int secap_h5_try_read_u16(secap_h5 *h, const char *name, uint16_t *dst);

/* Reads the block start[i] .. start[i] + count[i] - 1 in every dimension of
 * dataset `name` (rank >= 1; the block in row-major order, prod(count)
 * values) into dst, converted to float32.  0, or -1 when it is absent, not
 * convertible or the block lies outside it.  Lets a caller read a large
 * tensor piece by piece without a full-size buffer. */
int secap_h5_try_read_f32_block(secap_h5 *h, const char *name, const int64_t *start, const int64_t *count,
                                float *dst);

/* Files made by secap_h5_create put every object (tensors included) on a
 * multiple of SECAP_H5_ALIGN bytes. */
#define SECAP_H5_ALIGN 64

/* Where dataset `name` keeps its values in the file, for mapping them in
 * place: when it is stored contiguously (not chunked, not compact), with no
 * filter (compression, shuffle, checksum), in this file (no external
 * storage), already written, non-empty, and of exactly the file type `raw`,
 * sets *offset (bytes from the start of the file, any user block included)
 * and *nbytes (count x element size) and returns 0; else returns -1. */
typedef enum { SECAP_H5_RAW_F32LE = 1, SECAP_H5_RAW_U16LE } secap_h5_raw;
int secap_h5_raw_extent(secap_h5 *h, const char *name, secap_h5_raw raw, int64_t *offset, int64_t *nbytes);
/* The operating-system descriptor HDF5 reads the file through (owned by h:
 * never close it), or -1. */
int secap_h5_fd(secap_h5 *h);

/* What a dataset or attribute stores, for checks that say what they found. */
typedef enum {
    SECAP_H5_INT = 1, SECAP_H5_UINT, SECAP_H5_FLOAT, SECAP_H5_STRING,
    SECAP_H5_BOOL,   /* h5py's bool: an enum FALSE = 0, TRUE = 1 (over int8) */
    SECAP_H5_ENUM,   /* any other enum */
    SECAP_H5_OTHER
} secap_h5_class;
typedef struct {
    secap_h5_class cls;
    int size;                          /* bytes per value */
    int rank;                          /* 0 for a scalar; may exceed SECAP_H5_MAX_RANK */
    int64_t dims[SECAP_H5_MAX_RANK];   /* [rank], filled when rank <= SECAP_H5_MAX_RANK */
    int64_t count;                     /* number of values */
} secap_h5_desc;
/* Describes dataset `name`: 0, or -1 when no dataset has that name (absent,
 * or a group). */
int secap_h5_describe(secap_h5 *h, const char *name, secap_h5_desc *d);
/* Describes attribute key of the root (obj NULL) or dataset obj: 0, or -1
 * when absent. */
int secap_h5_describe_attr(secap_h5 *h, const char *obj, const char *key, secap_h5_desc *d);

/* Attributes on the root (obj NULL) or on dataset obj; set overwrites.
 * set_attr_str writes a fixed-length string, set_attr_vstr a variable-length
 * one (what h5py writes, and reads back as str: weight files use it);
 * set_attr_ints a 1-D int64 array of n >= 1 values. */
void secap_h5_set_attr_str(secap_h5 *h, const char *obj, const char *key, const char *value);
void secap_h5_set_attr_vstr(secap_h5 *h, const char *obj, const char *key, const char *value);
void secap_h5_set_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t value);
void secap_h5_set_attr_ints(secap_h5 *h, const char *obj, const char *key, const int64_t *value, int n);
void secap_h5_set_attr_double(secap_h5 *h, const char *obj, const char *key, double value);
/* Gets return 0 when found, -1 when the attribute is absent, and stop
 * naming file, object and attribute when it holds another kind or more than
 * one value (a 1-element list counts as one).  The string (fixed or
 * variable length, ASCII or UTF-8) is malloc'ed.  An int is any signed or
 * unsigned integer width (unsigned values past INT64_MAX stop) or an h5py
 * bool (0/1); a double is any float width (float16/32/64) or an integer. */
int secap_h5_get_attr_str(secap_h5 *h, const char *obj, const char *key, char **value);
int secap_h5_get_attr_int(secap_h5 *h, const char *obj, const char *key, int64_t *value);
int secap_h5_get_attr_double(secap_h5 *h, const char *obj, const char *key, double *value);
/* A scalar or 1-D attribute of the kinds above into dst [cap]: returns its
 * count (0 for an empty list), -1 when absent; stops when it is of another
 * kind, has more dimensions, or holds more than cap values. */
int secap_h5_get_attr_ints(secap_h5 *h, const char *obj, const char *key, int64_t *dst, int cap);
int secap_h5_get_attr_doubles(secap_h5 *h, const char *obj, const char *key, double *dst, int cap);

#endif
