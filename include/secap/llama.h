/* secap/llama.h - the LLaMA decoder (Hugging Face LlamaForCausalLM) with LoRA.
 *
 * The caption writer of SECAP.md section 2.  Shapes: B batch rows, T steps,
 * D = hidden_size, V = vocab_size, I = intermediate_size, L layers, H query
 * heads, G = num_key_value_heads, d = D / H head size, r LoRA rank.
 *
 *   x [B, T, D] (token embeddings and/or caller-made vectors, e.g. the
 *   projected audio queries) -> L pre-norm layers, each
 *       h = x + o_proj(Attn(RoPE(q_proj(n)), RoPE(k_proj(n)), v_proj(n))),
 *                                         n = RMSNorm(x) (input_layernorm)
 *       x = h + down_proj(SiLU(gate_proj(m)) * up_proj(m)),
 *                                         m = RMSNorm(h) (post_attention_layernorm)
 *   -> RMSNorm (model.norm) -> lm_head -> logits [B, T, V]
 * RMSNorm(x) = w * x / sqrt(mean(x^2) + rms_norm_eps).  RoPE is HF's
 * rotate-half with base rope_theta at positions 0, 1, ... of each row.
 * Attention is causal, grouped-query (query head h reads kv head h / (H/G)),
 * scale d^-1/2, and masks keys at t >= lens[b] (right padding): a padded
 * batch gives every row what the row gives alone.  tie_word_embeddings: the
 * logits use model.embed_tokens.weight, and the file has no lm_head.
 *
 * LoRA (PEFT): a target projection y = W x computes
 *       y = W x + (alpha / r) * B (A dropout(x)),   A [r, in], B [out, r],
 * dropout (lora_dropout) active only when c->training.  A starts
 * kaiming-uniform (uniform(+-1/sqrt(in))), B zeros, so a fresh adapter
 * leaves the model unchanged.  Base weights are frozen (optionally stored
 * bf16, read by the bf16 linear kernels); only the LoRA tensors take
 * gradients, and gradients still flow to the input embeddings.  Without
 * LoRA (r = 0) the decoder is SECap's released, fully frozen LLaMA.
 *
 * Names.  Base file (model_type "llama", config.json names as root
 * attributes):
 *   model.embed_tokens.weight                              [V, D]
 *   model.layers.N.input_layernorm.weight                  [D]
 *   model.layers.N.self_attn.q_proj.weight                 [H*d, D]
 *   model.layers.N.self_attn.{k,v}_proj.weight             [G*d, D]
 *   model.layers.N.self_attn.o_proj.weight                 [D, H*d]
 *   model.layers.N.post_attention_layernorm.weight         [D]
 *   model.layers.N.mlp.{gate,up}_proj.weight               [I, D]
 *   model.layers.N.mlp.down_proj.weight                    [D, I]
 *   model.norm.weight                                      [D]
 *   lm_head.weight                                         [V, D]   (untied only)
 * Adapter file (PEFT names, model_type "lora", attributes peft_type "LORA",
 * task_type "CAUSAL_LM", bias "none", r, lora_alpha, lora_dropout,
 * target_modules as a comma-separated string):
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   [r, in]
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   [out, r]
 *   (and mlp.gate_proj etc. for other targets)
 */
#ifndef SECAP_LLAMA_H
#define SECAP_LLAMA_H

#include <stdint.h>

#include "secap/kvcache.h"
#include "secap/params.h"
#include "secap/tensor.h"
#include "secap/weights.h"

/* Prefix of every LoRA tensor name (PEFT's PeftModelForCausalLM). */
#define SECAP_LORA_PREFIX "base_model.model."

