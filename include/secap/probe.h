/* secap/probe.h - probes on joint-space embeddings: what do speech
 * embeddings tell about the captions, the emotion and the transcript?
 * (definitions in src/train/probe.c's header comment).  secap-train runs
 * them on the dev split during stage qformer; bin/secap-probe runs the
 * transcript-matching probe on the embeddings bin/secap-embed writes.
 *
 * Rows of q, k, t, x, y need not be normalised: every probe L2-normalises
 * them first.  group[i]: clips with equal group ids have the same text and
 * are not each other's rivals (NULL: all texts distinct).
 */
#ifndef SECAP_PROBE_H
#define SECAP_PROBE_H

/* Speech -> caption recall@K of q [n, e] against k [n, e]; *chance (may be
 * NULL) gets its chance level. */
double secap_probe_recall(const float *q, const float *k, const int *group, int n, int e, int K, double *chance);
/* Emotion centroid probe: accuracy of the nearest class centroid of k by
 * label (-1: unlabelled, not counted); NAN with no labels.  *majority: the
 * largest class's share. */
double secap_probe_centroid(const float *q, const float *k, const int *label, int n, int e, double *majority);

/* The groups of n texts: g[i] = the first index whose text equals text[i]. */
void secap_probe_text_groups(const char *const *text, int n, int *g);

/* Transcript matching: a ridge map from ^x [n, e] to ^y [n, v], fitted on
 * the rows with fit[i] != 0, scores every row with eval[i] != 0 against the
 * y of every other evaluated row (its rivals: a different group and, with
 * len_window >= 0, |len[j] - len[i]| <= len_window).  See probe.c. */
typedef struct {
    int nfit, neval;      /* rows fitted; rows evaluated (with at least one rival) */
    double auc, auc_se;   /* mean per-row AUC (chance 0.5) and its standard error */
    double r1, r1_chance; /* recall@1 among the rivals, and its chance level */
} secap_probe_match_result;

/* auc_row (may be NULL) gets each row's AUC, NAN for rows not evaluated. */
void secap_probe_match(const float *x, const float *y, int n, int e, int v, const unsigned char *fit,
                       const unsigned char *eval, const int *group, const int *len, int len_window, double lambda,
                       double *auc_row, secap_probe_match_result *r);
/* Bag-of-words targets of n texts: BERT basic tokens (each CJK character
 * one token, words split at spaces and punctuation, lower-cased when
 * lower_case), tf-idf weighted, idf = ln(n_fit / df) over the rows with
 * fit[i] != 0, the terms with df >= min_count there; rows L2-normalised (an
 * all-zero row stays zero).  Returns [n, *nterms] (free()); len (may be
 * NULL) gets each text's number of basic tokens. */
float *secap_probe_bag(const char *const *text, int n, const unsigned char *fit, int min_count, int lower_case,
                       int *nterms, int *len);

#endif
