/* Building a BERT vocab.txt from a corpus (the demo's; bert-base-chinese's
 * layout).  The corpus is basic-tokenised exactly as the tokenizer will do
 * it, so every character seen gets an entry and no corpus text maps to
 * [UNK].  Word pieces for the non-CJK words (Latin words, digit runs, kana)
 * are learned by byte-pair merges, the way Hugging Face's WordPiece trainer
 * learns them (BPE with a "##" continuation prefix):
 *
 *   each distinct word w (count c_w) starts as its characters, the first
 *   plain, the others "##"-prefixed;
 *   repeat: count every adjacent pair (x, y) over the words, weighted by c_w;
 *     take the pair with the highest count (ties: the byte-wise smallest
 *     merged text); stop if it is below min_count or max_pieces were learned;
 *     the merged piece is x followed by y without its "##"; replace every
 *     occurrence of the pair.
 *
 * Output order in the header (include/secap/berttok.h).  Sizes are small
 * (the demo corpus has a few thousand distinct characters and few Latin
 * words), so pair counts are simply recounted after each merge.
 */
#include "secap/berttok.h"
#include "secap/base.h"
#include "bert_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#define NCP 0x110000

/* ---- a string -> int map (open addressing) ----------------------------- */

typedef struct {
    char   **key;    /* [cap] NULL = empty */
    int64_t *val;    /* [cap] */
    size_t   n, cap;
} strmap;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

static void map_init(strmap *m, size_t cap)
{
    m->cap = cap;
    m->n = 0;
    m->key = secap_xcalloc(cap, sizeof *m->key, "vocab builder map");
    m->val = secap_xcalloc(cap, sizeof *m->val, "vocab builder map");
}

static void map_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->key[i]);
    free(m->key); free(m->val);
    m->key = NULL; m->val = NULL; m->n = m->cap = 0;
}

static size_t map_slot(const strmap *m, const char *k)
{
    size_t i = (size_t)fnv(k) & (m->cap - 1);
    while (m->key[i] && strcmp(m->key[i], k)) i = (i + 1) & (m->cap - 1);
    return i;
}

/* Pointer to the value of k, inserted as 0 when new (*is_new = 1). */
static int64_t *map_get(strmap *m, const char *k, int *is_new)
{
    if (2 * (m->n + 1) > m->cap) {
        strmap g;
        map_init(&g, m->cap * 2);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            size_t s = map_slot(&g, m->key[i]);
            g.key[s] = m->key[i];
            g.val[s] = m->val[i];
            g.n++;
        }
        free(m->key); free(m->val);
        *m = g;
    }
    size_t s = map_slot(m, k);
    if (is_new) *is_new = !m->key[s];
    if (!m->key[s]) {
        m->key[s] = secap_xstrdup(k, "vocab builder key");
        m->val[s] = 0;
        m->n++;
    }
    return &m->val[s];
}

/* ---- corpus counts ------------------------------------------------------ */

struct secap_bertvocab {
    secap_bertvocab_opts o;
    unsigned char *chars;   /* [NCP] 1 for every character seen in a basic token */
    strmap words;           /* non-CJK words of >= 2 characters -> count */
};

void secap_bertvocab_opts_default(secap_bertvocab_opts *o)
{
    o->lower_case = 1;
    o->min_count = 2;
    o->max_pieces = 2000;
}

secap_bertvocab *secap_bertvocab_new(const secap_bertvocab_opts *o)
{
    secap_bertvocab_opts d;
    if (!o) { secap_bertvocab_opts_default(&d); o = &d; }
    if (o->min_count < 1 || o->max_pieces < 0)
        secap_fatal("bert vocab builder: min_count %d must be >= 1 and max_pieces %d >= 0",
                    o->min_count, o->max_pieces);
    secap_bertvocab *v = secap_xcalloc(1, sizeof *v, "vocab builder");
    v->o = *o;
    v->chars = secap_xcalloc(NCP, 1, "vocab builder character flags");
    map_init(&v->words, 1024);
    return v;
}

void secap_bertvocab_free(secap_bertvocab *v)
{
    if (!v) return;
    free(v->chars);
    map_free(&v->words);
    free(v);
}

static void count_token(void *ctx, const char *tok, size_t len, int special)
{
    secap_bertvocab *v = ctx;
    if (special >= 0) return;
    size_t n = 0;
    for (size_t p = 0; p < len;) {
        int32_t c;
        p += (size_t)utf8proc_iterate((const utf8proc_uint8_t *)tok + p, (utf8proc_ssize_t)(len - p), &c);
        n++;
        v->chars[c] = 1;
    }
    /* A word WordPiece will not split (over-long) still has its characters
     * recorded; it is not learned from. */
    if (n < 2 || n > SECAP_BERT_MAX_WORD_CHARS) return;
    char *w = secap_xmalloc(len + 1, "vocab builder word");
    memcpy(w, tok, len);
    w[len] = 0;
    (*map_get(&v->words, w, NULL))++;
    free(w);
}

