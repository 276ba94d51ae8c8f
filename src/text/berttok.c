/* BERT tokenizer: basic tokenisation, WordPiece, vocab.txt, model inputs.
 * The semantics are those of Hugging Face's slow BertTokenizer; the header
 * (include/secap/berttok.h) lists the steps.  tests/ref_berttok.py is the
 * Python twin, written from the same definitions, that pins this file.
 *
 * Text is processed as UTF-32 code points.  Normalisation goes through
 * utf8proc (NFD = canonical decomposition + reordering, NFC = that plus
 * canonical composition, both with utf8proc's STABLE flag, as utf8proc_NFD
 * and utf8proc_NFC).  Two shortcuts skip utf8proc where it cannot change
 * anything (checked against Python's unicodedata for every code point):
 *   - NFC is the identity on text made only of U+0000-02FF, U+3000-303F,
 *     U+4E00-9FFF and U+FF00-FFEF (no singletons, no composition pairs);
 *   - NFD is the identity, and no Mn occurs, on U+0000-00BF and U+4E00-9FFF.
 * So a Chinese caption never allocates inside the normaliser.
 */
#include "secap/berttok.h"
#include "secap/base.h"
#include "bert_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

static const char *const special_text[SECAP_BERT_NSPECIAL] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
};

const char *secap_bert_special_text(secap_bert_special s)
{
    if ((int)s < 0 || s >= SECAP_BERT_NSPECIAL) secap_fatal("secap_bert_special_text: no special token %d", (int)s);
    return special_text[s];
}

/* ---- growable buffers --------------------------------------------------- */

typedef struct { int32_t *v; size_t n, cap; } cpbuf;     /* code points or ids */
typedef struct { char *v; size_t n, cap; } bytebuf;

static void *grow(void *p, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) secap_fatal("out of memory growing the %s to %zu entries (hint: is the text huge?)", what, c);
    *cap = c;
    return q;
}

static void cp_reserve(cpbuf *b, size_t n) { b->v = grow(b->v, &b->cap, n, sizeof *b->v, "tokenizer buffer"); }
static void cp_push(cpbuf *b, int32_t c) { cp_reserve(b, b->n + 1); b->v[b->n++] = c; }
static void bytes_reserve(bytebuf *b, size_t n) { b->v = grow(b->v, &b->cap, n, 1, "tokenizer byte buffer"); }

/* ---- character classes (HF tokenization_utils / BasicTokenizer) -------- */

int secap_bert_is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* _is_control: any C* category except \t \n \r (unassigned is Cn). */
static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO: return 1;
    default: return 0;
    }
}

/* _is_whitespace: space, \t, \n, \r or Zs. */
static int is_bert_space(int32_t c)
{
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return 1;
    return utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

/* Python's str.isspace(), the separator set of str.split(). */
static int is_py_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* _is_punctuation: the ASCII non-alphanumeric printables, or a P* category. */
int secap_bert_is_punct(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return 1;
    default: return 0;
    }
}

static int nfc_stable(int32_t c)
{
    return c < 0x300 || (c >= 0x3000 && c <= 0x303F) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xFF00 && c <= 0xFFEF);
}

static int nfd_stable(int32_t c) { return c < 0xC0 || (c >= 0x4E00 && c <= 0x9FFF); }

/* ---- normalisation ------------------------------------------------------ */

typedef struct {
    cpbuf seg;      /* one cleaned segment */
    cpbuf norm;     /* its NFC / a token's NFD */
    cpbuf tok;      /* one whitespace token after lower-casing and accent stripping */
    cpbuf lower;    /* the lower-cased token */
    bytebuf u8;     /* UTF-8 scratch */
} scratch;

static void scratch_free(scratch *s)
{
    free(s->seg.v); free(s->norm.v); free(s->tok.v); free(s->lower.v); free(s->u8.v);
}

/* UTF-8 of cps[n] into s->u8 (NUL-terminated); returns the byte length. */
static size_t encode_u8(bytebuf *u8, const int32_t *cps, size_t n)
{
    bytes_reserve(u8, 4 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)utf8proc_encode_char(cps[i], (utf8proc_uint8_t *)u8->v + k);
    u8->v[k] = 0;
    return k;
}

