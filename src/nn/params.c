/* Parameter tables (include/secap/params.h): entries, hashed lookup, pattern
 * iteration, load with init rules and bindings, save. */
#include "secap/params.h"
#include "secap/base.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 256

struct secap_params {
    char *model;
    secap_param_entry *e;   /* [n] */
    int n, cap;
    int *slot;              /* [nslot] open-addressing hash: entry index or -1 */
    int nslot;              /* power of two, > 2 n */
    int def_trainable;
    float def_std;
    int loaded;
    secap_wmap *map;        /* the file mapping frozen tensors point into, or NULL */
};

/* FNV-1a. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void rehash(secap_params *p, int nslot)
{
    free(p->slot);
    p->nslot = nslot;
    p->slot = secap_xmalloc((size_t)nslot * sizeof *p->slot, "parameter hash");
    for (int i = 0; i < nslot; i++) p->slot[i] = -1;
    for (int i = 0; i < p->n; i++) {
        size_t k = name_hash(p->e[i].name) & (size_t)(nslot - 1);
        while (p->slot[k] >= 0) k = (k + 1) & (size_t)(nslot - 1);
        p->slot[k] = i;
    }
}

secap_params *secap_params_new(const char *model)
{
    secap_params *p = secap_xcalloc(1, sizeof *p, "parameter table");
    p->model = secap_xstrdup(model ? model : "model", "parameter table");
    p->def_std = 0.02f;
    rehash(p, 64);
    return p;
}

void secap_params_free(secap_params *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->e[i].name);
    secap_wmap_free(p->map);
    free(p->e);
    free(p->slot);
    free(p->model);
    free(p);
}

void secap_params_default_trainable(secap_params *p, int trainable) { p->def_trainable = trainable != 0; }
void secap_params_default_std(secap_params *p, float std) { p->def_std = std; }

int secap_params_find(const secap_params *p, const char *name)
{
    size_t k = name_hash(name) & (size_t)(p->nslot - 1);
    for (; p->slot[k] >= 0; k = (k + 1) & (size_t)(p->nslot - 1))
        if (!strcmp(p->e[p->slot[k]].name, name)) return p->slot[k];
    return -1;
}

/* The random rule HF's _init_weights gives a tensor of this name. */
static secap_init default_rand(const char *name, int ndim)
{
    size_t n = strlen(name);
    if (n > 5 && !strcmp(name + n - 5, ".bias")) return SECAP_INIT_ZEROS;
    if (ndim == 1 && (strstr(name, "norm") || strstr(name, "LayerNorm"))) return SECAP_INIT_ONES;
    return ndim == 1 ? SECAP_INIT_ZEROS : SECAP_INIT_NORMAL;
}

int secap_params_add(secap_params *p, secap_tensor **bind, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (k < 0 || k >= (int)sizeof name)
        secap_fatal("%s parameter table: name longer than %d characters: %.60s...", p->model, NAME_MAX_LEN - 1, name);
    if (p->loaded)
        secap_fatal("%s parameter table: entry %s added after loading (hint: build the whole table first)",
                    p->model, name);
    if (ndim < 0 || ndim > SECAP_MAX_DIMS)
        secap_fatal("%s parameter table: entry %s has %d dims, at most %d", p->model, name, ndim, SECAP_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 1)
            secap_fatal("%s parameter table: entry %s has size %lld in dim %d (hint: check the config)",
                        p->model, name, (long long)shape[d], d);
    if (secap_params_find(p, name) >= 0)
        secap_fatal("%s parameter table: entry %s added twice (hint: the model's table builder repeats a name)",
                    p->model, name);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->e = realloc(p->e, (size_t)p->cap * sizeof *p->e);
        if (!p->e) secap_fatal("%s parameter table: out of memory for %d entries", p->model, p->cap);
    }
    secap_param_entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    e->name = secap_xstrdup(name, "parameter name");
    e->ndim = ndim;
    for (int d = 0; d < SECAP_MAX_DIMS; d++) e->shape[d] = d < ndim ? shape[d] : 1;
    e->dtype = SECAP_F32;
    e->trainable = p->def_trainable;
    e->init = SECAP_INIT_FILE;
    e->rand_init = default_rand(name, ndim);
    e->std = p->def_std;
    e->copy_of = -1;
    e->bind = bind;
    p->n++;
    if (2 * p->n >= p->nslot) rehash(p, 2 * p->nslot);
    else {
        size_t h = name_hash(e->name) & (size_t)(p->nslot - 1);
        while (p->slot[h] >= 0) h = (h + 1) & (size_t)(p->nslot - 1);
        p->slot[h] = p->n - 1;
    }
    return p->n - 1;
}

static secap_param_entry *entry(secap_params *p, int i, const char *fn)
{
    if (i < 0 || i >= p->n) secap_fatal("%s: %s parameter table has no entry %d (it has %d)", fn, p->model, i, p->n);
    if (p->loaded) secap_fatal("%s: %s parameter table is loaded already (hint: set rules before loading)", fn, p->model);
    return &p->e[i];
}

