/* The encoder-feature cache: one HDF5 dataset per utterance, keyed by the
 * encoder weights and audio settings so a stale cache is rebuilt. */
#include "secap/featcache.h"
#include "secap/base.h"
#include "secap/h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEATCACHE_FORMAT "secap-features-1"
#define FEATCACHE_DEFLATE 4

struct secap_featcache {
    secap_h5 *h;
    int created;   /* written to a temporary file, committed on close */
    int writable;  /* an existing cache is read-only until the first put */
};

/* "%" -> "%25", "/" -> "%2F": utterance ids become valid dataset names. */
static char *escape_id(const char *id)
{
    size_t n = strlen(id);
    char *out = secap_xmalloc(3 * n + 1, "cache name");
    char *w = out;
    for (const char *p = id; *p; p++) {
        if (*p == '%') { memcpy(w, "%25", 3); w += 3; }
        else if (*p == '/') { memcpy(w, "%2F", 3); w += 3; }
        else *w++ = *p;
    }
    *w = 0;
    return out;
}

/* 1 when attribute key of h equals want; otherwise prints why and returns 0. */
static int attr_matches(secap_h5 *h, const char *key, const char *want)
{
    char *have = NULL;
    int ok = secap_h5_get_attr_str(h, NULL, key, &have) == 0 && !strcmp(have, want);
    if (!ok)
        fprintf(stderr, "secap: feature cache %s is stale: %s is '%s' in the file, '%s' now; rebuilding\n",
                secap_h5_path(h), key, have ? have : "(absent)", want);
    free(have);
    return ok;
}

/* A failed open closes what it opened (a new file is deleted) and frees fc. */
static void abandon(void *arg)
{
    secap_featcache *fc = arg;
    secap_h5_close(fc->h);
    free(fc);
}

secap_featcache *secap_featcache_open(const char *path, const secap_featcache_key *key, int *rebuilt)
{
    secap_featcache *fc = secap_xcalloc(1, sizeof *fc, "feature cache");
    secap_cleanup cl;
    secap_cleanup_push(&cl, abandon, fc);
    if (secap_h5_is_readable(path)) {
        /* Read-only: libhdf5 cannot close a damaged file it opened for
         * writing (H5Fclose fails, the file stays open and libhdf5 crashes
         * at exit), and reading alone must not touch the file. */
        secap_h5 *h = fc->h = secap_h5_open(path, 0);
        if (attr_matches(h, "format", FEATCACHE_FORMAT) && attr_matches(h, "encoder", key->encoder) &&
            attr_matches(h, "settings", key->settings)) {
            if (rebuilt) *rebuilt = 0;
            secap_cleanup_pop(&cl);
            return fc;
        }
        fc->h = NULL;
        secap_h5_close(h);
    }
    fc->h = secap_h5_create(path);
    fc->created = fc->writable = 1;
    secap_h5_set_attr_str(fc->h, NULL, "format", FEATCACHE_FORMAT);
    secap_h5_set_attr_str(fc->h, NULL, "encoder", key->encoder);
    secap_h5_set_attr_str(fc->h, NULL, "settings", key->settings);
    if (rebuilt) *rebuilt = 1;
    secap_cleanup_pop(&cl);
    return fc;
}

int secap_featcache_has(secap_featcache *fc, const char *id)
{
    char *name = escape_id(id);
    int has = secap_h5_has(fc->h, name);
    free(name);
    return has;
}

float *secap_featcache_get(secap_featcache *fc, const char *id, int64_t *frames, int64_t *dim)
{
    char *name = escape_id(id);
    secap_cleanup cl;
    secap_cleanup_push(&cl, free, name);
    float *x = NULL;
    if (secap_h5_has(fc->h, name)) {
        int rank;
        int64_t dims[SECAP_H5_MAX_RANK];
        x = secap_h5_read_f32(fc->h, name, &rank, dims);
        if (rank != 2) {
            free(x);
            secap_fatal("%s: cached features of %s have rank %d, not 2 (hint: delete the cache file to rebuild it)",
                        secap_h5_path(fc->h), id, rank);
        }
        *frames = dims[0];
        *dim = dims[1];
    }
    secap_cleanup_pop(&cl);
    free(name);
    return x;
}

void secap_featcache_put(secap_featcache *fc, const char *id, const float *x, int64_t frames, int64_t dim)
{
    if (!fc->writable) {
        char *path = secap_xstrdup(secap_h5_path(fc->h), "cache path");
        secap_h5_close(fc->h);
        fc->h = secap_h5_try_open(path, 1);
        if (!fc->h) {
            secap_cleanup cl;
            secap_cleanup_push(&cl, free, path);
            secap_fatal("%s: cannot reopen the feature cache for writing (hint: check the file's permissions)", path);
        }
        free(path);
        fc->writable = 1;
    }
    char *name = escape_id(id);
    int64_t dims[2] = { frames, dim };
    secap_h5_write_f32(fc->h, name, x, 2, dims, FEATCACHE_DEFLATE);
    free(name);
}

void secap_featcache_close(secap_featcache *fc)
{
    if (!fc) return;
    if (fc->created) secap_h5_commit(fc->h);
    else secap_h5_close(fc->h);
    free(fc);
}
