/* Text generation with the LLaMA decoder, Hugging Face `generate` semantics
 * (transformers 4.3x: GenerationMixin greedy / sample / beam search / beam
 * sample, BeamSearchScorer, BeamHypotheses, the logits processors).
 *
 * Rows.  A prefix row b is expanded to W decoding rows r = b * W + j
 * (W = num_beams for beams, else num_return_sequences), each with its own
 * KV-cache row.  The prefix is prefilled once (every row of b gets the same
 * keys); then each step feeds one token per live row.  seq_r is the id
 * context of row r: the prefix's ids when given (ctx_ids) followed by the
 * tokens generated so far; ng_r = number generated.
 *
 * Processors, on a score vector s [V] of row r (HF order):
 *   repetition_penalty p:  for each distinct token t in seq_r:
 *                          s_t = s_t < 0 ? s_t * p : s_t / p
 *   no_repeat_ngram_size n: every t with (seq_r[i .. i+n-2], t) an n-gram
 *                          of seq_r whose first n-1 tokens equal the last
 *                          n-1 of seq_r gets s_t = -inf (none while
 *                          |seq_r| + 1 < n)
 *   min_new_tokens m:      s_eos = -inf while ng_r < m
 * Warpers (sampling only), after the processors; k_min = 2 with beams, else 1:
 *   temperature T:         s = s / T
 *   top_k k:               s_t = -inf where s_t < the max(k, k_min)-th largest s
 *   top_p q (< 1):         sort ascending, c_i = cumulative softmax mass;
 *                          drop the tokens with c_i <= 1 - q, keeping the
 *                          k_min largest
 *
 * Greedy:    s = processors(logits); t = argmax s (first on ties).
 * Sampling:  s = warpers(processors(logits)); t ~ softmax(s).
 * The score of a greedy or sampled sequence is sum log softmax(logits)_t
 * (the model's own log-likelihood, EOS included).
 *
 * Beam search (BeamSearchScorer), for each prefix row, beams j = 0..W-1
 * with running scores S_j (S_0 = 0, S_j = -1e9 at the start so the first
 * step expands beam 0 only):
 *   c_{j,t} = processors(log_softmax(logits_j))_t + S_j    over all (j, t)
 *   beam search: the 2W largest c (sorted); beam sampling:
 *     c_{j,t} = warpers(processors(log_softmax(logits_j)))_t + S_j,
 *     2W draws without replacement from softmax over all (j, t) of c,
 *     sorted by c (descending).
 *   Walk the 2W candidates in order: an EOS candidate of rank < W closes
 *   its beam's sequence as a finished hypothesis (rank >= W: ignored); any
 *   other becomes the next beam (S = c) until W beams are taken.
 *   A hypothesis of n generated tokens (EOS counted; tokens stored without
 *   it) and summed log-prob c scores  c / n^length_penalty; each row keeps
 *   the W best (worst_score tracks the lowest kept, starting at 1e9).
 *   A row is done once it holds W hypotheses and
 *     early_stopping true:  always;
 *     false:  worst >= c_best / n^lp       (c_best the first candidate,
 *                                           n = ng + 1);
 *     never:  worst >= c_best / max_new_tokens^lp  when lp > 0, else as false.
 *   Done rows stop decoding.  At max_new_tokens the open beams of the rows
 *   not done join their hypotheses (score S_j / ng^lp, no EOS), and each
 *   row returns its num_return_sequences best hypotheses, best first.
 *
 * RNG: sequence s draws from secap_rng_seed_stream(seed, s) (beam sampling:
 * one stream per prefix row); uniforms are 53-bit doubles. */
#include "secap/generate.h"
#include "secap/base.h"
#include "secap/ops.h"
#include "secap/rng.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- config */

void secap_decode_config_default(secap_decode_config *d)
{
    memset(d, 0, sizeof *d);
    d->max_new_tokens = 64;
    d->min_new_tokens = 0;
    d->num_beams = 1;
    d->do_sample = 0;
    d->temperature = 1.0;
    d->top_k = 50;
    d->top_p = 1.0;
    d->repetition_penalty = 1.0;
    d->no_repeat_ngram_size = 0;
    d->length_penalty = 1.0;
    d->early_stopping = SECAP_EARLY_STOP_FALSE;
    d->num_return_sequences = 1;
    d->seed = 0;
}

static double dec_number(const char *key, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        secap_fatal("config decode.%s = '%s': not a number in [%g, %g] (hint: see README, Generation)", key, v, lo,
                    hi);
    return x;
}

static int dec_int(const char *key, const char *v, double lo, double hi)
{
    double x = dec_number(key, v, lo, hi);
    if (x != (double)(int)x)
        secap_fatal("config decode.%s = '%s': not an integer in [%g, %g]", key, v, lo, hi);
    return (int)x;
}

