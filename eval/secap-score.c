/* secap-score - caption metrics exactly as the COCO caption toolkit.
 *
 *   secap-score --refs refs.json --hyps hyps.json [--tokenize zh-char|space]
 *               [--metrics Bleu_1,...,CIDEr] [--format json|table]
 *               [--per-item items.json]
 *               [--similarity-model bert.h5 --similarity-vocab vocab.txt]
 *               [--emotion-labels emotion.txt [--emotion-keywords kw.txt]]
 *
 * Both files in SECap fid2captions.json form.  Prints the corpus scores (one
 * JSON object keyed Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, or a table);
 * --per-item writes {id: {metric: score}} in the hypothesis file's order.
 * Reference ids without a hypothesis are reported on stderr and ignored.
 *
 * With --similarity-model/--similarity-vocab the output adds SECap's sentence
 * similarity (secap/similarity.h): "Similarity" (mean item cosine; x100 is
 * the paper's number) and "Similarity>0.5", ">0.6", ">0.8" (shares of
 * items); per item "Similarity".  With --emotion-labels (`<id> <class>` per
 * line) it adds the emotion keyword accuracy (secap/emotion.h):
 * "Emotion_accuracy", "Emotion_none", "Emotion_ambiguous"; per item
 * "Emotion" (the class named, "none" or "ambiguous") and "Emotion_correct".
 * Without these options the output is what it always was.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "secap/base.h"
#include "secap/cli.h"
#include "secap/fileutil.h"
#include "secap/score.h"
#include "secap/captions.h"
#include "secap/emotion.h"
#include "secap/similarity.h"

enum { NMETRIC = 7 };
static const char *const NAMES[NMETRIC] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"};
static const unsigned MASKS[NMETRIC] = {SECAP_METRIC_BLEU, SECAP_METRIC_BLEU, SECAP_METRIC_BLEU, SECAP_METRIC_BLEU,
                                        SECAP_METRIC_METEOR, SECAP_METRIC_ROUGE_L, SECAP_METRIC_CIDER};

typedef struct {
    const char *refs, *hyps, *per_item;
    secap_tokenize_mode mode;
    int table;               /* --format table */
    int want[NMETRIC];       /* metrics to report */
    const char *sim_model, *sim_vocab;      /* --similarity-model / --similarity-vocab */
    const char *emo_labels, *emo_keywords;  /* --emotion-labels / --emotion-keywords */
} options;

/* Scores beyond the toolkit's, NULL-free only when asked for. */
typedef struct {
    int have_sim;
    secap_sim_summary sim;
    double *sim_item;          /* [n] mean cosine to the references */
    secap_emokw *kw;           /* NULL: no emotion accuracy */
    secap_emo_acc emo;
    int *emo_match;            /* [n] class index, SECAP_EMO_NONE or SECAP_EMO_AMBIGUOUS */
    int *emo_label;            /* [n] */
} extras;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-score --refs <refs.json> --hyps <hyps.json> [--tokenize zh-char|space]\n"
        "                   [--metrics Bleu_1,Bleu_2,Bleu_3,Bleu_4,METEOR,ROUGE_L,CIDEr]\n"
        "                   [--format json|table] [--per-item <file>]\n"
        "                   [--similarity-model <bert.h5> --similarity-vocab <vocab.txt>]\n"
        "                   [--emotion-labels <emotion.txt> [--emotion-keywords <file>]]\n"
        "Files: SECap fid2captions.json, {id: caption} or {id: [captions]}; a hypothesis\n"
        "list uses its first entry.  --metrics also takes Bleu (all four) and all.\n");
}

static double metric_value(const secap_scores *s, int m)
{
    if (m < 4) return s->bleu[m];
    return m == 4 ? s->meteor : m == 5 ? s->rouge_l : s->cider;
}

