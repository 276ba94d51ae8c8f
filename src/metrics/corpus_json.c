/* Loading a corpus from SECap fid2captions.json files with cJSON. */
#include "metrics_internal.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/jsonlint.h"

static char *read_file(const char *path)
{
    if (secap_is_dir(path))
        secap_fatal("%s: is a directory, not a caption file (hint: give the fid2captions.json file inside it)", path);
    FILE *f = fopen(path, "rb");
    if (!f) secap_fatal("%s: cannot open caption file: %s (hint: check the path)", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = secap_xmalloc(cap, "caption file");
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *p = realloc(buf, cap);
            if (!p) {
                fclose(f);
                free(buf);
                secap_fatal("%s: out of memory reading %zu bytes (hint: split the file)", path, cap);
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        secap_fatal("%s: read error after %zu bytes (hint: check the file and the disk)", path, n);
    }
    buf[n] = 0;
    const char *nul = memchr(buf, 0, n);   /* the parser would stop there and ignore the rest */
    if (nul) {
        int line = 1;
        const char *bol = buf;
        for (const char *p = buf; p < nul; p++)
            if (*p == '\n') { line++; bol = p + 1; }
        int col = (int)(nul - bol) + 1;
        free(buf);
        secap_fatal("%s:%d:%d: NUL byte in the file (hint: caption files are UTF-8 text; is this a binary file, or "
                    "UTF-16?)", path, line, col);
    }
    return buf;
}

static cJSON *parse_object(const char *path, const char *buf)
{
    secap_json_issue is;
    if (secap_json_lint(buf, &is, 1)) {
        if (*is.key)
            secap_fatal("%s:%d:%d: id \"%s\": %s (hint: %s)", path, is.line, is.col, is.key, is.what, is.hint);
        secap_fatal("%s:%d:%d: %s (hint: %s)", path, is.line, is.col, is.what, is.hint);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!root) {
        secap_json_describe_error(buf, end, &is);
        secap_fatal("%s:%d:%d: %s near \"%s\" (hint: %s)", path, is.line, is.col, is.what, is.near, is.hint);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        secap_fatal("%s: top level is not a JSON object (hint: fid2captions form is {\"id\": \"caption\"} "
                    "or {\"id\": [\"caption\", ...]})", path);
    }
    return root;
}

/* The captions of one entry: a string, or an array of strings (count >= 1). */
static const char **entry_captions(const cJSON *v, const char *path, int *count)
{
    if (cJSON_IsString(v)) {
        const char **out = secap_xmalloc(sizeof *out, "caption list");
        out[0] = v->valuestring;
        *count = 1;
        return out;
    }
    if (!cJSON_IsArray(v))
        secap_fatal("%s: id \"%s\": caption is neither a string nor a list of strings (hint: "
                    "use \"id\": \"caption\" or \"id\": [\"caption\", ...])", path, v->string);
    int n = cJSON_GetArraySize(v);
    if (n == 0)
        secap_fatal("%s: id \"%s\": empty caption list (hint: give at least one caption; use \"\" "
                    "for an empty hypothesis)", path, v->string);
    const char **out = secap_xmalloc((size_t)n * sizeof *out, "caption list");
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (!cJSON_IsString(e)) {
            free(out);
            secap_fatal("%s: id \"%s\": entry %d of the caption list is not a string (hint: captions "
                        "must be JSON strings)", path, v->string, k + 1);
        }
        out[k++] = e->valuestring;
    }
    *count = n;
    return out;
}

/* Interns every key of obj in t; a repeated key is an error. */
static void index_ids(const cJSON *obj, const char *path, secap_strtab *t)
{
    for (const cJSON *e = obj->child; e; e = e->next) {
        int added;
        strtab_intern(t, e->string, strlen(e->string), &added);
        if (!added) secap_fatal("%s: id \"%s\" appears more than once (hint: ids must be unique)", path, e->string);
    }
}