static int dec_bool(const char *key, const char *v)
{
    if (!strcasecmp(v, "true") || !strcmp(v, "1")) return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0")) return 0;
    secap_fatal("config decode.%s = '%s': not a boolean (true, false, 1 or 0)", key, v);
}

int secap_decode_config_set(void *cfg, const char *key, const char *value)
{
    secap_decode_config *d = cfg;
    if (!strncmp(key, "decode.", 7)) key += 7;   /* secap_ini_apply passes "section.key" */
    if (!strcmp(key, "max_new_tokens")) d->max_new_tokens = dec_int(key, value, 1, 1 << 20);
    else if (!strcmp(key, "min_new_tokens")) d->min_new_tokens = dec_int(key, value, 0, 1 << 20);
    else if (!strcmp(key, "num_beams")) d->num_beams = dec_int(key, value, 1, 1024);
    else if (!strcmp(key, "do_sample")) d->do_sample = dec_bool(key, value);
    else if (!strcmp(key, "temperature")) d->temperature = dec_number(key, value, 1e-6, 1e6);
    else if (!strcmp(key, "top_k")) d->top_k = dec_int(key, value, 0, 1 << 30);
    else if (!strcmp(key, "top_p")) d->top_p = dec_number(key, value, 1e-9, 1);
    else if (!strcmp(key, "repetition_penalty")) d->repetition_penalty = dec_number(key, value, 1e-6, 1e6);
    else if (!strcmp(key, "no_repeat_ngram_size")) d->no_repeat_ngram_size = dec_int(key, value, 0, 1 << 20);
    else if (!strcmp(key, "length_penalty")) d->length_penalty = dec_number(key, value, -1e6, 1e6);
    else if (!strcmp(key, "num_return_sequences")) d->num_return_sequences = dec_int(key, value, 1, 1024);
    else if (!strcmp(key, "seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(value, &end, 10);
        if (errno || end == value || *end || value[0] == '-')
            secap_fatal("config decode.seed = '%s': not an integer in [0, 2^64)", value);
        d->seed = (uint64_t)s;
    } else if (!strcmp(key, "early_stopping")) {
        if (!strcasecmp(value, "never")) d->early_stopping = SECAP_EARLY_STOP_NEVER;
        else if (!strcasecmp(value, "true") || !strcmp(value, "1")) d->early_stopping = SECAP_EARLY_STOP_TRUE;
        else if (!strcasecmp(value, "false") || !strcmp(value, "0")) d->early_stopping = SECAP_EARLY_STOP_FALSE;
        else secap_fatal("config decode.early_stopping = '%s': expected true, false or never", value);
    } else {
        return 1;
    }
    return 0;
}

void secap_decode_config_validate(const secap_decode_config *d, const char *where)
{
    const char *w = where ? where : "decode config";
    if (d->max_new_tokens < 1 || d->max_new_tokens > (1 << 20))
        secap_fatal("%s: max_new_tokens = %d must be in [1, 2^20]", w, d->max_new_tokens);
    if (d->min_new_tokens < 0 || d->min_new_tokens > d->max_new_tokens)
        secap_fatal("%s: min_new_tokens = %d must be in [0, max_new_tokens = %d]", w, d->min_new_tokens,
                    d->max_new_tokens);
    if (d->num_beams < 1 || d->num_beams > 1024) secap_fatal("%s: num_beams = %d must be in [1, 1024]", w, d->num_beams);
    if (d->do_sample != 0 && d->do_sample != 1) secap_fatal("%s: do_sample = %d must be 0 or 1", w, d->do_sample);
    if (!(d->temperature > 0 && d->temperature <= 1e6))
        secap_fatal("%s: temperature = %g must be in (0, 1e6] (hint: greedy decoding is do_sample = false)", w,
                    d->temperature);
    if (d->top_k < 0) secap_fatal("%s: top_k = %d must be >= 0 (0 = off)", w, d->top_k);
    if (!(d->top_p > 0 && d->top_p <= 1)) secap_fatal("%s: top_p = %g must be in (0, 1] (1 = off)", w, d->top_p);
    if (!(d->repetition_penalty > 0 && d->repetition_penalty <= 1e6))
        secap_fatal("%s: repetition_penalty = %g must be in (0, 1e6] (1 = off)", w, d->repetition_penalty);
    if (d->no_repeat_ngram_size < 0)
        secap_fatal("%s: no_repeat_ngram_size = %d must be >= 0 (0 = off)", w, d->no_repeat_ngram_size);
    if (!isfinite(d->length_penalty)) secap_fatal("%s: length_penalty = %g must be finite", w, d->length_penalty);
    if (d->early_stopping < 0 || d->early_stopping > 2)
        secap_fatal("%s: early_stopping = %d must be false (0), true (1) or never (2)", w, d->early_stopping);
    if (d->num_return_sequences < 1 || d->num_return_sequences > 1024)
        secap_fatal("%s: num_return_sequences = %d must be in [1, 1024]", w, d->num_return_sequences);
    if (d->num_beams == 1 && !d->do_sample && d->num_return_sequences != 1)
        secap_fatal("%s: greedy decoding returns one sequence, num_return_sequences = %d (hint: do_sample = true or "
                    "num_beams >= num_return_sequences)", w, d->num_return_sequences);
    if (d->num_beams > 1 && d->num_return_sequences > d->num_beams)
        secap_fatal("%s: num_return_sequences = %d exceeds num_beams = %d (a beam search keeps num_beams "
                    "hypotheses)", w, d->num_return_sequences, d->num_beams);
}

void secap_gen_result_free(secap_gen_result *r)
{
    if (!r) return;
    free(r->ids);
    free(r->len);
    free(r->eos);
    free(r->score);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------ consensus */

void secap_select_consensus(const float *sim, int n, int keep, int *idx)
{
    if (n < 1 || keep < 1 || keep > n)
        secap_fatal("select consensus: keep = %d of n = %d candidates (hint: keep in [1, n], SECap keeps 5 of 8)",
                    keep, n);
    double *mean = secap_xmalloc((size_t)n * sizeof *mean, "consensus means");
    int *ord = secap_xmalloc((size_t)n * sizeof *ord, "consensus order");
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) {
            float v = sim[(size_t)i * n + j];
            if (!isfinite(v)) {
                free(mean);
                free(ord);
                secap_fatal("select consensus: sim[%d, %d] is %s (hint: a caption embedding was empty or NaN)", i,
                            j, secap_nonfinite_name(v));
            }
            s += v;
        }
        mean[i] = s / n;
        ord[i] = i;
    }
    /* insertion sort: descending mean, ties by lower index (n is small) */
    for (int i = 1; i < n; i++) {
        int k = ord[i], j = i - 1;
        while (j >= 0 && mean[ord[j]] < mean[k]) { ord[j + 1] = ord[j]; j--; }
        ord[j + 1] = k;
    }
    for (int i = 0; i < keep; i++) idx[i] = ord[i];
    free(mean);
    free(ord);
}

