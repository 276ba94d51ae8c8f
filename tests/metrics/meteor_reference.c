/* tests/metrics/meteor_reference.c - the straightforward METEOR alignment,
 * kept as the reference src/metrics/meteor.c is checked against: this is
 * the implementation the toolkit fixtures first pinned, with the Java code's
 * data layout (every partial alignment copies both sentences' arrays for
 * every candidate).  It is exact but unbounded (a word repeated 15,000 times
 * takes minutes and gigabytes), so tests/test_score.c runs it only on
 * inputs small enough, including repetitive ones, and requires the bounded
 * search to give identical statistics.  Included by test_score.c with
 * secap_meteor renamed; not built on its own.
 *
 * METEOR 1.5 as `java -jar meteor-1.5.jar -l en -m exact` (no normalisation,
 * no lower-casing) computes it, step for step:
 *
 * Alignment (Aligner.align with the exact module): word j of the reference
 * and word i of the hypothesis match when their Java String.hashCode()s are
 * equal.  A match that is the only one for both words is fixed up front; the
 * rest are resolved by a left-to-right beam search over reference positions
 * (beam 40) that ranks partial alignments by more matched words, then fewer
 * chunks, then smaller "distance" (with the reference code's quirk that a
 * branch's distance is charged to its parent path), sorted stably.
 *
 * Statistics (MeteorScorer.getMeteorStats), with delta weighting function
 * words (English list below, compared after lower-casing) by 1 - delta:
 *   P = (delta*mc_hyp + (1-delta)*mf_hyp) / (delta*content_hyp + (1-delta)*func_hyp)
 *   R = the same over the reference
 *   Fmean = 1 / ((1-alpha)/P + alpha/R)
 *   frag = chunks / ((matches_hyp + matches_ref) / 2), 0 for a perfect match
 *   score = Fmean * (1 - gamma * frag^beta), 0 when undefined (NaN)
 * with alpha 0.85, beta 0.2, gamma 0.6, delta 0.75.  Each item keeps the
 * first reference with the highest score; the corpus score applies the same
 * formula to the statistics summed over items (chunks of perfect matches are
 * not summed, as in MeteorStats.addStats).
 */
#include "../../src/metrics/metrics_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "secap/base.h"

static const double ALPHA = 0.85, BETA = 0.2, GAMMA = 0.6, DELTA = 0.75;
enum { BEAM = 40 };

/* METEOR 1.5 resources/function/english.words, in file order. */
static const char *const EN_FUNCTION_WORDS[] = {
    "the", ",", ".", "to", "of", "and", "a", "in", "that", "for", "\"", "is", "on", "'s",
    "it", "with", "was", "as", "said", "at", "he", "by", "be", "from", "have", "has", "are",
    "his", "but", "an", "this", "not", "i", "will", "\xe2\x80\x99", "they", ")", "-rrb-",
    "(", "-lrb-", "who", "their", "had", "we", "which", "were", "been", "more", "or", "s",
    "its", "would", "about", "new", "one", "after", "you", ":", "also", "up", "when",
    "there", "than", "$", "all", "out", "her", "people", "she", "year", "two", "-", "can",
    "if", "last", "first", "\xe2\x80\x9c", "over", "other", "\xe2\x80\x9d", "into", "some",
    "what", "so", "--", "no", "time", "years", "could", "?", "'t", "\xe2\x80\x94", "'",
};

/* ------------------------------------------------------------ word tables */

/* Java String.hashCode(): over UTF-16 code units, 32-bit wrap-around. */
static uint32_t java_hash(const char *s, size_t n)
{
    uint32_t h = 0;
    for (size_t pos = 0; pos < n;) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + pos, (utf8proc_ssize_t)(n - pos), &cp);
        if (k <= 0) { cp = (unsigned char)s[pos]; k = 1; }
        pos += (size_t)k;
        if (cp >= 0x10000) {
            h = 31 * h + (uint32_t)(0xD800 + ((cp - 0x10000) >> 10));
            h = 31 * h + (uint32_t)(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            h = 31 * h + (uint32_t)cp;
        }
    }
    return h;
}

