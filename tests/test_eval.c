/* bin/secap-caption and bin/secap-eval on a tiny model that bin/secap-train
 * trains for a few steps on a generated 12-clip dataset (train.list 8 clips,
 * test.list 4; the small HuBERT of tests/ref_hubert.py, the SentencePiece
 * model of tests/ref_spm.py, tiny random Q-Former / LLaMA / LoRA).
 *   - secap-caption prints <file>\t<caption> per file in order, --json one
 *     object; both equal the library's captions (secap/infer.h) for the same
 *     files; --decode overrides reach the decoder (max_new_tokens=1);
 *   - secap-eval writes fid2captions.json (the test ids, the library's
 *     captions on the cached features), refs.json (every caption of each
 *     clip), scores.json, and the baselines as defined in eval/secap-eval.c:
 *     the most frequent train caption (constructed: one caption appears 3
 *     times among the train clips) and the first caption of train clip
 *     secap_rng_below(stream 1234/0) per test clip; the frequent baseline's
 *     emotion accuracy is the share of test clips of the class it names;
 *   - secap-eval --draws 8 --keep 5 (SECap's protocol): fid2captions_draw1..5
 *     and draws.json exist; per clip the similarity matrix equals the
 *     character F1 recomputed here from the 8 draws, kept equals
 *     secap_select_consensus on it, set k holds draw kept[k-1]; a constructed
 *     matrix with a known answer; the 5 per-set scores equal bin/secap-score
 *     on each set file, and mean / sample std in scores.json equal the values
 *     recomputed from them; the same seed gives the same files, another seed
 *     other draws; --keep above --draws fails;
 *   - errors: missing checkpoint, a directory without one, a file that is
 *     not a checkpoint, a run without a caption stage, a checkpoint saved
 *     before any caption step, unreadable audio, an unknown decode key, an
 *     unknown split: exit 1 and a message naming it. */
#include "testutil.h"
#include "tinyds.h"

#include <cJSON.h>
#include <libgen.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "secap/infer.h"
#include "secap/rng.h"
#include "secap/similarity.h"

static char g_bin[1024];
static char g_out[1 << 16];
static char g_hubert[4096];
static char g_spm[4096];
static char g_simbert[4096];
static char g_simvocab[4096];

static int run(const char *prog, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && SECAP_THREADS=1 OMP_WAIT_POLICY=passive '%s/%s' %s 2>&1", tu_dir, g_bin,
             prog, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, prog, args, substr)                                                          \
    do {                                                                                                \
        int rc_ = run(prog, args);                                                                      \
        if (rc_ != (status)) fail_msg("%s %s: exit %d, expected %d\n%s", prog, args, rc_, status, g_out); \
        if (!strstr(g_out, substr)) fail_msg("%s %s: output lacks \"%s\":\n%s", prog, args, substr, g_out); \
    } while (0)

/* classes of the built-in keyword table (secap/emotion.h) */
#define FREQUENT "声音平稳清晰"   /* the second caption of train clips 1, 4 and 6: 3 times */

/* clip i: train for i < 8, test for i >= 8; captions[i][0..1] */
static void caption_of(int i, int k, char *buf, size_t n)
{
    if (k == 1 && (i == 1 || i == 4 || i == 6)) snprintf(buf, n, FREQUENT);
    else if (k == 0) snprintf(buf, n, "说话人语气%s，第%d句", TDS_EMO[i % 4], i);
    else snprintf(buf, n, "她听起来很%s%d", TDS_EMO[i % 4], i);
}

