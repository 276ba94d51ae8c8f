/* Audio front end: formats, downmix, resampling accuracy, normalisation, crops,
 * damaged files.  Input files are written by the test itself with libsndfile. */
#include "testutil.h"
#include "secap/audio.h"

#include <sndfile.h>
#include <unistd.h>

/* Writes x [n x channels] interleaved with the given libsndfile format. */
static void write_audio(const char *path, const float *x, int64_t n, int rate, int channels, int format)
{
    SF_INFO si = { .samplerate = rate, .channels = channels, .format = format };
    SNDFILE *sf = sf_open(path, SFM_WRITE, &si);
    if (!sf) fail_msg("cannot write %s: %s", path, sf_strerror(NULL));
    assert_int_equal(sf_writef_float(sf, x, n), n);
    sf_close(sf);
}

static float *sine(int64_t n, int rate, double freq, double amp)
{
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / rate));
    return x;
}

/* Least-squares fit of a*sin + b*cos at `freq` over x[lo, hi); returns the
 * amplitude and, in *resid, the RMS of what the fitted sine leaves over. */
static double fit_sine(const float *x, int64_t lo, int64_t hi, int rate, double freq, double *resid)
{
    double ss = 0, cc = 0, sc = 0, xs = 0, xc = 0;
    for (int64_t i = lo; i < hi; i++) {
        double w = 2 * M_PI * freq * (double)i / rate, s = sin(w), c = cos(w);
        ss += s * s; cc += c * c; sc += s * c; xs += x[i] * s; xc += x[i] * c;
    }
    double det = ss * cc - sc * sc;
    double a = (xs * cc - xc * sc) / det, b = (xc * ss - xs * sc) / det;
    double r2 = 0;
    for (int64_t i = lo; i < hi; i++) {
        double w = 2 * M_PI * freq * (double)i / rate;
        double d = x[i] - (a * sin(w) + b * cos(w));
        r2 += d * d;
    }
    *resid = sqrt(r2 / (double)(hi - lo));
    return sqrt(a * a + b * b);
}

/* A 1 kHz sine at amplitude 0.5 resampled to 16 kHz keeps its frequency and
 * amplitude: amplitude within 0.1 %, and the residual after fitting a 1 kHz
 * sine is below 1e-5 of the amplitude (-100 dB), which also fails if the
 * frequency moved by more than about 0.01 Hz over the 2 s clip. */
