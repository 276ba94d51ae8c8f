/* METEOR 1.5 as `java -jar meteor-1.5.jar -l en -m exact` (no normalisation,
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
#include "metrics_internal.h"

#include <math.h>
#include <stdio.h>
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

/* Bounds.  The reference code copies every partial alignment's arrays
 * (hypothesis and reference length) for every candidate match of every
 * reference word, which on long repetitive captions (a word repeated 15,000
 * times) runs to gigabytes and minutes.  This search returns the same
 * alignment in bounded memory:
 *   - candidates are grouped by word key (O(n1 + n2), not n1 x n2 pairs);
 *   - a path's state is a bitset of the hypothesis words it chose (the
 *     reference side and the fixed matches are shared, since the search only
 *     ever chooses at the current reference position) plus a linked history
 *     of its choices;
 *   - of a path's children only those that can rank in the next beam are
 *     kept: siblings share the match count, their chunk count differs only
 *     for the one continuing the current chunk, and their distances grow in
 *     push order, so after BEAM of the others no later sibling can outrank
 *     them in a stable sort; the rest are still scanned, because each adds
 *     its distance to the parent (the reference code's quirk);
 *   - children are lazy: a child shares its parent's bitset plus one pending
 *     choice until it is extended, so only the <= BEAM extended paths of a
 *     step copy a bitset.
 * Time is then about sum_j BEAM x candidates(j) word operations plus BEAM
 * bitset copies per reference word.  A pair whose search would pass
 * WORK_BUDGET operations (both sentences thousands of tokens long and
 * repetitive; the Java toolkit with its 2 GB heap runs out of memory long
 * before: it holds BEAM x candidates copies of both sentences' arrays at
 * once) is aligned greedily instead: each reference word takes the
 * hypothesis word continuing the current chunk if it can, else the first
 * unused one of its key (the same matches, possibly more chunks). */
#define WORK_BUDGET ((int64_t)1 << 30)

/* A partial alignment (PartialAlignment). */
typedef struct {
    int m12;            /* matched words, hypothesis + reference */
    int chunks;
    int idx;            /* next reference position */
    int last_end;       /* hypothesis position after the last match, -1 if none */
    uint32_t distance;  /* a Java int: wraps, compared by wrapped subtraction */
    int slot;           /* bitset of the hypothesis words chosen (the base when lazy) */
    int node;           /* history: the last materialised choice, -1 none */
    int lazy_i, lazy_j; /* a choice not yet in slot / node (lazy_i < 0: none) */
    int moved;          /* taken into the next step's list */
} mpath;

typedef struct { int j, i, prev; } hnode;   /* a choice: ref j -> hyp i, previous choice */