static void parse_metrics(options *o, const char *list)
{
    memset(o->want, 0, sizeof o->want);
    char *copy = secap_xstrdup(list, "metric list");
    /* strsep, not strtok: "Bleu,,METEOR" and "" have empty names to refuse */
    for (char *rest = copy, *tok; (tok = strsep(&rest, ",")) != NULL;) {
        if (!*tok)
            secap_fatal("--metrics \"%s\": empty metric name (hint: a comma-separated list such as Bleu,METEOR, "
                        "or all)", list);
        int hit = 0;
        for (int m = 0; m < NMETRIC; m++)
            if (!strcasecmp(tok, NAMES[m]) || !strcasecmp(tok, "all") ||
                (m < 4 && !strcasecmp(tok, "Bleu"))) { o->want[m] = 1; hit = 1; }
        if (!hit)
            secap_fatal("--metrics: unknown metric \"%s\" (hint: Bleu_1..Bleu_4, Bleu, METEOR, ROUGE_L, CIDEr or all)", tok);
    }
    free(copy);
}

static options parse_args(int argc, char **argv)
{
    options o = {.mode = SECAP_TOK_ZH_CHAR};
    for (int m = 0; m < NMETRIC; m++) o.want[m] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (secap_cli_is(a, "--refs")) o.refs = secap_cli_value(argc, argv, &i, "--refs", "secap-score");
        else if (secap_cli_is(a, "--hyps")) o.hyps = secap_cli_value(argc, argv, &i, "--hyps", "secap-score");
        else if (secap_cli_is(a, "--per-item")) o.per_item = secap_cli_value(argc, argv, &i, "--per-item", "secap-score");
        else if (secap_cli_is(a, "--similarity-model"))
            o.sim_model = secap_cli_value(argc, argv, &i, "--similarity-model", "secap-score");
        else if (secap_cli_is(a, "--similarity-vocab"))
            o.sim_vocab = secap_cli_value(argc, argv, &i, "--similarity-vocab", "secap-score");
        else if (secap_cli_is(a, "--emotion-labels"))
            o.emo_labels = secap_cli_value(argc, argv, &i, "--emotion-labels", "secap-score");
        else if (secap_cli_is(a, "--emotion-keywords"))
            o.emo_keywords = secap_cli_value(argc, argv, &i, "--emotion-keywords", "secap-score");
        else if (secap_cli_is(a, "--metrics")) parse_metrics(&o, secap_cli_value(argc, argv, &i, "--metrics", "secap-score"));
        else if (secap_cli_is(a, "--tokenize")) {
            const char *v = secap_cli_value(argc, argv, &i, "--tokenize", "secap-score");
            int mode = secap_tokenize_mode_parse(v);
            if (mode < 0) secap_fatal("--tokenize: unknown mode \"%s\" (hint: zh-char or space)", v);
            o.mode = (secap_tokenize_mode)mode;
        } else if (secap_cli_is(a, "--format")) {
            const char *v = secap_cli_value(argc, argv, &i, "--format", "secap-score");
            if (strcmp(v, "json") && strcmp(v, "table"))
                secap_fatal("--format: unknown format \"%s\" (hint: json or table)", v);
            o.table = !strcmp(v, "table");
        } else {
            secap_fatal("unknown argument \"%s\" (hint: secap-score --help)", a);
        }
    }
    if (!o.refs || !o.hyps) { usage(stderr); secap_fatal("--refs and --hyps are required (hint: secap-score --help)"); }
    if (!o.sim_model != !o.sim_vocab)
        secap_fatal("--similarity-model and --similarity-vocab go together (hint: the BERT weight file from "
                    "tools/convert_hf.py and the vocab.txt of the same checkpoint)");
    if (o.emo_keywords && !o.emo_labels)
        secap_fatal("--emotion-keywords needs --emotion-labels (hint: the `<id> <class>` label file)");
    return o;
}

/* Shortest decimal that reads back as exactly x (like Python's repr). */
static void fmt_double(char *buf, size_t n, double x)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

/* The toolkit metrics of s, without the closing brace; returns 0 when nothing was printed. */
static int print_scores_open(FILE *f, const options *o, const secap_scores *s)
{
    char num[32];
    int first = 1;
    fputc('{', f);
    for (int m = 0; m < NMETRIC; m++) {
        if (!o->want[m]) continue;
        fmt_double(num, sizeof num, metric_value(s, m));
        fprintf(f, "%s\"%s\": %s", first ? "" : ", ", NAMES[m], num);
        first = 0;
    }
    return !first;
}

static void print_num(FILE *f, int *first, const char *key, double v)
{
    char num[32];
    fmt_double(num, sizeof num, v);
    fprintf(f, "%s\"%s\": %s", *first ? "" : ", ", key, num);
    *first = 0;
}

