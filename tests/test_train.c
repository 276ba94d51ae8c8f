/* bin/secap-train as a user runs it, on a generated 12-clip dataset, the
 * small HuBERT of tests/ref_hubert.py (features cached once by secap-extract)
 * the SentencePiece model of tests/ref_spm.py and tiny random Q-Former /
 * LLaMA / LoRA models, trained through the stages lm, qformer and caption.  The programs are found
 * next to this test's directory (bin/ or bin/asan/).
 *   - config errors: unknown section, unknown key, bad values, a missing
 *     required key, stage order: exit 1 and a message naming file:line, the
 *     key and the accepted values;
 *   - --dry-run prints the model summary;
 *   - exact resume: the losses (and every other logged term but timings) of
 *     a run stopped at step k (train.stop_at_step, SIGTERM, kill -9 during a
 *     step, kill -9 during a save) and resumed equal the uninterrupted run's,
 *     bit for bit (metrics.jsonl prints %.9g: floats read back exactly);
 *   - refused checkpoints: truncated, not a checkpoint, another model shape;
 *   - eval.caption_every: dev_bleu4 / dev_cider / dev_emotion on the caption
 *     steps; with the dev fields cut out the metrics equal a run without it
 *     (the evaluation does not disturb training); stop + resume equals the
 *     uninterrupted run with it on; best.h5 (also with train.keep = 1) holds
 *     the step of the highest dev_cider, as best.json says, and secap-eval
 *     on best.h5 scores the dev clips as the in-memory evaluation did;
 *   - stage-1 dev probes (src/train/probe.c): the probe functions on
 *     hand-made embeddings with known answers (recall 1, 0, chance level;
 *     centroid accuracy 1 and 0; the ridge transcript probe on a linear and
 *     an unrelated map); the dev_* probe fields on the qformer eval steps,
 *     in range, chance fields = K/N; loss.mi_monitor: with w_mi = 0 the
 *     estimator trains ("est" non-zero) while every model term equals the
 *     run without it, and stop + resume with it is exact;
 *   - secap-embed --model <run dir | ckpt-*.h5>: the Q-Former's tensors are
 *     the checkpoint's, the run directory means its newest checkpoint, an
 *     older checkpoint gives other embeddings, speech and --retrieve work;
 *   - loss.caption_w_mi / caption_w_con: the caption stage's lines carry the
 *     stage-1 terms and their weighted sum; exact resume with them;
 *   - ablations: qformer.freeze_in_caption keeps every Q-Former tensor but
 *     audio_llama_project bit-identical across the caption stage;
 *     qformer.bridge = linear trains (loss falls, bridge.* saved, no
 *     Q-Former); train.init_from from an lm-only run equals the full run bit
 *     for bit; exact resume for all three; [config] base = FILE;
 *   - tools/plot_run.sh writes PNGs (gnuplot required), secap-train draws
 *     them at each stage end (log.plots) and goes on without gnuplot. */
#include "testutil.h"
#include "tinyds.h"
#include "../src/train/train_internal.h"
#include "secap/ckpt_qformer.h"
#include "secap/dataset.h"
#include "secap/featcache.h"

#include "secap/fileutil.h"
#include "secap/weights.h"

#include <dirent.h>
#include <libgen.h>
#include <signal.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char g_bin[1024];
static char g_out[1 << 16];
static char g_hubert[4096];
static char g_spm[4096];

/* Runs "<bin>/<prog> <args>" with env prefix in tu_dir; output into g_out. */
static int run(const char *env, const char *prog, const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s SECAP_THREADS=1 OMP_WAIT_POLICY=passive '%s/%s' %s 2>&1", tu_dir,
             env ? env : "", g_bin, prog, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, env, prog, args, substr)                                                     \
    do {                                                                                                \
        int rc_ = run(env, prog, args);                                                                 \
        if (rc_ != (status)) fail_msg("%s %s: exit %d, expected %d\n%s", prog, args, rc_, status, g_out); \
        if (!strstr(g_out, substr)) fail_msg("%s %s: output lacks \"%s\":\n%s", prog, args, substr, g_out); \
    } while (0)


static int setup(void **st)
{
    if (tds_bin_dir(g_bin, sizeof g_bin)) return -1;
    if (!realpath(tu_ref_path("hubert_base_small.h5"), g_hubert)) {
        fprintf(stderr, "test_train: %s is missing (hint: tests/run.sh makes it with tests/ref_hubert.py)\n",
                tu_ref_path("hubert_base_small.h5"));
        return -1;
    }
    if (!realpath(tu_ref_path("spm_llama_s.model"), g_spm)) {
        fprintf(stderr, "test_train: %s is missing (hint: tests/run.sh makes it with tests/ref_spm.py)\n",
                tu_ref_path("spm_llama_s.model"));
        return -1;
    }
    if (tu_tmpdir_setup(st)) return -1;
    /* the dataset: 12 clips of 0.4-0.6 s, 4 emotions, 2 captions each */
    tds_write(12, NULL, 0);
    char args[8192];
    if (run(NULL, "secap-vocab", "--data ds --out vocab.txt")) { fprintf(stderr, "%s", g_out); return -1; }
    snprintf(args, sizeof args, "--threads 1 --hubert '%s' --data ds --out feats.h5", g_hubert);
    if (run(NULL, "secap-extract", args)) { fprintf(stderr, "%s", g_out); return -1; }
    char ini[16384];
    snprintf(ini, sizeof ini,
             "# tiny models for tests/test_train.c\n"
             "[data]\ndir = ds\nbatch_size = 4\nworkers = 1\nprefetch = 2\nsplit_ratios = 0.75,0.25,0\n"
             "[hubert]\nweights = %s\ncache = feats.h5\n"
             "[qformer]\nvocab = vocab.txt\nhidden_size = 32\nnum_hidden_layers = 2\nnum_attention_heads = 2\n"
             "intermediate_size = 64\nnum_query_tokens = 4\nencoder_width = 32\nembed_dim = 16\n"
             "max_position_embeddings = 64\n"
             "[llama]\ntokenizer = %s\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n"
             "num_attention_heads = 2\nmax_position_embeddings = 128\nbf16 = false\n"
             "[lora]\nr = 4\n[lm]\nblock_size = 16\nbatch_size = 4\n[loss]\nmi_hidden = 16\n"
             "[optim]\nlr = 1e-3\nwarmup = 2\n"
             "[eval]\nevery = 2\nbatches = 2\n"
             "[log]\nplots = false\n"
             "[train]\nout_dir = run\nmax_steps = 4\nstages = lm,qformer,caption\nsave_every = 2\n", g_hubert, g_spm);
    tu_write_text("tiny.ini", ini);
    return 0;
}

/* ------------------------------------------------------------ config errors */

static void test_config_errors(void **st)
{
    (void)st;
    tu_write_text("bad_key.ini", "[data]\ndir = ds\n[train]\nout_dir = r\nmax_steps = 1\nstages = qformer\nmax_stepz = 3\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config bad_key.ini", "bad_key.ini:7: unknown key train.max_stepz");
    assert_non_null(strstr(g_out, "accepted keys: out_dir, max_steps"));
    tu_write_text("bad_sec.ini", "[data]\ndir = ds\n[trian]\nout_dir = r\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config bad_sec.ini", "bad_sec.ini:4: unknown section [trian]");
    assert_non_null(strstr(g_out, "accepted sections: data, hubert"));
    tu_write_text("bad_val.ini", "[data]\ndir = ds\n[optim]\nschedule = cosin\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config bad_val.ini", "bad_val.ini:4: optim.schedule = \"cosin\"");
    assert_non_null(strstr(g_out, "accepted values: cosine,linear,constant"));
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.max_steps=-3 --dry-run",
               "train.max_steps = \"-3\" is not an integer in [0,");
    tu_write_text("bad_lora.ini", "[lora]\nr = many\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config bad_lora.ini", "bad_lora.ini:2: config lora.r = 'many'");
    tu_write_text("missing.ini", "[data]\ndir = ds\n[train]\nout_dir = r\nstages = qformer\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config missing.ini", "required key train.max_steps is missing");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.stages=caption,qformer --dry-run",
               "stages run in the order lm, qformer, caption");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --llama.tokenizer=vocab.txt --dry-run",
               "stage lm needs a SentencePiece tokenizer.model");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --llama.bf16=true --dry-run",
               "stage lm trains the LLaMA base");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --hubert.weights=nope.h5 --dry-run",
               "tools/convert_hf.py");
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --dry-run", "model summary");
    assert_non_null(strstr(g_out, "llama.lora"));
    assert_non_null(strstr(g_out, "trainable"));
}

/* -------------------------------------------------------------- resume */

typedef struct { char line[128][1024]; int n; } metrics;

/* The metrics of a run directory with the timing fields cut off. */
static void read_metrics(const char *dir, metrics *m)
{
    FILE *f = fopen(tu_tmp("%s/metrics.jsonl", dir), "r");
    if (!f) fail_msg("%s/metrics.jsonl is missing", dir);
    m->n = 0;
    while (m->n < 128 && fgets(m->line[m->n], sizeof m->line[0], f)) {
        char *t = strstr(m->line[m->n], ",\"samples_per_s\"");
        if (!t) fail_msg("%s/metrics.jsonl line %d lacks samples_per_s: %s", dir, m->n + 1, m->line[m->n]);
        *t = 0;
        m->n++;
    }
    fclose(f);
}

static metrics g_full;

static void expect_same(const char *dir, const char *what)
{
    metrics m;
    read_metrics(dir, &m);
    if (m.n != g_full.n) fail_msg("%s: %d metric lines, the uninterrupted run has %d", what, m.n, g_full.n);
    for (int i = 0; i < m.n; i++)
        if (strcmp(m.line[i], g_full.line[i]))
            fail_msg("%s: step %d differs:\n  resumed:       %s\n  uninterrupted: %s", what, i + 1, m.line[i],
                     g_full.line[i]);
    print_message("  %s: %d steps equal the uninterrupted run's bit for bit\n", what, m.n);
}

/* The metrics.jsonl of run directories a and b equal line for line. */
static void expect_metrics_equal(const char *a, const char *b)
{
    metrics m, r;
    read_metrics(a, &m);
    read_metrics(b, &r);
    if (m.n != r.n) fail_msg("%s has %d metric lines, %s %d", a, m.n, b, r.n);
    for (int i = 0; i < m.n; i++)
        if (strcmp(m.line[i], r.line[i]))
            fail_msg("step %d differs:\n  %s: %s\n  %s: %s", i + 1, a, m.line[i], b, r.line[i]);
}

static void full_run(void)
{
    if (g_full.n) return;
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=full", "done: 12 steps");
    /* a fresh run into a directory with checkpoints is refused */
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=full",
               "holds checkpoints of an earlier run (ckpt-0000000012.h5)");
    read_metrics("full", &g_full);
    assert_int_equal(g_full.n, 12);
    assert_non_null(strstr(g_full.line[0], "\"stage\":\"lm\""));
    assert_non_null(strstr(g_full.line[4], "\"stage\":\"qformer\""));
    assert_non_null(strstr(g_full.line[11], "\"stage\":\"caption\""));
    assert_non_null(strstr(g_full.line[4], "\"mi\":"));
    assert_non_null(strstr(g_full.line[4], "\"con\":"));
    for (int i = 1; i < 12; i += 2)   /* eval.every = 2: a dev loss in every stage */
        if (!strstr(g_full.line[i], "\"dev_loss\":")) fail_msg("step %d has no dev_loss: %s", i + 1, g_full.line[i]);
}

