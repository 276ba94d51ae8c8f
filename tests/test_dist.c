/* MPI data parallelism (secap/dist.h): bin/secap-train under `mpirun -np 2`
 * on this machine against one process with the same global batch, on the
 * tiny dataset and models of tests/test_train.c (stages lm and caption,
 * dropout 0).  The programs are found next to this test's directory.
 *   - mpirun is installed (tools/deps.sh test installs OpenMPI: a missing
 *     one is a failure, not a skip);
 *   - 2 ranks vs 1 process: every logged loss, dev loss and gradient norm
 *     within 1e-5 relative, the stage / step / prompt fields equal, and
 *     every tensor of the checkpoints of steps 4, 6 and 8 (trainable
 *     weights; the AdamW moments in step 6's, inside a stage) within 1e-5
 *     relative (L2 norm of the difference per tensor), the attention key
 *     biases bit for bit;
 *   - a 2-rank run stopped by train.stop_at_step and resumed on 2 ranks
 *     equals the uninterrupted 2-rank run bit for bit;
 *   - a rank killed with SIGKILL (SECAP_DIST_FAULT) makes mpirun exit
 *     non-zero within 60 s, and its last checkpoint resumes to the
 *     uninterrupted run's metrics; a hanging rank is aborted by the
 *     watchdog (train.dist_timeout) within 60 s, with its message;
 *   - stage qformer (contrastive + vCLUB from gathered embeddings, the MI
 *     estimator stepped on the global batch), full and sampled variants:
 *     2 ranks vs 1 process, losses, terms, gradient norms and weights
 *     within 1e-5; AdamW moments within 5e-5 and the zero-initialised
 *     biases within 3e-4 (measured, and why, at test_qformer_two_ranks);
 *     attention key biases exactly 0 in every run;
 *   - train.dist_overlap with 2 KiB buckets (many, most started during the
 *     backward pass) and the same buckets without overlap equal the default
 *     2-rank runs bit for bit, stages lm, caption and qformer.
 * A build without MPI asked for with make MPI=0 (SECAP_MPI_OFF) checks
 * instead that mpirun -np 2 of its secap-train stops with the "built
 * without MPI" message (the other cases are skipped); a build that lacks MPI
 * because mpicc was missing fails. */
#include "testutil.h"
#include "tinyds.h"

#include "secap/dist.h"
#include "secap/h5io.h"

#include <libgen.h>
#include <math.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char g_bin[1024];
static char g_out[1 << 17];
static char g_cmd[1 << 14];
static char g_hubert[4096];
static char g_spm[4096];

/* mpirun on one machine as root, shared memory between the ranks, no CPU
 * binding and waiting ranks yield the CPU (a shared machine); MCA plugins stay loaded so the sanitizer
 * build's leak reports resolve OpenMPI's frames (tests/lsan.supp), whose
 * stacks need the slow unwinder (OpenMPI has no frame pointers). */
#define MPIRUN "env ASAN_OPTIONS=\"${ASAN_OPTIONS:-}:fast_unwind_on_malloc=0\" " \
               "mpirun --oversubscribe --allow-run-as-root --bind-to none --mca btl self,vader " \
               "--mca btl_vader_single_copy_mechanism none --mca mca_base_component_disable_dlclose 1 " \
               "--mca mpi_yield_when_idle 1 -np 2"

/* Runs "[mpirun ...] <bin>/secap-train <args>" in tu_dir (np 1: no
 * mpirun); output into g_out; *secs the wall time. */
static int run(int np, const char *env, const char *args, double *secs)
{
    char *cmd = g_cmd;
    snprintf(cmd, sizeof g_cmd, "cd '%s' && %s SECAP_THREADS=1 OMP_WAIT_POLICY=passive timeout -s KILL 300 %s "
             "'%s/secap-train' %s 2>&1", tu_dir, env ? env : "", np > 1 ? MPIRUN : "", g_bin, args);
    double t0 = secap_now();
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    if (secs) *secs = secap_now() - t0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define EXPECT_RUN(status, np, env, args, substr)                                                          \
    do {                                                                                                   \
        int rc_ = run(np, env, args, NULL);                                                                \
        if (rc_ != (status)) fail_msg("np %d: secap-train %s: exit %d, expected %d\n%s", np, args, rc_, status, \
                                      g_out);                                                              \
        if (!strstr(g_out, substr)) fail_msg("np %d: secap-train %s: output lacks \"%s\":\n%s", np, args, substr, \
                                             g_out);                                                       \
    } while (0)

static int run_tool(const char *prog, const char *args)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' && SECAP_THREADS=1 OMP_WAIT_POLICY=passive '%s/%s' %s > %s.log 2>&1", tu_dir,
             g_bin, prog, args, prog);
    return system(cmd);
}

