/* secap/dataset.h - speech-captioning datasets: the data.* config, readers,
 * validation, splits and statistics.  Batching and the prefetching loader are
 * in secap/loader.h, the encoder-feature cache in secap/featcache.h.
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
    int      min_sample_rate; /* data.min_sample_rate: audio headers below are refused (4000) */
    int      max_sample_rate; /* data.max_sample_rate: ... and above        (384000) */
    double   max_audio_seconds; /* data.max_audio_seconds: longest clip a header may claim (3600) */
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
/* A directory (SECap layout) or a .jsonl file, whichever `path` is.  Also
 * applies c's audio bounds (data.min_sample_rate, data.max_sample_rate,
 * data.max_audio_seconds) through secap_audio_set_limits. */
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
 * stay train; an id in a list but not in the dataset, an id in two lists
 * (it stays where it was listed first) or twice in one is a problem naming
 * the file, line and id.  Returns 0, or -1 when no list file exists. */
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

#endif