void secap_bertvocab_add(secap_bertvocab *v, const char *text, const char *what)
{
    if (!v || !text) secap_fatal("secap_bertvocab_add: builder or text is NULL");
    secap_bert_basic(text, strlen(text), v->o.lower_case, what, count_token, v);
}

/* ---- byte-pair merges --------------------------------------------------- */

typedef struct {
    char **text;    /* [n] piece texts, "##" for continuations */
    int n, cap;
    strmap index;   /* text -> piece id */
} pieces;

static int piece_id(pieces *p, const char *text)
{
    int is_new;
    int64_t *id = map_get(&p->index, text, &is_new);
    if (is_new) {
        if (p->n == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 256;
            char **q = realloc(p->text, (size_t)p->cap * sizeof *q);
            if (!q) secap_fatal("out of memory in the vocab builder");
            p->text = q;
        }
        p->text[p->n] = secap_xstrdup(text, "vocab piece");
        *id = p->n++;
    }
    return (int)*id;
}

typedef struct {
    int *sym;       /* piece ids */
    int n;
    int64_t count;
} word;

/* Pair of piece ids (x << 32 | y) -> count; open addressing, -1 = empty. */
typedef struct {
    int64_t *key, *val;
    size_t n, cap;
} pairmap;

static void pair_clear(pairmap *m)
{
    for (size_t i = 0; i < m->cap; i++) m->key[i] = -1;
    m->n = 0;
}

static size_t pair_slot(const pairmap *m, int64_t k)
{
    size_t i = (size_t)((uint64_t)k * 0x9E3779B97F4A7C15ull >> 20) & (m->cap - 1);
    while (m->key[i] >= 0 && m->key[i] != k) i = (i + 1) & (m->cap - 1);
    return i;
}

static int64_t *pair_get(pairmap *m, int x, int y)
{
    if (2 * (m->n + 1) > m->cap) {
        pairmap g = {0};
        g.cap = m->cap ? 2 * m->cap : 4096;
        g.key = secap_xmalloc(g.cap * sizeof *g.key, "vocab builder pairs");
        g.val = secap_xmalloc(g.cap * sizeof *g.val, "vocab builder pairs");
        pair_clear(&g);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->key[i] < 0) continue;
            size_t s = pair_slot(&g, m->key[i]);
            g.key[s] = m->key[i];
            g.val[s] = m->val[i];
            g.n++;
        }
        free(m->key); free(m->val);
        *m = g;
    }
    int64_t k = (int64_t)x << 32 | (int64_t)(uint32_t)y;
    size_t s = pair_slot(m, k);
    if (m->key[s] < 0) { m->key[s] = k; m->val[s] = 0; m->n++; }
    return &m->val[s];
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Learned pieces, in the order learned (*n of them, malloc'ed strings). */
static char **learn_pieces(const secap_bertvocab *v, int *nlearned)
{
    /* distinct words, sorted so the result does not depend on hash order */
    int nw = 0;
    char **keys = secap_xmalloc((v->words.n + 1) * sizeof *keys, "vocab builder words");
    for (size_t i = 0; i < v->words.cap; i++) if (v->words.key[i]) keys[nw++] = v->words.key[i];
    qsort(keys, (size_t)nw, sizeof *keys, cmp_str);

    pieces p = {0};
    map_init(&p.index, 1024);
    word *w = secap_xcalloc((size_t)(nw ? nw : 1), sizeof *w, "vocab builder words");
    char buf[8];
    for (int i = 0; i < nw; i++) {
        const char *s = keys[i];
        size_t len = strlen(s);
        w[i].count = v->words.val[map_slot(&v->words, s)];
        w[i].sym = secap_xmalloc(len * sizeof *w[i].sym, "vocab builder word");
        for (size_t q = 0; q < len;) {
            int32_t c;
            size_t k = (size_t)utf8proc_iterate((const utf8proc_uint8_t *)s + q, (utf8proc_ssize_t)(len - q), &c);
            size_t o = 0;
            if (q > 0) { buf[0] = '#'; buf[1] = '#'; o = 2; }
            memcpy(buf + o, s + q, k);
            buf[o + k] = 0;
            w[i].sym[w[i].n++] = piece_id(&p, buf);
            q += k;
        }
    }
    free(keys);

    char **learned = NULL;
    int nl = 0;
    pairmap pm = {0};
    while (nl < v->o.max_pieces) {
        /* pair counts over the words, weighted by word count */
        pair_clear(&pm);
        for (int i = 0; i < nw; i++)
            for (int j = 0; j + 1 < w[i].n; j++)
                *pair_get(&pm, w[i].sym[j], w[i].sym[j + 1]) += w[i].count;
        int bx = -1, by = -1;
        int64_t best = 0;
        char *bestm = NULL;
        for (size_t s = 0; s < pm.cap; s++) {
            if (pm.key[s] < 0 || pm.val[s] < v->o.min_count || pm.val[s] < best) continue;
            int x = (int)(pm.key[s] >> 32), y = (int)(pm.key[s] & 0xFFFFFFFF);
            const char *tx = p.text[x], *ty = p.text[y] + 2;          /* y is always "##..." */
            size_t lx = strlen(tx), ly = strlen(ty);
            char *m = secap_xmalloc(lx + ly + 1, "vocab builder piece");
            memcpy(m, tx, lx);
            memcpy(m + lx, ty, ly + 1);
            if (pm.val[s] > best || strcmp(m, bestm) < 0) {
                free(bestm);
                bestm = m;
                best = pm.val[s];
                bx = x; by = y;
            } else {
                free(m);
            }
        }
        if (bx < 0) break;
        int before = p.n;
        int z = piece_id(&p, bestm);
        if (z == before) {                 /* a new text (two pairs can merge to the same text) */
            char **q = realloc(learned, (size_t)(nl + 1) * sizeof *q);
            if (!q) secap_fatal("out of memory in the vocab builder");
            learned = q;
            learned[nl++] = bestm;
        } else {
            free(bestm);
        }
        for (int i = 0; i < nw; i++) {
            int k = 0;
            for (int j = 0; j < w[i].n; j++) {
                if (j + 1 < w[i].n && w[i].sym[j] == bx && w[i].sym[j + 1] == by) {
                    w[i].sym[k++] = z;
                    j++;
                } else {
                    w[i].sym[k++] = w[i].sym[j];
                }
            }
            w[i].n = k;
        }
    }
    free(pm.key); free(pm.val);
    for (int i = 0; i < nw; i++) free(w[i].sym);
    free(w);
    for (int i = 0; i < p.n; i++) free(p.text[i]);
    free(p.text);
    map_free(&p.index);
    *nlearned = nl;
    return learned;
}

/* ---- output ------------------------------------------------------------- */

typedef struct { char **v; int n, cap; } lines_t;

static void add_line(lines_t *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        char **q = realloc(l->v, (size_t)l->cap * sizeof *q);
        if (!q) secap_fatal("out of memory in the vocab builder");
        l->v = q;
    }
    l->v[l->n++] = secap_xstrdup(s, "vocab line");
}