void secap_params_set_init(secap_params *p, int i, secap_init init, float std)
{
    secap_param_entry *e = entry(p, i, "secap_params_set_init");
    if (init == SECAP_INIT_COPY)
        secap_fatal("secap_params_set_init: %s entry %s: use secap_params_set_copy for copies", p->model, e->name);
    if (init == SECAP_INIT_NORMAL && !(std > 0))
        secap_fatal("secap_params_set_init: %s entry %s: normal init needs std > 0 (got %g)", p->model, e->name, std);
    e->init = init;
    if (init != SECAP_INIT_FILE) e->rand_init = init;
    if (init == SECAP_INIT_NORMAL) e->std = std;
}

void secap_params_set_copy(secap_params *p, int i, int src)
{
    secap_param_entry *e = entry(p, i, "secap_params_set_copy");
    const secap_param_entry *s = entry(p, src, "secap_params_set_copy");
    if (src == i || e->ndim != s->ndim || memcmp(e->shape, s->shape, sizeof e->shape))
        secap_fatal("secap_params_set_copy: %s entry %s cannot copy %s (hint: a copy needs another entry of the "
                    "same shape)", p->model, e->name, s->name);
    e->init = SECAP_INIT_COPY;
    e->copy_of = src;
}

int secap_params_match(const char *patterns, const char *name)
{
    if (!patterns) return 1;
    const char *s = patterns;
    char pat[NAME_MAX_LEN];
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        while (len && *s == ' ') { s++; len--; }
        while (len && s[len - 1] == ' ') len--;
        if (len >= sizeof pat) secap_fatal("parameter pattern too long: %.60s...", s);
        memcpy(pat, s, len);
        pat[len] = 0;
        if (len && fnmatch(pat, name, 0) == 0) return 1;
        if (!end) break;
        s = end + 1;
    }
    return 0;
}

int secap_params_next(const secap_params *p, const char *patterns, int after)
{
    for (int i = after < 0 ? 0 : after + 1; i < p->n; i++)
        if (secap_params_match(patterns, p->e[i].name)) return i;
    return -1;
}

int secap_params_set_trainable(secap_params *p, const char *patterns, int trainable)
{
    int k = 0;
    for (int i = secap_params_next(p, patterns, -1); i >= 0; i = secap_params_next(p, patterns, i), k++)
        entry(p, i, "secap_params_set_trainable")->trainable = trainable != 0;
    return k;
}

int secap_params_set_dtype(secap_params *p, const char *patterns, secap_dtype dtype)
{
    int k = 0;
    for (int i = secap_params_next(p, patterns, -1); i >= 0; i = secap_params_next(p, patterns, i), k++)
        entry(p, i, "secap_params_set_dtype")->dtype = dtype;
    return k;
}

int secap_params_count(const secap_params *p) { return p->n; }

const secap_param_entry *secap_params_entry(const secap_params *p, int i)
{
    if (i < 0 || i >= p->n) secap_fatal("secap_params_entry: %s parameter table has no entry %d", p->model, i);
    return &p->e[i];
}

secap_tensor *secap_params_get(const secap_params *p, const char *name)
{
    int i = secap_params_find(p, name);
    return i < 0 ? NULL : p->e[i].t;
}

int64_t secap_params_numel(const secap_params *p, int trainable_only)
{
    int64_t n = 0;
    for (int i = 0; i < p->n; i++) {
        if (trainable_only && !p->e[i].trainable) continue;
        int64_t k = 1;
        for (int d = 0; d < p->e[i].ndim; d++) k *= p->e[i].shape[d];
        n += k;
    }
    return n;
}

int64_t secap_params_bytes(const secap_params *p, int trainable_only)
{
    int64_t b = 0;
    for (int i = 0; i < p->n; i++) {
        if (trainable_only && !p->e[i].trainable) continue;
        int64_t k = p->e[i].dtype == SECAP_BF16 ? 2 : 4;
        for (int d = 0; d < p->e[i].ndim; d++) k *= p->e[i].shape[d];
        b += k;
    }
    return b;
}

/* ------------------------------------------------------------------ load */

/* Fills e->t (float32, or bf16 rounded from float32 draws) by `rule`. */
static void fill_random(secap_param_entry *e, secap_init rule, uint64_t seed)
{
    int64_t n = e->t->n;
    float *f = e->dtype == SECAP_F32 ? secap_f32(e->t) : NULL;
    uint16_t *h = e->dtype == SECAP_BF16 ? e->t->data : NULL;
    secap_rng r;
    secap_rng_seed_stream(&r, seed, name_hash(e->name));
    float bound = 0.0f;
    if (rule == SECAP_INIT_KAIMING) {
        /* kaiming_uniform_(a = sqrt 5): gain sqrt(2 / (1 + 5)), bound gain sqrt(3 / fan_in) = 1/sqrt(fan_in) */
        int64_t fan_in = e->ndim >= 2 ? e->shape[1] : e->shape[0];
        for (int d = 2; d < e->ndim; d++) fan_in *= e->shape[d];
        bound = 1.0f / sqrtf((float)fan_in);
    }
    for (int64_t i = 0; i < n; i++) {
        float v;
        switch (rule) {
        case SECAP_INIT_ZEROS: v = 0.0f; break;
        case SECAP_INIT_ONES: v = 1.0f; break;
        case SECAP_INIT_NORMAL: v = e->std * secap_rng_normal(&r); break;
        case SECAP_INIT_KAIMING: v = bound * (2.0f * secap_rng_uniform(&r) - 1.0f); break;
        default: secap_fatal("parameter %s: init rule %d is not a random rule", e->name, (int)rule);
        }
        if (f) f[i] = v;
        else h[i] = secap_f32_to_bf16(v);
    }
}

