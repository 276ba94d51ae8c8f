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
 *    transcript (secap_probe_match, below, with the even probe positions
 *    0, 2, 4, ... fitting and the odd ones evaluated, y = ^t, lambda = 1):
 *    recall@1 and the matching AUC of the held-out clips' transcripts.
 *    With w_mi > 0 the model is pushed to make q carry less about t: the
 *    issue expects this probe to do worse than with w_mi = 0.
 *
 * Transcript matching (secap_probe_match; also bin/secap-probe, which fits
 * on one split and evaluates on others): rows x_i (speech embeddings) and
 * targets y_i (the transcripts' T-embeddings, or their bags of words from
 * secap_probe_bag), both L2-normalised (^).  A ridge map fitted on the
 * fitting rows F,
 *    W = (Xc^T Xc + lambda I)^-1 Xc^T Yc   (Xc, Yc: ^x, ^y of F centred),
 * predicts p_i = normalise((^x_i - mean_F ^x) W + mean_F ^y) for each
 * evaluated row i, scored against every evaluated row's target,
 * s_ij = p_i . ^y_j.  Row i's rivals R_i: the other evaluated rows j whose
 * text differs from i's (groups) and, with a length window w >= 0, whose
 * text length (basic tokens) is within w of i's (so that length alone
 * cannot match).  Per row with at least one rival:
 *    AUC_i = ( #{j in R_i : s_ij < s_ii} + 1/2 #{j in R_i : s_ij = s_ii} ) / |R_i|
 *    hit_i = [ no j in R_i with s_ij >= s_ii ]      (recall@1)
 * and the result is the mean of AUC_i (chance 0.5) with its standard
 * error sd(AUC_i)/sqrt(rows), the mean of hit_i, and the chance of
 * recall@1, mean_i 1 / (1 + |R_i|).  AUC is the probability that a clip's
 * own transcript outscores a random rival's: it sees small amounts of
 * content that recall@1 among hundreds of sentences cannot.
 *
 * Bag of words (secap_probe_bag): each transcript's BERT basic tokens (a
 * CJK character each, words split at spaces and punctuation), term
 * frequency times idf = ln(|F| / df), df counted over the fitting rows and
 * the terms with df >= min_count kept, the row L2-normalised.  A target
 * that does not depend on the model: T-embeddings come from the model's
 * own text mode, which stage 1 trains on captions only.
 * All probes leave the RNG streams, the dev loader's position (the next
 * evaluation resets it) and the model state as they were. */
#include "train_internal.h"

#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/berttok.h"
#include "secap/probe.h"
#include "secap/ops.h"

#include <cblas.h>
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

/* The rows of x [n, e] with sel[i] != 0, L2-normalised, into a new [m, e]. */
static float *pick_rows(const float *x, int n, int e, const unsigned char *sel, int m)
{
    float *o = secap_xmalloc((size_t)(m ? m : 1) * e * sizeof *o, "probe rows");
    for (int i = 0, k = 0; i < n; i++)
        if (sel[i]) normalise_rows(x + (size_t)i * e, o + (size_t)k++ * e, 1, e);
    return o;
}

