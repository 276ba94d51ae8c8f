/* Caption metrics against fixtures made with the COCO caption toolkit
 * (tests/metrics/make_fixtures.py): every corpus and per-item score within
 * 1e-6 (METEOR 1e-4), plus the tokeniser and the input errors. */
#include "testutil.h"

#include <cJSON.h>
#include <unistd.h>

#include "secap/score.h"

#include "secap/rng.h"
#include "../src/metrics/metrics_internal.h"   /* secap_meteor, declared before the rename below */

#include <libgen.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* The unbounded reference alignment (the toolkit's data layout), for
 * test_meteor_matches_reference. */
#define secap_meteor secap_meteor_reference
#include "metrics/meteor_reference.c"
#undef secap_meteor

static const char *const METRIC_NAMES[7] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"};

static double metric_of(const secap_scores *s, int m)
{
    if (m < 4) return s->bleu[m];
    return m == 4 ? s->meteor : m == 5 ? s->rouge_l : s->cider;
}

static double tolerance(int m) { return m == 4 ? 1e-4 : 1e-6; }

static const char *fixture_path(const char *name, const char *kind)
{
    static char buf[3][1024];
    static int k;
    const char *dir = getenv("SECAP_METRICS_FIXTURES");
    k = (k + 1) % 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s.%s.json", dir ? dir : "tests/fixtures/metrics", name, kind);
    return buf[k];
}

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open fixture %s (run the tests from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) fail_msg("fixture %s is not valid JSON", path);
    return j;
}

/* The hypothesis text of entry e of a hypothesis file (first of a list). */
static const char *hyp_text(const cJSON *e)
{
    return cJSON_IsArray(e) ? cJSON_GetArrayItem(e, 0)->valuestring : e->valuestring;
}

/* Our tokenisation of every hypothesis equals the one the toolkit was given. */
static void check_tokens(const cJSON *exp, const char *hyps_path, secap_tokenize_mode mode)
{
    cJSON *hyps = load_json(hyps_path);
    const cJSON *want = cJSON_GetObjectItem(exp, "hyp_tokens");
    int i = 0;
    for (const cJSON *e = hyps->child; e; e = e->next, i++) {
        char *got = secap_tokenize_join(hyp_text(e), mode, e->string);
        const char *w = cJSON_GetArrayItem(want, i)->valuestring;
        if (strcmp(got, w)) fail_msg("id %s: tokens \"%s\", toolkit was given \"%s\"", e->string, got, w);
        free(got);
    }
    cJSON_Delete(hyps);
}

static void check_fixture(const char *name)
{
    cJSON *exp = load_json(fixture_path(name, "expected"));
    secap_tokenize_mode mode = secap_tokenize_mode_parse(cJSON_GetObjectItem(exp, "tokenize")->valuestring);
    secap_corpus *c = secap_corpus_load_json(fixture_path(name, "refs"), fixture_path(name, "hyps"), mode);
    const cJSON *ids = cJSON_GetObjectItem(exp, "ids");
    int n = secap_corpus_size(c);
    assert_int_equal(n, cJSON_GetArraySize(ids));
    for (int i = 0; i < n; i++) assert_string_equal(secap_corpus_id(c, i), cJSON_GetArrayItem(ids, i)->valuestring);
    check_tokens(exp, fixture_path(name, "hyps"), mode);

    secap_scores total, *item = calloc((size_t)n, sizeof *item);
    assert_non_null(item);
    secap_score(c, SECAP_METRIC_ALL, &total, item);
    const cJSON *corpus = cJSON_GetObjectItem(exp, "corpus"), *per = cJSON_GetObjectItem(exp, "per_item");
    int bad = 0;
    printf("  %-10s %4d items  max |C - toolkit|:", name, n);
    for (int m = 0; m < 7; m++) {
        double want = cJSON_GetObjectItem(corpus, METRIC_NAMES[m])->valuedouble;
        double d = fabs(metric_of(&total, m) - want), dmax = d;
        const cJSON *list = cJSON_GetObjectItem(per, METRIC_NAMES[m]);
        for (int i = 0; i < n; i++) {
            double di = fabs(metric_of(&item[i], m) - cJSON_GetArrayItem(list, i)->valuedouble);
            if (di > tolerance(m) && bad++ < 10)
                fprintf(stderr, "    %s item %s: %.12g vs toolkit %.12g\n", METRIC_NAMES[m], secap_corpus_id(c, i),
                        metric_of(&item[i], m), cJSON_GetArrayItem(list, i)->valuedouble);
            if (di > dmax) dmax = di;
        }
        if (d > tolerance(m) && bad++ < 10)
            fprintf(stderr, "    %s corpus: %.12g vs toolkit %.12g\n", METRIC_NAMES[m], metric_of(&total, m), want);
        printf(" %s %.1e", METRIC_NAMES[m], dmax);
    }
    printf("\n");
    free(item);
    secap_corpus_free(c);
    cJSON_Delete(exp);
    if (bad) fail_msg("%s: %d scores off the toolkit's beyond tolerance", name, bad);
}

