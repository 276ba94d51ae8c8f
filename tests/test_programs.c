/* The programs on bad input, run as a user runs them: exit status and the
 * message on stderr, and what is left on disk (inputs intact, no temporary
 * files, nothing written before an error that could be found up front).
 * The programs are found next to this test's directory (bin/ or bin/asan/);
 * the HuBERT weights are tests/ref_hubert.py's small model (build/ref). */
#include "testutil.h"
#include "secap/h5io.h"

#include <dirent.h>
#include <libgen.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_bin[1024];     /* the directory holding secap-score etc. */
static char g_out[1 << 16];  /* stderr + stdout of the last run */

/* Runs "<bin>/<prog> <args>" in tu_dir with env prefix; returns the exit status. */
static int run(const char *env, const char *prog, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s '%s/%s' %s 2>&1", tu_dir, env ? env : "", g_bin, prog, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    print_message("$ %s %s\n%s", prog, args, g_out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, env, prog, args, substr)                                      \
    do {                                                                                 \
        int rc_ = run(env, prog, args);                                                  \
        if (rc_ != (status)) fail_msg("%s %s: exit %d, expected %d", prog, args, rc_, status); \
        if (!strstr(g_out, substr)) fail_msg("%s %s: output lacks \"%s\"", prog, args, substr); \
    } while (0)

static long fsize(const char *name)
{
    struct stat st;
    return stat(tu_tmp("%s", name), &st) == 0 ? (long)st.st_size : -1;
}

/* Files in tu_dir whose name contains ".tmp." */
static int count_tmp(void)
{
    DIR *d = opendir(tu_dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, tu_tmp("%s", to));
    assert_int_equal(system(cmd), 0);
}

static void write_wav(const char *name, int64_t n, int rate)
{
    SF_INFO si = { .samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    SNDFILE *sf = sf_open(tu_tmp("%s", name), SFM_WRITE, &si);
    assert_non_null(sf);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = 0.3f * (float)sin(0.07 * (double)i) + 0.01f * (float)((i * 7919) % 13);
    sf_writef_float(sf, x, n);
    sf_close(sf);
    free(x);
}

/* ------------------------------------------------------------- secap-score */

static void test_score_messages(void **st)
{
    (void)st;
    tu_write_text("refs.json", "{\"a\": [\"x y\"], \"b\": \"z\"}");
    tu_write_text("hyps.json", "{\"a\": \"x y\", \"b\": \"z\"}");
    EXPECT_RUN(0, NULL, "secap-score", "--refs refs.json --hyps hyps.json --metrics Bleu_1", "\"Bleu_1\"");
    /* --metrics "": the option is named, no internal API name */
    EXPECT_RUN(1, NULL, "secap-score", "--refs refs.json --hyps hyps.json --metrics ''", "--metrics: the value is empty");
    assert_null(strstr(g_out, "secap_score"));
    EXPECT_RUN(1, NULL, "secap-score", "--refs refs.json --hyps hyps.json --metrics=Bleu,,METEOR", "empty metric name");
    EXPECT_RUN(1, NULL, "secap-score", "--refs . --hyps hyps.json", ".: is a directory, not a caption file");
    tu_write_text("nul.json", "{\"a\": \"x\\u0000y\", \"b\": \"z\"}");
    EXPECT_RUN(1, NULL, "secap-score", "--refs refs.json --hyps nul.json", "nul.json:1:9: id \"a\": escaped NUL");
    /* --per-item never replaces an input or a file of another kind, and is checked before scoring */
    long before = fsize("hyps.json");
    EXPECT_RUN(1, NULL, "secap-score", "--refs refs.json --hyps hyps.json --per-item ./hyps.json",
               "is the same file as --hyps");
    assert_int_equal(fsize("hyps.json"), before);
    assert_null(strstr(g_out, "Bleu"));
    mkdir(tu_tmp("items_dir"), 0755);
    EXPECT_RUN(1, NULL, "secap-score", "--refs refs.json --hyps hyps.json --per-item items_dir", "is a directory");
    tu_write_text("notes.txt", "my notes\n");
    EXPECT_RUN(1, NULL, "secap-score", "--refs refs.json --hyps hyps.json --per-item notes.txt",
               "exists and is a text file of 9 bytes, not a per-item score file");
    assert_int_equal(fsize("notes.txt"), 9);
    EXPECT_RUN(0, NULL, "secap-score", "--refs refs.json --hyps hyps.json --per-item items.json", "\"CIDEr\"");
    EXPECT_RUN(0, NULL, "secap-score", "--refs refs.json --hyps hyps.json --per-item items.json", "\"CIDEr\"");
    assert_true(fsize("items.json") > 0);
    assert_int_equal(count_tmp(), 0);
}

/* ----------------------------------------------------------- secap-extract */

static void test_extract_output_safety(void **st)
{
    (void)st;
    copy_file(tu_ref_path("hubert_large_small.h5"), "w.h5");
    write_wav("a.wav", 24000, 16000);
    write_wav("b.wav", 20000, 16000);
    long wsize = fsize("w.h5"), asize = fsize("a.wav");
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav --out ./w.h5", "is the weight file given to --hubert");
    assert_int_equal(fsize("w.h5"), wsize);
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav b.wav --out b.wav", "is the input audio file b.wav");
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav --out .", "is a directory");
    copy_file(tu_ref_path("hubert_base_small.h5"), "other.h5");
    long osize = fsize("other.h5");
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav --out other.h5",
               "exists and is a model weight file (model_type = hubert), not a feature cache");
    assert_int_equal(fsize("other.h5"), osize);
    tu_write_text("notes.txt", "keep me\n");
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav --out notes.txt", "exists and is a text file of 8 bytes");
    assert_int_equal(fsize("notes.txt"), 8);
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav --out missing_dir/f.h5",
               "its directory missing_dir does not exist");
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav --out f.h5 --threads ''", "--threads: the value is empty");
    assert_int_equal(fsize("a.wav"), asize);
    assert_int_equal(count_tmp(), 0);
    /* none of these got as far as loading audio or the encoder */
    assert_null(strstr(g_out, "utterances"));

    /* a run that fails after it wrote features (a.wav, the longest, is its
     * own first batch; nan.wav then fails to decode) leaves no temporary */
    SF_INFO si = { .samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
    SNDFILE *sf = sf_open(tu_tmp("nan.wav"), SFM_WRITE, &si);
    float x[8000];
    for (int i = 0; i < 8000; i++) x[i] = i == 4321 ? NAN : 0.1f;
    sf_writef_float(sf, x, 8000);
    sf_close(sf);
    EXPECT_RUN(1, NULL, "secap-extract", "--hubert w.h5 --wav a.wav nan.wav --out f.h5 --batch-seconds 1",
               "utterance nan: nan.wav: sample 4321 (0.270 s, mean of 1 channel) is NaN");
    assert_non_null(strstr(g_out, "2 utterances"));    /* it had started */
    assert_int_equal(count_tmp(), 0);
    assert_int_equal(fsize("f.h5"), -1);

    /* a temporary left by a killed run (a pid that no longer exists) is removed and reported */
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    char stale[64];
    snprintf(stale, sizeof stale, "f.h5.tmp.%ld", (long)pid);
    tu_write_text(stale, "half a cache");
    EXPECT_RUN(0, NULL, "secap-extract", "--hubert w.h5 --wav a.wav b.wav --out f.h5", "a temporary file left by process");
    assert_int_equal(fsize(stale), -1);
    assert_int_equal(count_tmp(), 0);
    assert_true(fsize("f.h5") > 0);

    /* extending with --verify: a damaged entry is recomputed, not skipped */
    secap_h5 *h = secap_h5_open(tu_tmp("f.h5"), 1);
    secap_h5_set_attr_int(h, "a", "digest", 12345);
    secap_h5_close(h);
    EXPECT_RUN(0, NULL, "secap-extract", "--hubert w.h5 --wav a.wav b.wav --out f.h5 --verify",
               "cached features of a are damaged (its values do not match the digest");
    assert_non_null(strstr(g_out, "1 utterances already in f.h5, skipped (digests verified)"));
    EXPECT_RUN(0, NULL, "secap-extract", "--hubert w.h5 --wav a.wav b.wav --out f.h5 --verify", "2 utterances already");
}

