/* Fuzz target: secap-score's inputs, SECap fid2captions.json files read by
 * secap_corpus_load_json, then every metric on what loaded.
 *
 * Input: <mode byte> <references JSON> "\n====\n" <hypotheses JSON>; bit 0
 * of the mode byte picks the tokeniser (zh-char or space), bit 1 asks for
 * per-item scores too.  Without a separator the same text is both files. */
#include "fuzz.h"
#include "secap/score.h"

typedef struct { secap_corpus *c; secap_scores *per; } held;

static void release(void *arg)
{
    held *h = arg;
    free(h->per);
    secap_corpus_free(h->c);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    if (size < 1) return;
    int mode = data[0];
    fuzz_part p[2];
    int n = fuzz_parts(data + 1, size - 1, p, 2);
    const char *refs = fuzz_file("refs.json", p[0].p, p[0].n);
    const char *hyps = n > 1 ? fuzz_file("hyps.json", p[1].p, p[1].n) : refs;
    FUZZ_TRY({
        held h = { NULL, NULL };
        secap_cleanup cl;
        secap_cleanup_push(&cl, release, &h);
        secap_corpus *c = h.c = secap_corpus_load_json(refs, hyps, mode & 1 ? SECAP_TOK_SPACE : SECAP_TOK_ZH_CHAR);
        int items = secap_corpus_size(c);
        secap_scores total, *per = NULL;
        if (mode & 2) per = h.per = secap_xcalloc((size_t)items + 1, sizeof *per, "per-item scores");
        secap_score(c, SECAP_METRIC_ALL, &total, per);
        for (int i = 0; i < items; i++)
            if (!secap_corpus_id(c, i)) fuzz_die("item %d has no id", i);
        for (int i = 0; i < secap_corpus_n_ignored(c); i++)
            if (!secap_corpus_ignored_id(c, i)) fuzz_die("ignored id %d missing", i);
        /* scores are fractions in [0, 1] (CIDEr-D: [0, 10]) */
        for (int k = 0; k < 4; k++)
            if (!(total.bleu[k] >= 0 && total.bleu[k] <= 1 + 1e-9)) fuzz_die("Bleu_%d = %g", k + 1, total.bleu[k]);
        if (!(total.meteor >= 0 && total.meteor <= 1 + 1e-9)) fuzz_die("METEOR = %g", total.meteor);
        if (!(total.rouge_l >= 0 && total.rouge_l <= 1 + 1e-9)) fuzz_die("ROUGE_L = %g", total.rouge_l);
        if (!(total.cider >= 0 && total.cider <= 10 + 1e-9)) fuzz_die("CIDEr = %g", total.cider);
        secap_cleanup_pop(&cl);
        release(&h);
    });
}