/* ------------------------------------------------------------ generation */

typedef struct {
    int32_t *tok;   /* [max_new] without EOS */
    int len;
    double score;
    int eos;
} hyp;

typedef struct {
    /* owned; released by gen_free (also on a fatal error) */
    secap_ctx *g;          /* private context of the token steps */
    secap_kvcache *kc;
    float *lg;             /* [N, V] logits of the step */
    double *sc;            /* [V] processed scores of one row, or [W * V] for beams */
    double *tmp;           /* [V] scratch (sorting) */
    int32_t *ord;          /* [V] scratch (top-p order) */
    uint32_t *stamp;       /* [V] distinct-token marks */
    int32_t *seq, *seq2;   /* [N, S] id context + generated, and a reorder copy */
    int32_t *slen, *slen2; /* [N] */
    int32_t *ctxn;         /* [N] ids of the context part */
    int32_t *tok;          /* [N] the step's new token per row */
    int32_t *n;            /* [N] 1 = row live this step */
    int32_t *src;          /* [N] beam reorder */
    double *bs, *bs2;      /* [N] beam scores / running log-likelihood */
    uint8_t *done;         /* [N] greedy/sample rows finished; [B] beam rows */
    secap_rng *rng;        /* [N] */
    hyp *hy;               /* [B * (W + 1)] */
    int32_t *hytok;        /* their tokens */
    double *worst;         /* [B] */
    int *nhy;              /* [B] */
    int32_t *cand_tok;     /* [2W] flat candidate index j * V + t */
    double *cand_sc;       /* [2W] */
    double *prob;          /* [W * V] beam sampling */
    secap_gen_result *out; /* freed on error only */
} gen_state;

static void gen_free(void *arg)
{
    gen_state *s = arg;
    secap_ctx_free(s->g);
    secap_kvcache_free(s->kc);
    free(s->lg); free(s->sc); free(s->tmp); free(s->ord); free(s->stamp);
    free(s->seq); free(s->seq2); free(s->slen); free(s->slen2); free(s->ctxn);
    free(s->tok); free(s->n); free(s->src); free(s->bs); free(s->bs2); free(s->done);
    free(s->rng); free(s->hy); free(s->hytok); free(s->worst); free(s->nhy);
    free(s->cand_tok); free(s->cand_sc); free(s->prob);
    secap_gen_result_free(s->out);
}

