/* Validation of the audio behind every item, and the on_error policy. */
#include "secap/dataset.h"
#include "secap/audio.h"
#include "secap/base.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void secap_dataset_validate(secap_dataset *d, secap_problems *probs)
{
    for (int i = 0; i < d->n; i++) {
        secap_item *it = &d->items[i];
        if (access(it->audio, F_OK) != 0) {
            secap_problems_add(probs, it->audio, 0, 0, it->id,
                               "fix the path; relative paths resolve against the directory of wav.scp (or "
                               "the manifest), then its parent", "audio file not found");
            continue;
        }
        secap_audio_info info;
        char err[1024];
        if (secap_audio_probe(it->audio, &info, err, sizeof err)) {
            /* err is "<path>: what (hint: fix)": the problem names the file
             * already and takes the hint as its fix */
            size_t n = strlen(it->audio);
            char *what = !strncmp(err, it->audio, n) && err[n] == ':' ? err + n + 2 : err;
            char *hint = strstr(what, " (hint: ");
            const char *fix = "re-export the file as WAV or FLAC";
            if (hint && hint[strlen(hint) - 1] == ')') {
                hint[strlen(hint) - 1] = 0;
                *hint = 0;
                fix = hint + 8;
            }
            secap_problems_add(probs, it->audio, 0, 0, it->id, fix, "audio refused: %s", what);
            continue;
        }
        it->n_samples = info.frames * SECAP_SAMPLE_RATE / info.rate;
        if (info.frames == 0)
            secap_problems_add(probs, it->audio, 0, 0, it->id, "remove the item or replace the file",
                               "audio has zero length");
        else if (it->n_samples < SECAP_MIN_SAMPLES)
            secap_problems_add(probs, it->audio, 0, 0, it->id, "remove the item or replace the file",
                               "audio is too short: %lld samples at 16 kHz, one HuBERT frame needs %d",
                               (long long)it->n_samples, SECAP_MIN_SAMPLES);
    }
}

/* Drops the items flagged in `bad`, keeping order. */
static void drop_items(secap_dataset *d, const char *bad)
{
    int w = 0;
    for (int i = 0; i < d->n; i++) {
        secap_item *it = &d->items[i];
        if (!bad[i]) { d->items[w++] = *it; continue; }
        free(it->id);
        free(it->audio);
        free(it->transcript);
        for (int k = 0; k < it->n_captions; k++) free(it->captions[k]);
        free(it->captions);
    }
    d->n = w;
}

typedef struct { const char *id; int k; } id_ref;

static int cmp_ref(const void *a, const void *b) { return strcmp(((const id_ref *)a)->id, ((const id_ref *)b)->id); }

/* bad[k] = 1 for every item named by a problem (a sorted index, not a scan
 * per problem, so a dataset with many problems stays fast). */
static char *flag_items(const secap_dataset *d, const secap_problems *probs)
{
    id_ref *ref = secap_xmalloc((size_t)(d->n + 1) * sizeof *ref, "skip index");
    for (int i = 0; i < d->n; i++) { ref[i].id = d->items[i].id; ref[i].k = i; }
    qsort(ref, (size_t)d->n, sizeof *ref, cmp_ref);
    char *bad = secap_xcalloc((size_t)d->n + 1, 1, "skip flags");
    for (int i = 0; i < probs->n; i++) {
        id_ref key = { probs->v[i].id, 0 };
        const id_ref *hit = bsearch(&key, ref, (size_t)d->n, sizeof *ref, cmp_ref);
        if (hit) bad[hit->k] = 1;
    }
    free(ref);
    return bad;
}

int secap_dataset_apply_policy(secap_dataset *d, const secap_problems *probs, int on_error)
{
    if (probs->n == 0) return 0;
    if (on_error == SECAP_ON_ERROR_FAIL) {
        secap_problems_print(probs, stderr);
        secap_fatal("%s: %d problem%s in the dataset (listed above; first: %s%s%s) (hint: fix them, or set "
                    "data.on_error = skip to drop the items concerned)", d->source, probs->n,
                    probs->n == 1 ? "" : "s", probs->v[0].id ? probs->v[0].id : probs->v[0].file,
                    ": ", probs->v[0].what);
    }
    int whole_file = 0, first = -1;
    for (int i = 0; i < probs->n; i++)
        if (probs->v[i].id == NULL) { whole_file++; if (first < 0) first = i; }
    if (whole_file) {
        secap_problems_print(probs, stderr);
        secap_fatal("%s: %d problem%s not tied to one item, so they cannot be skipped: whole files or "
                    "unparsable lines (first: %s:%d: %s) (hint: fix those files)", d->source, whole_file,
                    whole_file == 1 ? " is" : "s are", probs->v[first].file, probs->v[first].line,
                    probs->v[first].what);
    }
    char *bad = flag_items(d, probs);
    int dropped = 0;
    fprintf(stderr, "secap: data.on_error = skip: dropping");
    for (int i = 0; i < d->n; i++)
        if (bad[i]) { fprintf(stderr, "%s %s", dropped ? "," : "", d->items[i].id); dropped++; }
    fprintf(stderr, " (%d item%s; problems:)\n", dropped, dropped == 1 ? "" : "s");
    secap_problems_print(probs, stderr);
    drop_items(d, bad);
    free(bad);
    if (d->n == 0)
        secap_fatal("%s: every item had a problem, nothing is left (hint: fix the dataset)", d->source);
    return dropped;
}
