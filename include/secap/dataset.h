/* secap/dataset.h - speech-captioning datasets: readers, validation, splits,
 * batching, samplers and the prefetching loader.
 *
 * Two on-disk forms are read unchanged:
 *   - SECap's layout, a directory holding
 *       wav.scp            <id> <path>
 *       text.txt           <id> <transcript>          (optional)
 *       fid2captions.json  {id: caption} or {id: [captions]}
 *       emotion.txt        <id> <label>               (optional)
 *     Fields are separated by any run of spaces or tabs; trailing whitespace
 *     is not part of the value.  A relative audio path resolves against the
 *     directory holding wav.scp, then its parent (the public SECap test set
 *     stores paths relative to its repository root: dataset/wav/x.wav).
 *   - a JSON-lines manifest, one object per line:
 *       {"key": id, "source": audio path, "target": caption or [captions],
 *        "transcript": ..., "emotion": ...}  (the last two optional);
 *     relative paths resolve against the manifest's directory, then its parent.
 *
 * Reading never stops on bad input: every problem (file, line, id, what, fix)
 * goes into a secap_problems list.  secap_dataset_validate adds the problems
 * of the audio itself; secap_dataset_apply_policy then stops with the whole
 * list (data.on_error = fail) or drops the items concerned (skip).
 */
#ifndef SECAP_DATASET_H
#define SECAP_DATASET_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "secap/rng.h"

/* ---------------------------------------------------------------- config */

enum { SECAP_ON_ERROR_FAIL = 0, SECAP_ON_ERROR_SKIP = 1 };
enum { SECAP_SPLIT_TRAIN = 0, SECAP_SPLIT_DEV = 1, SECAP_SPLIT_TEST = 2, SECAP_NSPLITS = 3 };

/* The data.* config section.  Defaults from secap_data_config_default. */
typedef struct {
    int      on_error;        /* data.on_error = fail | skip            (fail) */
    double   max_seconds;     /* data.max_seconds: crop longer clips, 0 = off (0) */
    int      normalize;       /* data.normalize: zero mean, unit variance   (0) */
    uint64_t seed;            /* data.seed: shuffles, crops, hash splits    (1) */
    double   split_ratios[3]; /* data.split_ratios = train,dev,test (0.9,0.05,0.05) */
    int      batch_size;      /* data.batch_size                            (8) */
    double   max_batch_seconds; /* data.max_batch_seconds: cap on B x T_max, 0 = off (0) */
    int      bucket_batches;  /* data.bucket_batches: batches per length bucket (16) */
    int      classes_per_batch; /* data.classes_per_batch N for the N x K sampler (0 = off) */
    int      per_class;       /* data.per_class K                           (2) */
    int      prefetch;        /* data.prefetch: batches prepared ahead      (4) */
    int      workers;         /* data.workers: loader threads               (2) */
    char     label_file[256]; /* data.label_file                 (emotion.txt) */
} secap_data_config;

void secap_data_config_default(secap_data_config *c);
/* Sets one key ("on_error" or "data.on_error") from its text value; stops
 * through secap_fatal naming the key and the accepted values when invalid.
 * Returns 0, or -1 when the key is not a data key (the caller may try others). */
int secap_data_config_set(secap_data_config *c, const char *key, const char *value);
/* Writes every key as "data.key = value" lines (for logs and checkpoints). */
void secap_data_config_print(const secap_data_config *c, FILE *f);

/* -------------------------------------------------------------- problems */

typedef struct {
    char *file;   /* the file concerned */
    int   line;   /* 1-based line, 0 when not about one line */
    int   col;    /* 1-based column, 0 when unknown */
    char *id;     /* the utterance id, NULL for a whole-file problem */
    char *what;   /* what is wrong */
    char *fix;    /* how to fix it */
} secap_problem;

typedef struct {
    secap_problem *v;
    int n, cap;
} secap_problems;