/* loss.caption_w_mi / caption_w_con: the caption stage adds the stage-1
 * objective to the cross-entropy: its lines carry mi / con / est / temp,
 * loss = caption + w_mi mi + w_con con (to float rounding), the temperature
 * moves (it trains), and a run stopped inside the caption stage and resumed
 * equals the uninterrupted one (the estimator's state is in the checkpoint).
 * Caption-only runs build the estimator and temperature for it. */
/* a field of a metrics line; fails naming it when absent */
static double need(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    if (!p) fail_msg("no %s in %s", key, line);
    return strtod(p + strlen(k), NULL);
}

static void test_caption_aux(void **st)
{
    (void)st;
    const char *ov = "--config tiny.ini --loss.caption_w_mi=0.5 --loss.caption_w_con=2";
    char args[512];
    snprintf(args, sizeof args, "%s --train.out_dir=aux", ov);
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 12 steps");
    metrics full;
    read_metrics("aux", &full);
    assert_int_equal(full.n, 12);
    double t0 = need(full.line[8], "temp"), t1 = need(full.line[11], "temp");
    for (int i = 8; i < 12; i++) {
        const char *l = full.line[i];
        assert_non_null(strstr(l, "\"stage\":\"caption\""));
        double loss = need(l, "loss"), cap = need(l, "caption"), mi = need(l, "mi"), con = need(l, "con");
        if (!(con > 0) || fabs(loss - (cap + 0.5 * mi + 2 * con)) > 1e-4 * (1 + fabs(loss)))
            fail_msg("caption step %d: loss %g != caption %g + 0.5 mi %g + 2 con %g", i - 7, loss, cap, mi, con);
    }
    if (t0 == t1) fail_msg("the temperature did not train in the caption stage (%g)", t0);
    /* without the keys the caption lines carry no stage-1 terms */
    full_run();
    assert_null(strstr(g_full.line[11], "\"con\":"));
    snprintf(args, sizeof args, "%s --train.out_dir=aux10 --train.stop_at_step=10", ov);
    EXPECT_RUN(0, NULL, "secap-train", args, "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume aux10", "done: 12 steps");
    expect_metrics_equal("aux10", "aux");
    /* a caption-only run with the terms builds the estimator it needs */
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.stages=caption --loss.caption_w_con=1 "
               "--loss.caption_w_mi=1 --train.out_dir=auxc", "done: 4 steps");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --loss.caption_w_con=-1 --dry-run", "caption_w_con");
}

static void test_resume_stop_at(void **st)
{
    (void)st;
    full_run();
    int ks[] = { 3, 4, 6, 8, 11 };   /* inside lm, at the lm/qformer boundary, inside qformer, at the
                                        qformer/caption boundary, inside caption */
    for (int i = 0; i < 5; i++) {
        char args[256], dir[32];
        snprintf(dir, sizeof dir, "stop%d", ks[i]);
        snprintf(args, sizeof args, "--config tiny.ini --train.out_dir=%s --train.stop_at_step=%d", dir, ks[i]);
        EXPECT_RUN(0, NULL, "secap-train", args, "Resume with:");
        snprintf(args, sizeof args, "--resume %s", dir);
        EXPECT_RUN(0, NULL, "secap-train", args, "done: 12 steps");
        expect_same(dir, args);
    }
}

/* Starts secap-train in the background; returns its pid. */
static pid_t spawn(const char *dir, const char *env)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(tu_dir)) _exit(120);
        setenv("SECAP_THREADS", "1", 1);
        setenv("OMP_WAIT_POLICY", "passive", 1);
        if (env) setenv("SECAP_TRAIN_SAVE_DELAY_MS", env, 1);
        char prog[1200], od[64];
        snprintf(prog, sizeof prog, "%s/secap-train", g_bin);
        snprintf(od, sizeof od, "--train.out_dir=%s", dir);
        if (!freopen(tu_tmp("%s.log", dir), "w", stderr)) _exit(121);
        execl(prog, prog, "--config", "tiny.ini", od, (char *)NULL);
        _exit(122);
    }
    return pid;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    if (!f) return 0;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/* Waits up to 60 s for cond; fails naming what. */
#define WAIT_FOR(cond, what)                                                        \
    do {                                                                            \
        int w_ = 0;                                                                 \
        while (!(cond) && w_ < 6000) { struct timespec ts_ = { 0, 10000000 }; nanosleep(&ts_, NULL); w_++; } \
        if (!(cond)) fail_msg("timed out waiting for %s", what);                    \
    } while (0)

static int has_tmp(const char *dir, const char *prefix)
{
    DIR *d = opendir(tu_tmp("%s", dir));
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL && !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

static void test_sigterm(void **st)
{
    (void)st;
    full_run();
    /* each checkpoint save sleeps 300 ms (test hook), so the run cannot
     * finish before the signal arrives however loaded the machine is */
    pid_t pid = spawn("term", "300");
    WAIT_FOR(count_lines(tu_tmp("term/metrics.jsonl")) >= 1, "the first step");
    kill(pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail_msg("SIGTERM: secap-train did not exit 0 (%d)", status);
    FILE *f = fopen(tu_tmp("term.log"), "r");
    char log[1 << 14];
    size_t n = fread(log, 1, sizeof log - 1, f);
    log[n] = 0;
    fclose(f);
    if (!strstr(log, "interrupted") || !strstr(log, "--resume term"))
        fail_msg("SIGTERM: no resume command in the log:\n%s", log);
    EXPECT_RUN(0, NULL, "secap-train", "--resume term", "done: 12 steps");
    expect_same("term", "SIGTERM then --resume");
    /* one run per directory */
    pid = spawn("lock", "2000");   /* still running when the second one starts */
    WAIT_FOR(count_lines(tu_tmp("lock/metrics.jsonl")) >= 1, "the first step");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=lock",
               "another secap-train is running in this directory");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_kill9_step(void **st)
{
    (void)st;
    full_run();
    pid_t pid = spawn("k9step", NULL);
    WAIT_FOR(count_lines(tu_tmp("k9step/metrics.jsonl")) >= 3, "step 3");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    EXPECT_RUN(0, NULL, "secap-train", "--resume k9step", "done: 12 steps");
    expect_same("k9step", "kill -9 during a step then --resume");
}

static void test_kill9_save(void **st)
{
    (void)st;
    full_run();
    /* every save sleeps 1.5 s between writing and renaming: kill -9 while the
     * second checkpoint (step 4) is a temporary file */
    pid_t pid = spawn("k9save", "1500");
    WAIT_FOR(has_tmp("k9save", "ckpt-0000000004.h5"), "the save at step 4");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_true(has_tmp("k9save", "ckpt-"));
    assert_int_equal(access(tu_tmp("k9save/ckpt-0000000004.h5"), F_OK), -1);
    assert_int_equal(access(tu_tmp("k9save/ckpt-0000000002.h5"), F_OK), 0);
    EXPECT_RUN(0, NULL, "secap-train", "--resume k9save", "resumed from k9save/ckpt-0000000002.h5");
    assert_non_null(strstr(g_out, "done: 12 steps"));
    assert_int_equal(has_tmp("k9save", "ckpt-"), 0);   /* the dead run's temporary was swept */
    expect_same("k9save", "kill -9 during a save then --resume");
}

static void test_ckpt_refused(void **st)
{
    (void)st;
    full_run();
    /* truncated */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "head -c 4000 '%s' > '%s'", tu_tmp("full/ckpt-0000000012.h5"), tu_tmp("trunc.h5"));
    assert_int_equal(system(cmd), 0);
    EXPECT_RUN(1, NULL, "secap-train", "--resume trunc.h5", "truncated");
    /* not a checkpoint */
    snprintf(cmd, sizeof cmd, "--resume '%s'", g_hubert);
    EXPECT_RUN(1, NULL, "secap-train", cmd, "not a secap-train checkpoint");
    /* another model shape */
    EXPECT_RUN(1, NULL, "secap-train", "--resume full/ckpt-0000000010.h5 --qformer.hidden_size=16",
               "qformer.hidden_size: checkpoint \"32\", now \"16\"");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --lora.r=2 --resume full",
               "lora.r: checkpoint \"4\", now \"2\"");
    /* a tensor of another shape under an equal config text */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import h5py,numpy as np,shutil; shutil.copy('%s','%s'); "
             "f=h5py.File('%s','r+'); n='qformer.query_tokens'; a=f[n][...]; del f[n]; "
             "f.create_dataset(n, data=np.zeros((1,3,32),np.float32)); f.close()\"",
             tu_tmp("full/ckpt-0000000010.h5"), tu_tmp("shape.h5"), tu_tmp("shape.h5"));
    assert_int_equal(system(cmd), 0);
    EXPECT_RUN(1, NULL, "secap-train", "--resume shape.h5", "qformer.query_tokens");
}

/* A non-finite loss skips the step (a warning, "skipped":1, no update: the
 * next step's loss is the one of a run without that batch's update); too
 * many in a row stop the run with exit 1 and keep the last checkpoint. */
static void test_nonfinite(void **st)
{
    (void)st;
    full_run();
    EXPECT_RUN(0, "SECAP_TRAIN_NAN_AT=2", "secap-train", "--config tiny.ini --train.out_dir=nan1",
               "step 1: non-finite loss (nan); step skipped (1 in a row, at most 5)");
    metrics m;
    read_metrics("nan1", &m);
    assert_int_equal(m.n, 12);
    assert_non_null(strstr(m.line[1], "\"loss\":null"));   /* JSON has no NaN */
    assert_non_null(strstr(m.line[1], "\"grad_norm\":null"));
    assert_string_equal(m.line[0], g_full.line[0]);
    if (!strcmp(m.line[2], g_full.line[2])) fail_msg("step 3 equals the run that updated at step 2");
    EXPECT_RUN(1, "SECAP_TRAIN_NAN_AT=6,7,8", "secap-train",
               "--config tiny.ini --train.out_dir=nan3 --train.max_bad_steps=3", "3 non-finite steps in a row");
    assert_non_null(strstr(g_out, "the last good checkpoint"));
    assert_int_equal(access(tu_tmp("nan3/ckpt-0000000004.h5"), F_OK), 0);
    assert_int_equal(access(tu_tmp("nan3/ckpt-0000000008.h5"), F_OK), -1);
}


/* ------------------------------------------------------- dev captions */

/* A metrics line with its dev caption fields cut out (in place). */
static void cut_devcap(char *line)
{
    char *a = strstr(line, ",\"dev_bleu4\":");
    if (!a) return;
    char *b = strstr(a, ",\"lr\":");
    if (!b) b = a + strlen(a);
    memmove(a, b, strlen(b) + 1);
}

