/* Fuzz target: INI configs (src/base/ini.c) as the programs use them: load,
 * a command-line override, the data.* section applied to its config
 * (src/data/config.c, which parses every value), the unknown-key check and
 * writing the config back, which must parse to the same entries.
 *
 * Input: the bytes of one config file. */
#include "fuzz.h"
#include "secap/dataset.h"
#include "secap/ini.h"

static secap_ini *INI;   /* loaded between the steps of one input */
static int rt_stage;     /* round_trip: 1 while the written config loads */

static int data_set(void *cfg, const char *key, const char *value)
{
    return secap_data_config_set(cfg, key, value);
}

static void apply(void)
{
    secap_data_config c;
    secap_data_config_default(&c);
    secap_ini_apply(INI, "data", &c, data_set);
    secap_data_config_print(&c, fuzz_null);
}

/* Written back and loaded again, the config has the same keys and values. */
static void round_trip(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) fuzz_die("open_memstream");
    secap_ini_write(INI, m);
    fclose(m);
    const char *again = fuzz_file("again.ini", (const uint8_t *)buf, len);
    free(buf);
    rt_stage = 1;
    secap_ini *b = secap_ini_load(again);
    rt_stage = 2;
    int same = b->n == INI->n;
    for (int i = 0; same && i < b->n; i++) {
        const char *v = secap_ini_get(b, INI->e[i].key);
        same = v && !strcmp(v, INI->e[i].value);
    }
    secap_ini_free(b);
    if (!same) fuzz_die("the config written back reads differently");
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("c.ini", data, size);
    INI = NULL;
    FUZZ_TRY(INI = secap_ini_load(path));
    if (!INI) return;
    if (!secap_ini_set_arg(INI, "--data.seed=7")) fuzz_die("override refused");
    FUZZ_TRY(apply());
    FUZZ_TRY(secap_ini_check_used(INI, NULL));
    rt_stage = 0;
    FUZZ_TRY(round_trip());
    if (rt_stage == 1) fuzz_die("the config written back does not load: %s", secap_last_error());
    secap_ini_free(INI);
}
