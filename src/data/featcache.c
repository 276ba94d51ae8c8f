/* The encoder-feature cache: one HDF5 dataset per utterance, keyed by the
 * encoder weights and audio settings so a stale cache is rebuilt.  Each
 * dataset carries a digest of its values, checked whenever it is read. */
#include "secap/featcache.h"
#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* -2: per-dataset "digest" attributes (caches of format -1 are rebuilt). */
#define FEATCACHE_FORMAT "secap-features-2"
#define FEATCACHE_FORMAT_PREFIX "secap-features-"
#define FEATCACHE_DEFLATE 4

struct secap_featcache {
    secap_h5 *h;
    char *path;
    int created;   /* written to a temporary file, committed on close or flush */
    int writable;  /* an existing cache is opened read-only until the first put */
};

/* "%" -> "%25", "/" -> "%2F": utterance ids become valid dataset names. */
char *secap_featcache_name(const char *id)
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

/* A 63-bit digest of frames, dim and the float bits: four interleaved
 * multiply-xorshift lanes over 64-bit words (several GB/s), then mixed.
 * Bit-exact values only: a cache read back must be what was written. */
static int64_t digest(const float *x, int64_t frames, int64_t dim)
{
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    uint64_t h[4] = { (uint64_t)frames * K, (uint64_t)dim ^ K, 0x6A09E667F3BCC908ull, 0xBB67AE8584CAA73Bull };
    size_t bytes = (size_t)(frames * dim) * sizeof(float), words = bytes / 8;
    const unsigned char *p = (const unsigned char *)x;
    size_t i = 0;
    for (; i + 4 <= words; i += 4)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, p + 8 * (i + (size_t)l), 8);
            h[l] = (h[l] ^ w) * K;
            h[l] ^= h[l] >> 29;
        }
    for (; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
        h[0] = ((h[0] ^ w) * K) ^ (h[0] >> 31);
    }
    uint64_t tail = 0;
    memcpy(&tail, p + 8 * words, bytes - 8 * words);
    uint64_t r = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7) ^ tail ^ (uint64_t)bytes;
    r ^= r >> 33; r *= 0xff51afd7ed558ccdull; r ^= r >> 33; r *= 0xc4ceb9fe1a85ec53ull; r ^= r >> 33;
    return (int64_t)(r >> 1);
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

/* What secap_featcache_check_path holds while it looks inside a file. */
typedef struct { secap_h5 *h; char *fmt, *model; } peek;

static void peek_free(void *arg)
{
    peek *k = arg;
    free(k->fmt);
    free(k->model);
    secap_h5_close(k->h);
}

void secap_featcache_check_path(const char *path)
{
    char what[160];
    if (!path || !*path) secap_fatal("feature cache: empty path (hint: give --out a file name such as feats.h5)");
    if (secap_is_dir(path))
        secap_fatal("feature cache %s: is a directory (hint: give a file name, e.g. %s/features.h5)", path, path);
    if (access(path, F_OK) != 0) return;
    secap_describe_file(path, what, sizeof what);
    if (!secap_h5_is_readable(path))
        secap_fatal("feature cache %s: exists and is %s%s, not a feature cache; it is never overwritten (hint: choose "
                    "another path, or remove the file if it is yours to lose)", path, what,
                    strncmp(what, "an HDF5", 7) ? "" : " that HDF5 cannot open (damaged, or being written?)");
    peek k = { secap_h5_open(path, 0), NULL, NULL };
    secap_cleanup cl;   /* a damaged file stopping a read below leaks nothing */
    secap_cleanup_push(&cl, peek_free, &k);
    secap_h5_get_attr_str(k.h, NULL, "format", &k.fmt);
    int cache = k.fmt && !strncmp(k.fmt, FEATCACHE_FORMAT_PREFIX, strlen(FEATCACHE_FORMAT_PREFIX));
    char kind[320] = "";
    if (!cache) {
        int n = 0;
        char **names = secap_h5_list(k.h, &n);
        char first[128] = "";
        if (n) snprintf(first, sizeof first, ", e.g. %s", names[0]);
        secap_h5_free_names(names, n);
        secap_h5_desc d;
        int weights = secap_h5_describe_attr(k.h, NULL, "model_type", &d) == 0 && d.cls == SECAP_H5_STRING;
        if (weights) secap_h5_get_attr_str(k.h, NULL, "model_type", &k.model);
        if (weights) snprintf(kind, sizeof kind, "a model weight file (model_type = %s)", k.model ? k.model : "?");
        else snprintf(kind, sizeof kind, "an HDF5 file without the attribute format = %s* (%d dataset%s%s)",
                      FEATCACHE_FORMAT_PREFIX, n, n == 1 ? "" : "s", first);
    }
    secap_cleanup_pop(&cl);
    peek_free(&k);
    if (!cache)
        secap_fatal("feature cache %s: exists and is %s, not a feature cache; it is never overwritten (hint: choose "
                    "another path for the features)", path, kind);
}

/* A failed open closes what it opened (a new file is deleted) and frees fc. */
static void abandon(void *arg)
{
    secap_featcache *fc = arg;
    if (fc->h) secap_h5_close(fc->h);
    free(fc->path);
    free(fc);
}

static void start_new(secap_featcache *fc, const secap_featcache_key *key)
{
    fc->h = secap_h5_create(fc->path);
    fc->created = fc->writable = 1;
    secap_h5_set_attr_str(fc->h, NULL, "format", FEATCACHE_FORMAT);
    secap_h5_set_attr_str(fc->h, NULL, "encoder", key->encoder);
    secap_h5_set_attr_str(fc->h, NULL, "settings", key->settings);
}