static double field(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

static void test_devcap(void **st)
{
    (void)st;
    full_run();
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=dc --eval.caption_every=1 --train.keep=1",
               "dev captions (");
    assert_non_null(strstr(g_out, "BLEU-4"));
    assert_non_null(strstr(g_out, "  hyp: "));
    metrics m;
    read_metrics("dc", &m);
    assert_int_equal(m.n, g_full.n);
    double best = -1;
    int best_g = -1;
    for (int i = 0; i < m.n; i++) {
        int cap = strstr(m.line[i], "\"stage\":\"caption\"") != NULL;
        int has = strstr(m.line[i], "\"dev_cider\":") != NULL;
        if (cap != has) fail_msg("dc/metrics.jsonl step %d: dev_cider %s on a %s step: %s", i + 1,
                                 has ? "present" : "missing", cap ? "caption" : "non-caption", m.line[i]);
        if (!has) continue;
        if (!strstr(m.line[i], "\"dev_bleu4\":") || !strstr(m.line[i], "\"dev_emotion\":"))
            fail_msg("dc/metrics.jsonl step %d lacks dev_bleu4 or dev_emotion: %s", i + 1, m.line[i]);
        double c = field(m.line[i], "dev_cider"), e = field(m.line[i], "dev_emotion");
        if (!(c >= 0) || !(e >= 0 && e <= 1)) fail_msg("step %d: dev_cider %g, dev_emotion %g out of range", i + 1, c, e);
        if (c > best) { best = c; best_g = (int)field(m.line[i], "gstep"); }
        char cut[1024];
        snprintf(cut, sizeof cut, "%s", m.line[i]);
        cut_devcap(cut);
        if (strcmp(cut, g_full.line[i]))
            fail_msg("step %d: with eval.caption_every the training differs:\n  with:    %s\n  without: %s", i + 1,
                     cut, g_full.line[i]);
    }
    assert_true(best_g > 0);
    /* best.h5: the checkpoint of the best step, kept through train.keep = 1 */
    secap_weights *w = secap_weights_open(tu_tmp("dc/best.h5"));
    assert_int_equal(secap_weights_attr_int(w, "gstep"), best_g);
    secap_weights_discard(w);
    char *js = secap_read_file(tu_tmp("dc/best.json"), NULL, "best.json");
    assert_int_equal((int)field(js, "gstep"), best_g);
    if (fabs(field(js, "dev_cider") - best) > 1e-9 * (1 + best))
        fail_msg("dc/best.json dev_cider %g, metrics.jsonl's best %g", field(js, "dev_cider"), best);
    free(js);
    /* the in-memory captions are the checkpoint's: secap-eval on best.h5 scores the same dev clips alike */
    EXPECT_RUN(0, NULL, "secap-eval", "--checkpoint dc/best.h5 --split dev --out dcev", "CIDEr");
    js = secap_read_file(tu_tmp("dcev/scores.json"), NULL, "scores.json");
    double ec = field(js, "CIDEr"), eb = field(js, "Bleu_4"), ee = field(js, "Emotion_accuracy");
    free(js);
    for (int i = 0; i < m.n; i++)
        if ((int)field(m.line[i], "gstep") == best_g) {
            double c = field(m.line[i], "dev_cider"), b = field(m.line[i], "dev_bleu4"), e = field(m.line[i], "dev_emotion");
            if (fabs(c - ec) > 1e-6 || fabs(b - eb) > 1e-6 || fabs(e - ee) > 1e-6)
                fail_msg("step %d: dev_cider %g dev_bleu4 %g dev_emotion %g, secap-eval on best.h5: %g %g %g", best_g, c,
                         b, e, ec, eb, ee);
        }
    print_message("  best dev_cider %g at global step %d; secap-eval on best.h5: CIDEr %g BLEU-4 %g emotion %g\n", best,
                  best_g, ec, eb, ee);
    /* best.h5 follows a higher dev_cider and stays through a lower one (test hook: the tiny models score 0) */
    EXPECT_RUN(0, "SECAP_TRAIN_DEV_CIDER=10:0.5,11:0.2", "secap-train",
               "--config tiny.ini --train.out_dir=dch --eval.caption_every=1 --train.keep=1", "CIDEr 0.000");
    metrics h;
    read_metrics("dch", &h);
    assert_int_equal(h.n, 12);
    assert_true(fabs(field(h.line[9], "dev_cider") - 0.5) < 1e-12);
    assert_true(fabs(field(h.line[10], "dev_cider") - 0.2) < 1e-12);
    w = secap_weights_open(tu_tmp("dch/best.h5"));
    assert_int_equal(secap_weights_attr_int(w, "gstep"), 10);
    secap_weights_discard(w);
    js = secap_read_file(tu_tmp("dch/best.json"), NULL, "best.json");
    assert_int_equal((int)field(js, "gstep"), 10);
    assert_int_equal((int)field(js, "step"), 2);
    assert_true(fabs(field(js, "dev_cider") - 0.5) < 1e-12);
    free(js);
    assert_int_equal(access(tu_tmp("dch/ckpt-0000000010.h5"), F_OK), -1);   /* pruned by keep = 1; best.h5 stays */
    assert_int_equal(access(tu_tmp("dch/ckpt-0000000012.h5"), F_OK), 0);
    /* a resume from a checkpoint older than best.h5 drops it and tracks the best again */
    EXPECT_RUN(0, "SECAP_TRAIN_DEV_CIDER=10:0.5,11:0.2", "secap-train",
               "--config tiny.ini --train.out_dir=dco --eval.caption_every=1 --train.keep=10", "done: 12 steps");
    EXPECT_RUN(0, "SECAP_TRAIN_DEV_CIDER=11:0.2", "secap-train", "--resume dco/ckpt-0000000009.h5",
               "after the checkpoint resumed; best.h5 is dropped");
    js = secap_read_file(tu_tmp("dco/best.json"), NULL, "best.json");
    assert_int_equal((int)field(js, "gstep"), 11);   /* 0 at step 9 (kept), 0.2 at 11 */
    free(js);
    /* exact resume with it on: stopped inside the caption stage */
    EXPECT_RUN(0, NULL, "secap-train",
               "--config tiny.ini --train.out_dir=dcstop --eval.caption_every=1 --train.keep=1 --train.stop_at_step=10",
               "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume dcstop", "done: 12 steps");
    expect_metrics_equal("dcstop", "dc");
    w = secap_weights_open(tu_tmp("dcstop/best.h5"));
    assert_int_equal(secap_weights_attr_int(w, "gstep"), best_g);
    secap_weights_discard(w);
}

/* ---------------------------------------------------------- dev probes */

static void unit_rows(secap_rng *r, float *x, int n, int e)
{
    for (int i = 0; i < n * e; i++) x[i] = secap_rng_normal(r);
}

/* The trainer's transcript probe: even rows fit, odd rows evaluated. */
static double ridge_even_odd(const float *q, const float *t, int n, int e, double lambda, double *chance)
{
    unsigned char *fit = malloc((size_t)n), *ev = malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        fit[i] = i % 2 == 0;
        ev[i] = i % 2 == 1;
    }
    secap_probe_match_result r;
    secap_probe_match(q, t, n, e, e, fit, ev, NULL, NULL, -1, lambda, NULL, &r);
    free(fit);
    free(ev);
    assert_int_equal(r.nfit, (n + 1) / 2);
    assert_int_equal(r.neval, n / 2);
    *chance = r.r1_chance;
    return r.r1;
}

static void test_probe_units(void **st)
{
    (void)st;
    enum { N = 12, E = 16 };
    secap_rng r;
    secap_rng_seed(&r, 7);
    float q[N * E], k[N * E], t[N * E];
    double ch;
    /* q = k (distinct random rows): every clip finds its own caption first */
    unit_rows(&r, k, N, E);
    memcpy(q, k, sizeof q);
    assert_float_equal(secap_probe_recall(q, k, NULL, N, E, 1, &ch), 1.0, 0);
    assert_float_equal(ch, 1.0 / N, 1e-12);
    assert_float_equal(secap_probe_recall(q, k, NULL, N, E, 5, &ch), 1.0, 0);
    assert_float_equal(ch, 5.0 / N, 1e-12);
    /* k orthonormal, q_i = k_{i+1}: the own caption scores 0 and ties with every other -> never found */
    memset(k, 0, sizeof k);
    for (int i = 0; i < N; i++) k[i * E + i] = 1;
    for (int i = 0; i < N; i++) memcpy(q + i * E, k + ((i + 1) % N) * E, E * sizeof *q);
    assert_float_equal(secap_probe_recall(q, k, NULL, N, E, 1, NULL), 0.0, 0);
    assert_float_equal(secap_probe_recall(q, k, NULL, N, E, N - 1, NULL), 0.0, 0);
    assert_float_equal(secap_probe_recall(q, k, NULL, N, E, N, NULL), 1.0, 0);
    /* groups: clips with the same caption text are not rivals */
    int g[N];
    for (int i = 0; i < N; i++) g[i] = i / 2;   /* pairs share a caption */
    memset(k, 0, sizeof k);
    for (int i = 0; i < N; i++) k[i * E + i / 2] = 1;
    memcpy(q, k, sizeof q);
    assert_float_equal(secap_probe_recall(q, k, g, N, E, 1, &ch), 1.0, 0);
    assert_float_equal(ch, 1.0 / (N - 1), 1e-12);   /* own caption against the N - 2 of other texts */
    assert_float_equal(secap_probe_recall(q, k, NULL, N, E, 1, NULL), 0.0, 0);   /* without groups: tied, against */
    /* independent random embeddings: recall at chance (4 sigma) */
    enum { M = 2000, D = 8 };
    float *qa = malloc(M * D * sizeof *qa), *ka = malloc(M * D * sizeof *ka), *ta = malloc(M * D * sizeof *ta);
    unit_rows(&r, qa, M, D);
    unit_rows(&r, ka, M, D);
    for (int K = 1; K <= 200; K *= 200) {
        double rc = secap_probe_recall(qa, ka, NULL, M, D, K, &ch), sd = sqrt(ch * (1 - ch) / M);
        if (fabs(rc - ch) > 4 * sd + 1e-9) fail_msg("probe_recall on random embeddings: R@%d %g, chance %g", K, rc, ch);
    }
    /* centroid probe: captions at their class' axis; q the own caption (all right) or the next class' (all wrong) */
    int lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = i % 4;
        for (int d = 0; d < E; d++) k[i * E + d] = (d == lab[i] ? 1.0f : 0.0f) + 0.1f * secap_rng_normal(&r);
    }
    lab[N - 1] = -1;   /* an unlabelled clip is not counted */
    double maj;
    memcpy(q, k, sizeof q);
    assert_float_equal(secap_probe_centroid(q, k, lab, N, E, &maj), 1.0, 0);
    assert_float_equal(maj, 3.0 / 11, 1e-12);   /* classes 0, 1, 2 have 3 labelled clips, class 3 two */
    for (int i = 0; i < N; i++) {
        memset(q + i * E, 0, E * sizeof *q);
        q[i * E + (i % 4 + 1) % 4] = 1;
    }
    assert_float_equal(secap_probe_centroid(q, k, lab, N, E, NULL), 0.0, 0);
    for (int i = 0; i < N; i++) lab[i] = -1;
    assert_true(isnan(secap_probe_centroid(q, k, lab, N, E, NULL)));
    /* ridge transcript probe: t a linear map of q -> found; t unrelated to q -> chance */
    float Rm[D * D] = { 0 };   /* a signed permutation: orthogonal, so t stays a unit row */
    for (int a = 0; a < D; a++) Rm[a * D + (a * 3 + 1) % D] = a % 2 ? -1.0f : 1.0f;
    (void)t;
    /* the map acts on the normalised rows: make q unit rows first */
    for (int i = 0; i < M; i++) {
        double n2 = 0;
        for (int a = 0; a < D; a++) n2 += qa[i * D + a] * qa[i * D + a];
        for (int a = 0; a < D; a++) qa[i * D + a] /= (float)sqrt(n2);
    }
    for (int i = 0; i < M; i++)
        for (int b = 0; b < D; b++) {
            double v = 0;
            for (int a = 0; a < D; a++) v += qa[i * D + a] * Rm[a * D + b];
            ta[i * D + b] = (float)v;
        }
    double lin = ridge_even_odd(qa, ta, 200, D, 1e-3, &ch);
    assert_float_equal(ch, 1.0 / 100, 1e-12);
    if (lin < 0.9) fail_msg("ridge probe on a linear map: recall@1 %g, expected >= 0.9", lin);
    double rnd = ridge_even_odd(qa, ka, M, D, 1.0, &ch), sd = sqrt(ch * (1 - ch) / (M / 2));
    if (fabs(rnd - ch) > 4 * sd + 1e-9) fail_msg("ridge probe on unrelated embeddings: recall@1 %g, chance %g", rnd, ch);
    print_message("  probes: linear-map transcript recall %g; unrelated %g (chance %g)\n", lin, rnd, ch);
    free(qa); free(ka); free(ta);
}

