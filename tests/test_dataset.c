/* Dataset readers, validation, policies, splits, samplers, batches, loader.
 * Every input file is written by the test into a temporary directory. */
#include "testutil.h"
#include "secap/audio.h"
#include "secap/dataset.h"
#include "secap/featcache.h"
#include "secap/loader.h"
#include "secap/h5io.h"

#include <hdf5.h>
#include <signal.h>
#include <sndfile.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#define P tu_tmp

static void mkdirs(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}
#define WRITE(path, s) write_file(path, s, strlen(s))

/* A 16-bit mono WAV of n samples at `rate`: a ramp so clips are distinguishable. */
static void write_wav(const char *path, int64_t n, int rate, float level)
{
    SF_INFO si = { .samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    SNDFILE *sf = sf_open(path, SFM_WRITE, &si);
    if (!sf) fail_msg("cannot write %s", path);
    float *x = malloc((size_t)(n + 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = level * (float)sin(0.05 * (double)i);
    sf_writef_float(sf, x, n);
    sf_close(sf);
    free(x);
}

/* ------------------------------------------------------------- SECap layout */

/* repo/dataset/wav/{a,b}.wav referenced as "dataset/wav/x.wav" from
 * repo/test/wav.scp (the public set's convention), c.wav next to wav.scp. */
static void make_secap_dir(void)
{
    mkdirs(P("repo/dataset/wav"));
    mkdirs(P("repo/test/local"));
    write_wav(P("repo/dataset/wav/a.wav"), 24000, 24000, 0.5f);
    write_wav(P("repo/dataset/wav/b.wav"), 48000, 24000, 0.3f);
    write_wav(P("repo/test/local/c.wav"), 8000, 16000, 0.2f);
    WRITE(P("repo/test/wav.scp"), "a dataset/wav/a.wav\nb\t\tdataset/wav/b.wav  \n\nc  local/c.wav\r\n");
    WRITE(P("repo/test/text.txt"), "a 今天天气很好 \t\nb\t我们去公园散步\nc 你好\n");
    WRITE(P("repo/test/fid2captions.json"),
          "{\"a\": \"语速较快，声音高亢，情绪激动\",\n \"b\": [\"语速缓慢，情绪低落\", \"声音低沉\"],\n"
          " \"c\": [\"音调适中\"]}\n");
    WRITE(P("repo/test/emotion.txt"), "a 激动\nb 悲伤\nc 平静\n");
}

static void test_read_secap_layout(void **st)
{
    (void)st;
    make_secap_dir();
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("repo/test"), &c, &probs);
    secap_dataset_validate(d, &probs);
    secap_problems_print(&probs, stderr);
    assert_int_equal(probs.n, 0);
    assert_int_equal(d->n, 3);
    assert_string_equal(d->items[0].id, "a");
    assert_string_equal(d->items[0].audio, P("repo/test/../dataset/wav/a.wav"));
    assert_string_equal(d->items[2].audio, P("repo/test/local/c.wav"));
    assert_string_equal(d->items[0].transcript, "今天天气很好");
    assert_string_equal(d->items[1].transcript, "我们去公园散步");
    assert_int_equal(d->items[0].n_captions, 1);
    assert_int_equal(d->items[1].n_captions, 2);
    assert_string_equal(d->items[1].captions[1], "声音低沉");
    assert_int_equal(d->n_labels, 3);
    assert_string_equal(d->labels[d->items[1].label], "悲伤");
    assert_int_equal(d->items[0].n_samples, 16000);
    assert_int_equal(d->items[1].n_samples, 32000);
    assert_int_equal(d->items[2].n_samples, 8000);
    secap_dataset_stats s;
    secap_dataset_stats_compute(d, &s);
    assert_int_equal(s.captions, 4);
    assert_int_equal(s.cap_min_chars, 4);
    assert_int_equal(s.cap_max_chars, 14);
    assert_true(fabs(s.hours - 3.5 / 3600) < 1e-9);
    secap_dataset_stats_free(&s);
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

static void test_missing_ids_and_bad_text(void **st)
{
    (void)st;
    mkdirs(P("ids"));
    write_wav(P("ids/a.wav"), 16000, 16000, 0.5f);
    write_wav(P("ids/b.wav"), 16000, 16000, 0.5f);
    write_wav(P("ids/short.wav"), 300, 16000, 0.5f);
    write_wav(P("ids/empty.wav"), 0, 16000, 0.5f);
    write_wav(P("ids/cut.wav"), 16000, 16000, 0.5f);
    assert_int_equal(truncate(P("ids/cut.wav"), 20), 0);
    WRITE(P("ids/wav.scp"), "a a.wav\nb b.wav\nshort short.wav\nempty empty.wav\ncut cut.wav\n"
                            "gone gone.wav\nbare\nb b.wav\n");
    WRITE(P("ids/text.txt"), "a 你好\nb \xff\xfe bad\nshort 短\nempty 空\ncut 断\ngone 无\nzz 多余\n");
    WRITE(P("ids/fid2captions.json"), "{\"a\": \"好\", \"b\": \"   \", \"short\": \"\xc3\x28\", \"empty\": [],"
                                      " \"cut\": 3, \"zz\": \"x\"}");
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("ids"), &c, &probs);
    secap_dataset_validate(d, &probs);
    secap_problems_print(&probs, stderr);
    int k;
    assert_true(secap_problems_find(&probs, "b", "duplicate id") >= 0);
    k = secap_problems_find(&probs, "bare", "no audio path");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 7);
    k = secap_problems_find(&probs, "b", "line is not valid UTF-8");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 2);
    assert_true(secap_problems_find(&probs, "b", "no transcript") >= 0);
    assert_true(secap_problems_find(&probs, "zz", "not in wav.scp") >= 0);
    assert_true(secap_problems_find(&probs, "b", "empty caption") >= 0);
    assert_true(secap_problems_find(&probs, "short", "caption is not valid UTF-8") >= 0);
    assert_true(secap_problems_find(&probs, "empty", "empty caption list") >= 0);
    assert_true(secap_problems_find(&probs, "cut", "not a string") >= 0);
    assert_true(secap_problems_find(&probs, "gone", "no caption") >= 0);
    assert_true(secap_problems_find(&probs, "gone", "audio file not found") >= 0);
    assert_true(secap_problems_find(&probs, "short", "too short") >= 0);
    assert_true(secap_problems_find(&probs, "empty", "zero length") >= 0);
    assert_true(secap_problems_find(&probs, "cut", "audio refused") >= 0);
    assert_true(secap_problems_find(&probs, "a", "no caption") < 0);
    /* Every problem names a file and a fix. */
    for (int i = 0; i < probs.n; i++) {
        assert_true(probs.v[i].file[0] != 0);
        assert_true(probs.v[i].fix[0] != 0);
    }
    /* fail stops with the count; skip keeps only "a". */
    EXPECT_FATAL(secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_FAIL), "problems in the dataset");
    int dropped = secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_SKIP);
    assert_int_equal(dropped, 5);
    assert_int_equal(d->n, 1);
    assert_string_equal(d->items[0].id, "a");
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

