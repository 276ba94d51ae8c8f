/* secap/qformer.h - the Q-Former bridge (BLIP-2 style BERT) and its heads.
 *
 * The module between the frozen speech encoder and the LLM (SECAP.md
 * section 2).  Shapes: B batch, T audio frames, S text tokens, A = audio_width
 * (HuBERT width), W = encoder_width, H = hidden_size, Q = num_query_tokens,
 * I = intermediate_size, E = embed_dim, D = llm_width, L layers.
 *
 *   audio [B, T, A] --audio_project--> [B, T, W]     (cross-attention keys)
 *
 *   query mode  query_tokens [1, Q, H] -> embeddings LayerNorm -> dropout ->
 *               L post-LN BERT layers, each:
 *                 x = LN(x + drop(O(MHA(x, x, x))))            self-attention
 *                 x = LN(x + drop(O(MHA(x, a, a))))            cross-attention, only
 *                                                  in layers l % cross_attention_freq == 0
 *                 x = LN(x + drop(W2 GELU(W1 x)))              intermediate_query /
 *                                                              output_query
 *               -> [B, Q, H]
 *   text mode   ids [B, S] -> word + position (0..S-1) + token type (row 0,
 *               when the model has token types) -> LN -> dropout -> L layers
 *               of the same self-attention (padded tokens masked as keys) and
 *               the text feed-forward (intermediate / output), no
 *               cross-attention -> [B, S, H]
 *   heads       speech_proj(mean over the Q query outputs) -> [B, E]
 *               (BLIP-2's vision_proj; per query [B, Q, E] on request),
 *               text_proj(text output at [CLS], position 0) -> [B, E],
 *               audio_llama_project(query outputs) -> [B, Q, D].
 * MHA splits H into num_attention_heads heads, scale head_dim^-1/2; GELU is
 * exact (erf).  Dropout (hidden_dropout_prob) is active when c->training;
 * attention-probability dropout (attention_probs_dropout_prob) is NOT applied:
 * the fused attention kernel keeps no probabilities.
 *
 * Padding.  The cross-attention masks audio frames at t >= frames[b] as keys,
 * so a padded batch gives every item what it gives alone.  SECap's released
 * code passes an all-ones frame mask and attends to the padded frames (which
 * makes its outputs depend on the padding); pass frames = NULL to get that
 * behaviour.  Text mode masks tokens at s >= lens[b] as keys; the output rows
 * of padded tokens are computed but unspecified.
 *
 * Names (the weight file, SECAP.md section 7): the BERT part carries Hugging
 * Face / LAVIS BertModel names under a prefix, "Qformer.bert." in a Q-Former
 * file (BLIP-2's spelling; SECap's checkpoint spells it "audio_Qformer.bert."
 * and the query tokens "audio_query_tokens", which the converter renames):
 *   embeddings.word_embeddings.weight        [V, H]     text mode
 *   embeddings.position_embeddings.weight    [P, H]     text mode
 *   embeddings.token_type_embeddings.weight  [Y, H]     text mode, Y = type_vocab_size > 0
 *   embeddings.LayerNorm.{weight,bias}       [H]
 *   encoder.layer.N.attention.self.{query,key,value}.{weight [H, H], bias [H]}
 *   encoder.layer.N.attention.output.dense.{weight [H, H], bias}, .output.LayerNorm.{weight,bias}
 *   encoder.layer.N.crossattention.self.query.{weight [H, H], bias}     l % freq == 0
 *   encoder.layer.N.crossattention.self.{key,value}.{weight [H, W], bias [H]}
 *   encoder.layer.N.crossattention.output.dense / .output.LayerNorm
 *   encoder.layer.N.intermediate.dense.{weight [I, H], bias [I]}        text mode
 *   encoder.layer.N.output.dense.{weight [H, I], bias [H]}, .output.LayerNorm
 *   encoder.layer.N.intermediate_query.dense, .output_query.dense, .output_query.LayerNorm
 * and at the root of the file:
 *   query_tokens                             [1, Q, H]
 *   audio_project.{weight [W, A], bias [W]}          audio_width > 0
 *   audio_llama_project.{weight [D, H], bias [D]}    llm_width > 0
 *   speech_proj.{weight [E, H], bias [E]}            embed_dim > 0
 *   text_proj.{weight [E, H], bias [E]}              embed_dim > 0, text mode
 * BLIP-2's LAVIS BertEmbeddings has no token types: type_vocab_size = 0 gives
 * that layout; HF BERT (bert-base-chinese, type_vocab_size 2) adds row 0 of
 * token_type_embeddings to every token.  A model without the text mode
 * (text_mode = 0) is SECap's released bridge, from which the word and
 * position embeddings and the text feed-forward were deleted.
 *
 * Parameters live in two tables (secap/params.h): the BERT part, whose names
 * are relative to the prefix, and the root tensors.  Loading reads both,
 * checks every shape, and refuses missing tensors naming the file; the model
 * is then read-only (several threads may run it, each with its own context).
 */
