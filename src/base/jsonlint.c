/* Pre-parse checks of JSON text; see include/secap/jsonlint.h. */
#include "secap/jsonlint.h"

#include <stdio.h>
#include <string.h>

static void position(const char *buf, const char *at, int *line, int *col)
{
    *line = 1;
    const char *bol = buf;
    for (const char *p = buf; p < at && *p; p++)
        if (*p == '\n') { (*line)++; bol = p + 1; }
    *col = (int)(at - bol) + 1;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* The raw text of the string starting at the quote q (escapes as written). */
static void copy_string(const char *q, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *p = q + 1; *p && *p != '"' && k + 1 < cap; p++) {
        if (*p == '\\' && p[1]) { if (k + 2 < cap) { out[k++] = *p; out[k++] = p[1]; } p++; continue; }
        out[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    }
    out[k] = 0;
}

static void issue(secap_json_issue *is, secap_json_kind kind, const char *buf, const char *at,
                  const char *key_start, const char *what, const char *hint)
{
    memset(is, 0, sizeof *is);
    is->kind = kind;
    position(buf, at, &is->line, &is->col);
    if (key_start) copy_string(key_start, is->key, sizeof is->key);
    snprintf(is->what, sizeof is->what, "%s", what);
    snprintf(is->hint, sizeof is->hint, "%s", hint);
}

int secap_json_lint(const char *buf, secap_json_issue *is, int cap)
{
    int n = 0, depth = 0, top_object = 0, expect_key = 0;
    const char *key_start = NULL;   /* quote of the current top-level key */
    for (const char *p = buf; *p && n < cap; p++) {
        char c = *p;
        if (c == '{' || c == '[') {
            if (++depth > SECAP_JSON_MAX_DEPTH) {
                char w[96];
                snprintf(w, sizeof w, "nesting deeper than %d levels of brackets", SECAP_JSON_MAX_DEPTH);
                issue(&is[n++], SECAP_JSON_DEPTH, buf, p, key_start, w, "captions are strings or lists of strings; "
                      "this is not such a file, or its brackets are unbalanced");
                return n;
            }
            if (depth == 1) { top_object = c == '{'; expect_key = top_object; key_start = NULL; }
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
        } else if (c == ',' && depth == 1) {
            expect_key = top_object;
        } else if (c == '"') {
            int is_key = depth == 1 && expect_key;
            if (is_key) { key_start = p; expect_key = 0; }
            for (p++; *p && *p != '"' && n < cap; p++) {
                if (*p != '\\') continue;
                if (!p[1]) break;
                if (p[1] != 'u') { p++; continue; }
                unsigned v, w;
                if (!hex4(p + 2, &v)) { p++; continue; }   /* bad escape: the parser reports it */
                const char *esc = p;
                p += 5;
                if (v == 0) {
                    issue(&is[n++], is_key ? SECAP_JSON_NUL_IN_KEY : SECAP_JSON_NUL, buf, esc, key_start,
                          is_key ? "escaped NUL (\\u0000) in the id: C strings end at a NUL, so the id would be "
                                   "cut there"
                                 : "escaped NUL (\\u0000) in a string: C strings end at a NUL, so the text would be "
                                   "cut there",
                          "remove the \\u0000; captions and ids cannot contain NUL characters");
                    continue;
                }
                if (v >= 0xD800 && v <= 0xDBFF) {
                    if (p[1] == '\\' && p[2] == 'u' && hex4(p + 3, &w) && w >= 0xDC00 && w <= 0xDFFF) { p += 6; continue; }
                } else if (!(v >= 0xDC00 && v <= 0xDFFF)) {
                    continue;
                }
                char what[160];
                snprintf(what, sizeof what, "lone UTF-16 surrogate escape \\u%04X (a %s half with no %s)", v,
                         v <= 0xDBFF ? "high" : "low", v <= 0xDBFF ? "low half after it" : "high half before it");
                issue(&is[n++], SECAP_JSON_SURROGATE, buf, esc, key_start, what, "a character outside the BMP is "
                      "escaped as a pair such as \\uD83D\\uDE00; the text was probably cut inside one, or write the "
                      "character itself in UTF-8");
                return n;
            }
            if (!*p) break;
        }
    }
    return n;
}

/* A one-line excerpt around `at` that is never blank: up to 24 bytes of the
 * line before it and 12 after; an empty line borrows the end of the previous
 * non-blank one; control characters become spaces. */
static void excerpt(const char *buf, const char *at, char *out, size_t cap)
{
    const char *a = at, *b = at;
    while (a > buf && at - a < 24 && a[-1] != '\n') a--;
    while (*b && *b != '\n' && b - at < 12) b++;
    int blank = 1;
    for (const char *p = a; p < b; p++) if ((unsigned char)*p > ' ') blank = 0;
    if (blank) {
        const char *e = a;
        while (e > buf && (unsigned char)e[-1] <= ' ') e--;
        const char *s = e;
        while (s > buf && e - s < 24 && s[-1] != '\n') s--;
        if (e > s) { a = s; b = e; }
    }
    while (a < b && (*a & 0xC0) == 0x80) a++;                        /* cut at UTF-8 starts */
    while (b > a && *b && (*b & 0xC0) == 0x80) b--;
    size_t k = 0;
    for (const char *p = a; p < b && k + 1 < cap; p++) out[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
    while (k > 0 && out[k - 1] == ' ') k--;
    out[k] = 0;
}

void secap_json_describe_error(const char *buf, const char *at, secap_json_issue *is)
{
    memset(is, 0, sizeof *is);
    if (!at) at = buf;
    size_t len = strlen(buf);
    if (at > buf + len) at = buf + len;
    const char *end = buf + len;
    while (end > buf && (unsigned char)end[-1] <= ' ') end--;      /* end of the significant text */

    if (end == buf) {
        position(buf, buf, &is->line, &is->col);
        snprintf(is->near, sizeof is->near, "(empty)");
        snprintf(is->what, sizeof is->what, "the input is empty: no JSON value");
        snprintf(is->hint, sizeof is->hint, "write a JSON object such as {\"id\": \"caption\"}");
        return;
    }
    /* trailing comma: cJSON points at or just past the bracket after it */
    const char *br = *at == '}' || *at == ']' ? at : at > buf && (at[-1] == '}' || at[-1] == ']') ? at - 1 : NULL;
    if (br) {
        const char *r = br;
        while (r > buf && (unsigned char)r[-1] <= ' ') r--;
        if (r > buf && r[-1] == ',') {
            position(buf, r - 1, &is->line, &is->col);
            excerpt(buf, r, is->near, sizeof is->near);
            snprintf(is->what, sizeof is->what, "trailing comma before '%c'", *br);
            snprintf(is->hint, sizeof is->hint, "JSON allows no comma after the last member or element; remove it");
            return;
        }
    }
    /* the input ends inside a string or with brackets open */
    int depth = 0, in_str = 0;
    const char *str_start = NULL;
    for (const char *p = buf; *p; p++) {
        if (in_str) { if (*p == '\\' && p[1]) p++; else if (*p == '"') in_str = 0; continue; }
        if (*p == '"') { in_str = 1; str_start = p; }
        else if (*p == '{' || *p == '[') depth++;
        else if (*p == '}' || *p == ']') depth--;
    }
    position(buf, at, &is->line, &is->col);
    excerpt(buf, at, is->near, sizeof is->near);
    if (in_str && at >= str_start) {
        position(buf, str_start, &is->line, &is->col);
        excerpt(buf, str_start, is->near, sizeof is->near);
        snprintf(is->what, sizeof is->what, "the input ends inside the string that starts here");
        snprintf(is->hint, sizeof is->hint, "its closing quote is missing; is the file truncated?");
    } else if (!in_str && depth > 0 && at >= end) {
        snprintf(is->what, sizeof is->what, "the input ends with %d bracket%s still open", depth, depth == 1 ? "" : "s");
        snprintf(is->hint, sizeof is->hint, "a closing '}' or ']' is missing; is the file truncated?");
    } else {
        snprintf(is->what, sizeof is->what, "malformed JSON");
        snprintf(is->hint, sizeof is->hint, "look for a missing comma, quote or bracket just before this point");
    }
}
