/* SECap's sentence similarity: mean-pooled BERT embeddings and their cosine
 * (the math is in include/secap/similarity.h).
 *
 * The BERT encoder is the Q-Former's text mode: a frozen Q-Former initialised
 * from the plain BERT file with the smallest query-side extras, so that the
 * BERT code, its name table and loader, and the tokenizer are the ones the
 * rest of the project uses.  Pooling and cosines are computed here in double
 * from the float32 encoder outputs. */
#include "secap/similarity.h"
#include "secap/base.h"
#include "secap/berttok.h"
#include "secap/qformer.h"
#include "secap/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double SECAP_SIM_THRESH[SECAP_SIM_NTHRESH] = {0.5, 0.6, 0.8};

struct secap_simmodel {
    secap_ctx *c;          /* owns the frozen parameters; its step arena is reset after every batch */
    secap_qformer *bert;   /* text mode only is used */
    secap_berttok *tok;
    secap_sim_opts o;      /* max_len resolved */
    int H;
};

void secap_sim_opts_default(secap_sim_opts *o)
{
    o->lower_case = 1;
    o->max_len = 0;
    o->batch = 16;
}

static void free_ctx(void *c) { secap_ctx_free(c); }
static void free_tok(void *t) { secap_berttok_free(t); }

secap_simmodel *secap_sim_load(const char *model_path, const char *vocab_path, const secap_sim_opts *opts)
{
    secap_sim_opts o;
    if (opts) o = *opts;
    else secap_sim_opts_default(&o);
    if (o.batch < 1 || o.max_len < 0 || o.max_len == 1)
        secap_fatal("similarity: batch %d and max_len %d (hint: batch >= 1; max_len 0 for the default, else >= 2 "
                    "for [CLS] and [SEP])", o.batch, o.max_len);
    secap_berttok *tok = secap_berttok_load(vocab_path, o.lower_case);
    secap_cleanup ct, cc;
    secap_cleanup_push(&ct, free_tok, tok);
    secap_ctx *c = secap_ctx_new(0, 0, 1);
    secap_cleanup_push(&cc, free_ctx, c);
    c->training = 0;   /* no dropout */
    /* query side as small as the Q-Former allows: it is built but never run */
    secap_qformer_config ex;
    secap_qformer_config_default(&ex);
    ex.num_query_tokens = 1;
    ex.cross_attention_freq = 1 << 20;   /* cross-attention in layer 0 only */
    ex.encoder_width = 1;
    ex.audio_width = ex.llm_width = ex.embed_dim = 0;
    secap_qformer *bert = secap_qformer_init_bert(c, model_path, &ex, 0, 1);
    const secap_qformer_config *cf = secap_qformer_cfg(bert);
    if (secap_berttok_size(tok) > cf->vocab_size) {
        int nv = secap_berttok_size(tok), V = cf->vocab_size;
        secap_qformer_free(bert);
        secap_fatal("similarity: vocabulary %s has %d entries but the model %s embeds only %d tokens (hint: use the "
                    "vocab.txt that came with this checkpoint)", vocab_path, nv, model_path, V);
    }
    secap_cleanup_pop(&cc);
    secap_cleanup_pop(&ct);
    secap_simmodel *m = secap_xcalloc(1, sizeof *m, "similarity model");
    m->c = c;
    m->bert = bert;
    m->tok = tok;
    m->H = cf->hidden_size;
    if (o.max_len == 0) o.max_len = cf->max_position_embeddings < 256 ? cf->max_position_embeddings : 256;
    if (o.max_len > cf->max_position_embeddings) o.max_len = cf->max_position_embeddings;
    m->o = o;
    return m;
}

void secap_sim_free(secap_simmodel *m)
{
    if (!m) return;
    secap_qformer_free(m->bert);
    secap_berttok_free(m->tok);
    secap_ctx_free(m->c);
    free(m);
}

int secap_sim_dim(const secap_simmodel *m) { return m->H; }

static void free_batch(void *bb) { secap_bert_batch_free(bb); }
static void free_ptr(void *p) { free(*(void **)p); }

