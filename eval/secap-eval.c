/* secap-eval - caption a split with a trained checkpoint and score it against
 * the references and two baselines.
 *
 *   secap-eval --checkpoint <ckpt.h5 | run dir> [--split test|dev|train]
 *              [--data <dataset dir | manifest.jsonl>] [--decode.key=value ...]
 *              [--out <dir>] [--limit N] [--batch N] [--threads N] [--no-cache]
 *              [--similarity-model bert.h5 --similarity-vocab vocab.txt]
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
        "Captions the split, writes fid2captions.json and refs.json into --out (default\n"
        "<run dir>/eval-<split>) and prints BLEU-1..4, METEOR, ROUGE-L, CIDEr and the emotion\n"
        "keyword accuracy of the model and of two baselines (most frequent training caption;\n"
        "caption of a random training clip).\n");
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

int main(int argc, char **argv)
{
    const char *ckpt = NULL, *split_name = "test", *data = NULL, *out = NULL, *sim_model = NULL, *sim_vocab = NULL;
    int limit = 0, batch = 0, threads = 0, use_cache = 1, nover = 0;
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
    double tc = secap_now();
    for (int i0 = 0; i0 < n; i0 += bs) {
        int B = n - i0 < bs ? n - i0 : bs;
        secap_captioner_run(cp, B, ids + i0, audio + i0, bs, hyp + i0);
        double el = secap_now() - tc;
        fprintf(stderr, PROG ": captioned %d/%d clips, %.2f clips/s, ETA %.0f s\n", i0 + B, n, (i0 + B) / el,
                el / (i0 + B) * (n - i0 - B));
    }
    double cap_s = secap_now() - tc;

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
    secap_simmodel *sim = sim_model ? secap_sim_load(sim_model, sim_vocab, NULL) : NULL;

    row rows[3] = { { .name = "model" }, { .name = "baseline: most frequent train caption" },
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
    free(hyp); free(freq); free(rnd); free(ids); free(audio); free(idx); free(tidx);
    secap_dataset_free(d);
    secap_captioner_free(cp);
    free(over);
    return 0;
}