static int setup(void **st)
{
    if (tds_bin_dir(g_bin, sizeof g_bin)) return -1;
    if (!realpath(tu_ref_path("hubert_base_small.h5"), g_hubert) || !realpath(tu_ref_path("spm_llama_s.model"), g_spm)) {
        fprintf(stderr, "test_eval: %s or spm_llama_s.model is missing (hint: tests/run.sh makes them with "
                "tests/ref_hubert.py and tests/ref_spm.py)\n", tu_ref_path("hubert_base_small.h5"));
        return -1;
    }
    if (!realpath(tu_ref_path("sim_bert.h5"), g_simbert) || !realpath(tu_ref_path("sim_vocab.txt"), g_simvocab)) {
        fprintf(stderr, "test_eval: %s or sim_vocab.txt is missing (hint: tests/run.sh makes them with "
                "tests/ref_similarity.py)\n", tu_ref_path("sim_bert.h5"));
        return -1;
    }
    if (tu_tmpdir_setup(st)) return -1;
    tds_write(12, caption_of, 8);   /* train: clips 0-7, test: 8-11 */
    char args[8192];
    if (run("secap-vocab", "--data ds --out vocab.txt")) { fprintf(stderr, "%s", g_out); return -1; }
    snprintf(args, sizeof args, "--threads 1 --hubert '%s' --data ds --out feats.h5", g_hubert);
    if (run("secap-extract", args)) { fprintf(stderr, "%s", g_out); return -1; }
    char ini[16384];
    snprintf(ini, sizeof ini,
             "[data]\ndir = ds\nbatch_size = 4\nworkers = 1\nprefetch = 2\n"
             "[hubert]\nweights = %s\ncache = feats.h5\n"
             "[qformer]\nvocab = vocab.txt\nhidden_size = 32\nnum_hidden_layers = 2\nnum_attention_heads = 2\n"
             "intermediate_size = 64\nnum_query_tokens = 4\nencoder_width = 32\nembed_dim = 16\n"
             "max_position_embeddings = 64\n"
             "[llama]\ntokenizer = %s\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n"
             "num_attention_heads = 2\nmax_position_embeddings = 128\nbf16 = false\n"
             "[lora]\nr = 4\n[lm]\nblock_size = 16\nbatch_size = 4\n[loss]\nmi_hidden = 16\n"
             "[optim]\nlr = 1e-3\nwarmup = 2\n"
             "[decode]\nmax_new_tokens = 6\nnum_beams = 1\n"
             "[train]\nout_dir = run\nmax_steps = 3\nstages = lm,qformer,caption\nsave_every = 0\n", g_hubert, g_spm);
    tu_write_text("tiny.ini", ini);
    if (run("secap-train", "--config tiny.ini")) { fprintf(stderr, "secap-train:\n%s", g_out); return -1; }
    return 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static cJSON *load_json(const char *path)
{
    char *s = slurp(path);
    cJSON *o = cJSON_Parse(s);
    free(s);
    if (!o) fail_msg("%s: not JSON", path);
    return o;
}

/* Captions of the library path; caps[i] malloc'd. */
static void library_captions(int use_cache, int n, const char *const *ids, const char *const *files, char **caps,
                             const char *key, const char *value)
{
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tu_dir), 0);
    secap_captioner *cp = secap_captioner_open("run", use_cache, 1);
    if (key) assert_int_equal(secap_captioner_set(cp, key, value), 0);
    secap_captioner_run(cp, n, ids, files, 0, caps);
    secap_captioner_free(cp);
    assert_int_equal(chdir(cwd), 0);
}

