/* Caption corpus: items, tokenised sentences, the token vocabulary. */
#include "metrics_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secap/base.h"

/* ------------------------------------------------------------ string table */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}

void strtab_init(secap_strtab *t)
{
    memset(t, 0, sizeof *t);
    t->nslot = 64;
    t->slot = secap_xmalloc(t->nslot * sizeof *t->slot, "string table");
    memset(t->slot, 0xff, t->nslot * sizeof *t->slot);
}

void strtab_free(secap_strtab *t)
{
    for (int i = 0; i < t->n; i++) free(t->str[i]);
    free(t->str); free(t->len); free(t->slot);
    memset(t, 0, sizeof *t);
}

static size_t strtab_probe(const secap_strtab *t, const char *s, size_t len)
{
    size_t mask = t->nslot - 1, k = hash_bytes(s, len) & mask;
    while (t->slot[k] >= 0) {
        int id = t->slot[k];
        if (t->len[id] == len && memcmp(t->str[id], s, len) == 0) break;
        k = (k + 1) & mask;
    }
    return k;
}

static void strtab_grow(secap_strtab *t)
{
    free(t->slot);
    t->nslot *= 2;
    t->slot = secap_xmalloc(t->nslot * sizeof *t->slot, "string table");
    memset(t->slot, 0xff, t->nslot * sizeof *t->slot);
    for (int id = 0; id < t->n; id++) t->slot[strtab_probe(t, t->str[id], t->len[id])] = id;
}

int strtab_find(const secap_strtab *t, const char *s, size_t len)
{
    return t->slot[strtab_probe(t, s, len)];
}

int strtab_intern(secap_strtab *t, const char *s, size_t len, int *added)
{
    size_t k = strtab_probe(t, s, len);
    if (added) *added = t->slot[k] < 0;
    if (t->slot[k] >= 0) return t->slot[k];
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->str = realloc(t->str, (size_t)t->cap * sizeof *t->str);
        t->len = realloc(t->len, (size_t)t->cap * sizeof *t->len);
        SECAP_CHECK(t->str && t->len, "out of memory growing a string table to %d entries (hint: score a smaller corpus)", t->cap);
    }
    int id = t->n++;
    t->str[id] = secap_xmalloc(len + 1, "string table entry");
    memcpy(t->str[id], s, len);
    t->str[id][len] = 0;
    t->len[id] = len;
    t->slot[k] = id;
    if ((size_t)t->n * 2 > t->nslot) strtab_grow(t);
    return id;
}

/* ------------------------------------------------------------ corpus */

secap_corpus *secap_corpus_new(secap_tokenize_mode mode)
{
    SECAP_CHECK(mode == SECAP_TOK_ZH_CHAR || mode == SECAP_TOK_SPACE,
                "secap_corpus_new: unknown tokenisation mode %d (hint: SECAP_TOK_ZH_CHAR or SECAP_TOK_SPACE)", (int)mode);
    secap_corpus *c = secap_xcalloc(1, sizeof *c, "caption corpus");
    c->mode = mode;
    /* never NULL, so sent_tok() of a corpus without any token stays defined */
    c->tok_cap = 64;
    c->tok = secap_xmalloc(c->tok_cap * sizeof *c->tok, "corpus tokens");
    strtab_init(&c->ids);
    strtab_init(&c->vocab);
    return c;
}

void secap_corpus_free(secap_corpus *c)
{
    if (!c) return;
    strtab_free(&c->ids);
    strtab_free(&c->vocab);
    free(c->hyp); free(c->ref0); free(c->nref);
    free(c->start); free(c->len); free(c->tok);
    for (int i = 0; i < c->n_ignored; i++) free(c->ignored[i]);
    free(c->ignored);
    free(c);
}

static void *grow(void *p, size_t count, size_t size, const char *what)
{
    void *q = realloc(p, count * size);
    SECAP_CHECK(q, "out of memory growing %s to %zu entries (hint: score a smaller corpus)", what, count);
    return q;
}

static void emit_token(void *ctx, const char *s, size_t n)
{
    secap_corpus *c = ctx;
    if (c->ntok == c->tok_cap) {
        c->tok_cap = c->tok_cap ? 2 * c->tok_cap : 4096;
        c->tok = grow(c->tok, c->tok_cap, sizeof *c->tok, "corpus tokens");
    }
    c->tok[c->ntok++] = strtab_intern(&c->vocab, s, n, NULL);
}

