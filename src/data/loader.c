/* The prefetching loader: worker threads fill a ring of batches ahead of the
 * training loop.
 *
 * Batch `step` of `epoch` is a pure function of (data.seed, epoch, step): the
 * epoch plan comes from an RNG stream keyed by the epoch, the crops and
 * caption choices of a batch from a stream keyed by (epoch, step).  So the
 * order does not depend on thread timing, and a run resumed from a saved
 * secap_loader_state sees exactly the batches the first run would have.
 *
 * Ring protocol (one mutex, one condition variable): batches are numbered in
 * claim order across epochs (seq); a worker claims the next one once slot
 * seq % R is empty, fills it without the lock, then marks it ready.  The
 * consumer waits for slot seq % R to hold its seq and empties the slot it
 * returned before on the following call.  Workers carry on into the next
 * epoch (at most one ahead of the consumer), so an epoch boundary does not
 * stall the training step.
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
    int64_t seq;             /* which claimed batch the slot holds */
    int state;
} slot;

struct secap_loader {
    const secap_dataset *d;
    secap_data_config c;
    int train;
    int *idx;                /* [n] items of the split, file order */
    int n;
    secap_epoch_plan plans[2]; /* epoch e's batches at plans[e & 1] */
    int64_t plan_epoch[2];   /* which epoch each holds, -1 none */
    int64_t epoch;           /* the consumer's epoch */
    int64_t next_step;       /* next step the consumer returns */
    int64_t claim_epoch, claim_step; /* next batch a worker takes */
    int64_t claim_seq, take_seq;     /* batches claimed / returned since start */
    slot *ring;              /* [R]: batch number seq lives in slot seq % R */
    int R;
    pthread_t *threads;      /* [workers] */
    int n_threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int held;                /* slot returned last, -1 none */
    int stop;
    double wait_s;
};

/* The plan of epoch e, built on first use (under the lock).  Workers run at
 * most one epoch ahead of the consumer, so the slot it replaces holds an
 * epoch nobody reads any more. */
static const secap_epoch_plan *plan_for(secap_loader *L, int64_t e)
{
    secap_epoch_plan *p = &L->plans[e & 1];
    if (L->plan_epoch[e & 1] == e) return p;
    secap_epoch_plan_free(p);
    L->plan_epoch[e & 1] = e;
    if (!L->train) {
        secap_plan_buckets(p, L->d, L->idx, L->n, &L->c, NULL);
    } else {
        secap_rng r;
        secap_rng_seed_stream(&r, L->c.seed, STREAM_PLAN ^ (uint64_t)e);
        if (L->c.classes_per_batch > 0)
            secap_plan_classes(p, L->d, L->idx, L->n, L->c.classes_per_batch, L->c.per_class, &r);
        else
            secap_plan_buckets(p, L->d, L->idx, L->n, &L->c, &r);
    }
    if (p->n_batches == 0)
        secap_fatal("loader: %s: epoch %lld has no batches (%d items) (hint: check the split lists or "
                    "data.split_ratios; the N x K sampler needs data.classes_per_batch labels with "
                    "data.per_class items each)", L->d->source, (long long)e, L->n);
    return p;
}

static void fill_step(secap_loader *L, secap_batch *b, const secap_epoch_plan *plan, int64_t epoch, int64_t step)
{
    secap_rng r;
    secap_rng_seed_stream(&r, L->c.seed, STREAM_BATCH ^ ((uint64_t)epoch << 24) ^ (uint64_t)step);
    const int *items = plan->items + plan->start[step];
    int n = plan->start[step + 1] - plan->start[step];
    secap_batch_fill(b, L->d, items, n, &L->c, L->train ? &r : NULL);
    b->epoch = epoch;
    b->step = step;
}

/* Workers claim batches in order across epoch boundaries, so the first
 * batches of the next epoch are ready when the consumer gets there. */
static void *worker(void *arg)
{
    secap_loader *L = arg;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        const secap_epoch_plan *plan = NULL;
        while (!L->stop) {
            if (L->claim_step >= plan_for(L, L->claim_epoch)->n_batches) {
                if (L->claim_epoch > L->epoch) { pthread_cond_wait(&L->cv, &L->mu); continue; }
                L->claim_epoch++;
                L->claim_step = 0;
                continue;
            }
            if (L->ring[L->claim_seq % L->R].state != SLOT_EMPTY) { pthread_cond_wait(&L->cv, &L->mu); continue; }
            plan = plan_for(L, L->claim_epoch);
            break;
        }
        if (L->stop) break;
        int64_t seq = L->claim_seq++, e = L->claim_epoch, k = L->claim_step++;
        slot *s = &L->ring[seq % L->R];
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&L->mu);
        fill_step(L, &s->batch, plan, e, k);
        pthread_mutex_lock(&L->mu);
        s->seq = seq;
        s->state = SLOT_READY;
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* Starts the workers at the consumer's position (epoch, next_step). */
static void start_workers(secap_loader *L)
{
    L->stop = 0;
    L->claim_epoch = L->epoch;
    L->claim_step = L->next_step;
    L->claim_seq = L->take_seq = 0;
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
    L->plan_epoch[0] = L->plan_epoch[1] = -1;
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    plan_for(L, 0);
    start_workers(L);
    return L;
}

const secap_batch *secap_loader_next(secap_loader *L)
{
    pthread_mutex_lock(&L->mu);
    if (L->held >= 0) {
        L->ring[L->held].state = SLOT_EMPTY;
        L->held = -1;
    }
    if (L->next_step >= plan_for(L, L->epoch)->n_batches) { /* the next epoch */
        L->epoch++;
        L->next_step = 0;
    }
    pthread_cond_broadcast(&L->cv);
    int64_t seq = L->take_seq;
    slot *s = &L->ring[seq % L->R];
    if (!(s->state == SLOT_READY && s->seq == seq)) {
        double t0 = secap_now();
        while (!(s->state == SLOT_READY && s->seq == seq)) pthread_cond_wait(&L->cv, &L->mu);
        L->wait_s += secap_now() - t0;
    }
    L->held = (int)(seq % L->R);
    L->take_seq++;
    L->next_step++;
    pthread_mutex_unlock(&L->mu);
    return &s->batch;
}

int secap_loader_batches(const secap_loader *L)
{
    secap_loader *m = (secap_loader *)L; /* plan_for caches; the plan exists */
    pthread_mutex_lock(&m->mu);
    int n = plan_for(m, m->epoch)->n_batches;
    pthread_mutex_unlock(&m->mu);
    return n;
}

secap_loader_state secap_loader_get_state(const secap_loader *L)
{
    secap_loader_state s = { L->epoch, L->next_step };
    return s;
}

void secap_loader_set_state(secap_loader *L, secap_loader_state st)
{
    stop_workers(L);
    L->epoch = st.epoch;
    L->next_step = st.step;
    plan_for(L, L->epoch);
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
    secap_epoch_plan_free(&L->plans[0]);
    secap_epoch_plan_free(&L->plans[1]);
    free(L->ring);
    free(L->threads);
    free(L->idx);
    free(L);
}