static void test_caption(void **st)
{
    (void)st;
    const char *files[3] = { "ds/wav/u00.wav", "ds/wav/u05.wav", "ds/wav/u10.wav" };
    char *lib[3];
    /* min_new_tokens: the barely trained model would mostly end at once */
    library_captions(0, 3, NULL, files, lib, "min_new_tokens", "4");
    for (int i = 0; i < 3; i++)
        if (!lib[i][0]) fail_msg("the library's caption of %s is empty despite min_new_tokens 4", files[i]);
    EXPECT_RUN(0, "secap-caption", "--checkpoint run --decode.min_new_tokens=4 ds/wav/u00.wav ds/wav/u05.wav "
               "ds/wav/u10.wav", "u00.wav\t");
    print_message("%s", g_out);
    char *save = NULL, *line = strtok_r(g_out, "\n", &save);
    for (int i = 0; i < 3; i++, line = strtok_r(NULL, "\n", &save)) {
        assert_non_null(line);
        char want[1024];
        snprintf(want, sizeof want, "%s\t%s", files[i], lib[i]);
        if (strcmp(line, want)) fail_msg("line %d: \"%s\", library: \"%s\"", i, line, want);
    }
    assert_null(line);
    EXPECT_RUN(0, "secap-caption", "--json --decode.min_new_tokens=4 --checkpoint run ds/wav/u00.wav ds/wav/u05.wav ds/wav/u10.wav", "{");
    cJSON *o = cJSON_Parse(g_out);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 3);
    for (int i = 0; i < 3; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(o, files[i]);
        assert_true(cJSON_IsString(v));
        assert_string_equal(v->valuestring, lib[i]);
        free(lib[i]);
    }
    cJSON_Delete(o);
    /* an override reaches the decoder: one new token at most */
    library_captions(0, 1, NULL, files, lib, "decode.max_new_tokens", "1");
    EXPECT_RUN(0, "secap-caption", "--checkpoint run --decode.max_new_tokens=1 ds/wav/u00.wav", "u00.wav\t");
    char want[1024];
    snprintf(want, sizeof want, "ds/wav/u00.wav\t%s\n", lib[0]);
    assert_string_equal(g_out, want);
    free(lib[0]);
}

static void test_eval(void **st)
{
    (void)st;
    EXPECT_RUN(0, "secap-eval", "--checkpoint run --split test --out ev --decode.min_new_tokens=4",
               "baseline: most frequent train caption");
    assert_non_null(strstr(g_out, "clips/s"));
    assert_non_null(strstr(g_out, "CIDEr"));
    print_message("%s", g_out);
    const char *ids[4] = { "u08", "u09", "u10", "u11" };
    const char *files[4] = { "ds/wav/u08.wav", "ds/wav/u09.wav", "ds/wav/u10.wav", "ds/wav/u11.wav" };
    char *lib[4];
    library_captions(1, 4, ids, files, lib, "decode.min_new_tokens", "4");
    cJSON *hyp = load_json(tu_tmp("ev/fid2captions.json")), *refs = load_json(tu_tmp("ev/refs.json"));
    cJSON *fr = load_json(tu_tmp("ev/baseline_frequent.json")), *rn = load_json(tu_tmp("ev/baseline_random.json"));
    cJSON *sc = load_json(tu_tmp("ev/scores.json"));
    assert_int_equal(cJSON_GetArraySize(hyp), 4);
    assert_int_equal(cJSON_GetArraySize(refs), 4);
    secap_rng r;
    secap_rng_seed_stream(&r, 1234, 0);
    for (int i = 0; i < 4; i++) {
        cJSON *h = cJSON_GetObjectItemCaseSensitive(hyp, ids[i]);
        assert_true(cJSON_IsString(h));
        assert_string_equal(h->valuestring, lib[i]);
        if (!lib[i][0]) fail_msg("the caption of %s is empty despite min_new_tokens 4", ids[i]);
        free(lib[i]);
        cJSON *rf = cJSON_GetObjectItemCaseSensitive(refs, ids[i]);
        assert_int_equal(cJSON_GetArraySize(rf), 2);
        for (int k = 0; k < 2; k++) {
            char c[128];
            caption_of(8 + i, k, c, sizeof c);
            assert_string_equal(cJSON_GetArrayItem(rf, k)->valuestring, c);
        }
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(fr, ids[i])->valuestring, FREQUENT);
        char c[128];
        caption_of((int)secap_rng_below(&r, 8), 0, c, sizeof c);   /* train clips u00..u07 in order */
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(rn, ids[i])->valuestring, c);
    }
    /* FREQUENT names 平静 (平稳): one of the 4 test clips (u11) has that label */
    cJSON *b = cJSON_GetObjectItemCaseSensitive(sc, "baseline_frequent");
    assert_non_null(b);
    assert_true(fabs(cJSON_GetObjectItemCaseSensitive(b, "Emotion_accuracy")->valuedouble - 0.25) < 1e-12);
    /* no caption of the frequent baseline shares a 4-gram with the references */
    assert_true(cJSON_GetObjectItemCaseSensitive(b, "Bleu_4")->valuedouble < 1e-3);
    /* the random baseline's row is what bin/secap-score says of its file */
    EXPECT_RUN(0, "secap-score", "--refs ev/refs.json --hyps ev/baseline_random.json", "CIDEr");
    cJSON *ss = cJSON_Parse(g_out), *br = cJSON_GetObjectItemCaseSensitive(sc, "baseline_random");
    assert_non_null(ss);
    assert_non_null(br);
    const char *mn[3] = { "Bleu_1", "Bleu_4", "CIDEr" };
    for (int k = 0; k < 3; k++) {
        double a = cJSON_GetObjectItemCaseSensitive(ss, mn[k])->valuedouble;
        double e = cJSON_GetObjectItemCaseSensitive(br, mn[k])->valuedouble;
        if (fabs(a - e) > 1e-9 * (1 + fabs(a))) fail_msg("random baseline %s: secap-eval %.12g, secap-score %.12g", mn[k], e, a);
    }
    assert_true(cJSON_GetObjectItemCaseSensitive(br, "Bleu_1")->valuedouble > 0);
    cJSON_Delete(ss);
    cJSON *m = cJSON_GetObjectItemCaseSensitive(sc, "model");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(m, "CIDEr"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(sc, "clips")->valueint, 4);
    cJSON_Delete(hyp); cJSON_Delete(refs); cJSON_Delete(fr); cJSON_Delete(rn); cJSON_Delete(sc);
    /* --limit */
    EXPECT_RUN(0, "secap-eval", "--checkpoint run --limit 2 --out ev2", "2 clips");
    hyp = load_json(tu_tmp("ev2/fid2captions.json"));
    assert_int_equal(cJSON_GetArraySize(hyp), 2);
    cJSON_Delete(hyp);
}