/* out = NFD (compose 0) or NFC (compose 1) of cps[n]. */
static void normalize(scratch *s, const int32_t *cps, size_t n, int compose, cpbuf *out)
{
    utf8proc_option_t opt = UTF8PROC_STABLE | (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE);
    size_t len = encode_u8(&s->u8, cps, n);
    cp_reserve(out, n + 16);
    utf8proc_ssize_t r;
    for (;;) {
        r = utf8proc_decompose((const utf8proc_uint8_t *)s->u8.v, (utf8proc_ssize_t)len,
                               out->v, (utf8proc_ssize_t)out->cap, opt);
        if (r < 0) secap_fatal("bert tokenizer: utf8proc: %s (hint: this is a bug; the text was validated)",
                               utf8proc_errmsg(r));
        if ((size_t)r <= out->cap) break;
        cp_reserve(out, (size_t)r);
    }
    if (compose) {
        r = utf8proc_normalize_utf32(out->v, r, opt);
        if (r < 0) secap_fatal("bert tokenizer: utf8proc: %s", utf8proc_errmsg(r));
    }
    out->n = (size_t)r;
}

/* ---- basic tokenisation ------------------------------------------------- */

/* Receives each basic token as code points and as UTF-8. */
typedef void (*word_fn)(void *ctx, const int32_t *cps, size_t n, const char *u8, size_t len, int special);

typedef struct {
    int lower;
    word_fn fn;
    void *ctx;
    scratch s;
    bytebuf wu8;    /* UTF-8 of the word being emitted */
} basic_state;

static void emit_word(basic_state *b, const int32_t *cps, size_t n)
{
    if (!n) return;
    size_t len = encode_u8(&b->wu8, cps, n);
    b->fn(b->ctx, cps, n, b->wu8.v, len, -1);
}

/* One whitespace token: lower-case and strip accents (lower mode), then cut
 * at punctuation (and at whitespace, as the final whitespace_tokenize does). */
static void basic_token(basic_state *b, const int32_t *cps, size_t n)
{
    scratch *s = &b->s;
    if (b->lower) {
        s->lower.n = 0;
        int stable = 1;
        for (size_t i = 0; i < n; i++) {
            /* Simple (one code point) lower-casing; Python's only longer
             * unconditional mapping, U+0130 -> i + U+0307, ends the same
             * once the Mn mark is stripped. */
            int32_t c = utf8proc_tolower(cps[i]);
            stable &= nfd_stable(c);
            cp_push(&s->lower, c);
        }
        s->tok.n = 0;
        if (stable) {
            cp_reserve(&s->tok, s->lower.n);
            memcpy(s->tok.v, s->lower.v, s->lower.n * sizeof *s->lower.v);
            s->tok.n = s->lower.n;
        } else {
            normalize(s, s->lower.v, s->lower.n, 0, &s->norm);
            for (size_t i = 0; i < s->norm.n; i++)
                if (utf8proc_category(s->norm.v[i]) != UTF8PROC_CATEGORY_MN) cp_push(&s->tok, s->norm.v[i]);
        }
        cps = s->tok.v;
        n = s->tok.n;
    }
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (secap_bert_is_punct(cps[i])) {
            emit_word(b, cps + start, i - start);
            emit_word(b, cps + i, 1);
            start = i + 1;
        } else if (is_py_space(cps[i])) {
            emit_word(b, cps + start, i - start);
            start = i + 1;
        }
    }
    emit_word(b, cps + start, n - start);
}

/* Text between two special tokens: clean, space the CJK ideographs, NFC,
 * split on whitespace. */
static void basic_segment(basic_state *b, const int32_t *cps, size_t n)
{
    scratch *s = &b->s;
    s->seg.n = 0;
    int stable = 1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = cps[i];
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (is_bert_space(c)) {
            cp_push(&s->seg, ' ');
        } else if (secap_bert_is_cjk(c)) {
            cp_push(&s->seg, ' ');
            cp_push(&s->seg, c);
            cp_push(&s->seg, ' ');
        } else {
            cp_push(&s->seg, c);
        }
        stable &= nfc_stable(c);
    }
    const int32_t *v = s->seg.v;
    size_t m = s->seg.n;
    if (!stable) {
        normalize(s, s->seg.v, s->seg.n, 1, &s->norm);
        /* basic_token reuses norm for NFD: keep the NFC text in seg */
        cp_reserve(&s->seg, s->norm.n);
        memcpy(s->seg.v, s->norm.v, s->norm.n * sizeof *s->norm.v);
        s->seg.n = s->norm.n;
        v = s->seg.v;
        m = s->seg.n;
    }
    size_t start = 0;
    for (size_t i = 0; i <= m; i++) {
        if (i == m || is_py_space(v[i])) {
            if (i > start) basic_token(b, v + start, i - start);
            start = i + 1;
        }
    }
}

