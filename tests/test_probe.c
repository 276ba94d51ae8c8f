/* bin/secap-probe run as a user runs it, on a tiny dataset whose
 * transcripts are strings of 12 characters: speech embeddings that are a
 * random linear image of the transcript's character counts (plus noise)
 * must match well above chance, unrelated ones at chance; the printed
 * figures must be the library's (secap_probe_match on the same inputs);
 * the paired difference, the per-clip table and the documented errors on
 * bad input. */
#include "testutil.h"
#include "tinyds.h"
#include "secap/h5io.h"
#include "secap/probe.h"
#include "secap/rng.h"
#include "secap/tensor.h"

#include <sys/wait.h>

enum { NCLIP = 120, NTRAIN = 80, E = 16, NCHAR = 12 };

static const char *const CHARS[NCHAR] = { "甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸", "子", "丑" };

static char g_bin[1024];
static char g_out[1 << 16];
static char g_text[NCLIP][64];

static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/secap-probe' %s 2>&1", tu_dir, g_bin, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    print_message("$ secap-probe %s\n%s", args, g_out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, args, substr)                                                          \
    do {                                                                                          \
        int rc_ = run(args);                                                                      \
        if (rc_ != (status)) fail_msg("secap-probe %s: exit %d, expected %d", args, rc_, status); \
        if (!strstr(g_out, substr)) fail_msg("secap-probe %s: output lacks \"%s\"", args, substr); \
    } while (0)

/* The embeddings [NCLIP, E] into tu_dir/name, as bin/secap-embed writes them
 * (kind, embed_dim; one [E] dataset per id); skip >= 0 leaves that clip out. */
static void write_emb(const char *name, const char *kind, const float *x, int skip)
{
    secap_h5 *h = secap_h5_create(tu_tmp("%s", name));
    secap_h5_set_attr_str(h, NULL, "format", "secap-embeddings-1");
    secap_h5_set_attr_str(h, NULL, "kind", kind);
    secap_h5_set_attr_int(h, NULL, "embed_dim", E);
    for (int i = 0; i < NCLIP; i++) {
        if (i == skip) continue;
        char id[16];
        snprintf(id, sizeof id, "u%02d", i);
        secap_h5_write_f32(h, id, x + (size_t)i * E, SECAP_SHAPE(E), 0);
    }
    secap_h5_commit(h);
}

/* Column col (0 AUC, 1 its SE, 2 R@1, 3 its chance) of the output line
 * holding `file`. */
static double field_of(const char *file, int col)
{
    const char *l = strstr(g_out, file);
    if (!l) fail_msg("no output line for %s", file);
    l += strlen(file);
    double v[4] = { NAN, NAN, NAN, NAN };
    int got = sscanf(l, " %lf +- %lf %lf (%lf)", &v[0], &v[1], &v[2], &v[3]);
    if (got < col + 1) fail_msg("cannot read column %d after %s: %.80s", col, file, l);
    return v[col];
}

