/* secap/featcache.h - the encoder-feature cache (HDF5). */
#ifndef SECAP_FEATCACHE_H
#define SECAP_FEATCACHE_H

#include <stdint.h>

/* Encoder outputs stored in HDF5, one deflate-compressed float32 dataset
 * [frames x dim] per utterance id, so a frozen encoder runs once per
 * utterance.  Root attributes identify what produced them: `encoder` (the
 * weights: e.g. file name, size and modification time, or a checksum),
 * `settings` (audio and output settings: rate, normalisation, crop, layer)
 * and `format`.  A cache whose attributes differ from the key is stale: it is
 * rebuilt (written to a temporary file that replaces it on close), never
 * silently used. */
typedef struct {
    const char *encoder;
    const char *settings;
} secap_featcache_key;

typedef struct secap_featcache secap_featcache;

/* Opens the cache at path for `key`.  *rebuilt (may be NULL) is set to 1
 * when the file was missing, unreadable or stale and a new one is started. */
secap_featcache *secap_featcache_open(const char *path, const secap_featcache_key *key, int *rebuilt);
int secap_featcache_has(secap_featcache *fc, const char *id);
/* Features of `id` [*frames x *dim] in a new buffer, or NULL when absent. */
float *secap_featcache_get(secap_featcache *fc, const char *id, int64_t *frames, int64_t *dim);
void secap_featcache_put(secap_featcache *fc, const char *id, const float *x, int64_t frames, int64_t dim);
/* Closes; a rebuilt cache replaces the old file atomically here. */
void secap_featcache_close(secap_featcache *fc);

#endif
