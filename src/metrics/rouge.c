/* ROUGE-L as pycocoevalcap's Rouge: for each reference the LCS length gives
 * precision lcs/|hyp| and recall lcs/|ref|; with P, R the maxima over the
 * references, score = (1 + b^2) P R / (R + b^2 P), b = 1.2 (0 if P or R is 0).
 * Corpus score = mean over items.
 * The toolkit splits on " ", so an empty sentence is one empty token: it has
 * length 1 and matches only another empty sentence. */
#include "metrics_internal.h"

#include <stdlib.h>

#include "secap/base.h"

static const double BETA = 1.2;

/* LCS length of a[0..na) and b[0..nb); row: [nb + 1] scratch. */
static int lcs(const int32_t *a, int na, const int32_t *b, int nb, int *row)
{
    if (na == 0 && nb == 0) return 1;
    for (int j = 0; j <= nb; j++) row[j] = 0;
    for (int i = 0; i < na; i++) {
        int diag = 0;
        for (int j = 1; j <= nb; j++) {
            int up = row[j];
            row[j] = a[i] == b[j - 1] ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
            diag = up;
        }
    }
    return row[nb];
}

static double item_rouge(const secap_corpus *c, int item, int *row)
{
    int h = c->hyp[item], nh = c->len[h];
    double pmax = 0, rmax = 0;
    for (int r = 0; r < c->nref[item]; r++) {
        int s = c->ref0[item] + r, nr = c->len[s];
        int l = lcs(sent_tok(c, s), nr, sent_tok(c, h), nh, row);
        double p = l / (double)(nh ? nh : 1), rec = l / (double)(nr ? nr : 1);
        if (r == 0 || p > pmax) pmax = p;
        if (r == 0 || rec > rmax) rmax = rec;
    }
    if (pmax == 0 || rmax == 0) return 0.0;
    return ((1 + BETA * BETA) * pmax * rmax) / (rmax + BETA * BETA * pmax);
}

void secap_rouge_l(const secap_corpus *c, double *corpus, secap_scores *per_item)
{
    int maxlen = 0;
    for (int s = 0; s < c->nsent; s++) if (c->len[s] > maxlen) maxlen = c->len[s];
    double *score = secap_xmalloc((size_t)c->n * sizeof *score, "ROUGE-L scores");
    #pragma omp parallel
    {
        int *row = secap_xmalloc(((size_t)maxlen + 1) * sizeof *row, "ROUGE-L row");
        #pragma omp for schedule(dynamic, 64)
        for (int item = 0; item < c->n; item++) score[item] = item_rouge(c, item, row);
        free(row);
    }
    double sum = 0;
    for (int item = 0; item < c->n; item++) {
        sum += score[item];
        if (per_item) per_item[item].rouge_l = score[item];
    }
    *corpus = c->n ? sum / c->n : 0.0;
    free(score);
}