static int setup(void **st)
{
    if (tds_bin_dir(g_bin, sizeof g_bin)) return -1;
    if (!realpath(tu_ref_path("hubert_base_small.h5"), g_hubert) ||
        !realpath(tu_ref_path("spm_llama_s.model"), g_spm)) {
        fprintf(stderr, "test_dist: %s or spm_llama_s.model is missing (hint: tests/run.sh makes them)\n",
                tu_ref_path("hubert_base_small.h5"));
        return -1;
    }
    if (tu_tmpdir_setup(st)) return -1;
    /* 16 clips of 0.4-0.6 s, 4 emotions, 2 captions each */
    tds_write(16, NULL, 0);
    char args[8192];
    if (run_tool("secap-vocab", "--data ds --out vocab.txt")) return -1;
    snprintf(args, sizeof args, "--threads 1 --hubert '%s' --data ds --out feats.h5", g_hubert);
    if (run_tool("secap-extract", args)) return -1;
    char ini[16384];
    /* batch 5 on 2 ranks: uneven shards (3 + 2 rows) */
    snprintf(ini, sizeof ini,
             "# tiny models for tests/test_dist.c\n"
             "[data]\ndir = ds\nbatch_size = 5\nworkers = 1\nprefetch = 2\nsplit_ratios = 0.75,0.25,0\n"
             "[hubert]\nweights = %s\ncache = feats.h5\n"
             "[qformer]\nvocab = vocab.txt\nhidden_size = 32\nnum_hidden_layers = 2\nnum_attention_heads = 2\n"
             "intermediate_size = 64\nnum_query_tokens = 4\nencoder_width = 32\nembed_dim = 16\n"
             "max_position_embeddings = 64\ndropout = 0\n"
             "[llama]\ntokenizer = %s\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n"
             "num_attention_heads = 2\nmax_position_embeddings = 128\nbf16 = false\n"
             "[lora]\nr = 4\nlora_dropout = 0\n[lm]\nblock_size = 16\nbatch_size = 5\n[loss]\nmi_hidden = 16\n"
             "[optim]\nlr = 1e-3\nwarmup = 2\n"
             "[eval]\nevery = 2\nbatches = 2\n"
             "[train]\nout_dir = run\nmax_steps = 4\nstages = lm,caption\nsave_every = 2\n", g_hubert, g_spm);
    tu_write_text("tiny.ini", ini);
    return 0;
}

static void test_mpirun_present(void **st)
{
    (void)st;
    if (system("command -v mpirun > /dev/null 2>&1") != 0)
        fail_msg("mpirun is not installed (hint: tools/deps.sh test installs libopenmpi-dev and openmpi-bin; as "
                 "root: apt-get install openmpi-bin libopenmpi-dev)");
}

/* ------------------------------------------------------------- metrics */

typedef struct { char line[64][2048]; int n; } metrics;

static void read_metrics(const char *dir, metrics *m)
{
    FILE *f = fopen(tu_tmp("%s/metrics.jsonl", dir), "r");
    if (!f) fail_msg("%s/metrics.jsonl is missing", dir);
    m->n = 0;
    while (m->n < 64 && fgets(m->line[m->n], sizeof m->line[0], f)) {
        char *t = strstr(m->line[m->n], ",\"samples_per_s\"");
        if (!t) fail_msg("%s/metrics.jsonl line %d lacks samples_per_s: %s", dir, m->n + 1, m->line[m->n]);
        *t = 0;
        m->n++;
    }
    fclose(f);
}

