/* secap-train: trains SECap's stages from one config (README "Training").
 *
 *   secap-train --config FILE.ini [--section.key=value ...] [--resume CKPT.h5 | RUN_DIR]
 *               [--init random] [--dry-run] [--help]
 */
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/dist.h"
#include "secap/train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-train --config FILE.ini [--section.key=value ...] [--resume CKPT.h5 | RUN_DIR]\n"
        "                   [--init random] [--dry-run] [--help]\n"
        "\n"
        "Trains the stages of train.stages (qformer: paper stage 1, caption: paper stage 2) on data.dir and\n"
        "writes the run directory train.out_dir: config.ini (the resolved config), metrics.jsonl (one JSON\n"
        "object per optimizer step) and checkpoints ckpt-<step>.h5 (the newest train.keep).\n"
        "\n"
        "  --config FILE        the run config (INI; sections data, hubert, augment, qformer, llama, lora, lm,\n"
        "                       loss, optim, train, eval, decode, log; README.md \"Training\" documents every key)\n"
        "  --section.key=value  overrides a key of the config\n"
        "  --resume PATH        continues a run exactly from a checkpoint, or from the newest checkpoint of a\n"
        "                       run directory; without --config the checkpoint's own config is used\n"
        "  --init random        no weight file is read for the Q-Former and the LLaMA: every parameter from\n"
        "                       its random rule at the config's sizes (scale tests)\n"
        "  --dry-run            checks the config and the data, prints the model summary (parameters per\n"
        "                       module, trainable and frozen, memory) and exits\n"
        "\n"
        "Required keys: data.dir, train.out_dir, train.max_steps (0 = from train.epochs), train.stages.\n"
        "SIGINT / SIGTERM finish the current step, save a checkpoint, print the resume command and exit 0.\n"
        "Under mpirun -np N the same command trains data parallel on N ranks (train.dist_timeout,\n"
        "train.dist_bucket_mb, train.dist_overlap; README.md \"Distributed training (MPI)\").\n");
}

int main(int argc, char **argv)
{
    secap_train_opts o = { 0 };
    o.overrides = calloc((size_t)argc, sizeof *o.overrides);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(o.overrides); return 0; }
        else if (secap_cli_is(a, "--config")) o.config = secap_cli_value(argc, argv, &i, "--config", "secap-train");
        else if (secap_cli_is(a, "--resume")) o.resume = secap_cli_value(argc, argv, &i, "--resume", "secap-train");
        else if (secap_cli_is(a, "--init")) {
            const char *v = secap_cli_value(argc, argv, &i, "--init", "secap-train");
            if (strcmp(v, "random"))
                secap_fatal("secap-train: --init %s: unknown (hint: accepted values: random)", v);
            o.init_random = 1;
        } else if (!strcmp(a, "--dry-run")) o.dry_run = 1;
        else if (!strncmp(a, "--", 2) && strchr(a, '.') && strchr(a, '=') && strchr(a, '.') < strchr(a, '='))
            o.overrides[o.noverrides++] = argv[i];
        else {
            fprintf(stderr, "secap-train: unknown argument \"%s\"\n", a);
            usage(stderr);
            free(o.overrides);
            return 2;
        }
    }
    if (!o.config && !o.resume) {
        usage(stderr);
        free(o.overrides);
        return 2;
    }
    int rc = secap_train_main(&o);
    secap_dist_finalize();   /* MPI runs: after every rank's last collective */
    free(o.overrides);
    return rc;
}