static void test_json_syntax_error_line_col(void **st)
{
    (void)st;
    mkdirs(P("json"));
    write_wav(P("json/a.wav"), 16000, 16000, 0.5f);
    WRITE(P("json/wav.scp"), "a a.wav\n");
    WRITE(P("json/fid2captions.json"), "{\n  \"a\": \"好\",\n  \"b\" \"坏\"\n}\n");
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("json"), &c, &probs);
    int k = secap_problems_find(&probs, NULL, "JSON syntax error");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 3);
    assert_int_equal(probs.v[k].col, 7);
    /* A whole-file problem cannot be skipped. */
    EXPECT_FATAL(secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_SKIP), "cannot be skipped");
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

/* An escaped NUL would cut a caption silently: a problem naming the file,
 * line and id (skippable); a lone surrogate or a directory is a whole-file
 * problem with its own message. */
static void test_json_nul_and_surrogate(void **st)
{
    (void)st;
    mkdirs(P("nul"));
    write_wav(P("nul/a.wav"), 16000, 16000, 0.5f);
    write_wav(P("nul/b.wav"), 16000, 16000, 0.5f);
    WRITE(P("nul/wav.scp"), "a a.wav\nb b.wav\n");
    WRITE(P("nul/fid2captions.json"), "{\"a\": \"好\",\n \"b\": [\"ok\", \"x\\u0000y\"]}\n");
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("nul"), &c, &probs);
    secap_problems_print(&probs, stderr);
    int k = secap_problems_find(&probs, "b", "escaped NUL");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 2);
    assert_int_equal(probs.v[k].col, 16);
    assert_int_equal(probs.n, 1);
    EXPECT_FATAL(secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_FAIL), "escaped NUL");
    secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_SKIP);
    assert_int_equal(d->n, 1);
    assert_string_equal(d->items[0].id, "a");
    secap_problems_free(&probs);
    secap_dataset_free(d);

    /* manifest: the id is the line's "key" */
    WRITE(P("nul/m.jsonl"), "{\"key\": \"a\", \"source\": \"a.wav\", \"target\": \"好\"}\n"
                            "{\"key\": \"b\", \"source\": \"b.wav\", \"target\": \"坏\\u0000\"}\n");
    d = secap_dataset_read(P("nul/m.jsonl"), &c, &probs);
    k = secap_problems_find(&probs, "b", "escaped NUL (\\u0000) in a string");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 2);
    secap_problems_free(&probs);
    secap_dataset_free(d);

    /* lone surrogate: whole file, naming the entry */
    WRITE(P("nul/fid2captions.json"), "{\"a\": \"好\", \"b\": \"\\udc00\"}");
    d = secap_dataset_read(P("nul"), &c, &probs);
    k = secap_problems_find(&probs, NULL, "in the entry of id \"b\": lone UTF-16 surrogate escape \\uDC00");
    assert_true(k >= 0);
    assert_null(probs.v[k].id);
    EXPECT_FATAL(secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_SKIP), "cannot be skipped");
    secap_problems_free(&probs);
    secap_dataset_free(d);

    /* a directory where a file should be */
    unlink(P("nul/fid2captions.json"));
    mkdirs(P("nul/fid2captions.json"));
    d = secap_dataset_read(P("nul"), &c, &probs);
    assert_true(secap_problems_find(&probs, NULL, "is a directory, not a text file") >= 0);
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

static void test_binary_file_as_text(void **st)
{
    (void)st;
    mkdirs(P("bin"));
    write_wav(P("bin/a.wav"), 16000, 16000, 0.5f);
    WRITE(P("bin/wav.scp"), "a a.wav\n");
    WRITE(P("bin/fid2captions.json"), "{\"a\": \"好\"}");
    /* A WAV file given as text.txt. */
    write_wav(P("bin/text.txt"), 100, 16000, 0.5f);
    write_wav(P("bin/fid2captions.json"), 100, 16000, 0.5f);
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("bin"), &c, &probs);
    secap_problems_print(&probs, stderr);
    assert_true(secap_problems_find(&probs, NULL, "binary file") >= 0);
    assert_int_equal(probs.v[secap_problems_find(&probs, NULL, "binary file")].id, NULL);
    secap_problems_free(&probs);
    secap_dataset_free(d);
    /* A missing required file is a problem too, not a crash. */
    secap_problems p2 = {0};
    d = secap_dataset_read(P("nothing_here"), &c, &p2);
    assert_true(secap_problems_find(&p2, NULL, "required file is missing") >= 0);
    assert_int_equal(d->n, 0);
    secap_problems_free(&p2);
    secap_dataset_free(d);
}

