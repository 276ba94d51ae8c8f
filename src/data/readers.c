/* Dataset readers: SECap's directory layout and JSON-lines manifests.
 * Nothing here stops the program on bad input; every problem is collected. */
#include "secap/dataset.h"
#include "secap/audio.h"
#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/jsonlint.h"

#include <cJSON.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

/* ------------------------------------------------------------- utilities */

int secap_utf8_chars(const char *s)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s);
    int n = 0;
    while (len > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, len, &cp);
        if (k <= 0) return -1;
        p += k;
        len -= k;
        n++;
    }
    return n;
}

/* Reads a whole file as NUL-terminated text.  A file holding NUL bytes is
 * binary: a whole-file problem, NULL returned.  Missing files return NULL
 * and are reported only when `required`. */
static char *read_text_file(const char *path, int required, secap_problems *probs)
{
    if (secap_is_dir(path)) {
        secap_problems_add(probs, path, 0, 0, NULL, "give the file's path; a dataset directory holds wav.scp and "
                           "fid2captions.json", "is a directory, not a text file");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (required)
            secap_problems_add(probs, path, 0, 0, NULL, "check the dataset path; SECap's layout needs "
                               "wav.scp and fid2captions.json", "required file is missing or unreadable");
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = secap_xmalloc(cap, path);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            char *b = realloc(buf, cap);
            if (!b) secap_fatal("out of memory reading %s", path);
            buf = b;
        }
    }
    int err = ferror(f);
    fclose(f);
    buf[n] = 0;
    if (err) {
        secap_problems_add(probs, path, 0, 0, NULL, "check the file and the disk", "read error after %zu bytes", n);
        free(buf);
        return NULL;
    }
    if (memchr(buf, 0, n)) {
        secap_problems_add(probs, path, 0, 0, NULL, "give the text file itself (UTF-8), not an audio "
                           "or archive file", "binary file given as text (it contains NUL bytes)");
        free(buf);
        return NULL;
    }
    return buf;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* An invalid UTF-8 line names its id when the first field is valid, so
 * data.on_error = skip can drop that item. */
static void report_bad_utf8(const char *s, const char *path, int lineno, secap_problems *probs)
{
    char id[256];
    size_t n = 0;
    while (s[n] && !is_space(s[n]) && n + 1 < sizeof id) { id[n] = s[n]; n++; }
    id[n] = 0;
    int named = n > 0 && !is_space(s[n]) ? 0 : n > 0;
    if (s[0] == '{') named = 0;
    if (named && secap_utf8_chars(id) < 0) named = 0;
    secap_problems_add(probs, path, lineno, 0, named ? id : NULL, "re-save the file as UTF-8",
                       "line is not valid UTF-8");
}

/* Calls fn(line_text, line_number, ctx) for every non-blank line of buf with
 * trailing whitespace removed.  Modifies buf.  Lines that are not valid UTF-8
 * are reported instead. */
typedef void (*line_fn)(char *line, int lineno, void *ctx);

static void for_each_line(char *buf, const char *path, secap_problems *probs, line_fn fn, void *ctx)
{
    int lineno = 0;
    for (char *p = buf; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        lineno++;
        size_t len = strlen(p);
        while (len && is_space(p[len - 1])) p[--len] = 0;
        char *s = p;
        while (is_space(*s)) s++;
        if (*s) {
            if (secap_utf8_chars(s) < 0)
                report_bad_utf8(s, path, lineno, probs);
            else
                fn(s, lineno, ctx);
        }
        p = nl ? nl + 1 : NULL;
    }
}

