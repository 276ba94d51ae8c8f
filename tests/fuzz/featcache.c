/* Fuzz target: the encoder-feature cache (HDF5; src/data/featcache.c over
 * src/io/h5io.c) as training and secap-extract open it: the key check (a
 * stale or foreign file is rebuilt), every cached utterance's features, and
 * adding one more utterance to a rebuilt cache.
 *
 * Input: the bytes of one cache file; the key is encoder "enc", settings
 * "set" (what the seeds carry). */
#include "fuzz.h"
#include "secap/featcache.h"
#include "secap/h5io.h"

static secap_featcache *FC;   /* open between the steps of one input */
static char **names;
static int nnames;

static void h5_close(void *h) { secap_h5_close(h); }

static void list_names(const char *path)
{
    secap_h5 *h = secap_h5_try_open(path, 0);
    if (!h) return;
    secap_cleanup cl;
    secap_cleanup_push(&cl, h5_close, h);
    names = secap_h5_list(h, &nnames);
    secap_cleanup_pop(&cl);
    secap_h5_close(h);
}

/* Dataset names are escaped ids; ids without '%' and '/' are their own name. */
static void get_one(const char *id)
{
    int64_t frames = -1, dim = -1;
    int has = secap_featcache_has(FC, id);
    float *x = secap_featcache_get(FC, id, &frames, &dim);
    if (!x != !has) fuzz_die("%s: has %d but get %s", id, has, x ? "found it" : "did not");
    if (x && (frames < 0 || dim < 0)) fuzz_die("%s: [%lld x %lld]", id, (long long)frames, (long long)dim);
    free(x);
}

static void put_one(void)
{
    float x[6] = { 1, 2, 3, 4, 5, 6 };
    secap_featcache_put(FC, "fuzz-new", x, 2, 3);
    int64_t frames, dim;
    float *y = secap_featcache_get(FC, "fuzz-new", &frames, &dim);
    if (!y || frames != 2 || dim != 3 || memcmp(x, y, sizeof x)) fuzz_die("the utterance just put reads back wrong");
    free(y);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("cache.h5", data, size);
    names = NULL;
    nnames = 0;
    FC = NULL;
    secap_featcache_key key = { "enc", "set" };
    FUZZ_TRY(list_names(path));
    int rebuilt = -1;
    FUZZ_TRY(FC = secap_featcache_open(path, &key, &rebuilt));
    if (FC) {
        if (rebuilt != 0 && rebuilt != 1) fuzz_die("rebuilt = %d", rebuilt);
        for (int i = 0; i < nnames && !rebuilt; i++)
            if (!strchr(names[i], '%')) FUZZ_TRY(get_one(names[i]));
        /* Extending only a new cache: when H5Dcreate2 fails on a damaged
         * file, libhdf5 1.10.8 keeps the file's descriptor and 56 bytes after
         * a successful H5Fclose (README.md, "Reliability"); nothing of ours
         * is on that path, and a leak the harness cannot tell from ours would
         * end every run. */
        if (rebuilt) FUZZ_TRY(put_one());
        secap_featcache *fc = FC;
        FC = NULL;
        FUZZ_TRY(secap_featcache_close(fc));
    }
    secap_h5_free_names(names, nnames);
}
