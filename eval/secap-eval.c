/* secap-eval - caption a split with a trained checkpoint and score it against
 * the references and two baselines.
 *
 *   secap-eval --checkpoint <ckpt.h5 | run dir> [--split test|dev|train]
 *              [--data <dataset dir | manifest.jsonl>] [--decode.key=value ...]
 *              [--out <dir>] [--limit N] [--batch N] [--threads N] [--no-cache]
 *              [--similarity-model bert.h5 --similarity-vocab vocab.txt]
 *              [--draws N --keep K]
 *
 * 1. Reads the dataset (--data, else the checkpoint's data.dir) with the
 *    checkpoint's [data] settings and the same split rule as secap-train
 *    (the split lists, else the hash split of data.seed / data.split_ratios).
 * 2. Captions the split's clips (secap/infer.h; the feature cache when the
 *    config names one and --no-cache is absent), printing progress with
 *    clips/s on stderr.
 * 3. Writes into --out (default <run dir>/eval-<split>):
 *      fid2captions.json   {id: caption}        the model's captions
 *      refs.json           {id: [references]}   every caption of each clip
 *      baseline_frequent.json, baseline_random.json   the baselines' captions
 *      emotion.txt         `<id> <label>` lines (when the dataset has labels)
 *      scores.json         every row of the table
 * 4. Scores each with the secap-score library (SECAP.md section 6; zh-char
 *    tokens): Bleu_1..4, METEOR, ROUGE_L, CIDEr, plus the emotion keyword
 *    accuracy against the labels (secap/emotion.h's built-in classes) and,
 *    with --similarity-model, SECap's sentence similarity; prints one table.
 *
 * --draws N --keep K (SECap's protocol, SECAP.md section 4: N = 8, K = 5):
 * every clip is captioned N times, draw d (0-based) with the decode settings
 * and decode.seed = seed + d (seed: the --decode.seed override, else 0),
 * sampling switched on when the settings are not sampling already (noted on
 * stderr); every draw captions the split in the same batches (--batch), so
 * the draws are deterministic for a seed and batch size.  Per clip:
 *   S [N, N]   S[i, j] = sim(draw i, draw j)
 *   score_i = (1/N) sum_j S[i, j]   (itself included)
 *   kept [K]   secap_select_consensus(S, N, K): the K best scores, best
 *              first (ties: the earlier draw)
 * sim is SECap's sentence similarity (cosine of BERT mean-pooled
 * embeddings, secap/similarity.h) with --similarity-model, else the
 * character F1 of the two captions (Unicode code points as a multiset:
 * F1 = 2 |A n B| / (|A| + |B|), 1 when both are empty); the run prints
 * which.  Result set k (1..K) is the k-th kept caption of every clip
 * (fid2captions_draw{k}.json); each set is scored like the model row, and
 * per metric the table and scores.json ("draws") give the K set scores,
 * their mean and their sample standard deviation (divisor K - 1; 0 when
 * K = 1).  draws.json holds, per clip, the N draws, S and kept;
 * fid2captions.json and the "model" row are result set 1.
 *
 * Baselines, scored with the same references and scorer:
 *   frequent  every clip gets the most frequent caption among all captions of
 *             the train split's clips (ties: the one met first in dataset
 *             order, captions of a clip in their order);
 *   random    clip i of the split gets the first caption of a train clip
 *             drawn uniformly with secap_rng stream (seed 1234, stream 0),
 *             one draw per clip in split order.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secap/base.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/emotion.h"
#include "secap/fileutil.h"
#include "secap/infer.h"
#include "secap/rng.h"
#include "secap/score.h"
#include "secap/similarity.h"

#define PROG "secap-eval"
#define RANDOM_BASELINE_SEED 1234

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " --checkpoint <ckpt.h5 | run dir> [--split test|dev|train]\n"
        "                  [--data <dataset dir | manifest.jsonl>] [--decode.key=value ...]\n"
        "                  [--out <dir>] [--limit N] [--batch N] [--threads N] [--no-cache]\n"
        "                  [--similarity-model <bert.h5> --similarity-vocab <vocab.txt>]\n"
        "                  [--draws N --keep K]   (SECap: --draws 8 --keep 5)\n"
        "Captions the split, writes fid2captions.json and refs.json into --out (default\n"
        "<run dir>/eval-<split>) and prints BLEU-1..4, METEOR, ROUGE-L, CIDEr and the emotion\n"
        "keyword accuracy of the model and of two baselines (most frequent training caption;\n"
        "caption of a random training clip).  --draws N --keep K: N sampled captions per clip, the K\n"
        "most central kept (mean similarity to all N), K result sets scored, mean and sample std.\n");
}

typedef struct {
    const char *name;
    secap_scores s;
    int have_emo;
    secap_emo_acc emo;
    int have_sim;
    secap_sim_summary sim;
} row;

static void write_json_atomic(const char *path, cJSON *o)
{
    char *s = cJSON_Print(o);
    if (!s) secap_fatal(PROG ": %s: out of memory printing JSON", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { free(s); secap_fatal(PROG ": %s: cannot write: %s (hint: a writable --out)", tmp, strerror(errno)); }
    int ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    ok &= fclose(f) == 0;
    free(s);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        secap_fatal(PROG ": %s: write failed: %s (hint: disk full?)", path, strerror(errno));
    }
}

static void write_hyps(const char *dir, const char *name, int n, const char *const *ids, char *const *hyps)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) cJSON_AddItemToObject(o, ids[i], cJSON_CreateString(hyps[i]));
    write_json_atomic(path, o);
    cJSON_Delete(o);
}

static void mkdir_p(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(buf, 0777); *p = '/'; }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        secap_fatal(PROG ": --out %s: cannot create it: %s (hint: a writable path)", dir, strerror(errno));
    if (!secap_is_dir(buf)) secap_fatal(PROG ": --out %s is not a directory (hint: another path)", dir);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Scores one set of hypotheses against the split's references. */