/* Splits "<id><spaces or tabs><value>" in place; value "" when absent. */
static char *split_id(char *line)
{
    char *v = line;
    while (*v && !is_space(*v)) v++;
    if (*v) *v++ = 0;
    while (is_space(*v)) v++;
    return v;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = secap_xmalloc(n, "path");
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dir_of(const char *path)
{
    char *tmp = secap_xstrdup(path, "path");
    char *d = secap_xstrdup(dirname(tmp), "path");
    free(tmp);
    return d;
}

/* A relative audio path resolves against base, then base's parent; when it
 * exists in neither, the first candidate is kept (validation reports it). */
static char *resolve_audio(const char *base, const char *rel)
{
    if (rel[0] == '/') return secap_xstrdup(rel, "audio path");
    char *a = path_join(base, rel);
    if (access(a, F_OK) == 0) return a;
    char *parent_dir = path_join(base, "..");
    char *b = path_join(parent_dir, rel);
    free(parent_dir);
    if (access(b, F_OK) == 0) { free(a); return b; }
    free(b);
    return a;
}

/* ------------------------------------------------------- id -> item index */

typedef struct {
    const char **key;  /* [cap] borrowed from the items */
    int *val;          /* [cap] */
    int cap, n;
} idmap;

static void idmap_init(idmap *m, int expect)
{
    m->cap = 64;
    while (m->cap < 2 * expect) m->cap *= 2;
    m->key = secap_xcalloc((size_t)m->cap, sizeof *m->key, "id map");
    m->val = secap_xcalloc((size_t)m->cap, sizeof *m->val, "id map");
    m->n = 0;
}

static int idmap_slot(const idmap *m, const char *k)
{
    uint64_t h = secap_hash64(k, strlen(k), 0);
    int i = (int)(h & (uint64_t)(m->cap - 1));
    while (m->key[i] && strcmp(m->key[i], k)) i = (i + 1) & (m->cap - 1);
    return i;
}

static int idmap_get(const idmap *m, const char *k)
{
    int i = idmap_slot(m, k);
    return m->key[i] ? m->val[i] : -1;
}

static void idmap_put(idmap *m, const char *k, int v)
{
    if (2 * (m->n + 1) > m->cap) {
        idmap old = *m;
        idmap_init(m, old.cap);
        for (int i = 0; i < old.cap; i++)
            if (old.key[i]) idmap_put(m, old.key[i], old.val[i]);
        free(old.key);
        free(old.val);
    }
    int i = idmap_slot(m, k);
    if (!m->key[i]) m->n++;
    m->key[i] = k;
    m->val[i] = v;
}

static void idmap_free(idmap *m) { free(m->key); free(m->val); }

/* ----------------------------------------------------- building a dataset */

typedef struct {
    secap_dataset *d;
    idmap ids;
    int cap;
    int *line;          /* [cap] line of each item in its defining file */
    char **raw_label;   /* [cap] label text before indexing, NULL none */
    const char *file;
    const char *base;   /* directory relative audio paths resolve against */
    secap_problems *probs;
} builder;

static void builder_init(builder *b, const char *source, secap_problems *probs)
{
    memset(b, 0, sizeof *b);
    b->d = secap_xcalloc(1, sizeof *b->d, "dataset");
    b->d->source = secap_xstrdup(source, "dataset source");
    b->probs = probs;
    idmap_init(&b->ids, 1024);
}

/* Adds an item; a duplicate id is a problem and returns -1. */
static int builder_add(builder *b, const char *id, const char *audio_rel, int lineno)
{
    int prev = idmap_get(&b->ids, id);
    if (prev >= 0) {
        secap_problems_add(b->probs, b->file, lineno, 0, id, "keep one line per id",
                           "duplicate id (first on line %d)", b->line[prev]);
        return -1;
    }
    if (b->d->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->d->items = realloc(b->d->items, (size_t)b->cap * sizeof *b->d->items);
        b->line = realloc(b->line, (size_t)b->cap * sizeof *b->line);
        b->raw_label = realloc(b->raw_label, (size_t)b->cap * sizeof *b->raw_label);
        if (!b->d->items || !b->line || !b->raw_label) secap_fatal("out of memory reading %s", b->file);
    }
    int k = b->d->n++;
    secap_item *it = &b->d->items[k];
    memset(it, 0, sizeof *it);
    it->id = secap_xstrdup(id, "item id");
    it->audio = resolve_audio(b->base, audio_rel);
    it->label = -1;
    b->line[k] = lineno;
    b->raw_label[k] = NULL;
    idmap_put(&b->ids, it->id, k);
    return k;
}

static void item_add_caption(secap_item *it, const char *cap)
{
    char **v = realloc(it->captions, (size_t)(it->n_captions + 1) * sizeof *v);
    if (!v) secap_fatal("out of memory adding a caption of %s", it->id);
    it->captions = v;
    it->captions[it->n_captions++] = secap_xstrdup(cap, "caption");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Turns the raw label strings into sorted distinct labels and indices. */
static void builder_index_labels(builder *b)
{
    secap_dataset *d = b->d;
    char **all = secap_xmalloc((size_t)(d->n + 1) * sizeof *all, "labels");
    int n = 0;
    for (int i = 0; i < d->n; i++)
        if (b->raw_label[i]) all[n++] = b->raw_label[i];
    qsort(all, (size_t)n, sizeof *all, cmp_str);
    d->labels = secap_xmalloc((size_t)(n + 1) * sizeof *d->labels, "labels");
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(all[i], all[i - 1])) d->labels[d->n_labels++] = secap_xstrdup(all[i], "label");
    free(all);
    for (int i = 0; i < d->n; i++) {
        if (!b->raw_label[i]) continue;
        char **hit = bsearch(&b->raw_label[i], d->labels, (size_t)d->n_labels, sizeof *d->labels, cmp_str);
        d->items[i].label = (int)(hit - d->labels);
        free(b->raw_label[i]);
    }
}

static secap_dataset *builder_finish(builder *b)
{
    builder_index_labels(b);
    idmap_free(&b->ids);
    free(b->line);
    free(b->raw_label);
    return b->d;
}

/* ------------------------------------------------------------ SECap layout */

static void on_scp_line(char *line, int lineno, void *ctx)
{
    builder *b = ctx;
    char *path = split_id(line);
    if (!*path) {
        secap_problems_add(b->probs, b->file, lineno, 0, line, "write '<id> <path>'", "no audio path after the id");
        return;
    }
    builder_add(b, line, path, lineno);
}

/* A side table (text.txt, emotion.txt): "<id> <value>" lines. */
typedef struct {
    builder *b;
    const char *what;  /* "transcript" or "label" */
    int *seen;         /* [n items] line where the id was given, 0 none */
} side_ctx;

static void on_side_line(char *line, int lineno, void *ctx)
{
    side_ctx *s = ctx;
    builder *b = s->b;
    char *value = split_id(line);
    int k = idmap_get(&b->ids, line);
    if (k < 0) {
        secap_problems_add(b->probs, b->file, lineno, 0, line, "remove the line or add the id to wav.scp",
                           "%s for an id that is not in wav.scp", s->what);
        return;
    }
    if (s->seen[k]) {
        secap_problems_add(b->probs, b->file, lineno, 0, line, "keep one line per id",
                           "duplicate %s (first on line %d)", s->what, s->seen[k]);
        return;
    }
    s->seen[k] = lineno;
    if (!*value) {
        secap_problems_add(b->probs, b->file, lineno, 0, line, "write '<id> <value>'", "empty %s", s->what);
        return;
    }
    if (!strcmp(s->what, "transcript")) b->d->items[k].transcript = secap_xstrdup(value, "transcript");
    else b->raw_label[k] = secap_xstrdup(value, "label");
}

/* Reads dir/name as a side table; every item must then have a value. */
static void read_side_table(builder *b, const char *dir, const char *name, const char *what)
{
    char *path = path_join(dir, name);
    char *buf = read_text_file(path, 0, b->probs);
    if (!buf) { free(path); return; }
    if (!strcmp(what, "transcript")) b->d->has_transcripts = 1;
    side_ctx s = { b, what, secap_xcalloc((size_t)b->d->n + 1, sizeof(int), "side table") };
    b->file = path;
    for_each_line(buf, path, b->probs, on_side_line, &s);
    for (int i = 0; i < b->d->n; i++)
        if (!s.seen[i])
            secap_problems_add(b->probs, path, 0, 0, b->d->items[i].id, "add a line '<id> <value>'",
                               "no %s for this id", what);
    free(s.seen);
    free(buf);
    free(path);
}

/* Adds one caption value (string) to item k, checking it. */
static void add_caption_checked(builder *b, int k, const cJSON *v, int lineno)
{
    const char *id = b->d->items[k].id;
    if (!cJSON_IsString(v)) {
        secap_problems_add(b->probs, b->file, lineno, 0, id, "write {\"id\": \"caption\"} or {\"id\": [\"caption\", ...]}",
                           "caption is not a string");
        return;
    }
    const char *s = v->valuestring;
    while (is_space(*s) || *s == '\n') s++;
    if (!*s) {
        secap_problems_add(b->probs, b->file, lineno, 0, id, "write the caption or drop the item", "empty caption");
        return;
    }
    if (secap_utf8_chars(s) < 0) {
        secap_problems_add(b->probs, b->file, lineno, 0, id, "re-save the file as UTF-8", "caption is not valid UTF-8");
        return;
    }
    item_add_caption(&b->d->items[k], s);
}

static void add_captions(builder *b, int k, const cJSON *v, int lineno)
{
    if (cJSON_IsArray(v)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, v) add_caption_checked(b, k, c, lineno);
    } else {
        add_caption_checked(b, k, v, lineno);
    }
}

