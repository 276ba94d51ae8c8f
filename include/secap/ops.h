/* secap/ops.h - differentiable ops.
 *
 * Every op takes the context first, checks its inputs (live, shapes, dtype)
 * and fails naming the op, the shapes and a hint.  Outputs live in the step
 * arena.  Shapes are written [dims], innermost last.  Integer side inputs
 * (token ids, valid lengths, targets) are plain int32 arrays, not tensors.
 */
#ifndef SECAP_OPS_H
#define SECAP_OPS_H

#include "secap/tensor.h"

/* ---- linear algebra (src/ops/matmul.c) ----------------------------------- */

/* a [..., M, K] (or [..., K, M] when ta) x b [K, N] (or [N, K] when tb).
 * b may be 2-D (shared by every leading index of a) or carry the same
 * leading dims as a (batched). */
secap_tensor *secap_matmul(secap_ctx *c, secap_tensor *a, secap_tensor *b, int ta, int tb);
/* y [..., out] = x [..., in] W^T + b.  W [out, in] (PyTorch layout, f32 or
 * frozen bf16), bias [out] or NULL. */
secap_tensor *secap_linear(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *bias);

/* Kernel for linear with a bf16 weight (src/ops/bf16_gemm.c): both
 * directions read the bf16 storage directly.  AVX512BF16 uses vdpbf16ps on
 * x (or dy) split into two bf16 halves (relative error 2^-16 beyond f32
 * rounding); PORTABLE widens one cache-sized panel of W at a time and calls
 * sgemm.  The first use reads $SECAP_BF16_KERNEL (auto | portable |
 * avx512bf16; unset = auto = AVX512BF16 when the CPU has it). */
typedef enum {
    SECAP_BF16_KERNEL_AUTO = 0,
    SECAP_BF16_KERNEL_PORTABLE = 1,
    SECAP_BF16_KERNEL_AVX512BF16 = 2,
} secap_bf16_kernel;
/* The kernel in use (never AUTO). */
secap_bf16_kernel secap_bf16_kernel_get(void);
/* Selects a kernel for the whole process (AUTO: the best this CPU runs) and
 * returns the previous one; AVX512BF16 on a CPU without it is an error. */
secap_bf16_kernel secap_bf16_kernel_set(secap_bf16_kernel k);
/* 1 if this CPU can run k (checked with __builtin_cpu_supports). */
int secap_bf16_kernel_supported(secap_bf16_kernel k);
/* "auto", "portable", "avx512bf16". */
const char *secap_bf16_kernel_name(secap_bf16_kernel k);

/* ---- elementwise (src/ops/elementwise.c) --------------------------------- */

/* Binary ops broadcast NumPy-style (dims aligned from the right). */
secap_tensor *secap_add(secap_ctx *c, secap_tensor *a, secap_tensor *b);
secap_tensor *secap_sub(secap_ctx *c, secap_tensor *a, secap_tensor *b);
secap_tensor *secap_mul(secap_ctx *c, secap_tensor *a, secap_tensor *b);
secap_tensor *secap_div(secap_ctx *c, secap_tensor *a, secap_tensor *b);
/* a * s + t for scalars s, t. */
secap_tensor *secap_scale(secap_ctx *c, secap_tensor *a, float s, float t);
secap_tensor *secap_gelu(secap_ctx *c, secap_tensor *x);   /* exact, erf */
secap_tensor *secap_silu(secap_ctx *c, secap_tensor *x);
secap_tensor *secap_relu(secap_ctx *c, secap_tensor *x);
secap_tensor *secap_tanh(secap_ctx *c, secap_tensor *x);
secap_tensor *secap_exp(secap_ctx *c, secap_tensor *x);
secap_tensor *secap_log(secap_ctx *c, secap_tensor *x);
/* Clamp to [lo, hi]; the gradient passes only where x is inside. */
secap_tensor *secap_clamp(secap_ctx *c, secap_tensor *x, float lo, float hi);
/* Inverted dropout with probability p (identity when !c->training or p == 0). */
secap_tensor *secap_dropout(secap_ctx *c, secap_tensor *x, float p);