/* Decodes text[len], failing on invalid UTF-8 with the byte offset. */
static void decode_text(const char *text, size_t len, const char *what, cpbuf *out)
{
    cp_reserve(out, len + 1);
    out->n = 0;
    for (size_t pos = 0; pos < len;) {
        int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + pos,
                                              (utf8proc_ssize_t)(len - pos), &c);
        if (k <= 0) {
            free(out->v);               /* nothing leaks when a test handler longjmps */
            out->v = NULL;
            secap_fatal("bert tokenizer: %s: invalid UTF-8 at byte %zu (0x%02x) (hint: caption and "
                        "transcript files must be UTF-8; `secap-data validate` lists such lines)",
                        what ? what : "text", pos, (unsigned)(unsigned char)text[pos]);
        }
        out->v[out->n++] = c;
        pos += (size_t)k;
    }
}

/* Length of the special token starting at cps[i], its index in *which. */
static size_t match_special(const int32_t *cps, size_t i, size_t n, int *which)
{
    if (cps[i] != '[') return 0;
    for (int s = 0; s < SECAP_BERT_NSPECIAL; s++) {
        const char *t = special_text[s];
        size_t k = strlen(t);
        if (i + k > n) continue;
        size_t j = 0;
        while (j < k && cps[i + j] == (int32_t)(unsigned char)t[j]) j++;
        if (j == k) { *which = s; return k; }
    }
    return 0;
}

static void basic_run(const char *text, size_t len, int lower, const char *what, word_fn fn, void *ctx)
{
    cpbuf all = {0};
    decode_text(text, len, what, &all);
    basic_state b = {.lower = lower, .fn = fn, .ctx = ctx};
    size_t seg = 0;
    for (size_t i = 0; i < all.n;) {
        int which;
        size_t k = match_special(all.v, i, all.n, &which);
        if (!k) { i++; continue; }
        basic_segment(&b, all.v + seg, i - seg);
        const char *t = special_text[which];
        fn(ctx, all.v + i, k, t, strlen(t), which);
        i += k;
        seg = i;
    }
    basic_segment(&b, all.v + seg, all.n - seg);
    scratch_free(&b.s);
    free(b.wu8.v);
    free(all.v);
}

typedef struct { secap_bert_emit emit; void *ctx; } public_emit;

static void public_word(void *ctx, const int32_t *cps, size_t n, const char *u8, size_t len, int special)
{
    (void)cps; (void)n;
    public_emit *p = ctx;
    p->emit(p->ctx, u8, len, special);
}

void secap_bert_basic(const char *text, size_t len, int lower_case, const char *what,
                      secap_bert_emit emit, void *ctx)
{
    if (!text || !emit) secap_fatal("secap_bert_basic: text or emit is NULL");
    public_emit p = {emit, ctx};
    basic_run(text, len, lower_case, what, public_word, &p);
}

/* ---- vocabulary --------------------------------------------------------- */

struct secap_berttok {
    char     *path;
    int       lower;
    int       n;          /* lines = ids */
    int       distinct;
    char     *blob;       /* every token, NUL-terminated, in line order */
    size_t   *off;        /* [n] offset of token id in blob */
    uint32_t *len;        /* [n] its byte length */
    int32_t  *slot;       /* [cap] id at each hash slot, -1 empty */
    size_t    cap;        /* power of two >= 2 n */
    int32_t   special[SECAP_BERT_NSPECIAL];
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;                 /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 1099511628211ull; }
    return h;
}

/* Slot holding token p[n], or the empty slot where it would go. */
static size_t find_slot(const secap_berttok *t, const char *p, size_t n)
{
    size_t mask = t->cap - 1, i = (size_t)hash_bytes(p, n) & mask;
    for (;;) {
        int32_t id = t->slot[i];
        if (id < 0) return i;
        if (t->len[id] == n && memcmp(t->blob + t->off[id], p, n) == 0) return i;
        i = (i + 1) & mask;
    }
}

int32_t secap_berttok_id(const secap_berttok *t, const char *token, size_t len)
{
    if (!t || !token) secap_fatal("secap_berttok_id: tokenizer or token is NULL");
    return t->slot[find_slot(t, token, len)];
}