void secap_probe_match(const float *x, const float *y, int n, int e, int v, const unsigned char *fit,
                       const unsigned char *eval, const int *group, const int *len, int len_window, double lambda,
                       double *auc_row, secap_probe_match_result *r)
{
    SECAP_CHECK(n >= 1 && e >= 1 && v >= 1 && lambda > 0, "probe_match: n %d, e %d, v %d must be >= 1 and lambda "
                "%g > 0", n, e, v, lambda);
    SECAP_CHECK(len_window < 0 || len, "probe_match: a length window (%d) needs the lengths", len_window);
    memset(r, 0, sizeof *r);
    int nf = 0, ne = 0;
    for (int i = 0; i < n; i++) {
        nf += fit[i] != 0;
        ne += eval[i] != 0;
        if (auc_row) auc_row[i] = NAN;
    }
    SECAP_CHECK(nf >= 1, "probe_match: no row to fit the map on (hint: the fitting split is empty)");
    r->nfit = nf;
    r->auc = r->auc_se = r->r1 = r->r1_chance = NAN;
    if (ne < 2) return;
    /* the map: centred fitting rows Xc [nf, e], Yc [nf, v];
     * W = (Xc^T Xc + lambda I)^-1 Xc^T Yc, in double for the solve */
    float *X = pick_rows(x, n, e, fit, nf), *Y = pick_rows(y, n, v, fit, nf);
    double *mx = secap_xcalloc((size_t)e, sizeof *mx, "ridge"), *my = secap_xcalloc((size_t)v, sizeof *my, "ridge");
    for (int i = 0; i < nf; i++) {
        for (int d = 0; d < e; d++) mx[d] += X[(size_t)i * e + d];
        for (int d = 0; d < v; d++) my[d] += Y[(size_t)i * v + d];
    }
    for (int d = 0; d < e; d++) mx[d] /= nf;
    for (int d = 0; d < v; d++) my[d] /= nf;
    for (int i = 0; i < nf; i++) {
        for (int d = 0; d < e; d++) X[(size_t)i * e + d] -= (float)mx[d];
        for (int d = 0; d < v; d++) Y[(size_t)i * v + d] -= (float)my[d];
    }
    float *G = secap_xmalloc((size_t)e * e * sizeof *G, "ridge"), *B = secap_xmalloc((size_t)e * v * sizeof *B, "ridge");
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, e, e, nf, 1.0f, X, e, X, e, 0.0f, G, e);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, e, v, nf, 1.0f, X, e, Y, v, 0.0f, B, v);
    free(X);
    free(Y);
    double *A = secap_xmalloc((size_t)e * e * sizeof *A, "ridge"), *W = secap_xmalloc((size_t)e * v * sizeof *W, "ridge");
    for (size_t k = 0; k < (size_t)e * e; k++) A[k] = G[k];
    for (int a = 0; a < e; a++) A[(size_t)a * e + a] += lambda;
    for (size_t k = 0; k < (size_t)e * v; k++) W[k] = B[k];
    int ok = cholesky_solve(A, W, e, v);
    SECAP_CHECK(ok, "probe_match: the ridge system is not positive definite (hint: non-finite embeddings)");
    for (size_t k = 0; k < (size_t)e * v; k++) B[k] = (float)W[k];
    free(A);
    free(W);
    free(G);
    /* predictions p_i = (^x_i - mean_x) W + mean_y for the evaluated rows,
     * normalised; scores S = ^p ^y^T [ne, ne] */
    float *Xe = pick_rows(x, n, e, eval, ne), *Ye = pick_rows(y, n, v, eval, ne);
    float *P = secap_xmalloc((size_t)ne * v * sizeof *P, "ridge"), *S = secap_xmalloc((size_t)ne * ne * sizeof *S, "ridge");
    for (int i = 0; i < ne; i++)
        for (int d = 0; d < e; d++) Xe[(size_t)i * e + d] -= (float)mx[d];
    for (int i = 0; i < ne; i++)
        for (int d = 0; d < v; d++) P[(size_t)i * v + d] = (float)my[d];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ne, v, e, 1.0f, Xe, e, B, v, 1.0f, P, v);
    normalise_rows(P, P, ne, v);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ne, ne, v, 1.0f, P, v, Ye, v, 0.0f, S, ne);
    free(Xe); free(Ye); free(P); free(B); free(mx); free(my);
    /* per evaluated row: its rivals, the AUC and recall@1 among them */
    int *row = secap_xmalloc((size_t)ne * sizeof *row, "probe rows");
    for (int i = 0, k = 0; i < n; i++)
        if (eval[i]) row[k++] = i;
    double sa = 0, sa2 = 0, hits = 0, ch = 0;
    int cnt = 0;
    for (int a = 0; a < ne; a++) {
        int i = row[a];
        float own = S[(size_t)a * ne + a];
        long below = 0, tied = 0, rivals = 0;
        for (int b = 0; b < ne; b++) {
            int j = row[b];
            if (j == i || (group && group[j] == group[i])) continue;
            if (len_window >= 0 && abs(len[j] - len[i]) > len_window) continue;
            float s = S[(size_t)a * ne + b];
            rivals++;
            below += s < own;
            tied += s == own;
        }
        if (!rivals) continue;
        double auc = ((double)below + 0.5 * (double)tied) / (double)rivals;
        if (auc_row) auc_row[i] = auc;
        sa += auc;
        sa2 += auc * auc;
        hits += below == rivals;   /* no rival scores at or above the own text */
        ch += 1.0 / (double)(1 + rivals);
        cnt++;
    }
    free(row);
    free(S);
    r->neval = cnt;
    if (!cnt) return;
    r->auc = sa / cnt;
    r->auc_se = cnt > 1 ? sqrt(fmax(0.0, (sa2 - sa * sa / cnt) / (cnt - 1)) / cnt) : NAN;
    r->r1 = hits / cnt;
    r->r1_chance = ch / cnt;
}

/* ---- bag-of-words targets ---- */

typedef struct {
    char *tok;
    int row;
} bag_tok;

