/* Emotion keyword accuracy (include/secap/emotion.h). */
#include "secap/emotion.h"
#include "secap/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    char **word;   /* [nword] */
    int nword;
} emo_class;

struct secap_emokw {
    emo_class *cls;  /* [n] */
    int n;
};

/* The demo corpus' classes (tools/make_demo_corpus.py EMOTION_WORDS): the
 * class name plus the distinctive words of its five emotion phrases, and a
 * few everyday synonyms.  No word is a substring of another class' word,
 * and none occurs in the corpus' prosody cue words (speed, pitch, range,
 * level, effects). */
static const char *const DEFAULT_TABLE[][8] = {
    {"开心", "开心", "愉悦", "喜悦", "心情很好", "笑意", "高兴", "快乐"},
    {"悲伤", "悲伤", "低落", "难过", "哀伤", "伤感", "伤心", NULL},
    {"生气", "生气", "愤怒", "怒气", "不满", "恼火", NULL, NULL},
    {"惊讶", "惊讶", "惊奇", "难以置信", "意外", "吃惊", NULL, NULL},
    {"害怕", "害怕", "紧张", "恐惧", "不安", "惊恐", "胆怯", NULL},
    {"平静", "平静", "平稳", "平和", "从容", "淡定", "没有明显波动", NULL},
    {"激动", "激动", "兴奋", "热烈", "高涨", NULL, NULL, NULL},
};

static void add_class(secap_emokw *k, const char *name)
{
    k->cls = realloc(k->cls, ((size_t)k->n + 1) * sizeof *k->cls);
    if (!k->cls) secap_fatal("emotion keywords: out of memory");
    emo_class *c = &k->cls[k->n++];
    memset(c, 0, sizeof *c);
    c->name = secap_xstrdup(name, "emotion class");
}

static void add_word(secap_emokw *k, const char *w)
{
    emo_class *c = &k->cls[k->n - 1];
    c->word = realloc(c->word, ((size_t)c->nword + 1) * sizeof *c->word);
    if (!c->word) secap_fatal("emotion keywords: out of memory");
    c->word[c->nword++] = secap_xstrdup(w, "emotion keyword");
}

secap_emokw *secap_emokw_default(void)
{
    secap_emokw *k = secap_xcalloc(1, sizeof *k, "emotion keywords");
    for (size_t i = 0; i < sizeof DEFAULT_TABLE / sizeof DEFAULT_TABLE[0]; i++) {
        add_class(k, DEFAULT_TABLE[i][0]);
        for (int j = 1; j < 8 && DEFAULT_TABLE[i][j]; j++) add_word(k, DEFAULT_TABLE[i][j]);
    }
    return k;
}

static void free_kw(void *p) { secap_emokw_free(*(secap_emokw **)p); }
static void close_file(void *p) { fclose(p); }
static void free_ptr(void *p) { free(*(void **)p); }

secap_emokw *secap_emokw_load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) secap_fatal("%s: cannot open emotion keyword file: %s (hint: check the path)", path, strerror(errno));
    secap_emokw *k = secap_xcalloc(1, sizeof *k, "emotion keywords");
    char *line = NULL;
    size_t cap = 0;
    secap_cleanup cf, ck, cl;
    secap_cleanup_push(&cf, close_file, f);
    secap_cleanup_push(&ck, free_kw, &k);
    secap_cleanup_push(&cl, free_ptr, &line);
    int lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        int nw = 0;
        for (char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
            if (nw++ == 0) {
                if (secap_emokw_find(k, tok) >= 0)
                    secap_fatal("%s:%d: class \"%s\" is listed twice (hint: one line per class)", path, lineno, tok);
                add_class(k, tok);
            } else add_word(k, tok);
        }
        if (nw == 1)
            secap_fatal("%s:%d: class \"%s\" has no keywords (hint: `<class> <word> <word> ...`; list the class "
                        "name itself as a word if it should count)", path, lineno, k->cls[k->n - 1].name);
    }
    if (k->n == 0)
        secap_fatal("%s: no classes (hint: one line per class, `<class> <word> <word> ...`)", path);
    secap_cleanup_pop(&cl);
    secap_cleanup_pop(&ck);
    secap_cleanup_pop(&cf);
    free(line);
    fclose(f);
    return k;
}

void secap_emokw_free(secap_emokw *k)
{
    if (!k) return;
    for (int i = 0; i < k->n; i++) {
        for (int j = 0; j < k->cls[i].nword; j++) free(k->cls[i].word[j]);
        free(k->cls[i].word);
        free(k->cls[i].name);
    }
    free(k->cls);
    free(k);
}

int secap_emokw_nclass(const secap_emokw *k) { return k->n; }

const char *secap_emokw_class(const secap_emokw *k, int c)
{
    if (c < 0 || c >= k->n) secap_fatal("emotion keywords: class index %d outside [0, %d)", c, k->n);
    return k->cls[c].name;
}

int secap_emokw_find(const secap_emokw *k, const char *name)
{
    for (int i = 0; i < k->n; i++)
        if (!strcmp(k->cls[i].name, name)) return i;
    return -1;
}

int secap_emokw_match(const secap_emokw *k, const char *caption)
{
    int found = SECAP_EMO_NONE;
    for (int i = 0; i < k->n; i++)
        for (int j = 0; j < k->cls[i].nword; j++)
            if (strstr(caption, k->cls[i].word[j])) {
                if (found >= 0 && found != i) return SECAP_EMO_AMBIGUOUS;
                found = i;
                break;
            }
    return found;
}

void secap_emokw_accuracy(const secap_emokw *k, int n, const char *const *hyps, const int *label, int *match,
                          secap_emo_acc *acc)
{
    memset(acc, 0, sizeof *acc);
    acc->n = n;
    for (int i = 0; i < n; i++) {
        if (label[i] < 0 || label[i] >= k->n)
            secap_fatal("emotion accuracy: hypothesis %d has label index %d outside [0, %d)", i, label[i], k->n);
        int m = secap_emokw_match(k, hyps[i]);
        if (match) match[i] = m;
        acc->correct += m == label[i];
        acc->none += m == SECAP_EMO_NONE;
        acc->ambiguous += m == SECAP_EMO_AMBIGUOUS;
    }
    acc->accuracy = n ? (double)acc->correct / n : 0;
}
