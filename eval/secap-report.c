/* secap-report - one self-contained HTML page of a captioning run.
 *
 *   secap-report --captions fid2captions.json --refs refs.json [--data DIR|manifest.jsonl]
 *                [--run RUN_DIR] [--scores items.json] [--embed-audio] [--title TEXT]
 *                --out report.html
 *
 * Top: corpus metrics (the secap-score library on the first caption of each
 * clip; means of the extra per-item columns of --scores; the emotion keyword
 * accuracy when the labels are classes of secap/emotion.h's table) and the
 * run's loss curves, one inline SVG chart per training stage drawn from
 * RUN_DIR/metrics.jsonl (one JSON object per line with "stage", "step" and
 * numeric fields; plotted: "loss" and every numeric field whose name contains
 * "loss", or is a loss term named mi, con, ce, lm, vclub, contrastive or
 * caption).  Below: one row per clip, in the captions file's order, with an
 * <audio> player (the file referenced relative to the page, or embedded as
 * base64 with --embed-audio), the transcript, the emotion label, the
 * references, the generated caption(s) (each with the emotion class its
 * keywords name) and the per-item scores (secap-score's five metrics per
 * clip, plus every numeric key of --scores, which wins on a shared name).
 * Columns sort by a click on their header (again: reverse); a select filters
 * rows by emotion label.  No network: styles and script are inline.
 *
 * All text from the inputs is HTML-escaped; the page's data sits in
 * attributes and text, never in the script.  The page is written to
 * "<out>.tmp.<pid>" and renamed into place; --out never replaces an input or
 * an existing file that is not a secap-report page.
 *
 * The script also exposes window.secapReport = {sortBy(key, dir), filter(label),
 * visibleIds()} and, when the page is opened with "#selftest", runs a
 * self-check and writes its results, URI-encoded JSON, into <pre id="selftest"> (what the
 * browser test reads through chromium --dump-dom).
 */
#include <cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "secap/base.h"
#include "secap/captions.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/emotion.h"
#include "secap/fileutil.h"
#include "secap/score.h"

#define GENERATOR "<meta name=\"generator\" content=\"secap-report\">"

typedef struct {
    const char *captions, *refs, *data, *run, *scores, *out, *title;
    int embed;
} options;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-report --captions <fid2captions.json> --refs <refs.json> [--data <dataset dir | manifest>]\n"
        "                    [--run <run dir with metrics.jsonl>] [--scores <per-item json>] [--embed-audio]\n"
        "                    [--title <text>] --out <report.html>\n"
        "Writes one self-contained HTML page: corpus metrics, loss curves, one row per clip with audio,\n"
        "transcript, emotion, references, captions and per-item scores (sortable, filterable by emotion).\n");
}

static options parse_args(int argc, char **argv)
{
    options o = {.title = "SECap captions"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (secap_cli_is(a, "--captions")) o.captions = secap_cli_value(argc, argv, &i, "--captions", "secap-report");
        else if (secap_cli_is(a, "--refs")) o.refs = secap_cli_value(argc, argv, &i, "--refs", "secap-report");
        else if (secap_cli_is(a, "--data")) o.data = secap_cli_value(argc, argv, &i, "--data", "secap-report");
        else if (secap_cli_is(a, "--run")) o.run = secap_cli_value(argc, argv, &i, "--run", "secap-report");
        else if (secap_cli_is(a, "--scores")) o.scores = secap_cli_value(argc, argv, &i, "--scores", "secap-report");
        else if (secap_cli_is(a, "--out")) o.out = secap_cli_value(argc, argv, &i, "--out", "secap-report");
        else if (secap_cli_is(a, "--title")) o.title = secap_cli_value(argc, argv, &i, "--title", "secap-report");
        else if (!strcmp(a, "--embed-audio")) o.embed = 1;
        else secap_fatal("unknown argument \"%s\" (hint: secap-report --help)", a);
    }
    if (!o.captions || !o.refs || !o.out) {
        usage(stderr);
        secap_fatal("--captions, --refs and --out are required (hint: secap-report --help)");
    }
    return o;
}

/* ------------------------------------------------------------ output safety */

