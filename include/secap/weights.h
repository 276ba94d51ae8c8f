/* secap/weights.h - model weight files (HDF5), checked reading and atomic writing.
 *
 * File layout (SECAP.md section 7, written by tools/convert_hf.py):
 *   - one dataset per tensor at the root, named exactly as in the Hugging Face
 *     state dict ("encoder.layers.3.attention.q_proj.weight");
 *   - dtype float32, or bfloat16 stored as a uint16 dataset carrying the
 *     string attribute dtype="bfloat16" (the upper half of the float32 bits);
 *   - hyper-parameters as root attributes named as in HF config.json:
 *     strings, int64 scalars (booleans as 0/1), float64 scalars, and 1-D
 *     int64 arrays (conv_dim, ...), plus "model_type".  Attributes written
 *     by h5py straight from json.load(config.json) (`f.attrs[k] = v`) read
 *     the same: booleans as h5py's enum FALSE/TRUE, integers and floats of
 *     any width, fixed or variable-length strings, lists as 1-D arrays.
 *
 * Reading: every tensor read is checked for presence, shape and dtype and
 * marked used; secap_weights_close_checked() then fails naming every tensor of
 * the file that was never read (unknown tensors), except names matching an
 * allow-list of fnmatch(3) patterns.  Every error names the file, the tensor or
 * attribute, expected vs found, and a hint, and goes through secap_fatal().
 * After a fatal error caught by a test handler the handle stays usable.
 *
 * Writing: secap_weights_create() writes to "<path>.tmp.<pid>"; close renames
 * it over <path>, so readers never see a half-written file.  Tensors are
 * stored contiguous, uncompressed and 64-byte aligned, so they can be mapped
 * (secap_weights_mmap).
 */
#ifndef SECAP_WEIGHTS_H
#define SECAP_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "secap/bf16.h"

#define SECAP_WEIGHTS_MAX_DIMS 8

typedef struct secap_weights secap_weights;

typedef enum { SECAP_WDTYPE_F32 = 1, SECAP_WDTYPE_BF16 = 2 } secap_wdtype;

/* ---- reading ------------------------------------------------------------ */

/* Opens a weight file read-only; fails naming the path if it is missing or
 * not HDF5. */
secap_weights *secap_weights_open(const char *path);

const char *secap_weights_path(const secap_weights *w);

/* 1 if the file holds a tensor / root attribute of that name. */
int secap_weights_has(const secap_weights *w, const char *name);
int secap_weights_has_attr(const secap_weights *w, const char *name);

/* Shape and storage dtype of a tensor without reading it (fails if absent).
 * shape gets up to SECAP_WEIGHTS_MAX_DIMS entries; returns ndim. */
int secap_weights_info(const secap_weights *w, const char *name, int64_t *shape,
                       secap_wdtype *dtype);

/* Reads tensor `name` into dst (prod(shape) floats), checking that it exists,
 * has exactly shape[0..ndim) and is float32 or bfloat16 (widened exactly).
 * Marks it used. */
void secap_weights_read(secap_weights *w, const char *name, int ndim,
                        const int64_t *shape, float *dst);

/* The same, keeping bfloat16 bits (float32 tensors are rounded to nearest
 * even). */
void secap_weights_read_bf16(secap_weights *w, const char *name, int ndim,
                             const int64_t *shape, uint16_t *dst);

/* ---- mapping frozen weights ------------------------------------------------
 *
 * A frozen model can use its tensors where they lie in the file instead of
 * copying them: map the file once, then ask for each tensor.  The pages are
 * the page cache's (shared by every process that maps the file, read only),
 * and only the pages touched become resident.  Writers (secap_weights_create,
 * tools/convert_hf.py) store every tensor contiguous, uncompressed and
 * 64-byte aligned, so each of them maps; a tensor that does not (chunked or
 * compressed by another writer, misaligned, stored as another dtype) is read
 * into place by the caller instead:
 *
 *     secap_wmap *m = secap_weights_mmap(w);
 *     const void *p = secap_wmap_tensor(m, w, name, 2, shape, SECAP_WDTYPE_BF16);
 *     if (!p) { secap_weights_read_bf16(w, name, 2, shape, buf); p = buf; }
 *     ...
 *     secap_weights_close_checked(w, NULL);   // the mapping stays valid
 *     ...
 *     secap_wmap_free(m);                     // after the model is done
 *
 * Writers replace a file by renaming a new one over it, so a mapped file is
 * never changed underneath its readers. */

