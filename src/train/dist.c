/* Data-parallel training over MPI: the math and the semantics are in
 * include/secap/dist.h.  Compiled with -DSECAP_MPI (and mpicc's include
 * path) when the Makefile finds OpenMPI; otherwise every function is the
 * single-process case: rank 0 of 1, reductions the identity, no watchdog.
 *
 * Gradient buckets: the optimizer's slots in registration order (the same
 * on every rank: the tables are built from the same config) are packed into
 * a float buffer of at most SECAP_DIST_BUCKET floats; a tensor larger than
 * that is reduced in place in pieces.  The summed bucket is unpacked into
 * the same gradients. */
#include "secap/dist.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/llama.h"
#include "secap/ops.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef SECAP_MPI
#include <mpi.h>
#endif

static struct {
    int joined, rank, size, multiple;   /* multiple: MPI_THREAD_MULTIPLE provided */
    pthread_t wd;
    int wd_on;
    double timeout;
    const volatile int64_t *step;
    int64_t last_ns;                    /* atomic: monotonic ns of the last progress */
    int stop;                           /* atomic: the watchdog should end */
} D = { .size = 1 };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int secap_dist_compiled(void)
{
#ifdef SECAP_MPI
    return 1;
#else
    return 0;
#endif
}

int secap_dist_init(void)
{
#ifdef SECAP_MPI
    if (D.joined) return D.size;
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK") && !getenv("PMI_SIZE"))
        return 1;
    int provided = 0, argc = 0;
    char **argv = NULL;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
        secap_fatal("secap-train: MPI_Init_thread failed (hint: run under mpirun / srun of the OpenMPI this "
                    "binary was built with)");
    MPI_Comm_rank(MPI_COMM_WORLD, &D.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D.size);
    D.multiple = provided >= MPI_THREAD_MULTIPLE;
    D.joined = 1;
    return D.size;
#else
    if (getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1)
        secap_fatal("secap-train: started by mpirun with %s ranks, but this binary was built without MPI (hint: "
                    "apt-get install libopenmpi-dev openmpi-bin (tools/deps.sh test), then make clean && make; "
                    "or run one process without mpirun)", getenv("OMPI_COMM_WORLD_SIZE"));
    return 1;
#endif
}

void secap_dist_finalize(void)
{
    secap_dist_watchdog_stop();
#ifdef SECAP_MPI
    if (D.joined) {
        MPI_Finalize();
        D.joined = 0;
    }
#endif
}

int secap_dist_rank(void) { return D.rank; }
int secap_dist_size(void) { return D.size; }

void secap_dist_slice(int64_t n, int rank, int size, int64_t *lo, int64_t *hi)
{
    int64_t q = n / size, r = n % size;
    *lo = rank * q + (rank < r ? rank : r);
    *hi = *lo + q + (rank < r ? 1 : 0);
}

const secap_batch *secap_dist_shard_batch(const secap_batch *b, secap_batch *view)
{
    if (D.size == 1) return b;
    int64_t lo, hi;
    secap_dist_slice(b->B, D.rank, D.size, &lo, &hi);
    if (hi <= lo)
        secap_fatal("dist: rank %d of %d gets no row of a batch of %d (hint: data.batch_size at least the number "
                    "of ranks)", D.rank, D.size, b->B);
    *view = *b;
    view->B = (int)(hi - lo);
    view->audio = b->audio + lo * b->T;
    view->lengths = b->lengths + lo;
    view->item = b->item + lo;
    view->label = b->label + lo;
    view->caption = b->caption + lo;
    return view;
}

#ifdef SECAP_MPI
static void mpi_check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return;
    char s[MPI_MAX_ERROR_STRING];
    int l = 0;
    MPI_Error_string(rc, s, &l);
    secap_fatal("dist: %s failed on rank %d of %d: %s (hint: another rank died or the network failed; resume "
                "from the last checkpoint)", what, D.rank, D.size, s);
}
#endif