/* Parses buf as JSON.  A syntax error, a lone surrogate escape or too deep
 * nesting is a problem of the whole file (or manifest line) at its line and
 * column, and NULL is returned.  An escaped NUL parses (the string is cut at
 * it): each one is a problem naming its id, the top-level key (lineno 0:
 * {id: caption} files) or the line's "key" member (manifests), and the tree
 * is returned, so data.on_error = skip drops just those items. */
static cJSON *parse_json(const char *buf, const char *file, int lineno, secap_problems *probs)
{
    enum { MAX_ISSUES = 64 };
    secap_json_issue is[MAX_ISSUES];
    int n = secap_json_lint(buf, is, MAX_ISSUES);
    if (n && is[n - 1].kind != SECAP_JSON_NUL && is[n - 1].kind != SECAP_JSON_NUL_IN_KEY) {
        const secap_json_issue *e = &is[n - 1];
        secap_problems_add(probs, file, lineno ? lineno : e->line, e->col, NULL, e->hint, "%s%s%s%s",
                           *e->key ? "in the entry of id \"" : "", e->key, *e->key ? "\": " : "", e->what);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!root) {
        secap_json_issue e;
        secap_json_describe_error(buf, end, &e);
        int plain = !strcmp(e.what, "malformed JSON");
        secap_problems_add(probs, file, lineno ? lineno : e.line, e.col, NULL, e.hint, "JSON syntax error%s%s near '%s'",
                           plain ? "" : ": ", plain ? "" : e.what, e.near);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        const char *id = is[i].kind == SECAP_JSON_NUL && *is[i].key ? is[i].key : NULL;
        if (lineno) {   /* a manifest line: the id is its "key" member, unless the NUL is in that */
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(root, "key");
            id = cJSON_IsString(k) && strcmp(is[i].key, "key") != 0 ? k->valuestring : NULL;
        }
        secap_problems_add(probs, file, lineno ? lineno : is[i].line, is[i].col, id, is[i].hint, "%s", is[i].what);
    }
    if (n == MAX_ISSUES)
        secap_problems_add(probs, file, 0, 0, NULL, "remove every \\u0000", "more than %d escaped NULs; "
                           "the rest are not listed", MAX_ISSUES);
    return root;
}