/* ------------------------------------------------------------------ manifest */

static void test_manifest(void **st)
{
    (void)st;
    mkdirs(P("man/wav"));
    write_wav(P("man/wav/a.wav"), 16000, 16000, 0.5f);
    write_wav(P("man/wav/b.wav"), 16000, 16000, 0.5f);
    WRITE(P("man/m.jsonl"),
          "{\"key\": \"a\", \"source\": \"wav/a.wav\", \"target\": \"语速较快\", \"transcript\": \"你好\", \"emotion\": \"开心\"}\n"
          "{\"key\": \"b\", \"source\": \"wav/b.wav\", \"target\": [\"一\", \"二\"], \"transcript\": \"再见\", \"emotion\": \"悲伤\"}\n"
          "{\"key\": \"c\", \"source\": \"wav/c.wav\" \"target\": \"x\"}\n"
          "{\"key\": \"d\", \"target\": \"x\"}\n"
          "\n");
    secap_data_config c;
    secap_data_config_default(&c);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("man/m.jsonl"), &c, &probs);
    secap_problems_print(&probs, stderr);
    assert_int_equal(d->n, 2);
    assert_string_equal(d->items[1].captions[1], "二");
    assert_string_equal(d->items[0].transcript, "你好");
    assert_string_equal(d->labels[d->items[0].label], "开心");
    assert_string_equal(d->items[0].audio, P("man/wav/a.wav"));
    int k = secap_problems_find(&probs, NULL, "JSON syntax error");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 3);
    assert_true(probs.v[k].col > 1);
    k = secap_problems_find(&probs, "d", "lacks");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 4);
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

/* -------------------------------------------------------------------- splits */

static secap_dataset *synthetic(int n, int n_labels)
{
    secap_dataset *d = calloc(1, sizeof *d);
    d->source = strdup("synthetic");
    d->items = calloc((size_t)n, sizeof *d->items);
    d->n = n;
    d->n_labels = n_labels;
    d->labels = calloc((size_t)n_labels + 1, sizeof *d->labels);
    for (int l = 0; l < n_labels; l++) { char b[16]; snprintf(b, sizeof b, "L%d", l); d->labels[l] = strdup(b); }
    for (int i = 0; i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "utt%05d", i);
        d->items[i].id = strdup(b);
        d->items[i].audio = strdup("/nonexistent.wav");
        d->items[i].label = n_labels ? i % n_labels : -1;
        d->items[i].n_samples = 8000 + (i * 7919) % 64000;
    }
    return d;
}

static void test_hash_split(void **st)
{
    (void)st;
    secap_dataset *d = synthetic(20000, 0);
    double r[3] = { 0.8, 0.1, 0.1 };
    secap_split_by_hash(d, 7, r);
    int count[3] = {0}, *first = malloc(20000 * sizeof(int));
    for (int i = 0; i < d->n; i++) { count[d->items[i].split]++; first[i] = d->items[i].split; }
    assert_true(abs(count[0] - 16000) < 300);
    assert_true(abs(count[1] - 2000) < 150);
    assert_true(abs(count[2] - 2000) < 150);
    secap_split_by_hash(d, 7, r);
    for (int i = 0; i < d->n; i++) assert_int_equal(first[i], d->items[i].split);
    secap_split_by_hash(d, 8, r);
    int moved = 0;
    for (int i = 0; i < d->n; i++) moved += first[i] != d->items[i].split;
    assert_true(moved > 1000);
    free(first);
    secap_dataset_free(d);
}

static void test_list_split(void **st)
{
    (void)st;
    mkdirs(P("lists"));
    WRITE(P("lists/dev.list"), "utt00001\nutt00003 \n\n");
    WRITE(P("lists/test.list"), "utt00002\nnosuch\n");
    secap_dataset *d = synthetic(5, 0);
    secap_problems probs = {0};
    const char *const paths[3] = { P("lists/train.list"), P("lists/dev.list"), P("lists/test.list") };
    assert_int_equal(secap_split_from_lists(d, paths, &probs), 0);
    assert_int_equal(d->items[0].split, SECAP_SPLIT_TRAIN);
    assert_int_equal(d->items[1].split, SECAP_SPLIT_DEV);
    assert_int_equal(d->items[2].split, SECAP_SPLIT_TEST);
    assert_int_equal(d->items[3].split, SECAP_SPLIT_DEV);
    assert_int_equal(probs.n, 1);
    assert_int_equal(probs.v[0].line, 2);
    /* an id in two lists is never moved silently: a problem naming file, line and id */
    WRITE(P("lists/train.list"), "utt00004\nutt00003\n");
    WRITE(P("lists/test.list"), "utt00002\nutt00004\nutt00002\n");
    secap_problems_free(&probs);
    assert_int_equal(secap_split_from_lists(d, paths, &probs), 0);
    secap_problems_print(&probs, stderr);
    assert_int_equal(probs.n, 3);
    int k = secap_problems_find(&probs, "utt00003", "id is in both the train list");
    assert_true(k >= 0);
    assert_string_equal(probs.v[k].file, P("lists/dev.list"));
    assert_int_equal(probs.v[k].line, 2);
    assert_non_null(strstr(probs.v[k].what, "lists/train.list line 2) and the dev list"));
    k = secap_problems_find(&probs, "utt00004", "id is in both the train list");
    assert_int_equal(probs.v[k].line, 2);
    assert_string_equal(probs.v[k].file, P("lists/test.list"));
    assert_true(secap_problems_find(&probs, "utt00002", "id listed twice in the test list (first on line 1)") >= 0);
    assert_int_equal(d->items[3].split, SECAP_SPLIT_TRAIN);   /* stays where it was listed first */
    assert_int_equal(d->items[4].split, SECAP_SPLIT_TRAIN);
    /* a NUL byte would cut an id silently */
    write_file(P("lists/test.list"), "utt00002\nutt\0003\n", 14);
    secap_problems_free(&probs);
    assert_int_equal(secap_split_from_lists(d, paths, &probs), 0);
    k = secap_problems_find(&probs, NULL, "NUL byte in the test list");
    assert_true(k >= 0);
    assert_int_equal(probs.v[k].line, 2);
    const char *const none[3] = { P("lists/x"), NULL, P("lists/y") };
    assert_int_equal(secap_split_from_lists(d, none, &probs), -1);
    secap_problems_free(&probs);
    secap_dataset_free(d);
}