/* Line number (1-based) of a line equal to want after trimming ASCII
 * whitespace and a byte-order mark, ignoring case; 0 when none. */
static int near_miss(const secap_berttok *t, const char *want)
{
    size_t wl = strlen(want);
    for (int id = 0; id < t->n; id++) {
        const char *p = t->blob + t->off[id];
        size_t n = t->len[id];
        if (n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) { p += 3; n -= 3; }
        while (n && (*p == ' ' || *p == '\t')) { p++; n--; }
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        if (n == wl && !strncasecmp(p, want, wl)) return id + 1;
    }
    return 0;
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        secap_fatal("bert vocab %s: cannot open: %s (hint: pass the vocab.txt of bert-base-chinese, "
                    "or build one with bin/secap-vocab)", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = secap_xmalloc(cap, "vocab file");
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *q = realloc(buf, cap);
            if (!q) { fclose(f); secap_fatal("bert vocab %s: out of memory reading %zu bytes", path, cap); }
            buf = q;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) secap_fatal("bert vocab %s: read error after %zu bytes (hint: is the file on a failing disk?)", path, n);
    *size = n;
    return buf;
}

secap_berttok *secap_berttok_load(const char *path, int lower_case)
{
    if (!path) secap_fatal("secap_berttok_load: path is NULL");
    size_t size;
    char *data = read_file(path, &size);
    if (size == 0) {
        free(data);
        secap_fatal("bert vocab %s: the file is empty (hint: a vocab.txt has one token per line, "
                    "[PAD] [UNK] [CLS] [SEP] among them)", path);
    }

    /* Lines end at \n, \r\n or \r, as Python's universal newlines; a final
     * line without a terminator counts, nothing after the last terminator. */
    int lines = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' || data[i] == '\r') {
            if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n') i++;
            lines++;
            if (lines == INT32_MAX) secap_fatal("bert vocab %s: more than %d lines", path, INT32_MAX - 1);
        }
    }
    if (data[size - 1] != '\n' && data[size - 1] != '\r') lines++;

    secap_berttok *t = secap_xcalloc(1, sizeof *t, "bert tokenizer");
    t->path = secap_xstrdup(path, "vocab path");
    t->lower = lower_case ? 1 : 0;
    t->n = lines;
    t->blob = secap_xmalloc(size + (size_t)lines + 1, "vocab tokens");
    t->off = secap_xmalloc((size_t)lines * sizeof *t->off, "vocab offsets");
    t->len = secap_xmalloc((size_t)lines * sizeof *t->len, "vocab lengths");
    t->cap = 16;
    while (t->cap < 2 * (size_t)lines) t->cap *= 2;
    t->slot = secap_xmalloc(t->cap * sizeof *t->slot, "vocab hash table");
    for (size_t i = 0; i < t->cap; i++) t->slot[i] = -1;

    size_t pos = 0, bo = 0;
    for (int id = 0; id < lines; id++) {
        size_t end = pos;
        while (end < size && data[end] != '\n' && data[end] != '\r') end++;
        for (size_t p = pos; p < end;) {
            int32_t c;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)data + p, (utf8proc_ssize_t)(end - p), &c);
            if (k <= 0) {
                unsigned bad = (unsigned)(unsigned char)data[p];
                free(data);
                secap_berttok_free(t);
                secap_fatal("bert vocab %s:%d: invalid UTF-8 at byte %zu of the line (0x%02x) (hint: "
                            "vocab.txt must be UTF-8; re-save it as UTF-8)", path, id + 1, p - pos, bad);
            }
            p += (size_t)k;
        }
        size_t n = end - pos;
        if (n > UINT32_MAX) secap_fatal("bert vocab %s:%d: line of %zu bytes", path, id + 1, n);
        memcpy(t->blob + bo, data + pos, n);
        t->blob[bo + n] = 0;
        t->off[id] = bo;
        t->len[id] = (uint32_t)n;
        bo += n + 1;
        size_t s = find_slot(t, t->blob + t->off[id], n);
        if (t->slot[s] < 0) t->distinct++;
        t->slot[s] = id;                     /* a repeated token: the later line wins */
        pos = end;
        if (pos < size) pos += (data[pos] == '\r' && pos + 1 < size && data[pos + 1] == '\n') ? 2 : 1;
    }
    free(data);

    for (int s = 0; s < SECAP_BERT_NSPECIAL; s++) {
        const char *want = special_text[s];
        t->special[s] = secap_berttok_id(t, want, strlen(want));
        if (t->special[s] >= 0 || s == SECAP_BERT_MASK) continue;
        int near = near_miss(t, want);
        char hint[256];
        if (near)
            snprintf(hint, sizeof hint, "line %d holds \"%s\", which differs by case, spaces or a byte-order "
                     "mark; the token must be exactly %s", near, t->blob + t->off[near - 1], want);
        else
            snprintf(hint, sizeof hint, "bert-base-chinese has [PAD] on line 1, [UNK] [CLS] [SEP] on "
                     "lines 101-103; bin/secap-vocab writes that layout");
        int lines_read = t->n;
        secap_berttok_free(t);
        secap_fatal("bert vocab %s: no line holds %s (%d lines read) (hint: %s)", path, want, lines_read, hint);
    }
    return t;
}

