/* The prefetching loader: worker threads fill a ring of batches ahead of the
 * training loop.
 *
 * Batch `step` of `epoch` is a pure function of (data.seed, epoch, step): the
 * epoch plan comes from an RNG stream keyed by the epoch, the crops and
 * caption choices of a batch from a stream keyed by (epoch, step).  So the
 * order does not depend on thread timing, and a run resumed from a saved
 * secap_loader_state sees exactly the batches the first run would have.
 *
 * Ring protocol (one mutex, one condition variable): a worker claims the next
 * unclaimed step k once slot k % R is empty, fills it without the lock, then
 * marks it ready.  The consumer waits for slot step % R to hold its step and
 * empties the slot it returned before on the following call.  Workers stop at
 * the end of the epoch; the consumer then builds the next plan and restarts
 * them.
 */
#include "secap/loader.h"
#include "secap/base.h"

#include <pthread.h>

#include <stdlib.h>
#include <string.h>

enum { SLOT_EMPTY, SLOT_FILLING, SLOT_READY };

/* RNG stream ids; distinct constants keep plan and batch draws apart. */
#define STREAM_PLAN  0x706c616e00000000ULL
#define STREAM_BATCH 0x6261746300000000ULL

typedef struct {
    secap_batch batch;
    int64_t step;
    int state;
} slot;

struct secap_loader {
    const secap_dataset *d;
    secap_data_config c;
    int train;
    int *idx;                /* [n] items of the split, file order */
    int n;
    secap_epoch_plan plan;   /* the current epoch's batches */
    int64_t epoch;
    slot *ring;              /* [R] */
    int R;
    pthread_t *threads;      /* [workers] */
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t next_claim;      /* next step a worker will take */
    int64_t next_step;       /* next step the consumer returns */
    int held;                /* slot returned last, -1 none */
    int stop;
    double wait_s;
};

static void build_plan(secap_loader *L)
{
    secap_epoch_plan_free(&L->plan);
    if (!L->train) {
        secap_plan_buckets(&L->plan, L->d, L->idx, L->n, &L->c, NULL);
        return;
    }
    secap_rng r;
    secap_rng_seed_stream(&r, L->c.seed, STREAM_PLAN ^ (uint64_t)L->epoch);
    if (L->c.classes_per_batch > 0)
        secap_plan_classes(&L->plan, L->d, L->idx, L->n, L->c.classes_per_batch, L->c.per_class, &r);
    else
        secap_plan_buckets(&L->plan, L->d, L->idx, L->n, &L->c, &r);
}

static void fill_step(secap_loader *L, secap_batch *b, int64_t step)
{
    secap_rng r;
    secap_rng_seed_stream(&r, L->c.seed, STREAM_BATCH ^ ((uint64_t)L->epoch << 24) ^ (uint64_t)step);
    const int *items = L->plan.items + L->plan.start[step];
    int n = L->plan.start[step + 1] - L->plan.start[step];
    secap_batch_fill(b, L->d, items, n, &L->c, L->train ? &r : NULL);
    b->epoch = L->epoch;
    b->step = step;
}

static void *worker(void *arg)
{
    secap_loader *L = arg;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && L->next_claim < L->plan.n_batches &&
               L->ring[L->next_claim % L->R].state != SLOT_EMPTY)
            pthread_cond_wait(&L->cv, &L->mu);
        if (L->stop || L->next_claim >= L->plan.n_batches) break;
        int64_t k = L->next_claim++;
        slot *s = &L->ring[k % L->R];
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&L->mu);
        fill_step(L, &s->batch, k);
        pthread_mutex_lock(&L->mu);
        s->step = k;
        s->state = SLOT_READY;
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void start_workers(secap_loader *L)
{
    L->stop = 0;
    L->next_claim = L->next_step;
    for (int i = 0; i < L->R; i++) L->ring[i].state = SLOT_EMPTY;
    L->held = -1;
    for (int i = 0; i < L->n_threads; i++)
        if (pthread_create(&L->threads[i], NULL, worker, L))
            secap_fatal("loader: cannot start a worker thread (hint: lower data.workers)");
}

static void stop_workers(secap_loader *L)
{
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->n_threads; i++) pthread_join(L->threads[i], NULL);
}

secap_loader *secap_loader_create(const secap_dataset *d, int split, int train, const secap_data_config *c)
{
    secap_loader *L = secap_xcalloc(1, sizeof *L, "loader");
    L->d = d;
    L->c = *c;
    L->train = train;
    L->n = secap_split_indices(d, split, &L->idx);
    for (int i = 0; i < L->n; i++)
        if (d->items[L->idx[i]].n_samples <= 0)
            secap_fatal("loader: item %s has no length (hint: run secap_dataset_validate before creating "
                        "a loader)", d->items[L->idx[i]].id);
    L->R = c->prefetch > c->workers ? c->prefetch : c->workers;
    L->ring = secap_xcalloc((size_t)L->R, sizeof *L->ring, "loader ring");
    L->n_threads = c->workers;
    L->threads = secap_xcalloc((size_t)L->n_threads, sizeof *L->threads, "loader threads");
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    build_plan(L);
    if (L->plan.n_batches == 0)
        secap_fatal("loader: %s: split %d has no batches (%d items) (hint: check the split lists or "
                    "data.split_ratios; the N x K sampler needs data.classes_per_batch labels with "
                    "data.per_class items each)", d->source, split, L->n);
    start_workers(L);
    return L;
}

/* At the end of an epoch: join the workers, plan the next epoch, restart. */
static void next_epoch(secap_loader *L)
{
    stop_workers(L);
    L->epoch++;
    L->next_step = 0;
    build_plan(L);
    if (L->plan.n_batches == 0) secap_fatal("loader: epoch %lld has no batches", (long long)L->epoch);
    start_workers(L);
}

const secap_batch *secap_loader_next(secap_loader *L)
{
    if (L->next_step >= L->plan.n_batches) next_epoch(L);
    pthread_mutex_lock(&L->mu);
    if (L->held >= 0) {
        L->ring[L->held].state = SLOT_EMPTY;
        L->held = -1;
        pthread_cond_broadcast(&L->cv);
    }
    int64_t k = L->next_step;
    slot *s = &L->ring[k % L->R];
    if (!(s->state == SLOT_READY && s->step == k)) {
        double t0 = secap_now();
        while (!(s->state == SLOT_READY && s->step == k)) pthread_cond_wait(&L->cv, &L->mu);
        L->wait_s += secap_now() - t0;
    }
    L->held = (int)(k % L->R);
    L->next_step++;
    pthread_mutex_unlock(&L->mu);
    return &s->batch;
}

int secap_loader_batches(const secap_loader *L) { return L->plan.n_batches; }

secap_loader_state secap_loader_get_state(const secap_loader *L)
{
    secap_loader_state s = { L->epoch, L->next_step };
    return s;
}

void secap_loader_set_state(secap_loader *L, secap_loader_state st)
{
    stop_workers(L);
    L->epoch = st.epoch;
    build_plan(L);
    L->next_step = st.step;
    start_workers(L);
}

double secap_loader_wait_seconds(const secap_loader *L) { return L->wait_s; }

void secap_loader_free(secap_loader *L)
{
    if (!L) return;
    stop_workers(L);
    for (int i = 0; i < L->R; i++) secap_batch_free(&L->ring[i].batch);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    secap_epoch_plan_free(&L->plan);
    free(L->ring);
    free(L->threads);
    free(L->idx);
    free(L);
}
