/* Fuzz target: a JSON-lines dataset manifest (src/data/readers.c), one
 * {"key","source","target"[,"transcript","emotion"]} object per line, with
 * the split lists next to it.
 *
 * Input: <flags byte> <manifest> then optional parts for train.list,
 * dev.list and test.list, separated by "\n====\n" lines.  Bit 0 of the flags
 * picks data.on_error = skip instead of fail.  Audio is not opened. */
#include "dataset_common.h"

static const char *const FILES[] = { "mf/data.jsonl", "mf/train.list", "mf/dev.list", "mf/test.list" };
#define NFILES (int)(sizeof FILES / sizeof *FILES)

static void fuzz_one(const uint8_t *data, size_t size)
{
    if (size < 1) return;
    int flags = data[0];
    fuzz_part p[NFILES];
    int n = fuzz_parts(data + 1, size - 1, p, NFILES);
    mkdir(fuzz_path("mf"), 0700);
    for (int i = 0; i < NFILES; i++) {
        if (i < n) fuzz_file(FILES[i], p[i].p, p[i].n);
        else fuzz_remove(FILES[i]);
    }
    char path[512];
    snprintf(path, sizeof path, "%s", fuzz_path(FILES[0]));
    secap_data_config c;
    secap_data_config_default(&c);
    FUZZ_TRY({
        fuzz_dataset h = { NULL, {0} };
        secap_cleanup cl;
        secap_cleanup_push(&cl, fuzz_dataset_free, &h);
        h.d = secap_dataset_read(path, &c, &h.probs);
        fuzz_dataset_use(&h, flags & 1 ? SECAP_ON_ERROR_SKIP : SECAP_ON_ERROR_FAIL);
        secap_cleanup_pop(&cl);
        fuzz_dataset_free(&h);
    });
}