void secap_berttok_free(secap_berttok *t)
{
    if (!t) return;
    free(t->path); free(t->blob); free(t->off); free(t->len); free(t->slot);
    free(t);
}

int secap_berttok_size(const secap_berttok *t) { return t->n; }
int secap_berttok_distinct(const secap_berttok *t) { return t->distinct; }
int secap_berttok_lower_case(const secap_berttok *t) { return t->lower; }
const char *secap_berttok_path(const secap_berttok *t) { return t->path; }

int32_t secap_berttok_special_id(const secap_berttok *t, secap_bert_special s)
{
    if ((int)s < 0 || s >= SECAP_BERT_NSPECIAL) secap_fatal("secap_berttok_special_id: no special token %d", (int)s);
    return t->special[s];
}

const char *secap_berttok_token(const secap_berttok *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n)
        secap_fatal("bert vocab %s: id %d is outside [0, %d) (hint: the ids come from a different vocab.txt)",
                    t->path, (int)id, t->n);
    const char *p = t->blob + t->off[id];
    if (t->slot[find_slot(t, p, t->len[id])] != id) {
        /* shadowed by a later line holding the same token */
        int32_t u = t->special[SECAP_BERT_UNK];
        if (len) *len = t->len[u];
        return t->blob + t->off[u];
    }
    if (len) *len = t->len[id];
    return p;
}

/* ---- WordPiece ---------------------------------------------------------- */

typedef struct {
    const secap_berttok *t;
    cpbuf *ids;
} wp_state;

/* Greedy longest-match-first split of one basic token. */
static void wordpiece(void *ctx, const int32_t *cps, size_t n, const char *u8, size_t len, int special)
{
    wp_state *w = ctx;
    const secap_berttok *t = w->t;
    if (special >= 0) {
        int32_t id = t->special[special];
        cp_push(w->ids, id >= 0 ? id : t->special[SECAP_BERT_UNK]);
        return;
    }
    if (n > SECAP_BERT_MAX_WORD_CHARS) {
        cp_push(w->ids, t->special[SECAP_BERT_UNK]);
        return;
    }
    size_t off[SECAP_BERT_MAX_WORD_CHARS + 1];
    off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        utf8proc_uint8_t tmp[4];
        off[i + 1] = off[i] + (size_t)utf8proc_encode_char(cps[i], tmp);
    }
    if (off[n] != len) secap_fatal("bert tokenizer: internal: word length mismatch");
    char key[2 + 4 * SECAP_BERT_MAX_WORD_CHARS];
    size_t first = w->ids->n;
    for (size_t start = 0; start < n;) {
        int32_t id = -1;
        size_t end = n;
        for (; end > start; end--) {
            size_t k = 0;
            if (start > 0) { key[0] = '#'; key[1] = '#'; k = 2; }
            memcpy(key + k, u8 + off[start], off[end] - off[start]);
            k += off[end] - off[start];
            id = t->slot[find_slot(t, key, k)];
            if (id >= 0) break;
        }
        if (id < 0) {                           /* no piece fits: the whole word is [UNK] */
            w->ids->n = first;
            cp_push(w->ids, t->special[SECAP_BERT_UNK]);
            return;
        }
        cp_push(w->ids, id);
        start = end;
    }
}

int secap_berttok_tokenize_len(const secap_berttok *t, const char *text, size_t len, int32_t **ids)
{
    if (!t || !text || !ids) secap_fatal("secap_berttok_tokenize: tokenizer, text or ids is NULL");
    cpbuf out = {0};
    wp_state w = {t, &out};
    basic_run(text, len, t->lower, NULL, wordpiece, &w);
    if (!out.n) { free(out.v); out.v = NULL; }
    *ids = out.v;
    return (int)out.n;
}