#ifndef SECAP_QFORMER_H
#define SECAP_QFORMER_H

#include <stdint.h>

#include "secap/params.h"
#include "secap/tensor.h"
#include "secap/weights.h"

/* Name prefix of the BERT part in a Q-Former file. */
#define SECAP_QFORMER_PREFIX "Qformer.bert."

typedef struct {
    /* BERT config.json */
    int hidden_size;                   /* H */
    int num_hidden_layers;             /* L */
    int num_attention_heads;           /* divides H */
    int intermediate_size;             /* I */
    int vocab_size;                    /* V (text mode) */
    int max_position_embeddings;       /* P (text mode): the longest text */
    int type_vocab_size;               /* Y: 0 = no token types (BLIP-2) */
    double layer_norm_eps;             /* BERT: 1e-12 */
    double hidden_dropout_prob;        /* dropout after embeddings and each sub-block */
    double attention_probs_dropout_prob; /* recorded; not applied (see above) */
    double initializer_range;          /* std of the random rule, 0.02 */
    /* BLIP-2 / SECap extras */
    int num_query_tokens;              /* Q, 32 */
    int cross_attention_freq;          /* cross-attention in layers l % freq == 0; 2 */
    int encoder_width;                 /* W: width of the cross-attention keys; 768 */
    int audio_width;                   /* A: audio_project input (HuBERT width); 0 = none,
                                          the audio comes in at W */
    int llm_width;                     /* D: audio_llama_project output; 0 = none */
    int embed_dim;                     /* E: speech_proj / text_proj output; 0 = none */
    int text_mode;                     /* 1: word/position embeddings and the text FFN exist */
} secap_qformer_config;

/* The paper's "q7x2" bridge: bert-base-chinese sizes (12 layers, H 768,
 * 12 heads, I 3072, V 21128, P 512, Y 2, eps 1e-12, dropout 0.1), 32 queries,
 * cross-attention every 2 layers, W 768, A 1024, D 4096, E 256, text mode. */
void secap_qformer_config_default(secap_qformer_config *c);

/* Fills c from a Q-Former file's root attributes (model_type "qformer"),
 * named as in BERT's config.json plus num_query_tokens, cross_attention_freq,
 * encoder_width, audio_width, llm_width, embed_dim, text_mode; validates.
 * hidden_act must be "gelu"; position_embedding_type, when present,
 * "absolute".  Fails naming the file and the attribute. */
void secap_qformer_config_read(secap_qformer_config *c, secap_weights *w);
/* Reads the BERT fields of a plain BERT file (model_type "bert") into c,
 * keeping c's extras; sets text_mode = 1; validates. */
void secap_qformer_config_read_bert(secap_qformer_config *c, secap_weights *w);
/* Ranges and divisibility; `where` names the source in messages. */
void secap_qformer_config_validate(const secap_qformer_config *c, const char *where);
/* Writes c as root attributes (model_type "qformer") into a weight-file writer. */
void secap_qformer_config_write(const secap_qformer_config *c, secap_weights *w);

typedef struct secap_qformer secap_qformer;

/* fnmatch patterns of tensors a Q-Former file may hold and the model ignores. */
extern const char *const SECAP_QFORMER_IGNORABLE[];

/* A Q-Former read from an open weight file: the config from its attributes,
 * the BERT part under bert_prefix (NULL: SECAP_QFORMER_PREFIX), the root
 * tensors by their names.  trainable: every parameter takes gradients (stage
 * 1; the attention key biases' gradient is the exact 0 they have in exact
 * arithmetic: softmax ignores the shift q . b_k of a score row, and the
 * forward detaches them, src/nn/qformer.c attn_fwd); 0: frozen, read-only.  Does not close w, so the Q-Former can come out
 * of a bigger checkpoint; close it with secap_weights_close_checked(w,
 * allow) for the unknown-tensor check. */
