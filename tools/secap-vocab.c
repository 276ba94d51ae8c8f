/* secap-vocab - build a BERT vocab.txt (bert-base-chinese's layout) from a
 * corpus, for the Q-Former's text side when bert-base-chinese's own
 * vocab.txt is not used (the demo).
 *
 *   secap-vocab --out vocab.txt [--data DIR|MANIFEST]... [--text FILE]...
 *               [--cased] [--min-count N] [--max-pieces N]
 *
 * --data reads a dataset (SECap layout or JSON-lines manifest): every
 * transcript and every caption of every split.  --text reads a plain text
 * file, one text per line.  The layout and the piece learning are described
 * in include/secap/berttok.h (secap_bertvocab_build).
 */
#include "secap/base.h"
#include "secap/berttok.h"
#include "secap/cli.h"
#include "secap/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "secap-vocab";

static void usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: secap-vocab --out FILE [--data DIR|MANIFEST]... [--text FILE]...\n"
            "                   [--cased] [--min-count N] [--max-pieces N]\n"
            "  --out FILE        the vocab.txt to write (atomically)\n"
            "  --data PATH       a dataset: its transcripts and captions (repeatable)\n"
            "  --text FILE       a UTF-8 text file, one text per line (repeatable)\n"
            "  --cased           keep case and accents (the tokenizer's lower_case = 0)\n"
            "  --min-count N     a learned word piece occurs at least N times (default 2)\n"
            "  --max-pieces N    at most N learned word pieces (default 2000)\n");
    exit(rc);
}

static void add_text_file(secap_bertvocab *v, const char *path, long *texts)
{
    FILE *f = fopen(path, "rb");
    if (!f) secap_fatal("%s: cannot open %s: %s (hint: check the --text path)", prog, path, strerror(errno));
    char *line = NULL, what[512];
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, 0, (size_t)n))
            secap_fatal("%s: %s:%d: the line holds a NUL byte (hint: --text takes a UTF-8 text file)",
                        prog, path, lineno);
        snprintf(what, sizeof what, "%s:%d", path, lineno);
        secap_bertvocab_add(v, line, what);
        (*texts)++;
    }
    free(line);
    fclose(f);
}

static void add_dataset(secap_bertvocab *v, const char *path, long *texts)
{
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(path, &c, &probs);
    if (probs.n) {
        secap_problems_print(&probs, stderr);
        secap_fatal("%s: %s has %d problem%s (listed above) (hint: `secap-data validate --data %s`)",
                    prog, path, probs.n, probs.n == 1 ? "" : "s", path);
    }
    char what[512];
    for (int i = 0; i < d->n; i++) {
        const secap_item *it = &d->items[i];
        if (it->transcript) {
            snprintf(what, sizeof what, "%s: transcript of %s", path, it->id);
            secap_bertvocab_add(v, it->transcript, what);
            (*texts)++;
        }
        for (int k = 0; k < it->n_captions; k++) {
            snprintf(what, sizeof what, "%s: caption %d of %s", path, k + 1, it->id);
            secap_bertvocab_add(v, it->captions[k], what);
            (*texts)++;
        }
    }
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

int main(int argc, char **argv)
{
    secap_bertvocab_opts o;
    secap_bertvocab_opts_default(&o);
    const char *out = NULL;
    int nsrc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage(0);
        else if (secap_cli_is(a, "--out")) out = secap_cli_value(argc, argv, &i, "--out", prog);
        else if (secap_cli_is(a, "--cased")) o.lower_case = 0;
        else if (secap_cli_is(a, "--min-count"))
            o.min_count = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--min-count", prog), "--min-count", 1, 1000000000);
        else if (secap_cli_is(a, "--max-pieces"))
            o.max_pieces = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--max-pieces", prog), "--max-pieces", 0, 1000000);
        else if (secap_cli_is(a, "--data") || secap_cli_is(a, "--text")) { nsrc++; i += !strchr(a, '='); }
        else {
            fprintf(stderr, "%s: unknown option %s\n", prog, a);
            usage(2);
        }
    }
    if (!out || !nsrc) {
        fprintf(stderr, "%s: --out and at least one --data or --text are required\n", prog);
        usage(2);
    }
    secap_bertvocab *v = secap_bertvocab_new(&o);
    long texts = 0;
    for (int i = 1; i < argc; i++) {          /* sources in command-line order */
        const char *a = argv[i];
        if (secap_cli_is(a, "--data")) add_dataset(v, secap_cli_value(argc, argv, &i, "--data", prog), &texts);
        else if (secap_cli_is(a, "--text")) add_text_file(v, secap_cli_value(argc, argv, &i, "--text", prog), &texts);
        else if (secap_cli_is(a, "--out") || secap_cli_is(a, "--min-count") || secap_cli_is(a, "--max-pieces"))
            i += !strchr(a, '=');
    }
    int n = secap_bertvocab_write(v, out);
    printf("%s: %d tokens from %ld texts (%s) -> %s\n", prog, n, texts,
           o.lower_case ? "lower-cased" : "cased", out);
    secap_bertvocab_free(v);
    return 0;
}