/* Transcript matching (secap_probe_match): exact values on constructed
 * cases, chance on unrelated ones, the groups and the length window. */
static void test_probe_match(void **st)
{
    (void)st;
    enum { N = 400, E = 8, V = 8 };
    secap_rng r;
    secap_rng_seed(&r, 11);
    float *x = malloc(N * E * sizeof *x), *y = malloc(N * V * sizeof *y);
    unsigned char fit[N], ev[N];
    int len[N], grp[N];
    double auc[N];
    secap_probe_match_result m;
    for (int i = 0; i < N; i++) {
        fit[i] = i < N / 2;
        ev[i] = i >= N / 2;
        len[i] = i % 7;
        grp[i] = i;
    }
    /* y = x (distinct random rows), a near-identity map: every own text first */
    unit_rows(&r, y, N, V);
    memcpy(x, y, N * E * sizeof *x);
    secap_probe_match(x, y, N, E, V, fit, ev, NULL, NULL, -1, 1e-6, auc, &m);
    assert_int_equal(m.nfit, N / 2);
    assert_int_equal(m.neval, N / 2);
    assert_float_equal(m.auc, 1.0, 0);
    assert_float_equal(m.auc_se, 0.0, 0);
    assert_float_equal(m.r1, 1.0, 0);
    assert_float_equal(m.r1_chance, 1.0 / (N / 2), 1e-12);
    for (int i = 0; i < N; i++)
        if (fit[i] ? !isnan(auc[i]) : auc[i] != 1.0) fail_msg("row %d: AUC %g", i, auc[i]);
    /* every evaluated x the same: one prediction p for all; the AUCs are the
     * ranks of p . y_i, so their mean is exactly 1/2 */
    for (int i = N / 2; i < N; i++) memcpy(x + i * E, x + (N / 2) * E, E * sizeof *x);
    secap_probe_match(x, y, N, E, V, fit, ev, NULL, NULL, -1, 1.0, NULL, &m);
    assert_float_equal(m.auc, 0.5, 1e-12);
    /* unrelated x: AUC at chance (4 standard errors) */
    unit_rows(&r, x, N, E);
    secap_probe_match(x, y, N, E, V, fit, ev, NULL, NULL, -1, 1.0, NULL, &m);
    if (fabs(m.auc - 0.5) > 4 * m.auc_se || !(m.auc_se > 0.005 && m.auc_se < 0.05))
        fail_msg("unrelated embeddings: AUC %g +- %g, expected 0.5", m.auc, m.auc_se);
    /* the length window: only rivals of equal length (len = i % 7) */
    memcpy(x, y, N * E * sizeof *x);
    secap_probe_match(x, y, N, E, V, fit, ev, NULL, len, 0, 1e-6, NULL, &m);
    double ch = 0;
    for (int i = N / 2; i < N; i++) {
        int riv = 0;
        for (int j = N / 2; j < N; j++) riv += j != i && len[j] == len[i];
        ch += 1.0 / (1 + riv);
    }
    assert_float_equal(m.r1_chance, ch / (N / 2), 1e-12);
    assert_float_equal(m.auc, 1.0, 0);
    /* groups: every evaluated row shares its text with all others -> no rivals, nothing evaluated */
    for (int i = 0; i < N; i++) grp[i] = i < N / 2 ? i : -1;
    secap_probe_match(x, y, N, E, V, fit, ev, grp, NULL, -1, 1.0, auc, &m);
    assert_int_equal(m.neval, 0);
    assert_true(isnan(m.auc) && isnan(m.r1) && isnan(auc[N - 1]));
    /* a fitting row that is also evaluated: allowed (the trainer never does it) */
    memset(fit, 1, sizeof fit);
    secap_probe_match(x, y, N, E, V, fit, ev, NULL, NULL, -1, 1e-6, NULL, &m);
    assert_int_equal(m.nfit, N);
    assert_float_equal(m.auc, 1.0, 0);
    free(x);
    free(y);
}

/* Bag-of-words targets (secap_probe_bag): terms, lengths, tf-idf values. */
static void test_probe_bag(void **st)
{
    (void)st;
    const char *text[4] = { "我爱你", "你好，World!", "Hello world", "你" };
    unsigned char fit[4] = { 1, 1, 1, 0 };
    int v, len[4];
    float *y = secap_probe_bag(text, 4, fit, 1, 1, &v, len);
    /* terms of the fitting rows: 我 爱 你 好 ， world ! hello */
    assert_int_equal(v, 8);
    assert_int_equal(len[0], 3);
    assert_int_equal(len[1], 5);
    assert_int_equal(len[2], 2);
    assert_int_equal(len[3], 1);
    /* "你" (row 3): only 你, df 2 of 3 -> a unit vector on one term */
    double s3 = 0, n3 = 0;
    for (int k = 0; k < v; k++) {
        s3 += y[3 * v + k];
        n3 += (y[3 * v + k] != 0);
    }
    assert_float_equal(s3, 1.0, 1e-6);
    assert_float_equal(n3, 1, 0);
    /* row 2 "hello world": hello (df 1, idf ln 3) and world (df 2, idf ln 1.5) */
    double a = log(3.0), b = log(1.5), nrm = sqrt(a * a + b * b);
    double got[2] = { 0, 0 };
    int nz = 0;
    for (int k = 0; k < v; k++) {
        if (y[2 * v + k] == 0) continue;
        if (nz < 2) got[nz] = y[2 * v + k];
        nz++;
    }
    assert_int_equal(nz, 2);
    if (!((fabs(got[0] - a / nrm) < 1e-6 && fabs(got[1] - b / nrm) < 1e-6) ||
          (fabs(got[1] - a / nrm) < 1e-6 && fabs(got[0] - b / nrm) < 1e-6)))
        fail_msg("hello world: weights %g %g, expected %g and %g", got[0], got[1], a / nrm, b / nrm);
    /* the row of "你" and the 你 entry of "我爱你" share their term */
    int k3 = -1;
    for (int k = 0; k < v; k++)
        if (y[3 * v + k] != 0) k3 = k;
    assert_true(k3 >= 0 && y[0 * v + k3] > 0);
    free(y);
    /* min_count 2: only 你 and world remain; "Hello world" keeps world alone */
    y = secap_probe_bag(text, 4, fit, 2, 1, &v, NULL);
    assert_int_equal(v, 2);
    for (int i = 0; i < 4; i++) {
        double n2 = 0;
        for (int k = 0; k < v; k++) n2 += y[i * v + k] * y[i * v + k];
        assert_float_equal(n2, 1.0, 1e-6);
    }
    assert_true((y[2 * v] == 0) != (y[2 * v + 1] == 0));
    free(y);
    /* a row with no kept term stays zero (no NaN) */
    const char *other[2] = { "甲乙", "丙" };
    unsigned char f2[2] = { 1, 1 };
    y = secap_probe_bag(other, 2, f2, 2, 1, &v, NULL);
    assert_int_equal(v, 0);
    free(y);
    /* cased: "World" and "world" are two terms */
    y = secap_probe_bag(text, 4, fit, 1, 0, &v, NULL);
    assert_int_equal(v, 9);
    free(y);
}

static const char *const PROBE_KEYS[] = { "dev_r1", "dev_r5", "dev_r1_chance", "dev_r5_chance", "dev_emo_centroid",
                                          "dev_emo_majority", "dev_tx_r1", "dev_tx_chance", "dev_tx_auc" };