/* --out is not an input, not a directory, and replaces only an earlier page. */
static void check_out(const options *o)
{
    const char *in[] = {o->captions, o->refs, o->scores, o->data};
    const char *name[] = {"--captions", "--refs", "--scores", "--data"};
    for (int k = 0; k < 4; k++)
        if (in[k] && secap_same_file(o->out, in[k]))
            secap_fatal("--out %s is the same file as %s (hint: choose another output path; inputs are never "
                        "overwritten)", o->out, name[k]);
    if (secap_is_dir(o->out))
        secap_fatal("--out %s is a directory (hint: give a file name, e.g. %s/report.html)", o->out, o->out);
    if (access(o->out, F_OK) != 0) return;
    size_t n;
    char *buf = secap_read_file(o->out, &n, "the existing output");
    int ours = strstr(buf, GENERATOR) != NULL;
    free(buf);
    if (!ours) {
        char what[128];
        secap_describe_file(o->out, what, sizeof what);
        secap_fatal("--out %s exists and is %s, not a page written by secap-report (hint: outputs never replace a "
                    "file of another kind; choose another path or remove it)", o->out, what);
    }
}

/* ------------------------------------------------------------------- HTML */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* Percent-encodes a relative URL path (keeps unreserved characters and '/'). */
static void url_path(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

static void base64(FILE *f, const unsigned char *d, size_t n)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        fputc(T[v >> 18 & 63], f);
        fputc(T[v >> 12 & 63], f);
        fputc(i + 1 < n ? T[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? T[v & 63] : '=', f);
    }
}

static const char *audio_mime(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return "audio/wav";
    if (!strcasecmp(dot, ".flac")) return "audio/flac";
    if (!strcasecmp(dot, ".mp3")) return "audio/mpeg";
    if (!strcasecmp(dot, ".ogg") || !strcasecmp(dot, ".opus")) return "audio/ogg";
    return "audio/wav";
}

/* Path of target relative to the directory dir (both absolute, canonical). */
static char *relative_path(const char *target, const char *dir)
{
    size_t common = 0;   /* the longest common prefix made of whole components */
    for (size_t i = 0;; i++) {
        char a = target[i], b = dir[i];
        if ((a == '/' || !a) && (b == '/' || !b)) common = i;
        if (a != b || !a) break;
    }
    int up = 0;          /* components of dir below the common prefix */
    for (const char *p = dir + common; *p;) {
        while (*p == '/') p++;
        if (!*p) break;
        up++;
        while (*p && *p != '/') p++;
    }
    const char *rest = target + common;
    while (*rest == '/') rest++;
    size_t len = (size_t)up * 3 + strlen(rest) + 1;
    char *out = secap_xmalloc(len, "relative path");
    out[0] = 0;
    for (int k = 0; k < up; k++) strcat(out, "../");
    strcat(out, rest);
    return out;
}

/* -------------------------------------------------------------- loss curves */

typedef struct {
    char *name;
    double *x, *y;   /* [n] */
    int n, cap;
} series;

typedef struct {
    char *stage;
    series *s;       /* [ns] */
    int ns;
} chart;

static int is_loss_field(const char *k)
{
    static const char *const TERMS[] = {"mi", "con", "ce", "lm", "vclub", "contrastive", "caption", NULL};
    if (strstr(k, "loss")) return 1;
    for (int i = 0; TERMS[i]; i++)
        if (!strcmp(k, TERMS[i])) return 1;
    return 0;
}

