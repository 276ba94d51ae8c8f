/* Epoch plans: length-bucketed batches and N-classes x K-per-class batches. */
#include "secap/loader.h"
#include "secap/base.h"

#include <stdlib.h>
#include <string.h>

static void plan_alloc(secap_epoch_plan *p, int n_items)
{
    memset(p, 0, sizeof *p);
    p->items = secap_xmalloc((size_t)(n_items + 1) * sizeof *p->items, "epoch plan");
    p->start = secap_xmalloc((size_t)(n_items + 2) * sizeof *p->start, "epoch plan");
    p->start[0] = 0;
}

static void plan_close_batch(secap_epoch_plan *p)
{
    if (p->n_items > p->start[p->n_batches]) p->start[++p->n_batches] = p->n_items;
}

void secap_epoch_plan_free(secap_epoch_plan *p)
{
    free(p->items);
    free(p->start);
    memset(p, 0, sizeof *p);
}

/* Sort key for bucketing: (length, item index) so ties are deterministic. */
typedef struct { int64_t len; int k; } len_ref;

static int cmp_len(const void *a, const void *b)
{
    const len_ref *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

/* Reorders the batches of p by a random permutation. */
static void shuffle_batches(secap_epoch_plan *p, secap_rng *rng)
{
    int nb = p->n_batches;
    int *perm = secap_xmalloc((size_t)(nb + 1) * sizeof *perm, "batch order");
    for (int i = 0; i < nb; i++) perm[i] = i;
    secap_rng_shuffle(rng, perm, nb);
    int *items = secap_xmalloc((size_t)(p->n_items + 1) * sizeof *items, "epoch plan");
    int *start = secap_xmalloc((size_t)(nb + 2) * sizeof *start, "epoch plan");
    int w = 0;
    start[0] = 0;
    for (int b = 0; b < nb; b++) {
        for (int i = p->start[perm[b]]; i < p->start[perm[b] + 1]; i++) items[w++] = p->items[i];
        start[b + 1] = w;
    }
    free(p->items);
    free(p->start);
    free(perm);
    p->items = items;
    p->start = start;
}

void secap_plan_buckets(secap_epoch_plan *p, const secap_dataset *d, const int *idx, int n,
                        const secap_data_config *c, secap_rng *rng)
{
    plan_alloc(p, n);
    int *order = secap_xmalloc((size_t)(n + 1) * sizeof *order, "epoch order");
    memcpy(order, idx, (size_t)n * sizeof *order);
    if (rng) secap_rng_shuffle(rng, order, n);
    int B = c->batch_size;
    int64_t cap = c->max_batch_seconds > 0 ? (int64_t)(c->max_batch_seconds * 16000.0) : 0;
    int64_t max_n = c->max_seconds > 0 ? (int64_t)(c->max_seconds * 16000.0) : 0;
    int chunk = rng ? B * c->bucket_batches : n;
    len_ref *ref = secap_xmalloc((size_t)(chunk + 1) * sizeof *ref, "bucket");
    for (int c0 = 0; c0 < n; c0 += chunk) {
        int m = n - c0 < chunk ? n - c0 : chunk;
        for (int i = 0; i < m; i++) {
            int64_t len = d->items[order[c0 + i]].n_samples;
            ref[i].len = max_n && len > max_n ? max_n : len;
            ref[i].k = order[c0 + i];
        }
        if (rng) qsort(ref, (size_t)m, sizeof *ref, cmp_len);
        for (int i = 0; i < m; i++) {
            int in_batch = p->n_items - p->start[p->n_batches];
            /* Sorted ascending, so this item is the batch's longest. */
            int64_t t_max = ref[i].len;
            if (in_batch == B || (cap && in_batch > 0 && (int64_t)(in_batch + 1) * t_max > cap))
                plan_close_batch(p);
            p->items[p->n_items++] = ref[i].k;
        }
        plan_close_batch(p);
    }
    free(ref);
    free(order);
    if (rng) shuffle_batches(p, rng);
}

void secap_plan_classes(secap_epoch_plan *p, const secap_dataset *d, const int *idx, int n,
                        int n_classes, int per_class, secap_rng *rng)
{
    int L = d->n_labels;
    plan_alloc(p, n);
    /* pool[l] holds the shuffled items of label l; left[l] how many remain. */
    int **pool = secap_xcalloc((size_t)L + 1, sizeof *pool, "class pools");
    int *left = secap_xcalloc((size_t)L + 1, sizeof *left, "class pools");
    for (int l = 0; l < L; l++) pool[l] = secap_xmalloc((size_t)(n + 1) * sizeof **pool, "class pool");
    for (int i = 0; i < n; i++) {
        int l = d->items[idx[i]].label;
        if (l >= 0) pool[l][left[l]++] = idx[i];
    }
    for (int l = 0; l < L; l++) secap_rng_shuffle(rng, pool[l], left[l]);
    int *eligible = secap_xmalloc(((size_t)L + 1) * sizeof *eligible, "eligible classes");
    for (;;) {
        int ne = 0;
        for (int l = 0; l < L; l++)
            if (left[l] >= per_class) eligible[ne++] = l;
        if (ne < n_classes || n_classes <= 0) break;
        for (int j = 0; j < n_classes; j++) {
            int r = j + (int)secap_rng_below(rng, (uint64_t)(ne - j));
            int l = eligible[r];
            eligible[r] = eligible[j];
            eligible[j] = l;
            for (int k = 0; k < per_class; k++) p->items[p->n_items++] = pool[l][--left[l]];
        }
        plan_close_batch(p);
    }
    for (int l = 0; l < L; l++) free(pool[l]);
    free(pool);
    free(left);
    free(eligible);
}