static void test_probe_metrics(void **st)
{
    (void)st;
    full_run();
    /* the full run: probes on the qformer eval steps (5..8: steps 2 and 4 of the stage), nowhere else */
    for (int i = 0; i < g_full.n; i++) {
        const char *l = g_full.line[i];
        int want = strstr(l, "\"stage\":\"qformer\"") && strstr(l, "\"dev_loss\":");
        int has = strstr(l, "\"dev_r1\":") != NULL;
        if (want != has) fail_msg("full/metrics.jsonl line %d: dev probes %s: %s", i + 1, has ? "present" : "missing", l);
        if (!has) continue;
        int n = (int)field(l, "dev_probe_n");
        assert_true(n >= 2);   /* the dev split of split_ratios 0.75,0.25 (by hash) */
        for (size_t j = 0; j < sizeof PROBE_KEYS / sizeof *PROBE_KEYS; j++) {
            double v = field(l, PROBE_KEYS[j]);
            if (!(v >= 0 && v <= 1)) fail_msg("line %d: %s = %g, outside [0, 1]: %s", i + 1, PROBE_KEYS[j], v, l);
        }
        /* captions[0] is one per emotion (clips share it): chance between 1/n and 1 */
        double c1 = field(l, "dev_r1_chance");
        if (!(c1 >= 1.0 / n - 1e-9 && c1 <= 1)) fail_msg("line %d: dev_r1_chance %g outside [1/%d, 1]", i + 1, c1, n);
        double c5 = field(l, "dev_r5_chance");
        if (n <= 5 ? fabs(c5 - 1) > 1e-9 : !(c5 >= 5.0 / n - 1e-9 && c5 <= 1))
            fail_msg("line %d: dev_r5_chance %g with %d clips", i + 1, c5, n);
        /* transcripts all differ: 1 / (held-out half) */
        assert_float_equal(field(l, "dev_tx_chance"), 1.0 / (n / 2), 1e-6);
        assert_true(field(l, "dev_r1") <= field(l, "dev_r5"));
        assert_true(isfinite(field(l, "dev_mi")));
    }
    /* loss.mi_monitor: with w_mi = 0 the estimator trains beside, the model exactly as without it */
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.stages=qformer --loss.w_mi=0 --train.out_dir=mon1",
               "dev probes (");
    EXPECT_RUN(0, NULL, "secap-train",
               "--config tiny.ini --train.stages=qformer --loss.w_mi=0 --loss.mi_monitor=false --train.out_dir=mon0",
               "done: 4 steps");
    metrics a, b;
    read_metrics("mon1", &a);
    read_metrics("mon0", &b);
    assert_int_equal(a.n, 4);
    assert_int_equal(b.n, 4);
    for (int i = 0; i < 4; i++) {
        const char *keys[] = { "loss", "con", "temp", "dev_loss", "dev_r1", "dev_emo_centroid", "dev_tx_r1" };
        for (int j = 0; j < 7; j++)
            if (field(a.line[i], keys[j]) != field(b.line[i], keys[j]) &&
                !(isnan(field(a.line[i], keys[j])) && isnan(field(b.line[i], keys[j]))))
                fail_msg("step %d: %s differs with loss.mi_monitor (%.9g) and without (%.9g)", i + 1, keys[j],
                         field(a.line[i], keys[j]), field(b.line[i], keys[j]));
        if (field(a.line[i], "est") == 0) fail_msg("mon1 step %d: est 0, the estimator did not train: %s", i + 1, a.line[i]);
        if (field(b.line[i], "est") != 0) fail_msg("mon0 step %d: est non-zero without mi_monitor: %s", i + 1, b.line[i]);
    }
    /* loss.mi_warmup = 4: U enters with weight (step + 1) / 4 over steps 1..4 */
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.stages=qformer --loss.mi_warmup=4 --train.out_dir=miwu",
               "done: 4 steps");
    metrics w;
    int told = 0;
    read_metrics("miwu", &w);
    assert_int_equal(w.n, 4);
    for (int i = 0; i < 4; i++) {
        double l = field(w.line[i], "loss"), mi = field(w.line[i], "mi"), con = field(w.line[i], "con");
        double want = con + (i + 1) / 4.0 * mi;
        if (!(fabs(l - want) <= 1e-5 * fabs(l) + 1e-6))
            fail_msg("loss.mi_warmup=4 step %d: loss %.9g, want con + %d/4 mi = %.9g: %s", i + 1, l, i + 1, want,
                     w.line[i]);
        /* a step where the full weight would miss the tolerance 10 times over */
        if (fabs(l - con - mi) > 10 * (1e-5 * fabs(l) + 1e-6)) told++;
    }
    if (told == 0) fail_msg("loss.mi_warmup=4: U too small on every step to tell the ramp from the full weight");
    /* the estimator's state is in the checkpoint: stop + resume with the monitor is exact */
    EXPECT_RUN(0, NULL, "secap-train",
               "--config tiny.ini --train.stages=qformer --loss.w_mi=0 --train.out_dir=mon1s --train.stop_at_step=3",
               "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume mon1s", "done: 4 steps");
    metrics c;
    read_metrics("mon1s", &c);
    assert_int_equal(c.n, 4);
    for (int i = 0; i < 4; i++)
        if (strcmp(c.line[i], a.line[i]))
            fail_msg("mon1s step %d differs:\n  resumed:       %s\n  uninterrupted: %s", i + 1, c.line[i], a.line[i]);
    /* eval.probe_clips caps the probe set */
    EXPECT_RUN(0, NULL, "secap-train",
               "--config tiny.ini --train.stages=qformer --eval.probe_clips=2 --train.out_dir=pc2",
               "dev probes (2 clips)");
}

/* ------------------------------------------------- secap-embed --model ckpt */

static int newest_ckpts(const char *dir, char names[][64], int cap)
{
    DIR *d = opendir(tu_tmp("%s", dir));
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "ckpt-", 5) && n < cap) snprintf(names[n++], 64, "%.63s", e->d_name);
    if (d) closedir(d);
    for (int i = 0; i < n; i++)   /* sort */
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char x[64];
                memcpy(x, names[i], 64); memcpy(names[i], names[j], 64); memcpy(names[j], x, 64);
            }
    return n;
}

static void read_emb(const char *file, const char *id, float *dst, int E)
{
    secap_weights *w = secap_weights_open(tu_tmp("%s", file));
    secap_weights_read(w, id, 1, (int64_t[]){ E }, dst);
    secap_weights_discard(w);
}

static void test_embed_ckpt(void **st)
{
    (void)st;
    full_run();
    char ck[8][64], args[1024];
    int n = newest_ckpts("full", ck, 8);
    assert_true(n >= 2);
    /* the Q-Former of the run directory is its newest checkpoint's, tensor for tensor */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tu_dir), 0);
    secap_ckpt_qformer *k = secap_ckpt_qformer_open("full", 1);
    assert_string_equal(secap_ckpt_qformer_path(k), tu_tmp("full/%s", ck[n - 1]) + strlen(tu_dir) + 1);
    const secap_qformer *m = secap_ckpt_qformer_model(k);
    const char *names[] = { "text_proj.weight", "speech_proj.weight", "query_tokens" };
    secap_weights *w = secap_weights_open(tu_tmp("full/%s", ck[n - 1]));
    for (int i = 0; i < 3; i++) {
        secap_tensor *p = secap_qformer_param(m, names[i]);
        float *f = malloc((size_t)p->n * sizeof *f);
        char nm[128];
        snprintf(nm, sizeof nm, "qformer.%s", names[i]);
        secap_weights_read(w, nm, p->ndim, p->shape, f);
        if (memcmp(f, secap_f32(p), (size_t)p->n * sizeof *f)) fail_msg("%s differs from the checkpoint's %s", names[i], nm);
        free(f);
    }
    secap_weights_discard(w);
    secap_ckpt_qformer_free(k);
    assert_int_equal(chdir(cwd), 0);
    assert_false(secap_is_train_checkpoint(tu_tmp("vocab.txt")));
    assert_true(secap_is_train_checkpoint(tu_tmp("full")));
    /* secap-embed: run dir == newest checkpoint != an older checkpoint */
    EXPECT_RUN(0, NULL, "secap-embed", "--model full --text-file ds/text.txt --out e_dir.h5", "wrote 12 L2-normalised text");
    assert_non_null(strstr(g_out, "checkpoint full/ckpt-"));
    snprintf(args, sizeof args, "--model full/%s --text-file ds/text.txt --out e_new.h5", ck[n - 1]);
    EXPECT_RUN(0, NULL, "secap-embed", args, "wrote 12");
    snprintf(args, sizeof args, "--model full/%s --text-file ds/text.txt --out e_old.h5", ck[0]);
    EXPECT_RUN(0, NULL, "secap-embed", args, "wrote 12");
    float a[16], b[16], c[16];
    read_emb("e_dir.h5", "u03", a, 16);
    read_emb("e_new.h5", "u03", b, 16);
    read_emb("e_old.h5", "u03", c, 16);
    assert_memory_equal(a, b, sizeof a);
    double na = 0, dd = 0;
    for (int i = 0; i < 16; i++) { na += a[i] * a[i]; dd += fabs(a[i] - c[i]); }
    assert_float_equal(na, 1.0, 1e-5);
    if (dd < 1e-4) fail_msg("the embeddings of %s and %s are the same (%g): the trained tensors were not read", ck[0],
                            ck[n - 1], dd);
    /* speech from the config's HuBERT, and retrieval, with the config's vocab */
    EXPECT_RUN(0, NULL, "secap-embed", "--model full --data ds --out e_sp.h5 --retrieve 2 --captions ds/fid2captions.json",
               "# recall@1");
    read_emb("e_sp.h5", "u05", a, 16);
    na = 0;
    for (int i = 0; i < 16; i++) na += a[i] * a[i];
    assert_float_equal(na, 1.0, 1e-5);
    /* not a checkpoint and not a Q-Former file: refused naming it */
    EXPECT_RUN(1, NULL, "secap-embed", "--model vocab.txt --text-file ds/text.txt --vocab vocab.txt --out e_bad.h5",
               "vocab.txt");
}

/* ------------------------------------------------------------ ablations */

/* Names of the tensors of an HDF5 file (h5py lists them), one per line, in
 * a malloc'd text. */
static char *tensor_names(const char *h5)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import h5py,sys; f=h5py.File(sys.argv[1],'r'); "
             "print('\\n'.join(k for k in f.keys()))\" '%s' > '%s'", tu_tmp("%s", h5), tu_tmp("names.txt"));
    if (system(cmd) != 0) fail_msg("cannot list the tensors of %s with h5py", h5);
    return secap_read_file(tu_tmp("names.txt"), NULL, "tensor names");
}

/* 1 if tensor name holds the same bits in files a and b (both relative to
 * the test directory). */
static int same_tensor(const char *a, const char *b, const char *name)
{
    secap_weights *wa = secap_weights_open(tu_tmp("%s", a)), *wb = secap_weights_open(tu_tmp("%s", b));
    int64_t sh[8], sh2[8];
    secap_wdtype dt;
    int nd = secap_weights_info(wa, name, sh, &dt);
    int nd2 = secap_weights_info(wb, name, sh2, &dt);
    if (nd != nd2 || memcmp(sh, sh2, (size_t)nd * sizeof *sh)) fail_msg("%s: shapes differ in %s and %s", name, a, b);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= sh[i];
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    secap_weights_read(wa, name, nd, sh, x);
    secap_weights_read(wb, name, nd, sh, y);
    int same = !memcmp(x, y, (size_t)n * sizeof *x);
    free(x); free(y);
    secap_weights_discard(wa);
    secap_weights_discard(wb);
    return same;
}

/* Counts the tensors with `prefix` (but not `except`) that are equal /
 * differ between checkpoints a and b. */
static void compare_ckpts(const char *a, const char *b, const char *prefix, const char *except, int *same, int *diff)
{
    char *names = tensor_names(a);
    *same = *diff = 0;
    for (char *save = NULL, *n = strtok_r(names, "\n", &save); n; n = strtok_r(NULL, "\n", &save)) {
        if (strncmp(n, prefix, strlen(prefix)) || (except && !strncmp(n, except, strlen(except)))) continue;
        if (same_tensor(a, b, n)) (*same)++;
        else (*diff)++;
    }
    free(names);
}


/* qformer.freeze_in_caption: across the caption stage every Q-Former tensor
 * but audio_llama_project keeps its bits (in the default run they change),
 * audio_llama_project and LoRA train; the stages before are the full run's;
 * stop + resume inside the caption stage equals the uninterrupted run. */