/* The value of "key": in line (NAN when absent). */
static double field(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

/* Cuts the stage-1 terms ("mi" ... "temp") out of a metrics line (they
 * are compared numerically). */
static void cut_stage1(char *line)
{
    char *p = strstr(line, ",\"mi\":"), *t = strstr(line, ",\"temp\":");
    if (!p || !t) return;
    char *e = t + 1;
    while (*e && *e != ',' && *e != '}') e++;
    memmove(p, e, strlen(e) + 1);
}

/* The line with its numeric fields of `keys` cut out (the rest compared exactly). */
static void cut(const char *line, char *out, size_t cap)
{
    snprintf(out, cap, "%s", line);
    static const char *const K[] = { "\"loss\":", "\"dev_loss\":", "\"caption\":", "\"grad_norm\":",
                                     "\"dev_mi\":" };
    for (int i = 0; i < 5; i++) {
        char *p = strstr(out, K[i]);
        if (!p) continue;
        char *e = p + strlen(K[i]);
        while (*e && *e != ',' && *e != '}') e++;
        memmove(p, e, strlen(e) + 1);
    }
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-30); }

/* Losses within 1e-5 relative; gradient norms within gtol. */
static void expect_close(const metrics *a, const metrics *b, const char *what, double gtol)
{
    if (a->n != b->n) fail_msg("%s: %d metric lines vs %d", what, a->n, b->n);
    double worst = 0, gworst = 0;
    for (int i = 0; i < a->n; i++) {
        char ca[2048], cb[2048];
        cut(a->line[i], ca, sizeof ca);
        cut(b->line[i], cb, sizeof cb);
        if (strcmp(ca, cb)) fail_msg("%s: step %d differs outside the losses:\n  %s\n  %s", what, i + 1, ca, cb);
        static const char *const K[] = { "loss", "dev_loss", "grad_norm" };
        for (int k = 0; k < 3; k++) {
            double x = field(a->line[i], K[k]), y = field(b->line[i], K[k]);
            if (isnan(x) != isnan(y)) fail_msg("%s: step %d: %s present in one run only", what, i + 1, K[k]);
            if (isnan(x)) continue;
            double r = rel(x, y), tol = k == 2 ? gtol : 1e-5;
            if (k < 2 && r > worst) worst = r;
            if (k == 2 && r > gworst) gworst = r;
            if (r > tol)
                fail_msg("%s: step %d: %s %.9g vs %.9g (relative difference %.3g > %g)\n  %s\n  %s", what, i + 1,
                         K[k], x, y, r, tol, a->line[i], b->line[i]);
        }
        /* the dev vCLUB bound of the stage-1 probes (from the estimator the
         * ranks fit on gathered embeddings) is a difference of two nearly
         * equal terms: compared on the scale of the dev loss, like mi */
        double x = field(a->line[i], "dev_mi"), y = field(b->line[i], "dev_mi");
        if (isnan(x) != isnan(y)) fail_msg("%s: step %d: dev_mi present in one run only", what, i + 1);
        double dl = fabs(field(a->line[i], "dev_loss"));
        if (!isnan(x) && !(fabs(x - y) <= 1e-5 * dl))
            fail_msg("%s: step %d: dev_mi %.9g vs %.9g differ by %.3g of the dev loss %.9g (> 1e-5)\n  %s\n  %s",
                     what, i + 1, x, y, fabs(x - y) / dl, dl, a->line[i], b->line[i]);
    }
    print_message("  %s: %d steps, losses within %.3g relative, gradient norms within %.3g\n", what, a->n, worst,
                  gworst);
}

static void expect_equal(const metrics *a, const metrics *b, const char *what)
{
    if (a->n != b->n) fail_msg("%s: %d metric lines vs %d", what, a->n, b->n);
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->line[i], b->line[i]))
            fail_msg("%s: step %d differs:\n  %s\n  %s", what, i + 1, a->line[i], b->line[i]);
    print_message("  %s: %d steps equal bit for bit\n", what, a->n);
}

/* Tolerances of expect_same_ckpt, per kind of tensor (relative L2 norm of
 * the difference): weights (every trainable tensor but the biases), biases
 * (names ending in .bias: 0 at the random init, their value made of AdamW
 * steps alone), AdamW moments (optim.*, mi_optim.*).  Attention key biases
 * are compared bit for bit and must still be 0: their gradient is exactly 0
 * (src/nn/qformer.c attn_fwd). */
typedef struct { double w, b, m; } ckpt_tol;

