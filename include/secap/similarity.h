/* secap/similarity.h - SECap's sentence similarity (the paper's headline
 * metric) and the pairwise similarity of generated captions.
 *
 * A sentence embedding is the mean of a BERT encoder's last-layer outputs
 * over the sentence's valid tokens ([CLS] and [SEP] included; the attention
 * mask is the weight, as sentence-transformers / text2vec mean pooling):
 *
 *   ids = [CLS] wordpieces(text) [SEP]      (truncated to max_len tokens)
 *   h   = BERT(ids) [S, H]                  (token type 0 everywhere)
 *   e   = (1/S) sum_s h[s]                  [H]
 *
 * and the similarity of two texts is the cosine of their embeddings,
 * e_a / max(|e_a|, 1e-12) . e_b / max(|e_b|, 1e-12) (torch F.normalize).
 * SECap's evaluation uses text2vec-base-chinese-paraphrase (an ERNIE 3.0
 * base model; tools/convert_hf.py folds its task-type embedding into the
 * token types, giving a plain BERT file); any HF BertModel converted with
 * tools/convert_hf.py works.
 *
 * Corpus score (secap_sim_summarize): item i scores the mean cosine of its
 * hypothesis to each of its references (one reference: that cosine); the
 * corpus similarity is 100 x the mean item score, and the shares are the
 * fractions of items whose score is strictly above 0.5, 0.6 and 0.8, as
 * SECap's script prints them.
 *
 * The encoder is the Q-Former's text mode (secap/qformer.h) built with
 * secap_qformer_init_bert from the BERT file, frozen, with the smallest
 * query-side extras (1 query, cross-attention only in layer 0, width 1); the
 * tokenizer is secap/berttok.h.  A loaded model is used by one thread at a
 * time (it owns one context whose step arena is reset after every batch).
 *
 *   secap_simmodel *m = secap_sim_load("text2vec.h5", "vocab.txt", NULL);
 *   float cos[2];
 *   secap_sim_pairs(m, 2, hyps, refs, cos);
 *   secap_sim_free(m);
 *
 * Errors (unreadable files, a vocabulary larger than the model's embedding
 * table, invalid UTF-8) stop through secap_fatal() naming the file.
 */
#ifndef SECAP_SIMILARITY_H
#define SECAP_SIMILARITY_H

#include <stdint.h>

typedef struct {
    int lower_case;  /* BertTokenizer do_lower_case: 1 (text2vec's tokenizers, Google's Chinese BERT) */
    int max_len;     /* tokens per text, [CLS] and [SEP] included; 0: min(256, max_position_embeddings),
                        sentence-transformers' default max_seq_length for text2vec */
    int batch;       /* texts per forward pass (16) */
} secap_sim_opts;

void secap_sim_opts_default(secap_sim_opts *o);

typedef struct secap_simmodel secap_simmodel;

/* Loads a BERT weight file (model_type "bert") and its vocab.txt; opts NULL:
 * the defaults. */
secap_simmodel *secap_sim_load(const char *model_path, const char *vocab_path, const secap_sim_opts *opts);
void secap_sim_free(secap_simmodel *m);

/* H, the embedding width. */
int secap_sim_dim(const secap_simmodel *m);

/* emb [n, H] <- mean-pooled embeddings of texts[0..n). */
void secap_sim_embed(secap_simmodel *m, int n, const char *const *texts, float *emb);

/* Cosine of two embeddings [H] with torch F.normalize's epsilon. */
double secap_sim_cosine(const float *a, const float *b, int H);

/* secap_sim_pairs, _matrix and _items embed each distinct text once, in
 * order of length (so that batches pad little); the result does not depend
 * on the batching beyond float rounding (tests: within 1e-5).
 *
 * cos[i] <- cosine(a[i], b[i]) for i < n. */
void secap_sim_pairs(secap_simmodel *m, int n, const char *const *a, const char *const *b, double *cos);

/* sim [n, n] <- cosine of every pair of texts[0..n) (symmetric, diagonal
 * 1 for a non-zero embedding); what the 8-draw/keep-5 selection reads. */
void secap_sim_matrix(secap_simmodel *m, int n, const char *const *texts, double *sim);

/* Item scores of a corpus: item[i] <- mean over r < nrefs[i] of
 * cosine(hyps[i], refs[i][r]). */
void secap_sim_items(secap_simmodel *m, int n, const char *const *hyps, const char *const *const *refs,
                     const int *nrefs, double *item);

/* SECap's draw selection (SECAP.md section 4): draw i scores the mean of
 * row i of sim [n, n] (its similarity to every draw, itself included); the
 * `keep` best-scoring draws are kept (ties: the earlier draw), written to
 * kept[keep] in draw order.  Returns keep.  score (optional, [n]) receives
 * the row means.  8 draws, keep 5 in the paper. */
int secap_sim_select(const double *sim, int n, int keep, int *kept, double *score);

#define SECAP_SIM_NTHRESH 3
/* 0.5, 0.6, 0.8 */
extern const double SECAP_SIM_THRESH[SECAP_SIM_NTHRESH];

typedef struct {
    int n;                              /* items */
    double similarity;                  /* 100 x mean item score */
    double share[SECAP_SIM_NTHRESH];    /* fraction of items with score > SECAP_SIM_THRESH[k] */
} secap_sim_summary;

/* Summarises item scores item[0..n) (n >= 1). */
void secap_sim_summarize(const double *item, int n, secap_sim_summary *s);

#endif
