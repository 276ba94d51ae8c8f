/* The LM-pretraining text corpus (src/data/lmtext.c).
 *
 * Tokenizer: tests/ref_spm.py's spm_llama_s.model (LLaMA's settings).  The
 * stream is checked against documents encoded independently here; packed
 * rows against windows of the stream; batches for determinism (the same
 * (seed, epoch, step) gives the same rows from a corpus built again, an
 * epoch is a permutation of the blocks, epochs differ); dataset text comes
 * from one split only (the test split's captions never appear, and asking
 * for them is fatal); errors name the file and line; cleaning (ANSI
 * escapes, fortune separators, blank lines, surrounding spaces); the loss
 * against the PyTorch fixture of tests/ref_llama.py; the held-out eval
 * against per-batch losses; and a tiny LLaMA trained with AdamW on the
 * corpus for a few steps lowers its loss. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "testutil.h"

#include "secap/autograd.h"
#include "secap/dataset.h"
#include "secap/lmtext.h"
#include "secap/llama.h"
#include "secap/optim.h"

#include <hdf5.h>
#include <sys/stat.h>

#define P tu_tmp

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    size_t n = strlen(text);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static secap_spm *tok_load(void)
{
    const char *p = tu_ref_path("spm_llama_s.model");
    if (access(p, R_OK) != 0) fail_msg("missing %s (hint: run tests/ref_spm.py build/ref, or tests/run.sh)", p);
    return secap_spm_load(p);
}

static const char *const DOCS[] = {
    "今天天气很好，我们去公园散步。",
    "  The quick brown fox 123 jumps.\t",
    "\x1b[32m《静夜思》\x1b[m",
    "床前明月光，疑是地上霜。",
    "举头望明月，低头思故乡。",
    "声音低沉，语速缓慢，情绪低落",
    "语速较快，声音高亢，情绪激动！",
    "平静地说着 42 件事",
};
static const char *const CLEAN[] = {
    "今天天气很好，我们去公园散步。",
    "The quick brown fox 123 jumps.",
    "《静夜思》",
    "床前明月光，疑是地上霜。",
    "举头望明月，低头思故乡。",
    "声音低沉，语速缓慢，情绪低落",
    "语速较快，声音高亢，情绪激动！",
    "平静地说着 42 件事",
};
#define NDOCS 8

/* The documents (each repeated `rep` times) as one text file. */
static const char *docs_file(int rep)
{
    const char *path = P("docs_%d.txt", rep);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int r = 0; r < rep; r++)
        for (int i = 0; i < NDOCS; i++) {
            fputs(DOCS[i], f);
            fputs(i % 3 == 0 ? "\n%\n\n" : "\r\n", f);   /* separators and blank lines are skipped */
        }
    fclose(f);
    return path;
}

static secap_ctx *new_ctx(void)
{
    secap_ctx *c = secap_ctx_new((size_t)64 << 20, (size_t)512 << 20, 1);
    c->training = 1;
    return c;
}

/* ----------------------------------------------------------- packing */