/* sorted code points of UTF-8 text (valid text only) */
static int cmp_cp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double charf1_ref(const char *a, const char *b)
{
    uint32_t ca[512], cb[512];
    int na = 0, nb = 0;
    for (int t = 0; t < 2; t++) {
        const unsigned char *p = (const unsigned char *)(t ? b : a);
        uint32_t *c = t ? cb : ca;
        int *nn = t ? &nb : &na;
        while (*p) {
            int m = *p < 0x80 ? 1 : *p >= 0xF0 ? 4 : *p >= 0xE0 ? 3 : 2;
            uint32_t v = m == 1 ? *p : *p & (0x7Fu >> m);
            for (int j = 1; j < m; j++) v = v << 6 | (p[j] & 0x3Fu);
            assert_true(*nn < 512);
            c[(*nn)++] = v;
            p += m;
        }
        qsort(c, (size_t)*nn, sizeof *c, cmp_cp);
    }
    if (!na && !nb) return 1;
    /* |A n B| by counting, not merging */
    int common = 0;
    for (int i = 0; i < na;) {
        int j = i;
        while (j < na && ca[j] == ca[i]) j++;
        int inb = 0;
        for (int k = 0; k < nb; k++) inb += cb[k] == ca[i];
        common += j - i < inb ? j - i : inb;
        i = j;
    }
    return 2.0 * common / (na + nb);
}