/* Java toLowerCase() for the function-word test (U+0130 becomes "i\u0307"). */
static char *java_lower(const char *s, size_t n)
{
    char *out = secap_xmalloc(3 * n + 1, "lower-cased word");
    size_t m = 0;
    for (size_t pos = 0; pos < n;) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + pos, (utf8proc_ssize_t)(n - pos), &cp);
        if (k <= 0) { out[m++] = s[pos++]; continue; }
        pos += (size_t)k;
        if (cp == 0x130) { memcpy(out + m, "i\xcc\x87", 3); m += 3; continue; }
        m += (size_t)utf8proc_encode_char(utf8proc_tolower(cp), (utf8proc_uint8_t *)out + m);
    }
    out[m] = 0;
    return out;
}

typedef struct {
    uint32_t *key;     /* [vocab] Java hash of each word */
    uint8_t *func;     /* [vocab] 1 for an English function word */
} word_info;

static word_info word_info_build(const secap_strtab *vocab)
{
    secap_strtab fw;
    strtab_init(&fw);
    for (size_t i = 0; i < sizeof EN_FUNCTION_WORDS / sizeof *EN_FUNCTION_WORDS; i++)
        strtab_intern(&fw, EN_FUNCTION_WORDS[i], strlen(EN_FUNCTION_WORDS[i]), NULL);
    word_info w = {
        .key = secap_xmalloc((size_t)vocab->n * sizeof(uint32_t) + 1, "METEOR word keys"),
        .func = secap_xmalloc((size_t)vocab->n + 1, "METEOR function words"),
    };
    for (int id = 0; id < vocab->n; id++) {
        w.key[id] = java_hash(vocab->str[id], vocab->len[id]);
        char *low = java_lower(vocab->str[id], vocab->len[id]);
        w.func[id] = strtab_find(&fw, low, strlen(low)) >= 0;
        free(low);
    }
    strtab_free(&fw);
    return w;
}

/* ------------------------------------------------------------ statistics */

typedef struct {
    double tlen, rlen;       /* hypothesis / reference length */
    double tfunc, rfunc;     /* function words in each */
    double tc, tf, rc, rf;   /* matched content / function words, hyp and ref */
    double chunks;
} meteor_stats;

static int is_perfect(const meteor_stats *s)
{
    return s->tc + s->tf == s->tlen && s->rc + s->rf == s->rlen && s->chunks == 1;
}

/* MeteorScorer.computeMetrics, same operation order. */
static double meteor_score(const meteor_stats *s)
{
    double twl = (DELTA * (s->tlen - s->tfunc)) + ((1.0 - DELTA) * s->tfunc);
    double rwl = (DELTA * (s->rlen - s->rfunc)) + ((1.0 - DELTA) * s->rfunc);
    double twm = 0, rwm = 0;
    twm += s->tc * 1.0 * DELTA;
    rwm += s->rc * 1.0 * DELTA;
    twm += s->tf * 1.0 * (1.0 - DELTA);
    rwm += s->rf * 1.0 * (1.0 - DELTA);
    double p = twm / twl, r = rwm / rwl;
    double fmean = 1.0 / (((1.0 - ALPHA) / p) + (ALPHA / r));
    double frag = is_perfect(s) ? 0 : s->chunks / ((s->tc + s->tf + s->rc + s->rf) / 2);
    double score = fmean * (1.0 - GAMMA * pow(frag, BETA));
    if (isnan(score)) return 0;
    return score > 0.0 ? score : 0.0;
}

static void stats_add(meteor_stats *acc, const meteor_stats *s)
{
    acc->tlen += s->tlen; acc->rlen += s->rlen;
    acc->tfunc += s->tfunc; acc->rfunc += s->rfunc;
    acc->tc += s->tc; acc->tf += s->tf; acc->rc += s->rc; acc->rf += s->rf;
    if (!is_perfect(s)) acc->chunks += s->chunks;
}

/* ------------------------------------------------------------ beam search */

/* A partial alignment (PartialAlignment); its arrays live in a slot. */
typedef struct {
    int m12;        /* matched words, hypothesis + reference */
    int chunks;
    int idx;        /* next reference position */
    int last_end;   /* hypothesis position after the last match, -1 if none */
    int distance;
    int slot;
    int moved;      /* taken into the next step's list */
} mpath;