static void add_point(chart *c, const char *name, double x, double y)
{
    int k = 0;
    while (k < c->ns && strcmp(c->s[k].name, name)) k++;
    if (k == c->ns) {
        c->s = realloc(c->s, ((size_t)c->ns + 1) * sizeof *c->s);
        if (!c->s) secap_fatal("secap-report: out of memory reading the loss curves");
        memset(&c->s[k], 0, sizeof c->s[k]);
        c->s[k].name = secap_xstrdup(name, "series name");
        c->ns++;
    }
    series *s = &c->s[k];
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = realloc(s->x, (size_t)s->cap * sizeof *s->x);
        s->y = realloc(s->y, (size_t)s->cap * sizeof *s->y);
        if (!s->x || !s->y) secap_fatal("secap-report: out of memory reading the loss curves");
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

static void free_curves(chart *ch, int nc);
typedef struct { chart **ch; int *nc; } curves_state;
static void free_curves_state(void *p) { curves_state *s = p; free_curves(*s->ch, *s->nc); }
static void close_file(void *f) { fclose(f); }
static void free_ptr(void *p) { free(*(void **)p); }

/* Charts of RUN/metrics.jsonl, one per stage in order of appearance. */
static chart *read_curves(const char *run, int *nchart)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *f = fopen(path, "r");
    if (!f) secap_fatal("%s: cannot open: %s (hint: --run takes a run directory written by secap-train)", path,
                        strerror(errno));
    chart *ch = NULL;
    int nc = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    curves_state cs = {&ch, &nc};
    secap_cleanup cf, cl, cc;
    secap_cleanup_push(&cf, close_file, f);
    secap_cleanup_push(&cl, free_ptr, &line);
    secap_cleanup_push(&cc, free_curves_state, &cs);
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            secap_fatal("%s:%d: not a JSON object (hint: metrics.jsonl holds one object per line)", path, lineno);
        }
        const cJSON *st = cJSON_GetObjectItem(o, "stage"), *sp = cJSON_GetObjectItem(o, "step");
        if (!cJSON_IsNumber(sp)) { cJSON_Delete(o); continue; }   /* not a step record (an event) */
        const char *stage = cJSON_IsString(st) ? st->valuestring : "run";
        int k = 0;
        while (k < nc && strcmp(ch[k].stage, stage)) k++;
        if (k == nc) {
            ch = realloc(ch, ((size_t)nc + 1) * sizeof *ch);
            if (!ch) secap_fatal("secap-report: out of memory reading the loss curves");
            memset(&ch[k], 0, sizeof ch[k]);
            ch[k].stage = secap_xstrdup(stage, "stage name");
            nc++;
        }
        for (const cJSON *e = o->child; e; e = e->next)
            if (cJSON_IsNumber(e) && is_loss_field(e->string) && isfinite(e->valuedouble))
                add_point(&ch[k], e->string, sp->valuedouble, e->valuedouble);
        cJSON_Delete(o);
    }
    secap_cleanup_pop(&cc);
    secap_cleanup_pop(&cl);
    secap_cleanup_pop(&cf);
    free(line);
    fclose(f);
    *nchart = nc;
    return ch;
}

static void free_curves(chart *ch, int nc)
{
    for (int k = 0; k < nc; k++) {
        for (int j = 0; j < ch[k].ns; j++) { free(ch[k].s[j].name); free(ch[k].s[j].x); free(ch[k].s[j].y); }
        free(ch[k].s);
        free(ch[k].stage);
    }
    free(ch);
}

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                                     "#17becf"};

static void svg_chart(FILE *f, const chart *c)
{
    const double W = 640, Hh = 260, L = 60, R = 150, T = 28, B = 36;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int j = 0; j < c->ns; j++)
        for (int i = 0; i < c->s[j].n; i++) {
            x0 = fmin(x0, c->s[j].x[i]); x1 = fmax(x1, c->s[j].x[i]);
            y0 = fmin(y0, c->s[j].y[i]); y1 = fmax(y1, c->s[j].y[i]);
        }
    if (!(x0 <= x1)) return;
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
    double pad = 0.05 * (y1 - y0);
    y0 -= pad; y1 += pad;
    fprintf(f, "<figure class=\"curve\"><svg width=\"%g\" height=\"%g\" "
               "viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"loss curves, stage ", W, Hh, W, Hh);
    esc(f, c->stage);
    fprintf(f, "\">\n<text x=\"%g\" y=\"18\" class=\"title\">stage ", L);
    esc(f, c->stage);
    fputs("</text>\n", f);
    double pw = W - L - R, ph = Hh - T - B;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (T + (1 - ((v) - y0) / (y1 - y0)) * ph)
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" class=\"frame\"/>\n", L, T, pw, ph);
    for (int t = 0; t <= 4; t++) {
        double yv = y0 + (y1 - y0) * t / 4, xv = x0 + (x1 - x0) * t / 4;
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%.2f\" y2=\"%.2f\" class=\"grid\"/>"
                   "<text x=\"%g\" y=\"%.2f\" class=\"ytick\">%.4g</text>\n", L, L + pw, PY(yv), PY(yv), L - 4,
                PY(yv) + 4, yv);
        fprintf(f, "<text x=\"%.2f\" y=\"%g\" class=\"xtick\">%.6g</text>\n", PX(xv), T + ph + 16, xv);
    }
    fprintf(f, "<text x=\"%g\" y=\"%g\" class=\"xtick\">step</text>\n", L + pw / 2, Hh - 4);
    for (int j = 0; j < c->ns; j++) {
        const series *s = &c->s[j];
        const char *col = COLORS[j % (int)(sizeof COLORS / sizeof *COLORS)];
        fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
        for (int i = 0; i < s->n; i++) fprintf(f, "%s%.2f,%.2f", i ? " " : "", PX(s->x[i]), PY(s->y[i]));
        fputs("\"><title>", f);
        esc(f, s->name);
        fputs("</title></polyline>\n", f);
        fprintf(f, "<text x=\"%g\" y=\"%g\" fill=\"%s\" class=\"legend\">", L + pw + 10, T + 14 + 16.0 * j, col);
        esc(f, s->name);
        fprintf(f, " (%.4g)</text>\n", s->y[s->n - 1]);
    }
