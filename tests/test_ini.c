/* Config files: parsing, overrides, unknown keys, errors with file:line. */
#include "testutil.h"
#include "secap/ini.h"

#include <unistd.h>

static const char *write_file(const char *name, const char *text, size_t len)
{
    const char *path = tu_tmp("%s", name);
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
    return path;
}

typedef struct { int batch; double lr; } toy_cfg;

static int toy_set(void *cfg, const char *key, const char *value)
{
    toy_cfg *c = cfg;
    if (!strcmp(key, "train.batch")) c->batch = atoi(value);
    else if (!strcmp(key, "train.lr")) c->lr = atof(value);
    else return 1;
    return 0;
}

static void test_parse_and_override(void **st)
{
    (void)st;
    const char *txt = "# a config\n[train]\nbatch = 8   # per step\nlr=1e-3\n\n[data]\n"
                      "on_error = skip\nname = a#b\n";
    secap_ini *ini = secap_ini_load(write_file("a.ini", txt, strlen(txt)));
    assert_string_equal(secap_ini_get(ini, "data.name"), "a#b"); /* '#' without a space is data */
    assert_true(secap_ini_set_arg(ini, "--train.lr=0.5"));
    assert_false(secap_ini_set_arg(ini, "--threads"));
    toy_cfg c = {0};
    secap_ini_apply(ini, "train", &c, toy_set);
    assert_int_equal(c.batch, 8);
    assert_float_equal(c.lr, 0.5, 1e-12);
    secap_ini_check_used(ini, "train"); /* every train key was used */
    EXPECT_FATAL(secap_ini_check_used(ini, NULL), "1 unknown key: data.on_error");
    EXPECT_FATAL(secap_ini_check_used(ini, "data"), "data.on_error (");
    assert_string_equal(secap_ini_get(ini, "data.on_error"), "skip");
    secap_ini_check_used(ini, NULL); /* all used now: returns */
    char buf[512] = {0};
    FILE *m = fmemopen(buf, sizeof buf, "w");
    secap_ini_write(ini, m);
    fclose(m);
    assert_non_null(strstr(buf, "[train]\nbatch = 8\nlr = 0.5\n"));
    assert_non_null(strstr(buf, "[data]\non_error = skip\n"));
    secap_ini_free(ini);
}

static void test_bad_files(void **st)
{
    (void)st;
    const char *nosec = "batch = 3\n";
    EXPECT_FATAL(secap_ini_load(write_file("b.ini", nosec, strlen(nosec))), "b.ini:1: key 'batch' before any [section]");
    const char *noeq = "[train]\nbatch 3\n";
    EXPECT_FATAL(secap_ini_load(write_file("c.ini", noeq, strlen(noeq))), "c.ini:2: expected 'key = value'");
    const char *hdr = "[train\n";
    EXPECT_FATAL(secap_ini_load(write_file("d.ini", hdr, strlen(hdr))), "d.ini:1: malformed section header");
    const char bin[] = "[train]\nx = \0\1\2\n";
    EXPECT_FATAL(secap_ini_load(write_file("e.ini", bin, sizeof bin - 1)), "e.ini:2: NUL byte");
    EXPECT_FATAL(secap_ini_load("/nonexistent/x.ini"), "cannot open");
    EXPECT_FATAL(secap_ini_load(tu_dir), "is a directory, not a config file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_override),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests_name("ini", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
