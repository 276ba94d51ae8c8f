/* N-gram (n = 1..4) counts of every sentence, with corpus-wide n-gram ids so
 * BLEU and CIDEr can compare sentences through dense id-indexed arrays.
 * Within a sentence the counts are in first-occurrence order for n = 1, then
 * n = 2, ... (the insertion order of the toolkit's precook dictionaries). */
#include "metrics_internal.h"

#include <stdlib.h>
#include <string.h>

#include "secap/base.h"

enum { MAXN = 4 };

/* Open-addressing table from an n-gram (tokens padded with -1) to its id. */
typedef struct {
    int32_t (*key)[MAXN];   /* [nids] */
    uint8_t *order;         /* [nids] */
    int nids, cap;
    int *slot;              /* [nslot] id or -1 */
    size_t nslot;
} ngram_table;

static uint64_t ngram_hash(const int32_t k[MAXN])
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < MAXN; i++) {
        h ^= (uint32_t)k[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

static size_t table_probe(const ngram_table *t, const int32_t k[MAXN])
{
    size_t mask = t->nslot - 1, s = ngram_hash(k) & mask;
    while (t->slot[s] >= 0 && memcmp(t->key[t->slot[s]], k, sizeof(int32_t) * MAXN) != 0)
        s = (s + 1) & mask;
    return s;
}

static void table_rehash(ngram_table *t)
{
    free(t->slot);
    t->nslot = t->nslot ? 2 * t->nslot : 1 << 16;
    t->slot = secap_xmalloc(t->nslot * sizeof *t->slot, "n-gram table");
    memset(t->slot, 0xff, t->nslot * sizeof *t->slot);
    for (int id = 0; id < t->nids; id++) t->slot[table_probe(t, t->key[id])] = id;
}

static int table_intern(ngram_table *t, const int32_t k[MAXN], int n)
{
    size_t s = table_probe(t, k);
    if (t->slot[s] >= 0) return t->slot[s];
    if (t->nids == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1 << 15;
        t->key = realloc(t->key, (size_t)t->cap * sizeof *t->key);
        t->order = realloc(t->order, (size_t)t->cap);
        SECAP_CHECK(t->key && t->order, "out of memory for %d n-grams (hint: score a smaller corpus)", t->cap);
    }
    int id = t->nids++;
    memcpy(t->key[id], k, sizeof(int32_t) * MAXN);
    t->order[id] = (uint8_t)n;
    t->slot[s] = id;
    if ((size_t)t->nids * 2 > t->nslot) table_rehash(t);
    return id;
}

/* Appends the counts of sentence s to g->cnt (capacity *cap); stamp/where are
 * [table cap] scratch arrays that dedupe ids within the sentence. */
static void count_sentence(secap_ngrams *g, size_t *cap, ngram_table *t, const secap_corpus *c, int s,
                           int **stamp, size_t **where, int *scratch_cap)
{
    const int32_t *w = sent_tok(c, s);
    int len = c->len[s];
    size_t need = g->off[s] + (size_t)MAXN * (size_t)len;
    if (need > *cap) {
        while (need > *cap) *cap = *cap ? 2 * *cap : 1 << 16;
        g->cnt = realloc(g->cnt, *cap * sizeof *g->cnt);
        SECAP_CHECK(g->cnt, "out of memory for %zu n-gram counts (hint: score a smaller corpus)", *cap);
    }
    size_t m = g->off[s];
    for (int n = 1; n <= MAXN; n++) {
        for (int i = 0; i + n <= len; i++) {
            int32_t k[MAXN] = {-1, -1, -1, -1};
            memcpy(k, w + i, sizeof(int32_t) * (size_t)n);
            int id = table_intern(t, k, n);
            if (id >= *scratch_cap) {
                int ncap = 2 * (id + 1);
                *stamp = realloc(*stamp, (size_t)ncap * sizeof **stamp);
                *where = realloc(*where, (size_t)ncap * sizeof **where);
                SECAP_CHECK(*stamp && *where, "out of memory for n-gram scratch (hint: score a smaller corpus)");
                for (int j = *scratch_cap; j < ncap; j++) (*stamp)[j] = -1;
                *scratch_cap = ncap;
            }
            if ((*stamp)[id] == s) { g->cnt[(*where)[id]].count++; continue; }
            (*stamp)[id] = s;
            (*where)[id] = m;
            g->cnt[m++] = (secap_ngram_count){(uint32_t)id, 1};
        }
    }
    g->off[s + 1] = m;
}

void secap_ngrams_build(secap_ngrams *g, const secap_corpus *c)
{
    memset(g, 0, sizeof *g);
    ngram_table t = {0};
    table_rehash(&t);
    g->off = secap_xcalloc((size_t)c->nsent + 1, sizeof *g->off, "n-gram offsets");
    size_t cap = 0;
    int *stamp = NULL, scratch_cap = 0;
    size_t *where = NULL;
    for (int s = 0; s < c->nsent; s++) count_sentence(g, &cap, &t, c, s, &stamp, &where, &scratch_cap);
    free(stamp); free(where); free(t.slot); free(t.key);
    g->nids = t.nids;
    g->order = t.order;
}

void secap_ngrams_free(secap_ngrams *g)
{
    free(g->order); free(g->off); free(g->cnt);
    memset(g, 0, sizeof *g);
}