static void expect_same_ckpt(const char *pa, const char *pb, ckpt_tol tol)
{
    secap_h5 *a = secap_h5_open(tu_tmp("%s", pa), 0), *b = secap_h5_open(tu_tmp("%s", pb), 0);
    int na = 0, nb = 0;
    char **la = secap_h5_list(a, &na), **lb = secap_h5_list(b, &nb);
    if (na != nb || na < 10) fail_msg("%s has %d tensors, %s %d", pa, na, pb, nb);
    static const char *const KIND[3] = { "weights", "biases", "moments" };
    double worst[3] = { 0, 0, 0 }, lim[3] = { tol.w, tol.b, tol.m };
    const char *wname[3] = { "-", "-", "-" };
    int count[3] = { 0, 0, 0 }, nkey = 0;
    for (int i = 0; i < na; i++) {
        size_t l = strlen(la[i]);
        int key = strstr(la[i], ".self.key.bias") != NULL;
        int kind = !strncmp(la[i], "optim.", 6) || !strncmp(la[i], "mi_optim.", 9) ? 2
                   : l > 5 && !strcmp(la[i] + l - 5, ".bias")                     ? 1 : 0;
        int ra, rb;
        int64_t da[8], db[8];
        float *x = secap_h5_read_f32(a, la[i], &ra, da);
        float *y = secap_h5_read_f32(b, la[i], &rb, db);
        int64_t n = 1;
        for (int k = 0; k < ra; k++) n *= da[k];
        if (ra != rb || memcmp(da, db, (size_t)ra * sizeof *da)) fail_msg("%s: shapes differ", la[i]);
        double d2 = 0, x2 = 0, amax = 0;
        for (int64_t k = 0; k < n; k++) {
            d2 += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
            x2 += (double)x[k] * x[k];
            amax = fmax(amax, fmax(fabs(x[k]), fabs(y[k])));
        }
        free(x);
        free(y);
        if (key) {
            if (d2 != 0 || amax != 0)
                fail_msg("%s vs %s: attention key bias %s is %.3g at most, differs by %.3g (L2): it must stay "
                         "exactly 0 (hint: its gradient is exactly 0, the key bias is detached in "
                         "src/nn/qformer.c attn_fwd)", pa, pb, la[i], amax, sqrt(d2));
            nkey++;
            continue;
        }
        double r = x2 > 0 ? sqrt(d2 / x2) : sqrt(d2);
        count[kind]++;
        if (r > worst[kind]) { worst[kind] = r; wname[kind] = la[i]; }
        if (!(r <= lim[kind]))
            fail_msg("%s vs %s: tensor %s (%s) differs by %.3g relative (L2) > %g", pa, pb, la[i], KIND[kind], r,
                     lim[kind]);
    }
    if (nkey == 0) fail_msg("%s: no attention key bias (hint: the Q-Former's names changed?)", pa);
    print_message("  %s vs %s: %d key biases equal and 0", pa, pb, nkey);
    for (int k = 0; k < 3; k++)
        if (count[k]) print_message("; %d %s within %.3g (%s)", count[k], KIND[k], worst[k], wname[k]);
    print_message("\n");
    secap_h5_free_names(la, na);
    secap_h5_free_names(lb, nb);
    secap_h5_close(a);
    secap_h5_close(b);
}

/* ------------------------------------------------------------- tests */

static metrics g_one, g_two;

static void test_two_ranks_equal_one(void **st)
{
    (void)st;
    if (!secap_dist_compiled()) {
#ifndef SECAP_MPI_OFF
        fail_msg("this build has no MPI: mpicc was missing when it was built (hint: tools/deps.sh test installs "
                 "OpenMPI, then make clean && make; make MPI=0 builds and tests without MPI on purpose)");
#endif
        EXPECT_RUN(1, 2, NULL, "--config tiny.ini --train.out_dir=nompi", "built without MPI");
        return;
    }
    EXPECT_RUN(0, 1, NULL, "--config tiny.ini --train.out_dir=one", "done: 8 steps");
    EXPECT_RUN(0, 2, NULL, "--config tiny.ini --train.out_dir=two", "done: 8 steps");
    if (!strstr(g_out, "data parallel on 2 ranks")) fail_msg("the 2-rank run did not say so:\n%s", g_out);
    read_metrics("one", &g_one);
    read_metrics("two", &g_two);
    assert_int_equal(g_one.n, 8);
    assert_non_null(strstr(g_one.line[0], "\"stage\":\"lm\""));
    assert_non_null(strstr(g_one.line[7], "\"stage\":\"caption\""));
    assert_non_null(strstr(g_one.line[7], "\"dev_loss\":"));
    expect_close(&g_one, &g_two, "2 ranks vs 1 process", 1e-5);
    const ckpt_tol t = { 1e-5, 1e-5, 1e-5 };
    expect_same_ckpt("one/ckpt-0000000008.h5", "two/ckpt-0000000008.h5", t);
    expect_same_ckpt("one/ckpt-0000000004.h5", "two/ckpt-0000000004.h5", t);
    expect_same_ckpt("one/ckpt-0000000006.h5", "two/ckpt-0000000006.h5", t);   /* mid-stage: with the moments */
}