void secap_sim_embed(secap_simmodel *m, int n, const char *const *texts, float *emb)
{
    int H = m->H;
    for (int i0 = 0; i0 < n; i0 += m->o.batch) {
        int B = n - i0 < m->o.batch ? n - i0 : m->o.batch;
        secap_bert_batch bb;
        secap_berttok_encode_batch(m->tok, B, texts + i0, NULL, m->o.max_len, &bb);
        secap_cleanup cl;
        secap_cleanup_push(&cl, free_batch, &bb);
        int prev = secap_no_grad_begin(m->c);
        secap_tensor *h = secap_qformer_text(m->c, m->bert, bb.ids, bb.lens, NULL, B, bb.len);   /* [B, S, H] */
        const float *hd = h->data;
        for (int b = 0; b < B; b++) {
            float *e = emb + (size_t)(i0 + b) * (size_t)H;
            int S = bb.lens[b];
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int t = 0; t < S; t++) s += hd[((size_t)b * (size_t)bb.len + (size_t)t) * (size_t)H + (size_t)j];
                e[j] = (float)(s / S);
            }
        }
        secap_no_grad_end(m->c, prev);
        secap_ctx_reset(m->c);
        secap_cleanup_pop(&cl);
        secap_bert_batch_free(&bb);
    }
}

typedef struct {
    const char *const *t;
    size_t *len;
} text_order;

static int by_len_text(const void *a, const void *b, void *ctx)
{
    const text_order *o = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (o->len[i] != o->len[j]) return o->len[i] < o->len[j] ? -1 : 1;
    int r = strcmp(o->t[i], o->t[j]);
    return r ? r : (i < j ? -1 : i > j);
}

typedef struct { size_t *ord, *len; const char **uniq; float *ue; } uniq_state;
static void free_uniq(void *p)
{
    uniq_state *u = p;
    free(u->ord); free(u->len); free(u->uniq); free(u->ue);
}

/* emb [n, H] <- embeddings of texts[0..n), each distinct text embedded once,
 * in order of length (batches of similar lengths pad little). */
static void embed_distinct(secap_simmodel *m, size_t n, const char *const *texts, float *emb)
{
    size_t H = (size_t)m->H;
    uniq_state u = {0};
    secap_cleanup cl;
    secap_cleanup_push(&cl, free_uniq, &u);
    u.ord = secap_xmalloc(n * sizeof *u.ord, "similarity order");
    u.len = secap_xmalloc(n * sizeof *u.len, "similarity order");
    u.uniq = secap_xmalloc(n * sizeof *u.uniq, "similarity texts");
    for (size_t i = 0; i < n; i++) { u.ord[i] = i; u.len[i] = strlen(texts[i]); }
    text_order to = {texts, u.len};
    qsort_r(u.ord, n, sizeof *u.ord, by_len_text, &to);
    size_t nu = 0;
    for (size_t k = 0; k < n; k++)
        if (k == 0 || strcmp(texts[u.ord[k]], texts[u.ord[k - 1]])) u.uniq[nu++] = texts[u.ord[k]];
    u.ue = secap_xmalloc(nu * H * sizeof *u.ue, "similarity embeddings");
    secap_sim_embed(m, (int)nu, u.uniq, u.ue);
    for (size_t k = 0, j = 0; k < n; k++) {
        if (k > 0 && strcmp(texts[u.ord[k]], texts[u.ord[k - 1]])) j++;
        memcpy(emb + u.ord[k] * H, u.ue + j * H, H * sizeof *emb);
    }
    secap_cleanup_pop(&cl);
    free_uniq(&u);
}

double secap_sim_cosine(const float *a, const float *b, int H)
{
    double aa = 0, bb = 0, ab = 0;
    for (int j = 0; j < H; j++) {
        aa += (double)a[j] * a[j];
        bb += (double)b[j] * b[j];
        ab += (double)a[j] * b[j];
    }
    double na = fmax(sqrt(aa), 1e-12), nb = fmax(sqrt(bb), 1e-12);
    return ab / (na * nb);
}

void secap_sim_pairs(secap_simmodel *m, int n, const char *const *a, const char *const *b, double *cos)
{
    if (n <= 0) return;
    int H = m->H;
    float *e = secap_xmalloc((size_t)2 * (size_t)n * (size_t)H * sizeof *e, "similarity embeddings");
    secap_cleanup cl;
    secap_cleanup_push(&cl, free_ptr, &e);
    const char **ab = secap_xmalloc(2 * (size_t)n * sizeof *ab, "similarity texts");
    memcpy(ab, a, (size_t)n * sizeof *ab);
    memcpy(ab + n, b, (size_t)n * sizeof *ab);
    secap_cleanup cab;
    secap_cleanup_push(&cab, free_ptr, &ab);
    embed_distinct(m, 2 * (size_t)n, ab, e);
    secap_cleanup_pop(&cab);
    free(ab);
    for (int i = 0; i < n; i++)
        cos[i] = secap_sim_cosine(e + (size_t)i * (size_t)H, e + ((size_t)n + (size_t)i) * (size_t)H, H);
    secap_cleanup_pop(&cl);
    free(e);
}