static void test_frozen_qformer(void **st)
{
    (void)st;
    full_run();
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=frz --qformer.freeze_in_caption=true "
               "--train.keep=10", "done: 12 steps");
    metrics m;
    read_metrics("frz", &m);
    for (int i = 0; i < 8; i++)   /* lm and qformer stages: as the full run */
        if (strcmp(m.line[i], g_full.line[i])) fail_msg("frz step %d differs from the full run:\n  %s\n  %s", i + 1,
                                                        m.line[i], g_full.line[i]);
    if (!strcmp(m.line[11], g_full.line[11])) fail_msg("frz: the caption stage equals the full run's: %s", m.line[11]);
    /* ckpt 8 ends stage qformer, ckpt 12 stage caption */
    int same, diff;
    compare_ckpts("frz/ckpt-0000000008.h5", "frz/ckpt-0000000012.h5", "qformer.", "qformer.audio_llama_project",
                  &same, &diff);
    print_message("  frozen: %d Q-Former tensors bit-identical across the caption stage, %d changed\n", same, diff);
    if (diff || same < 10) fail_msg("frozen Q-Former: %d tensors changed in the caption stage, %d kept", diff, same);
    compare_ckpts("frz/ckpt-0000000008.h5", "frz/ckpt-0000000012.h5", "qformer.audio_llama_project", NULL, &same,
                  &diff);
    if (diff != 2) fail_msg("frozen Q-Former: audio_llama_project (weight, bias) should train: %d changed", diff);
    compare_ckpts("frz/ckpt-0000000008.h5", "frz/ckpt-0000000012.h5", "lora.", NULL, &same, &diff);
    if (!diff) fail_msg("frozen Q-Former: no LoRA tensor changed in the caption stage");
    /* the control: without the key the Q-Former trains in the caption stage */
    compare_ckpts("full/ckpt-0000000008.h5", "full/ckpt-0000000012.h5", "qformer.bert.", NULL, &same, &diff);
    if (diff < 10) fail_msg("full run: only %d Q-Former BERT tensors changed in the caption stage", diff);
    /* exact resume inside the caption stage */
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=frzs --qformer.freeze_in_caption=true "
               "--train.keep=10 --train.stop_at_step=10", "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume frzs", "done: 12 steps");
    expect_metrics_equal("frzs", "frz");
    compare_ckpts("frzs/ckpt-0000000012.h5", "frz/ckpt-0000000012.h5", "", NULL, &same, &diff);
    if (diff) fail_msg("frozen, stopped and resumed: %d tensors differ from the uninterrupted run's", diff);
}

/* qformer.bridge = linear: no Q-Former (stage qformer refused), the bridge
 * trains and the caption loss falls, checkpoints hold bridge.*, exact
 * resume, and secap-eval captions with it. */
static void test_linear_bridge(void **st)
{
    (void)st;
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --qformer.bridge=linear --dry-run",
               "includes qformer, but qformer.bridge = linear has no Q-Former");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --qformer.bridge=linear --train.stages=lm,caption "
               "--qformer.freeze_in_caption=true --dry-run", "there is no Q-Former to freeze");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --qformer.bridge=mlp --dry-run",
               "accepted values: qformer,linear");
    const char *args = "--config tiny.ini --qformer.bridge=linear --train.stages=lm,caption --train.out_dir=lin "
                       "--train.stage_steps=lm:60,caption:40 --train.save_every=10 --train.keep=20 --eval.every=0 "
                       "--optim.lr=1e-2";   /* 60 lm steps: over a random frozen base the caption loss stays flat */
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 100 steps");
    assert_non_null(strstr(g_out, "bridge (linear)"));
    metrics m;
    read_metrics("lin", &m);
    assert_int_equal(m.n, 100);
    double first = 0, last = 0;
    for (int i = 0; i < 5; i++) {
        if (!strstr(m.line[60 + i], "\"stage\":\"caption\"")) fail_msg("lin step %d is not a caption step", 61 + i);
        first += field(m.line[60 + i], "loss") / 5;
        last += field(m.line[95 + i], "loss") / 5;
    }
    print_message("  linear bridge: caption loss %.4f over steps 1-5, %.4f over steps 36-40\n", first, last);
    if (!(last < 0.8 * first)) fail_msg("linear bridge: the caption loss did not fall: %g -> %g", first, last);
    char *names = tensor_names("lin/ckpt-0000000100.h5");
    if (!strstr(names, "bridge.weight") || !strstr(names, "bridge.bias"))
        fail_msg("lin/ckpt-0000000100.h5 lacks bridge.weight / bridge.bias:\n%s", names);
    if (strstr(names, "qformer.")) fail_msg("lin/ckpt-0000000100.h5 holds Q-Former tensors:\n%s", names);
    free(names);
    if (same_tensor("lin/ckpt-0000000060.h5", "lin/ckpt-0000000100.h5", "bridge.weight"))
        fail_msg("linear bridge: bridge.weight did not change in the caption stage");
    char a2[1024];
    snprintf(a2, sizeof a2, "%s --train.out_dir=lins --train.stop_at_step=83", args);
    EXPECT_RUN(0, NULL, "secap-train", a2, "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume lins", "done: 100 steps");
    expect_metrics_equal("lins", "lin");
    EXPECT_RUN(0, NULL, "secap-eval", "--checkpoint lin --split dev --out lin-eval", "");
    assert_int_equal(access(tu_tmp("lin-eval/scores.json"), F_OK), 0);
    assert_int_equal(access(tu_tmp("lin-eval/fid2captions.json"), F_OK), 0);
}

/* hubert.train_layers = 1 on hubert_base_small (2 layers): the layer check,
 * the trainable top layer in the checkpoints (trained in stages qformer and
 * caption, absent below it), exact resume, and secap-eval / secap-embed with
 * the trained layer on a cache of hidden_states[1]. */
static void test_hubert_train_layers(void **st)
{
    (void)st;
    char args[8192];
    snprintf(args, sizeof args, "--threads 1 --hubert '%s' --data ds --layer 1 --out feats_l1.h5", g_hubert);
    EXPECT_RUN(0, NULL, "secap-extract", args, "");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --hubert.train_layers=1 --dry-run",
               "hubert.layer = 1, and a cache extracted with bin/secap-extract --layer 1");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --hubert.train_layers=3 --hubert.layer=-1 --dry-run",
               "has 2 transformer layers");
    const char *tl = "--config tiny.ini --hubert.train_layers=1 --hubert.layer=1 --hubert.cache=feats_l1.h5 "
                     "--train.keep=10";
    snprintf(args, sizeof args, "%s --train.out_dir=htl", tl);
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 12 steps");
    assert_non_null(strstr(g_out, "hubert (top layers, trainable)"));
    char *names = tensor_names("htl/ckpt-0000000012.h5");
    if (!strstr(names, "hubert.encoder.layers.1.attention.q_proj.weight"))
        fail_msg("htl/ckpt-0000000012.h5 lacks the trained HuBERT layer 1:\n%s", names);
    if (strstr(names, "hubert.encoder.layers.0.") || strstr(names, "hubert.feature_"))
        fail_msg("htl/ckpt-0000000012.h5 holds frozen HuBERT tensors:\n%s", names);
    free(names);
    int same, diff;
    compare_ckpts("htl/ckpt-0000000004.h5", "htl/ckpt-0000000008.h5", "hubert.", NULL, &same, &diff);
    print_message("  hubert.train_layers=1: %d of %d top-layer tensors changed in stage qformer\n", diff, same + diff);
    if (diff < 10) fail_msg("hubert.train_layers: only %d top-layer tensors changed in stage qformer", diff);
    compare_ckpts("htl/ckpt-0000000008.h5", "htl/ckpt-0000000012.h5", "hubert.", NULL, &same, &diff);
    if (diff < 10) fail_msg("hubert.train_layers: only %d top-layer tensors changed in stage caption", diff);
    snprintf(args, sizeof args, "%s --train.out_dir=htls --train.stop_at_step=10", tl);
    EXPECT_RUN(0, NULL, "secap-train", args, "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume htls", "done: 12 steps");
    expect_metrics_equal("htls", "htl");
    compare_ckpts("htls/ckpt-0000000012.h5", "htl/ckpt-0000000012.h5", "", NULL, &same, &diff);
    if (diff) fail_msg("hubert.train_layers, stopped and resumed: %d tensors differ from the uninterrupted run's", diff);
    EXPECT_RUN(0, NULL, "secap-eval", "--checkpoint htl --split dev --out htl-eval", "");
    assert_int_equal(access(tu_tmp("htl-eval/scores.json"), F_OK), 0);
    /* secap-embed: the checkpoint's features (cache of hidden_states[1]) through the trained layer, and the
     * same clips from the audio (HuBERT at layer 1, then the layer): the same embeddings */
    EXPECT_RUN(0, NULL, "secap-embed", "--model htl --data ds --out htl-emb-cache.h5", "wrote");
    snprintf(args, sizeof args, "--model htl --data ds --hubert '%s' --layer 1 --out htl-emb-wav.h5", g_hubert);
    EXPECT_RUN(0, NULL, "secap-embed", args, "wrote");
    float a[16], b[16];
    read_emb("htl-emb-cache.h5", "u05", a, 16);
    read_emb("htl-emb-wav.h5", "u05", b, 16);
    double d = 0;
    for (int i = 0; i < 16; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    if (!(d < 1e-4)) fail_msg("secap-embed with hubert.train_layers: cache and audio paths differ by %g", d);
}

/* hubert.standardize: feature_norm.{mean,std} in the checkpoint equal the
 * train split's per-dimension statistics computed here from the cache (the
 * split by hash as tiny.ini asks), stay fixed through the stages, exact
 * resume, secap-eval runs; without hubert.cache the run is refused. */
static void test_standardize(void **st)
{
    (void)st;
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --hubert.standardize=true --hubert.cache= --dry-run",
               "hubert.standardize = true needs hubert.cache");
    const char *sa = "--config tiny.ini --hubert.standardize=true --train.keep=10";
    char args[1024];
    snprintf(args, sizeof args, "%s --train.out_dir=hstd", sa);
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 12 steps");
    assert_non_null(strstr(g_out, "hubert.standardize: per-dimension mean / std of"));
    /* the statistics, independently: the train split of ds, every frame of feats.h5 */
    secap_data_config dc;
    secap_data_config_default(&dc);
    secap_problems probs = { 0 };
    secap_dataset *d = secap_dataset_read(tu_tmp("ds"), &dc, &probs);
    secap_problems_free(&probs);
    if (!d->has_splits) secap_split_by_hash(d, dc.seed, (double[]){ 0.75, 0.25, 0 });
    int *idx = NULL, n = secap_split_indices(d, SECAP_SPLIT_TRAIN, &idx);
    secap_featcache *fc = secap_featcache_open_read(tu_tmp("feats.h5"));
    enum { A = 64 };   /* hubert_base_small's width */
    double sum[A] = { 0 }, sq[A] = { 0 }, N = 0;
    for (int i = 0; i < n; i++) {
        int64_t T, dim;
        float *x = secap_featcache_get(fc, d->items[idx[i]].id, &T, &dim);
        assert_non_null(x);
        assert_int_equal(dim, A);
        for (int64_t t = 0; t < T; t++)
            for (int a = 0; a < A; a++) { sum[a] += x[t * A + a]; sq[a] += (double)x[t * A + a] * x[t * A + a]; }
        N += (double)T;
        free(x);
    }
    free(idx);
    secap_featcache_close(fc);
    secap_dataset_free(d);
    float mean[A], sd[A], mean0[A], sd0[A];
    secap_weights *w = secap_weights_open(tu_tmp("hstd/ckpt-0000000012.h5"));
    secap_weights_read(w, "feature_norm.mean", 1, (int64_t[]){ A }, mean);
    secap_weights_read(w, "feature_norm.std", 1, (int64_t[]){ A }, sd);
    secap_weights_discard(w);
    w = secap_weights_open(tu_tmp("hstd/ckpt-0000000004.h5"));
    secap_weights_read(w, "feature_norm.mean", 1, (int64_t[]){ A }, mean0);
    secap_weights_read(w, "feature_norm.std", 1, (int64_t[]){ A }, sd0);
    secap_weights_discard(w);
    double dm = 0, ds = 0;
    for (int a = 0; a < A; a++) {
        double m = sum[a] / N, s = sqrt(fmax(0, sq[a] / N - m * m)) + 1e-5;
        dm = fmax(dm, fabs(mean[a] - m) / (fabs(m) + 1e-3));
        ds = fmax(ds, fabs(sd[a] - s) / s);
        if (mean[a] != mean0[a] || sd[a] != sd0[a]) fail_msg("feature_norm changed between steps 4 and 12 (dim %d)", a);
    }
    print_message("  hubert.standardize: %d train clips, %.0f frames; checkpoint vs here: mean %.2g, std %.2g relative\n",
                  n, N, dm, ds);
    if (!(dm < 1e-4 && ds < 1e-4)) fail_msg("feature_norm differs from the train split's statistics: %g, %g", dm, ds);
    snprintf(args, sizeof args, "%s --train.out_dir=hstds --train.stop_at_step=6", sa);
    EXPECT_RUN(0, NULL, "secap-train", args, "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume hstds", "done: 12 steps");
    expect_metrics_equal("hstds", "hstd");
    /* and the statistics matter: the losses differ from the run without */
    full_run();
    metrics m;
    read_metrics("hstd", &m);
    if (!strcmp(m.line[4], g_full.line[4])) fail_msg("hubert.standardize: qformer step 1 equals the plain run's");
    EXPECT_RUN(0, NULL, "secap-eval", "--checkpoint hstd --split dev --out hstd-eval", "");
    assert_int_equal(access(tu_tmp("hstd-eval/scores.json"), F_OK), 0);
}