static void add_char(lines_t *l, int32_t c, int cont)
{
    char buf[8];
    size_t o = 0;
    if (cont) { buf[0] = '#'; buf[1] = '#'; o = 2; }
    o += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)buf + o);
    buf[o] = 0;
    add_line(l, buf);
}

int secap_bertvocab_build(const secap_bertvocab *v, char ***out)
{
    if (!v || !out) secap_fatal("secap_bertvocab_build: builder or out is NULL");
    lines_t l = {0};
    char buf[32];
    add_line(&l, "[PAD]");
    for (int i = 1; i <= 99; i++) { snprintf(buf, sizeof buf, "[unused%d]", i); add_line(&l, buf); }
    add_line(&l, "[UNK]"); add_line(&l, "[CLS]"); add_line(&l, "[SEP]"); add_line(&l, "[MASK]");
    add_line(&l, "<S>"); add_line(&l, "<T>");

    /* single characters: the ASCII set bert-base-chinese starts with, then
     * the corpus' */
    unsigned char *plain = secap_xcalloc(NCP, 1, "vocab builder flags");
    unsigned char *cont = secap_xcalloc(NCP, 1, "vocab builder flags");
    for (int32_t c = 33; c <= 126; c++) {
        int upper = c >= 'A' && c <= 'Z';
        if (upper && v->o.lower_case) continue;
        plain[c] = 1;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || upper) cont[c] = 1;
    }
    for (int32_t c = 0; c < NCP; c++) {
        if (!v->chars[c]) continue;
        plain[c] = 1;
        if (!secap_bert_is_cjk(c) && !secap_bert_is_punct(c)) cont[c] = 1;
    }
    for (int32_t c = 0; c < NCP; c++) if (plain[c]) add_char(&l, c, 0);

    int nl;
    char **learned = learn_pieces(v, &nl);
    for (int i = 0; i < nl; i++) { add_line(&l, learned[i]); free(learned[i]); }
    free(learned);

    for (int32_t c = 0; c < NCP; c++) if (cont[c]) add_char(&l, c, 1);
    free(plain);
    free(cont);
    *out = l.v;
    return l.n;
}

int secap_bertvocab_write(const secap_bertvocab *v, const char *path)
{
    if (!path) secap_fatal("secap_bertvocab_write: path is NULL");
    char **lines;
    int n = secap_bertvocab_build(v, &lines);
    size_t pl = strlen(path) + 32;
    char *tmp = secap_xmalloc(pl, "vocab temp path");
    snprintf(tmp, pl, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        secap_fatal("bert vocab %s: cannot create %s: %s (hint: does the directory exist and is it writable?)",
                    path, tmp, strerror(errno));
    int ok = 1;
    for (int i = 0; i < n; i++) {
        ok &= fputs(lines[i], f) >= 0 && fputc('\n', f) != EOF;
        free(lines[i]);
    }
    free(lines);
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        secap_fatal("bert vocab %s: writing failed: %s (hint: is the disk full?)", path, strerror(e));
    }
    free(tmp);
    return n;
}
