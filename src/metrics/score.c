/* secap_score(): runs the asked-for metric kernels over one corpus. */
#include "metrics_internal.h"

#include <string.h>

#include "secap/base.h"

void secap_score(const secap_corpus *c, unsigned metrics,
                 secap_scores *corpus, secap_scores *per_item)
{
    SECAP_CHECK(metrics && !(metrics & ~(unsigned)SECAP_METRIC_ALL),
                "secap_score: metric mask 0x%x is empty or has unknown bits (hint: OR of SECAP_METRIC_*)", metrics);
    SECAP_CHECK(c->n > 0, "secap_score: the corpus is empty (hint: add at least one hypothesis with references)");
    secap_scores total;
    memset(&total, 0, sizeof total);
    if (per_item) memset(per_item, 0, (size_t)c->n * sizeof *per_item);
    if (metrics & (SECAP_METRIC_BLEU | SECAP_METRIC_CIDER)) {
        secap_ngrams g;
        secap_ngrams_build(&g, c);
        if (metrics & SECAP_METRIC_BLEU) secap_bleu(c, &g, total.bleu, per_item);
        if (metrics & SECAP_METRIC_CIDER) secap_cider(c, &g, &total.cider, per_item);
        secap_ngrams_free(&g);
    }
    if (metrics & SECAP_METRIC_ROUGE_L) secap_rouge_l(c, &total.rouge_l, per_item);
    if (metrics & SECAP_METRIC_METEOR) secap_meteor(c, &total.meteor, per_item);
    if (corpus) *corpus = total;
}