static void test_fixture_zh_multi(void **st) { (void)st; check_fixture("zh_multi"); }
static void test_fixture_zh_single(void **st) { (void)st; check_fixture("zh_single"); }
static void test_fixture_zh_varref(void **st) { (void)st; check_fixture("zh_varref"); }
static void test_fixture_en_multi(void **st) { (void)st; check_fixture("en_multi"); }
static void test_fixture_en_space(void **st) { (void)st; check_fixture("en_space"); }
static void test_fixture_edge(void **st) { (void)st; check_fixture("edge"); }
static void test_fixture_meteor_beam(void **st) { (void)st; check_fixture("meteor_beam"); }

static void expect_tokens(const char *text, secap_tokenize_mode mode, const char *want)
{
    char *got = secap_tokenize_join(text, mode, "test text");
    assert_string_equal(got, want);
    free(got);
}

static void test_tokenize(void **st)
{
    (void)st;
    expect_tokens("Hello, World！你好123abc。", SECAP_TOK_ZH_CHAR, "hello world 你 好 123abc");
    expect_tokens("说OK的时候（开心）……3D眼镜", SECAP_TOK_ZH_CHAR, "说 ok 的 时 候 开 心 3d 眼 镜");
    expect_tokens("  ，。！  ", SECAP_TOK_ZH_CHAR, "");
    expect_tokens("かなカナ한국", SECAP_TOK_ZH_CHAR, "か な カ ナ 한 국");
    expect_tokens("café Straße", SECAP_TOK_ZH_CHAR, "café straße");
    expect_tokens("a+b=c $5", SECAP_TOK_ZH_CHAR, "a b c 5");
    expect_tokens(" The  cat ,\tsat.\n", SECAP_TOK_SPACE, "The cat , sat.");
    expect_tokens("", SECAP_TOK_SPACE, "");
    assert_int_equal(secap_tokenize_mode_parse("zh-char"), SECAP_TOK_ZH_CHAR);
    assert_int_equal(secap_tokenize_mode_parse("space"), SECAP_TOK_SPACE);
    assert_int_equal(secap_tokenize_mode_parse("words"), -1);
}

static void test_identical_is_perfect(void **st)
{
    (void)st;
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    const char *refs[2] = {"她说话很开心，语速很快。", "他很难过"};
    secap_corpus_add(c, "a", "她说话很开心语速很快", refs, 2);
    secap_scores s;
    secap_score(c, SECAP_METRIC_ALL, &s, NULL);
    for (int k = 0; k < 4; k++) assert_true(fabs(s.bleu[k] - 1.0) < 1e-6);
    assert_true(fabs(s.meteor - 1.0) < 1e-12);
    assert_true(fabs(s.rouge_l - 1.0) < 1e-12);
    secap_corpus_free(c);
}

static void test_empty_hypothesis_scores_zero(void **st)
{
    (void)st;
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    const char *refs[1] = {"她很开心"};
    secap_corpus_add(c, "empty", "", refs, 1);
    secap_corpus_add(c, "punct", "。！", refs, 1);
    secap_scores total, item[2];
    secap_score(c, SECAP_METRIC_ALL, &total, item);
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 4; k++) assert_true(item[i].bleu[k] < 1e-6);
        assert_true(item[i].meteor == 0.0);
        assert_true(item[i].rouge_l == 0.0);
        assert_true(item[i].cider == 0.0);
    }
    assert_true(total.meteor == 0.0);
    secap_corpus_free(c);
}