static void test_resume_two_ranks(void **st)
{
    (void)st;
    if (!secap_dist_compiled()) skip();
    int ks[] = { 3, 6 };   /* inside lm, inside caption */
    for (int i = 0; i < 2; i++) {
        char args[256], dir[32];
        snprintf(dir, sizeof dir, "stop%d", ks[i]);
        snprintf(args, sizeof args, "--config tiny.ini --train.out_dir=%s --train.stop_at_step=%d", dir, ks[i]);
        EXPECT_RUN(0, 2, NULL, args, "Resume with:");
        snprintf(args, sizeof args, "--resume %s", dir);
        EXPECT_RUN(0, 2, NULL, args, "done: 8 steps");
        metrics m;
        read_metrics(dir, &m);
        expect_equal(&m, &g_two, args);
    }
}

static void test_rank_killed(void **st)
{
    (void)st;
    if (!secap_dist_compiled()) skip();
    double secs;
    int rc = run(2, "SECAP_DIST_FAULT=kill:1:5", "--config tiny.ini --train.out_dir=killed", &secs);
    if (rc == 0) fail_msg("a killed rank: mpirun exited 0\n%s", g_out);
    if (secs > 60) fail_msg("a killed rank: mpirun took %.0f s to fail (bound 60 s)\n%s", secs, g_out);
    print_message("  rank 1 killed after step 5: mpirun exit %d after %.1f s\n", rc, secs);
    /* the last checkpoint (step 4) resumes to the uninterrupted run */
    EXPECT_RUN(0, 2, NULL, "--resume killed", "resumed from");
    if (!strstr(g_out, "global step 4")) fail_msg("resume of the killed run did not start at step 4:\n%s", g_out);
    metrics m;
    read_metrics("killed", &m);
    expect_equal(&m, &g_two, "killed at step 5, resumed from step 4");
}

static void test_rank_hangs(void **st)
{
    (void)st;
    if (!secap_dist_compiled()) skip();
    double secs;
    int rc = run(2, "SECAP_DIST_FAULT=hang:1:3", "--config tiny.ini --train.out_dir=hung --train.dist_timeout=4",
                 &secs);
    if (rc == 0) fail_msg("a hanging rank: mpirun exited 0\n%s", g_out);
    if (secs > 60) fail_msg("a hanging rank: mpirun took %.0f s to fail (bound 60 s)\n%s", secs, g_out);
    if (!strstr(g_out, "train.dist_timeout = 4")) fail_msg("a hanging rank: no watchdog message:\n%s", g_out);
    print_message("  rank 1 hangs after step 3: mpirun exit %d after %.1f s\n", rc, secs);
}

