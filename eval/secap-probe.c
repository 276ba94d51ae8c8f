/* secap-probe - how much of the transcript do speech embeddings carry?
 *
 *   secap-probe --data DIR --speech EMB.h5 [--speech EMB.h5 ...] [--fit SPLITS] [--eval SPLITS]
 *               [--lambda L] [--min-count N] [--length-window W] [--cased] [--per-clip FILE.tsv]
 *
 * The transcript-matching probe of SECAP.md's mutual-information loss: the
 * vCLUB term of stage 1 is meant to take the transcript out of the speech
 * (Q-)embedding; this measures what is left.  For each --speech file (as
 * bin/secap-embed --data writes it: kind "speech", one dataset per clip id),
 * a ridge map from the clips' embeddings to bag-of-words vectors of their
 * transcripts (tf-idf over BERT basic tokens: each CJK character one term)
 * is fitted on the --fit split(s) and every --eval clip's prediction is
 * compared with the transcripts of the other --eval clips.  Printed per
 * file: the matching AUC (the probability that a clip's own transcript
 * outscores another clip's; chance 0.5) with its standard error, recall@1
 * and its chance; with two or more files, each one's per-clip AUC minus the
 * first file's, paired over the same clips, with its standard error.  The
 * definitions are in src/train/probe.c's header comment.
 *
 * --length-window W counts only rival transcripts whose length (basic
 * tokens) is within W of the clip's own, so that the duration of the speech
 * cannot do the matching alone.  Clips whose transcript text is the same
 * are never each other's rivals.  --per-clip FILE writes
 *   id \t split \t length \t AUC of file 1 \t AUC of file 2 ...
 * for the evaluated clips (a tab-separated table with a header line; written
 * atomically, and only over a table of an earlier run).
 *
 * Defaults: --fit train --eval dev,test --lambda 1 --min-count 2, no length
 * window, lower-cased terms (--cased keeps case).  The splits are the
 * dataset's (train.list / dev.list / test.list, else by hash as secap-data
 * prints them).  Exit 0 on success, 1 on any error (a bad argument, or
 * bad input: the file and the clip id named).
 */
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/fileutil.h"
#include "secap/featcache.h"
#include "secap/h5io.h"
#include "secap/probe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "secap-probe"
#define PER_CLIP_HEAD "id\tsplit\tlength"

typedef struct {
    const char *data, *per_clip;
    const char **speech;
    int nspeech;
    unsigned splits_fit, splits_eval;   /* bit s: SECAP_SPLIT_s */
    double lambda;
    int min_count, window, lower_case;
} options;

static const char *const SPLIT[SECAP_NSPLITS] = { "train", "dev", "test" };

static void usage(FILE *f)
{
    fputs("usage: secap-probe --data DIR --speech EMB.h5 [--speech EMB.h5 ...] [--fit SPLITS] [--eval SPLITS]\n"
          "                   [--lambda L] [--min-count N] [--length-window W] [--cased] [--per-clip FILE.tsv]\n"
          "\n"
          "How well speech embeddings identify their clip's transcript: a ridge map from the embeddings\n"
          "(bin/secap-embed --data DIR --out EMB.h5) to tf-idf bags of the transcripts' words (each CJK\n"
          "character a word) is fitted on --fit and scored on --eval.  Prints per file the matching AUC\n"
          "(chance 0.5) +- its standard error, recall@1 (chance), and each later file's paired AUC\n"
          "difference to the first over the same clips.\n"
          "\n"
          "  --data DIR          the dataset (SECap layout or .jsonl manifest) with transcripts\n"
          "  --speech FILE       speech embeddings holding every clip of the --fit and --eval splits\n"
          "                      (repeat to compare runs; the first is the baseline)\n"
          "  --fit SPLITS        comma-separated splits the map is fitted on (default train)\n"
          "  --eval SPLITS       comma-separated splits scored (default dev,test)\n"
          "  --lambda L          ridge penalty (default 1; embeddings are L2-normalised)\n"
          "  --min-count N       keep the words in N or more fitting transcripts (default 2)\n"
          "  --length-window W   rivals only with a transcript length within W words of the clip's\n"
          "                      (default: every other transcript)\n"
          "  --cased             keep case in words (default: lower-case, strip accents)\n"
          "  --per-clip FILE     write each evaluated clip's AUC per file as a TSV\n"
          "  --help              this text\n",
          f);
}

static unsigned parse_splits(const char *v, const char *flag)
{
    unsigned m = 0;
    char *copy = secap_xstrdup(v, "splits"), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int s = 0; s < SECAP_NSPLITS; s++)
            if (!strcmp(t, SPLIT[s])) k = s;
        if (k < 0) {
            secap_fatal("%s %s: unknown split \"%s\" (hint: train, dev, test, comma-separated)", flag, v, t);
        }
        m |= 1u << k;
    }
    free(copy);
    if (!m) secap_fatal("%s is empty (hint: e.g. %s dev,test)", flag, flag);
    return m;
}

