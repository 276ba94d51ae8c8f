/* secap/kvcache.h - the key/value cache of one generation.
 *
 * Autoregressive decoding runs the decoder once per new token (after a
 * prompt prefill); every layer's attention needs the keys and values of all
 * earlier positions.  A secap_kvcache keeps them, per layer, in buffers
 *   K, V [B, Tmax, W]   (W = kv_heads * head_dim, rows = batch items/beams)
 * with a valid length per (layer, row).  Its lifetime lies between the run
 * and the step: it is made for one generation (or reused across them with
 * secap_kvcache_reset), its memory is its own (not the step arena, which the
 * generation loop resets after every token), and it holds no model weights,
 * so one frozen model can decode with several caches at once.  Nothing in it
 * takes a gradient: appends copy values, views carry no tape.
 *
 * One decoding step of layer l, rows at different lengths (padding needs no
 * mask: a row only ever sees its own first len[b] keys):
 *
 *   int32_t pos[B*T];  secap_kvcache_positions(kc, l, T, pos);    (RoPE positions)
 *   q = secap_rope_bt(c, q, H, pos, theta);  k = secap_rope_bt(c, k, G, pos, theta);
 *   const int32_t *q_pos = secap_kvcache_append(kc, l, k, v, n);  (n[b] new steps of row b, or NULL)
 *   secap_attn_opts o = {.heads = H, .kv_heads = G, .key_len = secap_kvcache_len(kc, l),
 *                        .q_pos = q_pos, .causal = 1, .scale = 1/sqrt(d)};
 *   y = secap_attention_ex(c, q, secap_kvcache_k(c, kc, l), secap_kvcache_v(c, kc, l), &o);
 *
 * Each layer keeps its own lengths, so a step appends to every layer in
 * turn; between steps they agree.  Beam search reorders rows with
 * secap_kvcache_reorder.  Every misuse (overflow past Tmax, wrong shapes, a
 * bad layer or row index) stops through secap_fatal naming the cache
 * operation, the layer, the row, the position and a fix.
 */
#ifndef SECAP_KVCACHE_H
#define SECAP_KVCACHE_H

#include "secap/tensor.h"

typedef struct secap_kvcache secap_kvcache;

typedef struct {
    int layers;
    int64_t batch; /* B rows */
    int64_t tmax;  /* positions per row */
    int64_t width; /* W = kv_heads * head_dim */
    size_t bytes;  /* K and V buffers of every layer */
} secap_kvcache_dims;

/* A cache for `layers` layers of `batch` rows, up to `tmax` positions each,
 * rows `width` floats wide; every row empty.  The buffers are zero pages
 * until written (calloc), so a generous tmax costs address space only. */
secap_kvcache *secap_kvcache_new(int layers, int64_t batch, int64_t tmax, int64_t width);
void secap_kvcache_free(secap_kvcache *kc);
/* Every row of every layer empty again (a new generation, same sizes). */
void secap_kvcache_reset(secap_kvcache *kc);
secap_kvcache_dims secap_kvcache_shape(const secap_kvcache *kc);

/* Valid keys per row of `layer` [B]; pass as secap_attn_opts.key_len.
 * Points into the cache: it changes with every append and reorder. */
const int32_t *secap_kvcache_len(const secap_kvcache *kc, int layer);
/* pos_bt [B, T] = len[b] + t: the absolute positions of the next T steps of
 * each row of `layer` (for secap_rope_bt before the append). */
void secap_kvcache_positions(const secap_kvcache *kc, int layer, int64_t T, int32_t *pos_bt);

/* k, v [B, T, W] (float32): row b's first n[b] steps (n NULL: all T; 0
 * skips a finished row) are copied to positions len[b] .. len[b]+n[b]-1 of
 * `layer`, whose lengths grow by n[b].  Steps past n[b] (padding) are not
 * read.  Returns the rows' start positions [B] (the lengths before the
 * append), the q_pos of the queries of these steps; valid until the next
 * append to this layer.  Writing past Tmax is a fatal error. */
const int32_t *secap_kvcache_append(secap_kvcache *kc, int layer, const secap_tensor *k, const secap_tensor *v,
                                    const int32_t *n);

/* K or V of `layer` as a [B, Tmax, W] no-grad view in c's step arena (no
 * copy; stale after secap_ctx_reset).  Positions >= len[b] hold old or zero
 * values: use the view with key_len = secap_kvcache_len, which
 * secap_attention_ex never reads past. */
secap_tensor *secap_kvcache_k(secap_ctx *c, secap_kvcache *kc, int layer);
secap_tensor *secap_kvcache_v(secap_ctx *c, secap_kvcache *kc, int layer);

/* Beam search: row b takes what old row src[b] held (K, V and length, in
 * every layer); several rows may take the same source, and a row no one
 * takes is dropped.  src [B] with values in [0, B). */
void secap_kvcache_reorder(secap_kvcache *kc, const int32_t *src);

#endif