/* Per-thread scratch, grown as needed. */
typedef struct {
    int n1, n2, W;              /* lengths; W = 64-bit words per bitset */
    uint32_t *k1, *k2;          /* [n1], [n2] word keys */
    int *pos;                   /* [n1] hypothesis positions sorted by (key, position) */
    int *gstart, *gcount2;      /* [ngroups + 1], [ngroups]: run of pos per key, its count in the reference */
    uint32_t *gkey;             /* [ngroups] */
    int ngroups;
    int *gid2;                  /* [n2] group of each reference word, -1 when no hypothesis word has its key */
    int *fixed;                 /* [n2] hypothesis word of a fixed (one-to-one) match, -1 */
    uint64_t *fixed1;           /* [W] hypothesis words in fixed matches */
    uint64_t *bits;             /* [nslot * W] */
    int *ref, nslot, *free_slots, nfree;
    hnode *node;
    int nnode;
    mpath *cur, *next, *tmp;
    int ncur, nnext;
    int64_t work;
    int *match;                 /* [n2] the result */
    uint8_t *used1;             /* [n1] greedy fallback */
    size_t cap1, cap2, cap_bits, cap_slots, cap_node, cap_cur, cap_next, cap_tmp;
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

static int slot_alloc(aligner *a)
{
    int s;
    if (a->nfree) s = a->free_slots[--a->nfree];
    else {
        s = a->nslot++;
        ensure((void **)&a->bits, &a->cap_bits, (size_t)a->nslot * (size_t)a->W + 1, sizeof(uint64_t), "METEOR paths");
        size_t before = a->cap_slots;
        ensure((void **)&a->ref, &a->cap_slots, (size_t)a->nslot, sizeof(int), "METEOR paths");
        if (a->cap_slots != before) {
            size_t c = before;
            ensure((void **)&a->free_slots, &c, a->cap_slots, sizeof(int), "METEOR paths");
        }
    }
    a->ref[s] = 1;
    return s;
}

static void slot_release(aligner *a, int s)
{
    if (--a->ref[s] == 0) a->free_slots[a->nfree++] = s;
}

static int node_new(aligner *a, int j, int i, int prev)
{
    ensure((void **)&a->node, &a->cap_node, (size_t)a->nnode + 1, sizeof(hnode), "METEOR history");
    a->node[a->nnode] = (hnode){ j, i, prev };
    return a->nnode++;
}

/* Gives a lazy path its own bitset and history node. */
static void materialise(aligner *a, mpath *p)
{
    if (p->lazy_i < 0) return;
    int s = slot_alloc(a);
    memcpy(a->bits + (size_t)s * a->W, a->bits + (size_t)p->slot * a->W, (size_t)a->W * sizeof(uint64_t));
    a->bits[(size_t)s * a->W + (size_t)(p->lazy_i >> 6)] |= 1ull << (p->lazy_i & 63);
    a->work += a->W;
    slot_release(a, p->slot);
    p->slot = s;
    p->node = node_new(a, p->lazy_j, p->lazy_i, p->node);
    p->lazy_i = -1;
}

static void push_next(aligner *a, mpath p)
{
    ensure((void **)&a->next, &a->cap_next, (size_t)a->nnext + 1, sizeof(mpath), "METEOR beam");
    a->next[a->nnext++] = p;
}

/* Constants.PARTIAL_COMPARE_TOTAL: > 0 when x ranks after y (Java int
 * arithmetic: the distance difference wraps). */
static int path_cmp(const mpath *x, const mpath *y)
{
    if (y->m12 != x->m12) return y->m12 > x->m12 ? 1 : -1;
    if (x->chunks != y->chunks) return x->chunks - y->chunks;
    return (int32_t)(x->distance - y->distance);
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

static void sort_list(aligner *a, mpath *p, int n)
{
    ensure((void **)&a->tmp, &a->cap_tmp, (size_t)n + 1, sizeof(mpath), "METEOR beam");
    sort_paths(p, a->tmp, n);
    a->work += n;
}

static int cmp_key_pos(const void *x, const void *y, void *keys)
{
    const uint32_t *k = keys;
    int a = *(const int *)x, b = *(const int *)y;
    if (k[a] != k[b]) return k[a] < k[b] ? -1 : 1;
    return a - b;
}

/* Groups the hypothesis words by key and finds the fixed matches: a pair of
 * words that are each other's only candidate. */
static void find_matches(aligner *a)
{
    int n1 = a->n1, n2 = a->n2;
    for (int i = 0; i < n1; i++) a->pos[i] = i;
    if (n1 <= 64) {                 /* captions: an insertion sort beats qsort's callbacks */
        for (int r = 1; r < n1; r++) {
            int v = a->pos[r], t = r;
            while (t > 0 && a->k1[a->pos[t - 1]] > a->k1[v]) { a->pos[t] = a->pos[t - 1]; t--; }
            a->pos[t] = v;
        }
    } else {
        qsort_r(a->pos, (size_t)n1, sizeof(int), cmp_key_pos, a->k1);
    }
    a->ngroups = 0;
    for (int r = 0; r < n1; r++)
        if (r == 0 || a->k1[a->pos[r]] != a->k1[a->pos[r - 1]]) {
            a->gkey[a->ngroups] = a->k1[a->pos[r]];
            a->gstart[a->ngroups] = r;
            a->gcount2[a->ngroups] = 0;
            a->ngroups++;
        }
    a->gstart[a->ngroups] = n1;
    memset(a->fixed1, 0, (size_t)a->W * sizeof(uint64_t));
    for (int j = 0; j < n2; j++) {
        int lo = 0, hi = a->ngroups - 1, g = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (a->gkey[mid] == a->k2[j]) { g = mid; break; }
            if (a->gkey[mid] < a->k2[j]) lo = mid + 1; else hi = mid - 1;
        }
        a->gid2[j] = g;
        if (g >= 0) a->gcount2[g]++;
    }
    for (int j = 0; j < n2; j++) {
        int g = a->gid2[j];
        a->fixed[j] = -1;
        if (g < 0 || a->gstart[g + 1] - a->gstart[g] != 1 || a->gcount2[g] != 1) continue;
        int i = a->pos[a->gstart[g]];
        a->fixed[j] = i;
        a->fixed1[i >> 6] |= 1ull << (i & 63);
    }
}

/* Path p at reference position `current` (< n2), as in Aligner.resolve. */
static void extend_path(aligner *a, mpath *p, int current)
{
    if (a->fixed[current] >= 0) {   /* only fixed matches are in use ahead of the search */
        if (current < p->idx) { p->moved = 1; push_next(a, *p); return; }
        int i = a->fixed[p->idx];
        if (i < 0) return;          /* dropped, as in the reference code */
        p->m12 += 2;
        if (p->last_end != -1 && i != p->last_end) p->chunks++;
        p->distance += (uint32_t)abs(p->idx - i);
        p->idx += 1;
        p->last_end = i + 1;
        p->moved = 1;
        push_next(a, *p);
        return;
    }
    int g = a->gid2[current];
    if (g >= 0) {
        materialise(a, p);          /* children share p's bitset */
        const uint64_t *mine = a->bits + (size_t)p->slot * a->W;
        int others = 0;
        for (int r = a->gstart[g]; r < a->gstart[g + 1]; r++) {
            int i = a->pos[r];
            uint64_t bit = 1ull << (i & 63);
            if ((a->fixed1[i >> 6] | mine[i >> 6]) & bit) continue;
            int cont = p->last_end != -1 && i == p->last_end;
            if (cont || others < BEAM) {    /* the rest cannot reach the next beam */
                others += !cont;
                mpath q = *p;
                q.m12 += 2;
                if (q.last_end != -1 && i != q.last_end) q.chunks++;
                q.idx = current + 1;
                q.last_end = i + 1;
                q.moved = 0;
                q.lazy_i = i;
                q.lazy_j = current;
                a->ref[p->slot]++;
                push_next(a, q);
            }
            p->distance += (uint32_t)abs(current - i);
        }
        a->work += a->gstart[g + 1] - a->gstart[g];
    }
    if (p->last_end != -1) { p->chunks++; p->last_end = -1; }
    p->idx++;
    p->moved = 1;
    push_next(a, *p);
}

/* The beam search; 0 with a->match filled, or -1 when it ran past the budget. */
static int resolve(aligner *a)
{
    a->nnext = 0;
    a->nslot = a->nfree = a->nnode = 0;
    a->work = 0;
    int s0 = slot_alloc(a);
    memset(a->bits, 0, (size_t)a->W * sizeof(uint64_t));
    push_next(a, (mpath){ 0, 0, 0, -1, 0, s0, -1, -1, -1, 0 });
    for (int current = 0; current <= a->n2; current++) {
        mpath *t = a->cur; a->cur = a->next; a->next = t;
        size_t tc = a->cap_cur; a->cap_cur = a->cap_next; a->cap_next = tc;
        a->ncur = a->nnext;
        a->nnext = 0;
        sort_list(a, a->cur, a->ncur);
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
            if (!a->cur[rank].moved) slot_release(a, a->cur[rank].slot);
        if (a->work > WORK_BUDGET) return -1;
    }
    sort_list(a, a->next, a->nnext);
    const mpath *best = &a->next[0];
    for (int j = 0; j < a->n2; j++) a->match[j] = a->fixed[j];
    if (best->lazy_i >= 0) a->match[best->lazy_j] = best->lazy_i;
    for (int n = best->node; n >= 0; n = a->node[n].prev) a->match[a->node[n].j] = a->node[n].i;
    return 0;
}

/* The fallback past the budget: left to right, each reference word takes
 * the hypothesis word that continues the current chunk when it is free,
 * else the first free word of its key; O(n1 + n2) after the grouping. */
static void align_greedy(aligner *a)
{
    int *next_free = a->gcount2;   /* reused: per group, the first position not yet taken */
    for (int g = 0; g < a->ngroups; g++) next_free[g] = a->gstart[g];
    for (int i = 0; i < a->n1; i++) a->used1[i] = (a->fixed1[i >> 6] >> (i & 63)) & 1;
    int last_end = -1;
    for (int j = 0; j < a->n2; j++) {
        int i = a->fixed[j], g = a->gid2[j];
        if (i < 0 && g >= 0) {
            if (last_end >= 0 && last_end < a->n1 && a->k1[last_end] == a->k2[j] && !a->used1[last_end]) {
                i = last_end;
            } else {
                while (next_free[g] < a->gstart[g + 1] && a->used1[a->pos[next_free[g]]]) next_free[g]++;
                if (next_free[g] < a->gstart[g + 1]) i = a->pos[next_free[g]];
            }
            if (i >= 0) a->used1[i] = 1;
        }
        a->match[j] = i;
        last_end = i >= 0 ? i + 1 : -1;
    }
}

/* Sizes the per-pair arrays for lengths n1, n2 (arrays of one length grow
 * together, sharing a capacity). */
static void aligner_reserve(aligner *a, int n1, int n2)
{
    a->n1 = n1;
    a->n2 = n2;
    a->W = (n1 + 63) / 64 + 1;
    if ((size_t)n1 + 2 > a->cap1) {
        a->cap1 = 2 * ((size_t)n1 + 2);
        a->k1 = xrealloc(a->k1, a->cap1 * sizeof(uint32_t), "METEOR words");
        a->pos = xrealloc(a->pos, a->cap1 * sizeof(int), "METEOR words");
        a->used1 = xrealloc(a->used1, a->cap1, "METEOR words");
        a->gstart = xrealloc(a->gstart, a->cap1 * sizeof(int), "METEOR words");
        a->gcount2 = xrealloc(a->gcount2, a->cap1 * sizeof(int), "METEOR words");
        a->gkey = xrealloc(a->gkey, a->cap1 * sizeof(uint32_t), "METEOR words");
        a->fixed1 = xrealloc(a->fixed1, (a->cap1 / 64 + 2) * sizeof(uint64_t), "METEOR words");
    }
    if ((size_t)n2 + 1 > a->cap2) {
        a->cap2 = 2 * ((size_t)n2 + 1);
        a->k2 = xrealloc(a->k2, a->cap2 * sizeof(uint32_t), "METEOR words");
        a->gid2 = xrealloc(a->gid2, a->cap2 * sizeof(int), "METEOR words");
        a->fixed = xrealloc(a->fixed, a->cap2 * sizeof(int), "METEOR words");
        a->match = xrealloc(a->match, a->cap2 * sizeof(int), "METEOR words");
    }
}

/* Statistics of one hypothesis/reference pair; *greedy set when the pair
 * was past the search budget. */
static meteor_stats align_pair(aligner *a, const word_info *w, const int32_t *hyp, int n1,
                               const int32_t *ref, int n2, int *greedy)
{
    aligner_reserve(a, n1, n2);
    for (int i = 0; i < n1; i++) a->k1[i] = w->key[hyp[i]];
    for (int j = 0; j < n2; j++) a->k2[j] = w->key[ref[j]];
    find_matches(a);
    *greedy = resolve(a) < 0;
    if (*greedy) align_greedy(a);
    const int *match = a->match;

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
    free(a->k1); free(a->k2); free(a->pos); free(a->gstart); free(a->gcount2); free(a->gkey); free(a->gid2);
    free(a->fixed); free(a->fixed1); free(a->bits); free(a->ref); free(a->free_slots); free(a->node);
    free(a->cur); free(a->next); free(a->tmp); free(a->match); free(a->used1);
}

/* Best reference of one item: the first with the highest score.  *greedy
 * counts the pairs aligned by the fallback. */
static meteor_stats item_stats(const secap_corpus *c, const word_info *w, aligner *a, int item, double *score,
                               int *greedy)
{
    int h = c->hyp[item];
    meteor_stats best = {0};
    double best_score = -1;
    *greedy = 0;
    for (int r = 0; r < c->nref[item]; r++) {
        int s = c->ref0[item] + r, g;
        meteor_stats st = align_pair(a, w, sent_tok(c, h), c->len[h], sent_tok(c, s), c->len[s], &g);
        *greedy += g;
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
    int *greedy = secap_xmalloc((size_t)c->n * sizeof *greedy + 1, "METEOR flags");
    #pragma omp parallel
    {
        aligner a;
        memset(&a, 0, sizeof a);
        #pragma omp for schedule(dynamic, 16)
        for (int item = 0; item < c->n; item++) st[item] = item_stats(c, &w, &a, item, &score[item], &greedy[item]);
        aligner_free(&a);
    }
    meteor_stats total = {0};
    int ngreedy = 0, first = -1;
    for (int item = 0; item < c->n; item++) {
        stats_add(&total, &st[item]);
        if (per_item) per_item[item].meteor = score[item];
        if (greedy[item] && first < 0) first = item;
        ngreedy += greedy[item];
    }
    if (ngreedy)
        fprintf(stderr, "secap: METEOR: %d hypothesis/reference pair%s (first: id \"%s\") too long and repetitive for "
                "the alignment search (over %lld steps) were aligned greedily; the COCO toolkit runs out of memory "
                "on such pairs\n", ngreedy, ngreedy == 1 ? "" : "s", c->ids.str[first], (long long)WORK_BUDGET);
    free(greedy);
    *corpus = meteor_score(&total);
    free(st); free(score); free(w.key); free(w.func);
}
