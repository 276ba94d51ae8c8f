/* CIDEr-D as pycocoevalcap's CiderScorer (sigma 6, clipping, x10).
 *
 * Document frequency df(g) = number of items whose references contain n-gram
 * g; ref_len = log(number of items).  A sentence becomes, for each n, the
 * vector v(g) = tf(g) * (ref_len - log(max(1, df(g)))) with its 2-norm, and a
 * "length" that (as in the toolkit) counts its bigrams.  Against one reference:
 *   val_n = sum_g min(v_hyp(g), v_ref(g)) * v_ref(g) / (|v_hyp| |v_ref|)
 *           (no division when a norm is 0), times exp(-(dlen^2) / (2 sigma^2)).
 * Item score = 10 * mean_n(sum over references of val_n) / #references;
 * corpus score = mean over items.
 */
#include "metrics_internal.h"

#include <math.h>
#include <stdlib.h>

#include "secap/base.h"

static const double SIGMA = 6.0;

/* One sentence as TF-IDF vectors: weights follow the sentence's counts. */
typedef struct {
    double norm[4];
    int length;      /* bigram count (the toolkit's "length") */
} tfidf_info;

static tfidf_info sentence_tfidf(const secap_ngrams *g, int s, const double *idf_term, double *w)
{
    tfidf_info t = {{0, 0, 0, 0}, 0};
    for (size_t k = g->off[s]; k < g->off[s + 1]; k++) {
        uint32_t id = g->cnt[k].id;
        int n = g->order[id] - 1;
        w[k - g->off[s]] = (double)g->cnt[k].count * idf_term[id];
        t.norm[n] += pow(w[k - g->off[s]], 2);
        if (n == 1) t.length += g->cnt[k].count;
    }
    for (int n = 0; n < 4; n++) t.norm[n] = sqrt(t.norm[n]);
    return t;
}

/* idf_term[id] = ref_len - log(max(1, df[id])). */
static double *idf_terms(const secap_corpus *c, const secap_ngrams *g)
{
    int *df = secap_xcalloc((size_t)g->nids, sizeof *df, "CIDEr document frequencies");
    int *stamp = secap_xmalloc((size_t)g->nids * sizeof *stamp, "CIDEr scratch");
    for (int i = 0; i < g->nids; i++) stamp[i] = -1;
    for (int item = 0; item < c->n; item++)
        for (int r = 0; r < c->nref[item]; r++) {
            int s = c->ref0[item] + r;
            for (size_t k = g->off[s]; k < g->off[s + 1]; k++) {
                uint32_t id = g->cnt[k].id;
                if (stamp[id] != item) { stamp[id] = item; df[id]++; }
            }
        }
    double ref_len = log((double)c->n);
    double *idf = secap_xmalloc((size_t)g->nids * sizeof *idf, "CIDEr idf");
    for (int i = 0; i < g->nids; i++) idf[i] = ref_len - log(df[i] > 1 ? (double)df[i] : 1.0);
    free(df);
    free(stamp);
    return idf;
}

typedef struct {
    double *idf;       /* [nids] */
    double *wref;      /* [nids] reference weights, valid where stamp == tag */
    int *stamp;        /* [nids] */
    double *wh, *wr;   /* [max sentence counts] scratch weights */
    int tag;
} cider_ctx;

static void sim(const secap_ngrams *g, cider_ctx *x, int h, const tfidf_info *th, int r, double val[4])
{
    tfidf_info tr = sentence_tfidf(g, r, x->idf, x->wr);
    x->tag++;
    for (size_t k = g->off[r]; k < g->off[r + 1]; k++) {
        x->stamp[g->cnt[k].id] = x->tag;
        x->wref[g->cnt[k].id] = x->wr[k - g->off[r]];
    }
    double v[4] = {0, 0, 0, 0};
    for (size_t k = g->off[h]; k < g->off[h + 1]; k++) {
        uint32_t id = g->cnt[k].id;
        double vh = x->wh[k - g->off[h]], vr = x->stamp[id] == x->tag ? x->wref[id] : 0.0;
        v[g->order[id] - 1] += (vh < vr ? vh : vr) * vr;
    }
    double delta = (double)(th->length - tr.length);
    for (int n = 0; n < 4; n++) {
        if (th->norm[n] != 0 && tr.norm[n] != 0) v[n] /= th->norm[n] * tr.norm[n];
        v[n] *= pow(M_E, -(delta * delta) / (2 * SIGMA * SIGMA));
        val[n] += v[n];
    }
}

static double item_cider(const secap_corpus *c, const secap_ngrams *g, cider_ctx *x, int item)
{
    int h = c->hyp[item];
    tfidf_info th = sentence_tfidf(g, h, x->idf, x->wh);
    double score[4] = {0, 0, 0, 0};
    for (int r = 0; r < c->nref[item]; r++) sim(g, x, h, &th, c->ref0[item] + r, score);
    double avg = (score[0] + score[1] + score[2] + score[3]) / 4;
    avg /= c->nref[item];
    return avg * 10.0;
}

void secap_cider(const secap_corpus *c, const secap_ngrams *g, double *corpus, secap_scores *per_item)
{
    size_t maxcnt = 1;
    for (int s = 0; s < c->nsent; s++)
        if (g->off[s + 1] - g->off[s] > maxcnt) maxcnt = g->off[s + 1] - g->off[s];
    cider_ctx x = {
        .idf = idf_terms(c, g),
        .wref = secap_xmalloc((size_t)g->nids * sizeof(double), "CIDEr reference weights"),
        .stamp = secap_xcalloc((size_t)g->nids, sizeof(int), "CIDEr scratch"),
        .wh = secap_xmalloc(maxcnt * sizeof(double), "CIDEr weights"),
        .wr = secap_xmalloc(maxcnt * sizeof(double), "CIDEr weights"),
        .tag = 0,
    };
    double sum = 0;
    for (int item = 0; item < c->n; item++) {
        double s = item_cider(c, g, &x, item);
        if (per_item) per_item[item].cider = s;
        sum += s;
    }
    *corpus = c->n ? sum / c->n : 0.0;
    free(x.idf); free(x.wref); free(x.stamp); free(x.wh); free(x.wr);
}
