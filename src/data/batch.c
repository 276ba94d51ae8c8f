/* Padded batches: load, crop, normalise and pad the audio of some items. */
#include "secap/loader.h"
#include "secap/audio.h"
#include "secap/base.h"

#include <stdlib.h>
#include <string.h>

static void *grow(void *p, size_t n, const char *what)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) secap_fatal("out of memory allocating %zu bytes for %s (hint: lower data.batch_size)", n, what);
    return q;
}

/* Loads item k, crops it to at most max_n samples (rng: random start, NULL:
 * the head) and normalises it when asked.  Returns the clip; *start is the
 * offset of the crop inside the returned buffer. */
static secap_audio load_item(const secap_item *it, int64_t max_n, int normalize, secap_rng *rng,
                             int64_t *start, int64_t *len)
{
    secap_audio a;
    char err[1024];
    if (secap_audio_load(it->audio, SECAP_SAMPLE_RATE, &a, err, sizeof err))
        secap_fatal("item %s: %s", it->id, err);
    *start = secap_crop_start(a.n, max_n, rng);
    *len = max_n > 0 && a.n > max_n ? max_n : a.n;
    if (normalize) secap_audio_normalize(a.x + *start, *len);
    return a;
}

/* The clips of a batch being filled, released when an item stops it. */
typedef struct { secap_audio *clips; int64_t *starts; int loaded; } filling;

static void filling_free(void *arg)
{
    filling *f = arg;
    for (int i = 0; i < f->loaded; i++) secap_audio_free(&f->clips[i]);
    free(f->clips);
    free(f->starts);
}

void secap_batch_fill(secap_batch *b, const secap_dataset *d, const int *items, int n,
                      const secap_data_config *c, secap_rng *rng)
{
    int64_t max_n = c->max_seconds > 0 ? (int64_t)(c->max_seconds * SECAP_SAMPLE_RATE) : 0;
    secap_audio *clips = secap_xmalloc((size_t)(n + 1) * sizeof *clips, "batch clips");
    int64_t *starts = secap_xmalloc((size_t)(n + 1) * sizeof *starts, "batch clips");
    filling fl = { clips, starts, 0 };
    secap_cleanup cl;
    secap_cleanup_push(&cl, filling_free, &fl);
    b->B = n;
    b->lengths = grow(b->lengths, (size_t)n * sizeof *b->lengths, "batch lengths");
    b->item = grow(b->item, (size_t)n * sizeof *b->item, "batch items");
    b->label = grow(b->label, (size_t)n * sizeof *b->label, "batch labels");
    b->caption = grow(b->caption, (size_t)n * sizeof *b->caption, "batch captions");
    b->T = 0;
    for (int i = 0; i < n; i++) {
        const secap_item *it = &d->items[items[i]];
        clips[i] = load_item(it, max_n, c->normalize, rng, &starts[i], &b->lengths[i]);
        fl.loaded = i + 1;
        if (b->lengths[i] > b->T) b->T = b->lengths[i];
        b->item[i] = items[i];
        b->label[i] = it->label;
        b->caption[i] = rng && it->n_captions > 1 ? (int)secap_rng_below(rng, (uint64_t)it->n_captions) : 0;
    }
    b->audio = grow(b->audio, (size_t)n * (size_t)b->T * sizeof *b->audio, "batch audio");
    for (int i = 0; i < n; i++) {
        float *row = b->audio + (size_t)i * (size_t)b->T;
        memcpy(row, clips[i].x + starts[i], (size_t)b->lengths[i] * sizeof *row);
        memset(row + b->lengths[i], 0, (size_t)(b->T - b->lengths[i]) * sizeof *row);
    }
    secap_cleanup_pop(&cl);
    filling_free(&fl);
}

void secap_batch_free(secap_batch *b)
{
    free(b->audio);
    free(b->lengths);
    free(b->item);
    free(b->label);
    free(b->caption);
    memset(b, 0, sizeof *b);
}