static const char *emo_name(const extras *x, int m)
{
    return m == SECAP_EMO_NONE ? "none" : m == SECAP_EMO_AMBIGUOUS ? "ambiguous" : secap_emokw_class(x->kw, m);
}

/* Corpus scores (item < 0) or item scores, extras included. */
static void print_all_json(FILE *f, const options *o, const secap_scores *s, const extras *x, int item)
{
    int first = !print_scores_open(f, o, s);
    if (x->have_sim) {
        if (item >= 0) print_num(f, &first, "Similarity", x->sim_item[item]);
        else {
            print_num(f, &first, "Similarity", x->sim.similarity / 100);
            char key[32];
            for (int t = 0; t < SECAP_SIM_NTHRESH; t++) {
                snprintf(key, sizeof key, "Similarity>%g", SECAP_SIM_THRESH[t]);
                print_num(f, &first, key, x->sim.share[t]);
            }
        }
    }
    if (x->kw) {
        if (item >= 0) {
            fprintf(f, "%s\"Emotion\": ", first ? "" : ", ");
            json_string(f, emo_name(x, x->emo_match[item]));
            first = 0;
            print_num(f, &first, "Emotion_correct", x->emo_match[item] == x->emo_label[item]);
        } else {
            print_num(f, &first, "Emotion_accuracy", x->emo.accuracy);
            print_num(f, &first, "Emotion_none", x->emo.none);
            print_num(f, &first, "Emotion_ambiguous", x->emo.ambiguous);
        }
    }
    fputc('}', f);
}

static void print_table(const options *o, const secap_scores *s, const extras *x, int n)
{
    printf("%-8s  %10s  %8s\n", "metric", "score", "x100");
    for (int m = 0; m < NMETRIC; m++)
        if (o->want[m]) printf("%-8s  %10.6f  %8.2f\n", NAMES[m], metric_value(s, m), 100 * metric_value(s, m));
    if (x->have_sim) {
        printf("%-8s  %10.6f  %8.2f\n", "Similarity", x->sim.similarity / 100, x->sim.similarity);
        for (int t = 0; t < SECAP_SIM_NTHRESH; t++)
            printf("  >%-5g   %10.6f  %8.2f   (share of items)\n", SECAP_SIM_THRESH[t], x->sim.share[t],
                   100 * x->sim.share[t]);
    }
    if (x->kw)
        printf("%-8s  %10.6f  %8.2f   (%d none, %d ambiguous)\n", "Emotion", x->emo.accuracy, 100 * x->emo.accuracy,
               x->emo.none, x->emo.ambiguous);
    printf("(%d hypotheses)\n", n);
}

/* Checks --per-item before any work: not an input, not a directory, and
 * when it exists, a per-item file of an earlier run ({id: {metric: ...}}),
 * never a file of another kind. */
static void check_per_item_path(const options *o)
{
    const char *p = o->per_item;
    if (secap_same_file(p, o->refs) || secap_same_file(p, o->hyps))
        secap_fatal("--per-item %s is the same file as --%s (hint: choose another output path; inputs are never "
                    "overwritten)", p, secap_same_file(p, o->refs) ? "refs" : "hyps");
    char what[128];
    secap_describe_file(p, what, sizeof what);
    if (secap_is_dir(p))
        secap_fatal("--per-item %s is a directory (hint: give a file name, e.g. %s/items.json)", p, p);
    if (access(p, F_OK) != 0) return;
    /* an existing file is replaced only if it is per-item output */
    FILE *f = fopen(p, "rb");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n = f ? getdelim(&buf, &cap, 0, f) : -1;
    if (f) fclose(f);
    cJSON *root = n > 0 ? cJSON_Parse(buf) : NULL;
    int ok = cJSON_IsObject(root);
    for (const cJSON *e = root ? root->child : NULL; ok && e; e = e->next) ok = cJSON_IsObject(e);
    cJSON_Delete(root);
    free(buf);
    if (!ok)
        secap_fatal("--per-item %s exists and is %s, not a per-item score file of an earlier run (hint: outputs "
                    "never replace a file of another kind; choose another path or remove it)", p, what);
}

