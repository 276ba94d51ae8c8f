/* secap/loader.h - batches, samplers and the prefetching loader over a
 * secap_dataset (secap/dataset.h). */
#ifndef SECAP_LOADER_H
#define SECAP_LOADER_H

#include <stdint.h>

#include "secap/dataset.h"
#include "secap/rng.h"

/* -------------------------------------------------------------- sampling */

/* One epoch's batch order: batches of item indices. */
typedef struct {
    int *items;   /* [n_items] item indices, batch after batch */
    int *start;   /* [n_batches + 1] offsets into items */
    int  n_batches;
    int  n_items;
} secap_epoch_plan;

/* Length-bucketed batches over the subset idx [n]: shuffle with rng, sort
 * chunks of bucket_batches * batch_size items by length, cut into batches of
 * batch_size (fewer when B x T_max would pass max_batch_seconds), shuffle
 * the batch order.  Items need n_samples (validated). */
void secap_plan_buckets(secap_epoch_plan *p, const secap_dataset *d, const int *idx, int n,
                        const secap_data_config *c, secap_rng *rng);
/* N classes x K per class: every batch holds K items of each of N distinct
 * labels, drawn without replacement; the epoch ends when fewer than N labels
 * have K items left.  Unlabelled items are not used. */
void secap_plan_classes(secap_epoch_plan *p, const secap_dataset *d, const int *idx, int n,
                        int n_classes, int per_class, secap_rng *rng);
void secap_epoch_plan_free(secap_epoch_plan *p);

/* ----------------------------------------------------------------- batch */

/* A padded batch.  Captions and transcripts are read from the dataset through
 * item[b]; caption[b] is the caption drawn for this step. */
typedef struct {
    int      B;          /* items in the batch */
    int64_t  T;          /* padded length in samples (max of lengths) */
    float   *audio;      /* [B x T] 16 kHz, zero-padded after lengths[b] */
    int64_t *lengths;    /* [B] valid samples */
    int     *item;       /* [B] dataset item indices */
    int     *label;      /* [B] label index, -1 none */
    int     *caption;    /* [B] index into the item's captions */
    int64_t  epoch, step; /* position: this is batch `step` of `epoch` */
} secap_batch;

/* Loads, crops, normalises and pads the given items into b (which owns its
 * buffers and grows them as needed).  rng draws the crops (NULL: head crop)
 * and the caption choices (NULL: caption 0).  Stops through secap_fatal when
 * an audio file cannot be read. */
void secap_batch_fill(secap_batch *b, const secap_dataset *d, const int *items, int n,
                      const secap_data_config *c, secap_rng *rng);
void secap_batch_free(secap_batch *b);

/* ---------------------------------------------------------------- loader */

/* Where a loader stands; saved in checkpoints so a resumed run sees the same
 * order.  Batch `step` of `epoch` is a pure function of (seed, epoch, step). */
typedef struct {
    int64_t epoch;   /* current epoch */
    int64_t step;    /* next batch within the epoch */
} secap_loader_state;

typedef struct secap_loader secap_loader;

/* A loader over the items of `split`; train = 1 shuffles and random-crops,
 * train = 0 keeps file order and head-crops.  The N x K sampler is used when
 * c->classes_per_batch > 0 and train.  c->workers threads fill a ring of
 * c->prefetch batches ahead of the consumer. */
secap_loader *secap_loader_create(const secap_dataset *d, int split, int train, const secap_data_config *c);
/* The next batch, valid until the next call.  After the last batch of an
 * epoch the loader moves on to the next epoch (a new shuffle); batch->epoch
 * and batch->step say where the batch stands.  Stops through secap_fatal
 * when the split is empty. */
const secap_batch *secap_loader_next(secap_loader *L);
/* Batches in the current epoch. */
int secap_loader_batches(const secap_loader *L);
secap_loader_state secap_loader_get_state(const secap_loader *L);
/* Restarts the workers at `s`: the next batch is batch s.step of s.epoch. */
void secap_loader_set_state(secap_loader *L, secap_loader_state s);
/* Seconds the consumer spent waiting for a batch not yet ready. */
double secap_loader_wait_seconds(const secap_loader *L);
void secap_loader_free(secap_loader *L);

#endif
