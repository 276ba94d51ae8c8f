/* tests/test_report.c - secap-report and secap-score's similarity/emotion
 * options, run as a user runs them (programs next to this test's
 * directory).  The page's HTML is checked here as text: rows, escaping,
 * audio references that resolve from the page's directory, embedded audio
 * that decodes to the file, curves, per-item score attributes, output
 * safety.  Its behaviour in a browser (sorting, filtering) is checked by
 * tests/browser/report.sh (make test-browser). */
#include "testutil.h"

#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_bin[1024];
static char g_out[1 << 20];

static int run(const char *prog, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/%s' %s 2>&1", tu_dir, g_bin, prog, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    print_message("$ %s %s\n%.2000s", prog, args, g_out);
    /* a sanitizer build's programs must not leak or misbehave on any path, errors included */
    if (strstr(g_out, "LeakSanitizer") || strstr(g_out, "AddressSanitizer") || strstr(g_out, "runtime error:"))
        fail_msg("%s %s: sanitizer report in the output", prog, args);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, prog, args, substr)                                                    \
    do {                                                                                          \
        int rc_ = run(prog, args);                                                                \
        if (rc_ != (status)) fail_msg("%s %s: exit %d, expected %d", prog, args, rc_, status);    \
        if (!strstr(g_out, substr)) fail_msg("%s %s: output lacks \"%s\"", prog, args, substr);  \
    } while (0)

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Standard base64 (with '=' padding) -> bytes; returns the byte count. */
static size_t b64_decode(const char *s, size_t n, unsigned char *out)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *q = strchr(T, s[i]);
        if (!q || !s[i]) fail_msg("base64: bad character 0x%02x at %zu", (unsigned char)s[i], i);
        acc = acc << 6 | (unsigned)(q - T);
        bits += 6;
        if (bits >= 8) { bits -= 8; out[k++] = (unsigned char)(acc >> bits & 0xff); }
    }
    return k;
}

/* 16-bit mono PCM WAV of n samples. */
static void write_wav(const char *name, int n, int seed)
{
    FILE *f = fopen(tu_tmp("%s", name), "wb");
    assert_non_null(f);
    uint32_t data = (uint32_t)n * 2, riff = 36 + data, rate = 16000, brate = 32000, fmt = 16;
    uint16_t pcm = 1, ch = 1, align = 2, bits = 16;
    fwrite("RIFF", 1, 4, f); fwrite(&riff, 4, 1, f); fwrite("WAVEfmt ", 1, 8, f); fwrite(&fmt, 4, 1, f);
    fwrite(&pcm, 2, 1, f); fwrite(&ch, 2, 1, f); fwrite(&rate, 4, 1, f); fwrite(&brate, 4, 1, f);
    fwrite(&align, 2, 1, f); fwrite(&bits, 2, 1, f); fwrite("data", 1, 4, f); fwrite(&data, 4, 1, f);
    for (int i = 0; i < n; i++) {
        int16_t s = (int16_t)(8000 * sin(0.05 * (i + 1) * (seed + 1)));
        fwrite(&s, 2, 1, f);
    }
    fclose(f);
}

/* The fixture: 4 clips with labels, a run with two stages, per-item scores. */
static void make_fixture(void)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/ds/wav' '%s/run' '%s/page'", tu_dir, tu_dir, tu_dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "ds/wav/u%d.wav", i + 1);
        write_wav(name, 4000 + 1000 * i, i);
    }
    tu_write_text("ds/wav.scp", "u1 wav/u1.wav\nu2 wav/u2.wav\nu3 wav/u3.wav\nu4 wav/u4.wav\n");
    tu_write_text("ds/text.txt", "u1 今天<b>天气</b>很好 & \"引号\"\nu2 第二句\nu3 第三句\nu4 第四句\n");
    tu_write_text("ds/emotion.txt", "u1 开心\nu2 悲伤\nu3 开心\nu4 生气\n");
    tu_write_text("ds/fid2captions.json",
               "{\"u1\": [\"语速很快，听起来很开心\", \"心情很好\"], \"u2\": \"语气哀伤\", \"u3\": [\"带着笑意\"], "
               "\"u4\": [\"情绪愤怒，声音很大\"]}");
    tu_write_text("hyps.json",
               "{\"u1\": [\"听起来很开心<script>alert(1)</script>\", \"心情很好\"], \"u2\": \"语速很快，情绪愤怒\", "
               "\"u3\": \"带着笑意\", \"u4\": \"声音很大\"}");
    tu_write_text("scores.json", "{\"u1\": {\"Similarity\": 0.9}, \"u2\": {\"Similarity\": 0.2}, "
                              "\"u3\": {\"Similarity\": 0.7}, \"u4\": {\"Similarity\": 0.5}}");
    FILE *f = fopen(tu_tmp("run/metrics.jsonl"), "w");
    assert_non_null(f);
    const char *stages[2] = {"qformer", "caption"};
    for (int s = 0; s < 2; s++)
        for (int k = 1; k <= 10; k++)
            fprintf(f, "{\"stage\": \"%s\", \"step\": %d, \"loss\": %.6f, \"loss_mi\": %.6f, \"lr\": 0.0001, "
                       "\"grad_norm\": 1.5}\n", stages[s], k, 3.0 / k + 0.1, 0.5 - 0.01 * k);
    fputs("{\"event\": \"eval\", \"bleu4\": 0.1}\n", f);   /* no step: not plotted */
    fclose(f);
}

