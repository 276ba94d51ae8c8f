/* secap-extract extending its feature cache: the program built next to this
 * test (../secap-extract from the test's own directory, so the sanitizer
 * build runs the sanitizer program and LeakSanitizer checks it) is run three
 * times on the small HuBERT fixture (tests/ref_hubert.py): a new cache, the
 * same files again (everything skipped), and one more file (two skipped, one
 * computed).  Every run must exit 0 (a leak makes LeakSanitizer exit 23) and
 * the cache must hold, for each id, what the encoder gives that file alone. */
#include "testutil.h"
#include "secap/audio.h"
#include "secap/featcache.h"
#include "secap/hubert.h"
#include "secap/tensor.h"

#include <libgen.h>
#include <sndfile.h>

static char prog[4096];

static int find_program(void **st)
{
    (void)st;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { perror("readlink /proc/self/exe"); return -1; }
    self[n] = 0;
    /* BIN/tests/test_extract_cache -> BIN/secap-extract */
    snprintf(prog, sizeof prog, "%s/../secap-extract", dirname(self));
    if (access(prog, X_OK) != 0) {
        fprintf(stderr, "test_extract_cache: %s is missing (hint: build it with make)\n", prog);
        return -1;
    }
    return tu_tmpdir_setup(st);
}

/* A 16-bit mono WAV of n samples at 16 kHz: a chirp, different per seed. */
static void write_wav(const char *path, int64_t n, double f0)
{
    SF_INFO si = { .samplerate = SECAP_SAMPLE_RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    SNDFILE *sf = sf_open(path, SFM_WRITE, &si);
    if (!sf) fail_msg("cannot write %s: %s", path, sf_strerror(NULL));
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = 0.4f * (float)sin(f0 * (double)i * (1.0 + 1e-4 * (double)i));
    assert_int_equal(sf_writef_float(sf, x, n), n);
    sf_close(sf);
    free(x);
}

/* Runs secap-extract with args; returns its exit status, its stderr in log. */
static int extract(const char *args, const char *log)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' --threads 1 --hubert '%s' --out '%s' %s 2>'%s'", prog,
             tu_ref_path("hubert_base_small.h5"), tu_tmp("feats.h5"), args, log);
    int rc = system(cmd);
    if (rc != 0) {
        char show[9000];
        snprintf(show, sizeof show, "cat '%s' >&2", log);
        if (system(show) != 0) fprintf(stderr, "(no log)\n");
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static int log_has(const char *log, const char *substr)
{
    FILE *f = fopen(log, "rb");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, substr) != NULL;
}

/* The cached features of id equal the encoder's output on wav alone. */
static void check_cached(secap_featcache *fc, secap_ctx *c, secap_hubert *m, const char *id, const char *wav)
{
    int64_t F = 0, H = 0;
    float *x = secap_featcache_get(fc, id, &F, &H);
    if (!x) fail_msg("feature cache lacks id %s", id);
    secap_audio a = secap_audio_load_or_die(wav, SECAP_SAMPLE_RATE);
    int32_t frames;
    secap_tensor *y = secap_hubert_forward(c, m, a.x, &a.n, 1, a.n, -1, &frames);
    assert_int_equal(F, frames);
    assert_int_equal(H, y->shape[2]);
    double worst = 0;
    for (int64_t i = 0; i < F * H; i++) worst = fmax(worst, fabs((double)x[i] - secap_f32(y)[i]));
    printf("  %s: [%lld x %lld], max |cache - alone| = %.3g\n", id, (long long)F, (long long)H, worst);
    if (!(worst < 1e-4)) fail_msg("cached features of %s differ from the encoder's by %g", id, worst);
    secap_ctx_reset(c);
    secap_audio_free(&a);
    free(x);
}

static void test_extend_cache(void **st)
{
    (void)st;
    char a[1024], b[1024], d[1024], args[4096];
    snprintf(a, sizeof a, "%s", tu_tmp("a.wav"));
    snprintf(b, sizeof b, "%s", tu_tmp("b.wav"));
    snprintf(d, sizeof d, "%s", tu_tmp("d.wav"));
    write_wav(a, 8000, 0.05);
    write_wav(b, 12000, 0.11);
    write_wav(d, 6400, 0.2);

    snprintf(args, sizeof args, "--wav '%s' '%s'", a, b);
    assert_int_equal(extract(args, tu_tmp("run1.log")), 0);
    assert_true(log_has(tu_tmp("run1.log"), "wrote 2 utterances"));

    /* the same files: both skipped from the cache */
    assert_int_equal(extract(args, tu_tmp("run2.log")), 0);
    assert_true(log_has(tu_tmp("run2.log"), "2 utterances already in"));
    assert_true(log_has(tu_tmp("run2.log"), "wrote 0 utterances"));

    /* one more: two skipped, one computed */
    snprintf(args, sizeof args, "--wav '%s' '%s' '%s'", a, b, d);
    assert_int_equal(extract(args, tu_tmp("run3.log")), 0);
    assert_true(log_has(tu_tmp("run3.log"), "2 utterances already in"));
    assert_true(log_has(tu_tmp("run3.log"), "wrote 1 utterances"));

    secap_ctx *c = secap_ctx_new((size_t)1 << 28, (size_t)1 << 30, 1);
    c->training = 0;
    secap_hubert *m = secap_hubert_load(c, tu_ref_path("hubert_base_small.h5"), 0);
    char enc[1024], set[256];
    secap_hubert_cache_key(m, tu_ref_path("hubert_base_small.h5"), -1, enc, sizeof enc, set, sizeof set);
    secap_featcache_key key = { enc, set };
    int rebuilt = -1;
    secap_featcache *fc = secap_featcache_open(tu_tmp("feats.h5"), &key, &rebuilt);
    assert_int_equal(rebuilt, 0);
    check_cached(fc, c, m, "a", a);
    check_cached(fc, c, m, "b", b);
    check_cached(fc, c, m, "d", d);
    secap_featcache_close(fc);
    secap_hubert_free(m);
    secap_ctx_free(c);
}

int main(void)
{
    secap_threads_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extend_cache),
    };
    return cmocka_run_group_tests_name("extract_cache", tests, find_program, tu_tmpdir_teardown);
}