/* A read-only mapping of a whole weight file; outlives the reader. */
typedef struct secap_wmap secap_wmap;

/* Maps (PROT_READ, shared) the file w reads, through w's own descriptor;
 * fails naming the file. */
secap_wmap *secap_weights_mmap(secap_weights *w);

/* Checks `name` as secap_weights_read does (present, exactly shape[0..ndim),
 * float32 or bfloat16; fails otherwise naming file and tensor) and, when the
 * dataset is contiguous, uncompressed, little-endian, element-aligned and
 * stored exactly as `want` (float32, or bf16-tagged uint16), marks it used
 * and returns a pointer to its data inside the mapping (prod(shape) values,
 * read only, valid until secap_wmap_free); else returns NULL and marks
 * nothing (the caller reads it into place instead).  m must be the mapping
 * of w's file. */
const void *secap_wmap_tensor(secap_wmap *m, secap_weights *w, const char *name, int ndim, const int64_t *shape,
                              secap_wdtype want);

/* Bytes mapped (the file size). */
size_t secap_wmap_bytes(const secap_wmap *m);

/* Unmaps; every pointer it gave becomes invalid.  NULL is a no-op. */
void secap_wmap_free(secap_wmap *m);

/* Marks a tensor as deliberately unused if present (e.g. masked_spec_embed). */
void secap_weights_skip(secap_weights *w, const char *name);

/* Root attributes; each fails naming file and attribute, what it expected
 * and what the attribute holds, with a hint, when it is missing or of the
 * wrong kind.  attr_int takes one integer of any width and signedness or a
 * boolean (0/1); attr_double one float of any width or an integer;
 * attr_string one fixed or variable-length string (ASCII or UTF-8; a
 * 1-element list of strings counts).  A 1-element list counts as a scalar.
 * Strings are owned by w (valid until close). */
int64_t secap_weights_attr_int(secap_weights *w, const char *name);
double secap_weights_attr_double(secap_weights *w, const char *name);
const char *secap_weights_attr_string(secap_weights *w, const char *name);
/* A 1-D list attribute (a scalar counts as length 1) of integers/booleans
 * (attr_ints) or of numbers (attr_doubles) into dst [cap]; fails if it has
 * more than cap entries.  Returns the count; an empty list gives 0. */
int secap_weights_attr_ints(secap_weights *w, const char *name, int64_t *dst, int cap);
/* attr_int that must lie in [lo, hi] (and so fit an int); fails naming the
 * file, the attribute, its value and the range. */
int secap_weights_attr_int_in(secap_weights *w, const char *name, int64_t lo, int64_t hi);
/* A string attribute that must equal `want`; fails naming file, attribute,
 * its value, and `hint`. */
void secap_weights_require_string(secap_weights *w, const char *name, const char *want, const char *hint);
int secap_weights_attr_doubles(secap_weights *w, const char *name, double *dst, int cap);

/* Closes; fails listing every tensor never read nor skipped, unless it
 * matches one of the NULL-terminated fnmatch patterns in `allow` (may be
 * NULL).  The handle is freed before the failure is reported. */
void secap_weights_close_checked(secap_weights *w, const char *const *allow);

/* Closes a reader without the unused-tensor check, or a writer (then the
 * temporary file is flushed and renamed over the target). */
void secap_weights_close(secap_weights *w);

/* ---- writing ------------------------------------------------------------ */

secap_weights *secap_weights_create(const char *path);

/* Writes a float32 tensor (or converts to bf16 with dtype SECAP_WDTYPE_BF16,
 * rounding to nearest even).  Fails if the name exists already. */
void secap_weights_write(secap_weights *w, const char *name, int ndim,
                         const int64_t *shape, const float *data, secap_wdtype dtype);
/* Writes bfloat16 bits as they are. */
void secap_weights_write_bf16(secap_weights *w, const char *name, int ndim,
                              const int64_t *shape, const uint16_t *data);

void secap_weights_set_int(secap_weights *w, const char *name, int64_t v);
void secap_weights_set_double(secap_weights *w, const char *name, double v);
void secap_weights_set_string(secap_weights *w, const char *name, const char *v);
void secap_weights_set_ints(secap_weights *w, const char *name, const int64_t *v, int n);

/* Drops a writer without producing the target file (error paths). */
void secap_weights_discard(secap_weights *w);

#endif