/* Stage qformer (batch-coupled losses from gathered embeddings), both
 * vCLUB variants, with labels (class positives) and the MI estimator.
 *
 * The Q-Former here is initialised with std QF_INIT = 0.3 (qformer.
 * initializer_range) instead of BERT's 0.02: at 0.02 this tiny random model
 * maps every clip and caption to nearly the same embedding (pairwise
 * 1 - cos ~ 1e-6), so the contrastive and vCLUB gradients are sums of large
 * terms that cancel; the ~2e-7 rounding difference of the embeddings (the
 * per-row result of OpenBLAS sgemm depends on the row count, 3 + 2 rows vs
 * 5) then moved the gradient by 3.8e-4 relative (whole gradient, step 1)
 * and the weights by up to 3.6e-3.  At 0.3 (1 - cos ~ 1e-2) the gradient
 * of 2 ranks differs from one process's by 2.4e-6 (step 1; 3.6e-6 at
 * step 2), the size of a pure rounding change (SECAP_THREADS 2 vs 1:
 * 2.4e-6 at step 2).  Measured on this machine (steps 2 and 4, both
 * variants; the build of make, then the sanitizer build's (-O1); tolerance
 * in brackets):
 *   losses, con, est, temp, dev_loss   7.9e-7, 9.8e-7  (1e-5)
 *   mi, dev_mi on the loss's scale     5.5e-7          (1e-5)
 *   gradient norms                     2.2e-6, 4.4e-6  (1e-5)
 *   weights (all but biases)           1.6e-6, 2.5e-6  (1e-5)
 *   AdamW moments                      9.7e-6, 1.4e-5  (MTOL 5e-5: v carries twice the gradient's
 *                                                       relative error, up to ~1e-5 per tensor)
 *   biases                             3.1e-5, 6.6e-5  (BTOL 3e-4)
 *   attention key biases               0 in both (bit for bit)
 * The biases cannot meet 1e-5: they start at 0, so their value is AdamW's
 * steps alone, and AdamW moves every element by ~lr whatever the size of
 * its gradient, so a near-zero gradient element carries its relative error
 * into the tensor: layer.1.intermediate.dense.bias (full) has an element
 * with gradient -4.93e-7 (median |g| 2.4e-3) that differs by 2.8e-9
 * (rounding-sized, 5.7e-3 relative) between the runs; after step 2 the
 * element differs by 7.8e-4 of its value and the tensor by 2.5e-5 (at
 * std 0.2 such tensors reach 1.6e-4). */
#define QF_INIT "0.3"
#define MTOL 5e-5
#define BTOL 3e-4
static void test_qformer_two_ranks(void **st)
{
    (void)st;
    if (!secap_dist_compiled()) skip();
    static const char *const V[2] = { "full", "sampled" };
    /* the sampled variant also runs [augment]: its draws are keyed by the
     * dataset item, so each rank masks its clips as the one process does */
    static const char *const AUG[2] = { "", "--augment.time_masks=2 --augment.time_mask_width=0.3 "
                                            "--augment.feature_masks=1 --augment.feature_mask_width=8 --augment.noise=0.2" };
    for (int v = 0; v < 2; v++) {
        char args[512], d1[32], d2[32];
        snprintf(d1, sizeof d1, "q1_%s", V[v]);
        snprintf(d2, sizeof d2, "q2_%s", V[v]);
        snprintf(args, sizeof args, "--config tiny.ini --train.stages=qformer --loss.mi_variant=%s "
                 "--qformer.initializer_range=" QF_INIT " --train.out_dir=%s %s", V[v], d1, AUG[v]);
        EXPECT_RUN(0, 1, NULL, args, "done: 4 steps");
        snprintf(args, sizeof args, "--config tiny.ini --train.stages=qformer --loss.mi_variant=%s "
                 "--qformer.initializer_range=" QF_INIT " --train.out_dir=%s %s", V[v], d2, AUG[v]);
        EXPECT_RUN(0, 2, NULL, args, "done: 4 steps");
        metrics a, b;
        read_metrics(d1, &a);
        read_metrics(d2, &b);
        if (a.n != 4) fail_msg("stage qformer (%s): %d metric lines, expected 4", V[v], a.n);
        for (int i = 0; i < a.n; i++) {   /* the stage-1 terms too */
            static const char *const K[] = { "mi", "con", "est", "temp" };
            double scale = fabs(field(a.line[i], "loss"));
            for (int k = 0; k < 4; k++) {
                double x = field(a.line[i], K[k]), y = field(b.line[i], K[k]);
                /* mi is a difference of nearly equal terms: compared on the
                 * scale of the loss */
                double r = k == 0 ? fabs(x - y) / scale : rel(x, y);
                if (!(r <= 1e-5))
                    fail_msg("stage qformer (%s): step %d: %s %.9g vs %.9g (relative difference %.3g > 1e-5)\n"
                             "  %s\n  %s", V[v], i + 1, K[k], x, y, r, a.line[i], b.line[i]);
            }
            /* the probes ran: the estimator's dev bound is there */
            if ((i + 1) % 2 == 0 && isnan(field(a.line[i], "dev_mi")))
                fail_msg("stage qformer (%s): step %d has no dev_mi:\n  %s", V[v], i + 1, a.line[i]);
            cut_stage1(a.line[i]);
            cut_stage1(b.line[i]);
        }
        expect_close(&a, &b, V[v], 1e-5);
        const ckpt_tol t = { 1e-5, BTOL, MTOL };
        for (int k = 2; k <= 4; k += 2) {
            char c1[64], c2[64];
            snprintf(c1, sizeof c1, "%s/ckpt-%010d.h5", d1, k);
            snprintf(c2, sizeof c2, "%s/ckpt-%010d.h5", d2, k);
            expect_same_ckpt(c1, c2, t);
        }
    }
}

