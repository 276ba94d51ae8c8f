/* The benchmark suite's runner (tools/bench/run.py, `make bench`) on cheap
 * rows: the table it writes parses (one row per benchmark, seven cells, a
 * positive finite ratio where both sides ran), the demo row's time to target
 * is the sum of batch / samples_per_s of a metrics.jsonl written here, the 7B
 * row's memory guard and BENCH_7B=0 print "not run" rows instead of numbers,
 * and a bad row name fails with a hint.  The C benchmarks are the ones next
 * to this test's directory (bin/bench or bin/asan/bench). */
#include "testutil.h"

#include <libgen.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_bin[1024];     /* bin/ or bin/asan/ */
static char g_out[1 << 16];  /* output of the last run */
static char g_table[1 << 16];

/* Runs the runner with env prefix and args, its table into tu_dir/table.md
 * (read into g_table); returns the exit status. */
static int runner(const char *env, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env %s /usr/bin/python3 tools/bench/run.py --bin '%s' --out '%s' %s 2>&1",
             env ? env : "", g_bin, tu_tmp("table.md"), args);
    remove(tu_tmp("table.md"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    print_message("$ %s\n%s", cmd, g_out);
    g_table[0] = 0;
    FILE *f = fopen(tu_tmp("table.md"), "r");
    if (f) {
        n = fread(g_table, 1, sizeof g_table - 1, f);
        g_table[n] = 0;
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The table row whose first cell starts with `name` (copied into row), or
 * fails the test. */
static void find_row(const char *name, char *row, size_t cap)
{
    char key[256];
    snprintf(key, sizeof key, "\n| %s", name);
    const char *p = strstr(g_table, key);
    if (!p) fail_msg("table.md: no row \"%s\" (hint: tools/bench/run.py's row names changed?)\n%s", name, g_table);
    p++;
    size_t n = strcspn(p, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(row, p, n);
    row[n] = 0;
}

/* Cell i (0-based) of a "| a | b | ... |" row, trimmed. */
static void cell(const char *row, int i, char *out, size_t cap)
{
    int bars = 0;
    const char *p = row;
    for (; *p && bars < i + 1; p++) bars += *p == '|';
    const char *e = strchr(p, '|');
    if (!e) fail_msg("table row has fewer than %d cells: %s", i + 1, row);
    while (p < e && *p == ' ') p++;
    while (e > p && e[-1] == ' ') e--;
    size_t n = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

static int count_cells(const char *row)
{
    int bars = 0;
    for (const char *p = row; *p; p++) bars += *p == '|';
    return bars - 1;
}

static void test_quick_ops_table(void **st)
{
    (void)st;
    int rc = runner("BENCH_QUICK=1 SECAP_THREADS=1 OMP_WAIT_POLICY=passive", "--rows ops");
    if (rc != 0) fail_msg("run.py --quick --rows ops: exit %d (hint: build bin/bench/bench_ops)", rc);
    if (!strstr(g_table, "| benchmark | secap-c | reference")) fail_msg("table.md: no header row\n%s", g_table);
    const char *names[2] = { "linear fwd+bwd", "attention fwd+bwd" };
    for (int i = 0; i < 2; i++) {
        char row[4096], ratio[64], ours[1024];
        find_row(names[i], row, sizeof row);
        if (count_cells(row) != 7) fail_msg("row \"%s\" has %d cells, not 7: %s", names[i], count_cells(row), row);
        cell(row, 3, ratio, sizeof ratio);
        double r = 0;
        if (sscanf(ratio, "**%lf**", &r) != 1 || !isfinite(r) || r <= 0)
            fail_msg("row \"%s\": ratio cell \"%s\" is not a positive number", names[i], ratio);
        cell(row, 1, ours, sizeof ours);
        double ms = 0;
        if (sscanf(ours, "%lf ms", &ms) != 1 || ms <= 0) fail_msg("row \"%s\": C cell \"%s\" has no time", names[i], ours);
    }
    /* the raw sgemm rate of the same process is what the linear row is put against */
    if (!strstr(g_table, "% of the raw sgemm")) fail_msg("table.md: the linear row lacks its sgemm fraction");
}

static void test_demo_time_to_target(void **st)
{
    (void)st;
    /* lm: batch 2 at 0.1 rows/s = 20 s; caption: batch 4 at 0.2 clips/s = 20 s a step */
    mkdir(tu_tmp("run"), 0777);
    tu_write_text("run/config.ini", "[data]\nbatch_size = 4   # clips\n[lm]\nbatch_size = 2\n");
    tu_write_text("run/metrics.jsonl",
                  "{\"stage\":\"lm\",\"step\":1,\"gstep\":1,\"loss\":8,\"samples_per_s\":0.1}\n"
                  "{\"stage\":\"caption\",\"step\":1,\"gstep\":2,\"loss\":2,\"dev_cider\":0.3,\"dev_emotion\":0.25,"
                  "\"samples_per_s\":0.2}\n"
                  "{\"stage\":\"caption\",\"step\":2,\"gstep\":3,\"loss\":2,\"dev_cider\":0.6,\"dev_emotion\":0.5,"
                  "\"samples_per_s\":0.2}\n"
                  "{\"stage\":\"caption\",\"step\":3,\"gstep\":4,\"loss\":2,\"samples_per_s\":0.2}\n");
    double hit = (2 / 0.1 + 4 / 0.2 + 4 / 0.2) / 60, all = hit + 4 / 0.2 / 60;
    char env[2048], want[256], row[4096];
    snprintf(env, sizeof env, "BENCH_QUICK=1 BENCH_DEMO_RUN='%s' BENCH_DEMO_CIDER=0.5", tu_tmp("run"));
    if (runner(env, "--rows demo") != 0) fail_msg("run.py --rows demo: non-zero exit");
    find_row("demo training", row, sizeof row);
    snprintf(want, sizeof want, "%.2f min of optimizer time, reached at caption step 2", hit);
    if (!strstr(row, want)) fail_msg("demo row lacks \"%s\": %s", want, row);
    snprintf(want, sizeof want, "whole run 4 steps, %.1f min", all);
    if (!strstr(row, want)) fail_msg("demo row lacks \"%s\": %s", want, row);
    if (!strstr(row, "dev emotion best 50.0 %")) fail_msg("demo row lacks the best dev emotion: %s", row);
    /* a target no evaluation reached */
    snprintf(env, sizeof env, "BENCH_QUICK=1 BENCH_DEMO_RUN='%s' BENCH_DEMO_CIDER=0.9", tu_tmp("run"));
    if (runner(env, "--rows demo") != 0) fail_msg("run.py --rows demo: non-zero exit");
    find_row("demo training", row, sizeof row);
    if (!strstr(row, "not reached (best dev CIDEr 0.6")) fail_msg("demo row should say not reached: %s", row);
    /* no run directory */
    snprintf(env, sizeof env, "BENCH_QUICK=1 BENCH_DEMO_RUN='%s'", tu_tmp("absent"));
    if (runner(env, "--rows demo") != 0) fail_msg("run.py --rows demo: non-zero exit");
    find_row("demo training", row, sizeof row);
    if (!strstr(row, "no demo run")) fail_msg("demo row should say no demo run: %s", row);
}

static void test_7b_guards(void **st)
{
    (void)st;
    char row[4096], env[2048];
    if (runner("BENCH_7B=0", "--rows 7b --runs 1") != 0) fail_msg("run.py --rows 7b with BENCH_7B=0: non-zero exit");
    find_row("7B-shape", row, sizeof row);
    if (!strstr(row, "skipped (BENCH_7B=0)")) fail_msg("7B row should say skipped: %s", row);
    /* inputs present (empty stand-ins), memory short: a "not run" row, nothing started */
    mkdir(tu_tmp("demo"), 0777);
    mkdir(tu_tmp("demo/data"), 0777);
    mkdir(tu_tmp("demo/data/demo"), 0777);
    mkdir(tu_tmp("demo/build"), 0777);
    mkdir(tu_tmp("demo/build/demo"), 0777);
    tu_write_text("demo/build/demo/vocab.txt", "");
    tu_write_text("demo/build/demo/tokenizer.model", "");
    snprintf(env, sizeof env, "BENCH_DEMO='%s' BENCH_7B_NEED_GIB=1000000", tu_tmp("demo"));
    if (runner(env, "--rows 7b --runs 1") != 0) fail_msg("run.py --rows 7b: non-zero exit");
    find_row("7B-shape", row, sizeof row);
    if (!strstr(row, "not run: needs 1000000 GiB free, have ")) fail_msg("7B row should name the memory: %s", row);
    /* without a demo corpus */
    snprintf(env, sizeof env, "BENCH_DEMO='%s'", tu_tmp("absent"));
    if (runner(env, "--rows 7b --runs 1") != 0) fail_msg("run.py --rows 7b: non-zero exit");
    find_row("7B-shape", row, sizeof row);
    if (!strstr(row, "not run: needs a demo corpus")) fail_msg("7B row should name the missing corpus: %s", row);
    /* a bad row name */
    int rc = runner(NULL, "--rows nosuch");
    if (rc == 0 || !strstr(g_out, "unknown row group(s) nosuch") || !strstr(g_out, "hint"))
        fail_msg("run.py --rows nosuch: exit %d, output: %s", rc, g_out);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *tests_dir = dirname(self);   /* <bin>/tests */
    char resolved[1024];
    snprintf(g_bin, sizeof g_bin, "%s/..", tests_dir);
    if (realpath(g_bin, resolved)) snprintf(g_bin, sizeof g_bin, "%s", resolved);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_ops_table),
        cmocka_unit_test(test_demo_time_to_target),
        cmocka_unit_test(test_7b_guards),
    };
    return cmocka_run_group_tests_name("bench", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
