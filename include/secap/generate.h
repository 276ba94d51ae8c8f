/* secap/generate.h - text generation with the LLaMA decoder (HF `generate`).
 *
 * Decoding continues a PREFIX of embedding vectors [B, T, D] (SECap's
 * captions start from [BOS][audio embeddings][prompt]), rows right-padded to
 * T with their own lengths, against a KV cache: one prefill of the prefix,
 * then one decoder step per new token.  The modes and option names are
 * Hugging Face's `generate` (transformers 4.3x); the math of each is in the
 * header comment of src/nn/generate.c:
 *
 *   num_beams 1, do_sample 0   greedy (argmax)
 *   num_beams 1, do_sample 1   sampling (temperature, top_k, top_p)
 *   num_beams > 1, do_sample 0 beam search (length_penalty, early_stopping)
 *   num_beams > 1, do_sample 1 beam sampling
 *
 * plus repetition_penalty, no_repeat_ngram_size, min/max_new_tokens and the
 * EOS stop in every mode.  A run is deterministic for cfg->seed: sequence s
 * of the batch (row b, draw k: s = b * num_return_sequences + k; beam
 * sampling: s = b) draws from its own stream secap_rng_seed_stream(seed, s),
 * so the draws of a row do not depend on what the other rows generate.
 */
#ifndef SECAP_GENERATE_H
#define SECAP_GENERATE_H

#include <stdint.h>

#include "secap/llama.h"

enum { SECAP_EARLY_STOP_FALSE = 0, SECAP_EARLY_STOP_TRUE = 1, SECAP_EARLY_STOP_NEVER = 2 };

typedef struct {
    int max_new_tokens;         /* most new tokens per sequence (EOS counted); 64 */
    int min_new_tokens;         /* EOS is banned before this many new tokens; 0 */
    int num_beams;              /* 1 */
    int do_sample;              /* 0 */
    double temperature;         /* sampling: logits / temperature; 1 */
    int top_k;                  /* sampling: keep the k best (0 = off); HF's default 50 */
    double top_p;               /* sampling: nucleus mass (1 = off); 1 */
    double repetition_penalty;  /* 1 = off; HF's CTRL rule, see generate.c */
    int no_repeat_ngram_size;   /* 0 = off */
    double length_penalty;      /* beams: score = sum logprob / len^length_penalty; 1 */
    int early_stopping;         /* beams: SECAP_EARLY_STOP_*; false */
    int num_return_sequences;   /* sequences per prefix row; 1 */
    uint64_t seed;              /* sampling streams; 0 */
} secap_decode_config;

/* Greedy, max_new_tokens 64, and HF's defaults for the rest. */
void secap_decode_config_default(secap_decode_config *d);
/* One key of a run config's [decode] section ("decode.top_k" or "top_k";
 * the names above; booleans true/false/1/0, early_stopping also "never").
 * Returns non-zero for a key it does not know; a bad value is fatal naming
 * key, value and the accepted range.  Use with
 * secap_ini_apply(ini, "decode", &d, secap_decode_config_set), then
 * secap_decode_config_validate. */
int secap_decode_config_set(void *cfg, const char *key, const char *value);
/* Ranges and combinations (num_return_sequences <= num_beams for beam
 * search, 1 for greedy; min_new_tokens <= max_new_tokens ...); `where`
 * names the source in the error. */
void secap_decode_config_validate(const secap_decode_config *d, const char *where);

/* The result of one generate call: rows * per_row sequences, sequence
 * s = row * per_row + k (k-th best of the row for beams, k-th draw for
 * sampling).  Owned by the caller: secap_gen_result_free. */
typedef struct {
    int rows;        /* B */
    int per_row;     /* num_return_sequences */
    int max_len;     /* max_new_tokens: the stride of ids */
    int32_t *ids;    /* [rows * per_row, max_len] new tokens, EOS excluded */
    int32_t *len;    /* [rows * per_row] valid ids of each sequence */
    uint8_t *eos;    /* [rows * per_row] 1 when the sequence ended with EOS */
    float *score;    /* [rows * per_row] beams: HF's beam score
                        (sum of processed log-probs / len^length_penalty, len
                        counting the EOS); greedy and sampling: the sum of
                        the model's log-probabilities (log-softmax of the raw
                        logits) of the new tokens, EOS included */
} secap_gen_result;

void secap_gen_result_free(secap_gen_result *r);

/* Generates a continuation of each row of prefix [B, T, D] (valid steps
 * prefix_lens[b] in [1, T]; NULL: all T).  ctx_ids / ctx_len (NULL: none)
 * are token ids of the prefix that repetition_penalty and
 * no_repeat_ngram_size count as already written (HF counts input_ids, the
 * prompt included); a prefix of embeddings alone has none.  The prefill runs
 * in c's step arena (rewound before returning; prefix stays valid), the
 * token steps in a private context, so c's arena and tape keep what they
 * held.  No tape, no dropout.  Errors name the option or row at fault. */
void secap_generate(secap_ctx *c, const secap_llama *m, secap_tensor *prefix, const int32_t *prefix_lens,
                    const int32_t *const *ctx_ids, const int32_t *ctx_len, const secap_decode_config *cfg,
                    secap_gen_result *out);

/* The same from token ids: row b is ids[b][0 .. lens[b]) (include the BOS
 * yourself); the ids are the repetition context. */
void secap_generate_ids(secap_ctx *c, const secap_llama *m, const int32_t *const *ids, const int32_t *lens,
                        int B, const secap_decode_config *cfg, secap_gen_result *out);

/* SECap's post-processing: of n candidates with pairwise similarities sim
 * [n, n] (sim[i * n + j], e.g. cosine of caption embeddings), score each by
 * its mean similarity to all n (itself included) and keep the `keep` best.
 * idx [keep] gets their indices, best first (ties: lower index first).
 * Fails on keep outside [1, n] or a non-finite similarity. */
void secap_select_consensus(const float *sim, int n, int keep, int *idx);

#endif