static options parse_args(int argc, char **argv)
{
    options o = { .splits_fit = 1u << SECAP_SPLIT_TRAIN,
                  .splits_eval = 1u << SECAP_SPLIT_DEV | 1u << SECAP_SPLIT_TEST,
                  .lambda = 1.0, .min_count = 2, .window = -1, .lower_case = 1 };
    o.speech = secap_xcalloc((size_t)argc, sizeof *o.speech, "speech list");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(o.speech); exit(0); }
        else if (secap_cli_is(a, "--data")) o.data = secap_cli_value(argc, argv, &i, "--data", PROG);
        else if (secap_cli_is(a, "--speech")) o.speech[o.nspeech++] = secap_cli_value(argc, argv, &i, "--speech", PROG);
        else if (secap_cli_is(a, "--per-clip")) o.per_clip = secap_cli_value(argc, argv, &i, "--per-clip", PROG);
        else if (secap_cli_is(a, "--fit")) o.splits_fit = parse_splits(secap_cli_value(argc, argv, &i, "--fit", PROG), "--fit");
        else if (secap_cli_is(a, "--eval"))
            o.splits_eval = parse_splits(secap_cli_value(argc, argv, &i, "--eval", PROG), "--eval");
        else if (secap_cli_is(a, "--lambda")) {
            const char *v = secap_cli_value(argc, argv, &i, "--lambda", PROG);
            char *end;
            o.lambda = strtod(v, &end);
            if (end == v || *end || !(o.lambda > 0) || !isfinite(o.lambda))
                secap_fatal("--lambda %s: need a number > 0 (hint: --lambda 1)", v);
        } else if (secap_cli_is(a, "--min-count"))
            o.min_count = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--min-count", PROG), "--min-count", 1,
                                              1000000);
        else if (secap_cli_is(a, "--length-window"))
            o.window = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--length-window", PROG), "--length-window",
                                           0, 1000000);
        else if (!strcmp(a, "--cased")) o.lower_case = 0;
        else {
            usage(stderr);
            secap_fatal("unknown argument \"%s\" (hint: " PROG " --help)", a);
        }
    }
    if (!o.data) secap_fatal("--data DIR is required (hint: " PROG " --help)");
    if (!o.nspeech) secap_fatal("give at least one --speech EMB.h5 (hint: bin/secap-embed --model RUN --data DIR --out EMB.h5)");
    return o;
}

/* The embeddings of the clips idx[0..n) from file path into [n, *dim]. */
static float *read_speech(const char *path, const secap_dataset *d, const int *idx, int n, int *dim)
{
    secap_h5 *h = secap_h5_open(path, 0);
    char *kind = NULL;
    if (secap_h5_get_attr_str(h, NULL, "kind", &kind) != 0)
        secap_fatal("%s: no \"kind\" attribute: not a file of bin/secap-embed (hint: bin/secap-embed --model RUN "
                    "--data DIR --out %s)", path, path);
    if (strcmp(kind, "speech"))
        secap_fatal("%s: holds %s embeddings, not speech (hint: bin/secap-embed --model RUN --data DIR writes the "
                    "speech ones)", path, kind);
    free(kind);
    int64_t E = 0;
    if (secap_h5_get_attr_int(h, NULL, "embed_dim", &E) != 0 || E < 1 || E > 1 << 20)
        secap_fatal("%s: no valid embed_dim attribute (hint: rewrite it with bin/secap-embed)", path);
    float *x = secap_xmalloc((size_t)n * (size_t)E * sizeof *x, "embeddings");
    for (int k = 0; k < n; k++) {
        const char *id = d->items[idx[k]].id;
        char *name = secap_featcache_name(id);
        if (!secap_h5_has(h, name))
            secap_fatal("%s: no embedding for clip \"%s\" (%s split) (hint: embed the whole dataset: bin/secap-embed "
                        "--model RUN --data DIR --out %s)", path, id, SPLIT[d->items[idx[k]].split], path);
        int64_t dims[SECAP_H5_MAX_RANK];
        int rank = secap_h5_shape(h, name, dims);
        if (rank != 1 || dims[0] != E)
            secap_fatal("%s: clip \"%s\": a dataset of rank %d%s, expected one vector of embed_dim %lld (hint: one "
                        "embedding per clip, as bin/secap-embed writes)", path, id, rank, rank == 1 ? " and another "
                        "length" : "", (long long)E);
        float *v = secap_h5_read_f32(h, name, NULL, NULL);
        for (int64_t j = 0; j < E; j++)
            if (!isfinite(v[j]))
                secap_fatal("%s: clip \"%s\": element %lld is not finite (hint: re-embed with a model whose weights "
                            "are finite)", path, id, (long long)j);
        memcpy(x + (size_t)k * E, v, (size_t)E * sizeof *x);
        free(v);
        free(name);
    }
    secap_h5_close(h);
    *dim = (int)E;
    return x;
}