typedef struct {
    int vocab_size;              /* V */
    int hidden_size;             /* D */
    int intermediate_size;       /* I */
    int num_hidden_layers;       /* L */
    int num_attention_heads;     /* H, divides D */
    int num_key_value_heads;     /* G, divides H (absent in the file: H) */
    int max_position_embeddings; /* longest sequence (positions 0 .. this - 1) */
    double rms_norm_eps;         /* LLaMA: 1e-6 (LLaMA-2: 1e-5) */
    double rope_theta;           /* absent in the file: 10000 */
    int tie_word_embeddings;     /* absent: 0 */
    int bos_token_id;            /* absent: 1 */
    int eos_token_id;            /* absent: 2 */
    int pad_token_id;            /* absent: -1 (none; padding then uses eos) */
    double initializer_range;    /* std of the random rule; absent: 0.02 */
} secap_llama_config;

/* LLaMA-7B: V 32000, D 4096, I 11008, L 32, H 32, G 32, 2048 positions,
 * eps 1e-6, theta 10000, untied, BOS 1, EOS 2. */
void secap_llama_config_default(secap_llama_config *c);
/* From a weight file's root attributes (model_type "llama", hidden_act
 * "silu"; attention_bias / mlp_bias, when present, 0; head_dim, when
 * present, D / H; rope_scaling must be absent).  Fails naming the file and
 * the attribute. */
void secap_llama_config_read(secap_llama_config *c, secap_weights *w);
void secap_llama_config_validate(const secap_llama_config *c, const char *where);
/* Writes c as root attributes (model_type "llama"). */
void secap_llama_config_write(const secap_llama_config *c, secap_weights *w);

/* LoRA options.  Targets are projection names (q_proj k_proj v_proj o_proj
 * gate_proj up_proj down_proj), comma-separated. */
typedef struct {
    int r;                       /* rank; 0 = no adapters (SECap's setting) */
    double alpha;                /* lora_alpha; the update is scaled by alpha / r */
    double dropout;              /* lora_dropout on the LoRA input, training only */
    char target_modules[128];    /* "q_proj,v_proj" */
} secap_lora_config;

/* r 8, alpha 16, dropout 0.05, targets q_proj,v_proj. */
void secap_lora_config_default(secap_lora_config *l);
/* Ranges and known target names; `where` names the source. */
void secap_lora_config_validate(const secap_lora_config *l, const char *where);
/* One key of a run config's [lora] section (r, lora_alpha, lora_dropout,
 * target_modules; "lora.r" or "r"); returns non-zero for a key it does not know.  Use with
 * secap_ini_apply(ini, "lora", &l, secap_lora_config_set), then
 * secap_lora_config_validate.  A bad value is fatal naming key and value. */
int secap_lora_config_set(void *cfg, const char *key, const char *value);
/* From an adapter file's attributes (model_type "lora", peft_type "LORA"). */
void secap_lora_config_read(secap_lora_config *l, secap_weights *w);

typedef struct {
    const secap_lora_config *lora; /* NULL or r = 0: no adapters */
    const char *adapter;           /* adapter file to load (its own config
                                      replaces `lora`), or NULL: PEFT init */
    int base_bf16;                 /* store the frozen projections, embeddings
                                      and lm_head as bf16 (norms stay f32) */
    uint64_t seed;                 /* LoRA init and --init random */
    int train_base;                /* 1: every base tensor (embeddings, norms,
                                      projections, lm_head) is a trainable f32
                                      parameter with a gradient (LM pretraining,
                                      stage lm); refused with base_bf16.  Tied
                                      embeddings then take the gradient of both
                                      uses (lookup and logits).  0: frozen. */
} secap_llama_opts;

typedef struct secap_llama secap_llama;

/* A LLaMA from a base weight file (closed with the unknown-tensor check;
 * a tied model's file may hold an lm_head.weight, which is ignored), plus
 * adapters per opts (NULL: none, f32). */
secap_llama *secap_llama_load(secap_ctx *c, const char *path, const secap_llama_opts *opts);
/* Every base weight from its random rule (normal(0, initializer_range),
 * norms 1). */
secap_llama *secap_llama_init_random(secap_ctx *c, const secap_llama_config *cfg, const secap_llama_opts *opts);
void secap_llama_free(secap_llama *m);