int secap_berttok_tokenize(const secap_berttok *t, const char *text, int32_t **ids)
{
    if (!text) secap_fatal("secap_berttok_tokenize: text is NULL");
    return secap_berttok_tokenize_len(t, text, strlen(text), ids);
}

/* ---- model inputs ------------------------------------------------------- */

int secap_berttok_encode(const secap_berttok *t, const char *a, const char *b, int max_len,
                         int32_t *ids, int32_t *type_ids)
{
    if (!t || !a || !ids) secap_fatal("secap_berttok_encode: tokenizer, text or ids is NULL");
    int nspecial = b ? 3 : 2;
    if (max_len < nspecial)
        secap_fatal("bert tokenizer: max_len %d leaves no room for [CLS] and [SEP]%s (hint: max_len is "
                    "the model's position limit, 512 for bert-base-chinese)", max_len, b ? " twice" : "");
    int32_t *ia = NULL, *ib = NULL;
    int na = secap_berttok_tokenize(t, a, &ia);
    int nb = b ? secap_berttok_tokenize(t, b, &ib) : 0;
    /* HF truncation=True (longest_first): drop the last token of the
     * longer sequence, of the second on a tie, until it fits. */
    while (na + nb + nspecial > max_len) {
        if (b && nb >= na) nb--;
        else na--;
    }
    int k = 0;
    ids[k++] = t->special[SECAP_BERT_CLS];
    for (int i = 0; i < na; i++) ids[k++] = ia[i];
    ids[k++] = t->special[SECAP_BERT_SEP];
    int first = k;
    if (b) {
        for (int i = 0; i < nb; i++) ids[k++] = ib[i];
        ids[k++] = t->special[SECAP_BERT_SEP];
    }
    if (type_ids)
        for (int i = 0; i < k; i++) type_ids[i] = i < first ? 0 : 1;
    free(ia);
    free(ib);
    return k;
}

void secap_berttok_encode_batch(const secap_berttok *t, int n, const char *const *a,
                                const char *const *b, int max_len, secap_bert_batch *out)
{
    if (!t || !a || !out) secap_fatal("secap_berttok_encode_batch: tokenizer, texts or out is NULL");
    if (n < 1) secap_fatal("bert tokenizer: encode_batch of %d texts (hint: a batch has at least one text)", n);
    if (max_len < 2) secap_fatal("bert tokenizer: max_len %d leaves no room for [CLS] and [SEP]", max_len);
    int32_t *ids = secap_xmalloc((size_t)n * (size_t)max_len * sizeof *ids, "bert batch rows");
    int32_t *types = secap_xmalloc((size_t)n * (size_t)max_len * sizeof *types, "bert batch type rows");
    int32_t *lens = secap_xmalloc((size_t)n * sizeof *lens, "bert batch lengths");
    int T = 0;
    for (int i = 0; i < n; i++) {
        if (!a[i]) secap_fatal("bert tokenizer: encode_batch: text %d is NULL", i);
        lens[i] = secap_berttok_encode(t, a[i], b ? b[i] : NULL, max_len,
                                       ids + (size_t)i * max_len, types + (size_t)i * max_len);
        if (lens[i] > T) T = lens[i];
    }
    out->n = n;
    out->len = T;
    out->lens = lens;
    out->ids = secap_xmalloc((size_t)n * (size_t)T * sizeof *out->ids, "bert batch ids");
    out->type_ids = secap_xmalloc((size_t)n * (size_t)T * sizeof *out->type_ids, "bert batch type ids");
    int32_t pad = t->special[SECAP_BERT_PAD];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < T; j++) {
            int in = j < lens[i];
            out->ids[(size_t)i * T + j] = in ? ids[(size_t)i * max_len + j] : pad;
            out->type_ids[(size_t)i * T + j] = in ? types[(size_t)i * max_len + j] : 0;
        }
    }
    free(ids);
    free(types);
}

void secap_bert_batch_free(secap_bert_batch *bb)
{
    if (!bb) return;
    free(bb->ids); free(bb->type_ids); free(bb->lens);
    bb->ids = bb->type_ids = bb->lens = NULL;
    bb->n = bb->len = 0;
}
