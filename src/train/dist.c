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
    int64_t bucket;                     /* floats per gradient bucket (train.dist_bucket_mb) */
    int overlap;                        /* train.dist_overlap */
} D = { .size = 1, .bucket = SECAP_DIST_BUCKET };

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
    int64_t cap = total < D.bucket ? total : D.bucket;
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

void secap_dist_set_exchange(double bucket_mb, int overlap)
{
    int64_t n = (int64_t)(bucket_mb * 1048576.0 / sizeof(float));
    SECAP_CHECK(n >= 1 && n <= INT32_MAX, "dist: a gradient bucket of %g MiB is outside 1 float .. 2^31 floats "
                "(hint: train.dist_bucket_mb between 0.001 and 4096)", bucket_mb);
    D.bucket = n;
    D.overlap = overlap != 0;
}

/* ---- the exchange overlapped with the backward pass ------------------------
 * Buckets: o's slots in REVERSE registration order (the backward reaches the
 * last registered tensors, those nearest the loss, first), packed up to
 * D.bucket floats; a tensor larger than that is a bucket alone, reduced in
 * place in pieces.  _begin counts, for every slot, the tape nodes that take
 * its tensor as an input; the after_node hook counts them down, and a bucket
 * whose slots are all at 0 is final.  Buckets are launched (packed, then
 * MPI_Iallreduce) strictly in bucket order, so every rank issues the same
 * collectives in the same order whatever its tape's timing; each hook call
 * also tests the pending requests, which is what makes OpenMPI progress
 * them.  _end launches what is left, waits and unpacks.  The sums are those
 * of the blocking exchange: per element, one MPI_SUM over the ranks. */
#ifdef SECAP_MPI
typedef struct { const secap_tensor *t; int slot; } slot_key;

static struct {
    secap_adamw *o;          /* non-NULL between _begin and _end with overlap */
    slot_key *keys;          /* [nslots], sorted by tensor address */
    int *uses;               /* slot -> tape nodes left that read it */
    int *bucket_of;          /* slot -> bucket */
    int *order;              /* bucket b holds order[first[b] .. first[b+1]) */
    int *first;              /* [nb + 1] */
    int *pending;            /* bucket -> slots not yet final */
    float **buf;             /* bucket -> packed buffer; NULL: in place */
    int nb, next;
    MPI_Request *req;        /* launched requests */
    int nreq, capreq;
} OV;

static int key_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const slot_key *)a)->t, y = (uintptr_t)((const slot_key *)b)->t;
    return x < y ? -1 : x > y;
}

static int slot_of(const secap_tensor *t)
{
    if (!t) return -1;
    slot_key k = { t, 0 };
    const slot_key *f = bsearch(&k, OV.keys, (size_t)OV.o->nslots, sizeof k, key_cmp);
    return f ? f->slot : -1;
}

static void add_request(MPI_Request r)
{
    SECAP_CHECK(OV.nreq < OV.capreq, "dist: %d gradient requests, room for %d", OV.nreq + 1, OV.capreq);
    OV.req[OV.nreq++] = r;
}

static void launch(int b)
{
    secap_adamw *o = OV.o;
    MPI_Request r;
    if (!OV.buf[b]) {   /* one large tensor, in place, in pieces */
        secap_tensor *p = o->slots[OV.order[OV.first[b]]].param;
        for (int64_t i = 0; i < p->n; i += D.bucket) {
            int64_t m = p->n - i < D.bucket ? p->n - i : D.bucket;
            mpi_check(MPI_Iallreduce(MPI_IN_PLACE, p->grad + i, (int)m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r),
                      "MPI_Iallreduce (gradients)");
            add_request(r);
        }
        return;
    }
    int64_t off = 0;
    for (int k = OV.first[b]; k < OV.first[b + 1]; k++) {
        const secap_tensor *p = o->slots[OV.order[k]].param;
        memcpy(OV.buf[b] + off, p->grad, (size_t)p->n * sizeof(float));
        off += p->n;
    }
    mpi_check(MPI_Iallreduce(MPI_IN_PLACE, OV.buf[b], (int)off, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r),
              "MPI_Iallreduce (gradients)");
    add_request(r);
}

static void launch_ready(void)
{
    while (OV.next < OV.nb && OV.pending[OV.next] == 0) launch(OV.next++);
}

static void after_node(void *arg, const secap_node *n)
{
    (void)arg;
    for (int i = 0; i < n->nin; i++) {
        int s = slot_of(n->in[i]);
        if (s >= 0 && --OV.uses[s] == 0) OV.pending[OV.bucket_of[s]]--;
    }
    launch_ready();
    if (OV.nreq) {
        int done;
        mpi_check(MPI_Testall(OV.nreq, OV.req, &done, MPI_STATUSES_IGNORE), "MPI_Testall (gradients)");
    }
}
#endif

