/* Train / dev / test splits: from id lists, or by hashing the id with a seed. */
#include "secap/dataset.h"
#include "secap/base.h"
#include "secap/fileutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const SPLIT_NAMES[3] = { "train", "dev", "test" };

/* Index of id in d, by linear search over a sorted copy built on demand. */
typedef struct { const char *id; int k; } id_ref;

static int cmp_ref(const void *a, const void *b) { return strcmp(((const id_ref *)a)->id, ((const id_ref *)b)->id); }

/* Where each item was put so far: list index (-1 none) and line. */
typedef struct { int *list, *line; } placed;

static void assign_from_file(secap_dataset *d, const id_ref *sorted, const char *const paths[3], int split,
                             placed *pl, secap_problems *probs)
{
    const char *path = paths[split];
    if (secap_is_dir(path)) {
        secap_problems_add(probs, path, 0, 0, NULL, "give a text file with one id per line",
                           "is a directory, not a %s list", SPLIT_NAMES[split]);
        return;
    }
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)got != strlen(line)) {
            secap_problems_add(probs, path, lineno, 0, NULL, "a list is UTF-8 text, one id per line",
                               "NUL byte in the %s list (binary file?)", SPLIT_NAMES[split]);
            break;
        }
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
        if (!*s) continue;
        id_ref key = { s, 0 };
        const id_ref *hit = bsearch(&key, sorted, (size_t)d->n, sizeof *sorted, cmp_ref);
        if (!hit) {
            secap_problems_add(probs, path, lineno, 0, s, "remove the id from the list or add it to the dataset",
                               "id in the %s list is not in the dataset", SPLIT_NAMES[split]);
            continue;
        }
        int k = hit->k, prev = pl->list[k];
        if (prev >= 0) {   /* never moved silently between splits */
            if (prev == split)
                secap_problems_add(probs, path, lineno, 0, s, "keep one line per id",
                                   "id listed twice in the %s list (first on line %d)", SPLIT_NAMES[split], pl->line[k]);
            else
                secap_problems_add(probs, path, lineno, 0, s, "keep each id in exactly one of train/dev/test.list",
                                   "id is in both the %s list (%s line %d) and the %s list", SPLIT_NAMES[prev],
                                   paths[prev], pl->line[k], SPLIT_NAMES[split]);
            continue;
        }
        pl->list[k] = split;
        pl->line[k] = lineno;
        d->items[k].split = split;
    }
    if (ferror(f))
        secap_problems_add(probs, path, lineno, 0, NULL, "check the file and the disk", "read error");
    free(line);
    fclose(f);
}

int secap_split_from_lists(secap_dataset *d, const char *const paths[3], secap_problems *probs)
{
    int found = 0;
    for (int s = 0; s < 3; s++) found += paths[s] && access(paths[s], R_OK) == 0;
    if (!found) return -1;
    id_ref *sorted = secap_xmalloc((size_t)(d->n + 1) * sizeof *sorted, "split index");
    placed pl = { secap_xmalloc((size_t)(d->n + 1) * sizeof(int), "split index"),
                  secap_xmalloc((size_t)(d->n + 1) * sizeof(int), "split index") };
    for (int i = 0; i < d->n; i++) {
        sorted[i].id = d->items[i].id; sorted[i].k = i;
        d->items[i].split = SECAP_SPLIT_TRAIN;
        pl.list[i] = -1;
    }
    qsort(sorted, (size_t)d->n, sizeof *sorted, cmp_ref);
    for (int s = 0; s < 3; s++)
        if (paths[s]) assign_from_file(d, sorted, paths, s, &pl, probs);
    free(sorted);
    free(pl.list);
    free(pl.line);
    d->has_splits = 1;
    return 0;
}

void secap_split_by_hash(secap_dataset *d, uint64_t seed, const double ratios[3])
{
    for (int i = 0; i < d->n; i++) {
        const char *id = d->items[i].id;
        double u = (double)(secap_hash64(id, strlen(id), seed) >> 11) * 0x1.0p-53;
        d->items[i].split = u < ratios[0] ? SECAP_SPLIT_TRAIN
                          : u < ratios[0] + ratios[1] ? SECAP_SPLIT_DEV : SECAP_SPLIT_TEST;
    }
    d->has_splits = 0;
}

int secap_split_indices(const secap_dataset *d, int split, int **idx)
{
    *idx = secap_xmalloc((size_t)(d->n + 1) * sizeof **idx, "split indices");
    int n = 0;
    for (int i = 0; i < d->n; i++)
        if (split < 0 || d->items[i].split == split) (*idx)[n++] = i;
    return n;
}