/* The processors on s [V] for a row with context seq[0 .. len), ng generated. */
static void process(gen_state *st, const secap_decode_config *d, int eos, int V, double *s, const int32_t *seq,
                    int len, int ng)
{
    if (d->repetition_penalty != 1.0) {
        uint32_t mark = ++st->stamp[V];   /* stamp[V]: the current mark */
        if (mark == 0) {   /* wrapped: clear every mark */
            memset(st->stamp, 0, (size_t)(V + 1) * sizeof *st->stamp);
            mark = st->stamp[V] = 1;
        }
        double p = d->repetition_penalty;
        for (int i = 0; i < len; i++) {
            int t = seq[i];
            if (st->stamp[t] == mark) continue;
            st->stamp[t] = mark;
            s[t] = s[t] < 0 ? s[t] * p : s[t] / p;
        }
    }
    int n = d->no_repeat_ngram_size;
    if (n > 0 && len + 1 >= n) {
        const int32_t *tail = seq + len - (n - 1);   /* the last n-1 tokens */
        for (int i = 0; i + n <= len; i++)
            if (n == 1 || !memcmp(seq + i, tail, (size_t)(n - 1) * sizeof *seq)) s[seq[i + n - 1]] = -INFINITY;
    }
    if (ng < d->min_new_tokens && eos >= 0 && eos < V) s[eos] = -INFINITY;
}