/* Tokenises text as a new sentence; returns its index. */
static int add_sentence(secap_corpus *c, const char *text, const char *what)
{
    if (c->nsent == c->sent_cap) {
        c->sent_cap = c->sent_cap ? 2 * c->sent_cap : 1024;
        c->start = grow(c->start, (size_t)c->sent_cap, sizeof *c->start, "corpus sentences");
        c->len = grow(c->len, (size_t)c->sent_cap, sizeof *c->len, "corpus sentences");
    }
    int s = c->nsent++;
    c->start[s] = c->ntok;
    secap_tokenize_each(text, c->mode, what, emit_token, c);
    c->len[s] = (int)(c->ntok - c->start[s]);
    return s;
}

void secap_corpus_add(secap_corpus *c, const char *id, const char *hyp,
                      const char *const *refs, int nrefs)
{
    SECAP_CHECK(id && hyp, "secap_corpus_add: NULL id or hypothesis (hint: pass \"\" for an empty hypothesis)");
    SECAP_CHECK(nrefs >= 1 && refs, "id \"%s\": no references (hint: every hypothesis needs at least one reference caption)", id);
    int added;
    strtab_intern(&c->ids, id, strlen(id), &added);
    SECAP_CHECK(added, "id \"%s\" appears twice in the corpus (hint: ids must be unique)", id);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->hyp = grow(c->hyp, (size_t)c->cap, sizeof *c->hyp, "corpus items");
        c->ref0 = grow(c->ref0, (size_t)c->cap, sizeof *c->ref0, "corpus items");
        c->nref = grow(c->nref, (size_t)c->cap, sizeof *c->nref, "corpus items");
    }
    char what[512];
    snprintf(what, sizeof what, "hypothesis of id \"%s\"", id);
    int h = add_sentence(c, hyp, what);
    int r0 = c->nsent;
    for (int r = 0; r < nrefs; r++) {
        SECAP_CHECK(refs[r], "id \"%s\": reference %d is NULL (hint: pass caption strings)", id, r);
        snprintf(what, sizeof what, "reference %d of id \"%s\"", r + 1, id);
        add_sentence(c, refs[r], what);
    }
    c->hyp[c->n] = h;
    c->ref0[c->n] = r0;
    c->nref[c->n] = nrefs;
    c->n++;
}

int secap_corpus_size(const secap_corpus *c) { return c->n; }

const char *secap_corpus_id(const secap_corpus *c, int i)
{
    SECAP_CHECK(i >= 0 && i < c->n, "secap_corpus_id: item %d out of range [0, %d) (hint: use secap_corpus_size)", i, c->n);
    return c->ids.str[i];
}

int secap_corpus_n_ignored(const secap_corpus *c) { return c->n_ignored; }

const char *secap_corpus_ignored_id(const secap_corpus *c, int i)
{
    SECAP_CHECK(i >= 0 && i < c->n_ignored, "secap_corpus_ignored_id: %d out of range [0, %d) (hint: use secap_corpus_n_ignored)", i, c->n_ignored);
    return c->ignored[i];
}

/* ------------------------------------------------------------ tokenise to text */

typedef struct { char *buf; size_t n, cap; } join_buf;

static void emit_join(void *ctx, const char *s, size_t n)
{
    join_buf *j = ctx;
    if (j->n + n + 2 > j->cap) {
        while (j->n + n + 2 > j->cap) j->cap = j->cap ? 2 * j->cap : 64;
        j->buf = grow(j->buf, j->cap, 1, "token text");
    }
    if (j->n) j->buf[j->n++] = ' ';
    memcpy(j->buf + j->n, s, n);
    j->n += n;
}

char *secap_tokenize_join(const char *text, secap_tokenize_mode mode, const char *what)
{
    join_buf j = {0};
    secap_tokenize_each(text, mode, what, emit_join, &j);
    if (!j.buf) return secap_xstrdup("", "token text");
    j.buf[j.n] = 0;
    return j.buf;
}

int secap_tokenize_mode_parse(const char *name)
{
    if (!strcmp(name, "zh-char")) return SECAP_TOK_ZH_CHAR;
    if (!strcmp(name, "space")) return SECAP_TOK_SPACE;
    return -1;
}