static void split_names(unsigned m, char *buf, size_t cap)
{
    buf[0] = 0;
    for (int s = 0; s < SECAP_NSPLITS; s++)
        if (m >> s & 1) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "," : "", SPLIT[s]);
}

/* Outputs never replace an input or a file of another kind: --per-clip may
 * only name a new file or a per-clip table of an earlier run. */
static void check_per_clip(const options *o)
{
    const char *p = o->per_clip;
    if (!p) return;
    if (secap_is_dir(p)) secap_fatal("--per-clip %s is a directory (hint: give a file name, e.g. %s/clips.tsv)", p, p);
    for (int f = 0; f < o->nspeech; f++)
        if (secap_same_file(p, o->speech[f]))
            secap_fatal("--per-clip %s is the input --speech %s (hint: give another file name)", p, o->speech[f]);
    FILE *f = fopen(p, "r");
    if (!f) return;
    char line[64] = "";
    int ok = fgets(line, sizeof line, f) && !strncmp(line, PER_CLIP_HEAD, strlen(PER_CLIP_HEAD));
    fclose(f);
    char what[96];
    if (!ok)
        secap_fatal("--per-clip %s exists and is %s, not a per-clip table of an earlier run (hint: outputs never "
                    "replace a file of another kind; choose another path or remove it)", p,
                    secap_describe_file(p, what, sizeof what));
}

/* id, split, length, then each file's AUC, per evaluated clip; written to
 * "<path>.tmp.<pid>" and renamed into place. */
static void write_per_clip(const options *o, const secap_dataset *d, const int *idx, int n, const unsigned char *ev,
                           const int *len, const double *auc)
{
    char *tmp = secap_xmalloc(strlen(o->per_clip) + 32, "path");
    sprintf(tmp, "%s.tmp.%ld", o->per_clip, (long)getpid());
    secap_tmp_sweep(o->per_clip);
    FILE *t = fopen(tmp, "w");
    if (!t)
        secap_fatal("--per-clip %s: cannot write %s: %s (hint: check the directory exists and is writable)",
                    o->per_clip, tmp, strerror(errno));
    secap_tmp_register(tmp);
    fputs(PER_CLIP_HEAD, t);
    for (int f = 0; f < o->nspeech; f++) fprintf(t, "\tauc_%d", f + 1);
    fputc('\n', t);
    for (int k = 0; k < n; k++) {
        if (!ev[k]) continue;
        fprintf(t, "%s\t%s\t%d", d->items[idx[k]].id, SPLIT[d->items[idx[k]].split], len[k]);
        for (int f = 0; f < o->nspeech; f++) {
            double v = auc[(size_t)f * n + k];
            if (isnan(v)) fputs("\tnan", t);
            else fprintf(t, "\t%.6f", v);
        }
        fputc('\n', t);
    }
    if (fflush(t) != 0 || fsync(fileno(t)) != 0 || fclose(t) != 0)
        secap_fatal("%s: write failed: %s (hint: disk full?)", tmp, strerror(errno));
    if (rename(tmp, o->per_clip) != 0)
        secap_fatal("%s: cannot rename %s into place: %s", o->per_clip, tmp, strerror(errno));
    secap_tmp_unregister(tmp);
    free(tmp);
}