/* Runs of set flags in z [n]: returns their count; *total their length,
 * *widest the longest so far. */
static int flag_runs(const int *z, int n, int *total, int *widest)
{
    int runs = 0, len = 0;
    *total = 0;
    for (int i = 0; i <= n; i++) {
        if (i < n && z[i]) { len++; continue; }
        if (len) { runs++; *total += len; if (len > *widest) *widest = len; }
        len = 0;
    }
    return runs;
}

/* [augment] (src/train/augment.c).  secap_augment_clip: nothing when off;
 * every element of a masked clip is either unchanged or exactly 0, the zeros
 * are whole frames or whole feature dimensions, in at most time_masks spans
 * of at most floor(time_mask_width * T) frames and feature_masks bands of at
 * most feature_mask_width dimensions; the frames past T are not touched; the
 * draws depend on (train.seed, gstep, item) alone; noise has the asked std.  Then a
 * run: stage lm as without, stages qformer and caption differ, stop + resume
 * is exact, and dev losses are not augmented. */
static void test_augment(void **st)
{
    (void)st;
    enum { T = 200, TP = 210, A = 64 };
    static float x0[TP * A], x[TP * A], y[TP * A];
    secap_rng r;
    secap_rng_seed(&r, 3);
    for (int i = 0; i < TP * A; i++) x0[i] = 1.0f + secap_rng_uniform(&r);   /* no zeros of its own */
    secap_train_config t;
    secap_train_config_default(&t);
    memcpy(x, x0, sizeof x);
    assert_false(secap_augment_active(&t));
    secap_augment_clip(&t, 5, 7, x, T, A);
    assert_memory_equal(x, x0, sizeof x);
    t.augment.time_masks = 2;
    t.augment.time_mask_width = 0.1;
    t.augment.feature_masks = 2;
    t.augment.feature_mask_width = 16;
    assert_true(secap_augment_active(&t));
    int widest_t = 0, widest_f = 0, masked_draws = 0;
    for (int g = 0; g < 300; g++) {
        memcpy(x, x0, sizeof x);
        secap_augment_clip(&t, g, 7, x, T, A);
        int zr[T] = { 0 }, zc[A] = { 0 }, nz = 0;
        for (int f = 0; f < T; f++) {
            int all = 1;
            for (int a = 0; a < A; a++) {
                float v = x[f * A + a];
                if (v != 0 && v != x0[f * A + a]) fail_msg("draw %d: frame %d dim %d changed to %g, not masked", g, f, a, v);
                all &= v == 0;
                nz += v == 0;
            }
            zr[f] = all;
        }
        for (int a = 0; a < A; a++) {
            int all = 1;
            for (int f = 0; f < T; f++) all &= x[f * A + a] == 0;
            zc[a] = all;
        }
        for (int f = 0; f < T; f++)
            for (int a = 0; a < A; a++)
                if (x[f * A + a] == 0 && !zr[f] && !zc[a]) fail_msg("draw %d: a 0 at frame %d dim %d outside any mask", g, f, a);
        /* runs of masked frames / dimensions: at most 2 spans in all, each within the bound
           (two spans can touch or overlap: then one run of at most twice the width) */
        int total, runs = flag_runs(zr, T, &total, &widest_t);
        if (runs > 2 || total > 2 * 20) fail_msg("draw %d: %d runs of %d masked frames (at most 2 spans of 20)", g, runs, total);
        runs = flag_runs(zc, A, &total, &widest_f);
        if (runs > 2 || total > 2 * 16) fail_msg("draw %d: %d bands of %d masked dims (at most 2 of 16)", g, runs, total);
        masked_draws += nz > 0;
        if (memcmp(x + T * A, x0 + T * A, (TP - T) * A * sizeof(float))) fail_msg("draw %d: frames past T changed", g);
    }
    print_message("  augment: 300 draws, %d masked; widest span %d frames (bound 20, 40 when two meet), band %d dims "
                  "(16, 32)\n", masked_draws, widest_t, widest_f);
    if (masked_draws < 290 || widest_t < 15 || widest_f < 12)
        fail_msg("the masks are too rare or too narrow: %d of 300 draws masked, widest %d frames, %d dims",
                 masked_draws, widest_t, widest_f);
    /* the same (seed, gstep, item) gives the same masks, another gstep, item or seed other ones */
    memcpy(x, x0, sizeof x);
    memcpy(y, x0, sizeof y);
    secap_augment_clip(&t, 40, 7, x, T, A);
    secap_augment_clip(&t, 40, 7, y, T, A);
    assert_memory_equal(x, y, sizeof x);
    const int64_t other[3][3] = { { 1, 41, 7 }, { 1, 40, 8 }, { 2, 40, 7 } };
    for (int k = 0; k < 3; k++) {
        memcpy(y, x0, sizeof y);
        t.train.seed = other[k][0];
        secap_augment_clip(&t, other[k][1], (int)other[k][2], y, T, A);
        if (!memcmp(x, y, sizeof x)) fail_msg("augment: seed/gstep/item %lld/%lld/%lld masks equal those of 1/40/7",
                                              (long long)other[k][0], (long long)other[k][1], (long long)other[k][2]);
    }
    /* noise: mean 0, std as asked (12800 draws: the std within 3 %) */
    secap_train_config_default(&t);
    t.augment.noise = 0.5;
    memcpy(x, x0, sizeof x);
    secap_augment_clip(&t, 3, 2, x, T, A);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < T * A; i++) { double d = x[i] - x0[i]; s1 += d; s2 += d * d; }
    double m = s1 / (T * A), sd = sqrt(s2 / (T * A) - m * m);
    print_message("  augment.noise = 0.5: mean %.4f, std %.4f over %d elements\n", m, sd, T * A);
    if (fabs(m) > 5 * 0.5 / sqrt(T * A) || fabs(sd - 0.5) > 0.015) fail_msg("noise mean %g std %g, want 0 and 0.5", m, sd);
    if (memcmp(x + T * A, x0 + T * A, (TP - T) * A * sizeof(float))) fail_msg("noise: frames past T changed");

    /* a run */
    full_run();
    const char *aug = "--config tiny.ini --augment.time_masks=2 --augment.time_mask_width=0.2 --augment.feature_masks=1 "
                      "--augment.feature_mask_width=8 --augment.noise=0.3";
    char args[1024];
    snprintf(args, sizeof args, "%s --train.out_dir=aug", aug);
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 12 steps");
    metrics ma;
    read_metrics("aug", &ma);
    for (int i = 0; i < 4; i++)
        if (strcmp(ma.line[i], g_full.line[i])) fail_msg("augment changed stage lm, step %d:\n%s\n%s", i + 1, ma.line[i], g_full.line[i]);
    for (int i = 4; i < 12; i += 4)
        if (!strcmp(ma.line[i], g_full.line[i])) fail_msg("augment left step %d (stage %s) as without", i + 1, i < 8 ? "qformer" : "caption");
    snprintf(args, sizeof args, "%s --train.out_dir=augs --train.stop_at_step=9", aug);
    EXPECT_RUN(0, NULL, "secap-train", args, "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume augs", "done: 12 steps");
    expect_metrics_equal("augs", "aug");
    /* dev losses are not augmented: with learning rates of 1e-12 the weights stay put, so the
       dev loss of a run with strong augmentation equals the plain run's */
    const char *still = "--config tiny.ini --optim.lr=1e-12 --optim.min_lr=0 --loss.mi_lr=1e-12 --train.stages=qformer,caption";
    snprintf(args, sizeof args, "%s --train.out_dir=still0", still);
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 8 steps");
    snprintf(args, sizeof args, "%s --train.out_dir=still1 --augment.noise=3 --augment.time_masks=3 --augment.time_mask_width=0.3", still);
    EXPECT_RUN(0, NULL, "secap-train", args, "done: 8 steps");
    metrics m0, m1;
    read_metrics("still0", &m0);
    read_metrics("still1", &m1);
    int checked = 0;
    for (int i = 0; i < 8; i++) {
        double a = field(m0.line[i], "dev_loss"), b = field(m1.line[i], "dev_loss");
        if (isnan(a)) continue;
        if (!(fabs(a - b) <= 1e-5 * fabs(a))) fail_msg("step %d: dev loss %.9g with augmentation, %.9g without", i + 1, b, a);
        checked++;
    }
    if (checked < 4) fail_msg("only %d dev losses to compare", checked);
    if (field(m0.line[0], "loss") == field(m1.line[0], "loss")) fail_msg("the augmented run's first training loss equals the plain one's");
}

/* train.init_from: an lm-only run, then a run from its checkpoint, equals
 * the full run bit for bit from the qformer stage on; stop + resume of
 * such a run; the refusals. */
static void test_init_from(void **st)
{
    (void)st;
    full_run();
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.stages=lm --train.out_dir=lmonly", "done: 4 steps");
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifr --train.init_from=lmonly",
               "starting at stage qformer");
    assert_non_null(strstr(g_out, "done: 12 steps"));
    metrics m;
    read_metrics("ifr", &m);
    assert_int_equal(m.n, 8);
    for (int i = 0; i < 8; i++)
        if (strcmp(m.line[i], g_full.line[4 + i]))
            fail_msg("init_from: step %d differs from the full run:\n  init_from: %s\n  full:      %s", 5 + i,
                     m.line[i], g_full.line[4 + i]);
    print_message("  init_from an lm-only run: 8 steps equal the full run's bit for bit\n");
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifrs --train.init_from=lmonly "
               "--train.stop_at_step=10", "Resume with:");
    EXPECT_RUN(0, NULL, "secap-train", "--resume ifrs", "done: 12 steps");
    expect_metrics_equal("ifrs", "ifr");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifr2 --train.init_from=full/ckpt-0000000010.h5",
               "was saved inside stage caption at step 2");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifr3 --train.init_from=lmonly "
               "--train.stages=qformer,caption", "does not begin with it");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifr6 --train.init_from=lmonly "
               "--train.stages=lm", "finished 1 stages (train.stages = lm there), this run has 1 (lm)");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifr4 --train.init_from=nope.h5",
               "train.init_from nope.h5: No such file");
    EXPECT_RUN(1, NULL, "secap-train", "--config tiny.ini --train.out_dir=ifr5 --train.init_from=ds",
               "holds no checkpoint");
}