/* Written to "<path>.tmp.<pid>" and renamed into place. */
static void write_per_item(const options *o, const secap_corpus *c, const secap_scores *item, const extras *x)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", o->per_item, (long)getpid());
    secap_tmp_sweep(o->per_item);
    FILE *f = fopen(tmp, "w");
    if (!f) secap_fatal("%s: cannot write per-item scores: %s (hint: check the directory exists and is writable)",
                        tmp, strerror(errno));
    secap_tmp_register(tmp);
    fputs("{\n", f);
    for (int i = 0; i < secap_corpus_size(c); i++) {
        fputs("  ", f);
        json_string(f, secap_corpus_id(c, i));
        fputs(": ", f);
        print_all_json(f, o, &item[i], x, i);
        fputs(i + 1 < secap_corpus_size(c) ? ",\n" : "\n", f);
    }
    fputs("}\n", f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
        secap_fatal("%s: write failed: %s (hint: disk full?)", tmp, strerror(errno));
    if (rename(tmp, o->per_item) != 0)
        secap_fatal("%s: cannot rename %s into place: %s", o->per_item, tmp, strerror(errno));
    secap_tmp_unregister(tmp);
}

static void report_ignored(const secap_corpus *c)
{
    int n = secap_corpus_n_ignored(c);
    if (!n) return;
    fprintf(stderr, "secap-score: %d reference id%s without a hypothesis, ignored:", n, n == 1 ? "" : "s");
    for (int i = 0; i < n && i < 20; i++) fprintf(stderr, " %s", secap_corpus_ignored_id(c, i));
    fprintf(stderr, "%s\n", n > 20 ? " ..." : "");
}

static void free_ptr(void *p) { free(*(void **)p); }
static void close_file(void *f) { fclose(f); }

static int by_corpus_id(const void *a, const void *b, void *ctx)
{
    return strcmp(secap_corpus_id(ctx, *(const int *)a), secap_corpus_id(ctx, *(const int *)b));
}

/* `<id> <label>` lines -> label index of every corpus item; lines of ids
 * without a hypothesis are skipped. */
static void read_labels(const char *path, const secap_corpus *c, const secap_emokw *kw, int *label)
{
    int n = secap_corpus_size(c);
    int *order = secap_xmalloc((size_t)n * sizeof *order + 1, "label index");
    for (int i = 0; i < n; i++) { label[i] = -1; order[i] = i; }
    qsort_r(order, (size_t)n, sizeof *order, by_corpus_id, (void *)c);
    secap_cleanup co, cf, cl;
    secap_cleanup_push(&co, free_ptr, &order);
    FILE *f = fopen(path, "r");
    if (!f) secap_fatal("--emotion-labels %s: cannot open: %s (hint: the dataset's emotion.txt, `<id> <class>` per "
                        "line)", path, strerror(errno));
    secap_cleanup_push(&cf, close_file, f);
    char *line = NULL;
    size_t cap = 0;
    secap_cleanup_push(&cl, free_ptr, &line);
    int lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *save = NULL, *id = strtok_r(line, " \t\r\n", &save), *lab = strtok_r(NULL, " \t\r\n", &save);
        if (!id) continue;
        if (!lab)
            secap_fatal("%s:%d: id \"%s\" has no label (hint: `<id> <class>` per line)", path, lineno, id);
        int lo = 0, hi = n - 1, item = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2, r = strcmp(id, secap_corpus_id(c, order[mid]));
            if (!r) { item = order[mid]; break; }
            if (r < 0) hi = mid - 1;
            else lo = mid + 1;
        }
        if (item < 0) continue;
        int k = secap_emokw_find(kw, lab);
        if (k < 0) {
            char known[512] = "";
            for (int j = 0; j < secap_emokw_nclass(kw); j++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", j ? " " : "",
                         secap_emokw_class(kw, j));
            secap_fatal("%s:%d: id \"%s\": label \"%s\" is not a class of the keyword table (%s) (hint: give "
                        "--emotion-keywords with a line for it)", path, lineno, id, lab, known);
        }
        label[item] = k;
    }
    secap_cleanup_pop(&cl);
    secap_cleanup_pop(&cf);
    secap_cleanup_pop(&co);
    free(line);
    fclose(f);
    free(order);
    int missing = 0, first = -1;
    for (int i = 0; i < n; i++)
        if (label[i] < 0) { missing++; if (first < 0) first = i; }
    if (missing)
        secap_fatal("--emotion-labels %s: %d hypothesis id%s without a label, e.g. \"%s\" (hint: every hypothesis "
                    "needs a line `<id> <class>`)", path, missing, missing == 1 ? "" : "s", secap_corpus_id(c, first));
}