static void test_config_keys(void **st)
{
    (void)st;
    secap_data_config c;
    secap_data_config_default(&c);
    assert_int_equal(c.on_error, SECAP_ON_ERROR_FAIL);
    assert_int_equal(secap_data_config_set(&c, "data.on_error", "skip"), 0);
    assert_int_equal(c.on_error, SECAP_ON_ERROR_SKIP);
    assert_int_equal(secap_data_config_set(&c, "split_ratios", "0.7,0.2,0.1"), 0);
    assert_true(fabs(c.split_ratios[1] - 0.2) < 1e-12);
    assert_int_equal(secap_data_config_set(&c, "normalize", "true"), 0);
    assert_int_equal(c.normalize, 1);
    assert_int_equal(secap_data_config_set(&c, "model.hidden", "3"), -1);
    EXPECT_FATAL(secap_data_config_set(&c, "on_error", "ignore"), "fail or skip");
    EXPECT_FATAL(secap_data_config_set(&c, "split_ratios", "0.5,0.1"), "split_ratios");
    EXPECT_FATAL(secap_data_config_set(&c, "batch_size", "2.5"), "batch_size");
}

/* ------------------------------------------------------------------ samplers */

static int64_t padding(const secap_epoch_plan *p, const secap_dataset *d)
{
    int64_t pad = 0;
    for (int b = 0; b < p->n_batches; b++) {
        int64_t mx = 0, sum = 0;
        for (int i = p->start[b]; i < p->start[b + 1]; i++) {
            int64_t n = d->items[p->items[i]].n_samples;
            mx = n > mx ? n : mx;
            sum += n;
        }
        pad += mx * (p->start[b + 1] - p->start[b]) - sum;
    }
    return pad;
}

static void test_bucket_sampler(void **st)
{
    (void)st;
    secap_dataset *d = synthetic(1000, 0);
    int *idx;
    int n = secap_split_indices(d, -1, &idx);
    secap_data_config c;
    secap_data_config_default(&c);
    c.batch_size = 16;
    secap_rng r1, r2;
    secap_rng_seed(&r1, 3);
    secap_rng_seed(&r2, 3);
    secap_epoch_plan a, b, plain;
    secap_plan_buckets(&a, d, idx, n, &c, &r1);
    secap_plan_buckets(&b, d, idx, n, &c, &r2);
    secap_plan_buckets(&plain, d, idx, n, &c, NULL);
    assert_int_equal(a.n_items, 1000);
    int *seen = calloc(1000, sizeof(int));
    for (int i = 0; i < a.n_items; i++) { seen[a.items[i]]++; assert_int_equal(a.items[i], b.items[i]); }
    for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
    for (int k = 0; k < a.n_batches; k++) assert_true(a.start[k + 1] - a.start[k] <= 16);
    /* Bucketing must cut the padding well below file order. */
    print_message("padding: bucketed %lld, file order %lld samples\n",
                  (long long)padding(&a, d), (long long)padding(&plain, d));
    assert_true(padding(&a, d) * 5 < padding(&plain, d));
    /* A cap on B x T_max splits batches of long clips. */
    c.max_batch_seconds = 10.0;
    secap_epoch_plan capped;
    secap_plan_buckets(&capped, d, idx, n, &c, &r1);
    for (int k = 0; k < capped.n_batches; k++) {
        int64_t mx = 0;
        int cnt = capped.start[k + 1] - capped.start[k];
        for (int i = capped.start[k]; i < capped.start[k + 1]; i++)
            mx = d->items[capped.items[i]].n_samples > mx ? d->items[capped.items[i]].n_samples : mx;
        assert_true(cnt == 1 || mx * cnt <= 160000);
    }
    secap_epoch_plan_free(&a);
    secap_epoch_plan_free(&b);
    secap_epoch_plan_free(&plain);
    secap_epoch_plan_free(&capped);
    free(seen);
    free(idx);
    secap_dataset_free(d);
}

static void test_class_sampler(void **st)
{
    (void)st;
    secap_dataset *d = synthetic(700, 7);
    int *idx;
    int n = secap_split_indices(d, -1, &idx);
    secap_rng r;
    secap_rng_seed(&r, 11);
    secap_epoch_plan p;
    secap_plan_classes(&p, d, idx, n, 4, 3, &r);
    assert_true(p.n_batches >= 50);
    int *seen = calloc(700, sizeof(int));
    for (int b = 0; b < p.n_batches; b++) {
        assert_int_equal(p.start[b + 1] - p.start[b], 12);
        int per[7] = {0};
        for (int i = p.start[b]; i < p.start[b + 1]; i++) { per[d->items[p.items[i]].label]++; seen[p.items[i]]++; }
        int classes = 0;
        for (int l = 0; l < 7; l++) {
            assert_true(per[l] == 0 || per[l] == 3);
            classes += per[l] == 3;
        }
        assert_int_equal(classes, 4);
    }
    for (int i = 0; i < 700; i++) assert_true(seen[i] <= 1);
    secap_epoch_plan_free(&p);
    free(seen);
    free(idx);
    secap_dataset_free(d);
}

