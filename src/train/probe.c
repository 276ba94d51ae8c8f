/* Stage-1 dev probes (issue 9, "Evidence that it learns"): computed at every
 * eval.every of stage qformer, right after the dev loss, and written into
 * metrics.jsonl and the log line.
 *
 * The probe set: the dev split's clips in the dev loader's order (the same
 * order every evaluation), the first eval.probe_clips of them (0: all).  For
 * each clip i, with the models in eval mode (no dropout, no gradients):
 *   q_i = speech_proj(mean_Q Q-Former query output)   Q-embedding  [E]
 *   k_i = text_proj(text mode(captions[0])[CLS])      C-embedding  [E]
 *         (the clip's first caption: its paired caption)
 *   t_i = text_proj(text mode(transcript)[CLS])       T-embedding  [E]
 *   y_i = the clip's emotion label (-1: none)
 * and the hat  ^  means the row L2-normalised.  N clips.
 *
 * 1. Speech -> caption retrieval recall@K (K = 1, 5): a clip is a hit when
 *    its own caption ranks among the top K of all N captions by cosine
 *    similarity with its Q-embedding:
 *      hit_i = #{ j : g_j != g_i, ^q_i . ^k_j >= ^q_i . ^k_i } < K
 *    where g groups clips whose caption texts are equal (a clip whose
 *    caption is the same text as clip i's is not a competitor; ties with a
 *    different caption count against the clip).  recall@K = mean_i hit_i.
 *    Chance (random scores): mean_i min(1, K / (1 + #{ j : g_j != g_i })),
 *    i.e. K/N when every caption is distinct.
 * 2. Emotion centroid probe: per class c, m_c = normalise(mean of ^k_i over
 *    the probe clips with y_i = c) (the centroids come from the dev
 *    captions' C-embeddings); clip i is predicted argmax_c ^q_i . m_c;
 *    accuracy over the labelled clips (NAN when none).  Chance: the largest
 *    class's share (majority), printed in the log line.
 * 3. vCLUB estimate on dev: the bound U of SECAP.md section 3, full variant,
 *    over all N (q, t) pairs at once with the current estimator:
 *      U = 1/(2N) sum_i sum_d [ mean_j (mu_id - t_jd)^2 - (mu_id - t_id)^2 ] / var_id
 *    (the estimator trains also with loss.w_mi = 0 when loss.mi_monitor =
 *    true, on detached embeddings, so both settings can be compared).
 * 4. Transcript probe: how well Q-embeddings identify their clip's
 *    transcript.  A ridge-regression map from ^q to ^t is fitted on the
 *    probe clips of even position (0, 2, 4, ...) and evaluated on the odd
 *    ones:  W = (Xc^T Xc + lambda I)^-1 Xc^T Yc  (Xc, Yc the centred rows of
 *    ^q and ^t of the fitting clips, lambda = 1), prediction
 *    p_i = (^q_i - mean_x) W + mean_y; recall@1 of the held-out clips'
 *    transcripts as in 1 (p_i against the held-out ^t_j, groups by equal
 *    transcript text).  With w_mi > 0 the model is pushed to make q carry
 *    less about t: the issue expects this probe to do worse than with
 *    w_mi = 0.
 * All probes leave the RNG streams, the dev loader's position (the next
 * evaluation resets it) and the model state as they were. */
#include "train_internal.h"

#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* rows of x [n, e] L2-normalised into y (y may be x). */
static void normalise_rows(const float *x, float *y, int n, int e)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < e; d++) s += (double)x[(size_t)i * e + d] * x[(size_t)i * e + d];
        double r = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (int d = 0; d < e; d++) y[(size_t)i * e + d] = (float)(x[(size_t)i * e + d] * r);
    }
}

static double dot(const float *a, const float *b, int e)
{
    double s = 0;
    for (int d = 0; d < e; d++) s += (double)a[d] * b[d];
    return s;
}

double secap_probe_recall(const float *q, const float *k, const int *group, int n, int e, int K, double *chance)
{
    SECAP_CHECK(n >= 1 && e >= 1 && K >= 1, "probe_recall: n %d, e %d, K %d must be >= 1", n, e, K);
    float *qn = secap_xmalloc((size_t)n * e * sizeof *qn, "probe q"), *kn = secap_xmalloc((size_t)n * e * sizeof *kn, "probe k");
    normalise_rows(q, qn, n, e);
    normalise_rows(k, kn, n, e);
    double hits = 0, ch = 0;
    for (int i = 0; i < n; i++) {
        const float *qi = qn + (size_t)i * e;
        double own = dot(qi, kn + (size_t)i * e, e);
        int better = 0, rivals = 0;
        for (int j = 0; j < n; j++) {
            if (j == i || (group && group[j] == group[i])) continue;
            rivals++;
            better += dot(qi, kn + (size_t)j * e, e) >= own;
        }
        hits += better < K;
        ch += fmin(1.0, (double)K / (double)(1 + rivals));
    }
    free(qn);
    free(kn);
    if (chance) *chance = ch / n;
    return hits / n;
}