/* ---- normalisation (src/ops/norm.c) -------------------------------------- */

/* Over the last dim; w, b [D] (either may be NULL). */
secap_tensor *secap_layernorm(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *b, float eps);
secap_tensor *secap_rmsnorm(secap_ctx *c, secap_tensor *x, secap_tensor *w, float eps);
/* x [B, C, T]; statistics per (batch, group) over C/G channels x T; w, b [C]. */
secap_tensor *secap_groupnorm(secap_ctx *c, secap_tensor *x, int groups, secap_tensor *w,
                              secap_tensor *b, float eps);
/* x / max(||x||, eps) over the last dim (torch.nn.functional.normalize). */
secap_tensor *secap_l2norm(secap_ctx *c, secap_tensor *x, float eps);
/* Weight normalisation: w = g * v / ||v||, the norm over every dim except
 * `dim` (g has size 1 in those dims and v's size in `dim`). */
secap_tensor *secap_weight_norm(secap_ctx *c, secap_tensor *g, secap_tensor *v, int dim);

/* ---- softmax family and losses (src/ops/softmax.c) ----------------------- */

secap_tensor *secap_softmax(secap_ctx *c, secap_tensor *x);     /* over last dim */
secap_tensor *secap_log_softmax(secap_ctx *c, secap_tensor *x); /* over last dim */
secap_tensor *secap_logsumexp(secap_ctx *c, secap_tensor *x);   /* [..., D] -> [...] */
/* Mean over rows with target != ignore of -log softmax(logits)[target].
 * logits [N, V], targets [N].  Returns a scalar; 0 if every row is ignored. */
secap_tensor *secap_cross_entropy(secap_ctx *c, secap_tensor *logits, const int32_t *targets,
                                  int32_t ignore_index);

/* ---- attention (src/ops/attention.c) ------------------------------------- */

/* Fused multi-head scaled-dot-product attention.
 * q [B, Tq, H*d], k and v [B, Tk, H*d] -> [B, Tq, H*d], heads split along the
 * last dim as nn.MultiheadAttention / HF do.  key_len [B] (or NULL): keys at
 * positions >= key_len[b] are masked (padding).  causal: query i sees keys
 * j <= i + (Tk - Tq).  scale: usually 1/sqrt(d).  A query row with no visible
 * key outputs zeros.  Backward recomputes the probabilities from the saved
 * row log-sum-exp [B, H, Tq]; no Tq x Tk tensor is kept.  The same as
 * secap_attention_ex with kv_heads = heads and no q_pos. */
secap_tensor *secap_attention(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *v,
                              int heads, const int32_t *key_len, int causal, float scale);

typedef struct {
    int heads;              /* H query heads */
    int kv_heads;           /* G key/value heads; 0 means H.  H % G == 0 */
    const int32_t *key_len; /* [B] valid keys per row (keys >= key_len[b] masked), or NULL: all Tk */
    const int32_t *q_pos;   /* [B] absolute position of row b's first query (query i sits at
                               q_pos[b] + i), or NULL: Tk - Tq.  Only read when causal */
    int causal;             /* a query at position p sees keys j <= p */
    float scale;            /* usually 1/sqrt(d) */
} secap_attn_opts;

/* Grouped-query attention, also against a KV cache.
 * q [B, Tq, H*d], k and v [B, Tk, G*d] -> [B, Tq, H*d].  Query head h reads
 * kv head h / (H/G) (Hugging Face repeat_kv order) in place: K and V are
 * not copied per query head.  Query i of row b (position p = q_pos[b] + i)
 * sees key j when j < key_len[b] and, if causal, j <= p; a row with no
 * visible key outputs zeros.  Keys at or past the last one any query of a
 * row can see are never read, so k and v may be a cache's [B, Tmax, G*d]
 * buffers with key_len its row lengths (secap/kvcache.h).  Backward adds the
 * gradients of a shared kv head from all of its query heads. */