/* ------------------------------------------------------------ batch, loader */

/* 40 items of 0.3..1.5 s at 24 kHz with labels, for batches and loaders. */
static secap_dataset *audio_dataset(secap_data_config *c)
{
    mkdirs(P("ld"));
    FILE *scp = fopen(P("ld/wav.scp"), "w"), *cap = fopen(P("ld/fid2captions.json"), "w");
    FILE *emo = fopen(P("ld/emotion.txt"), "w");
    fprintf(cap, "{");
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "u%02d.wav", i);
        write_wav(P("ld/%s", name), 7200 + 3000 * (i % 11), 24000, 0.1f + 0.01f * (float)i);
        fprintf(scp, "u%02d %s\n", i, name);
        fprintf(cap, "%s\"u%02d\": [\"甲%d\", \"乙%d\", \"丙%d\"]", i ? "," : "", i, i, i, i);
        fprintf(emo, "u%02d e%d\n", i, i % 4);
    }
    fprintf(cap, "}\n");
    fclose(scp);
    fclose(cap);
    fclose(emo);
    secap_data_config_default(c);
    c->split_ratios[0] = 1.0;
    c->split_ratios[1] = c->split_ratios[2] = 0.0;
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("ld"), c, &probs);
    secap_dataset_validate(d, &probs);
    secap_problems_print(&probs, stderr);
    assert_int_equal(probs.n, 0);
    secap_problems_free(&probs);
    return d;
}

static void test_batch_fill(void **st)
{
    (void)st;
    secap_data_config c;
    secap_dataset *d = audio_dataset(&c);
    secap_batch b = {0};
    int items[3] = { 0, 1, 5 };
    secap_batch_fill(&b, d, items, 3, &c, NULL);
    assert_int_equal(b.B, 3);
    assert_int_equal(b.lengths[0], 4800);
    assert_int_equal(b.lengths[1], 6800);
    assert_int_equal(b.T, 14800);
    for (int64_t t = b.lengths[0]; t < b.T; t++) assert_true(b.audio[t] == 0.0f);
    assert_true(b.audio[100] != 0.0f);
    assert_int_equal(b.caption[0], 0);
    /* Crop to 0.5 s and normalise: every row is 8000 long with unit variance. */
    c.max_seconds = 0.5;
    c.normalize = 1;
    secap_rng r;
    secap_rng_seed(&r, 2);
    secap_batch_fill(&b, d, items, 3, &c, &r);
    assert_int_equal(b.T, 8000);
    assert_int_equal(b.lengths[0], 4800);
    assert_int_equal(b.lengths[2], 8000);
    double s2 = 0;
    for (int t = 0; t < 8000; t++) s2 += (double)b.audio[2 * 8000 + t] * b.audio[2 * 8000 + t];
    assert_true(fabs(s2 / 8000 - 1.0) < 1e-3);
    secap_batch_free(&b);
    secap_dataset_free(d);
}

/* Item ids and caption choices of the next n batches, as one string. */
static void take(secap_loader *L, int n, char *out, size_t cap)
{
    out[0] = 0;
    for (int k = 0; k < n; k++) {
        const secap_batch *b = secap_loader_next(L);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%lld.%lld:", (long long)b->epoch, (long long)b->step);
        for (int i = 0; i < b->B; i++) {
            len = strlen(out);
            snprintf(out + len, cap - len, "%d/%d/%lld/%.6f,", b->item[i], b->caption[i],
                     (long long)b->lengths[i], b->audio[(size_t)i * (size_t)b->T + 10]);
        }
        len = strlen(out);
        snprintf(out + len, cap - len, "|");
    }
}

static void test_loader_order_and_resume(void **st)
{
    (void)st;
    secap_data_config c;
    secap_dataset *d = audio_dataset(&c);
    c.batch_size = 4;
    c.max_seconds = 0.6;
    c.workers = 1;
    c.prefetch = 2;
    secap_loader *one = secap_loader_create(d, SECAP_SPLIT_TRAIN, 1, &c);
    assert_int_equal(secap_loader_batches(one), 10);
    static char a[65536], b[65536], r[65536];
    take(one, 25, a, sizeof a);  /* crosses two epoch boundaries */
    c.workers = 3;
    c.prefetch = 5;
    secap_loader *three = secap_loader_create(d, SECAP_SPLIT_TRAIN, 1, &c);
    take(three, 25, b, sizeof b);
    assert_string_equal(a, b);
    /* Resume: a new loader set to the state after 13 batches continues with batch 14. */
    secap_loader *first = secap_loader_create(d, SECAP_SPLIT_TRAIN, 1, &c);
    take(first, 13, r, sizeof r);
    secap_loader_state s = secap_loader_get_state(first);
    assert_int_equal(s.epoch, 1);
    assert_int_equal(s.step, 3);
    secap_loader *resumed = secap_loader_create(d, SECAP_SPLIT_TRAIN, 1, &c);
    secap_loader_set_state(resumed, s);
    take(resumed, 12, r, sizeof r);
    const char *tail = a;
    for (int k = 0; k < 13; k++) tail = strchr(tail, '|') + 1;
    assert_string_equal(r, tail);
    /* Epochs differ in order. */
    assert_true(strncmp(a + 4, strchr(strstr(a, "1.0:"), ':'), 40) != 0);
    secap_loader_free(one);
    secap_loader_free(three);
    secap_loader_free(first);
    secap_loader_free(resumed);
    /* The N x K loader gives class-balanced batches. */
    c.classes_per_batch = 2;
    c.per_class = 2;
    secap_loader *nk = secap_loader_create(d, SECAP_SPLIT_TRAIN, 1, &c);
    for (int k = 0; k < 12; k++) {
        const secap_batch *bt = secap_loader_next(nk);
        assert_int_equal(bt->B, 4);
        int per[4] = {0};
        for (int i = 0; i < 4; i++) per[bt->label[i]]++;
        int classes = 0;
        for (int l = 0; l < 4; l++) classes += per[l] == 2;
        assert_int_equal(classes, 2);
    }
    secap_loader_free(nk);
    secap_dataset_free(d);
}


