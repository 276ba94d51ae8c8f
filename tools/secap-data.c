/* secap-data - inspect and check speech-captioning datasets.
 *
 *   secap-data stats    --data DIR | --manifest FILE [--data.KEY=VALUE ...]
 *   secap-data validate --data DIR | --manifest FILE [--data.KEY=VALUE ...]
 *
 * DIR is in SECap's layout (wav.scp, text.txt, fid2captions.json, emotion.txt,
 * optional train/dev/test.list); FILE a JSON-lines manifest.  `stats` prints
 * items, hours, caption and transcript lengths, labels and splits (after the
 * data.on_error policy); `validate` lists every problem and exits 1 if any.
 */
#include "secap/base.h"
#include "secap/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: secap-data stats|validate --data DIR | --manifest FILE [--data.KEY=VALUE ...]\n"
                    "  keys: on_error, max_seconds, normalize, seed, split_ratios, batch_size, ...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    const char *cmd = argv[1], *path = NULL;
    secap_data_config c;
    secap_data_config_default(&c);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--data") || !strcmp(a, "--manifest")) && i + 1 < argc) { path = argv[++i]; continue; }
        if (!strncmp(a, "--data=", 7) || !strncmp(a, "--manifest=", 11)) { path = strchr(a, '=') + 1; continue; }
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) || !eq) usage();
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a - 2), a + 2);
        if (secap_data_config_set(&c, key, eq + 1))
            secap_fatal("unknown option %s (hint: data keys are on_error, max_seconds, normalize, seed, "
                        "split_ratios, batch_size, max_batch_seconds, bucket_batches, classes_per_batch, "
                        "per_class, prefetch, workers, label_file)", a);
    }
    if (!path) usage();
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(path, &c, &probs);
    secap_dataset_validate(d, &probs);
    if (!strcmp(cmd, "validate")) {
        secap_problems_print(&probs, stdout);
        printf("%s: %d items, %d problem%s\n", path, d->n, probs.n, probs.n == 1 ? "" : "s");
        int rc = probs.n ? 1 : 0;
        secap_problems_free(&probs);
        secap_dataset_free(d);
        return rc;
    }
    if (strcmp(cmd, "stats")) usage();
    secap_dataset_apply_policy(d, &probs, c.on_error);
    secap_dataset_stats s;
    secap_dataset_stats_compute(d, &s);
    secap_dataset_stats_print(d, &s, stdout);
    secap_dataset_stats_free(&s);
    secap_problems_free(&probs);
    secap_dataset_free(d);
    return 0;
}