static void test_draws(void **st)
{
    (void)st;
    /* a constructed case: draws 0,1,2 agree, 3 is an outlier, 4 half-way */
    {
        const float S[25] = { 1, .9f, .8f, .1f, .5f, .9f, 1, .85f, .2f, .5f, .8f, .85f, 1, .1f, .5f,
                              .1f, .2f, .1f, 1, .3f, .5f, .5f, .5f, .3f, 1 };
        int idx[3];
        secap_select_consensus(S, 5, 3, idx);
        /* row means: 0: 3.3/5, 1: 3.45/5, 2: 3.25/5, 3: 1.7/5, 4: 2.8/5 */
        assert_int_equal(idx[0], 1);
        assert_int_equal(idx[1], 0);
        assert_int_equal(idx[2], 2);
    }
    EXPECT_RUN(0, "secap-eval", "--checkpoint run --split test --out dr1 --draws 8 --keep 5 --decode.min_new_tokens=2 "
               "--decode.seed=7", "similarity: character F1");
    const char *tab = strstr(g_out, "\n--draws 8 --keep 5 (similarity: character F1; std: sample");
    if (!tab) fail_msg("secap-eval --draws: no result-set table:\n%s", g_out);
    fprintf(stderr, "%s", tab);
    assert_non_null(strstr(g_out, "result set 5"));
    assert_non_null(strstr(g_out, "std"));
    const char *ids[4] = { "u08", "u09", "u10", "u11" };
    cJSON *dj = load_json(tu_tmp("dr1/draws.json")), *set[5];
    for (int k = 0; k < 5; k++) set[k] = load_json(tu_tmp("dr1/fid2captions_draw%d.json", k + 1));
    cJSON *f1 = load_json(tu_tmp("dr1/fid2captions.json"));
    int distinct = 0;
    for (int i = 0; i < 4; i++) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(dj, ids[i]);
        assert_non_null(c);
        cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "draws"), *S = cJSON_GetObjectItemCaseSensitive(c, "sim"),
              *kj = cJSON_GetObjectItemCaseSensitive(c, "kept");
        assert_int_equal(cJSON_GetArraySize(t), 8);
        assert_int_equal(cJSON_GetArraySize(kj), 5);
        float fs[64];
        for (int a = 0; a < 8; a++) {
            const char *ta = cJSON_GetArrayItem(t, a)->valuestring;
            if (strcmp(ta, cJSON_GetArrayItem(t, 0)->valuestring)) distinct = 1;
            for (int b = 0; b < 8; b++) {
                double got = cJSON_GetArrayItem(cJSON_GetArrayItem(S, a), b)->valuedouble;
                double want = charf1_ref(ta, cJSON_GetArrayItem(t, b)->valuestring);
                if (fabs(got - want) > 1e-12)
                    fail_msg("%s: sim[%d, %d] = %.15g, char F1 recomputed %.15g", ids[i], a, b, got, want);
                fs[a * 8 + b] = (float)got;
            }
        }
        int idx[5];
        secap_select_consensus(fs, 8, 5, idx);
        for (int k = 0; k < 5; k++) {
            int kk = cJSON_GetArrayItem(kj, k)->valueint;
            if (kk != idx[k]) fail_msg("%s: kept[%d] = %d, secap_select_consensus says %d", ids[i], k, kk, idx[k]);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(set[k], ids[i])->valuestring,
                                cJSON_GetArrayItem(t, kk)->valuestring);
        }
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(f1, ids[i])->valuestring,
                            cJSON_GetObjectItemCaseSensitive(set[0], ids[i])->valuestring);
    }
    if (!distinct) fail_msg("draws.json: every clip's 8 draws are identical; sampling did not reach the decoder");
    /* per-set scores = secap-score of the set file; mean and sample std recomputed */
    cJSON *sc = load_json(tu_tmp("dr1/scores.json"));
    cJSON *d = cJSON_GetObjectItemCaseSensitive(sc, "draws");
    assert_non_null(d);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "similarity")->valuestring, "char_f1");
    cJSON *sets = cJSON_GetObjectItemCaseSensitive(d, "sets"), *mean = cJSON_GetObjectItemCaseSensitive(d, "mean"),
          *sd = cJSON_GetObjectItemCaseSensitive(d, "std_dev");
    assert_int_equal(cJSON_GetArraySize(sets), 5);
    const char *mn[9] = { "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "Emotion_accuracy" };
    double var_seen = 0;
    for (int m = 0; m < 8; m++) {
        double v[5], s = 0, q = 0;
        for (int k = 0; k < 5; k++) {
            cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sets, k), mn[m]);
            if (!x) fail_msg("scores.json: draws.sets[%d] lacks %s", k, mn[m]);
            v[k] = x->valuedouble;
            s += v[k];
        }
        double mu = s / 5;
        for (int k = 0; k < 5; k++) q += (v[k] - mu) * (v[k] - mu);
        double sdev = sqrt(q / 4);
        var_seen += sdev;
        double gm = cJSON_GetObjectItemCaseSensitive(mean, mn[m])->valuedouble;
        double gs = cJSON_GetObjectItemCaseSensitive(sd, mn[m])->valuedouble;
        if (fabs(gm - mu) > 1e-12 * (1 + fabs(mu)) || fabs(gs - sdev) > 1e-12 * (1 + sdev))
            fail_msg("%s: scores.json mean %.15g std %.15g, recomputed %.15g %.15g", mn[m], gm, gs, mu, sdev);
    }
    print_message("sum of the std of the 8 metrics: %g\n", var_seen);
    for (int k = 0; k < 5; k++) {
        char a[256];
        snprintf(a, sizeof a, "--refs dr1/refs.json --hyps dr1/fid2captions_draw%d.json", k + 1);
        EXPECT_RUN(0, "secap-score", a, "CIDEr");
        cJSON *ss = cJSON_Parse(g_out);
        assert_non_null(ss);
        for (int m = 0; m < 7; m++) {
            double x = cJSON_GetObjectItemCaseSensitive(ss, mn[m])->valuedouble;
            double e = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sets, k), mn[m])->valuedouble;
            if (fabs(x - e) > 1e-9 * (1 + fabs(x))) fail_msg("set %d %s: secap-eval %.12g, secap-score %.12g", k + 1, mn[m], e, x);
        }
        cJSON_Delete(ss);
    }
    /* same seed, same files; another seed, other draws */
    EXPECT_RUN(0, "secap-eval", "--checkpoint run --split test --out dr2 --draws 8 --keep 5 --decode.min_new_tokens=2 "
               "--decode.seed=7", "result set 5");
    char *a = slurp(tu_tmp("dr1/draws.json")), *b = slurp(tu_tmp("dr2/draws.json"));
    assert_string_equal(a, b);
    free(b);
    for (int k = 0; k < 5; k++) {
        char *x = slurp(tu_tmp("dr1/fid2captions_draw%d.json", k + 1)), *y = slurp(tu_tmp("dr2/fid2captions_draw%d.json", k + 1));
        assert_string_equal(x, y);
        free(x); free(y);
    }
    EXPECT_RUN(0, "secap-eval", "--checkpoint run --split test --out dr3 --draws 8 --keep 5 --decode.min_new_tokens=2 "
               "--decode.seed=8", "result set 5");
    b = slurp(tu_tmp("dr3/draws.json"));
    if (!strcmp(a, b)) fail_msg("draws.json: seed 7 and seed 8 gave the same draws");
    free(a); free(b);
    EXPECT_RUN(1, "secap-eval", "--checkpoint run --draws 3 --keep 5", "--keep 5 is more than --draws 3");
    EXPECT_RUN(1, "secap-eval", "--checkpoint run --keep 5", "--keep 5 needs --draws");
    for (int k = 0; k < 5; k++) cJSON_Delete(set[k]);
    cJSON_Delete(dj); cJSON_Delete(f1); cJSON_Delete(sc);
}