static void score_row(row *r, int n, const char *const *ids, char *const *hyps, const secap_dataset *d,
                      const int *idx, const secap_emokw *kw, const int *emo_label, secap_simmodel *sim)
{
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    for (int i = 0; i < n; i++) {
        const secap_item *it = &d->items[idx[i]];
        secap_corpus_add(c, ids[i], hyps[i], (const char *const *)it->captions, it->n_captions);
    }
    secap_score(c, SECAP_METRIC_ALL, &r->s, NULL);
    secap_corpus_free(c);
    if (kw && emo_label) {
        secap_emokw_accuracy(kw, n, (const char *const *)hyps, emo_label, NULL, &r->emo);
        r->have_emo = 1;
    }
    if (sim) {
        const char *const **refs = secap_xcalloc((size_t)n, sizeof *refs, "similarity refs");
        int *nr = secap_xcalloc((size_t)n, sizeof *nr, "similarity ref counts");
        double *item = secap_xcalloc((size_t)n, sizeof *item, "similarity items");
        for (int i = 0; i < n; i++) {
            refs[i] = (const char *const *)d->items[idx[i]].captions;
            nr[i] = d->items[idx[i]].n_captions;
        }
        secap_sim_items(sim, n, (const char *const *)hyps, refs, nr, item);
        secap_sim_summarize(item, n, &r->sim);
        r->have_sim = 1;
        free(refs); free(nr); free(item);
    }
}

/* Code points of UTF-8 text, sorted; a byte that does not start a valid
 * sequence counts as one unit of its own (0x110000 + byte).  *n gets the
 * count; the array is malloc'd. */
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t *code_points(const char *s, int *n)
{
    size_t len = strlen(s);
    uint32_t *cp = secap_xmalloc((len + 1) * sizeof *cp, "code points");
    int k = 0;
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    while (p < e) {
        int m = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        int ok = m > 0 && p + m <= e;
        for (int j = 1; ok && j < m; j++) ok = (p[j] & 0xC0) == 0x80;
        if (!ok) { cp[k++] = 0x110000u + *p++; continue; }
        uint32_t v = m == 1 ? p[0] : m == 2 ? p[0] & 0x1Fu : m == 3 ? p[0] & 0x0Fu : p[0] & 0x07u;
        for (int j = 1; j < m; j++) v = v << 6 | (p[j] & 0x3Fu);
        cp[k++] = v;
        p += m;
    }
    qsort(cp, (size_t)k, sizeof *cp, cmp_u32);
    *n = k;
    return cp;
}

