/* tests/fuzz/dataset_common.h - what the dataset fuzz targets do with a
 * dataset once read: everything a run does before touching audio (problem
 * list, statistics, split indices, the data.on_error policies), checking the
 * invariants the loader relies on. */
#ifndef SECAP_FUZZ_DATASET_COMMON_H
#define SECAP_FUZZ_DATASET_COMMON_H

#include "fuzz.h"
#include "secap/dataset.h"

typedef struct { secap_dataset *d; secap_problems probs; } fuzz_dataset;

static void fuzz_dataset_free(void *arg)
{
    fuzz_dataset *h = arg;
    secap_dataset_free(h->d);
    secap_problems_free(&h->probs);
    h->d = NULL;
}

/* Checks the dataset h->d (read with problems into h->probs), then applies
 * the `policy` (SECAP_ON_ERROR_*), which may stop through secap_fatal. */
static void fuzz_dataset_use(fuzz_dataset *h, int policy)
{
    secap_dataset *d = h->d;
    if (!d) fuzz_die("reader returned no dataset");
    secap_problems_print(&h->probs, fuzz_null);
    for (int i = 0; i < d->n; i++) {
        const secap_item *it = &d->items[i];
        if (!it->id || !*it->id || !it->audio) fuzz_die("item %d lacks an id or audio path", i);
        if (it->label < -1 || it->label >= d->n_labels) fuzz_die("item %d: label %d of %d", i, it->label, d->n_labels);
        if (it->split < 0 || it->split >= SECAP_NSPLITS) fuzz_die("item %d: split %d", i, it->split);
        if (secap_utf8_chars(it->id) < 0) fuzz_die("item %d: id is not UTF-8", i);
        for (int k = 0; k < it->n_captions; k++)
            if (secap_utf8_chars(it->captions[k]) < 0) fuzz_die("item %d: caption %d is not UTF-8", i, k);
        if (it->transcript && secap_utf8_chars(it->transcript) < 0) fuzz_die("item %d: transcript not UTF-8", i);
        if (h->probs.n == 0 && it->n_captions < 1) fuzz_die("item %s has no caption and no problem says so", it->id);
    }
    for (int i = 1; i < d->n_labels; i++)
        if (strcmp(d->labels[i - 1], d->labels[i]) >= 0) fuzz_die("labels not sorted and distinct");
    secap_dataset_stats s;
    secap_dataset_stats_compute(d, &s);
    secap_dataset_stats_print(d, &s, fuzz_null);
    secap_dataset_stats_free(&s);
    int total = 0;
    for (int sp = 0; sp < SECAP_NSPLITS; sp++) {
        int *idx = NULL;
        total += secap_split_indices(d, sp, &idx);
        free(idx);
    }
    if (total != d->n) fuzz_die("splits hold %d items of %d", total, d->n);
    int n0 = d->n;
    int dropped = secap_dataset_apply_policy(d, &h->probs, policy);
    /* (an empty dataset without problems passes: the programs refuse it later) */
    if (dropped < 0 || d->n != n0 - dropped || (dropped && d->n < 1))
        fuzz_die("policy dropped %d of %d, %d left", dropped, n0, d->n);
}

#endif
