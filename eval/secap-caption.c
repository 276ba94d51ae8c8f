/* secap-caption - caption audio files with a trained secap-train checkpoint.
 *
 *   secap-caption --checkpoint <ckpt.h5 | run dir> [--decode.key=value ...]
 *                 [--json] [--batch N] [--threads N] FILE.wav ...
 *
 * Loads the models once (secap/infer.h) and prints `<file>\t<caption>` per
 * file in argument order, or with --json one object {file: caption}.  The
 * audio is always run through the HuBERT encoder (no feature cache: files
 * are not dataset ids).  Decode settings are the checkpoint's [decode]
 * (prompt, max_new_tokens, num_beams); --decode.key=value overrides those or
 * sets any secap_generate option (secap/generate.h).  Every file is probed
 * before the models load, so an unreadable one stops at once naming it.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secap/audio.h"
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/infer.h"

#define PROG "secap-caption"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " --checkpoint <ckpt.h5 | run dir> [--decode.key=value ...] [--json]\n"
        "                     [--batch N] [--threads N] FILE.wav ...\n"
        "Prints <file>\\t<caption> per file (--json: one {file: caption} object).\n"
        "Decode keys: prompt, max_new_tokens, num_beams, do_sample, temperature, top_k, top_p,\n"
        "repetition_penalty, no_repeat_ngram_size, length_penalty, min_new_tokens, seed.\n");
}

int main(int argc, char **argv)
{
    const char *ckpt = NULL;
    int json = 0, batch = 0, threads = 0, nfiles = 0, nover = 0;
    const char **files = secap_xcalloc((size_t)argc, sizeof *files, "file list");
    const char **over = secap_xcalloc((size_t)argc, sizeof *over, "override list");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(files); free(over); return 0; }
        else if (secap_cli_is(a, "--checkpoint")) ckpt = secap_cli_value(argc, argv, &i, "--checkpoint", PROG);
        else if (!strcmp(a, "--json")) json = 1;
        else if (secap_cli_is(a, "--batch"))
            batch = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--batch", PROG), "--batch", 1, 256);
        else if (secap_cli_is(a, "--threads"))
            threads = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--threads", PROG), "--threads", 1, 1024);
        else if (!strncmp(a, "--decode.", 9)) {
            if (!strchr(a, '=')) secap_fatal(PROG ": %s needs a value: --decode.key=value (hint: --decode.num_beams=3)", a);
            over[nover++] = a + 2;
        } else if (a[0] == '-' && a[1] == '-') {
            usage(stderr);
            secap_fatal(PROG ": unknown option %s (hint: " PROG " --help)", a);
        } else files[nfiles++] = a;
    }
    if (!ckpt) { usage(stderr); secap_fatal(PROG ": --checkpoint is required (hint: --checkpoint build/demo/run)"); }
    if (!nfiles) { usage(stderr); secap_fatal(PROG ": no audio file given (hint: " PROG " --checkpoint RUN a.wav b.wav)"); }
    for (int i = 0; i < nfiles; i++) {
        secap_audio_info info;
        char err[1024];
        if (secap_audio_probe(files[i], &info, err, sizeof err) != 0) secap_fatal(PROG ": %s", err);
    }
    secap_captioner *cp = secap_captioner_open(ckpt, 0, threads);
    for (int i = 0; i < nover; i++) {
        char key[256];
        const char *eq = strchr(over[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - over[i]), over[i]);
        if (secap_captioner_set(cp, key, eq + 1))
            secap_fatal(PROG ": --%s: unknown decode key \"%s\" (hint: prompt, max_new_tokens, num_beams, do_sample, "
                        "temperature, top_k, top_p, repetition_penalty, no_repeat_ngram_size, length_penalty, "
                        "min_new_tokens, early_stopping, seed)", over[i], key + 7);
    }
    char **caps = secap_xcalloc((size_t)nfiles, sizeof *caps, "captions");
    secap_captioner_run(cp, nfiles, NULL, files, batch, caps);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        for (int i = 0; i < nfiles; i++) cJSON_AddItemToObject(o, files[i], cJSON_CreateString(caps[i]));
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        for (int i = 0; i < nfiles; i++) printf("%s\t%s\n", files[i], caps[i]);
    }
    if (fflush(stdout)) secap_fatal(PROG ": writing stdout: %s", strerror(errno));
    for (int i = 0; i < nfiles; i++) free(caps[i]);
    free(caps);
    secap_captioner_free(cp);
    free(files);
    free(over);
    return 0;
}