double secap_dist_sum(double x)
{
#ifdef SECAP_MPI
    if (D.size > 1) {
        double y = 0;
        mpi_check(MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce (loss)");
        return y;
    }
#endif
    return x;
}

int secap_dist_any(int flag)
{
#ifdef SECAP_MPI
    if (D.size > 1) {
        int x = flag != 0, y = 0;
        mpi_check(MPI_Allreduce(&x, &y, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce (stop flag)");
        return y;
    }
#endif
    return flag != 0;
}

void secap_dist_check_same(uint64_t v, const char *what)
{
#ifdef SECAP_MPI
    if (D.size > 1) {
        unsigned long long x[2] = { v, ~v }, y[2];
        mpi_check(MPI_Allreduce(x, y, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce (check)");
        if (y[0] != v || y[1] != ~v)
            secap_fatal("dist: rank %d of %d: %s differs between the ranks (hint: start every rank with the same "
                        "command line, config and files; a shared file system for the data and the models)",
                        D.rank, D.size, what);
    }
#else
    (void)v;
    (void)what;
#endif
}

secap_tensor *secap_dist_mean_loss(secap_ctx *c, secap_tensor *loss, const int32_t *targets, int64_t n)
{
    if (D.size == 1) return loss;
    int64_t nl = 0;
    for (int64_t i = 0; i < n; i++) nl += targets[i] != SECAP_LLAMA_IGNORE;
    double ng = secap_dist_sum((double)nl);
    if (ng <= 0)
        secap_fatal("dist: the global batch has no target token on any of the %d ranks (hint: a bug in the "
                    "batching; please report it)", D.size);
    if (nl == 0)   /* its mean would be 0/0; every caption and LM row has targets */
        secap_fatal("dist: rank %d of %d has no target token in its rows of the batch (hint: a bug in the "
                    "batching; please report it)", D.rank, D.size);
    return secap_scale(c, loss, (float)((double)nl / ng), 0.0f);
}

#ifdef SECAP_MPI
/* counts / displacements of the rows of every rank, times `width` */
static void row_layout(int64_t B, int64_t width, int *cnt, int *dsp)
{
    for (int r = 0; r < D.size; r++) {
        int64_t lo, hi;
        secap_dist_slice(B, r, D.size, &lo, &hi);
        if ((hi - lo) * width > 0x7fffffff || lo * width > 0x7fffffff)
            secap_fatal("dist: gather of %lld x %lld values passes MPI's int counts (hint: a smaller batch)",
                        (long long)B, (long long)width);
        cnt[r] = (int)((hi - lo) * width);
        dsp[r] = (int)(lo * width);
    }
}
#endif

static void gather_backward(secap_ctx *c, secap_node *n)
{
    secap_tensor *x = n->in[0];
    float *gx = secap_grad(c, x);
    const float *g = n->out->grad;
    if (!gx || !g) return;
    const float *src = g + n->i[0] * x->shape[1];
    for (int64_t i = 0; i < x->n; i++) gx[i] += src[i];
}

secap_tensor *secap_dist_gather_rows(secap_ctx *c, secap_tensor *x, int64_t B)
{
    if (D.size == 1) return x;
    char b1[64];
    secap_check_live(x, "dist_gather_rows");
    int64_t lo, hi;
    secap_dist_slice(B, D.rank, D.size, &lo, &hi);
    SECAP_CHECK(x->ndim == 2 && x->shape[0] == hi - lo, "dist_gather_rows: rank %d holds %s, expected [%lld, E] "
                "(rows %lld..%lld of the global batch of %lld)", D.rank, secap_shape_str(x, b1, sizeof b1),
                (long long)(hi - lo), (long long)lo, (long long)hi, (long long)B);
    int64_t E = x->shape[1];
    secap_tensor *out = secap_empty(c, 2, (int64_t[]){ B, E });
#ifdef SECAP_MPI
    size_t mark = secap_arena_mark(c->step);
    int *cnt = secap_arena_alloc(c->step, 2 * (size_t)D.size * sizeof(int), 0, "dist gather counts");
    row_layout(B, E, cnt, cnt + D.size);
    mpi_check(MPI_Allgatherv(secap_f32(x), (int)x->n, MPI_FLOAT, secap_f32(out), cnt, cnt + D.size, MPI_FLOAT,
                             MPI_COMM_WORLD), "MPI_Allgatherv (embeddings)");
    secap_arena_rewind(c->step, mark);
#endif
    if (secap_needs_grad(c, &x, 1)) secap_record(c, "dist_gather_rows", gather_backward, out, &x, 1)->i[0] = lo;
    return out;
}

void secap_dist_gather_i32(secap_ctx *c, const int32_t *local, int32_t *global, int64_t B)
{
    int64_t lo, hi;
    secap_dist_slice(B, D.rank, D.size, &lo, &hi);
    if (D.size == 1) {
        memcpy(global, local, (size_t)B * sizeof *global);
        return;
    }
#ifdef SECAP_MPI
    size_t mark = secap_arena_mark(c->step);
    int *cnt = secap_arena_alloc(c->step, 2 * (size_t)D.size * sizeof(int), 0, "dist gather counts");
    row_layout(B, 1, cnt, cnt + D.size);
    mpi_check(MPI_Allgatherv(local, (int)(hi - lo), MPI_INT32_T, global, cnt, cnt + D.size, MPI_INT32_T,
                             MPI_COMM_WORLD), "MPI_Allgatherv (labels)");
    secap_arena_rewind(c->step, mark);
#else
    (void)c;
#endif
}

void secap_dist_allreduce_grads(secap_ctx *c, secap_adamw *o)
{
#ifdef SECAP_MPI
    if (D.size == 1) return;
    int64_t total = 0;
    for (int s = 0; s < o->nslots; s++) total += o->slots[s].param->n;
    int64_t cap = total < SECAP_DIST_BUCKET ? total : SECAP_DIST_BUCKET;
    if (cap == 0) return;
    size_t mark = secap_arena_mark(c->step);
    float *buf = secap_arena_alloc(c->step, (size_t)cap * sizeof(float), 0, "dist gradient bucket");
    int s0 = 0;   /* first slot of the bucket being filled */
    int64_t fill = 0;
    for (int s = 0; s <= o->nslots; s++) {
        int64_t n = s < o->nslots ? o->slots[s].param->n : 0;
        if (s == o->nslots || (fill && fill + n > cap)) {
            /* reduce slots s0 .. s-1 (packed) */
            if (fill) {
                mpi_check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)fill, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                          "MPI_Allreduce (gradients)");
                int64_t off = 0;
                for (int k = s0; k < s; k++) {
                    memcpy(o->slots[k].param->grad, buf + off, (size_t)o->slots[k].param->n * sizeof(float));
                    off += o->slots[k].param->n;
                }
            }
            fill = 0;
            s0 = s;
            if (s == o->nslots) break;
        }
        if (n > cap) {   /* larger than a bucket: in place, in pieces */
            float *g = o->slots[s].param->grad;
            for (int64_t i = 0; i < n; i += cap) {
                int64_t m = n - i < cap ? n - i : cap;
                mpi_check(MPI_Allreduce(MPI_IN_PLACE, g + i, (int)m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                          "MPI_Allreduce (gradients)");
            }
            s0 = s + 1;
            continue;
        }
        memcpy(buf + fill, o->slots[s].param->grad, (size_t)n * sizeof(float));
        fill += n;
    }
    secap_arena_rewind(c->step, mark);
#else
    (void)c;
    (void)o;
#endif
}

void secap_dist_rank_rng(secap_rng *r)
{
    if (D.rank == 0) return;
    uint64_t s = secap_rng_u64(r);
    secap_rng_seed_stream(r, s, 0xd1570000u + (uint64_t)D.rank);
}

/* -------------------------------------------------------------- watchdog */

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        usleep(200000);
        if (__atomic_load_n(&D.stop, __ATOMIC_ACQUIRE)) return NULL;
        double idle = (double)(now_ns() - __atomic_load_n(&D.last_ns, __ATOMIC_ACQUIRE)) * 1e-9;
        if (idle < D.timeout) continue;
        fprintf(stderr, "secap-train: rank %d of %d: no step finished for %.0f s (train.dist_timeout = %g) after "
                "global step %lld: another rank died or hangs, or a step is slower than the timeout; aborting the "
                "job (hint: the checkpoints in train.out_dir are kept: fix the cause and resume with --resume; "
                "raise train.dist_timeout for slow steps)\n", D.rank, D.size, idle, D.timeout,
                (long long)(D.step ? *D.step : -1));
        fflush(stderr);
#ifdef SECAP_MPI
        if (D.multiple) MPI_Abort(MPI_COMM_WORLD, 3);
#endif
        _exit(3);
    }
}

void secap_dist_watchdog_start(double timeout_s, const volatile int64_t *step)
{
    if (D.size == 1 || D.wd_on || timeout_s <= 0) return;
    D.timeout = timeout_s;
    D.step = step;
    __atomic_store_n(&D.last_ns, now_ns(), __ATOMIC_RELEASE);
    __atomic_store_n(&D.stop, 0, __ATOMIC_RELEASE);
    if (pthread_create(&D.wd, NULL, watchdog, NULL) != 0)
        secap_fatal("dist: cannot start the watchdog thread (hint: too many threads? train.dist_timeout = 0 "
                    "turns it off)");
    D.wd_on = 1;
}

void secap_dist_progress(int64_t gstep)
{
    if (D.wd_on) __atomic_store_n(&D.last_ns, now_ns(), __ATOMIC_RELEASE);
    /* test hook: SECAP_DIST_FAULT="kill:RANK:GSTEP" or "hang:RANK:GSTEP" */
    const char *e = getenv("SECAP_DIST_FAULT");
    char what[8];
    int r;
    long long g;
    if (!e || sscanf(e, "%7[a-z]:%d:%lld", what, &r, &g) != 3 || r != D.rank || g != gstep) return;
    fprintf(stderr, "secap-train: rank %d: SECAP_DIST_FAULT: %s at global step %lld\n", D.rank, what, g);
    fflush(stderr);
    if (!strcmp(what, "kill")) raise(SIGKILL);
    if (!strcmp(what, "hang"))
        for (;;) pause();
}

void secap_dist_watchdog_stop(void)
{
    if (!D.wd_on) return;
    __atomic_store_n(&D.stop, 1, __ATOMIC_RELEASE);
    pthread_join(D.wd, NULL);
    D.wd_on = 0;
}