/* Stops with a list of the hypothesis ids that have no references. */
static void check_missing(const cJSON *hyps, const secap_strtab *ref_ids, const char *hyps_path,
                          const char *refs_path)
{
    char list[1024] = "";
    size_t used = 0;
    int missing = 0;
    for (const cJSON *e = hyps->child; e; e = e->next) {
        if (strtab_find(ref_ids, e->string, strlen(e->string)) >= 0) continue;
        if (missing < 20 && used + strlen(e->string) + 8 < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s\"%s\"", missing ? ", " : "", e->string);
        missing++;
    }
    if (missing)
        secap_fatal("%s: %d hypothesis id%s without references in %s: %s%s (hint: every hypothesis needs "
                    "references; remove these ids or add their references)", hyps_path, missing,
                    missing == 1 ? "" : "s", refs_path, list, missing > 20 ? ", ..." : "");
}

/* What secap_corpus_load_json owns while it works; released on every exit,
 * a caught fatal error included (secap_cleanup). */
typedef struct {
    char *rbuf, *hbuf;
    cJSON *refs, *hyps;
    secap_strtab ref_ids, hyp_ids;
    const cJSON **ref_entry;
    const char **hyp, **ref;   /* captions of the item being added */
    secap_corpus *c;           /* handed out on success */
} json_load;

static void json_load_free(void *arg)
{
    json_load *s = arg;
    free(s->rbuf);
    free(s->hbuf);
    cJSON_Delete(s->refs);
    cJSON_Delete(s->hyps);
    strtab_free(&s->ref_ids);
    strtab_free(&s->hyp_ids);
    free(s->ref_entry);
    free(s->hyp);
    free(s->ref);
    secap_corpus_free(s->c);
}

secap_corpus *secap_corpus_load_json(const char *refs_path, const char *hyps_path,
                                     secap_tokenize_mode mode)
{
    json_load s;
    memset(&s, 0, sizeof s);
    secap_cleanup cl;
    secap_cleanup_push(&cl, json_load_free, &s);
    s.rbuf = read_file(refs_path);
    s.hbuf = read_file(hyps_path);
    s.refs = parse_object(refs_path, s.rbuf);
    s.hyps = parse_object(hyps_path, s.hbuf);
    free(s.rbuf);
    free(s.hbuf);
    s.rbuf = s.hbuf = NULL;
    strtab_init(&s.ref_ids);
    strtab_init(&s.hyp_ids);
    index_ids(s.refs, refs_path, &s.ref_ids);
    index_ids(s.hyps, hyps_path, &s.hyp_ids);
    check_missing(s.hyps, &s.ref_ids, hyps_path, refs_path);

    s.ref_entry = secap_xmalloc(((size_t)s.ref_ids.n + 1) * sizeof *s.ref_entry, "reference index");
    int k = 0;
    for (const cJSON *e = s.refs->child; e; e = e->next) s.ref_entry[k++] = e;

    secap_corpus *c = s.c = secap_corpus_new(mode);
    for (const cJSON *h = s.hyps->child; h; h = h->next) {
        int nh, nr;
        s.hyp = entry_captions(h, hyps_path, &nh);
        const cJSON *r = s.ref_entry[strtab_find(&s.ref_ids, h->string, strlen(h->string))];
        s.ref = entry_captions(r, refs_path, &nr);
        secap_corpus_add(c, h->string, s.hyp[0], s.ref, nr);
        free(s.hyp);
        free(s.ref);
        s.hyp = s.ref = NULL;
    }
    for (const cJSON *e = s.refs->child; e; e = e->next) {
        if (strtab_find(&s.hyp_ids, e->string, strlen(e->string)) >= 0) continue;
        char **ig = realloc(c->ignored, ((size_t)c->n_ignored + 1) * sizeof *c->ignored);
        SECAP_CHECK(ig, "out of memory listing ignored reference ids (hint: score a smaller corpus)");
        c->ignored = ig;
        c->ignored[c->n_ignored++] = secap_xstrdup(e->string, "ignored id");
    }
    secap_cleanup_pop(&cl);
    s.c = NULL;
    json_load_free(&s);
    return c;
}