/* ---------------------------------------------------------- HDF5, feature cache */

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void test_h5io_roundtrip(void **st)
{
    (void)st;
    const char *path = P("w.h5");
    secap_h5 *h = secap_h5_create(path);
    float w[6] = { 1, 2, 3, 4, 5, 6 }, bias[3] = { -1, 0.5f, 7 };
    int64_t dw[2] = { 2, 3 }, db[1] = { 3 };
    secap_h5_write_f32(h, "encoder.layers.0.q_proj.weight", w, 2, dw, 6);
    secap_h5_write_f32(h, "encoder.layers.0.q_proj.bias", bias, 1, db, 0);
    secap_h5_set_attr_str(h, NULL, "model_type", "hubert");
    secap_h5_set_attr_int(h, NULL, "hidden_size", 1024);
    secap_h5_set_attr_double(h, NULL, "layer_norm_eps", 1e-5);
    secap_h5_set_attr_str(h, "encoder.layers.0.q_proj.bias", "note", "偏置");
    /* Nothing under the real name until commit. */
    assert_int_equal(file_size(path), -1);
    secap_h5_commit(h);
    assert_true(file_size(path) > 0);
    h = secap_h5_open(path, 0);
    int rank;
    int64_t dims[SECAP_H5_MAX_RANK];
    float *x = secap_h5_read_f32(h, "encoder.layers.0.q_proj.weight", &rank, dims);
    assert_int_equal(rank, 2);
    assert_int_equal(dims[0], 2);
    assert_int_equal(dims[1], 3);
    for (int i = 0; i < 6; i++) assert_true(x[i] == w[i]);
    free(x);
    assert_int_equal(secap_h5_shape(h, "encoder.layers.0.q_proj.bias", dims), 1);
    char *s;
    int64_t iv;
    double dv;
    assert_int_equal(secap_h5_get_attr_str(h, NULL, "model_type", &s), 0);
    assert_string_equal(s, "hubert");
    free(s);
    assert_int_equal(secap_h5_get_attr_str(h, "encoder.layers.0.q_proj.bias", "note", &s), 0);
    assert_string_equal(s, "偏置");
    free(s);
    assert_int_equal(secap_h5_get_attr_int(h, NULL, "hidden_size", &iv), 0);
    assert_int_equal(iv, 1024);
    assert_int_equal(secap_h5_get_attr_double(h, NULL, "layer_norm_eps", &dv), 0);
    assert_true(dv == 1e-5);
    assert_int_equal(secap_h5_get_attr_int(h, NULL, "absent", &iv), -1);
    int n;
    char **names = secap_h5_list(h, &n);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "encoder.layers.0.q_proj.bias");
    secap_h5_free_names(names, n);
    EXPECT_FATAL(secap_h5_read_f32(h, "missing.weight", NULL, NULL), "no dataset named missing.weight");
    secap_h5_close(h);
    /* A created file that is closed without commit leaves nothing behind. */
    h = secap_h5_create(P("aborted.h5"));
    secap_h5_write_f32(h, "x", w, 1, db, 0);
    secap_h5_close(h);
    assert_int_equal(file_size(P("aborted.h5")), -1);
    EXPECT_FATAL(secap_h5_open(P("aborted.h5"), 0), "aborted.h5");
    WRITE(P("not.h5"), "plain text");
    assert_int_equal(secap_h5_is_readable(P("not.h5")), 0);
}

static void test_feature_cache(void **st)
{
    (void)st;
    const char *path = P("feats.h5");
    secap_featcache_key key = { "hubert.h5 size=123 mtime=456", "sr=16000 normalize=0 layer=-1" };
    int rebuilt = -1;
    secap_featcache *fc = secap_featcache_open(path, &key, &rebuilt);
    assert_int_equal(rebuilt, 1);
    float *a = calloc(1000 * 256, sizeof(float));
    for (int i = 0; i < 256; i++) a[i] = (float)i;
    float b[4] = { 1, 2, 3, 4 };
    secap_featcache_put(fc, "spk1/utt%1", a, 1000, 256);
    secap_featcache_put(fc, "u2", b, 2, 2);
    secap_featcache_close(fc);
    /* Deflate: a mostly-zero 1000 x 256 float array takes far less than 1 MB. */
    print_message("cache file %ld bytes for %d raw bytes\n", file_size(path), 1000 * 256 * 4);
    assert_true(file_size(path) < 100000);
    fc = secap_featcache_open(path, &key, &rebuilt);
    assert_int_equal(rebuilt, 0);
    assert_true(secap_featcache_has(fc, "spk1/utt%1"));
    assert_false(secap_featcache_has(fc, "u3"));
    int64_t T, D;
    float *x = secap_featcache_get(fc, "spk1/utt%1", &T, &D);
    assert_int_equal(T, 1000);
    assert_int_equal(D, 256);
    assert_memory_equal(x, a, 1000 * 256 * sizeof(float));
    free(x);
    assert_null(secap_featcache_get(fc, "u3", &T, &D));
    secap_featcache_close(fc);
    /* Other encoder weights: stale, rebuilt empty, and the new file replaces it. */
    secap_featcache_key other = { "hubert.h5 size=123 mtime=999", key.settings };
    fc = secap_featcache_open(path, &other, &rebuilt);
    assert_int_equal(rebuilt, 1);
    assert_false(secap_featcache_has(fc, "u2"));
    secap_featcache_put(fc, "u2", b, 2, 2);
    secap_featcache_close(fc);
    fc = secap_featcache_open(path, &key, &rebuilt);
    assert_int_equal(rebuilt, 1);
    secap_featcache_close(fc);
    /* Other audio settings are stale too. */
    secap_featcache_key norm = { key.encoder, "sr=16000 normalize=1 layer=-1" };
    fc = secap_featcache_open(path, &norm, &rebuilt);
    assert_int_equal(rebuilt, 1);
    secap_featcache_close(fc);
    free(a);
}