/* [config] base = FILE */
static void test_config_base(void **st)
{
    (void)st;
    mkdir(tu_tmp("sub"), 0777);
    tu_write_text("sub/child.ini", "# on top of tiny.ini\n[config]\nbase = ../tiny.ini\n[train]\nstages = lm\n"
                  "max_steps = 1\nout_dir = basechild\n");
    EXPECT_RUN(0, NULL, "secap-train", "--config sub/child.ini", "done: 1 steps");
    char *cfg = secap_read_file(tu_tmp("basechild/config.ini"), NULL, "config.ini");
    if (!strstr(cfg, "max_steps = 1\n") || !strstr(cfg, "stages = lm\n") || !strstr(cfg, "block_size = 16\n") ||
        strstr(cfg, "[config]"))
        fail_msg("basechild/config.ini is not tiny.ini with the child's keys on top:\n%s", cfg);
    free(cfg);
    tu_write_text("sub/bad_key.ini", "[config]\nbase = ../tiny.ini\n[train]\nmax_stepz = 3\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config sub/bad_key.ini", "sub/bad_key.ini:4: unknown key train.max_stepz");
    tu_write_text("sub/base_key.ini", "[config]\nbase = base_bad.ini\n");
    tu_write_text("sub/base_bad.ini", "[config]\nbase = ../tiny.ini\n[optim]\nschedule = cosin\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config sub/base_key.ini", "sub/base_bad.ini:4: optim.schedule = \"cosin\"");
    tu_write_text("nobase.ini", "[data]\ndir = ds\n[config]\nbase = nope.ini\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config nobase.ini", "nobase.ini:4: config.base = nope.ini: cannot read nope.ini");
    tu_write_text("cfgkey.ini", "[config]\nbass = tiny.ini\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config cfgkey.ini", "cfgkey.ini:2: unknown key config.bass in section [config]");
    tu_write_text("cycle.ini", "[config]\nbase = cycle.ini\n");
    EXPECT_RUN(1, NULL, "secap-train", "--config cycle.ini", "more than 8 nested bases");
}

/* 1 if path is a PNG (signature) of more than min_bytes. */
static int is_png(const char *path, long min_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char sig[8] = { 0 };
    size_t n = fread(sig, 1, 8, f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fclose(f);
    static const unsigned char PNG[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    if (n != 8 || memcmp(sig, PNG, 8)) fail_msg("%s: no PNG signature", path);
    if (sz <= min_bytes) fail_msg("%s: %ld bytes, expected more than %ld", path, sz, min_bytes);
    return 1;
}

/* tools/plot_run.sh on a run's metrics.jsonl (gnuplot must be installed:
 * tools/deps.sh test installs it); secap-train drawing them at each stage
 * end (log.plots), and saying so when gnuplot is missing. */
static void test_plots(void **st)
{
    (void)st;
    full_run();
    char tool[2200], cmd[8192];
    snprintf(tool, sizeof tool, "%s/../tools/plot_run.sh", g_bin);
    if (access(tool, X_OK)) snprintf(tool, sizeof tool, "%s/../../tools/plot_run.sh", g_bin);
    if (access(tool, X_OK)) fail_msg("tools/plot_run.sh not found next to %s", g_bin);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' full > plot.out 2>&1", tu_dir, tool);
    if (system(cmd) != 0) {
        char *o = secap_read_file(tu_tmp("plot.out"), NULL, "plot output");
        fail_msg("%s full failed (is gnuplot installed? tools/deps.sh test):\n%s", tool, o);
    }
    const char *stages[3] = { "lm", "qformer", "caption" };
    for (int i = 0; i < 3; i++) assert_true(is_png(tu_tmp("full/plots/%s.png", stages[i]), 10000));
    print_message("  tools/plot_run.sh: full/plots/{lm,qformer,caption}.png\n");
    /* one stage, and the errors */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' full caption > plot.out 2>&1 && grep -c png plot.out | grep -qx 1", tu_dir,
             tool);
    if (system(cmd) != 0) fail_msg("%s full caption did not draw exactly one PNG", tool);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' ds > plot.out 2>&1; test $? = 1 && grep -q 'metrics.jsonl: no such file' "
             "plot.out", tu_dir, tool);
    if (system(cmd) != 0) fail_msg("%s on a directory without metrics.jsonl did not fail with a message", tool);
    /* secap-train draws them at each stage end, and goes on without gnuplot */
    EXPECT_RUN(0, NULL, "secap-train", "--config tiny.ini --train.out_dir=plt --train.stages=lm,qformer "
               "--log.plots=true", "stage qformer: loss curves in plt/plots/qformer.png");
    assert_true(is_png(tu_tmp("plt/plots/lm.png"), 10000));
    assert_true(is_png(tu_tmp("plt/plots/qformer.png"), 10000));
    EXPECT_RUN(0, "PATH=/nonexistent", "secap-train", "--config tiny.ini --train.out_dir=plt2 --train.stages=lm "
               "--log.plots=true", "no loss-curve PNGs: gnuplot is not installed");
    assert_int_equal(access(tu_tmp("plt2/plots/lm.png"), F_OK), -1);
}

/* tools/experiments on the tiny models: two systems (full, frozen) x two
 * seeds sharing one lm run per seed; the table's cells are the mean and
 * sample std of the runs' scores.json. */
static void test_experiments(void **st)
{
    (void)st;
    char tool[2200], cmd[8192];
    snprintf(tool, sizeof tool, "%s/../tools/experiments", g_bin);
    if (access(tool, X_OK)) snprintf(tool, sizeof tool, "%s/../../tools/experiments", g_bin);
    if (access(tool, X_OK)) fail_msg("tools/experiments not found next to %s", g_bin);
    tu_write_text("tiny-frozen.ini", "[config]\nbase = tiny.ini\n[qformer]\nfreeze_in_caption = true\n");
    snprintf(cmd, sizeof cmd, "cd '%s' && SECAP_THREADS=1 OMP_WAIT_POLICY=passive '%s' --bin '%s' --out exp "
             "--systems full=tiny.ini,frozen=tiny-frozen.ini --seeds 1,2 --steps 2 --lm-steps 3 --split dev "
             "> exp.out 2>&1", tu_dir, tool, g_bin);
    int rc = system(cmd);
    char *out = secap_read_file(tu_tmp("exp.out"), NULL, "experiments output");
    if (rc) fail_msg("tools/experiments failed:\n%s", out);
    /* one lm run per seed, each system from it */
    for (int s = 1; s <= 2; s++) {
        char *log = secap_read_file(tu_tmp("exp/seed%d/frozen.log", s), NULL, "frozen log");
        if (!strstr(log, "train.init_from exp/seed") || !strstr(log, "starting at stage qformer"))
            fail_msg("exp/seed%d/frozen.log: not started from the shared lm run:\n%s", s, log);
        free(log);
    }
    char *table = secap_read_file(tu_tmp("exp/table.md"), NULL, "table");
    if (!strstr(table, "| baseline: most frequent train caption |") || !strstr(table, "(`tiny-frozen.ini`) |"))
        fail_msg("exp/table.md lacks the baseline or system rows:\n%s", table);
    /* the frozen row's BLEU-1 cell: mean +- sample std of the two runs' */
    double v[2];
    for (int s = 0; s < 2; s++) {
        char *js = secap_read_file(tu_tmp("exp/seed%d/frozen/eval-dev/scores.json", s + 1), NULL, "scores");
        v[s] = 100 * field(strstr(js, "\"model\""), "Bleu_1");
        free(js);
    }
    double mean = (v[0] + v[1]) / 2, sd = fabs(v[0] - v[1]) / sqrt(2.0);
    char cell[128];
    snprintf(cell, sizeof cell, "(`tiny-frozen.ini`) | %.2f ± %.2f |", mean, sd);
    if (!strstr(table, cell)) fail_msg("exp/table.md: the frozen row should begin \"%s\":\n%s", cell, table);
    print_message("  tools/experiments: 2 systems x 2 seeds, frozen BLEU-1 %.2f ± %.2f\n", mean, sd);
    free(table);
    table = NULL;
    /* a second call reuses every run and its scores: with constructed
     * scores (BLEU-1 0.30 and 0.50, CIDEr 1.0 and 2.0) the cells are
     * 40.00 +- 14.14 and 1.500 +- 0.707 */
    for (int s = 0; s < 2; s++) {
        char name[128];
        snprintf(name, sizeof name, "exp/seed%d/frozen/eval-dev/scores.json", s + 1);
        tu_write_text(name,
                      s ? "{\"model\": {\"Bleu_1\": 0.5, \"CIDEr\": 2.0}, \"baseline_frequent\": {}, "
                          "\"baseline_random\": {}}"
                        : "{\"model\": {\"Bleu_1\": 0.3, \"CIDEr\": 1.0}, \"baseline_frequent\": {}, "
                          "\"baseline_random\": {}}");
    }
    rc = system(cmd);
    free(out);
    out = secap_read_file(tu_tmp("exp.out"), NULL, "experiments output");
    if (rc || strstr(out, "secap-train") || strstr(out, "secap-eval"))
        fail_msg("tools/experiments trained or scored again on a finished set:\n%s", out);
    table = secap_read_file(tu_tmp("exp/table.md"), NULL, "table");
    if (!strstr(table, "(`tiny-frozen.ini`) | 40.00 ± 14.14 | - | - | - | 1.500 ± 0.707 |"))
        fail_msg("exp/table.md: the frozen row does not aggregate the constructed scores:\n%s", table);
    free(table);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_resume_stop_at),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_kill9_step),
        cmocka_unit_test(test_kill9_save),
        cmocka_unit_test(test_ckpt_refused),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_devcap),
        cmocka_unit_test(test_caption_aux),
        cmocka_unit_test(test_probe_units),
        cmocka_unit_test(test_probe_match),
        cmocka_unit_test(test_probe_bag),
        cmocka_unit_test(test_probe_metrics),
        cmocka_unit_test(test_embed_ckpt),
        cmocka_unit_test(test_frozen_qformer),
        cmocka_unit_test(test_linear_bridge),
        cmocka_unit_test(test_hubert_train_layers),
        cmocka_unit_test(test_standardize),
        cmocka_unit_test(test_augment),
        cmocka_unit_test(test_init_from),
        cmocka_unit_test(test_config_base),
        cmocka_unit_test(test_plots),
        cmocka_unit_test(test_experiments),
    };
    /* TEST_TRAIN_FILTER=test_probe_* runs only the matching tests */
    if (getenv("TEST_TRAIN_FILTER")) cmocka_set_test_filter(getenv("TEST_TRAIN_FILTER"));
    return cmocka_run_group_tests(tests, setup, tu_tmpdir_teardown);
}