#undef PX
#undef PY
    fputs("</svg></figure>\n", f);
}

/* ------------------------------------------------------------ clip data */

typedef struct {
    char *id, *audio, *transcript, *label;   /* NULL when unknown */
} clip_info;

typedef struct {
    clip_info *v;
    int n;
} clip_table;

static int by_clip_id(const void *a, const void *b)
{
    return strcmp(((const clip_info *)a)->id, ((const clip_info *)b)->id);
}

/* t->v is sorted by id (read_data). */
static int clip_find(const clip_table *t, const char *id)
{
    clip_info key = {.id = (char *)id};
    const clip_info *c = t->n ? bsearch(&key, t->v, (size_t)t->n, sizeof *t->v, by_clip_id) : NULL;
    return c ? (int)(c - t->v) : -1;
}

static clip_table read_data(const char *path)
{
    secap_data_config dc;
    secap_data_config_default(&dc);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(path, &dc, &probs);
    if (probs.n) {
        fprintf(stderr, "secap-report: %d problem(s) reading %s (the page shows what could be read):\n", probs.n, path);
        secap_problems_print(&probs, stderr);
    }
    secap_problems_free(&probs);
    clip_table t = {0};
    if (!d) return t;
    t.v = secap_xcalloc((size_t)d->n + 1, sizeof *t.v, "clip table");
    for (int i = 0; i < d->n; i++) {
        const secap_item *it = &d->items[i];
        clip_info *c = &t.v[t.n++];
        c->id = secap_xstrdup(it->id, "clip id");
        c->audio = it->audio ? secap_xstrdup(it->audio, "audio path") : NULL;
        c->transcript = it->transcript ? secap_xstrdup(it->transcript, "transcript") : NULL;
        c->label = it->label >= 0 ? secap_xstrdup(d->labels[it->label], "label") : NULL;
    }
    secap_dataset_free(d);
    qsort(t.v, (size_t)t.n, sizeof *t.v, by_clip_id);
    return t;
}

static void free_clips(clip_table *t)
{
    for (int i = 0; i < t->n; i++) { free(t->v[i].id); free(t->v[i].audio); free(t->v[i].transcript); free(t->v[i].label); }
    free(t->v);
}

/* --------------------------------------------------------------- columns */

enum { NLIB = 5 };
static const char *const LIB_NAMES[NLIB] = {"Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"};

typedef struct {
    char **name;     /* [ncol] */
    int ncol;
    double *v;       /* [n, ncol], NAN when missing */
    int n;
} score_table;

static int col_index(score_table *s, const char *name, int add)
{
    for (int k = 0; k < s->ncol; k++)
        if (!strcmp(s->name[k], name)) return k;
    if (!add) return -1;
    s->name = realloc(s->name, ((size_t)s->ncol + 1) * sizeof *s->name);
    double *nv = malloc(((size_t)s->n * ((size_t)s->ncol + 1) + 1) * sizeof *nv);
    if (!s->name || !nv) secap_fatal("secap-report: out of memory building the score table");
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->ncol; k++) nv[(size_t)i * ((size_t)s->ncol + 1) + (size_t)k] = s->v[(size_t)i * (size_t)s->ncol + (size_t)k];
        nv[(size_t)i * ((size_t)s->ncol + 1) + (size_t)s->ncol] = NAN;
    }
    free(s->v);
    s->v = nv;
    s->name[s->ncol] = secap_xstrdup(name, "column name");
    return s->ncol++;
}

static double lib_value(const secap_scores *s, int k)
{
    return k == 0 ? s->bleu[0] : k == 1 ? s->bleu[3] : k == 2 ? s->meteor : k == 3 ? s->rouge_l : s->cider;
}

static void free_json(void *p) { cJSON_Delete(*(cJSON **)p); }