/* A file of another kind is never replaced by a cache; damaged entries are
 * found by their digest; non-finite features are not written. */
static void test_feature_cache_safety(void **st)
{
    (void)st;
    secap_featcache_key key = { "enc", "sr=16000" };
    int rebuilt;
    WRITE(P("junk.h5"), "junk");
    EXPECT_FATAL(secap_featcache_open(P("junk.h5"), &key, &rebuilt),
                 "junk.h5: exists and is a text file of 4 bytes, not a feature cache; it is never overwritten");
    assert_int_equal(file_size(P("junk.h5")), 4);
    secap_h5 *h = secap_h5_create(P("weights.h5"));
    float w[4] = { 1, 2, 3, 4 };
    int64_t d4[1] = { 4 };
    secap_h5_write_f32(h, "encoder.w", w, 1, d4, 0);
    secap_h5_set_attr_str(h, NULL, "model_type", "hubert");
    secap_h5_commit(h);
    volatile long wsize = file_size(P("weights.h5"));
    EXPECT_FATAL(secap_featcache_open(P("weights.h5"), &key, &rebuilt), "is a model weight file (model_type = hubert)");
    assert_int_equal(file_size(P("weights.h5")), wsize);
    h = secap_h5_create(P("other.h5"));
    secap_h5_write_f32(h, "x", w, 1, d4, 0);
    secap_h5_commit(h);
    EXPECT_FATAL(secap_featcache_check_path(P("other.h5")), "an HDF5 file without the attribute format = secap-features-* (1 dataset, e.g. x)");
    mkdirs(P("outdir"));
    EXPECT_FATAL(secap_featcache_open(P("outdir"), &key, &rebuilt), "outdir: is a directory");
    /* an old-format cache is a cache: stale, rebuilt */
    h = secap_h5_create(P("old.h5"));
    secap_h5_set_attr_str(h, NULL, "format", "secap-features-1");
    secap_h5_commit(h);
    secap_featcache *fc = secap_featcache_open(P("old.h5"), &key, &rebuilt);
    assert_int_equal(rebuilt, 1);
    secap_featcache_close(fc);

    /* digests: values rewritten in place (valid HDF5, other numbers) and a
     * chunk overwritten with garbage are both caught */
    const char *path = P("dig.h5");
    fc = secap_featcache_open(path, &key, &rebuilt);
    float a[64 * 32], b[6] = { 1, 2, 3, 4, 5, 6 };
    for (int i = 0; i < 64 * 32; i++) a[i] = sinf(0.01f * (float)i);
    secap_featcache_put(fc, "a", a, 64, 32);
    secap_featcache_put(fc, "b", b, 3, 2);
    secap_featcache_put(fc, "c", b, 2, 3);
    float nanf_[4] = { 0, 0, NAN, 0 };
    EXPECT_FATAL(secap_featcache_put(fc, "bad", nanf_, 2, 2), "features of bad hold NaN at frame 1, dim 0 of [2 x 2]; not written");
    secap_featcache_close(fc);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "b", H5P_DEFAULT);
    float b2[6] = { 1, 2, 3, 4, 5, 7 };
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b2);
    H5Dclose(ds);
    ds = H5Dopen2(f, "a", H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t off[2];
    unsigned mask;
    haddr_t addr;
    hsize_t csize;
    assert_true(H5Dget_chunk_info(ds, sp, 0, off, &mask, &addr, &csize) >= 0);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    FILE *raw = fopen(path, "r+b");
    fseek(raw, (long)(addr + csize / 2), SEEK_SET);
    char junk[16];
    memset(junk, 0x5a, sizeof junk);
    fwrite(junk, 1, sizeof junk, raw);
    fclose(raw);
    fc = secap_featcache_open(path, &key, &rebuilt);
    assert_int_equal(rebuilt, 0);
    assert_true(secap_featcache_has(fc, "b"));     /* present, but ... */
    int64_t T, D;
    EXPECT_FATAL(secap_featcache_get(fc, "b", &T, &D), "the features of b are damaged: its values do not match the digest");
    EXPECT_FATAL(secap_featcache_get(fc, "a", &T, &D), "the features of a are damaged");
    char why[200];
    assert_int_equal(secap_featcache_verify(fc, "b", why, sizeof why), -1);
    assert_int_equal(secap_featcache_verify(fc, "a", why, sizeof why), -1);
    assert_int_equal(secap_featcache_verify(fc, "c", why, sizeof why), 1);
    assert_int_equal(secap_featcache_verify(fc, "zz", why, sizeof why), 0);
    float *x = secap_featcache_get(fc, "c", &T, &D);
    assert_int_equal(T, 2);
    assert_memory_equal(x, b, sizeof b);
    free(x);
    secap_featcache_close(fc);
}

/* kill -9 while extending: what was flushed survives, the file opens; a
 * killed run's temporary is removed (and reported) by the next run. */