double secap_probe_centroid(const float *q, const float *k, const int *label, int n, int e, double *majority)
{
    int nc = 0, nl = 0;
    for (int i = 0; i < n; i++) {
        if (label[i] + 1 > nc) nc = label[i] + 1;
        nl += label[i] >= 0;
    }
    if (majority) *majority = NAN;
    if (!nl) return NAN;
    double *m = secap_xcalloc((size_t)nc * e, sizeof *m, "probe centroids");
    int *cnt = secap_xcalloc((size_t)nc, sizeof *cnt, "probe class counts");
    float *qn = secap_xmalloc((size_t)n * e * sizeof *qn, "probe q"), *kn = secap_xmalloc((size_t)n * e * sizeof *kn, "probe k");
    normalise_rows(q, qn, n, e);
    normalise_rows(k, kn, n, e);
    for (int i = 0; i < n; i++) {
        if (label[i] < 0) continue;
        cnt[label[i]]++;
        for (int d = 0; d < e; d++) m[(size_t)label[i] * e + d] += kn[(size_t)i * e + d];
    }
    int big = 0;
    for (int c = 0; c < nc; c++) {
        if (cnt[c] > big) big = cnt[c];
        double s = 0;
        for (int d = 0; d < e; d++) s += m[(size_t)c * e + d] * m[(size_t)c * e + d];
        for (int d = 0; d < e; d++) m[(size_t)c * e + d] = s > 0 ? m[(size_t)c * e + d] / sqrt(s) : 0;
    }
    int right = 0;
    for (int i = 0; i < n; i++) {
        if (label[i] < 0) continue;
        int best = -1;
        double bs = -INFINITY;
        for (int c = 0; c < nc; c++) {
            if (!cnt[c]) continue;
            double s = 0;
            for (int d = 0; d < e; d++) s += qn[(size_t)i * e + d] * m[(size_t)c * e + d];
            if (s > bs) { bs = s; best = c; }   /* ties: the lower class id */
        }
        right += best == label[i];
    }
    free(m); free(cnt); free(qn); free(kn);
    if (majority) *majority = (double)big / nl;
    return (double)right / nl;
}

/* Solves A x = b in place for a symmetric positive definite A [e, e]
 * (Cholesky), for nb right-hand sides b [e, nb]; returns 0 when A is not
 * positive definite. */
static int cholesky_solve(double *A, double *b, int e, int nb)
{
    for (int j = 0; j < e; j++) {
        double s = A[(size_t)j * e + j];
        for (int p = 0; p < j; p++) s -= A[(size_t)j * e + p] * A[(size_t)j * e + p];
        if (!(s > 0)) return 0;
        double l = sqrt(s);
        A[(size_t)j * e + j] = l;
        for (int i = j + 1; i < e; i++) {
            double v = A[(size_t)i * e + j];
            for (int p = 0; p < j; p++) v -= A[(size_t)i * e + p] * A[(size_t)j * e + p];
            A[(size_t)i * e + j] = v / l;
        }
    }
    for (int c = 0; c < nb; c++) {
        for (int i = 0; i < e; i++) {   /* L y = b */
            double v = b[(size_t)i * nb + c];
            for (int p = 0; p < i; p++) v -= A[(size_t)i * e + p] * b[(size_t)p * nb + c];
            b[(size_t)i * nb + c] = v / A[(size_t)i * e + i];
        }
        for (int i = e - 1; i >= 0; i--) {   /* L^T x = y */
            double v = b[(size_t)i * nb + c];
            for (int p = i + 1; p < e; p++) v -= A[(size_t)p * e + i] * b[(size_t)p * nb + c];
            b[(size_t)i * nb + c] = v / A[(size_t)i * e + i];
        }
    }
    return 1;
}