/* The k-th largest of x [n] (k in [1, n]); reorders x.  Hoare quickselect. */
static double kth_largest(double *x, int n, int k)
{
    int lo = 0, hi = n - 1, want = k - 1;   /* index in descending order */
    while (lo < hi) {
        double piv = x[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] > piv) i++;
            while (x[j] < piv) j--;
            if (i <= j) { double t = x[i]; x[i] = x[j]; x[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return x[want];
    }
    return x[want];
}

/* top-p order: ascending score, ties by index */
static int cmp_idx_asc(const void *a, const void *b, void *ctx)
{
    const double *s = ctx;
    int i = *(const int32_t *)a, j = *(const int32_t *)b;
    double x = s[i], y = s[j];
    return x < y ? -1 : x > y ? 1 : (i > j) - (i < j);
}

/* The warpers on s [V]; kmin tokens always survive top-k and top-p. */
static void warp(gen_state *st, const secap_decode_config *d, int V, double *s, int kmin)
{
    if (d->temperature != 1.0)
        for (int v = 0; v < V; v++) s[v] /= d->temperature;
    if (d->top_k > 0) {
        int k = d->top_k > kmin ? d->top_k : kmin;
        if (k < V) {
            memcpy(st->tmp, s, (size_t)V * sizeof *s);
            double thr = kth_largest(st->tmp, V, k);
            for (int v = 0; v < V; v++)
                if (s[v] < thr) s[v] = -INFINITY;
        }
    }
    if (d->top_p < 1.0) {
        for (int v = 0; v < V; v++) st->ord[v] = v;
        qsort_r(st->ord, (size_t)V, sizeof *st->ord, cmp_idx_asc, s);
        double mx = s[st->ord[V - 1]], z = 0;
        for (int v = 0; v < V; v++) z += exp(s[v] - mx);
        double cum = 0, cut = 1.0 - d->top_p;
        for (int i = 0; i < V - kmin; i++) {
            int t = st->ord[i];
            cum += exp(s[t] - mx) / z;
            if (cum <= cut) s[t] = -INFINITY;
            else break;   /* cumulative mass only grows */
        }
    }
}

static void log_softmax_row(const float *x, double *y, int V)
{
    double mx = -INFINITY;
    for (int v = 0; v < V; v++) if (x[v] > mx) mx = x[v];
    double z = 0;
    for (int v = 0; v < V; v++) z += exp((double)x[v] - mx);
    double lz = mx + log(z);
    for (int v = 0; v < V; v++) y[v] = (double)x[v] - lz;
}

/* Draws from softmax(s) over n entries; -inf entries never come out. */
static int draw(secap_rng *r, const double *s, int n)
{
    double mx = -INFINITY;
    for (int v = 0; v < n; v++) if (s[v] > mx) mx = s[v];
    double z = 0;
    for (int v = 0; v < n; v++) z += exp(s[v] - mx);
    double u = secap_rng_uniform_d(r) * z, cum = 0;
    int last = -1;
    for (int v = 0; v < n; v++) {
        if (s[v] == -INFINITY) continue;
        cum += exp(s[v] - mx);
        last = v;
        if (u < cum) return v;
    }
    return last;   /* rounding at the top end */
}

/* Adds a finished hypothesis to prefix row b's list (BeamHypotheses.add). */
static void hyp_add(gen_state *st, const secap_decode_config *d, int b, int W, const int32_t *tok, int len,
                    double sum, int gen_len, int eos)
{
    double score = sum / pow((double)gen_len, d->length_penalty);
    hyp *H = st->hy + (size_t)b * (W + 1);
    int *nh = &st->nhy[b];
    if (*nh < W || score > st->worst[b]) {
        hyp *h = &H[*nh];
        memcpy(h->tok, tok, (size_t)len * sizeof *tok);
        h->len = len;
        h->score = score;
        h->eos = eos;
        (*nh)++;
        if (*nh > W) {
            /* drop the lowest (ties: the earlier), worst = the next lowest */
            int lo = 0;
            for (int i = 1; i < *nh; i++) if (H[i].score < H[lo].score) lo = i;
            int32_t *keep = H[lo].tok;
            for (int i = lo; i + 1 < *nh; i++) H[i] = H[i + 1];
            H[*nh - 1].tok = keep;   /* the freed slot keeps its buffer */
            (*nh)--;
            double w = INFINITY;
            for (int i = 0; i < *nh; i++) if (H[i].score < w) w = H[i].score;
            st->worst[b] = w;
        } else if (score < st->worst[b]) {
            st->worst[b] = score;
        }
    }
}

static int hyp_done(gen_state *st, const secap_decode_config *d, int b, int W, double best, int cur_len)
{
    if (st->nhy[b] < W) return 0;
    if (d->early_stopping == SECAP_EARLY_STOP_TRUE) return 1;
    double lp = d->length_penalty, high;
    if (d->early_stopping == SECAP_EARLY_STOP_NEVER && lp > 0)
        high = best / pow((double)d->max_new_tokens, lp);
    else
        high = best / pow((double)cur_len, lp);
    return st->worst[b] >= high;
}

/* Inserts candidate (score, flat index) into the sorted top list of size k
 * (descending; ties keep the earlier index first). */
static void top_insert(double *ts, int32_t *ti, int *cnt, int k, double s, int32_t i)
{
    if (*cnt == k && !(s > ts[k - 1])) return;
    int p = *cnt < k ? (*cnt)++ : k - 1;
    while (p > 0 && ts[p - 1] < s) { ts[p] = ts[p - 1]; ti[p] = ti[p - 1]; p--; }
    ts[p] = s;
    ti[p] = i;
}

/* One beam step of prefix row b: candidates, hypotheses, next beams.
 * Writes tok/src/bs2 of rows b*W .. b*W+W-1. */
static void beam_step(gen_state *st, const secap_decode_config *d, int b, int W, int V, int S, int eos)
{
    int k2 = 2 * W, cnt = 0;
    double *cs = st->cand_sc;
    int32_t *ci = st->cand_tok;   /* flat index j * V + t for now */
    for (int j = 0; j < W; j++) {
        int r = b * W + j;
        double *s = st->sc + (size_t)j * V;
        log_softmax_row(st->lg + (size_t)r * V, s, V);
        const int32_t *seq = st->seq + (size_t)r * S;
        process(st, d, eos, V, s, seq, st->slen[r], st->slen[r] - st->ctxn[r]);
        if (d->do_sample) warp(st, d, V, s, 2);
        for (int t = 0; t < V; t++) s[t] += st->bs[r];
    }
    if (!d->do_sample) {
        for (int64_t f = 0; f < (int64_t)W * V; f++) top_insert(cs, ci, &cnt, k2, st->sc[f], (int32_t)f);
    } else {
        /* 2W draws without replacement from softmax over all (j, t) */
        int64_t WV = (int64_t)W * V;
        double mx = -INFINITY;
        for (int64_t f = 0; f < WV; f++) if (st->sc[f] > mx) mx = st->sc[f];
        double z = 0;
        for (int64_t f = 0; f < WV; f++) { st->prob[f] = exp(st->sc[f] - mx); z += st->prob[f]; }
        secap_rng *rng = &st->rng[b];
        int drawn = 0;
        while (drawn < k2 && z > 0) {
            double u = secap_rng_uniform_d(rng) * z, cum = 0;
            int64_t pick = -1;
            for (int64_t f = 0; f < WV; f++) {
                if (st->prob[f] <= 0) continue;
                cum += st->prob[f];
                pick = f;
                if (u < cum) break;
            }
            if (pick < 0) break;
            z -= st->prob[pick];
            st->prob[pick] = -1;   /* drawn */
            if (z < 0) z = 0;
            top_insert(cs, ci, &cnt, k2, st->sc[pick], (int32_t)pick);
            drawn++;
        }
        /* fewer than 2W tokens with mass: fill with the best of the rest */
        if (cnt < k2)
            while (cnt < k2) {
                int64_t best = -1;
                for (int64_t f = 0; f < WV; f++)
                    if (st->prob[f] >= 0 && (best < 0 || st->sc[f] > st->sc[best])) best = f;
                if (best < 0) break;
                st->prob[best] = -1;
                top_insert(cs, ci, &cnt, k2, st->sc[best], (int32_t)best);
            }
    }
    int taken = 0;
    for (int rank = 0; rank < cnt && taken < W; rank++) {
        int j = ci[rank] / V, t = ci[rank] % V, r = b * W + j;
        if (t == eos) {
            if (rank >= W) continue;
            int ng = st->slen[r] - st->ctxn[r];
            hyp_add(st, d, b, W, st->seq + (size_t)r * S + st->ctxn[r], ng, cs[rank], ng + 1, 1);
        } else {
            int o = b * W + taken;
            st->tok[o] = t;
            st->src[o] = r;
            st->bs2[o] = cs[rank];
            taken++;
        }
    }
    if (taken < W)
        secap_fatal("generate: beam search of row %d found %d continuations for %d beams (hint: the vocabulary is "
                    "smaller than 2 * num_beams, or every token is banned)", b, taken, W);
    int ng1 = st->slen[b * W] - st->ctxn[b * W] + 1;
    st->done[b] = st->done[b] || hyp_done(st, d, b, W, cs[0], ng1);
}

void secap_generate(secap_ctx *c, const secap_llama *m, secap_tensor *prefix, const int32_t *prefix_lens,
                    const int32_t *const *ctx_ids, const int32_t *ctx_len, const secap_decode_config *d,
                    secap_gen_result *out)
{
    const char *op = "generate";
    secap_decode_config_validate(d, op);
    secap_check_live(prefix, op);
    const secap_llama_config *mc = secap_llama_cfg(m);
    char buf[64];
    if (prefix->ndim != 3 || prefix->shape[2] != mc->hidden_size || prefix->dtype != SECAP_F32)
        secap_fatal("%s: prefix is %s, expected float32 [B, T, %d] (hidden_size)", op,
                    secap_shape_str(prefix, buf, sizeof buf), mc->hidden_size);
    int B = (int)prefix->shape[0], T = (int)prefix->shape[1], D = mc->hidden_size, V = mc->vocab_size;
    int eos = mc->eos_token_id;
    int beams = d->num_beams > 1;
    int W = beams ? d->num_beams : d->num_return_sequences, N = B * W, M = d->max_new_tokens;
    int maxlen = 0, maxctx = 0;
    for (int b = 0; b < B; b++) {
        int L = prefix_lens ? prefix_lens[b] : T;
        if (L < 1 || L > T) secap_fatal("%s: prefix_lens[%d] = %d is outside [1, %d]", op, b, L, T);
        if (L > maxlen) maxlen = L;
        int cl = ctx_ids && ctx_len ? ctx_len[b] : 0;
        if (cl < 0 || (cl > 0 && !ctx_ids[b])) secap_fatal("%s: row %d has %d context ids but no array", op, b, cl);
        for (int i = 0; i < cl; i++)
            if (ctx_ids[b][i] < 0 || ctx_ids[b][i] >= V)
                secap_fatal("%s: context id %d of row %d is %d, outside the vocabulary [0, %d)", op, i, b,
                            ctx_ids[b][i], V);
        if (cl > maxctx) maxctx = cl;
    }
    if ((int64_t)maxlen + M > mc->max_position_embeddings)
        secap_fatal("%s: a prefix of %d steps plus max_new_tokens %d exceeds max_position_embeddings %d (hint: "
                    "lower max_new_tokens)", op, maxlen, M, mc->max_position_embeddings);
    if (beams && 2 * W > V)
        secap_fatal("%s: num_beams %d needs 2 * num_beams <= vocab_size %d", op, W, V);
    int S = maxctx + M;

    memset(out, 0, sizeof *out);
    gen_state st = { 0 };
    secap_cleanup cl;
    secap_cleanup_push(&cl, gen_free, &st);
    out->rows = B;
    out->per_row = d->num_return_sequences;
    out->max_len = M;
    size_t R = (size_t)B * d->num_return_sequences;
    st.out = out;
    out->ids = secap_xcalloc(R * (size_t)M, sizeof *out->ids, op);
    out->len = secap_xcalloc(R, sizeof *out->len, op);
    out->eos = secap_xcalloc(R, sizeof *out->eos, op);
    out->score = secap_xcalloc(R, sizeof *out->score, op);

    st.lg = secap_xmalloc((size_t)N * V * sizeof *st.lg, op);
    st.sc = secap_xmalloc((size_t)(beams ? W : 1) * V * sizeof *st.sc, op);
    st.tmp = secap_xmalloc((size_t)V * sizeof *st.tmp, op);
    st.ord = secap_xmalloc((size_t)V * sizeof *st.ord, op);
    st.stamp = secap_xcalloc((size_t)V + 1, sizeof *st.stamp, op);
    st.seq = secap_xcalloc((size_t)N * S, sizeof *st.seq, op);
    st.seq2 = secap_xcalloc((size_t)N * S, sizeof *st.seq2, op);
    st.slen = secap_xcalloc((size_t)N, sizeof *st.slen, op);
    st.slen2 = secap_xcalloc((size_t)N, sizeof *st.slen2, op);
    st.ctxn = secap_xcalloc((size_t)N, sizeof *st.ctxn, op);
    st.tok = secap_xcalloc((size_t)N, sizeof *st.tok, op);
    st.n = secap_xcalloc((size_t)N, sizeof *st.n, op);
    st.src = secap_xcalloc((size_t)N, sizeof *st.src, op);
    st.bs = secap_xcalloc((size_t)N, sizeof *st.bs, op);
    st.bs2 = secap_xcalloc((size_t)N, sizeof *st.bs2, op);
    st.done = secap_xcalloc((size_t)N, sizeof *st.done, op);
    st.rng = secap_xcalloc((size_t)N, sizeof *st.rng, op);
    for (int r = 0; r < N; r++) {
        int b = r / W, cl0 = ctx_ids && ctx_len ? ctx_len[b] : 0;
        if (cl0) memcpy(st.seq + (size_t)r * S, ctx_ids[b], (size_t)cl0 * sizeof *st.seq);
        st.slen[r] = st.ctxn[r] = cl0;
        secap_rng_seed_stream(&st.rng[r], d->seed, (uint64_t)(beams ? r / W : r));
    }
    if (beams) {
        st.hy = secap_xcalloc((size_t)B * (W + 1), sizeof *st.hy, op);
        st.hytok = secap_xcalloc((size_t)B * (W + 1) * M, sizeof *st.hytok, op);
        for (size_t i = 0; i < (size_t)B * (W + 1); i++) st.hy[i].tok = st.hytok + i * (size_t)M;
        st.worst = secap_xmalloc((size_t)B * sizeof *st.worst, op);
        for (int b = 0; b < B; b++) st.worst[b] = 1e9;
        st.nhy = secap_xcalloc((size_t)B, sizeof *st.nhy, op);
        st.cand_tok = secap_xcalloc((size_t)2 * W, sizeof *st.cand_tok, op);
        st.cand_sc = secap_xcalloc((size_t)2 * W, sizeof *st.cand_sc, op);
        if (d->do_sample) st.prob = secap_xmalloc((size_t)W * V * sizeof *st.prob, op);
        for (int r = 0; r < N; r++) st.bs[r] = r % W ? -1e9 : 0.0;
    }

    /* prefill in c: every row of b gets b's prefix */
    st.kc = secap_llama_kvcache_new(m, N, (int64_t)maxlen + M);
    size_t mark = secap_arena_mark(c->step);
    {
        secap_tensor *x = prefix;
        int32_t *lens = secap_arena_alloc(c->step, (size_t)N * sizeof *lens, 0, op);
        if (W > 1) x = secap_empty(c, SECAP_SHAPE(N, T, D));
        for (int r = 0; r < N; r++) {
            int b = r / W;
            lens[r] = prefix_lens ? prefix_lens[b] : T;
            if (W > 1)
                memcpy(secap_f32(x) + (size_t)r * T * D, secap_f32(prefix) + (size_t)b * T * D,
                       (size_t)T * D * sizeof(float));
        }
        secap_tensor *y = secap_llama_decode(c, m, st.kc, x, lens);
        memcpy(st.lg, secap_f32(y), (size_t)N * V * sizeof *st.lg);
    }
    secap_arena_rewind(c->step, mark);
    st.g = secap_ctx_new((size_t)1 << 20, 0, d->seed);
    st.g->training = 0;

    for (int step = 0; step < M; step++) {
        int live = 0;
        if (!beams) {
            for (int r = 0; r < N; r++) {
                st.n[r] = 0;
                if (st.done[r]) continue;
                const float *x = st.lg + (size_t)r * V;
                double *s = st.sc;
                log_softmax_row(x, st.tmp, V);   /* the model's log-probabilities */
                for (int v = 0; v < V; v++) s[v] = x[v];
                process(&st, d, eos, V, s, st.seq + (size_t)r * S, st.slen[r], step);
                int t;
                if (d->do_sample) {
                    warp(&st, d, V, s, 1);
                    t = draw(&st.rng[r], s, V);
                } else {
                    t = 0;
                    for (int v = 1; v < V; v++) if (s[v] > s[t]) t = v;
                }
                if (t < 0) secap_fatal("%s: row %d step %d: every token is banned", op, r, step);
                st.bs[r] += st.tmp[t];
                if (t == eos) {
                    st.done[r] = 1;
                    out->eos[r] = 1;
                    continue;
                }
                st.seq[(size_t)r * S + st.slen[r]++] = t;
                st.tok[r] = t;
                st.n[r] = 1;
                live++;
            }
        } else {
            for (int r = 0; r < N; r++) { st.n[r] = 0; st.src[r] = r; st.bs2[r] = st.bs[r]; st.tok[r] = eos; }
            for (int b = 0; b < B; b++) {
                if (st.done[b]) continue;
                beam_step(&st, d, b, W, V, S, eos);
                if (!st.done[b])
                    for (int j = 0; j < W; j++) st.n[b * W + j] = 1, live++;
            }
            /* reorder rows (cache, ids, scores) and append the new tokens; a
             * done row keeps what it has (n = 0, src = itself) */
            memcpy(st.seq2, st.seq, (size_t)N * S * sizeof *st.seq);
            memcpy(st.slen2, st.slen, (size_t)N * sizeof *st.slen);
            for (int r = 0; r < N; r++) {
                if (st.done[r / W]) continue;
                memcpy(st.seq + (size_t)r * S, st.seq2 + (size_t)st.src[r] * S, (size_t)S * sizeof *st.seq);
                st.slen[r] = st.slen2[st.src[r]];
                st.seq[(size_t)r * S + st.slen[r]++] = st.tok[r];
                st.bs[r] = st.bs2[r];
            }
            int same = 1;
            for (int r = 0; r < N; r++) if (st.src[r] != r && !st.done[r / W]) same = 0;
            if (!same) {
                for (int r = 0; r < N; r++) if (st.done[r / W]) st.src[r] = r;
                secap_kvcache_reorder(st.kc, st.src);
            }
        }
        if (!live || step + 1 == M) break;
        secap_ctx_reset(st.g);
        for (int r = 0; r < N; r++) if (!st.n[r]) st.tok[r] = eos >= 0 && eos < V ? eos : 0;
        secap_tensor *x = secap_llama_embed(st.g, m, st.tok, N, 1);
        secap_tensor *y = secap_llama_decode(st.g, m, st.kc, x, st.n);
        memcpy(st.lg, secap_f32(y), (size_t)N * V * sizeof *st.lg);
    }

    if (!beams) {
        for (int r = 0; r < N; r++) {
            int ng = st.slen[r] - st.ctxn[r];
            memcpy(out->ids + (size_t)r * M, st.seq + (size_t)r * S + st.ctxn[r], (size_t)ng * sizeof *out->ids);
            out->len[r] = ng;
            out->score[r] = (float)st.bs[r];
        }
    } else {
        int K = d->num_return_sequences;
        for (int b = 0; b < B; b++) {
            if (!st.done[b])
                for (int j = 0; j < W; j++) {
                    int r = b * W + j, ng = st.slen[r] - st.ctxn[r];
                    hyp_add(&st, d, b, W, st.seq + (size_t)r * S + st.ctxn[r], ng, st.bs[r], ng, 0);
                }
            hyp *H = st.hy + (size_t)b * (W + 1);
            int nh = st.nhy[b];
            for (int k = 0; k < K && k < nh; k++) {
                /* the best left; ties: the later one, as popping HF's stably sorted list */
                int best = -1;
                for (int i = 0; i < nh; i++)
                    if (H[i].len >= 0 && (best < 0 || H[i].score >= H[best].score)) best = i;
                size_t o = (size_t)b * K + k;
                memcpy(out->ids + o * M, H[best].tok, (size_t)H[best].len * sizeof *out->ids);
                out->len[o] = H[best].len;
                out->eos[o] = (uint8_t)H[best].eos;
                out->score[o] = (float)H[best].score;
                H[best].len = -1;
            }
        }
    }
    st.out = NULL;
    secap_cleanup_pop(&cl);
    gen_free(&st);
}

void secap_generate_ids(secap_ctx *c, const secap_llama *m, const int32_t *const *ids, const int32_t *lens,
                        int B, const secap_decode_config *cfg, secap_gen_result *out)
{
    const char *op = "generate from ids";
    if (B < 1) secap_fatal("%s: no rows", op);
    int T = 0;
    for (int b = 0; b < B; b++) {
        if (lens[b] < 1 || !ids[b])
            secap_fatal("%s: row %d has %d ids (hint: a prompt needs at least the BOS)", op, b, lens[b]);
        if (lens[b] > T) T = lens[b];
    }
    size_t mark = secap_arena_mark(c->step);
    int32_t *flat = secap_arena_alloc(c->step, (size_t)B * T * sizeof *flat, 1, op);
    for (int b = 0; b < B; b++) memcpy(flat + (size_t)b * T, ids[b], (size_t)lens[b] * sizeof *flat);
    int prev = secap_no_grad_begin(c);
    secap_tensor *x = secap_llama_embed(c, m, flat, B, T);
    secap_no_grad_end(c, prev);
    secap_generate(c, m, x, lens, ids, lens, cfg, out);
    secap_arena_rewind(c->step, mark);
}