/* Character F1 of two texts (see the header): 2 |A n B| / (|A| + |B|). */
static double char_f1(const uint32_t *a, int na, const uint32_t *b, int nb)
{
    if (!na && !nb) return 1;
    int i = 0, j = 0, common = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) { common++; i++; j++; }
        else if (a[i] < b[j]) i++;
        else j++;
    }
    return 2.0 * common / (na + nb);
}

/* sim [n, n] of the texts: BERT cosine when sim is given, else char F1. */
static void draw_matrix(secap_simmodel *sm, int n, char *const *texts, double *sim)
{
    if (sm) { secap_sim_matrix(sm, n, (const char *const *)texts, sim); return; }
    uint32_t **cp = secap_xcalloc((size_t)n, sizeof *cp, "code points");
    int *nc = secap_xcalloc((size_t)n, sizeof *nc, "code point counts");
    for (int i = 0; i < n; i++) cp[i] = code_points(texts[i], &nc[i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) sim[(size_t)i * n + j] = char_f1(cp[i], nc[i], cp[j], nc[j]);
    for (int i = 0; i < n; i++) free(cp[i]);
    free(cp);
    free(nc);
}

#define NMETRIC 7
static const char *const METRIC_NAME[NMETRIC] = { "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L",
                                                  "CIDEr" };
static const char *const METRIC_LABEL[NMETRIC] = { "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L",
                                                   "CIDEr" };

/* The row's metrics in table order: the 7 of secap-score, then emotion
 * accuracy and similarity when present; returns the count. */
static int row_values(const row *r, double *v, const char **names)
{
    double s[NMETRIC] = { r->s.bleu[0], r->s.bleu[1], r->s.bleu[2], r->s.bleu[3], r->s.meteor, r->s.rouge_l,
                          r->s.cider };
    int m = 0;
    for (; m < NMETRIC; m++) { v[m] = s[m]; names[m] = METRIC_NAME[m]; }
    if (r->have_emo) { v[m] = r->emo.accuracy; names[m++] = "Emotion_accuracy"; }
    if (r->have_sim) { v[m] = r->sim.similarity; names[m++] = "Similarity"; }
    return m;
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *split_name = "test", *data = NULL, *out = NULL, *sim_model = NULL, *sim_vocab = NULL;
    int limit = 0, batch = 0, threads = 0, use_cache = 1, nover = 0, draws = 0, keep = 0;
    const char **over = secap_xcalloc((size_t)argc, sizeof *over, "override list");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(over); return 0; }
        else if (secap_cli_is(a, "--checkpoint")) ckpt = secap_cli_value(argc, argv, &i, "--checkpoint", PROG);
        else if (secap_cli_is(a, "--split")) split_name = secap_cli_value(argc, argv, &i, "--split", PROG);
        else if (secap_cli_is(a, "--data")) data = secap_cli_value(argc, argv, &i, "--data", PROG);
        else if (secap_cli_is(a, "--out")) out = secap_cli_value(argc, argv, &i, "--out", PROG);
        else if (secap_cli_is(a, "--similarity-model"))
            sim_model = secap_cli_value(argc, argv, &i, "--similarity-model", PROG);
        else if (secap_cli_is(a, "--similarity-vocab"))
            sim_vocab = secap_cli_value(argc, argv, &i, "--similarity-vocab", PROG);
        else if (secap_cli_is(a, "--limit"))
            limit = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--limit", PROG), "--limit", 1, 1 << 30);
        else if (secap_cli_is(a, "--batch"))
            batch = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--batch", PROG), "--batch", 1, 256);
        else if (secap_cli_is(a, "--threads"))
            threads = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--threads", PROG), "--threads", 1, 1024);
        else if (secap_cli_is(a, "--draws"))
            draws = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--draws", PROG), "--draws", 1, 1024);
        else if (secap_cli_is(a, "--keep"))
            keep = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--keep", PROG), "--keep", 1, 1024);
        else if (!strcmp(a, "--no-cache")) use_cache = 0;
        else if (!strncmp(a, "--decode.", 9)) {
            if (!strchr(a, '=')) secap_fatal(PROG ": %s needs a value: --decode.key=value (hint: --decode.num_beams=3)", a);
            over[nover++] = a + 2;
        } else {
            usage(stderr);
            secap_fatal(PROG ": unknown argument %s (hint: " PROG " --help)", a);
        }
    }
    if (!ckpt) { usage(stderr); secap_fatal(PROG ": --checkpoint is required (hint: --checkpoint build/demo/run)"); }
    int split = !strcmp(split_name, "train") ? SECAP_SPLIT_TRAIN : !strcmp(split_name, "dev") ? SECAP_SPLIT_DEV
              : !strcmp(split_name, "test") ? SECAP_SPLIT_TEST : -1;
    if (split < 0) secap_fatal(PROG ": --split %s: unknown split (hint: test, dev or train)", split_name);
    if (!sim_model != !sim_vocab)
        secap_fatal(PROG ": --similarity-model and --similarity-vocab go together (hint: the text2vec BERT file "
                    "and its vocab.txt, tools/README-convert.md)");
    if (keep && !draws) secap_fatal(PROG ": --keep %d needs --draws (hint: --draws 8 --keep 5, SECap's protocol)", keep);
    if (draws && !keep) keep = draws < 5 ? draws : 5;
    if (keep > draws)
        secap_fatal(PROG ": --keep %d is more than --draws %d (hint: keep at most the draws, SECap: --draws 8 --keep 5)",
                    keep, draws);
    double t0 = secap_now();
    secap_captioner *cp = secap_captioner_open(ckpt, use_cache, threads);
    for (int i = 0; i < nover; i++) {
        char key[256];
        const char *eq = strchr(over[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - over[i]), over[i]);
        if (secap_captioner_set(cp, key, eq + 1))
            secap_fatal(PROG ": --%s: unknown decode key \"%s\" (hint: prompt, max_new_tokens, num_beams, do_sample, "
                        "temperature, top_k, top_p, repetition_penalty, no_repeat_ngram_size, length_penalty, "
                        "min_new_tokens, early_stopping, seed)", over[i], key + 7);
    }
    const secap_train_config *cfg = secap_captioner_config(cp);
    fprintf(stderr, PROG ": %s (global step %lld) loaded in %.1f s\n", secap_captioner_checkpoint(cp),
            secap_captioner_step(cp), secap_now() - t0);

    /* the dataset and its splits, as secap-train made them */
    const char *dpath = data ? data : cfg->data_dir;
    secap_problems probs = { 0 };
    secap_dataset *d = secap_dataset_read(dpath, &cfg->data, &probs);
    secap_dataset_validate(d, &probs);
    secap_dataset_apply_policy(d, &probs, cfg->data.on_error);
    secap_problems_free(&probs);
    if (!d->has_splits) secap_split_by_hash(d, cfg->data.seed, cfg->data.split_ratios);
    int *idx = NULL, *tidx = NULL;
    int n = secap_split_indices(d, split, &idx);
    int ntrain = secap_split_indices(d, SECAP_SPLIT_TRAIN, &tidx);
    if (!n) secap_fatal(PROG ": data %s: the %s split is empty (hint: another --split, or check %s.list)", dpath,
                        split_name, split_name);
    if (!ntrain) secap_fatal(PROG ": data %s: the train split is empty; the baselines need it (hint: check "
                             "train.list or data.split_ratios)", dpath);
    if (limit && limit < n) n = limit;

    char outdir[4096];
    if (out) snprintf(outdir, sizeof outdir, "%s", out);
    else {
        char *dir = secap_xstrdup(secap_captioner_checkpoint(cp), "path");
        char *sl = strrchr(dir, '/');
        if (sl) *sl = 0;
        snprintf(outdir, sizeof outdir, "%s/eval-%s", sl ? dir : ".", split_name);
        free(dir);
    }
    mkdir_p(outdir);

    /* captions, with progress */
    const char **ids = secap_xcalloc((size_t)n, sizeof *ids, "ids");
    const char **audio = secap_xcalloc((size_t)n, sizeof *audio, "audio paths");
    for (int i = 0; i < n; i++) {
        ids[i] = d->items[idx[i]].id;
        audio[i] = d->items[idx[i]].audio;
    }
    char **hyp = secap_xcalloc((size_t)n, sizeof *hyp, "captions");
    int bs = batch > 0 ? batch : cfg->data.batch_size;
    int nd = draws ? draws : 1;
    /* dr[d * n + i]: draw d of clip i */
    char **dr = draws ? secap_xcalloc((size_t)nd * (size_t)n, sizeof *dr, "draws") : hyp;
    uint64_t seed0 = secap_captioner_decode(cp)->seed;
    if (draws && !secap_captioner_decode(cp)->do_sample) {
        secap_captioner_set(cp, "do_sample", "true");
        fprintf(stderr, PROG ": --draws %d: the decode settings do not sample; sampling switched on (decode.do_sample"
                "=true; SECap also sets num_beams 5, top_k 10, top_p 0.95, repetition_penalty 10, "
                "no_repeat_ngram_size 2)\n", draws);
    }
    double tc = secap_now();
    for (int dd = 0; dd < nd; dd++) {
        if (draws) {
            char sv[32];
            snprintf(sv, sizeof sv, "%llu", (unsigned long long)(seed0 + (uint64_t)dd));
            secap_captioner_set(cp, "seed", sv);
        }
        for (int i0 = 0; i0 < n; i0 += bs) {
            int B = n - i0 < bs ? n - i0 : bs;
            secap_captioner_run(cp, B, ids + i0, audio + i0, bs, dr + (size_t)dd * n + i0);
            double el = secap_now() - tc;
            long done = (long)dd * n + i0 + B, tot = (long)nd * n;
            fprintf(stderr, PROG ": captioned %ld/%ld clips%s, %.2f clips/s, ETA %.0f s\n", done, tot,
                    draws ? " x draws" : "", done / el, el / done * (tot - done));
        }
    }
    double cap_s = secap_now() - tc;
    secap_simmodel *sim = sim_model ? secap_sim_load(sim_model, sim_vocab, NULL) : NULL;
    /* kept[i * keep + k]: the k-th kept draw of clip i; dsim [n, nd, nd] */
    int *kept = NULL;
    double *dsim = NULL;
    char ***sets = NULL;   /* sets[k][i] = dr[kept[i * keep + k] * n + i] (borrowed) */
    if (draws) {
        kept = secap_xcalloc((size_t)n * (size_t)keep, sizeof *kept, "kept draws");
        dsim = secap_xcalloc((size_t)n * (size_t)nd * (size_t)nd, sizeof *dsim, "draw similarities");
        float *fs = secap_xcalloc((size_t)nd * (size_t)nd, sizeof *fs, "draw similarities");
        char **tx = secap_xcalloc((size_t)nd, sizeof *tx, "draw texts");
        for (int i = 0; i < n; i++) {
            double *S = dsim + (size_t)i * nd * nd;
            for (int dd = 0; dd < nd; dd++) tx[dd] = dr[(size_t)dd * n + i];
            draw_matrix(sim, nd, tx, S);
            for (int q = 0; q < nd * nd; q++) fs[q] = (float)S[q];
            secap_select_consensus(fs, nd, keep, kept + (size_t)i * keep);
        }
        free(fs);
        free(tx);
        sets = secap_xcalloc((size_t)keep, sizeof *sets, "result sets");
        for (int k = 0; k < keep; k++) {
            sets[k] = secap_xcalloc((size_t)n, sizeof *sets[k], "result set");
            for (int i = 0; i < n; i++) sets[k][i] = dr[(size_t)kept[(size_t)i * keep + k] * n + i];
        }
        for (int i = 0; i < n; i++) hyp[i] = secap_xstrdup(sets[0][i], "caption");
        fprintf(stderr, PROG ": --draws %d --keep %d: similarity %s\n", draws, keep,
                sim ? "BERT sentence cosine (--similarity-model)" : "character F1 (no --similarity-model)");
    }

    /* baselines */
    char **freq = secap_xcalloc((size_t)n, sizeof *freq, "baseline");
    char **rnd = secap_xcalloc((size_t)n, sizeof *rnd, "baseline");
    {
        int tot = 0;
        for (int j = 0; j < ntrain; j++) tot += d->items[tidx[j]].n_captions;
        const char **all = secap_xcalloc((size_t)tot, sizeof *all, "train captions");
        int k = 0;
        for (int j = 0; j < ntrain; j++)
            for (int c = 0; c < d->items[tidx[j]].n_captions; c++) all[k++] = d->items[tidx[j]].captions[c];
        /* counts by sorting a copy, then the first of the best counts in dataset order */
        const char **sorted = secap_xmalloc((size_t)tot * sizeof *sorted, "train captions");
        memcpy(sorted, all, (size_t)tot * sizeof *sorted);
        qsort(sorted, (size_t)tot, sizeof *sorted, cmp_str);
        int best = 0;
        for (int a = 0; a < tot;) {
            int b = a;
            while (b < tot && !strcmp(sorted[a], sorted[b])) b++;
            if (b - a > best) best = b - a;
            a = b;
        }
        const char *top = NULL;
        for (int j = 0; j < tot && !top; j++) {
            int cnt = 0;
            for (int a = 0; a < tot; a++) cnt += !strcmp(all[j], all[a]);
            if (cnt == best) top = all[j];
        }
        secap_rng r;
        secap_rng_seed_stream(&r, RANDOM_BASELINE_SEED, 0);
        for (int i = 0; i < n; i++) {
            freq[i] = secap_xstrdup(top, "baseline caption");
            rnd[i] = secap_xstrdup(d->items[tidx[secap_rng_below(&r, (uint64_t)ntrain)]].captions[0],
                                   "baseline caption");
        }
        fprintf(stderr, PROG ": frequent baseline: \"%s\" (%d of %d train captions)\n", top, best, tot);
        free(sorted);
        free(all);
    }

    /* outputs */
    write_hyps(outdir, "fid2captions.json", n, ids, hyp);
    write_hyps(outdir, "baseline_frequent.json", n, ids, freq);
    write_hyps(outdir, "baseline_random.json", n, ids, rnd);
    {
        char path[4200];
        snprintf(path, sizeof path, "%s/refs.json", outdir);
        cJSON *o = cJSON_CreateObject();
        for (int i = 0; i < n; i++) {
            const secap_item *it = &d->items[idx[i]];
            cJSON *a = cJSON_CreateArray();
            for (int c = 0; c < it->n_captions; c++) cJSON_AddItemToArray(a, cJSON_CreateString(it->captions[c]));
            cJSON_AddItemToObject(o, ids[i], a);
        }
        write_json_atomic(path, o);
        cJSON_Delete(o);
    }

    /* emotion labels as classes of the built-in keyword table */
    secap_emokw *kw = secap_emokw_default();
    int *emo_label = secap_xcalloc((size_t)n, sizeof *emo_label, "labels");
    int have_labels = 1;
    for (int i = 0; i < n && have_labels; i++) {
        int l = d->items[idx[i]].label;
        emo_label[i] = l >= 0 ? secap_emokw_find(kw, d->labels[l]) : -1;
        have_labels = emo_label[i] >= 0;
    }
    if (have_labels) {
        char path[4200];
        snprintf(path, sizeof path, "%s/emotion.txt", outdir);
        FILE *f = fopen(path, "wb");
        if (!f) secap_fatal(PROG ": %s: cannot write: %s", path, strerror(errno));
        for (int i = 0; i < n; i++) fprintf(f, "%s %s\n", ids[i], d->labels[d->items[idx[i]].label]);
        if (fclose(f)) secap_fatal(PROG ": %s: write failed: %s", path, strerror(errno));
    } else {
        fprintf(stderr, PROG ": note: the split's emotion labels are missing or not classes of the built-in keyword "
                "table (secap/emotion.h); no emotion accuracy\n");
    }

    row rows[3] = { { .name = draws ? "model: result set 1" : "model" }, { .name = "baseline: most frequent train caption" },
                    { .name = "baseline: random train clip's caption" } };
    score_row(&rows[0], n, ids, hyp, d, idx, kw, have_labels ? emo_label : NULL, sim);
    score_row(&rows[1], n, ids, freq, d, idx, kw, have_labels ? emo_label : NULL, sim);
    score_row(&rows[2], n, ids, rnd, d, idx, kw, have_labels ? emo_label : NULL, sim);

    /* table (scores x100 except CIDEr, as the paper prints them) and scores.json */
    printf("%s split of %s: %d clips, checkpoint %s (global step %lld), decode: prompt \"%s\", max_new_tokens %d, "
           "num_beams %d%s\n", split_name, dpath, n, secap_captioner_checkpoint(cp), secap_captioner_step(cp),
           secap_captioner_prompt(cp), secap_captioner_decode(cp)->max_new_tokens,
           secap_captioner_decode(cp)->num_beams, secap_captioner_decode(cp)->do_sample ? ", sampling" : "");
    printf("%-40s %7s %7s %7s %7s %7s %7s %7s %8s%s\n", "", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR",
           "ROUGE-L", "CIDEr", have_labels ? "Emotion" : "", sim ? " Similar" : "");
    cJSON *js = cJSON_CreateObject();
    for (int k = 0; k < 3; k++) {
        const row *r = &rows[k];
        printf("%-40s %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.3f", r->name, 100 * r->s.bleu[0], 100 * r->s.bleu[1],
               100 * r->s.bleu[2], 100 * r->s.bleu[3], 100 * r->s.meteor, 100 * r->s.rouge_l, r->s.cider);
        if (r->have_emo) printf(" %7.1f%%", 100 * r->emo.accuracy);
        if (r->have_sim) printf(" %7.2f", r->sim.similarity);
        printf("\n");
        cJSON *o = cJSON_CreateObject();
        const char *names[7] = { "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr" };
        double v[7] = { r->s.bleu[0], r->s.bleu[1], r->s.bleu[2], r->s.bleu[3], r->s.meteor, r->s.rouge_l,
                        r->s.cider };
        for (int m = 0; m < 7; m++) cJSON_AddNumberToObject(o, names[m], v[m]);
        if (r->have_emo) {
            cJSON_AddNumberToObject(o, "Emotion_accuracy", r->emo.accuracy);
            cJSON_AddNumberToObject(o, "Emotion_none", r->emo.n ? (double)r->emo.none / r->emo.n : 0);
            cJSON_AddNumberToObject(o, "Emotion_ambiguous", r->emo.n ? (double)r->emo.ambiguous / r->emo.n : 0);
        }
        if (r->have_sim) cJSON_AddNumberToObject(o, "Similarity", r->sim.similarity);
        cJSON_AddItemToObject(js, k == 0 ? "model" : k == 1 ? "baseline_frequent" : "baseline_random", o);
    }
    if (draws) {
        /* the K result sets: files, scores, mean and sample std per metric */
        row *rs = secap_xcalloc((size_t)keep, sizeof *rs, "result set rows");
        double v[NMETRIC + 2], sum[NMETRIC + 2] = { 0 }, sq[NMETRIC + 2] = { 0 };
        const char *names[NMETRIC + 2];
        int nm = 0;
        cJSON *dj = cJSON_CreateObject(), *sj = cJSON_CreateArray();
        for (int k = 0; k < keep; k++) {
            char name[64];
            snprintf(name, sizeof name, "fid2captions_draw%d.json", k + 1);
            write_hyps(outdir, name, n, ids, sets[k]);
            score_row(&rs[k], n, ids, sets[k], d, idx, kw, have_labels ? emo_label : NULL, sim);
            nm = row_values(&rs[k], v, names);
            cJSON *o = cJSON_CreateObject();
            for (int m = 0; m < nm; m++) {
                cJSON_AddNumberToObject(o, names[m], v[m]);
                sum[m] += v[m];
            }
            cJSON_AddItemToArray(sj, o);
        }
        double mean[NMETRIC + 2], sd[NMETRIC + 2];
        for (int m = 0; m < nm; m++) mean[m] = sum[m] / keep;
        for (int k = 0; k < keep; k++) {
            row_values(&rs[k], v, names);
            for (int m = 0; m < nm; m++) sq[m] += (v[m] - mean[m]) * (v[m] - mean[m]);
        }
        for (int m = 0; m < nm; m++) sd[m] = keep > 1 ? sqrt(sq[m] / (keep - 1)) : 0;
        printf("\n--draws %d --keep %d (similarity: %s; std: sample, divisor %d)\n", draws, keep,
               sim ? "BERT sentence cosine" : "character F1", keep > 1 ? keep - 1 : 1);
        printf("%-40s", "");
        for (int m = 0; m < nm; m++)
            printf(" %8s", m < NMETRIC ? METRIC_LABEL[m] : !strcmp(names[m], "Similarity") ? "Similar" : "Emotion");
        printf("\n");
        for (int k = 0; k < keep + 2; k++) {
            char name[64];
            if (k < keep) snprintf(name, sizeof name, "result set %d", k + 1);
            else snprintf(name, sizeof name, "%s", k == keep ? "mean" : "std");
            printf("%-40s", name);
            if (k < keep) row_values(&rs[k], v, names);
            for (int m = 0; m < nm; m++) {
                double x = k < keep ? v[m] : k == keep ? mean[m] : sd[m];
                /* x100 except CIDEr and the similarity (already x100) */
                printf(" %8.3f", m == NMETRIC - 1 || !strcmp(names[m], "Similarity") ? x : 100 * x);
            }
            printf("\n");
        }
        cJSON *mj = cJSON_CreateObject(), *sdj = cJSON_CreateObject();
        for (int m = 0; m < nm; m++) {
            cJSON_AddNumberToObject(mj, names[m], mean[m]);
            cJSON_AddNumberToObject(sdj, names[m], sd[m]);
        }
        cJSON_AddNumberToObject(dj, "draws", draws);
        cJSON_AddNumberToObject(dj, "keep", keep);
        cJSON_AddStringToObject(dj, "similarity", sim ? "bert_cosine" : "char_f1");
        cJSON_AddStringToObject(dj, "std", "sample (divisor keep - 1)");
        cJSON_AddNumberToObject(dj, "seed", (double)seed0);
        cJSON_AddItemToObject(dj, "sets", sj);
        cJSON_AddItemToObject(dj, "mean", mj);
        cJSON_AddItemToObject(dj, "std_dev", sdj);
        cJSON_AddItemToObject(js, "draws", dj);
        free(rs);
        /* draws.json: per clip the draws, their similarity matrix and the kept draws */
        cJSON *o = cJSON_CreateObject();
        for (int i = 0; i < n; i++) {
            cJSON *c = cJSON_CreateObject(), *t = cJSON_CreateArray(), *S = cJSON_CreateArray(),
                  *kj = cJSON_CreateArray();
            for (int dd = 0; dd < nd; dd++) {
                cJSON_AddItemToArray(t, cJSON_CreateString(dr[(size_t)dd * n + i]));
                cJSON *r = cJSON_CreateArray();
                for (int e = 0; e < nd; e++)
                    cJSON_AddItemToArray(r, cJSON_CreateNumber(dsim[((size_t)i * nd + dd) * nd + e]));
                cJSON_AddItemToArray(S, r);
            }
            for (int k = 0; k < keep; k++) cJSON_AddItemToArray(kj, cJSON_CreateNumber(kept[(size_t)i * keep + k]));
            cJSON_AddItemToObject(c, "draws", t);
            cJSON_AddItemToObject(c, "sim", S);
            cJSON_AddItemToObject(c, "kept", kj);
            cJSON_AddItemToObject(o, ids[i], c);
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/draws.json", outdir);
        write_json_atomic(path, o);
        cJSON_Delete(o);
    }
    cJSON_AddNumberToObject(js, "clips", n);
    cJSON_AddNumberToObject(js, "caption_seconds", cap_s);
    {
        char path[4200];
        snprintf(path, sizeof path, "%s/scores.json", outdir);
        write_json_atomic(path, js);
    }
    cJSON_Delete(js);
    printf("captioned %d clips in %.1f s (%.2f clips/s); files in %s\n", n, cap_s, n / (cap_s > 0 ? cap_s : 1),
           outdir);
    const char *slash = strrchr(secap_captioner_checkpoint(cp), '/');
    printf("report: bin/secap-report --captions %s/fid2captions.json --refs %s/refs.json --data %s --run %.*s "
           "--out %s/report.html\n", outdir, outdir, dpath,
           slash ? (int)(slash - secap_captioner_checkpoint(cp)) : 1, slash ? secap_captioner_checkpoint(cp) : ".",
           outdir);
    if (fflush(stdout)) secap_fatal(PROG ": writing stdout: %s", strerror(errno));

    if (sim) secap_sim_free(sim);
    secap_emokw_free(kw);
    free(emo_label);
    for (int i = 0; i < n; i++) { free(hyp[i]); free(freq[i]); free(rnd[i]); }
    if (draws) {
        for (size_t q = 0; q < (size_t)nd * (size_t)n; q++) free(dr[q]);
        for (int k = 0; k < keep; k++) free(sets[k]);
        free(dr); free(sets); free(kept); free(dsim);
    }
    free(hyp); free(freq); free(rnd); free(ids); free(audio); free(idx); free(tidx);
    secap_dataset_free(d);
    secap_captioner_free(cp);
    free(over);
    return 0;
}
