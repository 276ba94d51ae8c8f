/* secap-lmtext - the text corpus of LM pretraining (stage lm), on its own.
 *
 *   secap-lmtext text  [sources] [--out FILE]
 *   secap-lmtext stats --tokenizer MODEL [sources] [--block-size N]
 *
 * sources: --data PATH (a dataset: the captions and transcripts of one
 * split, --split train (default) or dev; never test), --prompts FILE (one
 * prompt per line), --text FILE (extra text, repeatable).  The documents,
 * their cleaning and the packing are those of include/secap/lmtext.h.
 *
 * `text` writes the cleaned documents one per line (stdout or --out): the
 * input of tools/train_spm.sh, written before any tokenizer exists.
 * `stats` tokenises them, prints the corpus statistics, and checks that
 * every document decodes back to its text; exit status 1 when one does not.
 */
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/fileutil.h"
#include "secap/lmtext.h"
#include "secap/spm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "secap-lmtext";

static void usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: secap-lmtext text  [sources] [--out FILE]\n"
            "       secap-lmtext stats --tokenizer MODEL [sources] [--block-size N]\n"
            "sources (in this order: dataset, prompts, text files):\n"
            "  --data PATH        a dataset (SECap layout or JSON-lines manifest): captions and transcripts\n"
            "  --split NAME       the dataset split to read: train (default) or dev; test is refused\n"
            "  --prompts FILE     a prompt list, one prompt per line\n"
            "  --text FILE        extra UTF-8 text, one document per line (repeatable)\n"
            "  --tokenizer MODEL  a SentencePiece tokenizer.model (stats)\n"
            "  --block-size N     tokens per packed row for the block count (stats; default 128)\n"
            "  --out FILE         where `text` writes (default stdout)\n");
    exit(rc);
}

static secap_dataset *read_dataset(const char *path, secap_data_config *c)
{
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(path, c, &probs);
    if (probs.n) {
        secap_problems_print(&probs, stderr);
        secap_dataset_free(d);
        int n = probs.n;
        secap_problems_free(&probs);
        secap_fatal("%s: %s has %d problem%s (listed above) (hint: `secap-data validate --data %s`)", prog, path,
                    n, n == 1 ? "" : "s", path);
    }
    secap_problems_free(&probs);
    return d;
}