void secap_problems_add(secap_problems *p, const char *file, int line, int col, const char *id,
                        const char *fix, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* One problem per line: "file:line:col: id: what (fix: ...)". */
void secap_problems_print(const secap_problems *p, FILE *f);
/* Index of the first problem whose `what` contains substr and whose id
 * equals id (id NULL: any); -1 when none.  For tests and tools. */
int secap_problems_find(const secap_problems *p, const char *id, const char *substr);
void secap_problems_free(secap_problems *p);

/* --------------------------------------------------------------- dataset */

typedef struct {
    char    *id;
    char    *audio;        /* resolved audio path */
    char    *transcript;   /* NULL when the dataset has none */
    char   **captions;     /* [n_captions] UTF-8 */
    int      n_captions;
    int      label;        /* index into secap_dataset.labels, -1 none */
    int      split;        /* SECAP_SPLIT_* */
    int64_t  n_samples;    /* length at 16 kHz from the header, 0 until validated */
} secap_item;

typedef struct {
    char       *source;    /* the directory or manifest read */
    secap_item *items;     /* [n] in file order */
    int         n;
    char      **labels;    /* [n_labels] distinct labels, sorted */
    int         n_labels;
    int         has_transcripts;
    int         has_splits; /* 1 when split lists were found */
} secap_dataset;

/* Reads a directory in SECap's layout.  Problems go into *probs. */
secap_dataset *secap_dataset_read_dir(const char *dir, const secap_data_config *c, secap_problems *probs);
/* Reads a JSON-lines manifest. */
secap_dataset *secap_dataset_read_manifest(const char *path, secap_problems *probs);
/* A directory (SECap layout) or a .jsonl file, whichever `path` is. */
secap_dataset *secap_dataset_read(const char *path, const secap_data_config *c, secap_problems *probs);
void secap_dataset_free(secap_dataset *d);

/* Probes every audio file: missing, unreadable, zero-length or shorter than
 * SECAP_MIN_SAMPLES at 16 kHz; fills items[i].n_samples. */
void secap_dataset_validate(secap_dataset *d, secap_problems *probs);

/* With on_error fail and any problem: prints the list and stops through
 * secap_fatal.  With skip: drops every item named by a problem, prints how
 * many and which, and stops only on whole-file problems or when nothing is
 * left.  Returns the number of items dropped. */
int secap_dataset_apply_policy(secap_dataset *d, const secap_problems *probs, int on_error);

/* Splits.  From id lists (one id per line; NULL path = absent): ids in no list
 * stay train; an id in a list but not in the dataset is a problem.  Returns 0,
 * or -1 when no list file exists. */
int secap_split_from_lists(secap_dataset *d, const char *const paths[3], secap_problems *probs);
/* Deterministic: u = hash(id, seed) / 2^64; train if u < r0, dev if u < r0+r1. */
void secap_split_by_hash(secap_dataset *d, uint64_t seed, const double ratios[3]);
/* Indices of the items in `split`; returns the count, *idx malloc'ed. */
int secap_split_indices(const secap_dataset *d, int split, int **idx);

/* ----------------------------------------------------------------- stats */

typedef struct {
    int     items;
    double  hours, min_sec, max_sec;
    double  cap_mean_chars, txt_mean_chars;   /* in Unicode characters */
    int     cap_min_chars, cap_max_chars, captions;
    int     split_items[3];
    int    *label_count;  /* [d->n_labels] */
} secap_dataset_stats;

/* Needs validated items (n_samples) for the hours. */
void secap_dataset_stats_compute(const secap_dataset *d, secap_dataset_stats *s);
void secap_dataset_stats_print(const secap_dataset *d, const secap_dataset_stats *s, FILE *f);
void secap_dataset_stats_free(secap_dataset_stats *s);

/* Number of Unicode code points of valid UTF-8 s; -1 when s is not valid UTF-8. */
int secap_utf8_chars(const char *s);

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

/* ---------------------------------------------------------- feature cache */

/* Encoder outputs stored in HDF5, one deflate-compressed float32 dataset
 * [frames x dim] per utterance id, so a frozen encoder runs once per
 * utterance.  Root attributes identify what produced them: `encoder` (the
 * weights: e.g. file name, size and modification time, or a checksum),
 * `settings` (audio and output settings: rate, normalisation, crop, layer)
 * and `format`.  A cache whose attributes differ from the key is stale: it is
 * rebuilt (written to a temporary file that replaces it on close), never
 * silently used. */
typedef struct {
    const char *encoder;
    const char *settings;
} secap_featcache_key;

typedef struct secap_featcache secap_featcache;

/* Opens the cache at path for `key`.  *rebuilt (may be NULL) is set to 1
 * when the file was missing, unreadable or stale and a new one is started. */
secap_featcache *secap_featcache_open(const char *path, const secap_featcache_key *key, int *rebuilt);
int secap_featcache_has(secap_featcache *fc, const char *id);
/* Features of `id` [*frames x *dim] in a new buffer, or NULL when absent. */
float *secap_featcache_get(secap_featcache *fc, const char *id, int64_t *frames, int64_t *dim);
void secap_featcache_put(secap_featcache *fc, const char *id, const float *x, int64_t frames, int64_t dim);
/* Closes; a rebuilt cache replaces the old file atomically here. */
void secap_featcache_close(secap_featcache *fc);

#endif