/* Per-thread scratch, grown as needed (capacities in elements). */
typedef struct {
    int n1, n2;                 /* hypothesis / reference length of this pair */
    uint32_t *k1, *k2;          /* [n1], [n2] Java hash keys of the words */
    int *cstart, *cand;         /* [n2 + 1] CSR of hypothesis candidates per ref word */
    int *cov1, *cov2;           /* [n1], [n2] candidate counts */
    size_t cap1, cap2, ccap;    /* capacities of the arrays above */
    int *match;                 /* [slots * n2] hypothesis index per ref word, -1 */
    uint8_t *used1, *used2;     /* [slots * n1], [slots * n2] */
    size_t match_cap, used1_cap, used2_cap;
    int nslot, *free_slots, nfree;
    size_t free_cap;
    mpath *cur, *next, *tmp;    /* path lists of this and the next step */
    int ncur, nnext;
    size_t cur_cap, next_cap, tmp_cap;
} aligner;

static void *xrealloc(void *p, size_t n, const char *what)
{
    void *q = realloc(p, n ? n : 1);
    SECAP_CHECK(q, "out of memory growing %s to %zu bytes (hint: shorter captions)", what, n);
    return q;
}

/* Grows *p to hold at least `need` elements of `size` bytes (capacity *cap). */
static void ensure(void **p, size_t *cap, size_t need, size_t size, const char *what)
{
    if (need <= *cap) return;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need) ncap *= 2;
    *p = xrealloc(*p, ncap * size, what);
    *cap = ncap;
}

/* A free slot; arrays keep one spare element so empty sentences get non-NULL pointers. */
static int slot_alloc(aligner *a)
{
    if (a->nfree) return a->free_slots[--a->nfree];
    int s = a->nslot++;
    size_t n = (size_t)a->nslot;
    ensure((void **)&a->match, &a->match_cap, n * (size_t)a->n2 + 1, sizeof(int), "METEOR paths");
    ensure((void **)&a->used1, &a->used1_cap, n * (size_t)a->n1 + 1, 1, "METEOR paths");
    ensure((void **)&a->used2, &a->used2_cap, n * (size_t)a->n2 + 1, 1, "METEOR paths");
    ensure((void **)&a->free_slots, &a->free_cap, n, sizeof(int), "METEOR paths");
    return s;
}

static void slot_copy(aligner *a, int dst, int src)
{
    memcpy(a->match + (size_t)dst * a->n2, a->match + (size_t)src * a->n2, (size_t)a->n2 * sizeof(int));
    memcpy(a->used1 + (size_t)dst * a->n1, a->used1 + (size_t)src * a->n1, (size_t)a->n1);
    memcpy(a->used2 + (size_t)dst * a->n2, a->used2 + (size_t)src * a->n2, (size_t)a->n2);
}

/* Appends to the next step's list (never moves the current list). */
static void push_next(aligner *a, mpath p)
{
    ensure((void **)&a->next, &a->next_cap, (size_t)a->nnext + 1, sizeof(mpath), "METEOR beam");
    a->next[a->nnext++] = p;
}

/* Constants.PARTIAL_COMPARE_TOTAL: > 0 when x ranks after y. */
static int path_cmp(const mpath *x, const mpath *y)
{
    if (y->m12 != x->m12) return y->m12 > x->m12 ? 1 : -1;
    if (x->chunks != y->chunks) return x->chunks - y->chunks;
    return (int)((unsigned)x->distance - (unsigned)y->distance);   /* Java int subtraction */
}