static void read_captions_json(builder *b, const char *dir)
{
    char *path = path_join(dir, "fid2captions.json");
    char *buf = read_text_file(path, 1, b->probs);
    b->file = path;
    cJSON *root = buf ? parse_json(buf, path, 0, b->probs) : NULL;
    if (root && !cJSON_IsObject(root))
        secap_problems_add(b->probs, path, 1, 1, NULL, "write {\"id\": caption or [captions], ...}",
                           "the top level is not a JSON object");
    if (root && cJSON_IsObject(root)) {
        char *given = secap_xcalloc((size_t)b->d->n + 1, 1, "caption flags");
        const cJSON *e;
        cJSON_ArrayForEach(e, root) {
            int k = idmap_get(&b->ids, e->string);
            if (k < 0) {
                secap_problems_add(b->probs, path, 0, 0, e->string, "remove the entry or add the id to wav.scp",
                                   "caption for an id that is not in wav.scp");
                continue;
            }
            given[k] = 1;
            add_captions(b, k, e, 0);
            if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 0)
                secap_problems_add(b->probs, path, 0, 0, e->string, "give at least one caption", "empty caption list");
        }
        /* Every item needs a caption; bad ones were reported above. */
        for (int i = 0; i < b->d->n; i++)
            if (!given[i])
                secap_problems_add(b->probs, path, 0, 0, b->d->items[i].id, "add \"id\": \"caption\" to the file",
                                   "no caption for this id");
        free(given);
    }
    cJSON_Delete(root);
    free(buf);
    free(path);
}