void secap_sim_matrix(secap_simmodel *m, int n, const char *const *texts, double *sim)
{
    if (n <= 0) return;
    int H = m->H;
    float *e = secap_xmalloc((size_t)n * (size_t)H * sizeof *e, "similarity embeddings");
    secap_cleanup cl;
    secap_cleanup_push(&cl, free_ptr, &e);
    embed_distinct(m, (size_t)n, texts, e);
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++)
            sim[(size_t)i * (size_t)n + (size_t)j] = sim[(size_t)j * (size_t)n + (size_t)i] =
                secap_sim_cosine(e + (size_t)i * (size_t)H, e + (size_t)j * (size_t)H, H);
    secap_cleanup_pop(&cl);
    free(e);
}

void secap_sim_items(secap_simmodel *m, int n, const char *const *hyps, const char *const *const *refs,
                     const int *nrefs, double *item)
{
    if (n <= 0) return;
    int H = m->H;
    size_t nr = 0;
    for (int i = 0; i < n; i++) {
        if (nrefs[i] < 1)
            secap_fatal("similarity: item %d has %d references (hint: every hypothesis needs at least one)", i,
                        nrefs[i]);
        nr += (size_t)nrefs[i];
    }
    /* hypotheses, then every reference in item order */
    const char **all = secap_xmalloc(((size_t)n + nr) * sizeof *all, "similarity texts");
    float *e = NULL;
    secap_cleanup ca, ce;
    secap_cleanup_push(&ca, free_ptr, &all);
    secap_cleanup_push(&ce, free_ptr, &e);
    size_t k = (size_t)n;
    for (int i = 0; i < n; i++) {
        all[i] = hyps[i];
        for (int r = 0; r < nrefs[i]; r++) all[k++] = refs[i][r];
    }
    e = secap_xmalloc(((size_t)n + nr) * (size_t)H * sizeof *e, "similarity embeddings");
    embed_distinct(m, (size_t)n + nr, all, e);
    k = (size_t)n;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int r = 0; r < nrefs[i]; r++, k++)
            s += secap_sim_cosine(e + (size_t)i * (size_t)H, e + k * (size_t)H, H);
        item[i] = s / nrefs[i];
    }
    secap_cleanup_pop(&ce);
    secap_cleanup_pop(&ca);
    free(e);
    free(all);
}

void secap_sim_summarize(const double *item, int n, secap_sim_summary *s)
{
    memset(s, 0, sizeof *s);
    if (n < 1) secap_fatal("similarity: no items to summarise (hint: score at least one hypothesis)");
    s->n = n;
    double sum = 0;
    int above[SECAP_SIM_NTHRESH] = {0};
    for (int i = 0; i < n; i++) {
        sum += item[i];
        for (int t = 0; t < SECAP_SIM_NTHRESH; t++) above[t] += item[i] > SECAP_SIM_THRESH[t];
    }
    s->similarity = 100.0 * sum / n;
    for (int t = 0; t < SECAP_SIM_NTHRESH; t++) s->share[t] = (double)above[t] / n;
}

int secap_sim_select(const double *sim, int n, int keep, int *kept, double *score)
{
    if (n < 1 || keep < 1 || keep > n)
        secap_fatal("similarity: keep %d of %d draws (hint: 1 <= keep <= draws; the paper keeps 5 of 8)", keep, n);
    double *sc = secap_xmalloc((size_t)n * sizeof *sc, "draw scores");
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++) s += sim[(size_t)i * (size_t)n + (size_t)j];
        sc[i] = s / n;
        if (score) score[i] = sc[i];
    }
    /* draw i is kept when fewer than keep draws rank above it */
    int k = 0;
    for (int i = 0; i < n; i++) {
        int above = 0;
        for (int j = 0; j < n; j++) above += sc[j] > sc[i] || (sc[j] == sc[i] && j < i);
        if (above < keep) kept[k++] = i;
    }
    free(sc);
    return k;
}
