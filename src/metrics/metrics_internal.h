/* metrics_internal.h - the corpus layout shared by the metric modules.
 *
 * Every sentence (hypothesis or reference) is a run of vocabulary ids in one
 * token array; an item is one hypothesis sentence plus a range of reference
 * sentences.  The metric modules only read a corpus.
 */
#ifndef SECAP_METRICS_INTERNAL_H
#define SECAP_METRICS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "secap/score.h"

/* String interning table: open addressing, ids in insertion order. */
typedef struct {
    char **str;       /* [n] owned, NUL-terminated */
    size_t *len;      /* [n] byte lengths */
    int n, cap;
    int *slot;        /* [nslot] id or -1 */
    size_t nslot;     /* power of two, > 2n */
} secap_strtab;

void strtab_init(secap_strtab *t);
void strtab_free(secap_strtab *t);
/* Id of s[0..len); adds it when absent (*added = 1 then). */
int strtab_intern(secap_strtab *t, const char *s, size_t len, int *added);
/* Id of s, or -1. */
int strtab_find(const secap_strtab *t, const char *s, size_t len);

struct secap_corpus {
    secap_tokenize_mode mode;
    /* items */
    int n, cap;
    secap_strtab ids;     /* item i has id ids.str[i] */
    int *hyp;             /* [n] sentence index of the hypothesis */
    int *ref0, *nref;     /* [n] first reference sentence, reference count */
    /* sentences */
    int nsent, sent_cap;
    size_t *start;        /* [nsent] offset of the sentence in tok */
    int *len;             /* [nsent] token count */
    int32_t *tok;         /* [ntok] vocabulary ids */
    size_t ntok, tok_cap;
    secap_strtab vocab;   /* token strings */
    /* reference ids without a hypothesis (load_json) */
    char **ignored;
    int n_ignored;
};

static inline const int32_t *sent_tok(const secap_corpus *c, int s) { return c->tok + c->start[s]; }

/* Tokeniser callback: one token s[0..n) (not NUL-terminated). */
typedef void (*secap_tok_emit)(void *ctx, const char *s, size_t n);
/* Splits text into tokens; invalid UTF-8 stops with an error naming `what`. */
void secap_tokenize_each(const char *text, secap_tokenize_mode mode, const char *what,
                         secap_tok_emit emit, void *ctx);

/* N-gram counts of every sentence, n = 1..4, ids shared across the corpus. */
typedef struct {
    uint32_t id;       /* n-gram id */
    int32_t count;     /* occurrences in the sentence */
} secap_ngram_count;

typedef struct {
    int nids;                  /* distinct n-grams in the corpus */
    uint8_t *order;            /* [nids] n of each n-gram, 1..4 */
    size_t *off;               /* [nsent + 1] range of each sentence in cnt */
    secap_ngram_count *cnt;    /* per sentence: n = 1, then 2, ..., each in
                                  first-occurrence order */
} secap_ngrams;

void secap_ngrams_build(secap_ngrams *g, const secap_corpus *c);
void secap_ngrams_free(secap_ngrams *g);

/* Metric kernels: corpus score(s) and per-item scores (per_item may be NULL). */
void secap_bleu(const secap_corpus *c, const secap_ngrams *g, double corpus[4], secap_scores *per_item);
void secap_cider(const secap_corpus *c, const secap_ngrams *g, double *corpus, secap_scores *per_item);
void secap_rouge_l(const secap_corpus *c, double *corpus, secap_scores *per_item);
void secap_meteor(const secap_corpus *c, double *corpus, secap_scores *per_item);

#endif
