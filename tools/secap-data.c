/* secap-data - inspect and check speech-captioning datasets.
 *
 *   secap-data stats    --data DIR | --manifest FILE [--config FILE] [--data.KEY=VALUE ...]
 *   secap-data validate --data DIR | --manifest FILE [--config FILE] [--data.KEY=VALUE ...]
 *
 * DIR is in SECap's layout (wav.scp, text.txt, fid2captions.json, emotion.txt,
 * optional train/dev/test.list); FILE a JSON-lines manifest.  `stats` prints
 * items, hours, caption and transcript lengths, labels and splits (after the
 * data.on_error policy); `validate` lists every problem and exits 1 if any.
 * --config reads the [data] section of a run config (other sections are
 * left to the programs they belong to); command-line keys override it.
 */
#include "secap/base.h"
#include "secap/dataset.h"
#include "secap/ini.h"
#include "secap/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: secap-data stats|validate --data DIR | --manifest FILE [--config FILE] [--data.KEY=VALUE ...]\n"
                    "  keys: on_error, max_seconds, normalize, seed, split_ratios, batch_size, max_batch_seconds,\n"
                    "        bucket_batches, classes_per_batch, per_class, prefetch, workers, label_file,\n"
                    "        min_sample_rate, max_sample_rate, max_audio_seconds\n"
                    "  (README.md, section Data, documents each key and its default)\n");
    exit(2);
}

static int data_set(void *cfg, const char *key, const char *value)
{
    return secap_data_config_set(cfg, key, value);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) usage();
    const char *cmd = argv[1], *path = NULL;
    secap_ini *ini = secap_ini_new();
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--data") || !strcmp(a, "--manifest")) && i + 1 < argc) { path = argv[++i]; continue; }
        if (!strncmp(a, "--data=", 7) || !strncmp(a, "--manifest=", 11)) { path = strchr(a, '=') + 1; continue; }
        if (!strcmp(a, "--config") && i + 1 < argc) {
            secap_ini *file = secap_train_config_load(argv[++i]);   /* [config] base = FILE too */
            for (int k = 0; k < file->n; k++) /* file first; later flags override */
                secap_ini_set(ini, file->e[k].key, file->e[k].value, file->e[k].origin);
            secap_ini_free(file);
            continue;
        }
        if (!secap_ini_set_arg(ini, a)) usage();
    }
    secap_data_config c;
    secap_data_config_default(&c);
    /* data.dir (secap-train's dataset key) is the dataset when --data is not given */
    const char *dir = secap_ini_get(ini, "data.dir");
    char *dir_copy = dir && *dir && !path ? secap_xstrdup(dir, "data.dir") : NULL;
    if (dir_copy) path = dir_copy;
    secap_ini_apply(ini, "data", &c, data_set);
    secap_ini_check_used(ini, "data");
    secap_ini_free(ini);
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
        free(dir_copy);
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
    free(dir_copy);
    return 0;
}
