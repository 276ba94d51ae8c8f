/* Caption tokenisers (SECAP.md §6).
 *
 * zh-char: one token per CJK character (Han, kana, Hangul syllables: letters
 *   and numbers in those blocks); runs of other letters/digits (Unicode L, N,
 *   plus combining marks inside a run) form one token, lower-cased code point
 *   by code point; punctuation and symbols (P, S), separators and controls
 *   (Z, C) end a run and are dropped.
 * space: split on whitespace (Python's str.split set), tokens kept as given.
 * Both validate UTF-8.  tests/metrics/make_fixtures.py holds the Python twin
 * that tokenised the fixtures for the toolkit.
 */
#include "metrics_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "secap/base.h"

static int is_cjk(int32_t cp)
{
    return (cp >= 0x3005 && cp <= 0x3007) || (cp >= 0x3021 && cp <= 0x3029) ||
           (cp >= 0x3038 && cp <= 0x303B) || (cp >= 0x3040 && cp <= 0x30FF) ||
           (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3134F);
}

/* Major Unicode category letter: 'L', 'M', 'N', 'P', 'S', 'Z' or 'C'. */
static char major_category(int32_t cp)
{
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: return 'L';
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: return 'M';
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO: return 'N';
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return 'P';
    case UTF8PROC_CATEGORY_SM: case UTF8PROC_CATEGORY_SC: case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO: return 'S';
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: return 'Z';
    default: return 'C';
    }
}

/* Python's str.isspace(): the ASCII/C1 controls it counts, and Z. */
static int is_space(int32_t cp)
{
    if ((cp >= 9 && cp <= 13) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85) return 1;
    return major_category(cp) == 'Z';
}

/* Decodes the code point at text+pos into *cp; returns its byte length. */
static size_t decode(const char *text, size_t pos, size_t n, int32_t *cp, const char *what)
{
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + pos,
                                          (utf8proc_ssize_t)(n - pos), cp);
    if (k <= 0)
        secap_fatal("%s: invalid UTF-8 at byte %zu (0x%02x) (hint: re-encode the caption file as UTF-8)",
                    what, pos, (unsigned)(unsigned char)text[pos]);
    return (size_t)k;
}

/* A growing run of lower-cased letters/digits. */
typedef struct { char buf[256]; char *heap; size_t n, cap; } run_buf;

static char *run_data(run_buf *r) { return r->heap ? r->heap : r->buf; }

static void run_push(run_buf *r, int32_t cp)
{
    utf8proc_uint8_t enc[4];
    size_t k = (size_t)utf8proc_encode_char(cp, enc);
    size_t cap = r->heap ? r->cap : sizeof r->buf;
    if (r->n + k > cap) {
        size_t ncap = 2 * (r->n + k);
        char *p = secap_xmalloc(ncap, "token buffer");
        memcpy(p, run_data(r), r->n);
        free(r->heap);
        r->heap = p;
        r->cap = ncap;
    }
    memcpy(run_data(r) + r->n, enc, k);
    r->n += k;
}

static void run_flush(run_buf *r, secap_tok_emit emit, void *ctx)
{
    if (r->n) emit(ctx, run_data(r), r->n);
    r->n = 0;
}

static void tokenize_zh_char(const char *text, const char *what, secap_tok_emit emit, void *ctx)
{
    run_buf run = {.n = 0, .heap = NULL};
    size_t n = strlen(text);
    for (size_t pos = 0; pos < n;) {
        int32_t cp;
        size_t k = decode(text, pos, n, &cp, what);
        char cat = major_category(cp);
        if ((cat == 'L' || cat == 'N') && is_cjk(cp)) {
            run_flush(&run, emit, ctx);
            emit(ctx, text + pos, k);
        } else if (cat == 'L' || cat == 'N') {
            run_push(&run, utf8proc_tolower(cp));
        } else if (cat == 'M') {
            if (run.n) run_push(&run, cp);
        } else {
            run_flush(&run, emit, ctx);
        }
        pos += k;
    }
    run_flush(&run, emit, ctx);
    free(run.heap);
}

static void tokenize_space(const char *text, const char *what, secap_tok_emit emit, void *ctx)
{
    size_t n = strlen(text), tok_start = 0;
    int in_tok = 0;
    for (size_t pos = 0; pos < n;) {
        int32_t cp;
        size_t k = decode(text, pos, n, &cp, what);
        if (is_space(cp)) {
            if (in_tok) emit(ctx, text + tok_start, pos - tok_start);
            in_tok = 0;
        } else if (!in_tok) {
            in_tok = 1;
            tok_start = pos;
        }
        pos += k;
    }
    if (in_tok) emit(ctx, text + tok_start, n - tok_start);
}

void secap_tokenize_each(const char *text, secap_tokenize_mode mode, const char *what,
                         secap_tok_emit emit, void *ctx)
{
    if (mode == SECAP_TOK_SPACE) tokenize_space(text, what, emit, ctx);
    else tokenize_zh_char(text, what, emit, ctx);
}
