/* Caption metrics against fixtures made with the COCO caption toolkit
 * (tests/metrics/make_fixtures.py): every corpus and per-item score within
 * 1e-6 (METEOR 1e-4), plus the tokeniser and the input errors. */
#include "testutil.h"

#include <cJSON.h>
#include <unistd.h>

#include "secap/score.h"

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
    unlink(good);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_zh_multi),
        cmocka_unit_test(test_fixture_zh_single),
        cmocka_unit_test(test_fixture_zh_varref),
        cmocka_unit_test(test_fixture_en_multi),
        cmocka_unit_test(test_fixture_en_space),
        cmocka_unit_test(test_fixture_edge),
        cmocka_unit_test(test_fixture_meteor_beam),
        cmocka_unit_test(test_tokenize),
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