static void test_feature_cache_kill(void **st)
{
    (void)st;
    secap_featcache_key key = { "enc", "sr=16000" };
    const char *path = P("killed.h5");
    float v[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    pid_t pid = fork();
    if (pid == 0) {                                   /* new cache: put, flush, put, die */
        secap_featcache *fc = secap_featcache_open(path, &key, NULL);
        secap_featcache_put(fc, "u1", v, 2, 4);
        secap_featcache_flush(fc);
        secap_featcache_put(fc, "u2", v, 4, 2);
        raise(SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    int rebuilt = -1;
    secap_featcache *fc = secap_featcache_open(path, &key, &rebuilt);
    assert_int_equal(rebuilt, 0);
    assert_true(secap_featcache_has(fc, "u1"));
    int64_t T, D;
    free(secap_featcache_get(fc, "u1", &T, &D));
    secap_featcache_close(fc);

    pid = fork();
    if (pid == 0) {                                   /* a new cache elsewhere, killed before any flush */
        secap_featcache *c2 = secap_featcache_open(P("never.h5"), &key, NULL);
        secap_featcache_put(c2, "u1", v, 2, 4);
        raise(SIGKILL);
    }
    waitpid(pid, &status, 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", P("never.h5"), (long)pid);
    assert_true(file_size(tmp) > 0);                  /* SIGKILL cannot clean up ... */
    assert_int_equal(file_size(P("never.h5")), -1);
    fc = secap_featcache_open(P("never.h5"), &key, &rebuilt);   /* ... the next run does */
    assert_int_equal(file_size(tmp), -1);
    secap_featcache_close(fc);

    /* SIGTERM runs the handler: the temporary goes with the process */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    if (pid == 0) {
        secap_featcache *c3 = secap_featcache_open(P("termed.h5"), &key, NULL);
        secap_featcache_put(c3, "u1", v, 2, 4);
        assert_int_equal(write(pfd[1], "x", 1), 1);
        for (;;) pause();
    }
    char ch;
    assert_int_equal(read(pfd[0], &ch, 1), 1);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", P("termed.h5"), (long)pid);
    assert_true(file_size(tmp) > 0);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
    assert_int_equal(file_size(tmp), -1);
    close(pfd[0]);
    close(pfd[1]);
}

/* data.min_sample_rate / max_audio_seconds reach validation (the problem
 * names the item); a NaN sample stops the batch naming the item and sample. */
static void test_audio_bounds_and_nan_items(void **st)
{
    (void)st;
    mkdirs(P("bounds"));
    write_wav(P("bounds/ok.wav"), 16000, 16000, 0.5f);
    write_wav(P("bounds/slow.wav"), 8000, 8000, 0.5f);
    write_wav(P("bounds/long.wav"), 48000, 16000, 0.5f);
    SF_INFO si = { .samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT };
    SNDFILE *sf = sf_open(P("bounds/nan.wav"), SFM_WRITE, &si);
    float x[1600];
    for (int i = 0; i < 1600; i++) x[i] = i == 1234 ? NAN : 0.25f;
    sf_writef_float(sf, x, 1600);
    sf_close(sf);
    WRITE(P("bounds/wav.scp"), "ok ok.wav\nslow slow.wav\nlong long.wav\nnan nan.wav\n");
    WRITE(P("bounds/fid2captions.json"), "{\"ok\": \"a\", \"slow\": \"b\", \"long\": \"c\", \"nan\": \"d\"}");
    secap_data_config c;
    secap_data_config_default(&c);
    assert_int_equal(secap_data_config_set(&c, "data.min_sample_rate", "12000"), 0);
    assert_int_equal(secap_data_config_set(&c, "data.max_audio_seconds", "2.5"), 0);
    EXPECT_FATAL(secap_data_config_set(&c, "max_sample_rate", "0"), "max_sample_rate");
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(P("bounds"), &c, &probs);
    secap_dataset_validate(d, &probs);
    secap_problems_print(&probs, stderr);
    assert_int_equal(probs.n, 2);
    assert_true(secap_problems_find(&probs, "slow", "sample rate 8000 Hz is outside [12000, 384000] Hz") >= 0);
    assert_true(secap_problems_find(&probs, "long", "3.0 s, longer than the 2.5 s limit") >= 0);
    secap_dataset_apply_policy(d, &probs, SECAP_ON_ERROR_SKIP);
    assert_int_equal(d->n, 2);
    secap_batch b = {0};
    int items[2] = { 0, 1 };
    assert_string_equal(d->items[1].id, "nan");
    EXPECT_FATAL(secap_batch_fill(&b, d, items, 2, &c, NULL), "item nan: ");
    EXPECT_FATAL(secap_batch_fill(&b, d, items, 2, &c, NULL), "sample 1234 (0.077 s, mean of 1 channel) is NaN");
    secap_batch_free(&b);
    secap_problems_free(&probs);
    secap_dataset_free(d);
    secap_audio_set_limits(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_secap_layout),
        cmocka_unit_test(test_missing_ids_and_bad_text),
        cmocka_unit_test(test_json_syntax_error_line_col),
        cmocka_unit_test(test_binary_file_as_text),
        cmocka_unit_test(test_json_nul_and_surrogate),
        cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_hash_split),
        cmocka_unit_test(test_list_split),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_audio_bounds_and_nan_items),
        cmocka_unit_test(test_bucket_sampler),
        cmocka_unit_test(test_class_sampler),
        cmocka_unit_test(test_batch_fill),
        cmocka_unit_test(test_loader_order_and_resume),
        cmocka_unit_test(test_h5io_roundtrip),
        cmocka_unit_test(test_feature_cache),
        cmocka_unit_test(test_feature_cache_safety),
        cmocka_unit_test(test_feature_cache_kill),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