/* per-item JSON {id: {key: number, ...}} (secap-score --per-item) */
static void read_scores(const char *path, const secap_captions *hyp, score_table *t)
{
    size_t n;
    char *buf = secap_read_file(path, &n, "per-item scores");
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        secap_fatal("%s: not a JSON object {id: {metric: score}} (hint: secap-score --per-item writes one)", path);
    }
    int matched = 0;
    secap_cleanup cr;
    secap_cleanup_push(&cr, free_json, &root);
    for (const cJSON *e = root->child; e; e = e->next) {
        int item = secap_captions_find(hyp, e->string);   /* corpus items follow the captions file */
        if (item < 0 || !cJSON_IsObject(e)) continue;
        matched++;
        for (const cJSON *m = e->child; m; m = m->next)
            if (cJSON_IsNumber(m)) {
                int k = col_index(t, m->string, 1);
                t->v[(size_t)item * (size_t)t->ncol + (size_t)k] = m->valuedouble;
            }
    }
    secap_cleanup_pop(&cr);
    cJSON_Delete(root);
    if (!matched)
        secap_fatal("%s: no id in common with --captions (hint: the per-item file of this run's captions)", path);
}

/* ------------------------------------------------------------------ page */

static const char *CSS =
    "body{font-family:system-ui,'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}"
    "table{border-collapse:collapse}td,th{border:1px solid #d9d9d9;padding:4px 6px;vertical-align:top}"
    "th{background:#f4f4f4}th.sortable{cursor:pointer;white-space:nowrap}th.sortable:hover{background:#e8e8e8}"
    "th[aria-sort=ascending]::after{content:' \\25B2'}th[aria-sort=descending]::after{content:' \\25BC'}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}ul{margin:0;padding-left:1.2em}"
    ".meta{color:#666;font-size:.9em}.emo{font-size:.8em;color:#666}.emo.ok{color:#2a7d2a}.emo.bad{color:#b22}"
    ".curve{display:inline-block;margin:0 1em 1em 0}.frame{fill:none;stroke:#999}.grid{stroke:#eee}"
    ".ytick{font-size:10px;text-anchor:end}.xtick{font-size:10px;text-anchor:middle}.legend{font-size:11px}"
    ".title{font-size:13px;font-weight:bold}audio{width:220px}#controls{margin:.5em 0}";

/* Sorting, filtering and the self-check.  Reads only the DOM. */
static const char *JS =
    "(function(){\n"
    "var table=document.getElementById('clips'),tb=table.tBodies[0];\n"
    "var rows=Array.prototype.slice.call(tb.rows);\n"
    "var heads=Array.prototype.slice.call(table.tHead.rows[0].cells);\n"
    "function val(r,k){var v=r.getAttribute('data-'+k);return v===null||v===''?NaN:parseFloat(v);}\n"
    "function sortBy(k,dir){\n"
    "  var sorted=rows.slice().sort(function(a,b){var x=val(a,k),y=val(b,k);\n"
    "    if(isNaN(x)&&isNaN(y))return a.getAttribute('data-idx')-b.getAttribute('data-idx');\n"
    "    if(isNaN(x))return 1; if(isNaN(y))return -1;\n"
    "    return dir*(x-y)||(a.getAttribute('data-idx')-b.getAttribute('data-idx'));});\n"
    "  sorted.forEach(function(r){tb.appendChild(r);});\n"
    "  heads.forEach(function(h){h.removeAttribute('aria-sort');\n"
    "    if(h.getAttribute('data-key')===k)h.setAttribute('aria-sort',dir>0?'ascending':'descending');});\n"
    "}\n"
    "function filter(label){rows.forEach(function(r){r.hidden=!!label&&r.getAttribute('data-emotion')!==label;});\n"
    "  document.getElementById('shown').textContent=visibleIds().length+' / '+rows.length+' clips';}\n"
    "function visibleIds(){return Array.prototype.slice.call(tb.rows).filter(function(r){return !r.hidden;})\n"
    "  .map(function(r){return r.getAttribute('data-id');});}\n"
    "heads.forEach(function(h){var k=h.getAttribute('data-key');if(!k)return;\n"
    "  h.addEventListener('click',function(){sortBy(k,h.getAttribute('aria-sort')==='descending'?1:-1);});});\n"
    "var sel=document.getElementById('emotion-filter');\n"
    "sel.addEventListener('change',function(){filter(sel.value);});\n"
    "filter('');\n"
    "window.secapReport={sortBy:sortBy,filter:filter,visibleIds:visibleIds};\n"
    "if(location.hash==='#selftest'){\n"
    "  var out={rows:rows.length,audio:document.querySelectorAll('#clips audio').length,\n"
    "    audio_with_source:document.querySelectorAll('#clips audio source[src]').length,\n"
    "    charts:document.querySelectorAll('svg polyline').length,\n"
    "    metrics_rows:document.querySelectorAll('#corpus tbody tr').length,sorted:{},filtered:{}};\n"
    "  heads.forEach(function(h){var k=h.getAttribute('data-key');if(!k)return;\n"
    "    h.click();out.sorted[k+':desc']=visibleIds();h.click();out.sorted[k+':asc']=visibleIds();});\n"
    "  sortBy('idx',1);\n"
    "  Array.prototype.slice.call(sel.options).forEach(function(o){sel.value=o.value;\n"
    "    sel.dispatchEvent(new Event('change'));out.filtered[o.value]=visibleIds();});\n"
    "  sel.value='';filter('');\n"
    "  out.shown=document.getElementById('shown').textContent;\n"
    "  var pre=document.createElement('pre');pre.id='selftest';pre.textContent=encodeURIComponent(JSON.stringify(out));\n"
    "  document.body.appendChild(pre);\n"
    "}\n"
    "})();\n";