double secap_probe_ridge_recall(const float *q, const float *t, const int *group, int n, int e, double lambda,
                                double *chance)
{
    SECAP_CHECK(n >= 2 && e >= 1 && lambda > 0, "probe_ridge_recall: need n >= 2 (got %d), e >= 1 (%d), lambda > 0 "
                "(%g) (hint: the probe needs 2 or more dev clips)", n, e, lambda);
    int nf = (n + 1) / 2, ne = n / 2;
    float *qn = secap_xmalloc((size_t)n * e * sizeof *qn, "probe q"), *tn = secap_xmalloc((size_t)n * e * sizeof *tn, "probe t");
    normalise_rows(q, qn, n, e);
    normalise_rows(t, tn, n, e);
    double *mx = secap_xcalloc((size_t)e, sizeof *mx, "ridge"), *my = secap_xcalloc((size_t)e, sizeof *my, "ridge");
    for (int i = 0; i < n; i += 2)
        for (int d = 0; d < e; d++) {
            mx[d] += qn[(size_t)i * e + d] / nf;
            my[d] += tn[(size_t)i * e + d] / nf;
        }
    double *A = secap_xcalloc((size_t)e * e, sizeof *A, "ridge"), *W = secap_xcalloc((size_t)e * e, sizeof *W, "ridge");
    for (int i = 0; i < n; i += 2)
        for (int a = 0; a < e; a++) {
            double xa = qn[(size_t)i * e + a] - mx[a];
            for (int b = 0; b < e; b++) {
                A[(size_t)a * e + b] += xa * (qn[(size_t)i * e + b] - mx[b]);
                W[(size_t)a * e + b] += xa * (tn[(size_t)i * e + b] - my[b]);
            }
        }
    for (int a = 0; a < e; a++) A[(size_t)a * e + a] += lambda;
    int ok = cholesky_solve(A, W, e, e);
    SECAP_CHECK(ok, "probe_ridge_recall: the ridge system is not positive definite (hint: non-finite embeddings)");
    float *p = secap_xmalloc((size_t)ne * e * sizeof *p, "ridge"), *te = secap_xmalloc((size_t)ne * e * sizeof *te, "ridge");
    int *ge = secap_xmalloc((size_t)ne * sizeof *ge, "ridge");
    for (int h = 0; h < ne; h++) {
        int i = 2 * h + 1;
        for (int b = 0; b < e; b++) {
            double v = my[b];
            for (int a = 0; a < e; a++) v += (qn[(size_t)i * e + a] - mx[a]) * W[(size_t)a * e + b];
            p[(size_t)h * e + b] = (float)v;
        }
        memcpy(te + (size_t)h * e, tn + (size_t)i * e, (size_t)e * sizeof *te);
        ge[h] = group ? group[i] : i;
    }
    double r = secap_probe_recall(p, te, ge, ne, e, 1, chance);
    free(qn); free(tn); free(mx); free(my); free(A); free(W); free(p); free(te); free(ge);
    return r;
}

/* g[i] = the first index whose text equals text[i]. */
static void text_groups(const char *const *text, int n, int *g)
{
    for (int i = 0; i < n; i++) {
        g[i] = i;
        for (int j = 0; j < i; j++)
            if (!strcmp(text[i], text[j])) { g[i] = g[j]; break; }
    }
}

typedef struct {
    float *q, *k, *t;
    int *label, *cg, *tg;
    const char **cap, **tx;
} probe_set;

static void probe_set_free(void *p)
{
    probe_set *s = p;
    free(s->q); free(s->k); free(s->t); free(s->label); free(s->cg); free(s->tg); free(s->cap); free(s->tx);
}