const secap_llama_config *secap_llama_cfg(const secap_llama *m);
/* The adapter config in use, or NULL when the model has no adapters. */
const secap_lora_config *secap_llama_lora_cfg(const secap_llama *m);
/* Base table (HF names, frozen unless opts.train_base) and LoRA table (PEFT
 * names, trainable; NULL without adapters).  Optimizer groups:
 * secap_adamw_add_params on the LoRA table; with train_base on the base
 * table, norms without weight decay:
 *   secap_adamw_add_params(o, c, base, SECAP_LLAMA_NO_DECAY, NULL, no_decay);
 *   secap_adamw_add_params(o, c, base, NULL, NULL, decay); */
#define SECAP_LLAMA_NO_DECAY "*norm.weight,*layernorm.weight"
/* 1 when the base weights are trainable (opts.train_base). */
int secap_llama_train_base(const secap_llama *m);
const secap_params *secap_llama_base_params(const secap_llama *m);
const secap_params *secap_llama_lora_params(const secap_llama *m);

/* Writes the base config and weights into a new file, atomically. */
void secap_llama_save(const secap_llama *m, const char *path);
/* Exports the adapter alone into directory dir (created if missing):
 * dir/adapter_model.h5 (PEFT names, config attributes) and
 * dir/adapter_config.json (as PEFT writes it), each atomically.  Fails on
 * a model without adapters. */
void secap_llama_save_adapter(const secap_llama *m, const char *dir);

/* ---- forward --------------------------------------------------------- */

/* Token embeddings: ids [B * T] -> [B, T, D]. */
secap_tensor *secap_llama_embed(secap_ctx *c, const secap_llama *m, const int32_t *ids, int B, int T);

/* Full forward.  x [B, T, D]; lens [B] valid steps per row, each in [1, T]
 * (NULL: all T).  Returns logits [B, T, V]; rows t >= lens[b] unspecified. */
secap_tensor *secap_llama_forward(secap_ctx *c, const secap_llama *m, secap_tensor *x, const int32_t *lens);

/* A caption batch: row b is
 *   [BOS] [audio[b]: Q vectors] [prompt_b] [caption_b] [EOS] [padding]
 * (right-padded to T = max length).  prompt[b] / caption[b] point to
 * prompt_len[b] / caption_len[b] ids; a NULL length array means no prompt
 * (or no caption: the loss then covers the EOS only) in any row.  targets [B * T]
 * hold, at step t, the token at t + 1 when that is a caption token or the
 * EOS, else SECAP_LLAMA_IGNORE: the loss covers the caption and EOS only
 * (each predicted from the step before it).  Arrays live in c's step
 * arena. */
#define SECAP_LLAMA_IGNORE (-100)
typedef struct {
    secap_tensor *x;   /* [B, T, D] */
    int32_t *lens;     /* [B] */
    int32_t *targets;  /* [B * T] */
    int B, T;
} secap_llama_batch;

/* audio [B, Q, D] (may take a gradient) or NULL (Q = 0). */
secap_llama_batch secap_llama_caption_batch(secap_ctx *c, const secap_llama *m, secap_tensor *audio,
                                            const int32_t *const *prompt, const int32_t *prompt_len,
                                            const int32_t *const *caption, const int32_t *caption_len, int B);
/* Mean cross entropy over the non-ignored targets of logits [B, T, V]. */
secap_tensor *secap_llama_loss(secap_ctx *c, secap_tensor *logits, const int32_t *targets);

/* ---- decoding with a KV cache ------------------------------------------- */

/* A cache for this model: L layers, B rows, tmax positions. */
secap_kvcache *secap_llama_kvcache_new(const secap_llama *m, int64_t B, int64_t tmax);
/* One decoding step (or a prefill): x [B, T, D] new inputs; row b's first
 * n[b] steps are new (n NULL: all T; 0 leaves row b unchanged), placed at
 * the row's next positions in kc.  Returns the logits [B, V] of each row's
 * last new step (a row with n[b] = 0: unspecified).  Records no tape and
 * applies no dropout, whatever c->training says. */
secap_tensor *secap_llama_decode(secap_ctx *c, const secap_llama *m, secap_kvcache *kc, secap_tensor *x,
                                 const int32_t *n);

#endif