static void td_num(FILE *f, double v)
{
    if (isnan(v)) fputs("<td class=\"num\"></td>", f);
    else fprintf(f, "<td class=\"num\">%.4f</td>", v);
}

/* data-* attribute name of a column: lower-case letters, digits and '-' only. */
static void data_key(char *out, size_t cap, int k)
{
    snprintf(out, cap, "s%d", k);
}

typedef struct {
    const options *o;
    const secap_corpus *corpus;
    const secap_captions *hyp, *ref;
    const clip_table *clips;
    const score_table *sc;
    const secap_scores *total;
    const chart *charts;
    int ncharts;
    const secap_emokw *kw;
    const char *page_dir;   /* canonical directory of --out */
} page;

static void write_audio(FILE *f, const page *p, const char *audio)
{
    if (!audio) { fputs("<td class=\"audio\"></td>", f); return; }
    fputs("<td class=\"audio\"><audio controls preload=\"none\"><source src=\"", f);
    if (p->o->embed) {
        size_t n;
        char *data = secap_read_file(audio, &n, "audio file");
        fprintf(f, "data:%s;base64,", audio_mime(audio));
        base64(f, (const unsigned char *)data, n);
        free(data);
    } else {
        char real[PATH_MAX];
        if (!realpath(audio, real)) {
            fprintf(stderr, "secap-report: warning: %s: %s; its player will not play\n", audio, strerror(errno));
            snprintf(real, sizeof real, "%s", audio);
            url_path(f, real);
        } else {
            char *rel = relative_path(real, p->page_dir);
            url_path(f, rel);
            free(rel);
        }
    }
    fprintf(f, "\" type=\"%s\">(no audio support)</audio></td>", audio_mime(audio));
}

