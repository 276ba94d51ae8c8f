/* secap/score.h - caption metrics exactly as the COCO caption toolkit.
 *
 * A corpus holds hypotheses, each with one or more references, tokenised on
 * entry.  secap_score() computes, over the whole corpus, the metrics named as
 * the toolkit names them (SECAP.md §6):
 *   Bleu_1..Bleu_4  pycocoevalcap BLEU, option 'closest', tiny/small smoothing
 *   METEOR          METEOR 1.5, -l en -m exact (English function words)
 *   ROUGE_L         LCS F-measure, beta 1.2, mean over items
 *   CIDEr           pycocoevalcap CIDEr-D (sigma 6, clipping, x10), document
 *                   frequencies from the references of this corpus
 * Corpus scores are the toolkit's corpus scores (BLEU and METEOR aggregate
 * statistics, they are not means of per-item scores); per-item scores are the
 * toolkit's per-item (METEOR: segment) scores.
 *
 *   secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
 *   secap_corpus_add(c, "utt1", "她很开心。", refs, 5);
 *   secap_scores total;
 *   secap_score(c, SECAP_METRIC_ALL, &total, NULL);
 *   secap_corpus_free(c);
 *
 * Bad input (invalid UTF-8, duplicate ids, no references, malformed JSON)
 * stops through secap_fatal() with a message naming the file, id, line/column.
 */
#ifndef SECAP_SCORE_H
#define SECAP_SCORE_H

#include <stddef.h>

typedef enum {
    SECAP_TOK_ZH_CHAR,  /* one token per CJK character, Latin/digit runs lower-cased,
                           Unicode P and S dropped */
    SECAP_TOK_SPACE     /* split on whitespace, tokens as given */
} secap_tokenize_mode;

enum {
    SECAP_METRIC_BLEU    = 1,
    SECAP_METRIC_METEOR  = 2,
    SECAP_METRIC_ROUGE_L = 4,
    SECAP_METRIC_CIDER   = 8,
    SECAP_METRIC_ALL     = 15
};

/* Scores of one item or of the corpus; metrics not asked for are left 0. */
typedef struct {
    double bleu[4];  /* Bleu_1..Bleu_4 */
    double meteor;
    double rouge_l;
    double cider;
} secap_scores;

typedef struct secap_corpus secap_corpus;

secap_corpus *secap_corpus_new(secap_tokenize_mode mode);
void secap_corpus_free(secap_corpus *c);

/* Adds one item: its id (unique), hypothesis and nrefs >= 1 references
 * (UTF-8 text, tokenised here).  An empty hypothesis is allowed (scores 0). */
void secap_corpus_add(secap_corpus *c, const char *id, const char *hyp,
                      const char *const *refs, int nrefs);

/* Loads SECap fid2captions.json files: {id: caption} or {id: [captions]};
 * a hypothesis list uses its first entry.  Items follow the hypothesis file's
 * order.  Every hypothesis id needs references (else an error lists the
 * missing ids); ids only in the references are kept in the ignored list. */
secap_corpus *secap_corpus_load_json(const char *refs_path, const char *hyps_path,
                                     secap_tokenize_mode mode);

int secap_corpus_size(const secap_corpus *c);
const char *secap_corpus_id(const secap_corpus *c, int i);
/* Reference ids that had no hypothesis (load_json only). */
int secap_corpus_n_ignored(const secap_corpus *c);
const char *secap_corpus_ignored_id(const secap_corpus *c, int i);

/* Scores the metrics in the `metrics` mask.  corpus: the corpus scores (may be
 * NULL); per_item: [secap_corpus_size(c)] per-item scores, or NULL. */
void secap_score(const secap_corpus *c, unsigned metrics,
                 secap_scores *corpus, secap_scores *per_item);

/* Tokenises one text; returns a malloc'd string of the tokens joined by single
 * spaces (what the toolkit is given).  `what` names the text in errors. */
char *secap_tokenize_join(const char *text, secap_tokenize_mode mode, const char *what);

/* "zh-char" / "space" to a mode; -1 if unknown. */
int secap_tokenize_mode_parse(const char *name);

#endif