/* Raw texts of every item (hypothesis: first entry; references: all), for the
 * extras that read text rather than tokens. */
static void load_texts(const options *o, const secap_corpus *c, secap_captions **hc, secap_captions **rc,
                       const char ***hyp, const char *const **ref_of, int *nref)
{
    *hc = secap_captions_load(o->hyps);
    *rc = secap_captions_load(o->refs);
    int n = secap_corpus_size(c);
    *hyp = secap_xmalloc((size_t)n * sizeof **hyp + 1, "hypothesis texts");
    for (int i = 0; i < n; i++) {
        const char *id = secap_corpus_id(c, i);
        int h = secap_captions_find(*hc, id), r = secap_captions_find(*rc, id);
        if (h < 0 || r < 0) secap_fatal("id \"%s\": not found again in %s (hint: the file changed while scoring?)", id,
                                        h < 0 ? o->hyps : o->refs);
        (*hyp)[i] = (*hc)->cap[h][0];
        ref_of[i] = (const char *const *)(*rc)->cap[r];
        nref[i] = (*rc)->ncap[r];
    }
}

int main(int argc, char **argv)
{
    options o = parse_args(argc, argv);
    if (o.per_item) check_per_item_path(&o);
    secap_threads_init(0);
    secap_corpus *c = secap_corpus_load_json(o.refs, o.hyps, o.mode);
    report_ignored(c);
    unsigned mask = 0;
    for (int m = 0; m < NMETRIC; m++) if (o.want[m]) mask |= MASKS[m];
    int n = secap_corpus_size(c);
    secap_scores total, *item = o.per_item ? secap_xcalloc((size_t)n, sizeof *item, "per-item scores") : NULL;
    secap_score(c, mask, &total, item);
    extras x = {0};
    secap_captions *hc = NULL, *rc = NULL;
    const char **hyp = NULL;
    const char *const **ref_of = NULL;
    int *nref = NULL;
    if (o.sim_model || o.emo_labels) {
        ref_of = secap_xmalloc((size_t)n * sizeof *ref_of + 1, "reference texts");
        nref = secap_xmalloc((size_t)n * sizeof *nref + 1, "reference counts");
        load_texts(&o, c, &hc, &rc, &hyp, ref_of, nref);
    }
    if (o.sim_model) {
        secap_simmodel *sm = secap_sim_load(o.sim_model, o.sim_vocab, NULL);
        x.sim_item = secap_xmalloc((size_t)n * sizeof *x.sim_item + 1, "similarity items");
        secap_sim_items(sm, n, hyp, ref_of, nref, x.sim_item);
        secap_sim_free(sm);
        if (n > 0) secap_sim_summarize(x.sim_item, n, &x.sim);
        x.have_sim = n > 0;
    }
    if (o.emo_labels) {
        x.kw = o.emo_keywords ? secap_emokw_load(o.emo_keywords) : secap_emokw_default();
        x.emo_label = secap_xmalloc((size_t)n * sizeof *x.emo_label + 1, "emotion labels");
        x.emo_match = secap_xmalloc((size_t)n * sizeof *x.emo_match + 1, "emotion matches");
        read_labels(o.emo_labels, c, x.kw, x.emo_label);
        secap_emokw_accuracy(x.kw, n, hyp, x.emo_label, x.emo_match, &x.emo);
    }
    if (o.table) print_table(&o, &total, &x, n);
    else { print_all_json(stdout, &o, &total, &x, -1); putchar('\n'); }
    if (item) write_per_item(&o, c, item, &x);
    free(item);
    free(x.sim_item);
    free(x.emo_label);
    free(x.emo_match);
    secap_emokw_free(x.kw);
    free(hyp);
    free(ref_of);
    free(nref);
    secap_captions_free(hc);
    secap_captions_free(rc);
    secap_corpus_free(c);
    return 0;
}