static void test_metric_mask(void **st)
{
    (void)st;
    secap_corpus *c = secap_corpus_new(SECAP_TOK_SPACE);
    const char *refs[1] = {"a b c d"};
    secap_corpus_add(c, "x", "a b c d", refs, 1);
    secap_scores s;
    secap_score(c, SECAP_METRIC_ROUGE_L, &s, NULL);
    assert_true(s.rouge_l == 1.0 && s.meteor == 0.0 && s.bleu[0] == 0.0 && s.cider == 0.0);
    EXPECT_FATAL(secap_score(c, 0, &s, NULL), "metric mask");
    secap_corpus_free(c);
}

/* Writes text to a fresh temporary file; returns its path (static buffer k). */
static const char *tmp_file(int k, const char *text)
{
    static char path[4][64];
    snprintf(path[k], sizeof path[k], "/tmp/secap_score_XXXXXX");
    int fd = mkstemp(path[k]);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path[k];
}

static void test_json_missing_and_ignored_ids(void **st)
{
    (void)st;
    const char *refs = tmp_file(0, "{\"a\": [\"x y\", \"y z\"], \"extra\": \"q\"}");
    const char *hyps = tmp_file(1, "{\"a\": \"x\", \"b\": \"y\", \"c\": [\"z\"]}");
    EXPECT_FATAL(secap_corpus_load_json(refs, hyps, SECAP_TOK_SPACE), "2 hypothesis ids without references");
    EXPECT_FATAL(secap_corpus_load_json(refs, hyps, SECAP_TOK_SPACE), "\"b\", \"c\"");
    const char *hyps_ok = tmp_file(2, "{\"a\": [\"x y\", \"ignored second\"]}");
    secap_corpus *c = secap_corpus_load_json(refs, hyps_ok, SECAP_TOK_SPACE);
    assert_int_equal(secap_corpus_size(c), 1);
    assert_int_equal(secap_corpus_n_ignored(c), 1);
    assert_string_equal(secap_corpus_ignored_id(c, 0), "extra");
    secap_scores s;
    secap_score(c, SECAP_METRIC_ROUGE_L, &s, NULL);
    assert_true(s.rouge_l == 1.0);
    secap_corpus_free(c);
    for (int k = 0; k < 3; k++) unlink(k == 0 ? refs : k == 1 ? hyps : hyps_ok);
}

static void test_json_malformed(void **st)
{
    (void)st;
    const char *good = tmp_file(0, "{\"a\": \"x\"}");
    const char *bad = tmp_file(1, "{\n  \"a\": \"x\",\n  \"b\" \"y\"\n}\n");
    EXPECT_FATAL(secap_corpus_load_json(good, bad, SECAP_TOK_SPACE), ":3:7: malformed JSON");
    const char *trailing = tmp_file(2, "{\"a\": \"x\"}\n]");
    EXPECT_FATAL(secap_corpus_load_json(trailing, good, SECAP_TOK_SPACE), ":2:1: malformed JSON");
    const char *array = tmp_file(3, "[\"x\"]");
    EXPECT_FATAL(secap_corpus_load_json(array, good, SECAP_TOK_SPACE), "top level is not a JSON object");
    EXPECT_FATAL(secap_corpus_load_json("/nonexistent/refs.json", good, SECAP_TOK_SPACE), "/nonexistent/refs.json: cannot open");
    unlink(bad); unlink(trailing); unlink(array);
    const char *number = tmp_file(1, "{\"a\": 3}");
    EXPECT_FATAL(secap_corpus_load_json(good, number, SECAP_TOK_SPACE), "id \"a\": caption is neither a string");
    const char *empty_list = tmp_file(2, "{\"a\": []}");
    EXPECT_FATAL(secap_corpus_load_json(good, empty_list, SECAP_TOK_SPACE), "id \"a\": empty caption list");
    const char *dup = tmp_file(3, "{\"a\": \"x\", \"a\": \"y\"}");
    EXPECT_FATAL(secap_corpus_load_json(good, dup, SECAP_TOK_SPACE), "id \"a\" appears more than once");
    unlink(good); unlink(number); unlink(empty_list); unlink(dup);
}

/* What cJSON accepts silently or calls a plain syntax error gets its own
 * message with file, line, column and id: an escaped NUL (which would cut
 * the caption), a lone surrogate, nesting past the parser's limit, a
 * trailing comma (with a non-blank excerpt), a directory, an empty file. */