static void test_stream_and_packing(void **st)
{
    (void)st;
    secap_spm *tok = tok_load();
    secap_lmtext *t = secap_lmtext_new(tok);
    assert_int_equal(secap_lmtext_add_file(t, docs_file(3)), 3 * NDOCS);
    /* the expected stream: each cleaned document encoded with BOS and EOS */
    secap_spm_scratch *s = secap_spm_scratch_new();
    int64_t S = 0;
    int32_t *want = NULL;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < NDOCS; i++) {
            const int32_t *ids;
            size_t n = secap_spm_encode(tok, CLEAN[i], strlen(CLEAN[i]), SECAP_SPM_ADD_BOS | SECAP_SPM_ADD_EOS, s,
                                        &ids);
            assert_int_equal(ids[0], secap_spm_bos_id(tok));
            assert_int_equal(ids[n - 1], secap_spm_eos_id(tok));
            want = realloc(want, (size_t)(S + (int64_t)n) * sizeof *want);
            assert_non_null(want);
            memcpy(want + S, ids, n * sizeof *ids);
            S += (int64_t)n;
        }
    secap_spm_scratch_free(s);
    assert_int_equal(secap_lmtext_tokens(t), S);
    assert_memory_equal(secap_lmtext_stream(t), want, (size_t)S * sizeof *want);
    assert_int_equal(secap_lmtext_roundtrip_check(t, stderr), 0);

    /* the cleaned text, one document per line */
    FILE *f = fopen(P("clean.txt"), "w");
    assert_non_null(f);
    secap_lmtext_write_text(t, f);
    fclose(f);
    f = fopen(P("clean.txt"), "r");
    char line[512];
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < NDOCS; i++) {
            assert_non_null(fgets(line, sizeof line, f));
            line[strcspn(line, "\n")] = 0;
            assert_string_equal(line, CLEAN[i]);
        }
    assert_null(fgets(line, sizeof line, f));
    fclose(f);

    int T = 7;
    secap_lmtext_pack(t, T);
    assert_int_equal(secap_lmtext_blocks(t), (S - 1) / T);
    assert_int_equal(secap_lmtext_block_size(t), T);
    secap_ctx *c = new_ctx();
    int64_t rows[3] = { 0, secap_lmtext_blocks(t) - 1, 2 };
    secap_lm_batch b = secap_lmtext_rows(c, t, rows, 3);
    assert_int_equal(b.B, 3);
    assert_int_equal(b.T, T);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(b.lens[r], T);
        assert_int_equal(b.blocks[r], rows[r]);
        assert_memory_equal(b.ids + r * T, want + rows[r] * T, (size_t)T * sizeof(int32_t));
        assert_memory_equal(b.targets + r * T, want + rows[r] * T + 1, (size_t)T * sizeof(int32_t));
    }
    EXPECT_FATAL(secap_lmtext_add_line(t, "x", 1, "late"), "after secap_lmtext_pack");
    EXPECT_FATAL(secap_lmtext_pack(t, T), "twice");
    int64_t bad = secap_lmtext_blocks(t);
    EXPECT_FATAL(secap_lmtext_rows(c, t, &bad, 1), "outside");
    free(want);
    secap_ctx_free(c);
    secap_lmtext_free(t);
    secap_spm_free(tok);
}

/* ----------------------------------------------------------- batches */

static void test_batch_determinism(void **st)
{
    (void)st;
    secap_spm *tok = tok_load();
    secap_lmtext *t1 = secap_lmtext_new(tok), *t2 = secap_lmtext_new(tok);
    secap_lmtext_add_file(t1, docs_file(10));
    secap_lmtext_add_file(t2, docs_file(10));
    secap_lmtext_pack(t1, 5);
    secap_lmtext_pack(t2, 5);
    int B = 4;
    int64_t N = secap_lmtext_blocks(t1), steps = secap_lmtext_steps_per_epoch(t1, B);
    assert_int_equal(steps, N / B);
    assert_true(steps >= 4);
    secap_ctx *c = new_ctx();
    int *seen = calloc((size_t)N, sizeof *seen);
    assert_non_null(seen);
    int64_t first[2][4];
    for (int64_t e = 0; e < 2; e++) {
        memset(seen, 0, (size_t)N * sizeof *seen);
        for (int64_t k = 0; k < steps; k++) {
            secap_lm_batch a = secap_lmtext_batch(c, t1, 7, e, k, B);
            /* a fresh corpus (a resumed run) and a repeated call give the same rows */
            secap_lm_batch b = secap_lmtext_batch(c, t2, 7, e, k, B);
            assert_memory_equal(a.blocks, b.blocks, (size_t)B * sizeof *a.blocks);
            assert_memory_equal(a.ids, b.ids, (size_t)B * 5 * sizeof *a.ids);
            assert_memory_equal(a.targets, b.targets, (size_t)B * 5 * sizeof *a.targets);
            for (int r = 0; r < B; r++) {
                if (seen[a.blocks[r]]++) fail_msg("epoch %lld: block %lld drawn twice", (long long)e,
                                                  (long long)a.blocks[r]);
            }
            if (k == 0) memcpy(first[e], a.blocks, sizeof first[e]);
            secap_ctx_reset(c);
        }
    }
    /* epochs are shuffled differently; another seed gives another order */
    assert_true(memcmp(first[0], first[1], sizeof first[0]) != 0);
    secap_lm_batch o = secap_lmtext_batch(c, t1, 8, 0, 0, B);
    assert_true(memcmp(first[0], o.blocks, sizeof first[0]) != 0);
    /* not the identity order */
    int ident = 1;
    for (int r = 0; r < B; r++) ident &= first[0][r] == r;
    assert_false(ident);
    EXPECT_FATAL(secap_lmtext_batch(c, t1, 7, 0, steps, B), "outside the");
    EXPECT_FATAL(secap_lmtext_batch(c, t1, 7, -1, 0, B), "outside the");
    free(seen);
    secap_ctx_free(c);
    secap_lmtext_free(t1);
    secap_lmtext_free(t2);
    secap_spm_free(tok);
}