secap_qformer *secap_qformer_read(secap_ctx *c, secap_weights *w, const char *bert_prefix, int trainable);
/* Opens path, reads (prefix SECAP_QFORMER_PREFIX), and closes with the
 * unknown-tensor check: a file holding anything else is refused, except
 * names matching SECAP_QFORMER_IGNORABLE (LAVIS's position_ids buffer). */
secap_qformer *secap_qformer_load(secap_ctx *c, const char *path, int trainable);
/* Initialisation from a plain BERT file (bert-base-chinese converted:
 * model_type "bert", BertModel names, optionally under "bert."): the BERT
 * sizes come from the file, the extras (Q, freq, W, A, D, E) from `extras`.
 * Embeddings, self-attention and the text feed-forward are read; the query
 * feed-forward starts as a copy of the text feed-forward; cross-attention,
 * query tokens and the root projections take the random rule (normal(0,
 * initializer_range), LayerNorm weights 1, biases and LayerNorm biases 0)
 * drawn from `seed`.  pooler.* and cls.* tensors of the file are ignored. */
secap_qformer *secap_qformer_init_bert(secap_ctx *c, const char *bert_path, const secap_qformer_config *extras,
                                       int trainable, uint64_t seed);
/* Every parameter from the random rule above (`--init random`). */
secap_qformer *secap_qformer_init_random(secap_ctx *c, const secap_qformer_config *cfg, int trainable,
                                         uint64_t seed);
void secap_qformer_free(secap_qformer *m);

/* Writes the config and every parameter (trainable_only: the trainable
 * ones) into a new Q-Former file, atomically. */
void secap_qformer_save(const secap_qformer *m, const char *path, int trainable_only);
/* The same into an open writer (a bigger checkpoint); the caller closes it. */
void secap_qformer_write(const secap_qformer *m, secap_weights *w, int trainable_only);

const secap_qformer_config *secap_qformer_cfg(const secap_qformer *m);
/* The two parameter tables: BERT names relative to the prefix, and the root
 * tensors (optimizer groups, summaries). */
const secap_params *secap_qformer_bert_params(const secap_qformer *m);
const secap_params *secap_qformer_root_params(const secap_qformer *m);
/* The parameter with this name: "Qformer.bert."-prefixed BERT names, or root
 * names; NULL when unknown.  For tests. */
secap_tensor *secap_qformer_param(const secap_qformer *m, const char *name);

/* Query mode.
 *   audio   [B, T, A] (or [B, T, W] when audio_width = 0), padded batch
 *   frames  [B] valid frames, each in [1, T]; NULL: every frame is attended
 *           to (SECap's behaviour)
 * Returns the query outputs [B, Q, H] in c's step arena. */
secap_tensor *secap_qformer_query(secap_ctx *c, const secap_qformer *m, secap_tensor *audio, const int32_t *frames);

/* Text mode.
 *   ids    [B * S] token ids in [0, V), row b valid on [0, lens[b])
 *   lens   [B] each in [1, S]; NULL: every row is S tokens
 *   types  [B * S] token type ids in [0, Y), or NULL (all 0)
 * S must not exceed max_position_embeddings.  Returns [B, S, H]. */
secap_tensor *secap_qformer_text(secap_ctx *c, const secap_qformer *m, const int32_t *ids, const int32_t *lens,
                                 const int32_t *types, int B, int S);

typedef enum {
    SECAP_QFORMER_POOL_MEAN = 0,  /* speech_proj(mean over queries) [B, E] (SECAP.md section 3) */
    SECAP_QFORMER_POOL_NONE = 1,  /* speech_proj of every query [B, Q, E] (BLIP-2's ITC) */
} secap_qformer_pool;

/* Q-embedding: speech_proj on query outputs [B, Q, H]. */
secap_tensor *secap_qformer_speech_embed(secap_ctx *c, const secap_qformer *m, secap_tensor *query_out,
                                         secap_qformer_pool pool);
/* T-/C-embedding: text_proj on the [CLS] row of text outputs [B, S, H] -> [B, E]. */
secap_tensor *secap_qformer_text_embed(secap_ctx *c, const secap_qformer *m, secap_tensor *text_out);
/* LLM inputs: audio_llama_project on query outputs [B, Q, H] -> [B, Q, D]. */
secap_tensor *secap_qformer_llm_project(secap_ctx *c, const secap_qformer *m, secap_tensor *query_out);

#endif
