/* bin/secap-embed run as a user runs it: its embeddings against the library
 * path (Q-Former query / text mode, speech_proj / text_proj, L2 norm) on the
 * same inputs, unit norms, retrieval on a constructed case whose answer is
 * known, and the documented errors on bad input (with nothing left on disk).
 * The Q-Former is a small random one (secap_qformer_init_random +
 * secap_qformer_save); the HuBERT of the --wav case is tests/ref_hubert.py's
 * small "large" model (build/ref). */
#include "testutil.h"
#include "secap/audio.h"
#include "secap/berttok.h"
#include "secap/featcache.h"
#include "secap/h5io.h"
#include "secap/hubert.h"
#include "secap/ops.h"
#include "secap/qformer.h"

#include <dirent.h>
#include <libgen.h>
#include <math.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_bin[1024];
static char g_out[1 << 17];

static int run(const char *prog, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/%s' %s 2>&1", tu_dir, g_bin, prog, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    print_message("$ %s %s\n%s", prog, args, g_out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, args, substr)                                                          \
    do {                                                                                          \
        int rc_ = run("secap-embed", args);                                                       \
        if (rc_ != (status)) fail_msg("secap-embed %s: exit %d, expected %d", args, rc_, status); \
        if (!strstr(g_out, substr)) fail_msg("secap-embed %s: output lacks \"%s\"", args, substr); \
    } while (0)

static int exists(const char *name)
{
    struct stat st;
    return stat(tu_tmp("%s", name), &st) == 0;
}

static int count_tmp(void)
{
    DIR *d = opendir(tu_dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

/* A small vocab covering the test texts: specials, then characters. */
static const char *const VOCAB[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "，", "。", "a", "b",
    "开", "心", "悲", "伤", "生", "气", "声", "音", "很", "高", "低", "沉", "语", "速", "快", "慢",
    "平", "静", "她", "他", "说", "话", "兴", "的",
};
#define NVOCAB ((int)(sizeof VOCAB / sizeof *VOCAB))

static void write_vocab(const char *name)
{
    FILE *f = fopen(tu_tmp("%s", name), "wb");
    assert_non_null(f);
    for (int i = 0; i < NVOCAB; i++) fprintf(f, "%s\n", VOCAB[i]);
    fclose(f);
}

static void small_config(secap_qformer_config *cf, int A)
{
    secap_qformer_config_default(cf);
    cf->hidden_size = 32;
    cf->num_hidden_layers = 2;
    cf->num_attention_heads = 4;
    cf->intermediate_size = 64;
    cf->vocab_size = NVOCAB + 3;
    cf->max_position_embeddings = 40;
    cf->num_query_tokens = 4;
    cf->cross_attention_freq = 2;
    cf->encoder_width = 24;
    cf->audio_width = A;
    cf->llm_width = 0;
    cf->embed_dim = 16;
    cf->hidden_dropout_prob = 0.1;   /* must be off in the program (eval mode) */
    cf->initializer_range = 0.5;     /* weights large enough that different texts differ */
}

static secap_ctx *new_ctx(void)
{
    secap_ctx *c = secap_ctx_new((size_t)256 << 20, (size_t)512 << 20, 1);
    c->training = 0;
    return c;
}

/* Library path: the normalised Q-embedding of x [T, A] into dst [E]. */
static void lib_speech(secap_ctx *c, const secap_qformer *m, const float *x, int64_t T, int64_t A, float *dst)
{
    int prev = secap_no_grad_begin(c);
    secap_tensor *q = secap_qformer_query(c, m, secap_from_data(c, SECAP_SHAPE(1, T, A), x), NULL);
    secap_tensor *e = secap_l2norm(c, secap_qformer_speech_embed(c, m, q, SECAP_QFORMER_POOL_MEAN), 1e-12f);
    memcpy(dst, secap_f32(e), (size_t)e->n * sizeof *dst);
    secap_no_grad_end(c, prev);
    secap_ctx_reset(c);
}

/* Library path: text_proj of [CLS] (normalised when norm) into dst [E]. */
static void lib_text(secap_ctx *c, const secap_qformer *m, const secap_berttok *tok, const char *text, int norm,
                     float *dst)
{
    int32_t ids[40];
    int S = secap_berttok_encode(tok, text, NULL, 40, ids, NULL);
    int prev = secap_no_grad_begin(c);
    secap_tensor *e = secap_qformer_text_embed(c, m, secap_qformer_text(c, m, ids, NULL, NULL, 1, S));
    if (norm) e = secap_l2norm(c, e, 1e-12f);
    memcpy(dst, secap_f32(e), (size_t)e->n * sizeof *dst);
    secap_no_grad_end(c, prev);
    secap_ctx_reset(c);
}

/* The [E] dataset of id in an output file; fails the test when absent. */
static void read_emb(secap_h5 *h, const char *id, float *dst, int E)
{
    if (!secap_h5_has(h, id)) fail_msg("output lacks the dataset %s", id);
    int64_t dims[8];
    int rank = secap_h5_shape(h, id, dims);
    if (rank != 1 || dims[0] != E) fail_msg("dataset %s: rank %d, dims[0] %lld, expected [%d]", id, rank,
                                            (long long)dims[0], E);
    assert_int_equal(secap_h5_try_read_f32(h, id, dst), 0);
}

static void expect_unit_and_equal(const char *id, const float *got, const float *want, int E)
{
    double n2 = 0, d = 0;
    for (int e = 0; e < E; e++) {
        n2 += (double)got[e] * got[e];
        double x = fabs((double)got[e] - want[e]);
        if (!(x <= d)) d = x;
    }
    print_message("  %s: |e| = %.7f, max |program - library| = %.3g\n", id, sqrt(n2), d);
    if (!(fabs(sqrt(n2) - 1) < 1e-5)) fail_msg("%s: embedding norm %.7f, expected 1", id, sqrt(n2));
    if (!(d <= 1e-6)) fail_msg("%s: program and library differ by %.3g", id, d);
}

/* Random features [T, A] for ids u1 (T 37), u2 (T 5), dir/u3 (T 90). */
static const char *const FIDS[] = { "u1", "u2", "u3" };
static const int64_t FT[] = { 37, 5, 90 };

static float *feats(int i, int64_t A)
{
    secap_rng r;
    secap_rng_seed(&r, (uint64_t)(100 + i));
    float *x = malloc((size_t)(FT[i] * A) * sizeof *x);
    for (int64_t k = 0; k < FT[i] * A; k++) x[k] = secap_rng_normal(&r);
    return x;
}

static void write_cache(const char *name, int64_t A)
{
    secap_featcache_key key = { "test-encoder", "layer=-1" };
    secap_featcache *fc = secap_featcache_open(tu_tmp("%s", name), &key, NULL);
    for (int i = 0; i < 3; i++) {
        float *x = feats(i, A);
        secap_featcache_put(fc, FIDS[i], x, FT[i], A);
        free(x);
    }
    secap_featcache_close(fc);
}

static void test_embed_speech_features(void **st)
{
    (void)st;
    const int64_t A = 20;
    secap_qformer_config cf;
    small_config(&cf, (int)A);
    secap_ctx *c = new_ctx();
    secap_qformer *m0 = secap_qformer_init_random(c, &cf, 0, 7);
    secap_qformer_save(m0, tu_tmp("q.h5"), 0);
    secap_qformer_free(m0);
    write_cache("f.h5", A);

    EXPECT_RUN(0, "--model q.h5 --wav u1.wav x/u2.flac u3 --features f.h5 --out e.h5 --threads 1",
               "wrote 3 L2-normalised speech embeddings [16] to e.h5");
    secap_qformer *m = secap_qformer_load(c, tu_tmp("q.h5"), 0);
    secap_h5 *h = secap_h5_open(tu_tmp("e.h5"), 0);
    char *kind = NULL;
    assert_int_equal(secap_h5_get_attr_str(h, NULL, "kind", &kind), 0);
    assert_string_equal(kind, "speech");
    free(kind);
    float got[16], want[16], first[16];
    for (int i = 0; i < 3; i++) {
        float *x = feats(i, A);
        lib_speech(c, m, x, FT[i], A, want);
        free(x);
        read_emb(h, FIDS[i], got, 16);
        expect_unit_and_equal(FIDS[i], got, want, 16);
        if (i == 0) memcpy(first, got, sizeof first);
    }
    secap_h5_close(h);
    /* different clips give different vectors (the test is not vacuous) */
    double d = 0;
    for (int e = 0; e < 16; e++) d += fabs((double)first[e] - got[e]);
    if (!(d > 1e-3)) fail_msg("u1 and u3 gave the same embedding (sum |diff| %.3g)", d);
    assert_int_equal(count_tmp(), 0);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

static void test_embed_text(void **st)
{
    (void)st;
    secap_qformer_config cf;
    small_config(&cf, 20);
    secap_ctx *c = new_ctx();
    secap_qformer *m0 = secap_qformer_init_random(c, &cf, 0, 8);
    secap_qformer_save(m0, tu_tmp("qt.h5"), 0);
    secap_qformer_free(m0);
    write_vocab("vocab.txt");
    tu_write_text("text.txt", "a1 她说话很快。\n\nb/2   他的声音低沉，语速慢\r\nc3 Ab 开心 [UNK] 未知\n");
    EXPECT_RUN(0, "--model qt.h5 --text-file text.txt --vocab vocab.txt --out t.h5",
               "wrote 3 L2-normalised text embeddings [16] to t.h5");
    secap_qformer *m = secap_qformer_load(c, tu_tmp("qt.h5"), 0);
    secap_berttok *tok = secap_berttok_load(tu_tmp("vocab.txt"), 1);
    secap_h5 *h = secap_h5_open(tu_tmp("t.h5"), 0);
    const char *ids[] = { "a1", "b%2F2", "c3" };
    const char *texts[] = { "她说话很快。", "他的声音低沉，语速慢", "Ab 开心 [UNK] 未知" };
    float got[16], want[16];
    for (int i = 0; i < 3; i++) {
        lib_text(c, m, tok, texts[i], 1, want);
        read_emb(h, ids[i], got, 16);
        expect_unit_and_equal(ids[i], got, want, 16);
    }
    secap_h5_close(h);
    secap_berttok_free(tok);
    secap_qformer_free(m);
    secap_ctx_free(c);
}

/* speech_proj.weight = 0 and speech_proj.bias = text_proj(CLS) of one
 * caption: every clip's Q-embedding is then that caption's C-embedding, so
 * the caption must rank first with similarity 1, and the clip whose id owns
 * it scores recall@1 = 1. */
static void test_embed_retrieve(void **st)
{
    (void)st;
    const int64_t A = 20;
    secap_qformer_config cf;
    small_config(&cf, (int)A);
    secap_ctx *c = new_ctx();
    write_vocab("vocab.txt");
    secap_berttok *tok = secap_berttok_load(tu_tmp("vocab.txt"), 1);
    secap_qformer *m = secap_qformer_init_random(c, &cf, 1, 9);
    const char *target = "他的声音低沉，语速很慢";
    float v[16];
    lib_text(c, m, tok, target, 0, v);
    secap_tensor *w = secap_qformer_param(m, "speech_proj.weight"), *b = secap_qformer_param(m, "speech_proj.bias");
    assert_non_null(w);
    assert_non_null(b);
    memset(secap_f32(w), 0, (size_t)w->n * sizeof(float));
    memcpy(secap_f32(b), v, sizeof v);
    secap_qformer_save(m, tu_tmp("qr.h5"), 0);
    secap_qformer_free(m);
    secap_berttok_free(tok);
    secap_ctx_free(c);
    write_cache("f.h5", A);
    tu_write_text("caps.json", "{\"u1\": [\"她说话很快\", \"开心\"], \"u2\": [\"平静的声音\", \"他的声音低沉，语速很慢\"],"
                            " \"u9\": [\"生气\", \"悲伤，语速慢\", \"声音很高\"]}");
    EXPECT_RUN(0, "--model qr.h5 --wav u1 u2 --features f.h5 --vocab vocab.txt --retrieve 3 --captions caps.json "
                  "--out r.h5", "# recall@1");
    /* both clips: rank 1 is caption u2#1 (the target) at similarity 1 */
    if (!strstr(g_out, "u1\t1\t1.0000\tu2#1\t他的声音低沉，语速很慢\n")) fail_msg("u1: the target is not first");
    if (!strstr(g_out, "u2\t1\t1.0000\tu2#1\t他的声音低沉，语速很慢\n")) fail_msg("u2: the target is not first");
    if (!strstr(g_out, "u1\t3\t")) fail_msg("u1: fewer than 3 captions printed");
    if (strstr(g_out, "u1\t4\t")) fail_msg("u1: more than --retrieve 3 captions printed");
    /* u2's own caption is first (hit), u1's are not: recall@1 = 0.5 */
    if (!strstr(g_out, "# recall@1 0.5000")) fail_msg("recall@1 is not 0.5");
    /* second place scores below 1: the ranking is not a tie */
    char *p = strstr(g_out, "u1\t2\t");
    assert_non_null(p);
    double s2 = strtod(p + 5, NULL);
    if (!(s2 < 0.9999)) fail_msg("second caption scores %.4f, the case does not separate the target", s2);
}

static void test_embed_wav_hubert(void **st)
{
    (void)st;
    const char *hub = tu_ref_path("hubert_large_small.h5");
    if (access(hub, R_OK) != 0) fail_msg("%s is missing (hint: tests/run.sh makes it with tests/ref_hubert.py)", hub);
    secap_ctx *c = new_ctx();
    secap_hubert *hm = secap_hubert_load(c, hub, 0);
    int A = secap_hubert_cfg(hm)->hidden_size;
    secap_qformer_config cf;
    small_config(&cf, A);
    secap_qformer *m = secap_qformer_init_random(c, &cf, 0, 10);
    secap_qformer_save(m, tu_tmp("qh.h5"), 0);
    /* a 0.6 s tone at 16 kHz */
    const int64_t N = 9600;
    float *x = malloc((size_t)N * sizeof *x);
    for (int64_t i = 0; i < N; i++) x[i] = 0.3f * (float)sin(0.05 * (double)i) + 0.05f * (float)sin(0.31 * (double)i);
    SF_INFO si = { .samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
    SNDFILE *sf = sf_open(tu_tmp("tone.wav"), SFM_WRITE, &si);
    assert_non_null(sf);
    sf_writef_float(sf, x, N);
    sf_close(sf);
    char args[4400];
    snprintf(args, sizeof args, "--model qh.h5 --wav tone.wav --hubert '%s' --out h.h5", hub);
    EXPECT_RUN(0, args, "wrote 1 L2-normalised speech embeddings");
    int64_t ns = N;
    int32_t frames;
    int prev = secap_no_grad_begin(c);
    secap_tensor *y = secap_hubert_forward(c, hm, x, &ns, 1, N, -1, &frames);
    secap_no_grad_end(c, prev);
    int64_t T = frames;
    float *fx = malloc((size_t)(T * A) * sizeof *fx);
    memcpy(fx, secap_f32(y), (size_t)(T * A) * sizeof *fx);
    secap_ctx_reset(c);
    float want[16], got[16];
    lib_speech(c, m, fx, T, A, want);
    secap_h5 *h = secap_h5_open(tu_tmp("h.h5"), 0);
    read_emb(h, "tone", got, 16);
    secap_h5_close(h);
    expect_unit_and_equal("tone", got, want, 16);
    free(fx);
    free(x);
    secap_qformer_free(m);
    secap_hubert_free(hm);
    secap_ctx_free(c);
}

static void test_embed_errors(void **st)
{
    (void)st;
    const int64_t A = 20;
    secap_qformer_config cf;
    small_config(&cf, (int)A);
    secap_ctx *c = new_ctx();
    secap_qformer *m = secap_qformer_init_random(c, &cf, 0, 11);
    secap_qformer_save(m, tu_tmp("qe.h5"), 0);
    secap_qformer_free(m);
    secap_ctx_free(c);
    write_cache("f.h5", A);
    write_cache("f_wide.h5", A);   /* rewritten below at another width */
    {
        secap_featcache_key key = { "other", "w" };
        secap_featcache *fc = secap_featcache_open(tu_tmp("f_wide.h5"), &key, NULL);
        float x[3 * 7] = { 0 };
        secap_featcache_put(fc, "u1", x, 3, 7);
        secap_featcache_close(fc);
    }
    write_vocab("vocab.txt");
    tu_write_text("text.txt", "a1 开心\n");
    tu_write_text("noid.txt", "a1 开心\nlonely\n");
    tu_write_text("caps.json", "{\"u1\": [\"开心\"]}");
    tu_write_text("bad.json", "[\"开心\"]");

    EXPECT_RUN(1, "--wav u1 --features f.h5 --out o.h5", "--model <stage1.h5> is required");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5", "--out <embeddings.h5> is required");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --text-file text.txt --out o.h5", "give exactly one of --wav");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --out o.h5", "give --hubert <weights.h5> or --features <cache.h5>");
    EXPECT_RUN(1, "--model qe.h5 --text-file text.txt --out o.h5", "text embeddings need --vocab");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --retrieve 2 --out o.h5",
               "--retrieve 2 needs --captions <fid2captions.json> and --vocab");
    EXPECT_RUN(1, "--model qe.h5 --text-file text.txt --vocab vocab.txt --retrieve 2 --captions caps.json --out o.h5",
               "--retrieve ranks captions for speech clips");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --out qe.h5", "is the file given to --model");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --out f.h5", "is the file given to --features");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --out .", "is a directory");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --out nodir/o.h5", "does not exist");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 u7 --features f.h5 --out o.h5",
               "--features f.h5: no features for utterance u7 (hint: extract them with bin/secap-extract");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f_wide.h5 --out o.h5",
               "f_wide.h5: utterance u1 has features of width 7, --model qe.h5 takes 20");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features vocab.txt --out o.h5", "vocab.txt: exists and is");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features nothere.h5 --out o.h5", "nothere.h5: does not exist");
    EXPECT_RUN(1, "--model f.h5 --wav u1 --features f.h5 --out o.h5", "f.h5");
    EXPECT_RUN(1, "--model qe.h5 --wav a/u1 b/u1 --features f.h5 --out o.h5", "the id \"u1\" occurs twice");
    EXPECT_RUN(1, "--model qe.h5 --text-file noid.txt --vocab vocab.txt --out o.h5",
               "--text-file noid.txt:2: \"lonely\" has an id but no text");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --vocab vocab.txt --retrieve 1 --captions bad.json --out o.h5",
               "--captions bad.json: not a JSON object");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --layer 3 --out o.h5", "--layer 3 selects a HuBERT layer");
    EXPECT_RUN(1, "--model qe.h5 --wav u1 --features f.h5 --bogus --out o.h5", "unknown argument \"--bogus\"");
    /* a vocab bigger than the model's word table */
    FILE *f = fopen(tu_tmp("big.txt"), "wb");
    assert_non_null(f);
    for (int i = 0; i < NVOCAB; i++) fprintf(f, "%s\n", VOCAB[i]);
    for (int i = 0; i < 10; i++) fprintf(f, "x%d\n", i);
    fclose(f);
    EXPECT_RUN(1, "--model qe.h5 --text-file text.txt --vocab big.txt --out o.h5",
               "--vocab big.txt has 43 entries but --model qe.h5 has vocab_size 36");
    if (exists("o.h5")) fail_msg("a failed run left o.h5");
    assert_int_equal(count_tmp(), 0);
}

int main(int argc, char **argv)
{
    (void)argc;
    char self[1024];
    snprintf(self, sizeof self, "%s", argv[0]);
    char *tests_dir = dirname(self);
    char resolved[1024];
    snprintf(g_bin, sizeof g_bin, "%s/..", tests_dir);
    if (realpath(g_bin, resolved)) snprintf(g_bin, sizeof g_bin, "%s", resolved);
    const char *ref = getenv("SECAP_REF_DIR");
    if (!ref || ref[0] != '/') {
        static char abs_ref[1200];
        char cwd[1024];
        snprintf(abs_ref, sizeof abs_ref, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", ref ? ref : "build/ref");
        setenv("SECAP_REF_DIR", abs_ref, 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embed_speech_features),
        cmocka_unit_test(test_embed_text),
        cmocka_unit_test(test_embed_retrieve),
        cmocka_unit_test(test_embed_wav_hubert),
        cmocka_unit_test(test_embed_errors),
    };
    return cmocka_run_group_tests_name("embed", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