/* A frozen FILE entry: the tensor in a read-only mapping of the file when
 * the dataset is stored exactly as the entry wants it, else NULL. */
static secap_tensor *map_entry(secap_params *p, secap_ctx *c, secap_weights *w, secap_param_entry *e,
                               const char *fname)
{
    if (!p->map) p->map = secap_weights_mmap(w);   /* one file per table: load runs once */
    const void *data = secap_wmap_tensor(p->map, w, fname, e->ndim, e->shape,
                                         e->dtype == SECAP_BF16 ? SECAP_WDTYPE_BF16 : SECAP_WDTYPE_F32);
    if (!data) return NULL;
    e->mapped = 1;
    return secap_param_external(c, e->name, e->ndim, e->shape, e->dtype, data);
}

void secap_params_load(secap_params *p, secap_ctx *c, secap_weights *w, const char *prefix, uint64_t seed)
{
    if (p->loaded) secap_fatal("%s parameter table: loaded twice (hint: make a new table per model)", p->model);
    p->loaded = 1;
    if (!prefix) prefix = "";
    char fname[2 * NAME_MAX_LEN];
    for (int pass = 0; pass < 2; pass++)   /* copies after everything they may copy */
        for (int i = 0; i < p->n; i++) {
            secap_param_entry *e = &p->e[i];
            if ((e->init == SECAP_INIT_COPY) != pass) continue;
            if (e->trainable && e->dtype != SECAP_F32)
                secap_fatal("%s parameter %s: trainable but stored as bf16 (hint: bf16 storage is for frozen "
                            "weights; train it in float32)", p->model, e->name);
            if (e->init == SECAP_INIT_FILE && w) {
                snprintf(fname, sizeof fname, "%s%s", prefix, e->name);
                if (!e->trainable) e->t = map_entry(p, c, w, e, fname);
                if (!e->t) {
                    e->t = secap_param_uninit(c, e->name, e->ndim, e->shape, e->dtype, e->trainable);
                    if (e->dtype == SECAP_BF16) secap_weights_read_bf16(w, fname, e->ndim, e->shape, e->t->data);
                    else secap_weights_read(w, fname, e->ndim, e->shape, secap_f32(e->t));
                }
            } else if (e->init == SECAP_INIT_COPY) {
                const secap_param_entry *s = &p->e[e->copy_of];
                e->t = secap_param_uninit(c, e->name, e->ndim, e->shape, e->dtype, e->trainable);
                if (s->dtype == e->dtype) {
                    memcpy(e->t->data, s->t->data, (size_t)e->t->n * (e->dtype == SECAP_BF16 ? 2 : 4));
                } else if (e->dtype == SECAP_F32) {
                    for (int64_t j = 0; j < e->t->n; j++)
                        secap_f32(e->t)[j] = secap_bf16_to_f32(((const uint16_t *)s->t->data)[j]);
                } else {
                    for (int64_t j = 0; j < e->t->n; j++)
                        ((uint16_t *)e->t->data)[j] = secap_f32_to_bf16(secap_f32(s->t)[j]);
                }
            } else {
                e->t = secap_param_uninit(c, e->name, e->ndim, e->shape, e->dtype, e->trainable);
                fill_random(e, e->init == SECAP_INIT_FILE ? e->rand_init : e->init, seed);
            }
            if (e->bind) *e->bind = e->t;
        }
}

/* ------------------------------------------------------------------ save */

void secap_params_write(const secap_params *p, secap_weights *w, const char *prefix, int trainable_only)
{
    if (!p->loaded) secap_fatal("%s parameter table: written before it was loaded", p->model);
    if (!prefix) prefix = "";
    char fname[2 * NAME_MAX_LEN];
    for (int i = 0; i < p->n; i++) {
        const secap_param_entry *e = &p->e[i];
        if (trainable_only && !e->trainable) continue;
        snprintf(fname, sizeof fname, "%s%s", prefix, e->name);
        if (e->dtype == SECAP_BF16) secap_weights_write_bf16(w, fname, e->ndim, e->shape, e->t->data);
        else secap_weights_write(w, fname, e->ndim, e->shape, secap_f32(e->t), SECAP_WDTYPE_F32);
    }
}