static void test_json_lint_messages(void **st)
{
    (void)st;
    const char *good = tmp_file(0, "{\"a\": \"x\", \"b\": \"y\"}");
    const char *nul = tmp_file(1, "{\"a\": \"x\",\n \"b\": \"x\\u0000y\"}");
    EXPECT_FATAL(secap_corpus_load_json(good, nul, SECAP_TOK_SPACE), ":2:9: id \"b\": escaped NUL (\\u0000) in a string");
    unlink(nul);
    const char *nul_id = tmp_file(1, "{\"a\\u0000b\": \"x\"}");
    EXPECT_FATAL(secap_corpus_load_json(good, nul_id, SECAP_TOK_SPACE), ":1:4: id \"a\\u0000b\": escaped NUL (\\u0000) in the id");
    unlink(nul_id);
    const char *sur = tmp_file(1, "{\"a\": \"ok \\ud83d\\ude00\", \"b\": \"x\\ud83d\"}");
    EXPECT_FATAL(secap_corpus_load_json(good, sur, SECAP_TOK_SPACE), ":1:33: id \"b\": lone UTF-16 surrogate escape \\uD83D");
    unlink(sur);
    char deep[2100 + 16];
    strcpy(deep, "{\"a\": ");
    for (int i = 0; i < 1000; i++) strcat(deep, "[");
    for (int i = 0; i < 1000; i++) strcat(deep, "]");
    strcat(deep, "}");
    const char *dp = tmp_file(1, deep);
    EXPECT_FATAL(secap_corpus_load_json(good, dp, SECAP_TOK_SPACE), ":1:1006: id \"a\": nesting deeper than 1000 levels");
    unlink(dp);
    const char *comma = tmp_file(1, "{\"a\": \"x\",\r\n\n}\n");
    EXPECT_FATAL(secap_corpus_load_json(good, comma, SECAP_TOK_SPACE), ":1:10: trailing comma before '}' near \"{\"a\": \"x\",\"");
    unlink(comma);
    const char *open_ = tmp_file(1, "{\"a\": [\"x\",\n\n");
    EXPECT_FATAL(secap_corpus_load_json(good, open_, SECAP_TOK_SPACE), "the input ends with 2 brackets still open near \"{\"a\": [\"x\",\"");
    unlink(open_);
    const char *empty = tmp_file(1, " \n");
    EXPECT_FATAL(secap_corpus_load_json(good, empty, SECAP_TOK_SPACE), ":1:1: the input is empty");
    unlink(empty);
    EXPECT_FATAL(secap_corpus_load_json("/tmp", good, SECAP_TOK_SPACE), "/tmp: is a directory, not a caption file");
    /* a raw NUL byte: cJSON would stop there and ignore the rest */
    char raw[64] = "{\"a\": \"x\"}\n?{\"b\": 1}";
    raw[11] = 0;
    char rawp[64] = "/tmp/secap_score_XXXXXX";
    int fd = mkstemp(rawp);
    assert_int_equal(write(fd, raw, 22), 22);
    close(fd);
    EXPECT_FATAL(secap_corpus_load_json(good, rawp, SECAP_TOK_SPACE), ":2:1: NUL byte in the file");
    unlink(rawp);
    unlink(good);
}

/* ------------------------------------------------------- bounded METEOR */

/* A caption of n characters drawn from the first `vocab` of these, with
 * runs of repeats (what an undertrained captioner writes). */
static void random_caption(char *out, int n, int vocab, secap_rng *r)
{
    static const char *const CH[8] = {"好", "的", "很", "开", "心", "说", "话", "他"};
    out[0] = 0;
    for (int k = 0; k < n;) {
        const char *c = CH[secap_rng_below(r, (uint64_t)vocab)];
        int run = secap_rng_uniform(r) < 0.3 ? 1 + (int)secap_rng_below(r, 6) : 1;
        for (int t = 0; t < run && k < n; t++, k++) strcat(out, c);
    }
}

/* The bounded search gives exactly the reference alignment's scores on
 * random repetitive corpora (small vocabularies: many candidates per word,
 * beam truncation, ties), and on a repetitive caption long enough that the
 * beam drops most children. */
