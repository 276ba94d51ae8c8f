/* Fuzz target: a dataset directory in SECap's layout (src/data/readers.c):
 * wav.scp, text.txt, fid2captions.json, emotion.txt and the split lists.
 *
 * Input: <flags byte> then the files' contents in that order, separated by
 * "\n====\n" lines (wav.scp, text.txt, fid2captions.json, emotion.txt,
 * train.list, dev.list, test.list); a file whose part is missing is absent.
 * Bit 0 of the flags picks data.on_error = skip instead of fail.  Audio is
 * not opened (paths are the fuzzer's; bin/fuzz/audio covers decoding). */
#include "dataset_common.h"

static const char *const FILES[] = { "wav.scp", "text.txt", "fid2captions.json", "emotion.txt",
                                     "train.list", "dev.list", "test.list" };
#define NFILES (int)(sizeof FILES / sizeof *FILES)

static void fuzz_one(const uint8_t *data, size_t size)
{
    if (size < 1) return;
    int flags = data[0];
    fuzz_part p[NFILES];
    int n = fuzz_parts(data + 1, size - 1, p, NFILES);
    char dir[512], name[64];
    snprintf(dir, sizeof dir, "%s", fuzz_path("ds"));
    mkdir(dir, 0700);
    for (int i = 0; i < NFILES; i++) {
        snprintf(name, sizeof name, "ds/%s", FILES[i]);
        if (i < n) fuzz_file(name, p[i].p, p[i].n);
        else fuzz_remove(name);
    }
    secap_data_config c;
    secap_data_config_default(&c);
    FUZZ_TRY({
        fuzz_dataset h = { NULL, {0} };
        secap_cleanup cl;
        secap_cleanup_push(&cl, fuzz_dataset_free, &h);
        h.d = secap_dataset_read(dir, &c, &h.probs);
        fuzz_dataset_use(&h, flags & 1 ? SECAP_ON_ERROR_SKIP : SECAP_ON_ERROR_FAIL);
        secap_cleanup_pop(&cl);
        fuzz_dataset_free(&h);
    });
}
