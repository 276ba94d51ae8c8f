/* BLEU-1..4 as pycocoevalcap's BleuScorer.compute_score(option='closest').
 *
 * Per item: correct[k] = sum over hypothesis k-grams of min(count, max count
 * in any one reference); guess[k] = max(0, len - k + 1); reflen = the
 * reference length closest to the hypothesis length (ties: the shorter).
 * Score_k = (prod_{j<=k} (correct_j + tiny) / (guess_j + small))^(1/k), times
 * exp(1 - 1/ratio) when ratio = (testlen + tiny) / (reflen + small) < 1, with
 * tiny = 1e-15, small = 1e-9.  The corpus score applies the same formula to
 * the sums over items (it is not a mean of item scores).
 */
#include "metrics_internal.h"

#include <math.h>
#include <stdlib.h>

#include "secap/base.h"

static const double TINY = 1e-15, SMALL = 1e-9;

typedef struct {
    long correct[4], guess[4];
    long testlen, reflen;
} bleu_counts;

/* The toolkit's min over (|l - testlen|, l) pairs. */
static int closest_reflen(const secap_corpus *c, int item, int testlen)
{
    int best = -1;
    for (int r = 0; r < c->nref[item]; r++) {
        int l = c->len[c->ref0[item] + r];
        if (best < 0 || abs(l - testlen) < abs(best - testlen) ||
            (abs(l - testlen) == abs(best - testlen) && l < best))
            best = l;
    }
    return best;
}

/* maxref: [nids] scratch, valid where stamp[id] == item. */
static bleu_counts item_counts(const secap_corpus *c, const secap_ngrams *g, int item,
                               int32_t *maxref, int *stamp)
{
    for (int r = 0; r < c->nref[item]; r++) {
        int s = c->ref0[item] + r;
        for (size_t k = g->off[s]; k < g->off[s + 1]; k++) {
            uint32_t id = g->cnt[k].id;
            if (stamp[id] != item) { stamp[id] = item; maxref[id] = 0; }
            if (g->cnt[k].count > maxref[id]) maxref[id] = g->cnt[k].count;
        }
    }
    bleu_counts bc = {{0}, {0}, 0, 0};
    int h = c->hyp[item];
    for (size_t k = g->off[h]; k < g->off[h + 1]; k++) {
        uint32_t id = g->cnt[k].id;
        int32_t ref = stamp[id] == item ? maxref[id] : 0;
        int32_t cnt = g->cnt[k].count;
        bc.correct[g->order[id] - 1] += cnt < ref ? cnt : ref;
    }
    bc.testlen = c->len[h];
    bc.reflen = closest_reflen(c, item, c->len[h]);
    for (int n = 0; n < 4; n++) bc.guess[n] = bc.testlen - n > 0 ? bc.testlen - n : 0;
    return bc;
}

/* The toolkit's formula, for one item's counts or the corpus sums. */
static void bleu_from_counts(const bleu_counts *bc, double out[4])
{
    double bleu = 1.0;
    for (int k = 0; k < 4; k++) {
        bleu *= ((double)bc->correct[k] + TINY) / ((double)bc->guess[k] + SMALL);
        out[k] = pow(bleu, 1.0 / (k + 1));
    }
    double ratio = ((double)bc->testlen + TINY) / ((double)bc->reflen + SMALL);
    if (ratio < 1)
        for (int k = 0; k < 4; k++) out[k] *= exp(1 - 1 / ratio);
}

void secap_bleu(const secap_corpus *c, const secap_ngrams *g, double corpus[4], secap_scores *per_item)
{
    int32_t *maxref = secap_xmalloc((size_t)g->nids * sizeof *maxref, "BLEU reference counts");
    int *stamp = secap_xmalloc((size_t)g->nids * sizeof *stamp, "BLEU scratch");
    for (int i = 0; i < g->nids; i++) stamp[i] = -1;
    bleu_counts total = {{0}, {0}, 0, 0};
    for (int item = 0; item < c->n; item++) {
        bleu_counts bc = item_counts(c, g, item, maxref, stamp);
        if (per_item) bleu_from_counts(&bc, per_item[item].bleu);
        for (int k = 0; k < 4; k++) { total.correct[k] += bc.correct[k]; total.guess[k] += bc.guess[k]; }
        total.testlen += bc.testlen;
        total.reflen += bc.reflen;
    }
    bleu_from_counts(&total, corpus);
    free(maxref);
    free(stamp);
}