void secap_dist_grads_begin(secap_ctx *c, secap_adamw *o)
{
#ifdef SECAP_MPI
    if (D.size == 1 || !D.overlap || o->nslots == 0) return;
    int ns = o->nslots;
    OV.o = o;
    OV.keys = secap_xmalloc((size_t)ns * sizeof *OV.keys, "dist slot keys");
    for (int s = 0; s < ns; s++) OV.keys[s] = (slot_key){ o->slots[s].param, s };
    qsort(OV.keys, (size_t)ns, sizeof *OV.keys, key_cmp);
    OV.uses = secap_xcalloc((size_t)ns, sizeof *OV.uses, "dist uses");
    OV.bucket_of = secap_xmalloc((size_t)ns * sizeof *OV.bucket_of, "dist buckets");
    OV.order = secap_xmalloc((size_t)ns * sizeof *OV.order, "dist bucket order");
    OV.first = secap_xmalloc((size_t)(ns + 1) * sizeof *OV.first, "dist bucket starts");
    OV.pending = secap_xcalloc((size_t)ns, sizeof *OV.pending, "dist pending");
    OV.buf = secap_xcalloc((size_t)ns, sizeof *OV.buf, "dist bucket buffers");
    int nb = 0;
    int64_t fill = 0;
    for (int k = 0; k < ns; k++) {   /* reverse registration order */
        int s = ns - 1 - k;
        int64_t n = o->slots[s].param->n;
        int alone = n > D.bucket;
        if (k == 0 || alone || fill + n > D.bucket) {
            OV.first[nb++] = k;
            fill = 0;
        }
        OV.order[k] = s;
        OV.bucket_of[s] = nb - 1;
        OV.pending[nb - 1]++;
        fill += alone ? D.bucket + 1 : n;   /* nothing joins a tensor larger than a bucket */
    }
    OV.first[nb] = ns;
    OV.nb = nb;
    OV.capreq = 0;
    for (int b = 0; b < nb; b++) {   /* a packed buffer and one request, or a large tensor's pieces */
        int64_t n = 0;
        for (int k = OV.first[b]; k < OV.first[b + 1]; k++) n += o->slots[OV.order[k]].param->n;
        if (n > D.bucket) {
            OV.capreq += (int)((n + D.bucket - 1) / D.bucket);
        } else {
            OV.buf[b] = secap_arena_alloc(c->step, (size_t)n * sizeof(float), 0, "dist gradient bucket");
            OV.capreq++;
        }
    }
    OV.req = secap_xmalloc((size_t)OV.capreq * sizeof *OV.req, "dist requests");
    for (const secap_node *n = c->tape; n; n = n->prev)
        for (int i = 0; i < n->nin; i++) {
            int s = slot_of(n->in[i]);
            if (s >= 0) OV.uses[s]++;
        }
    for (int s = 0; s < ns; s++)
        if (OV.uses[s] == 0) OV.pending[OV.bucket_of[s]]--;   /* not read this step: final already */
    OV.next = OV.nreq = 0;
    launch_ready();
    c->after_node = after_node;
    c->after_node_arg = NULL;
#else
    (void)c;
    (void)o;
#endif
}

int secap_dist_grads_end(secap_ctx *c, secap_adamw *o)
{
#ifdef SECAP_MPI
    if (D.size == 1) return 0;
    if (!OV.o) {
        secap_dist_allreduce_grads(c, o);
        return 0;
    }
    c->after_node = NULL;
    int early = OV.next;
    for (int b = 0; b < OV.nb; b++) OV.pending[b] = 0;   /* every node has run */
    launch_ready();
    mpi_check(MPI_Waitall(OV.nreq, OV.req, MPI_STATUSES_IGNORE), "MPI_Waitall (gradients)");
    for (int b = 0; b < OV.nb; b++) {
        if (!OV.buf[b]) continue;
        int64_t off = 0;
        for (int k = OV.first[b]; k < OV.first[b + 1]; k++) {
            secap_tensor *p = o->slots[OV.order[k]].param;
            memcpy(p->grad, OV.buf[b] + off, (size_t)p->n * sizeof(float));
            off += p->n;
        }
    }
    free(OV.keys);
    free(OV.uses);
    free(OV.bucket_of);
    free(OV.order);
    free(OV.first);
    free(OV.pending);
    free(OV.buf);
    free(OV.req);
    memset(&OV, 0, sizeof OV);
    return early;
#else
    (void)c;
    (void)o;
    return 0;
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
