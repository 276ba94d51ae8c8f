/* The list of dataset problems collected before anything is reported. */
#include "secap/dataset.h"
#include "secap/base.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void secap_problems_add(secap_problems *p, const char *file, int line, int col, const char *id,
                        const char *fix, const char *fmt, ...)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        secap_problem *v = realloc(p->v, (size_t)p->cap * sizeof *v);
        if (!v) secap_fatal("out of memory for the dataset problem list");
        p->v = v;
    }
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    secap_problem *q = &p->v[p->n++];
    q->file = secap_xstrdup(file ? file : "", "problem file");
    q->line = line;
    q->col = col;
    q->id = id ? secap_xstrdup(id, "problem id") : NULL;
    q->what = secap_xstrdup(what, "problem text");
    q->fix = secap_xstrdup(fix ? fix : "", "problem fix");
}

void secap_problems_print(const secap_problems *p, FILE *f)
{
    for (int i = 0; i < p->n; i++) {
        const secap_problem *q = &p->v[i];
        fprintf(f, "%s", q->file);
        if (q->line) fprintf(f, ":%d", q->line);
        if (q->col) fprintf(f, ":%d", q->col);
        fprintf(f, ": %s%s%s (fix: %s)\n", q->id ? q->id : "", q->id ? ": " : "", q->what, q->fix);
    }
}

int secap_problems_find(const secap_problems *p, const char *id, const char *substr)
{
    for (int i = 0; i < p->n; i++) {
        const secap_problem *q = &p->v[i];
        if (id && (!q->id || strcmp(q->id, id))) continue;
        if (strstr(q->what, substr)) return i;
    }
    return -1;
}

void secap_problems_free(secap_problems *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->v[i].file);
        free(p->v[i].id);
        free(p->v[i].what);
        free(p->v[i].fix);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}