int main(int argc, char **argv)
{
    options o = parse_args(argc, argv);
    check_per_clip(&o);
    secap_data_config dc;
    secap_data_config_default(&dc);
    secap_problems probs = { 0 };
    secap_dataset *d = secap_dataset_read(o.data, &dc, &probs);
    if (!d) {
        secap_problems_print(&probs, stderr);
        secap_problems_free(&probs);
        secap_fatal("--data %s: cannot read the dataset (hint: a directory with wav.scp, or a .jsonl manifest)", o.data);
    }
    secap_problems_free(&probs);
    if (!d->has_transcripts)
        secap_fatal("--data %s: no transcripts (hint: a SECap-layout directory needs text.txt, \"<id> <transcript>\" "
                    "lines; a manifest a \"transcript\" field)", o.data);

    /* the clips taken: fitting or evaluated, with a transcript */
    int *idx = secap_xmalloc((size_t)(d->n ? d->n : 1) * sizeof *idx, "clips"), n = 0, skipped = 0;
    for (int i = 0; i < d->n; i++) {
        unsigned bit = 1u << d->items[i].split;
        if (!((o.splits_fit | o.splits_eval) & bit)) continue;
        if (!d->items[i].transcript || !d->items[i].transcript[0]) { skipped++; continue; }
        idx[n++] = i;
    }
    unsigned char *fit = secap_xcalloc((size_t)(n ? n : 1), 1, "fit"), *ev = secap_xcalloc((size_t)(n ? n : 1), 1, "eval");
    int nf = 0, ne = 0;
    const char **text = secap_xmalloc((size_t)(n ? n : 1) * sizeof *text, "texts");
    for (int k = 0; k < n; k++) {
        unsigned bit = 1u << d->items[idx[k]].split;
        fit[k] = (o.splits_fit & bit) != 0;
        ev[k] = (o.splits_eval & bit) != 0;
        nf += fit[k];
        ne += ev[k];
        text[k] = d->items[idx[k]].transcript;
    }
    char fs[32], es[32];
    split_names(o.splits_fit, fs, sizeof fs);
    split_names(o.splits_eval, es, sizeof es);
    if (nf < 2 || ne < 2)
        secap_fatal("--data %s: %d clips with a transcript in --fit %s and %d in --eval %s; the probe needs 2 or more "
                    "in each (hint: secap-data stats --data %s prints the splits)", o.data, nf, fs, ne, es, o.data);
    int V = 0, *len = secap_xmalloc((size_t)n * sizeof *len, "lengths");
    float *y = secap_probe_bag(text, n, fit, o.min_count, o.lower_case, &V, len);
    if (V < 1)
        secap_fatal("--data %s: no word occurs in %d or more fitting transcripts (hint: a lower --min-count)", o.data,
                    o.min_count);
    int *group = secap_xmalloc((size_t)n * sizeof *group, "groups");
    secap_probe_text_groups(text, n, group);   /* equal transcripts are not rivals */
    /* every file read and checked before anything is printed */
    float **x = secap_xcalloc((size_t)o.nspeech, sizeof *x, "embeddings");
    int *dim = secap_xmalloc((size_t)o.nspeech * sizeof *dim, "dims");
    for (int f = 0; f < o.nspeech; f++) x[f] = read_speech(o.speech[f], d, idx, n, &dim[f]);
    printf("%s: %d fitting clips (%s), %d evaluated (%s)%s; %d words in %d or more fitting transcripts; lambda %g; "
           "rivals: %s\n", o.data, nf, fs, ne, es, skipped ? " (clips without a transcript left out)" : "", V,
           o.min_count, o.lambda, o.window < 0 ? "every other transcript" : "transcripts within the length window");
    if (o.window >= 0) printf("length window: %d words\n", o.window);
    printf("%-40s  %-16s  %-16s  %s\n", "speech embeddings", "AUC (chance 0.5)", "R@1 (chance)", "AUC - first (paired)");
    double *auc = secap_xmalloc((size_t)o.nspeech * n * sizeof *auc, "AUCs");
    for (int f = 0; f < o.nspeech; f++) {
        secap_probe_match_result r;
        double *row = auc + (size_t)f * n;
        secap_probe_match(x[f], y, n, dim[f], V, fit, ev, group, len, o.window, o.lambda, row, &r);
        free(x[f]);
        char a[64], b[64], c[64] = "";
        snprintf(a, sizeof a, "%.3f +- %.3f", r.auc, r.auc_se);
        snprintf(b, sizeof b, "%.3f (%.3f)", r.r1, r.r1_chance);
        if (f > 0) {   /* paired over the clips evaluated in both */
            double s = 0, s2 = 0;
            int m = 0;
            for (int k = 0; k < n; k++) {
                if (isnan(row[k]) || isnan(auc[k])) continue;
                double dd = row[k] - auc[k];
                s += dd;
                s2 += dd * dd;
                m++;
            }
            if (m > 1) {
                double mean = s / m, se = sqrt(fmax(0.0, (s2 - s * s / m) / (m - 1)) / m);
                snprintf(c, sizeof c, "%+.3f +- %.3f (%.1f SE)", mean, se, se > 0 ? mean / se : 0.0);
            }
        }
        printf("%-40s  %-16s  %-16s  %s\n", o.speech[f], a, b, c);
        if (!r.neval)
            fprintf(stderr, PROG ": warning: %s: no evaluated clip has a rival transcript (hint: a wider "
                    "--length-window)\n", o.speech[f]);
    }
    if (o.per_clip) write_per_clip(&o, d, idx, n, ev, len, auc);
    fflush(stdout);
    free(x); free(dim); free(auc); free(group); free(y); free(len); free(text); free(fit); free(ev); free(idx); free(o.speech);
    secap_dataset_free(d);
    return 0;
}