secap_featcache *secap_featcache_open(const char *path, const secap_featcache_key *key, int *rebuilt)
{
    secap_featcache_check_path(path);
    secap_featcache *fc = secap_xcalloc(1, sizeof *fc, "feature cache");
    secap_cleanup cl;
    secap_cleanup_push(&cl, abandon, fc);
    fc->path = secap_xstrdup(path, "feature cache path");
    if (access(path, F_OK) == 0) {
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
    start_new(fc, key);
    if (rebuilt) *rebuilt = 1;
    secap_cleanup_pop(&cl);
    return fc;
}

secap_featcache *secap_featcache_open_read(const char *path)
{
    if (!path || access(path, F_OK) != 0)
        secap_fatal("feature cache %s: does not exist (hint: make it with bin/secap-extract --out %s)",
                    path ? path : "(null)", path ? path : "features.h5");
    secap_featcache_check_path(path);   /* refuses anything that is not a cache */
    secap_featcache *fc = secap_xcalloc(1, sizeof *fc, "feature cache");
    secap_cleanup cl;
    secap_cleanup_push(&cl, abandon, fc);
    fc->path = secap_xstrdup(path, "feature cache path");
    fc->h = secap_h5_open(path, 0);
    secap_cleanup_pop(&cl);
    return fc;
}

int secap_featcache_has(secap_featcache *fc, const char *id)
{
    char *name = secap_featcache_name(id);
    int has = secap_h5_has(fc->h, name);
    free(name);
    return has;
}

/* Reads and checks dataset `name`; NULL and a reason in why when damaged. */
static float *read_checked(secap_featcache *fc, const char *name, int64_t *frames, int64_t *dim, char *why,
                           size_t whylen)
{
    secap_h5_desc d;
    int64_t want;
    if (secap_h5_describe(fc->h, name, &d) < 0 || d.cls != SECAP_H5_FLOAT || d.rank != 2) {
        snprintf(why, whylen, "the dataset is not a float32 [frames x dim] array");
        return NULL;
    }
    if (secap_h5_get_attr_int(fc->h, name, "digest", &want) < 0) {
        snprintf(why, whylen, "its digest attribute is missing");
        return NULL;
    }
    float *x = secap_xmalloc((size_t)(d.count ? d.count : 1) * sizeof *x, name);
    if (secap_h5_try_read_f32(fc->h, name, x) < 0) {
        snprintf(why, whylen, "HDF5 cannot read it (a damaged chunk)");
        free(x);
        return NULL;
    }
    int64_t got = digest(x, d.dims[0], d.dims[1]);
    if (got != want) {
        snprintf(why, whylen, "its values do not match the digest stored with them (%016llx, now %016llx)",
                 (unsigned long long)want, (unsigned long long)got);
        free(x);
        return NULL;
    }
    *frames = d.dims[0];
    *dim = d.dims[1];
    return x;
}

float *secap_featcache_get(secap_featcache *fc, const char *id, int64_t *frames, int64_t *dim)
{
    char *name = secap_featcache_name(id);
    if (!secap_h5_has(fc->h, name)) { free(name); return NULL; }
    char why[200];
    float *x = read_checked(fc, name, frames, dim, why, sizeof why);
    free(name);
    if (!x)
        secap_fatal("feature cache %s: the features of %s are damaged: %s (hint: re-run secap-extract with "
                    "--verify to recompute damaged entries, or delete the cache to rebuild it)",
                    secap_h5_path(fc->h), id, why);
    return x;
}

int secap_featcache_verify(secap_featcache *fc, const char *id, char *why, size_t whylen)
{
    char *name = secap_featcache_name(id);
    if (!secap_h5_has(fc->h, name)) { free(name); return 0; }
    int64_t T, D;
    float *x = read_checked(fc, name, &T, &D, why, whylen);
    free(name);
    free(x);
    return x ? 1 : -1;
}

void secap_featcache_put(secap_featcache *fc, const char *id, const float *x, int64_t frames, int64_t dim)
{
    int64_t bad = secap_find_nonfinite(x, frames * dim);
    if (bad >= 0)
        secap_fatal("feature cache %s: the features of %s hold %s at frame %lld, dim %lld of [%lld x %lld]; not "
                    "written (hint: the encoder produced non-finite values: check the weights and this "
                    "utterance's audio)", secap_h5_path(fc->h), id, secap_nonfinite_name(x[bad]),
                    (long long)(bad / dim), (long long)(bad % dim), (long long)frames, (long long)dim);
    if (!fc->writable) {   /* the first put on an existing cache */
        secap_h5_close(fc->h);
        fc->h = secap_h5_try_open(fc->path, 1);
        if (!fc->h)
            secap_fatal("%s: cannot reopen the feature cache for writing (hint: check the file's permissions)",
                        fc->path);
        fc->writable = 1;
    }
    char *name = secap_featcache_name(id);
    int64_t dims[2] = { frames, dim };
    secap_h5_write_f32(fc->h, name, x, 2, dims, FEATCACHE_DEFLATE);
    secap_h5_set_attr_int(fc->h, name, "digest", digest(x, frames, dim));
    free(name);
}

void secap_featcache_flush(secap_featcache *fc)
{
    /* close (HDF5 writes everything out), commit a new file into place, and
     * reopen read-write: from here on the file under its real name holds
     * every entry put so far */
    if (fc->created) secap_h5_commit(fc->h);
    else secap_h5_close(fc->h);
    fc->created = 0;
    fc->h = secap_h5_open(fc->path, 1);
    fc->writable = 1;
}

void secap_featcache_close(secap_featcache *fc)
{
    if (!fc) return;
    if (fc->created) secap_h5_commit(fc->h);
    else secap_h5_close(fc->h);
    free(fc->path);
    free(fc);
}