int main(int argc, char **argv)
{
    if (argc < 2) usage(2);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) usage(0);
    int stats = !strcmp(cmd, "stats");
    if (!stats && strcmp(cmd, "text")) {
        fprintf(stderr, "%s: unknown command %s (text or stats)\n", prog, cmd);
        usage(2);
    }
    const char *data = NULL, *prompts = NULL, *tokenizer = NULL, *out = NULL;
    int split = SECAP_SPLIT_TRAIN, block = 128, ntext = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage(0);
        else if (secap_cli_is(a, "--data")) data = secap_cli_value(argc, argv, &i, "--data", prog);
        else if (secap_cli_is(a, "--prompts")) prompts = secap_cli_value(argc, argv, &i, "--prompts", prog);
        else if (secap_cli_is(a, "--tokenizer")) tokenizer = secap_cli_value(argc, argv, &i, "--tokenizer", prog);
        else if (secap_cli_is(a, "--out")) out = secap_cli_value(argc, argv, &i, "--out", prog);
        else if (secap_cli_is(a, "--block-size"))
            block = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--block-size", prog), "--block-size", 1,
                                        1 << 20);
        else if (secap_cli_is(a, "--split")) {
            const char *s = secap_cli_value(argc, argv, &i, "--split", prog);
            if (!strcmp(s, "train")) split = SECAP_SPLIT_TRAIN;
            else if (!strcmp(s, "dev")) split = SECAP_SPLIT_DEV;
            else secap_fatal("%s: --split %s: use train or dev (the test split is never LM text)", prog, s);
        } else if (secap_cli_is(a, "--text")) { ntext++; i += !strchr(a, '='); }
        else {
            fprintf(stderr, "%s: unknown option %s\n", prog, a);
            usage(2);
        }
    }
    if (!data && !prompts && !ntext) {
        fprintf(stderr, "%s: give at least one source (--data, --prompts, --text)\n", prog);
        usage(2);
    }
    if (stats && !tokenizer) secap_fatal("%s stats: --tokenizer is required", prog);
    if (!stats && tokenizer) secap_fatal("%s text: --tokenizer is for stats only", prog);

    if (out) {   /* never over an input */
        const char *in[] = { data, prompts, tokenizer };
        for (int k = 0; k < 3; k++)
            if (in[k] && secap_same_file(out, in[k]))
                secap_fatal("%s: --out %s is one of the inputs (hint: write the text elsewhere)", prog, out);
        for (int i = 2; i < argc; i++)
            if (secap_cli_is(argv[i], "--text")) {
                const char *p = secap_cli_value(argc, argv, &i, "--text", prog);
                if (secap_same_file(out, p))
                    secap_fatal("%s: --out %s is the --text input %s (hint: write the text elsewhere)", prog, out, p);
            }
    }
    secap_spm *tok = tokenizer ? secap_spm_load(tokenizer) : NULL;
    secap_lmtext *t = secap_lmtext_new(tok);
    if (data) {
        secap_data_config c;
        secap_data_config_default(&c);
        secap_dataset *d = read_dataset(data, &c);
        int n = secap_lmtext_add_dataset(t, d, split);
        fprintf(stderr, "%s: %s (%s split): %d documents\n", prog, data, split ? "dev" : "train", n);
        secap_dataset_free(d);
    }
    if (prompts) fprintf(stderr, "%s: %s: %d documents\n", prog, prompts, secap_lmtext_add_file(t, prompts));
    for (int i = 2; i < argc; i++)
        if (secap_cli_is(argv[i], "--text")) {
            const char *p = secap_cli_value(argc, argv, &i, "--text", prog);
            fprintf(stderr, "%s: %s: %d documents\n", prog, p, secap_lmtext_add_file(t, p));
        }
        else if (!strchr(argv[i], '=') && (secap_cli_is(argv[i], "--data") || secap_cli_is(argv[i], "--prompts") ||
                                           secap_cli_is(argv[i], "--tokenizer") || secap_cli_is(argv[i], "--out") ||
                                           secap_cli_is(argv[i], "--block-size") || secap_cli_is(argv[i], "--split")))
            i++;

    int rc = 0;
    if (!stats && !out) {
        secap_lmtext_write_text(t, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) secap_fatal("%s: cannot write stdout: %s", prog, strerror(errno));
    } else if (!stats) {
        /* atomically: a temporary file renamed into place */
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
        FILE *f = fopen(tmp, "w");
        if (!f) secap_fatal("%s: cannot create %s: %s (hint: does the directory exist?)", prog, tmp, strerror(errno));
        secap_tmp_register(tmp);
        secap_lmtext_write_text(t, f);
        int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, out) != 0) {
            int e = errno;
            unlink(tmp);
            secap_tmp_unregister(tmp);
            secap_fatal("%s: cannot write %s: %s (hint: disk full?)", prog, out, strerror(e));
        }
        secap_tmp_unregister(tmp);
    } else {
        secap_lmtext_pack(t, block);
        secap_lmtext_print_stats(t, stdout);
        int64_t bad = secap_lmtext_roundtrip_check(t, stderr);
        printf("round trip: %lld of %lld documents decode to their text%s\n",
               (long long)(secap_lmtext_documents(t) - bad), (long long)secap_lmtext_documents(t),
               bad ? "  <-- MISMATCH" : "");
        rc = bad ? 1 : 0;
    }
    secap_lmtext_free(t);
    secap_spm_free(tok);
    return rc;
}
