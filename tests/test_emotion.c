/* tests/test_emotion.c - emotion keyword accuracy: the built-in table on
 * captions made by the demo corpus' own generator (tests/ref_emotion.py),
 * none / ambiguous counting, keyword files and their errors. */
#include "testutil.h"

#include <cJSON.h>

#include "secap/emotion.h"

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open the reference fixture (hint: run tests/ref_emotion.py build/ref)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) fail_msg("%s: not JSON", path);
    return j;
}

/* Every generated caption names its own class; its prosody cues alone name none. */
static void test_demo_captions(void **st)
{
    (void)st;
    cJSON *j = load_json(tu_ref_path("emotion_captions.json"));
    secap_emokw *k = secap_emokw_default();
    assert_int_equal(secap_emokw_nclass(k), 7);
    const cJSON *caps = cJSON_GetObjectItem(j, "captions"), *cues = cJSON_GetObjectItem(j, "cues");
    int n = cJSON_GetArraySize(caps);
    assert_true(n >= 700);
    const char **hyps = malloc((size_t)n * sizeof *hyps);
    int *label = malloc((size_t)n * sizeof *label), *match = malloc((size_t)n * sizeof *match);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(caps, i);
        hyps[i] = cJSON_GetArrayItem(e, 0)->valuestring;
        label[i] = secap_emokw_find(k, cJSON_GetArrayItem(e, 1)->valuestring);
        assert_true(label[i] >= 0);
    }
    secap_emo_acc acc;
    secap_emokw_accuracy(k, n, hyps, label, match, &acc);
    for (int i = 0; i < n; i++)
        if (match[i] != label[i]) fail_msg("caption \"%s\" (class %s) matched %d", hyps[i], secap_emokw_class(k, label[i]), match[i]);
    assert_int_equal(acc.correct, n);
    assert_int_equal(acc.none, 0);
    assert_int_equal(acc.ambiguous, 0);
    assert_true(acc.accuracy == 1.0);
    int none = 0;
    for (int i = 0; i < cJSON_GetArraySize(cues); i++) {
        const char *c = cJSON_GetArrayItem(cues, i)->valuestring;
        int m = secap_emokw_match(k, c);
        if (m != SECAP_EMO_NONE) fail_msg("cue-only caption \"%s\" matched class %d", c, m);
        none++;
    }
    printf("  %d generated captions all name their class; %d cue-only captions name none\n", n, none);
    free(hyps); free(label); free(match);
    secap_emokw_free(k);
    cJSON_Delete(j);
}

static void test_counts(void **st)
{
    (void)st;
    secap_emokw *k = secap_emokw_default();
    int happy = secap_emokw_find(k, "开心"), sad = secap_emokw_find(k, "悲伤");
    assert_true(happy >= 0 && sad >= 0);
    assert_int_equal(secap_emokw_find(k, "伤心"), -1);
    const char *hyps[5] = {"她听起来很开心。", "语气哀伤", "语速很快，声音很大", "开心又难过", "情绪激动，非常兴奋"};
    const int label[5] = {happy, happy, happy, sad, secap_emokw_find(k, "激动")};
    int match[5];
    secap_emo_acc acc;
    secap_emokw_accuracy(k, 5, hyps, label, match, &acc);
    assert_int_equal(match[0], happy);
    assert_int_equal(match[1], sad);
    assert_int_equal(match[2], SECAP_EMO_NONE);
    assert_int_equal(match[3], SECAP_EMO_AMBIGUOUS);
    assert_int_equal(match[4], label[4]);   /* two words of the same class */
    assert_int_equal(acc.n, 5);
    assert_int_equal(acc.correct, 2);
    assert_int_equal(acc.none, 1);
    assert_int_equal(acc.ambiguous, 1);
    assert_true(fabs(acc.accuracy - 0.4) < 1e-15);
    int bad[1] = {99};
    EXPECT_FATAL(secap_emokw_accuracy(k, 1, hyps, bad, NULL, &acc), "label index 99");
    secap_emokw_free(k);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_keyword_file(void **st)
{
    (void)st;
    const char *p = tu_tmp("kw.txt");
    write_file(p, "# SECap's public test set labels\n伤心 伤心 悲痛 难过\n\n开心\t欣喜 愉悦  # a comment\n");
    secap_emokw *k = secap_emokw_load(p);
    assert_int_equal(secap_emokw_nclass(k), 2);
    assert_string_equal(secap_emokw_class(k, 0), "伤心");
    assert_string_equal(secap_emokw_class(k, 1), "开心");
    assert_int_equal(secap_emokw_match(k, "心里悲伤痛苦"), SECAP_EMO_NONE);   /* 悲伤 is not listed */
    assert_int_equal(secap_emokw_match(k, "悲痛到无法自拔"), 0);
    assert_int_equal(secap_emokw_match(k, "语气十分欣喜"), 1);
    assert_int_equal(secap_emokw_match(k, "开心"), SECAP_EMO_NONE);          /* the name is not implied */
    secap_emokw_free(k);

    write_file(p, "a x\nb y\na z\n");
    EXPECT_FATAL(secap_emokw_load(p), "kw.txt:3: class \"a\" is listed twice");
    write_file(p, "a x\nb\n");
    EXPECT_FATAL(secap_emokw_load(p), "kw.txt:2: class \"b\" has no keywords");
    write_file(p, "# nothing\n\n");
    EXPECT_FATAL(secap_emokw_load(p), "no classes");
    EXPECT_FATAL(secap_emokw_load(tu_tmp("missing.txt")), "missing.txt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_captions),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_keyword_file),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