static void check_resampled_sine(int in_rate)
{
    const double amp = 0.5, freq = 1000.0;
    int64_t n = 2 * (int64_t)in_rate;
    float *x = sine(n, in_rate, freq, amp);
    char name[64];
    snprintf(name, sizeof name, "sine%d.wav", in_rate);
    write_audio(tu_tmp("%s", name), x, n, in_rate, 1, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    secap_audio a;
    char err[512];
    assert_int_equal(secap_audio_load(tu_tmp("%s", name), SECAP_SAMPLE_RATE, &a, err, sizeof err), 0);
    assert_int_equal(a.rate, SECAP_SAMPLE_RATE);
    assert_true(llabs(a.n - 2 * SECAP_SAMPLE_RATE) <= 1);
    double resid;
    double got = fit_sine(a.x, 1600, a.n - 1600, SECAP_SAMPLE_RATE, freq, &resid);
    print_message("resample %d -> 16000: amplitude %.6f (want %.6f), residual %.2e\n", in_rate, got, amp, resid);
    assert_true(fabs(got - amp) < 1e-3 * amp);
    assert_true(resid < 1e-5 * amp);
    /* A wrong frequency must fail the same check: fit 1001 Hz instead. */
    double bad_resid;
    fit_sine(a.x, 1600, a.n - 1600, SECAP_SAMPLE_RATE, freq + 1.0, &bad_resid);
    assert_true(bad_resid > 1e-2 * amp);
    secap_audio_free(&a);
    free(x);
}

static void test_resample_24k(void **st) { (void)st; check_resampled_sine(24000); }
static void test_resample_22050(void **st) { (void)st; check_resampled_sine(22050); }

static void test_resample_identity_rate(void **st)
{
    (void)st;
    int64_t n = 8000;
    float *x = sine(n, 16000, 440, 0.25);
    write_audio(tu_tmp("id.wav"), x, n, 16000, 1, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    secap_audio a = secap_audio_load_or_die(tu_tmp("id.wav"), 16000);
    assert_int_equal(a.n, n);
    for (int64_t i = 0; i < n; i++) assert_true(a.x[i] == x[i]);
    secap_audio_free(&a);
    free(x);
}

/* The same signal stored as 8/16/24-bit PCM, float, FLAC and stereo loads as
 * the same audio, within each format's quantisation step. */
static void test_formats_load_the_same(void **st)
{
    (void)st;
    int64_t n = 16000;
    float *x = malloc((size_t)n * sizeof(float)), *st2 = malloc((size_t)n * 2 * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(0.4 * sin(2 * M_PI * 440 * i / 16000.0) + 0.2 * sin(2 * M_PI * 1234 * i / 16000.0));
        st2[2 * i] = st2[2 * i + 1] = x[i];
    }
    struct { const char *name; int format; int channels; double tol; } cases[] = {
        { "u8.wav",    SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 1, 1.0 / 64 },
        { "s16.wav",   SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 1.0 / 16384 },
        { "s24.wav",   SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1, 1.0 / 4194304 },
        { "f32.wav",   SF_FORMAT_WAV | SF_FORMAT_FLOAT,  1, 1e-7 },
        { "s16.flac",  SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1, 1.0 / 16384 },
        { "st16.wav",  SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2, 1.0 / 16384 },
        { "st24.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_24, 2, 1.0 / 4194304 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *p = tu_tmp("%s", cases[c].name);
        write_audio(p, cases[c].channels == 1 ? x : st2, n, 16000, cases[c].channels, cases[c].format);
        secap_audio a;
        char err[512];
        if (secap_audio_load(p, 16000, &a, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(a.n, n);
        double worst = 0;
        for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(a.x[i] - x[i]));
        print_message("%-10s max |diff| %.3g (tol %.3g)\n", cases[c].name, worst, cases[c].tol);
        assert_true(worst <= cases[c].tol);
        secap_audio_free(&a);
    }
    free(x);
    free(st2);
}

static void test_stereo_downmix_is_mean(void **st)
{
    (void)st;
    float lr[2 * 100];
    for (int i = 0; i < 100; i++) { lr[2 * i] = 0.5f; lr[2 * i + 1] = (float)i / 200.0f; }
    write_audio(tu_tmp("lr.wav"), lr, 100, 16000, 2, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    secap_audio a = secap_audio_load_or_die(tu_tmp("lr.wav"), 16000);
    for (int i = 0; i < 100; i++) assert_float_equal(a.x[i], 0.5f * (0.5f + (float)i / 200.0f), 1e-7);
    secap_audio_free(&a);
}

static void test_normalize(void **st)
{
    (void)st;
    float x[1000];
    for (int i = 0; i < 1000; i++) x[i] = 3.0f + 0.1f * (float)sin(i * 0.37);
    secap_audio_normalize(x, 1000);
    double s = 0, s2 = 0;
    for (int i = 0; i < 1000; i++) { s += x[i]; s2 += x[i] * x[i]; }
    assert_true(fabs(s / 1000) < 1e-5);
    assert_true(fabs(s2 / 1000 - 1.0) < 1e-3);
    /* Silence stays finite (the 1e-7 in the denominator). */
    float z[10] = {0};
    secap_audio_normalize(z, 10);
    for (int i = 0; i < 10; i++) assert_true(z[i] == 0.0f);
}

static void test_crop(void **st)
{
    (void)st;
    assert_int_equal(secap_crop_start(100, 200, NULL), 0);
    assert_int_equal(secap_crop_start(1000, 200, NULL), 0);
    secap_rng r1, r2;
    secap_rng_seed(&r1, 5);
    secap_rng_seed(&r2, 5);
    int64_t lo = 1000, hi = -1;
    for (int i = 0; i < 2000; i++) {
        int64_t s = secap_crop_start(1000, 200, &r1);
        assert_int_equal(s, secap_crop_start(1000, 200, &r2));
        assert_true(s >= 0 && s <= 800);
        lo = s < lo ? s : lo;
        hi = s > hi ? s : hi;
    }
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 800);
}

static void truncate_file(const char *path, long size)
{
    assert_int_equal(truncate(path, size), 0);
}

static void test_damaged_files_do_not_crash(void **st)
{
    (void)st;
    int64_t n = 24000;
    float *x = sine(n, 24000, 300, 0.3);
    char err[1024];
    secap_audio a;
    /* Header cut short: unreadable, with a message naming the file. */
    const char *p1 = tu_tmp("cut_header.wav");
    write_audio(p1, x, n, 24000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    truncate_file(p1, 30);
    assert_int_equal(secap_audio_load(p1, 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "cut_header.wav"));
    assert_null(a.x);
    /* Data cut in the middle: either a clean error or the shorter audio. */
    const char *p2 = tu_tmp("cut_data.wav");
    write_audio(p2, x, n, 24000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    truncate_file(p2, 44 + 2 * 5000 + 1);
    if (secap_audio_load(p2, 16000, &a, err, sizeof err) == 0) {
        assert_true(a.n <= 5001 * 2 / 3 + 1);
        secap_audio_free(&a);
    } else {
        assert_non_null(strstr(err, "cut_data.wav"));
    }
    /* Not audio at all. */
    const char *p3 = tu_tmp("text.wav");
    FILE *f = fopen(p3, "w");
    fputs("this is not a wave file\n", f);
    fclose(f);
    assert_int_equal(secap_audio_load(p3, 16000, &a, err, sizeof err), -1);
    assert_int_equal(secap_audio_load(tu_tmp("missing.wav"), 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing.wav"));
    EXPECT_FATAL(secap_audio_load_or_die(tu_tmp("missing.wav"), 16000), "missing.wav");
    free(x);
}

static void test_probe(void **st)
{
    (void)st;
    float x[2 * 480] = {0};
    write_audio(tu_tmp("probe.wav"), x, 480, 24000, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    secap_audio_info info;
    char err[256];
    assert_int_equal(secap_audio_probe(tu_tmp("probe.wav"), &info, err, sizeof err), 0);
    assert_int_equal(info.frames, 480);
    assert_int_equal(info.rate, 24000);
    assert_int_equal(info.channels, 2);
}

/* A header claiming an absurd rate or length is refused before any buffer
 * is sized from it; the bounds are configurable. */
static void test_header_bounds(void **st)
{
    (void)st;
    float x[32000] = {0};
    const char *p = tu_tmp("rate1.wav");
    write_audio(p, x, 32000, 16000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    /* patch the fmt chunk: sample rate (offset 24) and byte rate (28) to 1 Hz */
    FILE *f = fopen(p, "r+b");
    unsigned char one[8] = { 1, 0, 0, 0, 2, 0, 0, 0 };
    fseek(f, 24, SEEK_SET);
    fwrite(one, 1, 8, f);
    fclose(f);
    secap_audio_info info;
    secap_audio a;
    char err[1024];
    assert_int_equal(secap_audio_probe(p, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "rate1.wav: sample rate 1 Hz is outside [4000, 384000] Hz"));
    assert_int_equal(secap_audio_load(p, 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "sample rate 1 Hz"));
    assert_null(a.x);
    /* allow 1 Hz: now the duration (32000 s) is over the 3600 s default */
    secap_audio_limits l = { 1, 384000, 3600 };
    secap_audio_set_limits(&l);
    assert_int_equal(secap_audio_load(p, 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "declares 32000 frames at 1 Hz, 32000.0 s, longer than the 3600 s limit"));
    /* a normal file against a tight duration bound */
    write_audio(tu_tmp("two_s.wav"), x, 32000, 16000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    l = (secap_audio_limits){ 8000, 48000, 1.5 };
    secap_audio_set_limits(&l);
    assert_int_equal(secap_audio_probe(tu_tmp("two_s.wav"), &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "2.0 s, longer than the 1.5 s limit"));
    l.max_seconds = 2.0;
    secap_audio_set_limits(&l);
    assert_int_equal(secap_audio_probe(tu_tmp("two_s.wav"), &info, err, sizeof err), 0);
    l = (secap_audio_limits){ 48000, 8000, 1 };
    EXPECT_FATAL(secap_audio_set_limits(&l), "not a valid range");
    secap_audio_set_limits(NULL);
    assert_int_equal(secap_audio_get_limits().min_rate, SECAP_AUDIO_MIN_RATE);
}

/* NaN / inf samples in a float file are refused, naming the sample. */
static void test_nonfinite_samples(void **st)
{
    (void)st;
    float x[2 * 1000];
    for (int i = 0; i < 2000; i++) x[i] = 0.1f;
    x[2 * 700 + 1] = NAN;                       /* frame 700, right channel */
    write_audio(tu_tmp("nan.wav"), x, 1000, 16000, 2, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    secap_audio a;
    char err[1024];
    assert_int_equal(secap_audio_load(tu_tmp("nan.wav"), 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "nan.wav: sample 700 (0.044 s, mean of 2 channels) is NaN"));
    assert_null(a.x);
    float y[1000];
    for (int i = 0; i < 1000; i++) y[i] = 0.1f;
    y[999] = -INFINITY;
    write_audio(tu_tmp("inf.wav"), y, 1000, 24000, 1, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    assert_int_equal(secap_audio_load(tu_tmp("inf.wav"), 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "sample 999"));
    assert_non_null(strstr(err, "is -inf"));
    EXPECT_FATAL(secap_audio_load_or_die(tu_tmp("inf.wav"), 16000), "is -inf");
    /* a directory is named as one */
    assert_int_equal(secap_audio_load(tu_dir, 16000, &a, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a directory"));
    secap_audio_info info;
    assert_int_equal(secap_audio_probe(tu_dir, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resample_24k),
        cmocka_unit_test(test_resample_22050),
        cmocka_unit_test(test_resample_identity_rate),
        cmocka_unit_test(test_formats_load_the_same),
        cmocka_unit_test(test_stereo_downmix_is_mean),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_damaged_files_do_not_crash),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_header_bounds),
        cmocka_unit_test(test_nonfinite_samples),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