static void test_meteor_matches_reference(void **st)
{
    (void)st;
    secap_rng r;
    secap_rng_seed(&r, 7);
    char hyp[8192], refbuf[3][4096], id[32];
    int worst_items = 0;
    for (int round = 0; round < 3; round++) {
        secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
        for (int i = 0; i < 400; i++) {
            int vocab = 2 + (int)secap_rng_below(&r, 6);
            random_caption(hyp, (int)secap_rng_below(&r, round % 3 == 2 ? 300 : 70), vocab, &r);
            int nr = 1 + (int)secap_rng_below(&r, 3);
            const char *refs[3];
            for (int k = 0; k < nr; k++) {
                random_caption(refbuf[k], 1 + (int)secap_rng_below(&r, 40), vocab, &r);
                refs[k] = refbuf[k];
            }
            snprintf(id, sizeof id, "r%d_%d", round, i);
            secap_corpus_add(c, id, hyp, refs, nr);
        }
        int n = secap_corpus_size(c);
        secap_scores *got = calloc((size_t)n, sizeof *got), *want = calloc((size_t)n, sizeof *want);
        double gc, wc;
        secap_meteor(c, &gc, got);
        secap_meteor_reference(c, &wc, want);
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (got[i].meteor != want[i].meteor && bad++ < 5)
                fprintf(stderr, "  item %s: METEOR %.17g, reference %.17g\n", secap_corpus_id(c, i), got[i].meteor,
                        want[i].meteor);
        if (gc != wc) { fprintf(stderr, "  corpus: %.17g vs %.17g\n", gc, wc); bad++; }
        worst_items += bad;
        free(got);
        free(want);
        secap_corpus_free(c);
    }
    /* one long degenerate hypothesis the reference still finishes: 600 x "好的" */
    char *longh = malloc(600 * 6 + 1);
    longh[0] = 0;
    for (int k = 0; k < 600; k++) strcat(longh, "好的");
    const char *refs[2] = { "好的好的我很好的", "他说好的的好" };
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    secap_corpus_add(c, "deg", longh, refs, 2);
    secap_scores g, w;
    double gc, wc;
    secap_meteor(c, &gc, &g);
    secap_meteor_reference(c, &wc, &w);
    print_message("  600 x 2 chars: METEOR %.12g (reference %.12g)\n", g.meteor, w.meteor);
    if (g.meteor != w.meteor || gc != wc) worst_items++;
    secap_corpus_free(c);
    free(longh);
    assert_int_equal(worst_items, 0);
}

static char *repeat(const char *unit, int times)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)times + 1);
    for (int k = 0; k < times; k++) memcpy(s + u * (size_t)k, unit, u);
    s[u * (size_t)times] = 0;
    return s;
}

/* Runs bin/secap-score (next to this test's directory) on refs/hyps JSON
 * text with --metrics METEOR in a child process (exec: OpenMP does not
 * survive a bare fork); returns its METEOR score, peak RSS (MB), seconds. */