/* Stable merge sort (Java's Collections.sort is stable). */
static void sort_paths(mpath *p, mpath *tmp, int n)
{
    for (int i = 1; i < n && n <= 16; i++) {
        mpath v = p[i];
        int j = i;
        while (j > 0 && path_cmp(&p[j - 1], &v) > 0) { p[j] = p[j - 1]; j--; }
        p[j] = v;
    }
    if (n <= 16) return;
    int h = n / 2;
    sort_paths(p, tmp, h);
    sort_paths(p + h, tmp, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = path_cmp(&p[j], &p[i]) < 0 ? p[j++] : p[i++];
    while (i < h) tmp[k++] = p[i++];
    while (j < n) tmp[k++] = p[j++];
    memcpy(p, tmp, (size_t)n * sizeof *p);
}

/* Sizes the per-word arrays for a pair of lengths n1, n2. */
static void aligner_reserve(aligner *a, int n1, int n2)
{
    a->n1 = n1;
    a->n2 = n2;
    a->nslot = 0;
    a->nfree = 0;
    if ((size_t)n1 + 1 > a->cap1) {
        a->cap1 = 2 * ((size_t)n1 + 1);
        a->k1 = xrealloc(a->k1, a->cap1 * sizeof(uint32_t), "METEOR words");
        a->cov1 = xrealloc(a->cov1, a->cap1 * sizeof(int), "METEOR words");
    }
    if ((size_t)n2 + 1 > a->cap2) {
        a->cap2 = 2 * ((size_t)n2 + 1);
        a->k2 = xrealloc(a->k2, a->cap2 * sizeof(uint32_t), "METEOR words");
        a->cov2 = xrealloc(a->cov2, a->cap2 * sizeof(int), "METEOR words");
        a->cstart = xrealloc(a->cstart, a->cap2 * sizeof(int), "METEOR words");
    }
}

static void sort_current(aligner *a, mpath *p, int n)
{
    ensure((void **)&a->tmp, &a->tmp_cap, (size_t)n, sizeof(mpath), "METEOR beam");
    sort_paths(p, a->tmp, n);
}

/* Exact matches of the keys k1 (hypothesis) and k2 (reference); fixes the
 * unambiguous ones in a new start slot and returns it. */
static int find_matches(aligner *a)
{
    int n1 = a->n1, n2 = a->n2;
    const uint32_t *k1 = a->k1, *k2 = a->k2;
    memset(a->cov1, 0, (size_t)n1 * sizeof(int));
    int m = 0;
    for (int j = 0; j < n2; j++) {
        a->cstart[j] = m;
        a->cov2[j] = 0;
        for (int i = 0; i < n1; i++) {
            if (k1[i] != k2[j]) continue;
            if ((size_t)m >= a->ccap) { a->ccap = a->ccap ? 2 * a->ccap : 256; a->cand = xrealloc(a->cand, a->ccap * sizeof(int), "METEOR matches"); }
            a->cand[m++] = i;
            a->cov1[i]++;
            a->cov2[j]++;
        }
    }
    a->cstart[n2] = m;
    int s = slot_alloc(a);
    int *match = a->match + (size_t)s * n2;
    uint8_t *used1 = a->used1 + (size_t)s * n1, *used2 = a->used2 + (size_t)s * n2;
    memset(used1, 0, (size_t)n1);
    for (int j = 0; j < n2; j++) {
        match[j] = -1;
        used2[j] = 0;
        if (a->cstart[j + 1] - a->cstart[j] != 1) continue;
        int i = a->cand[a->cstart[j]];
        if (a->cov2[j] != 1 || a->cov1[i] != 1) continue;
        match[j] = i;
        used2[j] = 1;
        used1[i] = 1;
    }
    return s;
}

/* One path at reference position `current` (< n2), as in Aligner.resolve. */
static void extend_path(aligner *a, mpath *p, int current)
{
    int *match = a->match + (size_t)p->slot * a->n2;
    if (a->used2[(size_t)p->slot * a->n2 + current]) {
        if (current < p->idx) { p->moved = 1; push_next(a, *p); return; }
        int i = match[p->idx];
        if (i < 0) return;  /* dropped, as in the reference code */
        p->m12 += 2;
        if (p->last_end != -1 && i != p->last_end) p->chunks++;
        p->distance += abs(p->idx - i);
        p->idx += 1;
        p->last_end = i + 1;
        p->moved = 1;
        push_next(a, *p);
        return;
    }
    for (int c = a->cstart[current]; c < a->cstart[current + 1]; c++) {
        int i = a->cand[c];
        if (a->used1[(size_t)p->slot * a->n1 + i]) continue;
        mpath q = *p;
        q.slot = slot_alloc(a);
        slot_copy(a, q.slot, p->slot);
        a->used2[(size_t)q.slot * a->n2 + current] = 1;
        a->used1[(size_t)q.slot * a->n1 + i] = 1;
        a->match[(size_t)q.slot * a->n2 + current] = i;
        q.m12 += 2;
        if (q.last_end != -1 && i != q.last_end) q.chunks++;
        q.idx = current + 1;
        q.last_end = i + 1;
        q.moved = 0;
        p->distance += abs(current - i);
        push_next(a, q);
    }
    if (p->last_end != -1) { p->chunks++; p->last_end = -1; }
    p->idx++;
    p->moved = 1;
    push_next(a, *p);
}

/* Runs the beam search; returns the slot of the best complete alignment. */
static int resolve(aligner *a, int start_slot)
{
    a->nnext = 0;
    push_next(a, (mpath){0, 0, 0, -1, 0, start_slot, 0});
    for (int current = 0; current <= a->n2; current++) {
        mpath *t = a->cur; a->cur = a->next; a->next = t;
        size_t tc = a->cur_cap; a->cur_cap = a->next_cap; a->next_cap = tc;
        a->ncur = a->nnext;
        a->nnext = 0;
        sort_current(a, a->cur, a->ncur);
        for (int rank = 0; rank < a->ncur; rank++) a->cur[rank].moved = 0;
        for (int rank = 0; rank < BEAM && rank < a->ncur; rank++) {
            mpath *p = &a->cur[rank];
            if (current == a->n2) {
                if (p->last_end != -1) p->chunks++;
                p->moved = 1;
                push_next(a, *p);
            } else {
                extend_path(a, p, current);
            }
        }
        if (a->nnext == 0 && a->ncur > 0) { a->cur[0].moved = 1; push_next(a, a->cur[0]); }
        for (int rank = 0; rank < a->ncur; rank++)
            if (!a->cur[rank].moved) a->free_slots[a->nfree++] = a->cur[rank].slot;
    }
    sort_current(a, a->next, a->nnext);
    return a->next[0].slot;
}

/* Statistics of one hypothesis/reference pair. */
static meteor_stats align_pair(aligner *a, const word_info *w, const int32_t *hyp, int n1,
                               const int32_t *ref, int n2)
{
    aligner_reserve(a, n1, n2);
    for (int i = 0; i < n1; i++) a->k1[i] = w->key[hyp[i]];
    for (int j = 0; j < n2; j++) a->k2[j] = w->key[ref[j]];
    int best = resolve(a, find_matches(a));
    const int *match = a->match + (size_t)best * n2;

    meteor_stats s = {.tlen = n1, .rlen = n2};
    for (int i = 0; i < n1; i++) s.tfunc += w->func[hyp[i]];
    for (int j = 0; j < n2; j++) s.rfunc += w->func[ref[j]];
    int last_end = -1;
    for (int j = 0; j < n2; j++) {
        int i = match[j];
        if (i < 0) {
            if (last_end != -1) { s.chunks++; last_end = -1; }
            continue;
        }
        if (w->func[hyp[i]]) s.tf++; else s.tc++;
        if (w->func[ref[j]]) s.rf++; else s.rc++;
        if (last_end != -1 && i != last_end) s.chunks++;
        last_end = i + 1;
    }
    if (last_end != -1) s.chunks++;
    return s;
}

static void aligner_free(aligner *a)
{
    free(a->k1); free(a->k2); free(a->cstart); free(a->cand); free(a->cov1); free(a->cov2);
    free(a->match); free(a->used1); free(a->used2); free(a->free_slots);
    free(a->cur); free(a->next); free(a->tmp);
}

/* Best reference of one item: the first with the highest score. */
static meteor_stats item_stats(const secap_corpus *c, const word_info *w, aligner *a, int item, double *score)
{
    int h = c->hyp[item];
    meteor_stats best = {0};
    double best_score = -1;
    for (int r = 0; r < c->nref[item]; r++) {
        int s = c->ref0[item] + r;
        meteor_stats st = align_pair(a, w, sent_tok(c, h), c->len[h], sent_tok(c, s), c->len[s]);
        double sc = meteor_score(&st);
        if (sc > best_score) { best = st; best_score = sc; }
    }
    *score = best_score;
    return best;
}

void secap_meteor(const secap_corpus *c, double *corpus, secap_scores *per_item)
{
    word_info w = word_info_build(&c->vocab);
    meteor_stats *st = secap_xmalloc((size_t)c->n * sizeof *st + 1, "METEOR statistics");
    double *score = secap_xmalloc((size_t)c->n * sizeof *score + 1, "METEOR scores");
    #pragma omp parallel
    {
        aligner a;
        memset(&a, 0, sizeof a);
        #pragma omp for schedule(dynamic, 16)
        for (int item = 0; item < c->n; item++) st[item] = item_stats(c, &w, &a, item, &score[item]);
        aligner_free(&a);
    }
    meteor_stats total = {0};
    for (int item = 0; item < c->n; item++) {
        stats_add(&total, &st[item]);
        if (per_item) per_item[item].meteor = score[item];
    }
    *corpus = meteor_score(&total);
    free(st); free(score); free(w.key); free(w.func);
}
