/* secap-score - caption metrics exactly as the COCO caption toolkit.
 *
 *   secap-score --refs refs.json --hyps hyps.json [--tokenize zh-char|space]
 *               [--metrics Bleu_1,...,CIDEr] [--format json|table]
 *               [--per-item items.json]
 *
 * Both files in SECap fid2captions.json form.  Prints the corpus scores (one
 * JSON object keyed Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, or a table);
 * --per-item writes {id: {metric: score}} in the hypothesis file's order.
 * Reference ids without a hypothesis are reported on stderr and ignored.
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

enum { NMETRIC = 7 };
static const char *const NAMES[NMETRIC] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"};
static const unsigned MASKS[NMETRIC] = {SECAP_METRIC_BLEU, SECAP_METRIC_BLEU, SECAP_METRIC_BLEU, SECAP_METRIC_BLEU,
                                        SECAP_METRIC_METEOR, SECAP_METRIC_ROUGE_L, SECAP_METRIC_CIDER};

typedef struct {
    const char *refs, *hyps, *per_item;
    secap_tokenize_mode mode;
    int table;               /* --format table */
    int want[NMETRIC];       /* metrics to report */
} options;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-score --refs <refs.json> --hyps <hyps.json> [--tokenize zh-char|space]\n"
        "                   [--metrics Bleu_1,Bleu_2,Bleu_3,Bleu_4,METEOR,ROUGE_L,CIDEr]\n"
        "                   [--format json|table] [--per-item <file>]\n"
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

static void print_scores_json(FILE *f, const options *o, const secap_scores *s)
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
    fputc('}', f);
}

static void print_table(const options *o, const secap_scores *s, int n)
{
    printf("%-8s  %10s  %8s\n", "metric", "score", "x100");
    for (int m = 0; m < NMETRIC; m++)
        if (o->want[m]) printf("%-8s  %10.6f  %8.2f\n", NAMES[m], metric_value(s, m), 100 * metric_value(s, m));
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
static void write_per_item(const options *o, const secap_corpus *c, const secap_scores *item)
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
        print_scores_json(f, o, &item[i]);
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
    if (o.table) print_table(&o, &total, n);
    else { print_scores_json(stdout, &o, &total); putchar('\n'); }
    if (item) write_per_item(&o, c, item);
    free(item);
    secap_corpus_free(c);
    return 0;
}