/* ----------------------------------------------------------- dataset */

/* Six items, two per split (train.list / dev.list / test.list). */
static secap_dataset *make_dataset(void)
{
    mkdir(P("ds"), 0777);
    write_file(P("ds/wav.scp"), "a a.wav\nb b.wav\nc c.wav\nd d.wav\ne e.wav\nf f.wav\n");
    write_file(P("ds/text.txt"), "a 训练一\nb 训练二\nc 开发一\nd 开发二\ne 测试一\nf 测试二\n");
    write_file(P("ds/fid2captions.json"),
               "{\"a\": [\"甲描述一\", \"甲描述二\"], \"b\": \"乙描述\", \"c\": \"丙描述\", \"d\": \"丁描述\","
               " \"e\": [\"戊描述一\", \"戊描述二\"], \"f\": \"己描述\"}\n");
    write_file(P("ds/train.list"), "a\nb\n");
    write_file(P("ds/dev.list"), "c\nd\n");
    write_file(P("ds/test.list"), "e\nf\n");
    secap_data_config cfg;
    secap_data_config_default(&cfg);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("ds"), &cfg, &probs);
    secap_problems_print(&probs, stderr);
    assert_int_equal(probs.n, 0);
    secap_problems_free(&probs);
    assert_int_equal(d->n, 6);
    return d;
}