static void write_page(FILE *f, const page *p)
{
    const options *o = p->o;
    int n = secap_corpus_size(p->corpus);
    fputs("<!doctype html>\n<html lang=\"zh\">\n<head>\n<meta charset=\"utf-8\">\n" GENERATOR "\n", f);
    fputs("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    esc(f, o->title);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", CSS);
    esc(f, o->title);
    fputs("</h1>\n<p class=\"meta\">captions ", f);
    esc(f, o->captions);
    fputs(" · references ", f);
    esc(f, o->refs);
    if (o->data) { fputs(" · data ", f); esc(f, o->data); }
    if (o->run) { fputs(" · run ", f); esc(f, o->run); }
    fprintf(f, " · %d clips</p>\n", n);

    /* corpus metrics */
    fputs("<h2>Corpus metrics</h2>\n<table id=\"corpus\"><thead><tr><th>metric</th><th>score</th><th>×100</th>"
          "</tr></thead><tbody>\n", f);
    for (int k = 0; k < NLIB; k++) {
        double v = lib_value(p->total, k);
        fprintf(f, "<tr><td>%s</td><td class=\"num\">%.6f</td><td class=\"num\">%.2f</td></tr>\n", LIB_NAMES[k], v,
                100 * v);
    }
    for (int k = NLIB; k < p->sc->ncol; k++) {
        double s = 0;
        int m = 0;
        for (int i = 0; i < n; i++) {
            double v = p->sc->v[(size_t)i * (size_t)p->sc->ncol + (size_t)k];
            if (!isnan(v)) { s += v; m++; }
        }
        if (!m) continue;
        fputs("<tr><td>", f);
        esc(f, p->sc->name[k]);
        fprintf(f, " (mean per item)</td><td class=\"num\">%.6f</td><td class=\"num\">%.2f</td></tr>\n", s / m,
                100 * s / m);
    }
    /* emotion keyword accuracy over clips whose label is a class of the table */
    int labelled = 0, correct = 0;
    for (int i = 0; i < n && p->clips->n; i++) {
        int c = clip_find(p->clips, secap_corpus_id(p->corpus, i));
        int h = secap_captions_find(p->hyp, secap_corpus_id(p->corpus, i));
        if (c < 0 || !p->clips->v[c].label || h < 0) continue;
        int cls = secap_emokw_find(p->kw, p->clips->v[c].label);
        if (cls < 0) continue;
        labelled++;
        correct += secap_emokw_match(p->kw, p->hyp->cap[h][0]) == cls;
    }
    if (labelled)
        fprintf(f, "<tr><td>emotion named (keywords, %d labelled clips)</td><td class=\"num\">%.6f</td>"
                   "<td class=\"num\">%.2f</td></tr>\n", labelled, (double)correct / labelled,
                100.0 * correct / labelled);
    fputs("</tbody></table>\n", f);

    /* loss curves */
    if (o->run) {
        fputs("<h2>Loss curves</h2>\n", f);
        if (!p->ncharts) fputs("<p class=\"meta\">metrics.jsonl holds no step records.</p>\n", f);
        for (int k = 0; k < p->ncharts; k++) svg_chart(f, &p->charts[k]);
    }

    /* clips */
    fputs("<h2>Clips</h2>\n<div id=\"controls\"><label>emotion <select id=\"emotion-filter\">"
          "<option value=\"\">all</option>", f);
    char **seen = secap_xcalloc((size_t)n + 1, sizeof *seen, "labels");
    int nseen = 0;
    for (int i = 0; i < n && p->clips->n; i++) {
        int c = clip_find(p->clips, secap_corpus_id(p->corpus, i));
        const char *l = c >= 0 ? p->clips->v[c].label : NULL;
        if (!l) continue;
        int dup = 0;
        for (int j = 0; j < nseen && !dup; j++) dup = !strcmp(seen[j], l);
        if (dup) continue;
        seen[nseen++] = (char *)l;
        fputs("<option value=\"", f);
        esc(f, l);
        fputs("\">", f);
        esc(f, l);
        fputs("</option>", f);
    }
    free(seen);
    fputs("</select></label> <span id=\"shown\"></span> · click a score header to sort</div>\n", f);
    fputs("<table id=\"clips\"><thead><tr><th class=\"sortable\" data-key=\"idx\">#</th><th>audio</th>"
          "<th>id / transcript</th><th>emotion</th><th>references</th><th>caption(s)</th>", f);
    char key[32];
    for (int k = 0; k < p->sc->ncol; k++) {
        data_key(key, sizeof key, k);
        fprintf(f, "<th class=\"sortable\" data-key=\"%s\">", key);
        esc(f, p->sc->name[k]);
        fputs("</th>", f);
    }
    fputs("</tr></thead>\n<tbody>\n", f);
    for (int i = 0; i < n; i++) {
        const char *id = secap_corpus_id(p->corpus, i);
        int c = p->clips->n ? clip_find(p->clips, id) : -1;
        const clip_info *ci = c >= 0 ? &p->clips->v[c] : NULL;
        int h = secap_captions_find(p->hyp, id), r = secap_captions_find(p->ref, id);
        fprintf(f, "<tr data-idx=\"%d\" data-id=\"", i + 1);
        esc(f, id);
        fputs("\" data-emotion=\"", f);
        esc(f, ci && ci->label ? ci->label : "");
        fputc('"', f);
        for (int k = 0; k < p->sc->ncol; k++) {
            double v = p->sc->v[(size_t)i * (size_t)p->sc->ncol + (size_t)k];
            data_key(key, sizeof key, k);
            if (!isnan(v)) fprintf(f, " data-%s=\"%.17g\"", key, v);
        }
        fprintf(f, "><td class=\"num\">%d</td>", i + 1);
        write_audio(f, p, ci ? ci->audio : NULL);
        fputs("<td><div class=\"meta\">", f);
        esc(f, id);
        fputs("</div>", f);
        esc(f, ci ? ci->transcript : NULL);
        fputs("</td><td>", f);
        esc(f, ci ? ci->label : NULL);
        fputs("</td><td><ul>", f);
        for (int j = 0; r >= 0 && j < p->ref->ncap[r]; j++) {
            fputs("<li>", f);
            esc(f, p->ref->cap[r][j]);
            fputs("</li>", f);
        }
        fputs("</ul></td><td><ul>", f);
        int label_cls = ci && ci->label ? secap_emokw_find(p->kw, ci->label) : -1;
        for (int j = 0; h >= 0 && j < p->hyp->ncap[h]; j++) {
            fputs("<li class=\"caption\">", f);
            esc(f, p->hyp->cap[h][j]);
            int m = secap_emokw_match(p->kw, p->hyp->cap[h][j]);
            if (m >= 0) {
                fprintf(f, " <span class=\"emo %s\">[", label_cls < 0 ? "" : m == label_cls ? "ok" : "bad");
                esc(f, secap_emokw_class(p->kw, m));
                fputs("]</span>", f);
            } else if (m == SECAP_EMO_AMBIGUOUS) fputs(" <span class=\"emo bad\">[ambiguous]</span>", f);
            fputs("</li>", f);
        }
        fputs("</ul></td>", f);
        for (int k = 0; k < p->sc->ncol; k++) td_num(f, p->sc->v[(size_t)i * (size_t)p->sc->ncol + (size_t)k]);
        fputs("</tr>\n", f);
    }
    fprintf(f, "</tbody></table>\n<script>\n%s</script>\n</body>\n</html>\n", JS);
}

