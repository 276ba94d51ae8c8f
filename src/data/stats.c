/* Dataset statistics: items, hours, caption and transcript lengths, labels. */
#include "secap/dataset.h"
#include "secap/audio.h"
#include "secap/base.h"

#include <stdlib.h>
#include <string.h>

void secap_dataset_stats_compute(const secap_dataset *d, secap_dataset_stats *s)
{
    memset(s, 0, sizeof *s);
    s->items = d->n;
    s->label_count = secap_xcalloc((size_t)d->n_labels + 1, sizeof(int), "label counts");
    s->min_sec = d->n ? 1e30 : 0;
    s->cap_min_chars = d->n ? 1 << 30 : 0;
    double cap_chars = 0, txt_chars = 0, secs = 0;
    int txt_n = 0;
    for (int i = 0; i < d->n; i++) {
        const secap_item *it = &d->items[i];
        double sec = (double)it->n_samples / SECAP_SAMPLE_RATE;
        secs += sec;
        if (sec < s->min_sec) s->min_sec = sec;
        if (sec > s->max_sec) s->max_sec = sec;
        for (int k = 0; k < it->n_captions; k++) {
            int n = secap_utf8_chars(it->captions[k]);
            cap_chars += n;
            s->captions++;
            if (n < s->cap_min_chars) s->cap_min_chars = n;
            if (n > s->cap_max_chars) s->cap_max_chars = n;
        }
        if (it->transcript) { txt_chars += secap_utf8_chars(it->transcript); txt_n++; }
        if (it->label >= 0) s->label_count[it->label]++;
        s->split_items[it->split]++;
    }
    if (!s->captions) s->cap_min_chars = 0;
    s->hours = secs / 3600.0;
    s->cap_mean_chars = s->captions ? cap_chars / s->captions : 0;
    s->txt_mean_chars = txt_n ? txt_chars / txt_n : 0;
}

void secap_dataset_stats_print(const secap_dataset *d, const secap_dataset_stats *s, FILE *f)
{
    fprintf(f, "dataset      %s\n", d->source);
    fprintf(f, "items        %d (train %d, dev %d, test %d; splits from %s)\n", s->items,
            s->split_items[0], s->split_items[1], s->split_items[2],
            d->has_splits ? "train/dev/test.list" : "id hash (data.seed, data.split_ratios)");
    fprintf(f, "audio        %.3f h, %.2f to %.2f s per item, mean %.2f s\n", s->hours, s->min_sec,
            s->max_sec, s->items ? s->hours * 3600.0 / s->items : 0.0);
    fprintf(f, "captions     %d (%.2f per item), %d to %d characters, mean %.1f\n", s->captions,
            s->items ? (double)s->captions / s->items : 0.0, s->cap_min_chars, s->cap_max_chars,
            s->cap_mean_chars);
    if (d->has_transcripts) fprintf(f, "transcripts  mean %.1f characters\n", s->txt_mean_chars);
    else fprintf(f, "transcripts  none\n");
    if (!d->n_labels) { fprintf(f, "labels       none\n"); return; }
    fprintf(f, "labels       %d:", d->n_labels);
    for (int i = 0; i < d->n_labels; i++) fprintf(f, " %s %d", d->labels[i], s->label_count[i]);
    fprintf(f, "\n");
}

void secap_dataset_stats_free(secap_dataset_stats *s)
{
    free(s->label_count);
    s->label_count = NULL;
}