secap_tensor *secap_attention_ex(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *v,
                                 const secap_attn_opts *o);

/* ---- embeddings (src/ops/embed.c) ---------------------------------------- */

/* w [V, D] (f32 or frozen bf16), ids [n] -> [n, D], or [B, T, D] when
 * called through secap_embedding_bt. */
secap_tensor *secap_embedding(secap_ctx *c, secap_tensor *w, const int32_t *ids, int64_t n);
secap_tensor *secap_embedding_bt(secap_ctx *c, secap_tensor *w, const int32_t *ids, int64_t B, int64_t T);
/* Rotary embedding, Hugging Face rotate-half layout: x [B, T, H*d], head
 * pairs (i, i + d/2); pos [T] (or NULL for 0..T-1) positions; theta base. */
secap_tensor *secap_rope(secap_ctx *c, secap_tensor *x, int heads, const int32_t *pos, float theta);
/* The same with a position per row and step: pos_bt [B, T] (row b's step t
 * sits at pos_bt[b * T + t]; padded batches and beams at different
 * lengths), or NULL for 0..T-1 in every row. */
secap_tensor *secap_rope_bt(secap_ctx *c, secap_tensor *x, int heads, const int32_t *pos_bt, float theta);

/* ---- shape (src/ops/shape.c) --------------------------------------------- */

/* Same data, new shape (element count must match). */
secap_tensor *secap_reshape(secap_ctx *c, secap_tensor *x, int ndim, const int64_t *shape);
/* out.shape[i] = x.shape[perm[i]]. */
secap_tensor *secap_permute(secap_ctx *c, secap_tensor *x, const int *perm);
secap_tensor *secap_transpose(secap_ctx *c, secap_tensor *x, int d0, int d1);
secap_tensor *secap_concat(secap_ctx *c, secap_tensor *const *xs, int n, int dim);
/* x.narrow(dim, start, len). */
secap_tensor *secap_slice(secap_ctx *c, secap_tensor *x, int dim, int64_t start, int64_t len);
/* Splits into n pieces of the given sizes along dim (outs[n]). */
void secap_split(secap_ctx *c, secap_tensor *x, int dim, const int64_t *sizes, int n, secap_tensor **outs);
/* Same data, no gradient (stop-gradient). */
secap_tensor *secap_detach(secap_ctx *c, secap_tensor *x);

/* ---- reductions (src/ops/reduce.c) --------------------------------------- */

secap_tensor *secap_sum(secap_ctx *c, secap_tensor *x, int dim);   /* dim removed */
secap_tensor *secap_mean(secap_ctx *c, secap_tensor *x, int dim);  /* dim removed */
secap_tensor *secap_sum_all(secap_ctx *c, secap_tensor *x);        /* scalar [] */
secap_tensor *secap_mean_all(secap_ctx *c, secap_tensor *x);       /* scalar [] */
/* x [B, T, D], len [B] -> [B, D]: mean over the first len[b] steps (pooling
 * over valid frames; a zero length gives zeros). */
secap_tensor *secap_masked_mean(secap_ctx *c, secap_tensor *x, const int32_t *len);

/* ---- convolution (src/ops/conv.c) ---------------------------------------- */

/* x [B, Cin, T], w [Cout, Cin/groups, K], bias [Cout] or NULL ->
 * [B, Cout, (T + 2*pad - K)/stride + 1]. */
secap_tensor *secap_conv1d(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *bias,
                           int stride, int pad, int groups);

/* Time-major conv1d, no padding, one group: x [B, T, Cin], w [Cout, Cin, K]
 * (PyTorch layout), bias [Cout] or NULL -> [B, (T - K)/stride + 1, Cout].
 * Computed as ceil(K/stride) sgemms over strided views of x (no unfolded
 * copy); the fast layout for HuBERT's feature encoder. */
secap_tensor *secap_conv1d_tm(secap_ctx *c, secap_tensor *x, secap_tensor *w, secap_tensor *bias, int stride);

#endif