int main(int argc, char **argv)
{
    options o = parse_args(argc, argv);
    check_out(&o);
    secap_threads_init(0);
    secap_corpus *corpus = secap_corpus_load_json(o.refs, o.captions, SECAP_TOK_ZH_CHAR);
    secap_captions *hyp = secap_captions_load(o.captions), *ref = secap_captions_load(o.refs);
    int n = secap_corpus_size(corpus);
    secap_scores total, *item = secap_xcalloc((size_t)n + 1, sizeof *item, "per-item scores");
    secap_score(corpus, SECAP_METRIC_ALL, &total, item);
    score_table sc = {.n = n};
    for (int k = 0; k < NLIB; k++) col_index(&sc, LIB_NAMES[k], 1);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < NLIB; k++) sc.v[(size_t)i * (size_t)sc.ncol + (size_t)k] = lib_value(&item[i], k);
    if (o.scores) read_scores(o.scores, hyp, &sc);
    clip_table clips = {0};
    if (o.data) clips = read_data(o.data);
    chart *charts = NULL;
    int ncharts = 0;
    if (o.run) charts = read_curves(o.run, &ncharts);
    secap_emokw *kw = secap_emokw_default();

    /* the page's directory, for relative audio paths */
    char outcopy[PATH_MAX], page_dir[PATH_MAX];
    snprintf(outcopy, sizeof outcopy, "%s", o.out);
    const char *dir = dirname(outcopy);
    if (!realpath(dir, page_dir))
        secap_fatal("--out %s: directory %s: %s (hint: create the directory first)", o.out, dir, strerror(errno));

    char *tmp = secap_xmalloc(strlen(o.out) + 32, "temporary path");
    secap_cleanup ct;
    secap_cleanup_push(&ct, free_ptr, &tmp);
    snprintf(tmp, strlen(o.out) + 32, "%s.tmp.%ld", o.out, (long)getpid());
    secap_tmp_sweep(o.out);
    FILE *f = fopen(tmp, "w");
    if (!f) secap_fatal("%s: cannot write the report: %s (hint: check the directory is writable)", tmp, strerror(errno));
    secap_tmp_register(tmp);
    page p = {.o = &o, .corpus = corpus, .hyp = hyp, .ref = ref, .clips = &clips, .sc = &sc, .total = &total,
              .charts = charts, .ncharts = ncharts, .kw = kw, .page_dir = page_dir};
    write_page(f, &p);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
        secap_fatal("%s: write failed: %s (hint: disk full?)", tmp, strerror(errno));
    if (rename(tmp, o.out) != 0) secap_fatal("%s: cannot rename %s into place: %s", o.out, tmp, strerror(errno));
    secap_tmp_unregister(tmp);
    secap_cleanup_pop(&ct);
    free(tmp);
    fprintf(stderr, "secap-report: wrote %s (%d clips%s%s)\n", o.out, n, o.run ? ", loss curves" : "",
            o.embed ? ", audio embedded" : "");

    secap_emokw_free(kw);
    free_curves(charts, ncharts);
    free_clips(&clips);
    for (int k = 0; k < sc.ncol; k++) free(sc.name[k]);
    free(sc.name);
    free(sc.v);
    free(item);
    secap_captions_free(hyp);
    secap_captions_free(ref);
    secap_corpus_free(corpus);
    return 0;
}