/* A weight-file attribute that implies huge activations (conv_stride 1: every
 * sample a frame, [F x F] attention scores) is refused before any work. */
static void test_extract_memory_checked_first(void **st)
{
    (void)st;
    copy_file(tu_ref_path("hubert_large_small.h5"), "s1.h5");
    secap_h5 *h = secap_h5_open(tu_tmp("s1.h5"), 1);
    int64_t ones[7] = { 1, 1, 1, 1, 1, 1, 1 };
    secap_h5_set_attr_ints(h, NULL, "conv_stride", ones, 7);
    secap_h5_close(h);
    write_wav("long.wav", 16000 * 4, 16000);
    EXPECT_RUN(1, "SECAP_STEP_MB=512", "secap-extract", "--hubert s1.h5 --wav long.wav --out s1_feats.h5",
               "from conv_stride = [1,1,1,1,1,1,1]");
    assert_non_null(strstr(g_out, "GB of activations, more than the 0.5 GB available"));
    assert_null(strstr(g_out, "utterances ("));       /* refused before the work started */
    assert_int_equal(fsize("s1_feats.h5"), -1);
    assert_int_equal(count_tmp(), 0);
}

/* -------------------------------------------------------------- secap-data */

static void test_data_split_lists(void **st)
{
    (void)st;
    mkdir(tu_tmp("ds"), 0755);
    write_wav("ds/a.wav", 16000, 16000);
    write_wav("ds/b.wav", 16000, 16000);
    tu_write_text("ds/wav.scp", "a a.wav\nb b.wav\n");
    tu_write_text("ds/fid2captions.json", "{\"a\": \"好\", \"b\": \"坏\"}");
    tu_write_text("ds/train.list", "a\nb\n");
    tu_write_text("ds/test.list", "b\n");
    EXPECT_RUN(1, NULL, "secap-data", "validate --data ds", "test.list:1: b: id is in both the train list");
    EXPECT_RUN(1, NULL, "secap-data", "validate --data ds --data.max_sample_rate=8000",
               "a: audio refused: sample rate 16000 Hz is outside [4000, 8000] Hz");
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *tests_dir = dirname(self);             /* <bin>/tests */
    char resolved[1024];
    snprintf(g_bin, sizeof g_bin, "%s/..", tests_dir);
    if (realpath(g_bin, resolved)) snprintf(g_bin, sizeof g_bin, "%s", resolved);
    /* tu_ref_path is relative to the repository root; make it absolute */
    const char *ref = getenv("SECAP_REF_DIR");
    if (!ref || ref[0] != '/') {
        static char abs_ref[1200];
        char cwd[1024];
        snprintf(abs_ref, sizeof abs_ref, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", ref ? ref : "build/ref");
        setenv("SECAP_REF_DIR", abs_ref, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_messages),
        cmocka_unit_test(test_extract_output_safety),
        cmocka_unit_test(test_extract_memory_checked_first),
        cmocka_unit_test(test_data_split_lists),
    };
    return cmocka_run_group_tests_name("programs", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