/* --draws with --similarity-model and SECap's beam sampling (README's
 * command): the matrix is the library's BERT cosine
 * of the draws, the selection secap_select_consensus on it, and every set
 * gets the Similarity metric. */
static void test_draws_bert(void **st)
{
    (void)st;
    char args[16384];
    snprintf(args, sizeof args, "--checkpoint run --split test --out drb --draws 4 --keep 3 --decode.min_new_tokens=2 "
             "--decode.do_sample=true --decode.num_beams=5 --decode.top_k=10 --decode.top_p=0.95 "
             "--decode.repetition_penalty=10 --decode.no_repeat_ngram_size=2 --decode.early_stopping=true "
             "--similarity-model '%s' --similarity-vocab '%s'", g_simbert, g_simvocab);
    EXPECT_RUN(0, "secap-eval", args, "similarity: BERT sentence cosine");
    assert_non_null(strstr(g_out, "result set 3"));
    assert_null(strstr(g_out, "result set 4"));
    cJSON *dj = load_json(tu_tmp("drb/draws.json")), *sc = load_json(tu_tmp("drb/scores.json"));
    cJSON *d = cJSON_GetObjectItemCaseSensitive(sc, "draws");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(d, "similarity")->valuestring, "bert_cosine");
    cJSON *sets = cJSON_GetObjectItemCaseSensitive(d, "sets");
    assert_int_equal(cJSON_GetArraySize(sets), 3);
    for (int k = 0; k < 3; k++)
        if (!cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sets, k), "Similarity"))
            fail_msg("scores.json: draws.sets[%d] lacks Similarity despite --similarity-model", k);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "std_dev"), "Similarity"));
    secap_simmodel *m = secap_sim_load(g_simbert, g_simvocab, NULL);
    const char *ids[4] = { "u08", "u09", "u10", "u11" };
    for (int i = 0; i < 4; i++) {
        cJSON *c = cJSON_GetObjectItemCaseSensitive(dj, ids[i]);
        cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "draws"), *S = cJSON_GetObjectItemCaseSensitive(c, "sim"),
              *kj = cJSON_GetObjectItemCaseSensitive(c, "kept");
        assert_int_equal(cJSON_GetArraySize(t), 4);
        const char *tx[4];
        for (int a = 0; a < 4; a++) tx[a] = cJSON_GetArrayItem(t, a)->valuestring;
        double want[16];
        float fs[16];
        secap_sim_matrix(m, 4, tx, want);
        for (int a = 0; a < 16; a++) {
            double got = cJSON_GetArrayItem(cJSON_GetArrayItem(S, a / 4), a % 4)->valuedouble;
            if (fabs(got - want[a]) > 1e-5)
                fail_msg("%s: sim[%d, %d] = %.9g, secap_sim_matrix %.9g", ids[i], a / 4, a % 4, got, want[a]);
            fs[a] = (float)got;
        }
        int idx[3];
        secap_select_consensus(fs, 4, 3, idx);
        for (int k = 0; k < 3; k++)
            if (cJSON_GetArrayItem(kj, k)->valueint != idx[k])
                fail_msg("%s: kept[%d] = %d, secap_select_consensus says %d", ids[i], k,
                         cJSON_GetArrayItem(kj, k)->valueint, idx[k]);
    }
    secap_sim_free(m);
    cJSON_Delete(dj); cJSON_Delete(sc);
}