static char *corpus_text(const secap_lmtext *t)
{
    FILE *f = fopen(P("corpus.txt"), "w+");
    assert_non_null(f);
    secap_lmtext_write_text(t, f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static void test_train_split_only(void **st)
{
    (void)st;
    secap_dataset *d = make_dataset();
    secap_spm *tok = tok_load();
    secap_lmtext *t = secap_lmtext_new(tok);
    assert_int_equal(secap_lmtext_add_dataset(t, d, SECAP_SPLIT_TRAIN), 5);
    char *s = corpus_text(t);
    assert_string_equal(s, "训练一\n甲描述一\n甲描述二\n训练二\n乙描述\n");
    free(s);
    EXPECT_FATAL(secap_lmtext_add_dataset(t, d, SECAP_SPLIT_TEST), "test split");
    EXPECT_FATAL(secap_lmtext_add_dataset(t, d, 7), "split 7");
    secap_lmtext_free(t);
    /* dev (a held-out corpus) */
    t = secap_lmtext_new(NULL);
    assert_int_equal(secap_lmtext_add_dataset(t, d, SECAP_SPLIT_DEV), 4);
    s = corpus_text(t);
    assert_string_equal(s, "开发一\n丙描述\n开发二\n丁描述\n");
    assert_null(strstr(s, "戊"));
    free(s);
    EXPECT_FATAL(secap_lmtext_pack(t, 4), "text-only");
    secap_lmtext_free(t);

    /* the whole pipeline from a config: dataset, prompts, extra text */
    write_file(P("prompts.txt"), "请描述说话人的情感：\n\n请概括情绪：\n");
    secap_lm_config cfg;
    secap_lm_config_default(&cfg);
    assert_int_equal(secap_lm_config_set(&cfg, "lm.block_size", "4"), 0);
    assert_int_equal(secap_lm_config_set(&cfg, "prompts", P("prompts.txt")), 0);
    assert_int_equal(secap_lm_config_set(&cfg, "lm.text", P("docs_1.txt")), 0);
    assert_int_equal(secap_lm_config_set(&cfg, "lm.seed", "9"), 0);
    assert_int_not_equal(secap_lm_config_set(&cfg, "lm.blok_size", "4"), 0);
    EXPECT_FATAL(secap_lm_config_set(&cfg, "batch_size", "0"), "lm.batch_size");
    EXPECT_FATAL(secap_lm_config_set(&cfg, "block_size", "12x"), "lm.block_size");
    docs_file(1);
    t = secap_lmtext_build(&cfg, tok, d, SECAP_SPLIT_TRAIN);
    assert_int_equal(secap_lmtext_documents(t), 5 + 2 + NDOCS);
    assert_int_equal(secap_lmtext_block_size(t), 4);
    s = corpus_text(t);
    assert_non_null(strstr(s, "乙描述\n请描述说话人的情感：\n请概括情绪：\n今天天气很好"));
    assert_null(strstr(s, "戊描述"));
    free(s);
    secap_lmtext_free(t);
    secap_dataset_free(d);
    secap_spm_free(tok);
}

/* ------------------------------------------------------------- errors */

static void test_errors(void **st)
{
    (void)st;
    secap_spm *tok = tok_load();
    secap_lmtext *t = secap_lmtext_new(tok);
    write_file(P("bad_utf8.txt"), "好的\n第二行\n\xe4\xbd\n");
    EXPECT_FATAL(secap_lmtext_add_file(t, P("bad_utf8.txt")), "bad_utf8.txt:3: not valid UTF-8");
    FILE *f = fopen(P("nul.txt"), "wb");
    fwrite("ok\nab\0cd\n", 1, 9, f);
    fclose(f);
    EXPECT_FATAL(secap_lmtext_add_file(t, P("nul.txt")), "nul.txt:2: the line holds a NUL byte at byte 3");
    EXPECT_FATAL(secap_lmtext_add_file(t, P("missing.txt")), "cannot open");
    EXPECT_FATAL(secap_lmtext_add_line(t, "a\nb", 3, "caption x"), "caption x: a line break");
    secap_lmtext_free(t);

    t = secap_lmtext_new(tok);
    write_file(P("blank.txt"), "  \n%\n\x1b[1m\x1b[m\n\t\n");
    assert_int_equal(secap_lmtext_add_file(t, P("blank.txt")), 0);
    secap_lmtext_add_line(t, "短", strlen("短"), "one");
    EXPECT_FATAL(secap_lmtext_pack(t, 64), "make no block of 64");
    secap_lmtext_free(t);

    secap_lm_config cfg;
    secap_lm_config_default(&cfg);
    snprintf(cfg.text, sizeof cfg.text, "%s,%s", P("docs_1.txt"), P("nope.txt"));
    docs_file(1);
    EXPECT_FATAL(secap_lmtext_build(&cfg, tok, NULL, SECAP_SPLIT_TRAIN), "nope.txt");
    secap_spm_free(tok);
}

/* ---------------------------------------------------------- loss, eval */

static void h5_read(hid_t f, const char *name, hid_t type, void *out, size_t n)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) fail_msg("fixture lacks %s (hint: run tests/ref_llama.py build/ref)", name);
    hid_t sp = H5Dget_space(d);
    assert_int_equal((size_t)H5Sget_simple_extent_npoints(sp), n);
    assert_true(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Sclose(sp);
    H5Dclose(d);
}

/* secap_lm_loss on tests/ref_llama.py's padded id batch: PyTorch's loss. */
static void test_loss_parity(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    c->training = 0;
    secap_llama *m = secap_llama_load(c, tu_ref_path("llama_gqa.h5"), NULL);
    hid_t h = H5Fopen(tu_ref_path("llama_gqa_lm.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0) fail_msg("cannot open llama_gqa_lm.h5 (hint: run tests/ref_llama.py build/ref)");
    int32_t ids[3 * 9], targets[3 * 9], lens[3];
    float want;
    h5_read(h, "ids", H5T_NATIVE_INT32, ids, 27);
    h5_read(h, "targets", H5T_NATIVE_INT32, targets, 27);
    h5_read(h, "lens", H5T_NATIVE_INT32, lens, 3);
    h5_read(h, "loss", H5T_NATIVE_FLOAT, &want, 1);
    H5Fclose(h);
    secap_lm_batch b = { ids, targets, lens, NULL, 3, 9 };
    float got = secap_f32(secap_lm_loss(c, m, &b))[0];
    printf("  lm loss %.7f, PyTorch %.7f\n", got, want);
    assert_true(fabsf(got - want) <= 1e-5f * fabsf(want));
    targets[4] = 61;
    EXPECT_FATAL(secap_lm_loss(c, m, &b), "target id 61 at row 0 step 4");
    secap_llama_free(m);
    secap_ctx_free(c);
}

static secap_llama *tiny_llama(secap_ctx *c, const secap_spm *tok, int T)
{
    secap_llama_config cf;
    secap_llama_config_default(&cf);
    cf.vocab_size = secap_spm_vocab_size(tok);
    cf.hidden_size = 32;
    cf.intermediate_size = 64;
    cf.num_hidden_layers = 2;
    cf.num_attention_heads = 4;
    cf.num_key_value_heads = 2;
    cf.max_position_embeddings = T;
    cf.tie_word_embeddings = 1;
    secap_llama_opts o = { .train_base = 1, .seed = 5 };
    return secap_llama_init_random(c, &cf, &o);
}

/* secap_lm_eval = the token-weighted mean of per-batch losses, with no tape
 * and the step arena left where it was. */
static void test_eval(void **st)
{
    (void)st;
    secap_spm *tok = tok_load();
    secap_lmtext *t = secap_lmtext_new(tok);
    secap_lmtext_add_file(t, docs_file(4));
    secap_lmtext_pack(t, 8);
    secap_ctx *c = new_ctx();
    secap_llama *m = tiny_llama(c, tok, 8);
    int64_t N = secap_lmtext_blocks(t);
    assert_true(N % 3 != 0);   /* a last partial batch */
    double sum = 0;
    for (int64_t k = 0; k < N; k++) {
        secap_lm_batch b = secap_lmtext_rows(c, t, &k, 1);
        sum += secap_f32(secap_lm_loss(c, m, &b))[0];
        secap_ctx_reset(c);
    }
    size_t mark = secap_arena_mark(c->step);
    double e = secap_lm_eval(c, m, t, 3);
    printf("  eval %.6f, mean of per-block losses %.6f\n", e, sum / (double)N);
    assert_true(fabs(e - sum / (double)N) <= 1e-5 * fabs(e));
    assert_int_equal(secap_arena_mark(c->step), mark);
    assert_int_equal(c->training, 1);
    secap_llama_free(m);
    secap_ctx_free(c);
    secap_lmtext_free(t);
    secap_spm_free(tok);
}

/* A tiny LLaMA (train_base) trained with AdamW on seeded batches of the
 * corpus lowers its loss on the corpus by more than a nat. */
static void test_training_lowers_loss(void **st)
{
    (void)st;
    secap_spm *tok = tok_load();
    secap_lmtext *t = secap_lmtext_new(tok);
    secap_lmtext_add_file(t, docs_file(20));
    int T = 16, B = 8;
    secap_lmtext_pack(t, T);
    secap_ctx *c = new_ctx();
    secap_llama *m = tiny_llama(c, tok, T);
    const secap_params *bp = secap_llama_base_params(m);
    secap_adamw *o = secap_adamw_new(0.9f, 0.98f, 1e-8f);
    int g0 = secap_adamw_group(o, 1.0f, 0.0f), g1 = secap_adamw_group(o, 1.0f, 0.01f);
    secap_adamw_add_params(o, c, bp, SECAP_LLAMA_NO_DECAY, NULL, g0);
    secap_adamw_add_params(o, c, bp, NULL, NULL, g1);
    assert_int_equal(o->nslots, secap_params_count(bp));
    double before = secap_lm_eval(c, m, t, 16);
    int64_t steps = secap_lmtext_steps_per_epoch(t, B);
    assert_true(steps > 0);
    for (int i = 0; i < 40; i++) {
        secap_lm_batch b = secap_lmtext_batch(c, t, 3, i / steps, i % steps, B);
        secap_backward(c, secap_lm_loss(c, m, &b));
        secap_adamw_step(o, 1e-2f);
        secap_adamw_zero_grad(o);
        secap_ctx_reset(c);
    }
    double after = secap_lm_eval(c, m, t, 16);
    printf("  tiny LLaMA on %lld blocks: loss %.3f -> %.3f after 40 AdamW steps (ln V = %.3f)\n",
           (long long)secap_lmtext_blocks(t), before, after, log((double)secap_spm_vocab_size(tok)));
    assert_true(before > after + 1.0);
    secap_adamw_free(o);
    secap_llama_free(m);
    secap_ctx_free(c);
    secap_lmtext_free(t);
    secap_spm_free(tok);
}

static void test_config(void **st)
{
    (void)st;
    secap_lm_config c;
    secap_lm_config_default(&c);
    assert_int_equal(c.block_size, 128);
    assert_int_equal(c.batch_size, 16);
    secap_lm_config_set(&c, "batch_size", "3");
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    secap_lm_config_print(&c, f);
    fclose(f);
    assert_non_null(strstr(buf, "lm.batch_size = 3\n"));
    assert_non_null(strstr(buf, "lm.block_size = 128\n"));
    free(buf);
    c.block_size = 0;
    EXPECT_FATAL(secap_lm_config_validate(&c, "cfg.ini"), "cfg.ini: lm.block_size = 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_and_packing),
        cmocka_unit_test(test_batch_determinism),
        cmocka_unit_test(test_train_split_only),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_loss_parity),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_training_lowers_loss),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
