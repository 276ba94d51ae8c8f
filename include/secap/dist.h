/* secap/dist.h - data-parallel training over MPI (README "Distributed
 * training (MPI)").
 *
 * `mpirun -np N bin/secap-train --config ...` runs N ranks of one job.  Every
 * rank holds the whole model and the whole optimizer state and walks the same
 * sequence of GLOBAL batches (data.batch_size / lm.batch_size rows: the loader
 * order is a pure function of data.seed, the LM batches of lm.seed), keeping
 * its own contiguous slice of rows [lo, hi) (secap_dist_slice: the first
 * B mod N ranks take one row more).  One optimizer step:
 *
 *   1. rank r: forward on its rows; a per-token loss is normalised by the
 *      GLOBAL token count,  l_r = (sum_{tokens of r} ce) / n,
 *      n = sum_r n_r (one MPI_Allreduce of the counts; secap_dist_mean_loss);
 *      so  sum_r l_r = the single-process mean over the global batch.
 *   2. backward of l_r; gradients g_r = d l_r / d theta.
 *   3. g = sum_r g_r with MPI_Allreduce(SUM), the trainable tensors of the
 *      optimizer flattened into buckets of at most SECAP_DIST_BUCKET floats
 *      (one call per bucket: a few large calls a step;
 *      secap_dist_allreduce_grads), or started bucket by bucket during the
 *      backward pass as each one's gradients become final
 *      (secap_dist_grads_begin / _end, train.dist_overlap).  g is the
 *      gradient of the global mean.
 *   4. every rank clips g (the norm of the reduced gradient) and applies the
 *      same AdamW update, so the replicas stay equal.
 *   The logged loss is sum_r l_r (secap_dist_sum).
 *
 * With dropout 0 (qformer.dropout, lora.dropout) a run on N ranks computes
 * the single-process run's numbers up to the order of float sums (relative
 * differences ~1e-7 per step).  With dropout the masks come from a stream
 * per rank (secap_dist_rank_rng), so N ranks equal one process in
 * distribution, not bit for bit.
 *
 * Stage qformer: the contrastive loss and the full vCLUB bound couple every
 * pair of the batch, so each rank computes them over the whole global batch:
 *   Q = gather(q_r), T = gather(t_r), K = gather(k_r)   (secap_dist_gather_rows)
 *   1. the vCLUB estimator step on detached (Q, T): the same on every rank
 *      (its gradient is a function of Q, T alone), so the estimator and its
 *      AdamW stay equal on every rank with no gradient exchange of their own;
 *   2. L = w_mi U(Q, T) + w_con L_con(Q, K, temp, labels) on every rank;
 *      the gather's backward routes dL/dQ rows [lo, hi) to rank r's q_r
 *      (and dL/dK to k_r), so after step 3 the Q-Former's gradient is
 *      sum_r dL/dq_r dq_r/dtheta = dL/dtheta; the temperature enters
 *      detached on ranks > 0, so its gradient dL/dtemp is counted once;
 *      each rank's loss tensor carries the value L/N (L + (L/N - L), a
 *      constant shift) so that the logged sum is L.
 *   The sampled vCLUB variant's permutation comes from the run's RNG, the
 *   same on every rank.
 *
 * Without -DSECAP_MPI (built without OpenMPI) this is a single-process stub:
 * rank 0 of 1, every reduction the identity.  With it, secap_dist_init
 * joins MPI only when a launcher started the process (mpirun / mpiexec set
 * OMPI_COMM_WORLD_SIZE, srun and other PMIx / PMI launchers PMIX_RANK /
 * PMI_RANK); a plain `bin/secap-train` is one process and never touches MPI.
 *
 * Failure: a rank that exits (an error, kill -9) makes mpirun abort the job.
 * A rank that hangs leaves the others blocked in MPI_Allreduce; the
 * watchdog thread of every rank (secap_dist_watchdog_start) calls MPI_Abort
 * after `timeout` seconds without secap_dist_progress, printing which rank,
 * which step and the hint.  Checkpoints are written by rank 0 alone,
 * atomically (src/train/ckpt.c), so the last one stays usable.
 */
#ifndef SECAP_DIST_H
#define SECAP_DIST_H

#include <stdint.h>

#include "secap/loader.h"
#include "secap/optim.h"
#include "secap/rng.h"
#include "secap/tensor.h"

/* floats per MPI_Allreduce of the gradients (64 MiB; train.dist_bucket_mb) */
#define SECAP_DIST_BUCKET (16 * 1024 * 1024)

/* Joins the job when launched by mpirun / srun (see above); idempotent.
 * Returns the number of ranks (1 without a launcher or without MPI). */
