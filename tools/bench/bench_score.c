/* bench_score - caption metrics on 10,000 hypotheses x 5 references.
 *
 * Synthetic Chinese emotion captions (templates as in
 * tests/metrics/make_fixtures.py, seeded), zh-char tokenisation.  Prints the
 * time to build the corpus (tokenise), each metric alone, and all four in one
 * secap_score() call; the target for the four is under 2 s.
 * Usage: bench_score [items] (default 10000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secap/base.h"
#include "secap/rng.h"
#include "secap/score.h"

static const char *const WHO[] = {"说话人", "她", "他", "这位女士", "这位男士", "一位年轻女性", "一位中年男性", "这个小孩"};
static const char *const SPEED[] = {"较快", "缓慢", "平稳", "急促", "适中", "很快"};
static const char *const VOL[] = {"洪亮", "低沉", "轻柔", "高亢", "微弱", "清脆"};
static const char *const EMO[] = {"开心", "悲伤", "愤怒", "惊讶", "平静", "恐惧", "厌恶", "兴奋"};
#define PICK(r, a) ((a)[secap_rng_below(r, sizeof(a) / sizeof *(a))])

/* One caption for the item's attributes (who, speed, volume, emotion), each
 * replaced by a random one with probability 0.2. */
static void caption(secap_rng *r, const char *const attr[4], char *out, size_t n)
{
    const char *a[4];
    for (int k = 0; k < 4; k++) a[k] = attr[k];
    if (secap_rng_uniform(r) < 0.2f) a[0] = PICK(r, WHO);
    if (secap_rng_uniform(r) < 0.2f) a[1] = PICK(r, SPEED);
    if (secap_rng_uniform(r) < 0.2f) a[2] = PICK(r, VOL);
    if (secap_rng_uniform(r) < 0.2f) a[3] = PICK(r, EMO);
    switch (secap_rng_below(r, 5)) {
    case 0: snprintf(out, n, "%s用%s的语速和%s的声音说话，听起来很%s。", a[0], a[1], a[2], a[3]); break;
    case 1: snprintf(out, n, "%s的语气%s，语速%s，声音%s。", a[0], a[3], a[1], a[2]); break;
    case 2: snprintf(out, n, "%s语速%s、音量%s，表达出%s的情绪！", a[0], a[1], a[2], a[3]); break;
    case 3: snprintf(out, n, "在这段语音中，%s显得十分%s，说话%s，声音%s。", a[0], a[3], a[1], a[2]); break;
    default: snprintf(out, n, "%s以%s的嗓音%s地讲述，透露出%s的心情。", a[0], a[2], a[1], a[3]); break;
    }
}

static secap_corpus *build_corpus(int items)
{
    secap_rng r;
    secap_rng_seed(&r, 2024);
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    char hyp[256], refbuf[5][256], id[32];
    const char *refs[5];
    for (int i = 0; i < items; i++) {
        const char *attr[4] = {PICK(&r, WHO), PICK(&r, SPEED), PICK(&r, VOL), PICK(&r, EMO)};
        for (int k = 0; k < 5; k++) { caption(&r, attr, refbuf[k], sizeof refbuf[k]); refs[k] = refbuf[k]; }
        caption(&r, attr, hyp, sizeof hyp);
        snprintf(id, sizeof id, "utt%05d", i);
        secap_corpus_add(c, id, hyp, refs, 5);
    }
    return c;
}

static double time_metric(const secap_corpus *c, unsigned mask, secap_scores *s, secap_scores *items)
{
    double t0 = secap_now();
    secap_score(c, mask, s, items);
    return secap_now() - t0;
}

int main(int argc, char **argv)
{
    int items = argc > 1 ? atoi(argv[1]) : 10000;
    if (items <= 0) secap_fatal("bench_score: bad item count \"%s\" (hint: a positive integer)", argv[1]);
    secap_threads_init(0);
    double t0 = secap_now();
    secap_corpus *c = build_corpus(items);
    double t_build = secap_now() - t0;
    secap_scores s, all, *per = secap_xcalloc((size_t)items, sizeof *per, "per-item scores");
    printf("bench_score: %d hypotheses x 5 references, zh-char, %d threads\n", items, secap_threads());
    printf("  %-28s %8.3f s\n", "build corpus (tokenise)", t_build);
    double t_bleu = time_metric(c, SECAP_METRIC_BLEU, &s, per);
    printf("  %-28s %8.3f s   Bleu_4  %.6f\n", "BLEU-1..4", t_bleu, s.bleu[3]);
    double t_meteor = time_metric(c, SECAP_METRIC_METEOR, &s, per);
    printf("  %-28s %8.3f s   METEOR  %.6f\n", "METEOR", t_meteor, s.meteor);
    double t_rouge = time_metric(c, SECAP_METRIC_ROUGE_L, &s, per);
    printf("  %-28s %8.3f s   ROUGE_L %.6f\n", "ROUGE-L", t_rouge, s.rouge_l);
    double t_cider = time_metric(c, SECAP_METRIC_CIDER, &s, per);
    printf("  %-28s %8.3f s   CIDEr   %.6f\n", "CIDEr-D", t_cider, s.cider);
    double t_all = time_metric(c, SECAP_METRIC_ALL, &all, per);
    printf("  %-28s %8.3f s   (target < 2 s: %s)\n", "all four, one call", t_all, t_all < 2.0 ? "met" : "MISSED");
    printf("  %-28s %8.3f s\n", "build + all four", t_build + t_all);
    free(per);
    secap_corpus_free(c);
    return 0;
}