static void test_probe_program(void **st)
{
    (void)st;
    assert_int_equal(tds_bin_dir(g_bin, sizeof g_bin), 0);
    tds_write(NCLIP, NULL, NTRAIN);   /* train u00..u79, test u80..u119 */
    secap_rng r;
    secap_rng_seed(&r, 5);
    FILE *t = fopen(tu_tmp("ds/text.txt"), "w");
    assert_non_null(t);
    float cnt[NCLIP][NCHAR] = { { 0 } };
    for (int i = 0; i < NCLIP; i++) {
        int len = 4 + (int)(secap_rng_u64(&r) % 5);
        g_text[i][0] = 0;
        for (int k = 0; k < len; k++) {
            int c = (int)(secap_rng_u64(&r) % NCHAR);
            strcat(g_text[i], CHARS[c]);
        }
        if (i == NCLIP - 1) strcpy(g_text[i], g_text[i - 1]);   /* two clips read the same text */
        fprintf(t, "u%02d %s\n", i, g_text[i]);
    }
    fclose(t);
    for (int i = 0; i < NCLIP; i++)
        for (const char *p = g_text[i]; *p; p += 3)
            for (int c = 0; c < NCHAR; c++)
                if (!strncmp(p, CHARS[c], 3)) cnt[i][c] += 1;
    /* content: a random map of the character counts plus noise; noise: unrelated */
    float M[NCHAR][E], *xc = malloc(NCLIP * E * sizeof *xc), *xn = malloc(NCLIP * E * sizeof *xn);
    for (int c = 0; c < NCHAR; c++)
        for (int d = 0; d < E; d++) M[c][d] = (float)secap_rng_normal(&r);
    for (int i = 0; i < NCLIP; i++)
        for (int d = 0; d < E; d++) {
            double v = 0.3 * secap_rng_normal(&r);
            for (int c = 0; c < NCHAR; c++) v += cnt[i][c] * M[c][d];
            xc[i * E + d] = (float)v;
            xn[i * E + d] = (float)secap_rng_normal(&r);
        }
    write_emb("content.h5", "speech", xc, -1);
    write_emb("noise.h5", "speech", xn, -1);

    /* the library on the same inputs: the program must print its figures */
    const char *tx[NCLIP];
    unsigned char fit[NCLIP], ev[NCLIP];
    int grp[NCLIP], len[NCLIP], V;
    for (int i = 0; i < NCLIP; i++) {
        tx[i] = g_text[i];
        fit[i] = i < NTRAIN;
        ev[i] = i >= NTRAIN;
        grp[i] = i == NCLIP - 1 ? NCLIP - 2 : i;
    }
    float *y = secap_probe_bag(tx, NCLIP, fit, 2, 1, &V, len);
    assert_int_equal(V, NCHAR);
    secap_probe_match_result mc, mn;
    secap_probe_match(xc, y, NCLIP, E, V, fit, ev, grp, len, -1, 1.0, NULL, &mc);
    secap_probe_match(xn, y, NCLIP, E, V, fit, ev, grp, len, -1, 1.0, NULL, &mn);
    if (!(mc.auc > 0.8)) fail_msg("content embeddings: library AUC %g, expected > 0.8", mc.auc);
    if (fabs(mn.auc - 0.5) > 4 * mn.auc_se) fail_msg("noise embeddings: AUC %g +- %g", mn.auc, mn.auc_se);
    assert_int_equal(mc.neval, NCLIP - NTRAIN);

    EXPECT_RUN(0, "--data ds --speech content.h5 --speech noise.h5 --fit train --eval test --per-clip pc.tsv",
               "80 fitting clips (train), 40 evaluated (test); 12 words");
    assert_float_equal(field_of("content.h5", 0), mc.auc, 6e-4);
    assert_float_equal(field_of("content.h5", 1), mc.auc_se, 6e-4);
    assert_float_equal(field_of("content.h5", 2), mc.r1, 6e-4);
    assert_float_equal(field_of("content.h5", 3), mc.r1_chance, 6e-4);
    assert_float_equal(field_of("noise.h5", 0), mn.auc, 6e-4);
    /* the paired difference: noise - content, clearly negative */
    const char *l = strstr(g_out, "noise.h5");
    double diff, se;
    assert_non_null(l);
    const char *dpos = strstr(l, ")");
    assert_non_null(dpos);
    if (sscanf(dpos + 1, " %lf +- %lf", &diff, &se) != 2) fail_msg("no paired difference in: %s", l);
    assert_float_equal(diff, mn.auc - mc.auc, 2e-3);   /* same clips evaluated in both */
    if (!(diff < -4 * se)) fail_msg("paired difference %g +- %g: expected clearly negative", diff, se);
    /* the per-clip table: a header and one line per evaluated clip */
    FILE *pc = fopen(tu_tmp("pc.tsv"), "r");
    assert_non_null(pc);
    char line[512];
    int lines = 0;
    assert_non_null(fgets(line, sizeof line, pc));
    assert_string_equal(line, "id\tsplit\tlength\tauc_1\tauc_2\n");
    while (fgets(line, sizeof line, pc)) {
        char id[16], split[16];
        int L;
        double a1, a2;
        if (sscanf(line, "%15s %15s %d %lf %lf", id, split, &L, &a1, &a2) != 5) fail_msg("pc.tsv: bad line %s", line);
        assert_string_equal(split, "test");
        assert_true(a1 >= 0 && a1 <= 1 && a2 >= 0 && a2 <= 1);
        lines++;
    }
    fclose(pc);
    assert_int_equal(lines, NCLIP - NTRAIN);
    /* the length window: printed, and the library's figure */
    secap_probe_match(xc, y, NCLIP, E, V, fit, ev, grp, len, 1, 1.0, NULL, &mc);
    EXPECT_RUN(0, "--data ds --speech content.h5 --eval test --length-window 1", "length window: 1 words");
    assert_float_equal(field_of("content.h5", 0), mc.auc, 6e-4);
    free(y);

    /* bad input: named file and clip, nothing written */
    write_emb("partial.h5", "speech", xc, 93);
    EXPECT_RUN(1, "--data ds --speech content.h5 --speech partial.h5", "partial.h5: no embedding for clip \"u93\"");
    {   /* a clip stored with the wrong length */
        secap_h5 *h = secap_h5_open(tu_tmp("partial.h5"), 1);
        float z[E + 1] = { 0 };
        secap_h5_write_f32(h, "u93", z, SECAP_SHAPE(E + 1), 0);
        secap_h5_close(h);
    }
    EXPECT_RUN(1, "--data ds --speech partial.h5", "clip \"u93\": a dataset of rank 1 and another length");
    write_emb("text.h5", "text", xc, -1);
    EXPECT_RUN(1, "--data ds --speech text.h5", "holds text embeddings, not speech");
    EXPECT_RUN(1, "--data ds --speech content.h5 --fit training", "unknown split \"training\"");
    EXPECT_RUN(1, "--data ds --speech content.h5 --lambda 0", "--lambda 0: need a number > 0");
    EXPECT_RUN(1, "--data ds", "give at least one --speech");
    EXPECT_RUN(1, "--data ds --speech content.h5 --eval dev", "0 in --eval dev");
    EXPECT_RUN(1, "--data ds --speech content.h5 --min-count 200", "no word occurs in 200 or more");
    EXPECT_RUN(1, "--data ds --speech content.h5 --per-clip nodir/pc.tsv", "--per-clip nodir/pc.tsv: cannot write");
    EXPECT_RUN(1, "--data ds --speech content.h5 --per-clip ds", "--per-clip ds is a directory");
    EXPECT_RUN(1, "--data ds --speech content.h5 --per-clip content.h5", "is the input --speech content.h5");
    EXPECT_RUN(1, "--data ds --speech content.h5 --per-clip ds/text.txt", "not a per-clip table of an earlier run");
    EXPECT_RUN(0, "--data ds --speech noise.h5 --per-clip pc.tsv", "noise.h5");   /* over an earlier table */
    {
        FILE *pc2 = fopen(tu_tmp("pc.tsv"), "r");
        assert_non_null(pc2);
        assert_non_null(fgets(line, sizeof line, pc2));
        assert_string_equal(line, "id\tsplit\tlength\tauc_1\n");
        fclose(pc2);
    }
    EXPECT_RUN(0, "--help", "usage: secap-probe");
    assert_int_equal(remove(tu_tmp("ds/text.txt")), 0);
    EXPECT_RUN(1, "--data ds --speech content.h5", "no transcripts");
    free(xc);
    free(xn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_program),
    };
    return cmocka_run_group_tests_name("probe", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