typedef struct {
    bag_tok *t;
    int n, cap, row, count;
} bag_acc;

static void bag_emit(void *ctx, const char *tok, size_t len, int special)
{
    (void)special;
    bag_acc *a = ctx;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        bag_tok *t = realloc(a->t, (size_t)a->cap * sizeof *a->t);
        if (!t) secap_fatal("out of memory: probe tokens (%d)", a->cap);
        a->t = t;
    }
    char *s = secap_xmalloc(len + 1, "probe token");
    memcpy(s, tok, len);
    s[len] = 0;
    a->t[a->n++] = (bag_tok){ s, a->row };
    a->count++;
}

static int bag_cmp(const void *x, const void *y)
{
    const bag_tok *a = x, *b = y;
    int c = strcmp(a->tok, b->tok);
    return c ? c : (a->row > b->row) - (a->row < b->row);
}

float *secap_probe_bag(const char *const *text, int n, const unsigned char *fit, int min_count, int lower_case,
                       int *nterms, int *len)
{
    SECAP_CHECK(n >= 1 && min_count >= 1, "probe_bag: n %d and min_count %d must be >= 1", n, min_count);
    bag_acc a = { 0 };
    int nf = 0;
    for (int i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "transcript %d", i + 1);
        a.row = i;
        a.count = 0;
        secap_bert_basic(text[i], strlen(text[i]), lower_case, what, bag_emit, &a);
        if (len) len[i] = a.count;
        nf += fit[i] != 0;
    }
    if (a.n) qsort(a.t, (size_t)a.n, sizeof *a.t, bag_cmp);
    /* a term per distinct token with df >= min_count among the fitting rows */
    int *term = secap_xmalloc((size_t)(a.n ? a.n : 1) * sizeof *term, "probe terms");
    double *idf = secap_xmalloc((size_t)(a.n ? a.n : 1) * sizeof *idf, "probe idf");
    int v = 0;
    for (int s = 0, e; s < a.n; s = e) {
        int df = 0;
        for (e = s; e < a.n && !strcmp(a.t[e].tok, a.t[s].tok); e++)
            df += fit[a.t[e].row] && (e == s || a.t[e].row != a.t[e - 1].row);
        int id = df >= min_count ? v++ : -1;
        if (id >= 0) idf[id] = log((double)nf / df);
        for (int k = s; k < e; k++) term[k] = id;
    }
    float *y = secap_xcalloc((size_t)n * (v ? v : 1), sizeof *y, "probe bag");
    for (int k = 0; k < a.n; k++) {
        if (term[k] >= 0) y[(size_t)a.t[k].row * v + term[k]] += (float)idf[term[k]];
        free(a.t[k].tok);
    }
    if (v) normalise_rows(y, y, n, v);
    free(a.t);
    free(term);
    free(idf);
    *nterms = v;
    return y;
}

void secap_probe_text_groups(const char *const *text, int n, int *g)
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

    secap_probe_text_groups(s.cap, n, s.cg);
    secap_probe_text_groups(s.tx, n, s.tg);
    r->n = n;
    r->r1 = secap_probe_recall(s.q, s.k, s.cg, n, E, 1, &r->chance1);
    r->r5 = secap_probe_recall(s.q, s.k, s.cg, n, E, 5, &r->chance5);
    r->centroid = secap_probe_centroid(s.q, s.k, s.label, n, E, &r->majority);
    unsigned char *even = secap_xmalloc((size_t)n, "probe"), *odd = secap_xmalloc((size_t)n, "probe");
    for (int i = 0; i < n; i++) {
        even[i] = i % 2 == 0;
        odd[i] = i % 2 == 1;
    }
    secap_probe_match_result m;
    secap_probe_match(s.q, s.t, n, E, E, even, odd, s.tg, NULL, -1, 1.0, NULL, &m);
    free(even);
    free(odd);
    r->tx_r1 = m.r1;
    r->tx_chance = m.r1_chance;
    r->tx_auc = m.auc;
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
    num(mf, "dev_tx_auc", r->tx_auc);
    fprintf(stderr, "%ssecap-train: %s step %lld: dev probes (%d clips): speech->caption R@1 %.3f (chance %.3f) R@5 "
            "%.3f (chance %.3f), emotion centroid %.3f (majority %.3f), vCLUB U %.4g, transcript R@1 %.3f (chance "
            "%.3f) AUC %.3f (chance 0.5)\n", tr->bar ? "\n" : "", sname, (long long)tr->step, r->n, r->r1, r->chance1,
            r->r5, r->chance5, r->centroid, r->majority, r->mi, r->tx_r1, r->tx_chance, r->tx_auc);
}