int secap_train_probe(trainer *tr, secap_probe_result *r)
{
    memset(r, 0, sizeof *r);
    if (tr->no_dev || !tr->dev || !tr->qf) return 0;
    secap_ctx *c = tr->c;
    int *idx = NULL;
    int n = secap_split_indices(tr->d, SECAP_SPLIT_DEV, &idx);
    free(idx);
    if (tr->cfg.eval.probe_clips > 0 && n > tr->cfg.eval.probe_clips) n = tr->cfg.eval.probe_clips;
    if (n < 2) return 0;
    int E = secap_qformer_cfg(tr->qf)->embed_dim;
    probe_set s = { 0 };
    secap_cleanup cl;
    secap_cleanup_push(&cl, probe_set_free, &s);
    s.q = secap_xmalloc((size_t)n * E * sizeof(float), "probe q");
    s.k = secap_xmalloc((size_t)n * E * sizeof(float), "probe k");
    s.t = secap_xmalloc((size_t)n * E * sizeof(float), "probe t");
    s.label = secap_xmalloc((size_t)n * sizeof(int), "probe labels");
    s.cg = secap_xmalloc((size_t)n * sizeof(int), "probe groups");
    s.tg = secap_xmalloc((size_t)n * sizeof(int), "probe groups");
    s.cap = secap_xmalloc((size_t)n * sizeof(char *), "probe captions");
    s.tx = secap_xmalloc((size_t)n * sizeof(char *), "probe transcripts");

    secap_rng rr = tr->rng, cr = c->rng;
    int prev = secap_no_grad_begin(c);
    c->training = 0;
    secap_loader_set_state(tr->dev, (secap_loader_state){ 0, 0 });
    int got = 0, nb = secap_loader_batches(tr->dev);
    for (int bi = 0; bi < nb && got < n; bi++) {
        const secap_batch *b = secap_loader_next(tr->dev);
        int B = b->B < n - got ? b->B : n - got;
        int32_t frames[256];
        secap_tensor *a = secap_train_batch_features(tr, b, frames);
        secap_tensor *qo = secap_qformer_query(c, tr->qf, a, frames);
        secap_tensor *q = secap_qformer_speech_embed(c, tr->qf, qo, SECAP_QFORMER_POOL_MEAN);
        for (int i = 0; i < B; i++) {
            const secap_item *it = &tr->d->items[b->item[i]];
            s.cap[got + i] = it->n_captions ? it->captions[0] : "";
            s.tx[got + i] = it->transcript ? it->transcript : "";
            s.label[got + i] = it->label;
        }
        secap_tensor *k = secap_train_text_embed(tr, s.cap + got, B);
        secap_tensor *t = secap_train_text_embed(tr, s.tx + got, B);
        memcpy(s.q + (size_t)got * E, secap_f32(q), (size_t)B * E * sizeof(float));
        memcpy(s.k + (size_t)got * E, secap_f32(k), (size_t)B * E * sizeof(float));
        memcpy(s.t + (size_t)got * E, secap_f32(t), (size_t)B * E * sizeof(float));
        got += B;
        secap_ctx_reset(c);
    }
    n = got;
    /* 3. the vCLUB bound over all pairs */
    r->mi = NAN;
    if (tr->est) {
        secap_tensor *qt = secap_empty(c, 2, (int64_t[]){ n, E }), *tt = secap_empty(c, 2, (int64_t[]){ n, E });
        memcpy(secap_f32(qt), s.q, (size_t)n * E * sizeof(float));
        memcpy(secap_f32(tt), s.t, (size_t)n * E * sizeof(float));
        r->mi = secap_f32(secap_vclub_bound(c, tr->est, qt, tt, NULL))[0];
        secap_ctx_reset(c);
    }
    c->training = 1;
    secap_no_grad_end(c, prev);
    tr->rng = rr;
    c->rng = cr;

    text_groups(s.cap, n, s.cg);
    text_groups(s.tx, n, s.tg);
    r->n = n;
    r->r1 = secap_probe_recall(s.q, s.k, s.cg, n, E, 1, &r->chance1);
    r->r5 = secap_probe_recall(s.q, s.k, s.cg, n, E, 5, &r->chance5);
    r->centroid = secap_probe_centroid(s.q, s.k, s.label, n, E, &r->majority);
    r->tx_r1 = secap_probe_ridge_recall(s.q, s.t, s.tg, n, E, 1.0, &r->tx_chance);
    secap_cleanup_pop(&cl);
    probe_set_free(&s);
    return 1;
}

static void num(FILE *f, const char *key, double v)
{
    if (isfinite(v)) fprintf(f, ",\"%s\":%.9g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

void secap_train_probe_report(const trainer *tr, const secap_probe_result *r, FILE *mf, const char *sname)
{
    fprintf(mf, ",\"dev_probe_n\":%d", r->n);
    num(mf, "dev_r1", r->r1);
    num(mf, "dev_r5", r->r5);
    num(mf, "dev_r1_chance", r->chance1);
    num(mf, "dev_r5_chance", r->chance5);
    num(mf, "dev_emo_centroid", r->centroid);
    num(mf, "dev_emo_majority", r->majority);
    num(mf, "dev_mi", r->mi);
    num(mf, "dev_tx_r1", r->tx_r1);
    num(mf, "dev_tx_chance", r->tx_chance);
    fprintf(stderr, "%ssecap-train: %s step %lld: dev probes (%d clips): speech->caption R@1 %.3f (chance %.3f) R@5 "
            "%.3f (chance %.3f), emotion centroid %.3f (majority %.3f), vCLUB U %.4g, transcript R@1 %.3f (chance "
            "%.3f)\n", tr->bar ? "\n" : "", sname, (long long)tr->step, r->n, r->r1, r->chance1, r->r5, r->chance5,
            r->centroid, r->majority, r->mi, r->tx_r1, r->tx_chance);
}