static char g_score_bin[1200];
static double run_score(const char *refs_json, const char *hyps_json, double *mb, double *seconds)
{
    const char *rp = tmp_file(0, refs_json), *hp = tmp_file(1, hyps_json);
    char outp[64];
    snprintf(outp, sizeof outp, "/tmp/secap_score_out_XXXXXX");
    int fd = mkstemp(outp);
    assert_true(fd >= 0);
    double t0 = secap_now();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        execl(g_score_bin, g_score_bin, "--refs", rp, "--hyps", hp, "--metrics", "METEOR", (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    assert_true(wait4(pid, &status, 0, &ru) == pid);
    *seconds = secap_now() - t0;
    *mb = ru.ru_maxrss / 1024.0;
    close(fd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail_msg("%s exited with status %d", g_score_bin, status);
    cJSON *out = load_json(outp);
    double m = cJSON_GetObjectItem(out, "METEOR")->valuedouble;
    cJSON_Delete(out);
    unlink(rp); unlink(hp); unlink(outp);
    return m;
}

/* Degenerate output, as an undertrained captioner writes it, scored in
 * bounded time and memory: 15,000 repetitions of a two-character word
 * against ordinary references (the unbounded search: 87 s and 18 GB; here
 * exact), and both sides long and repetitive, past the search budget
 * (aligned greedily: 3,000 reference words match the first 3,000 hypothesis
 * words in one chunk, so the score follows from the formula). */
static void test_meteor_degenerate_bounded(void **st)
{
    (void)st;
    char *h = repeat("好的", 15000);
    size_t n = strlen(h) + 64;
    char *hyps = malloc(n);
    snprintf(hyps, n, "{\"x\": \"%s\"}", h);
    double mb, sec;
    double m = run_score("{\"x\": [\"她说话的语速很快，声音很好听的\", \"好的，他的心情很好\", \"语气平和的男声\"]}",
                         hyps, &mb, &sec);
    print_message("  15,000 x \"好的\" vs 3 refs: METEOR %.6g, %.2f s, peak RSS %.0f MB\n", m, sec, mb);
    assert_true(m > 0 && m < 0.2);
    assert_true(mb < 300);
    assert_true(sec < 30);      /* about 0.2 s alone; generous for a shared, sanitised run */
    free(h); free(hyps);

    h = repeat("好", 30000);
    char *r = repeat("好", 3000);
    n = strlen(h) + 64;
    hyps = malloc(n);
    snprintf(hyps, n, "{\"x\": \"%s\"}", h);
    size_t rn = strlen(r) + 64;
    char *refs = malloc(rn);
    snprintf(refs, rn, "{\"x\": \"%s\"}", r);
    m = run_score(refs, hyps, &mb, &sec);
    double P = 3000.0 / 30000, R = 1, fmean = 1 / (0.15 / P + 0.85 / R);
    double want = fmean * (1 - 0.6 * pow(1.0 / 3000, 0.2));
    print_message("  30,000 x \"好\" vs 3,000 x \"好\" (greedy): METEOR %.12g (formula %.12g), %.2f s, peak RSS %.0f MB\n",
                  m, want, sec, mb);
    assert_true(fabs(m - want) < 1e-12);
    assert_true(mb < 300);
    assert_true(sec < 60);
    free(h); free(r); free(hyps); free(refs);
}

static void test_invalid_utf8(void **st)
{
    (void)st;
    const char *refs = tmp_file(0, "{\"u1\": \"ok\", \"u2\": \"ok\"}");
    const char *hyps = tmp_file(1, "{\"u1\": \"fine\", \"u2\": \"bad \xff\xfe text\"}");
    EXPECT_FATAL(secap_corpus_load_json(refs, hyps, SECAP_TOK_ZH_CHAR), "hypothesis of id \"u2\": invalid UTF-8 at byte 4");
    EXPECT_FATAL(secap_corpus_load_json(refs, hyps, SECAP_TOK_SPACE), "id \"u2\": invalid UTF-8");
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    const char *bad_ref[1] = {"\xed\xa0\x80"};  /* an encoded surrogate */
    EXPECT_FATAL(secap_corpus_add(c, "r9", "好", bad_ref, 1), "reference 1 of id \"r9\": invalid UTF-8");
    secap_corpus_free(c);
    unlink(refs); unlink(hyps);
}

static void test_corpus_add_errors(void **st)
{
    (void)st;
    secap_corpus *c = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    const char *refs[1] = {"好"};
    EXPECT_FATAL(secap_corpus_add(c, "x", "好", refs, 0), "id \"x\": no references");
    secap_corpus_add(c, "y", "好", refs, 1);
    EXPECT_FATAL(secap_corpus_add(c, "y", "好", refs, 1), "id \"y\" appears twice");
    secap_corpus_free(c);
    secap_corpus *e = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    secap_scores s;
    EXPECT_FATAL(secap_score(e, SECAP_METRIC_ALL, &s, NULL), "corpus is empty");
    secap_corpus_free(e);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_score_bin, sizeof g_score_bin, "%s/../secap-score", dirname(self));   /* <bin>/tests/.. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_zh_multi),
        cmocka_unit_test(test_fixture_zh_single),
        cmocka_unit_test(test_fixture_zh_varref),
        cmocka_unit_test(test_fixture_en_multi),
        cmocka_unit_test(test_fixture_en_space),
        cmocka_unit_test(test_fixture_edge),
        cmocka_unit_test(test_fixture_meteor_beam),
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_meteor_matches_reference),
        cmocka_unit_test(test_meteor_degenerate_bounded),
        cmocka_unit_test(test_json_lint_messages),
        cmocka_unit_test(test_identical_is_perfect),
        cmocka_unit_test(test_empty_hypothesis_scores_zero),
        cmocka_unit_test(test_metric_mask),
        cmocka_unit_test(test_json_missing_and_ignored_ids),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_corpus_add_errors),
    };
    return cmocka_run_group_tests_name("score", tests, NULL, NULL);
}