/* The number N of "(N started during the backward pass)" in stage `stage`'s
 * exchange line of g_out; -1 when the line is missing. */
static int started_early(const char *stage)
{
    char k[64];
    snprintf(k, sizeof k, "stage %s: gradients exchanged in buckets", stage);
    const char *p = strstr(g_out, k);
    if (!p) return -1;
    const char *q = strstr(p, " started during the backward pass)");
    const char *o = q ? q : p;
    while (o > p && o[-1] != '(') o--;
    return q ? atoi(o) : -1;
}

/* train.dist_overlap = true with train.dist_bucket_mb = 0.002: buckets of
 * 512 floats, so the exchange is many buckets and most start while the
 * backward pass is still running; with 2 ranks each element is one sum a + b however it is
 * bucketed, so the runs equal the default 2-rank runs (one 64 MiB bucket)
 * (no overlap) bit for bit: every logged value and every checkpointed
 * tensor.  The same small buckets without overlap: equal too, none started
 * early. */
static void test_overlap_buckets(void **st)
{
    (void)st;
    if (!secap_dist_compiled()) skip();
    const ckpt_tol exact = { 0, 0, 0 };
    metrics m;
    EXPECT_RUN(0, 2, NULL, "--config tiny.ini --train.out_dir=ovl --train.dist_bucket_mb=0.002 "
               "--train.dist_overlap=true", "done: 8 steps");
    int n = started_early("caption");
    if (n < 2) fail_msg("stage caption with 2 KiB buckets: %d buckets started during the backward pass, expected "
                        "several:\n%s", n, g_out);
    print_message("  stage caption, 2 KiB buckets: %d started during the backward pass\n", n);
    read_metrics("ovl", &m);
    expect_equal(&m, &g_two, "overlapped small buckets vs one bucket");
    expect_same_ckpt("ovl/ckpt-0000000008.h5", "two/ckpt-0000000008.h5", exact);
    EXPECT_RUN(0, 2, NULL, "--config tiny.ini --train.out_dir=blk --train.dist_bucket_mb=0.002 "
               "--train.dist_overlap=false", "done: 8 steps");
    if (started_early("caption") != 0) fail_msg("without overlap a bucket started during the backward pass:\n%s", g_out);
    read_metrics("blk", &m);
    expect_equal(&m, &g_two, "small buckets, no overlap, vs one bucket");
    /* stage qformer: the gathered embeddings and the MI estimator */
    EXPECT_RUN(0, 2, NULL, "--config tiny.ini --train.stages=qformer --loss.mi_variant=full --qformer.initializer_range="
               QF_INIT " --train.out_dir=q2_ovl --train.dist_bucket_mb=0.002 --train.dist_overlap=true", "done: 4 steps");
    n = started_early("qformer");
    if (n < 2) fail_msg("stage qformer with 2 KiB buckets: %d started during the backward pass:\n%s", n, g_out);
    metrics a, b;
    read_metrics("q2_ovl", &a);
    read_metrics("q2_full", &b);
    expect_equal(&a, &b, "stage qformer, overlapped small buckets vs one bucket");
    expect_same_ckpt("q2_ovl/ckpt-0000000004.h5", "q2_full/ckpt-0000000004.h5", exact);
}

/* SECAP_TEST_KEEP=1 keeps the temporary directory (debugging). */
static int teardown(void **st)
{
    if (getenv("SECAP_TEST_KEEP")) {
        fprintf(stderr, "test_dist: kept %s\n", tu_dir);
        return 0;
    }
    return tu_tmpdir_teardown(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpirun_present),
        cmocka_unit_test(test_two_ranks_equal_one),
        cmocka_unit_test(test_resume_two_ranks),
        cmocka_unit_test(test_rank_killed),
        cmocka_unit_test(test_rank_hangs),
        cmocka_unit_test(test_qformer_two_ranks),
        cmocka_unit_test(test_overlap_buckets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
