/* secap/params.h - parameter tables: one per model, each name spelled once.
 *
 * A model describes its tensors once, in a table built in architecture
 * order: the Hugging Face state-dict name, the shape, the storage dtype, the
 * trainable flag, the init rule, and the model-struct field that receives the
 * tensor (the binding).  Everything else goes through the table:
 *
 *   loading   secap_params_load() reads every FILE entry from a weight file
 *             (optionally under a name prefix, so a sub-model comes out of a
 *             bigger state dict: "Qformer.bert." + "encoder.layer.0...") with
 *             the weight-file checks (missing, wrong shape, wrong dtype name
 *             the file and tensor); other entries get their init rule;
 *   binding   each entry's tensor is stored into its model field, so model
 *             code never looks a name up at run time;
 *   saving    secap_params_write() writes the table (or its trainable part)
 *             with HF names into an open weight file (atomic on close);
 *   lookup    hashed by name (secap_params_find);
 *   iteration secap_params_next() over entries matching fnmatch(3) patterns:
 *             optimizer groups (secap_adamw_add_params), checkpoints, tests.
 *
 * Frozen entries are read-only and shared: when the file stores a tensor
 * contiguously, uncompressed, in the entry's storage dtype, the tensor points
 * into a read-only mapping of the file owned by the table (no zero-fill, no
 * copy: resident memory stays close to the file size); otherwise it is read
 * straight into an uninitialised parameter.  Trainable entries are float32
 * parameters with gradients.  Tensors live in the context's param arena; the
 * table (its names and mappings) must outlive them.
 *
 * Init rules:
 *   FILE     from the weight file (with no file: the entry's random rule);
 *   COPY     a copy of another entry once that one has its values (BLIP-2's
 *            query feed-forward starts as the text feed-forward);
 *   NORMAL   normal(0, std);     ZEROS / ONES;
 *   KAIMING  PyTorch's kaiming_uniform_(a = sqrt(5)) of nn.Linear and PEFT's
 *            lora_A: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in =
 *            shape[1] * (kernel size).
 * Random draws come from a stream seeded by (seed, hash of the name), so an
 * entry's initial values do not depend on table order or composition.
 */
#ifndef SECAP_PARAMS_H
#define SECAP_PARAMS_H

#include <stdint.h>

#include "secap/tensor.h"
#include "secap/weights.h"

typedef enum {
    SECAP_INIT_FILE = 0,
    SECAP_INIT_COPY,
    SECAP_INIT_NORMAL,
    SECAP_INIT_ZEROS,
    SECAP_INIT_ONES,
    SECAP_INIT_KAIMING,
} secap_init;

typedef struct {
    char *name;                       /* HF state-dict name (owned by the table) */
    int ndim;
    int64_t shape[SECAP_MAX_DIMS];
    secap_dtype dtype;                /* storage: SECAP_F32, or SECAP_BF16 (frozen only) */
    int trainable;
    secap_init init;
    secap_init rand_init;             /* what FILE becomes when loading without a file */
    float std;                        /* NORMAL (and rand_init NORMAL) */
    int copy_of;                      /* COPY: source entry index */
    secap_tensor **bind;              /* model field receiving the tensor, or NULL */
    secap_tensor *t;                  /* the tensor, once loaded */
    int mapped;                       /* 1: t->data is in a read-only file mapping */
} secap_param_entry;

typedef struct secap_params secap_params;

/* An empty table; `model` names it in errors ("hubert", "qformer", ...).
 * New entries start as: init FILE, trainable 0, dtype float32, random rule
 * by name (".bias" zeros, norm weights ones, else normal(0.02)). */
secap_params *secap_params_new(const char *model);
void secap_params_free(secap_params *p);

/* Defaults for the entries added after the call. */
void secap_params_default_trainable(secap_params *p, int trainable);
void secap_params_default_std(secap_params *p, float std);

/* Adds an entry named fmt... with the given shape; `bind` (may be NULL)
 * receives the tensor at load.  Fails on a duplicate name.  Returns its
 * index. */
int secap_params_add(secap_params *p, secap_tensor **bind, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Per-entry rules (before loading). */
void secap_params_set_init(secap_params *p, int i, secap_init init, float std);
void secap_params_set_copy(secap_params *p, int i, int src);
/* Pattern rules: `patterns` is a comma-separated list of fnmatch(3)
 * patterns matched against full names ("*.bias,*LayerNorm*").  Return the
 * number of entries changed; a bf16 dtype on a trainable entry fails at
 * load. */
int secap_params_set_trainable(secap_params *p, const char *patterns, int trainable);
int secap_params_set_dtype(secap_params *p, const char *patterns, secap_dtype dtype);

/* Materialises every entry in c's param arena.  w NULL: FILE entries take
 * their random rule (--init random).  prefix (may be NULL) is prepended to
 * names when reading.  seed seeds the random rules.  Can be called once.
 * The caller closes w (secap_weights_close_checked for the unknown-tensor
 * check; a sub-model read out of a bigger file closes without it). */
void secap_params_load(secap_params *p, secap_ctx *c, secap_weights *w, const char *prefix, uint64_t seed);

/* Writes the entries (trainable_only: just the trainable ones) into an open
 * weight-file writer under prefix + name, in their storage dtype.  The
 * caller adds config attributes and closes w, which renames it into place. */
void secap_params_write(const secap_params *p, secap_weights *w, const char *prefix, int trainable_only);

/* Lookup and iteration. */
int secap_params_count(const secap_params *p);
const secap_param_entry *secap_params_entry(const secap_params *p, int i);
/* Index of `name`, or -1. */
int secap_params_find(const secap_params *p, const char *name);
/* The loaded tensor of `name`, or NULL (unknown, or not loaded yet). */
secap_tensor *secap_params_get(const secap_params *p, const char *name);
/* Next entry after index `after` (-1 to start) whose name matches one of the
 * comma-separated patterns (NULL: every entry); -1 at the end:
 *   for (int i = secap_params_next(p, "*.lora_*", -1); i >= 0; i = secap_params_next(p, "*.lora_*", i)) */
int secap_params_next(const secap_params *p, const char *patterns, int after);
/* 1 when name matches one of the comma-separated patterns. */
int secap_params_match(const char *patterns, const char *name);
/* Element counts and storage bytes (all entries, or the trainable ones). */
int64_t secap_params_numel(const secap_params *p, int trainable_only);
int64_t secap_params_bytes(const secap_params *p, int trainable_only);

#endif