static void test_report_page(void **st)
{
    (void)st;
    make_fixture();
    EXPECT_RUN(0, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --data ds --run run "
               "--scores scores.json --title 'T<i>' --out page/report.html", "wrote page/report.html (4 clips");
    size_t n;
    char *html = read_text(tu_tmp("page/report.html"), &n);
    assert_int_equal(count(html, "<tr data-idx="), 4);
    assert_int_equal(count(html, "<audio controls"), 4);
    /* escaping: the caption's script, the transcript's markup and quotes, the title */
    assert_int_equal(count(html, "<script>"), 1);   /* the page's own */
    assert_true(strstr(html, "听起来很开心&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    assert_true(strstr(html, "今天&lt;b&gt;天气&lt;/b&gt;很好 &amp; &quot;引号&quot;") != NULL);
    assert_true(strstr(html, "<title>T&lt;i&gt;</title>") != NULL);
    /* both captions of u1 are listed; a keyword-named class is marked against the label */
    assert_true(strstr(html, "<li class=\"caption\">心情很好 <span class=\"emo ok\">[开心]</span>") != NULL);
    assert_true(strstr(html, "<li class=\"caption\">语速很快，情绪愤怒 <span class=\"emo bad\">[生气]</span>") != NULL);
    /* audio paths relative to the page, and they resolve */
    const char *p = strstr(html, "<source src=\"");
    assert_non_null(p);
    char src[256];
    assert_int_equal(sscanf(p + strlen("<source src=\""), "%255[^\"]", src), 1);
    assert_string_equal(src, "../ds/wav/u1.wav");
    struct stat sb;
    assert_int_equal(stat(tu_tmp("page/%s", src), &sb), 0);
    /* per-item score attributes: the five library columns then Similarity (s5) */
    assert_true(strstr(html, "data-key=\"s5\">Similarity</th>") != NULL);
    assert_true(strstr(html, "data-s5=\"0.20000000000000001\"") != NULL);
    /* one chart per stage, two series each (loss, loss_mi; lr and grad_norm are not losses) */
    assert_int_equal(count(html, "<svg "), 2);
    assert_int_equal(count(html, "<polyline "), 4);
    assert_true(strstr(html, "stage qformer") && strstr(html, "stage caption"));
    assert_null(strstr(html, ">lr ("));
    /* the filter lists each label once */
    assert_int_equal(count(html, "<option value=\"开心\">"), 1);
    assert_int_equal(count(html, "<option value="), 4);   /* all + 3 labels */
    /* emotion accuracy of the first captions: u1 开心 ok, u2 names 生气 (label 悲伤), u3 ok, u4 none */
    assert_true(strstr(html, "emotion named (keywords, 4 labelled clips)</td><td class=\"num\">0.500000") != NULL);
    /* no network: nothing loaded from elsewhere */
    assert_null(strstr(html, "http:"));
    assert_null(strstr(html, "https:"));
    assert_null(strstr(html, "href="));
    assert_null(strstr(html, "url("));
    free(html);

    /* embedded audio decodes to the file's bytes */
    EXPECT_RUN(0, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --data ds --embed-audio "
               "--out page/embedded.html", "audio embedded");
    html = read_text(tu_tmp("page/embedded.html"), &n);
    assert_int_equal(count(html, "src=\"data:audio/wav;base64,"), 4);
    p = strstr(html, "base64,") + strlen("base64,");
    size_t b64 = strcspn(p, "\"");
    size_t wav_len;
    char *wav = read_text(tu_tmp("ds/wav/u1.wav"), &wav_len);
    assert_int_equal(b64, 4 * ((wav_len + 2) / 3));
    unsigned char *dec = malloc(b64);
    size_t nd = b64_decode(p, b64, dec);
    assert_int_equal(nd, wav_len);
    assert_memory_equal(dec, wav, wav_len);
    free(dec);
    free(wav);
    free(html);
}

static void test_report_errors(void **st)
{
    (void)st;
    make_fixture();
    /* output safety */
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --out hyps.json", "same file as --captions");
    tu_write_text("notes.html", "<html>my notes</html>");
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --out notes.html",
               "not a page written by secap-report");
    char *kept = read_text(tu_tmp("notes.html"), NULL);
    assert_string_equal(kept, "<html>my notes</html>");
    free(kept);
    EXPECT_RUN(0, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --out r.html", "wrote r.html");
    EXPECT_RUN(0, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --out r.html", "wrote r.html");
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --out page", "is a directory");
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --run ds --out r2.html",
               "metrics.jsonl: cannot open");
    tu_write_text("run/metrics.jsonl", "{\"stage\": \"a\", \"step\": 1, \"loss\": 1}\nnot json\n");
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --run run --out r2.html",
               "metrics.jsonl:2: not a JSON object");
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --out r2.html", "--captions, --refs and --out are required");
    tu_write_text("other.json", "{\"x\": {\"Similarity\": 1}}");
    EXPECT_RUN(1, "secap-report", "--captions hyps.json --refs ds/fid2captions.json --scores other.json --out r2.html",
               "no id in common");
    struct stat sb;
    assert_true(stat(tu_tmp("r2.html"), &sb) != 0);   /* nothing written on an error */
}

static void test_score_options(void **st)
{
    (void)st;
    make_fixture();
    char args[12000];
    /* without the options: exactly the toolkit keys */
    EXPECT_RUN(0, "secap-score", "--refs ds/fid2captions.json --hyps hyps.json", "\"CIDEr\"");
    assert_null(strstr(g_out, "Similarity"));
    assert_null(strstr(g_out, "Emotion"));
    EXPECT_RUN(0, "secap-score", "--refs ds/fid2captions.json --hyps hyps.json --emotion-labels ds/emotion.txt",
               "\"Emotion_accuracy\": 0.5, \"Emotion_none\": 1, \"Emotion_ambiguous\": 0}");
    EXPECT_RUN(0, "secap-score", "--refs ds/fid2captions.json --hyps hyps.json --emotion-labels ds/emotion.txt "
               "--per-item items.json", "Emotion_accuracy");
    char *items = read_text(tu_tmp("items.json"), NULL);
    assert_true(strstr(items, "\"Emotion\": \"生气\", \"Emotion_correct\": 0}") != NULL);
    assert_true(strstr(items, "\"Emotion\": \"none\", \"Emotion_correct\": 0}") != NULL);
    free(items);
    tu_write_text("kw.txt", "开心 开心\n悲伤 哀伤\n");
    EXPECT_RUN(1, "secap-score", "--refs ds/fid2captions.json --hyps hyps.json --emotion-labels ds/emotion.txt "
               "--emotion-keywords kw.txt", "label \"生气\" is not a class of the keyword table (开心 悲伤)");
    tu_write_text("few.txt", "u1 开心\n");
    EXPECT_RUN(1, "secap-score", "--refs ds/fid2captions.json --hyps hyps.json --emotion-labels few.txt",
               "3 hypothesis ids without a label");
    EXPECT_RUN(1, "secap-score", "--refs ds/fid2captions.json --hyps hyps.json --similarity-model x.h5",
               "--similarity-model and --similarity-vocab go together");
    /* similarity with the reference BERT: the per-item value is the cosine to the references */
    char model[4200], vocab[4200];
    snprintf(model, sizeof model, "%s", tu_ref_path("sim_bert.h5"));
    snprintf(vocab, sizeof vocab, "%s", tu_ref_path("sim_vocab.txt"));
    snprintf(args, sizeof args, "--refs ds/fid2captions.json --hyps hyps.json --similarity-model '%s' "
             "--similarity-vocab '%s' --format table", model, vocab);
    EXPECT_RUN(0, "secap-score", args, "(share of items)");
    snprintf(args, sizeof args, "--refs ds/fid2captions.json --hyps hyps.json --similarity-model '%s' "
             "--similarity-vocab '%s'", model, vocab);
    EXPECT_RUN(0, "secap-score", args, "\"Similarity>0.8\"");
    double sim = -1;
    const char *p = strstr(g_out, "\"Similarity\": ");
    assert_non_null(p);
    sim = atof(p + strlen("\"Similarity\": "));
    assert_true(sim > -1 && sim <= 1);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024], resolved[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_bin, sizeof g_bin, "%s/..", dirname(self));
    if (realpath(g_bin, resolved)) snprintf(g_bin, sizeof g_bin, "%s", resolved);
    const char *ref = getenv("SECAP_REF_DIR");
    if (!ref || ref[0] != '/') {
        static char abs_ref[1200];
        char cwd[1024];
        snprintf(abs_ref, sizeof abs_ref, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", ref ? ref : "build/ref");
        setenv("SECAP_REF_DIR", abs_ref, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_page),
        cmocka_unit_test(test_report_errors),
        cmocka_unit_test(test_score_options),
    };
    return cmocka_run_group_tests_name("report", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
