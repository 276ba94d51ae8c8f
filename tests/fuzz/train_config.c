/* Fuzz target: secap-train's run config (src/train/config.c): every section
 * applied and validated (values, ranges, required keys, stage lists,
 * train.stage_steps), then the resolved text a run writes into config.ini
 * and every checkpoint.  That text must read back to itself: a resumed run
 * takes its config from it (src/train/trainer.c checks the same at start).
 *
 * Input: the bytes of one config file. */
#include "fuzz.h"
#include "secap/ini.h"
#include "secap/train.h"
#include "../../src/train/train_internal.h"

static secap_ini *INI;
static char *TEXT;
static int rt_stage;   /* 1 while the resolved text is read back */

static void resolve(void)
{
    secap_train_config t;
    secap_train_config_default(&t);
    secap_train_config_from_ini(&t, INI);
    TEXT = secap_train_config_text(&t);
}

static void read_back(void)
{
    secap_ini *b = secap_ini_from_text(TEXT, "resolved");
    secap_train_config t;
    secap_train_config_default(&t);
    secap_train_config_from_ini(&t, b);
    secap_ini_free(b);
    char *again = secap_train_config_text(&t);
    int same = !strcmp(again, TEXT);
    free(again);
    if (!same) fuzz_die("the resolved config reads back differently");
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("run.ini", data, size);
    INI = NULL;
    TEXT = NULL;
    FUZZ_TRY(INI = secap_ini_load(path));
    if (!INI) return;
    FUZZ_TRY(resolve());
    secap_ini_free(INI);
    if (!TEXT) return;
    rt_stage = 1;
    FUZZ_TRY(read_back(); rt_stage = 0);
    if (rt_stage) fuzz_die("the resolved config does not load again: %s", secap_last_error());
    free(TEXT);
}