secap_dataset *secap_dataset_read_dir(const char *dir, const secap_data_config *c, secap_problems *probs)
{
    builder b;
    builder_init(&b, dir, probs);
    b.base = dir;
    char *scp = path_join(dir, "wav.scp");
    char *buf = read_text_file(scp, 1, probs);
    if (buf) {
        b.file = scp;
        for_each_line(buf, scp, probs, on_scp_line, &b);
        free(buf);
    }
    read_side_table(&b, dir, "text.txt", "transcript");
    read_side_table(&b, dir, c->label_file, "label");
    read_captions_json(&b, dir);
    free(scp);
    return builder_finish(&b);
}

/* -------------------------------------------------------- JSON-lines manifest */

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void on_manifest_line(char *line, int lineno, void *ctx)
{
    builder *b = ctx;
    cJSON *o = parse_json(line, b->file, lineno, b->probs);
    if (!o) return;
    const char *key = json_str(o, "key"), *src = json_str(o, "source");
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(o, "target");
    if (!cJSON_IsObject(o) || !key || !*key || !src || !*src || !target) {
        secap_problems_add(b->probs, b->file, lineno, 0, key, "write {\"key\": id, \"source\": audio path, "
                           "\"target\": caption}", "line lacks a string \"key\", \"source\" or a \"target\"");
        cJSON_Delete(o);
        return;
    }
    int k = builder_add(b, key, src, lineno);
    if (k >= 0) {
        add_captions(b, k, target, lineno);
        if (cJSON_IsArray(target) && cJSON_GetArraySize(target) == 0)
            secap_problems_add(b->probs, b->file, lineno, 0, key, "give at least one caption", "no caption");
        const char *tr = json_str(o, "transcript"), *emo = json_str(o, "emotion");
        if (tr) {
            b->d->has_transcripts = 1;
            b->d->items[k].transcript = secap_xstrdup(tr, "transcript");
        }
        if (emo && *emo) b->raw_label[k] = secap_xstrdup(emo, "label");
    }
    cJSON_Delete(o);
}

secap_dataset *secap_dataset_read_manifest(const char *path, secap_problems *probs)
{
    builder b;
    builder_init(&b, path, probs);
    char *base = dir_of(path);
    b.base = base;
    b.file = path;
    char *buf = read_text_file(path, 1, probs);
    if (buf) for_each_line(buf, path, probs, on_manifest_line, &b);
    free(buf);
    secap_dataset *d = builder_finish(&b);
    /* Transcripts are all-or-nothing: with some present, every item needs one. */
    for (int i = 0; d->has_transcripts && i < d->n; i++)
        if (!d->items[i].transcript)
            secap_problems_add(probs, path, 0, 0, d->items[i].id, "add \"transcript\" to the line",
                               "no transcript (other lines have one)");
    free(base);
    return d;
}

/* ---------------------------------------------------------- entry point */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

secap_dataset *secap_dataset_read(const char *path, const secap_data_config *c, secap_problems *probs)
{
    secap_audio_limits lim = { c->min_sample_rate, c->max_sample_rate, c->max_audio_seconds };
    secap_audio_set_limits(&lim);
    int manifest = ends_with(path, ".jsonl") || ends_with(path, ".json");
    secap_dataset *d = manifest ? secap_dataset_read_manifest(path, probs)
                                : secap_dataset_read_dir(path, c, probs);
    char *dir = manifest ? dir_of(path) : secap_xstrdup(path, "path");
    char *lists[3] = { path_join(dir, "train.list"), path_join(dir, "dev.list"), path_join(dir, "test.list") };
    const char *const cl[3] = { lists[0], lists[1], lists[2] };
    if (secap_split_from_lists(d, cl, probs) < 0)
        secap_split_by_hash(d, c->seed, c->split_ratios);
    for (int i = 0; i < 3; i++) free(lists[i]);
    free(dir);
    return d;
}

void secap_dataset_free(secap_dataset *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        secap_item *it = &d->items[i];
        free(it->id);
        free(it->audio);
        free(it->transcript);
        for (int k = 0; k < it->n_captions; k++) free(it->captions[k]);
        free(it->captions);
    }
    for (int i = 0; i < d->n_labels; i++) free(d->labels[i]);
    free(d->labels);
    free(d->items);
    free(d->source);
    free(d);
}