static void test_errors(void **st)
{
    (void)st;
    EXPECT_RUN(1, "secap-caption", "--checkpoint nothere ds/wav/u00.wav", "--checkpoint nothere");
    mkdir(tu_tmp("empty"), 0777);
    EXPECT_RUN(1, "secap-caption", "--checkpoint empty ds/wav/u00.wav", "holds no checkpoint");
    EXPECT_RUN(1, "secap-caption", "--checkpoint tiny.ini ds/wav/u00.wav", "tiny.ini");
    tu_write_text("bad.wav", "this is not audio\n");
    EXPECT_RUN(1, "secap-caption", "--checkpoint run bad.wav", "bad.wav");
    EXPECT_RUN(1, "secap-caption", "--checkpoint run ds/wav/nothere.wav", "nothere.wav");
    EXPECT_RUN(1, "secap-caption", "--checkpoint run --decode.bogus=1 ds/wav/u00.wav", "unknown decode key \"bogus\"");
    EXPECT_RUN(1, "secap-caption", "--checkpoint run --decode.num_beams=0 ds/wav/u00.wav", "num_beams");
    EXPECT_RUN(1, "secap-eval", "--checkpoint run --split bogus", "--split bogus");
    /* a run without a caption stage; a checkpoint before any caption step */
    EXPECT_RUN(0, "secap-train", "--config tiny.ini --train.stages=qformer --train.out_dir=q", "done");
    EXPECT_RUN(1, "secap-caption", "--checkpoint q ds/wav/u00.wav", "no caption stage");
    EXPECT_RUN(0, "secap-train", "--config tiny.ini --train.stages=qformer,caption --train.out_dir=qc "
               "--train.stop_at_step=3", "stopped");
    EXPECT_RUN(1, "secap-eval", "--checkpoint qc", "before any caption step");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caption),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_draws),
        cmocka_unit_test(test_draws_bert),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, tu_tmpdir_teardown);
}
