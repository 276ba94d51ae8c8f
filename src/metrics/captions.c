/* fid2captions.json files as raw text (include/secap/captions.h). */
#include "secap/captions.h"
#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/jsonlint.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_ptr(void *p) { free(*(void **)p); }
static void free_json(void *p) { cJSON_Delete(*(cJSON **)p); }
static void free_caps(void *p) { secap_captions_free(*(secap_captions **)p); }

static char *slurp(const char *path)
{
    if (secap_is_dir(path))
        secap_fatal("%s: is a directory, not a caption file (hint: give the fid2captions.json file inside it)", path);
    size_t n;
    char *buf = secap_read_file(path, &n, "caption file");
    if (memchr(buf, 0, n)) {
        free(buf);
        secap_fatal("%s: NUL byte in the file (hint: caption files are UTF-8 text; is this UTF-16?)", path);
    }
    return buf;
}

static int by_id(const void *a, const void *b, void *ctx)
{
    const secap_captions *c = ctx;
    return strcmp(c->id[*(const int *)a], c->id[*(const int *)b]);
}

secap_captions *secap_captions_load(const char *path)
{
    char *buf = slurp(path);
    cJSON *root = NULL;
    secap_captions *c = NULL;
    secap_cleanup cb, cj, cc;
    secap_cleanup_push(&cb, free_ptr, &buf);
    secap_cleanup_push(&cj, free_json, &root);
    secap_cleanup_push(&cc, free_caps, &c);
    secap_json_issue is;
    if (secap_json_lint(buf, &is, 1))
        secap_fatal("%s:%d:%d: %s%s%s%s (hint: %s)", path, is.line, is.col, *is.key ? "id \"" : "", is.key,
                    *is.key ? "\": " : "", is.what, is.hint);
    const char *end = NULL;
    root = cJSON_ParseWithOpts(buf, &end, 1);
    if (!root) {
        secap_json_describe_error(buf, end, &is);
        secap_fatal("%s:%d:%d: %s near \"%s\" (hint: %s)", path, is.line, is.col, is.what, is.near, is.hint);
    }
    if (!cJSON_IsObject(root))
        secap_fatal("%s: top level is not a JSON object (hint: fid2captions form is {\"id\": \"caption\"} or "
                    "{\"id\": [\"caption\", ...]})", path);
    int n = cJSON_GetArraySize(root);
    c = secap_xcalloc(1, sizeof *c, "captions");
    c->id = secap_xcalloc((size_t)n + 1, sizeof *c->id, "caption ids");
    c->ncap = secap_xcalloc((size_t)n + 1, sizeof *c->ncap, "caption counts");
    c->cap = secap_xcalloc((size_t)n + 1, sizeof *c->cap, "caption lists");
    c->order = secap_xcalloc((size_t)n + 1, sizeof *c->order, "caption index");
    for (const cJSON *e = root->child; e; e = e->next) {
        int i = c->n;
        int k = cJSON_IsString(e) ? 1 : cJSON_IsArray(e) ? cJSON_GetArraySize(e) : -1;
        if (k < 1)
            secap_fatal("%s: id \"%s\": %s (hint: use \"id\": \"caption\" or \"id\": [\"caption\", ...])", path,
                        e->string, k == 0 ? "empty caption list" : "caption is neither a string nor a list");
        c->id[i] = secap_xstrdup(e->string, "caption id");
        c->cap[i] = secap_xcalloc((size_t)k, sizeof **c->cap, "caption list");
        c->n++;
        c->ncap[i] = k;
        if (cJSON_IsString(e)) c->cap[i][0] = secap_xstrdup(e->valuestring, "caption");
        else {
            int j = 0;
            for (const cJSON *s = e->child; s; s = s->next, j++) {
                if (!cJSON_IsString(s))
                    secap_fatal("%s: id \"%s\": entry %d of the caption list is not a string (hint: captions must "
                                "be JSON strings)", path, e->string, j + 1);
                c->cap[i][j] = secap_xstrdup(s->valuestring, "caption");
            }
        }
    }
    for (int i = 0; i < c->n; i++) c->order[i] = i;
    qsort_r(c->order, (size_t)c->n, sizeof *c->order, by_id, c);
    for (int i = 1; i < c->n; i++)
        if (!strcmp(c->id[c->order[i]], c->id[c->order[i - 1]]))
            secap_fatal("%s: id \"%s\" appears twice (hint: each id once; merge its captions into one list)", path,
                        c->id[c->order[i]]);
    secap_cleanup_pop(&cc);
    secap_cleanup_pop(&cj);
    secap_cleanup_pop(&cb);
    cJSON_Delete(root);
    free(buf);
    return c;
}

int secap_captions_find(const secap_captions *c, const char *id)
{
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, r = strcmp(id, c->id[c->order[mid]]);
        if (!r) return c->order[mid];
        if (r < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

void secap_captions_free(secap_captions *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        for (int j = 0; j < c->ncap[i]; j++) free(c->cap[i][j]);
        free(c->cap[i]);
        free(c->id[i]);
    }
    free(c->id); free(c->ncap); free(c->cap); free(c->order);
    free(c);
}
