/* secap/featcache.h - the encoder-feature cache (HDF5). */
#ifndef SECAP_FEATCACHE_H
#define SECAP_FEATCACHE_H

#include <stddef.h>
#include <stdint.h>

/* Encoder outputs stored in HDF5, one deflate-compressed float32 dataset
 * [frames x dim] per utterance id, so a frozen encoder runs once per
 * utterance.  Root attributes identify what produced them: `encoder` (the
 * weights: e.g. file name, size and modification time, or a checksum),
 * `settings` (audio and output settings: rate, normalisation, crop, layer)
 * and `format`.  A cache whose attributes differ from the key is stale: it is
 * rebuilt (written to a temporary file that replaces it on close), never
 * silently used.
 *
 * Safety: an existing file at the path that is not a feature cache (another
 * HDF5 file such as a weight file, a non-HDF5 file, a directory) is never
 * replaced: opening stops naming what it is.  Each dataset stores a 63-bit
 * digest of its values (attribute `digest`); every read checks it, so a
 * damaged or overwritten chunk is an error, never silently different
 * features.  Non-finite features are refused before they are written. */
typedef struct {
    const char *encoder;
    const char *settings;
} secap_featcache_key;

typedef struct secap_featcache secap_featcache;

/* The HDF5 dataset name of an utterance id, "%" written "%25" and "/"
 * "%2F" (malloc'ed): the spelling of the feature cache and of the files of
 * secap-embed, which secap-probe reads. */
char *secap_featcache_name(const char *id);

/* Stops unless path is absent or a feature cache (of any key): the check
 * secap_featcache_open makes first, for programs that want it before heavy
 * work. */
void secap_featcache_check_path(const char *path);
/* Opens the cache at path for `key`.  *rebuilt (may be NULL) is set to 1
 * when the file was missing or stale and a new one is started. */
secap_featcache *secap_featcache_open(const char *path, const secap_featcache_key *key, int *rebuilt);
/* Opens an existing cache of any key read-only, for programs that only read
 * features (secap-embed --features): nothing is ever rebuilt or written, and
 * secap_featcache_put must not be called on it.  Stops when path is absent
 * or not a feature cache. */
secap_featcache *secap_featcache_open_read(const char *path);
int secap_featcache_has(secap_featcache *fc, const char *id);
/* Features of `id` [*frames x *dim] in a new buffer, or NULL when absent.
 * Stops naming the id when its digest does not match (damaged). */
float *secap_featcache_get(secap_featcache *fc, const char *id, int64_t *frames, int64_t *dim);
/* Reads `id` and checks its digest: 1 intact, 0 absent, -1 damaged (why
 * says how). */
int secap_featcache_verify(secap_featcache *fc, const char *id, char *why, size_t whylen);
/* Stores x [frames x dim] with its digest; stops if x holds NaN or inf. */
void secap_featcache_put(secap_featcache *fc, const char *id, const float *x, int64_t frames, int64_t dim);
/* Makes everything put so far durable under the real path: a new cache is
 * committed (renamed into place) and reopened for extending, an existing
 * one closed and reopened.  A run killed after a flush keeps those entries
 * (secap-extract flushes every --flush-seconds). */
void secap_featcache_flush(secap_featcache *fc);
/* Closes; a rebuilt cache replaces the old file atomically here. */
void secap_featcache_close(secap_featcache *fc);

#endif