int secap_dist_init(void);
/* Leaves MPI (after the last collective); no-op when not joined. */
void secap_dist_finalize(void);
int secap_dist_rank(void);
int secap_dist_size(void);
/* 1 when this build has MPI (-DSECAP_MPI). */
int secap_dist_compiled(void);

/* Rank r's slice [*lo, *hi) of n rows: contiguous, sizes differ by <= 1. */
void secap_dist_slice(int64_t n, int rank, int size, int64_t *lo, int64_t *hi);

/* This rank's rows of the global batch b: *view shares b's buffers (rows
 * [lo, hi) of secap_dist_slice, T kept); b itself with one rank. */
const secap_batch *secap_dist_shard_batch(const secap_batch *b, secap_batch *view);

/* Sum of x over the ranks (x itself with one rank). */
double secap_dist_sum(double x);
/* 1 on every rank when flag is non-zero on any rank. */
int secap_dist_any(int flag);
/* Fails on every rank, naming `what`, when v differs between ranks (a rank
 * started with another config or other weights). */
void secap_dist_check_same(uint64_t v, const char *what);

/* The global-count normalisation of step 1: loss is the mean over the
 * non-ignored entries of targets [n] (SECAP_LLAMA_IGNORE = -100) of this
 * rank's rows; returns loss * n_local / n_global (loss itself, no tape op,
 * with one rank).  Collective. */
secap_tensor *secap_dist_mean_loss(secap_ctx *c, secap_tensor *loss, const int32_t *targets, int64_t n);

/* Batch-coupled losses (stage qformer): x [b_r, E] this rank's rows of a
 * global batch of B rows -> [B, E], every rank's rows in rank order
 * (MPI_Allgatherv).  Backward passes only this rank's rows of the output
 * gradient to x, so when every rank computes the same global loss L from
 * the gathered rows, each row's gradient reaches its own rank's graph
 * exactly once and the summed parameter gradients are dL/dtheta.  x itself
 * with one rank.  Collective. */
secap_tensor *secap_dist_gather_rows(secap_ctx *c, secap_tensor *x, int64_t B);
/* The same for ints without gradient: local [b_r] -> global [B]. */
void secap_dist_gather_i32(secap_ctx *c, const int32_t *local, int32_t *global, int64_t B);

/* Step 3: sums the gradients of o's registered tensors over the ranks, in
 * place, bucket by bucket (scratch from c's step arena, rewound).  No-op
 * with one rank.  Collective. */
void secap_dist_allreduce_grads(secap_ctx *c, secap_adamw *o);
/* The exchange's settings: floats per bucket (train.dist_bucket_mb MiB) and
 * whether it overlaps the backward pass (train.dist_overlap).  Defaults:
 * SECAP_DIST_BUCKET floats, overlap off (slower over shared memory here:
 * README "Distributed training (MPI)"). */
void secap_dist_set_exchange(double bucket_mb, int overlap);
/* Step 3 around the backward pass:  begin; secap_backward; end.  With
 * overlap, _begin counts the tape's readers of every tensor of o and hooks
 * the backward (c->after_node): each bucket of gradients (reverse
 * registration order) is packed and started with MPI_Iallreduce as soon as
 * the last node reading its tensors has run, in bucket order on every rank;
 * _end starts the rest, waits and unpacks.  Without overlap _end is
 * secap_dist_allreduce_grads.  Afterwards the gradients are what
 * secap_dist_allreduce_grads leaves.  _end returns the number of buckets
 * started before the backward ended (0 without overlap or MPI).  Packed
 * buckets hold a copy of their gradients in c's step arena until the step
 * ends.  Collective; no-ops with one rank. */
void secap_dist_grads_begin(secap_ctx *c, secap_adamw *o);
int secap_dist_grads_end(secap_ctx *c, secap_adamw *o);

/* Gives this rank its own stream for dropout: ranks > 0 re-seed r from a
 * draw of it and their rank (rank 0 keeps r as it is). */
void secap_dist_rank_rng(secap_rng *r);

/* The watchdog (only with more than one rank): a thread that aborts the job
 * when secap_dist_progress has not been called for timeout_s seconds;
 * `step` (read by the thread) is printed with the message. */
void secap_dist_watchdog_start(double timeout_s, const volatile int64_t *step);
/* A step finished (global step gstep).  Test hook: SECAP_DIST_FAULT=
 * "kill:R:G" makes rank R SIGKILL itself, "hang:R:G" sleep forever, after
 * global step G (tests/test_dist.c). */
void secap_dist_progress(int64_t gstep);
void secap_dist_watchdog_stop(void);

#endif
