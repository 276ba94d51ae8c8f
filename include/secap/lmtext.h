/* secap/lmtext.h - a text corpus for LM pretraining (training stage `lm`).
 *
 * Full-parameter training of a small LLaMA from scratch (secap_llama_opts
 * .train_base) on plain text, so the caption stage starts from a frozen LM
 * that already writes the corpus' kind of sentences.  Shapes: B rows per
 * batch (batch_size), T tokens per row (block_size), N blocks.
 *
 * Sources, each a list of lines (documents):
 *   - a speech-caption dataset (secap/dataset.h reader, so the same splits
 *     as training): every caption and transcript of the items of ONE split,
 *     train or dev.  The test split is refused, so its captions can never
 *     leak into the LM;
 *   - a prompt list (one caption prompt per line, data/prompts_zh.txt);
 *   - extra UTF-8 text files: one document per line; blank lines and lines
 *     that are exactly "%" (fortune(6) separators, fortunes-zh) are skipped.
 * Every document is cleaned the same way: ANSI terminal escape sequences
 * (ESC '[' parameters final-byte, as fortunes-zh colours its titles) are
 * removed (repeatedly, for nested broken ones), then leading and trailing
 * spaces (ASCII space and tab, U+00A0, U+3000); a document left empty
 * is skipped.  It must be valid UTF-8 without NUL bytes, CR or LF (a
 * document is one line); an error names the file and the line (and the item
 * id for dataset text).
 *
 * Tokens: each document is encoded with the SentencePiece model as
 *   [BOS] pieces [EOS]
 * and the documents are concatenated in source order into one stream
 * s[0 .. S).  Packing: block n (n = 0 .. N-1, N = (S - 1) / T) is the window
 *   ids     = s[n T .. n T + T)
 *   targets = s[n T + 1 .. n T + T + 1)      (the next token of every step)
 * so every target is a real token and no row has padding (lens all T);
 * documents run across block boundaries and attention sees the previous
 * document's tail, marked off by its EOS and the next BOS, as in GPT-style
 * pretraining.  The tail s[N T + 1 ..) that fills no block is dropped
 * (at most T tokens).
 *
 * Batches: epoch e visits the blocks in the order of a permutation drawn
 * from a generator seeded by (seed, e); step k of the epoch takes the
 * blocks perm[k B .. k B + B).  steps_per_epoch = N / B (the last partial
 * batch is dropped).  A batch is a pure function of (corpus, seed, epoch,
 * step), so a resumed run sees exactly the batches of an uninterrupted one.
 */
#ifndef SECAP_LMTEXT_H
#define SECAP_LMTEXT_H

#include <stdint.h>
#include <stdio.h>

#include "secap/dataset.h"
#include "secap/llama.h"
#include "secap/spm.h"
#include "secap/tensor.h"

/* The [lm] section of a run config. */
typedef struct {
    int block_size;        /* lm.block_size: tokens per row T            (128) */
    int batch_size;        /* lm.batch_size: rows per batch B            (16) */
    uint64_t seed;         /* lm.seed: block order per epoch             (1) */
    char prompts[512];     /* lm.prompts: prompt list file, "" = none    ("") */
    char text[2048];       /* lm.text: extra text files, comma-separated ("") */
} secap_lm_config;

void secap_lm_config_default(secap_lm_config *c);
/* One key ("block_size" or "lm.block_size", ...); returns non-zero for a key
 * it does not know.  For secap_ini_apply(ini, "lm", &c, secap_lm_config_set).
 * A bad value is fatal naming the key and the value. */
int secap_lm_config_set(void *cfg, const char *key, const char *value);
void secap_lm_config_validate(const secap_lm_config *c, const char *where);
/* Writes every key as "lm.key = value" lines. */
void secap_lm_config_print(const secap_lm_config *c, FILE *f);

typedef struct secap_lmtext secap_lmtext;

/* An empty corpus tokenised with tok (which must have BOS and EOS pieces,
 * and must outlive the corpus).  tok NULL: a text-only corpus (the cleaned
 * documents, no tokens; pack is fatal), for collecting the text a tokenizer
 * is trained on (secap-lmtext text, tools/train_spm.sh). */
secap_lmtext *secap_lmtext_new(const secap_spm *tok);
void secap_lmtext_free(secap_lmtext *t);

/* Adds the captions and transcripts of the dataset's items in `split`
 * (SECAP_SPLIT_TRAIN or SECAP_SPLIT_DEV; TEST is fatal), in item order,
 * each item's transcript first.  Returns the number of documents added. */
int secap_lmtext_add_dataset(secap_lmtext *t, const secap_dataset *d, int split);
/* Adds every line of a text file (prompt list or extra text; rules above).
 * Returns the number of documents added; a missing or unreadable file is
 * fatal naming it. */
int secap_lmtext_add_file(secap_lmtext *t, const char *path);
/* Adds one document (cleaned as above; skipped when empty); `where` names
 * it in errors ("file:line"). */
void secap_lmtext_add_line(secap_lmtext *t, const char *text, size_t len, const char *where);

/* Writes every cleaned document, one per line, in stream order. */
void secap_lmtext_write_text(const secap_lmtext *t, FILE *f);
/* Decodes every document's tokens and compares them with its cleaned text
 * (identity-normalising tokenizers such as LLaMA's round-trip exactly,
 * except text holding U+2581 "▁" itself, which decodes as a space);
 * prints the first few mismatches to `report` (may be NULL) and returns
 * how many documents differ.  Fatal on a text-only corpus. */
int64_t secap_lmtext_roundtrip_check(const secap_lmtext *t, FILE *report);

/* Builds the blocks (after the last add; further adds are fatal).  Fatal
 * when the stream has fewer than T + 1 tokens. */
void secap_lmtext_pack(secap_lmtext *t, int block_size);

/* The whole pipeline of a run: tok, the dataset's `split` (d may be NULL),
 * then c->prompts and each of c->text, packed at c->block_size. */
secap_lmtext *secap_lmtext_build(const secap_lm_config *c, const secap_spm *tok, const secap_dataset *d,
                                 int split);

/* Statistics (valid after pack for blocks). */
int64_t secap_lmtext_documents(const secap_lmtext *t);
int64_t secap_lmtext_tokens(const secap_lmtext *t);     /* S, BOS/EOS included */
int64_t secap_lmtext_blocks(const secap_lmtext *t);     /* N */
int secap_lmtext_block_size(const secap_lmtext *t);     /* T */
/* The token stream s[0 .. S). */
const int32_t *secap_lmtext_stream(const secap_lmtext *t);
/* One line: documents, tokens, blocks, tokens per document. */
void secap_lmtext_print_stats(const secap_lmtext *t, FILE *f);

/* N / B: full batches per epoch (0 when N < B). */
int64_t secap_lmtext_steps_per_epoch(const secap_lmtext *t, int batch_size);

/* A batch of B packed rows; arrays live in c's step arena. */
typedef struct {
    int32_t *ids;        /* [B * T] input tokens */
    int32_t *targets;    /* [B * T] next tokens (SECAP_LLAMA_IGNORE: none) */
    int32_t *lens;       /* [B] valid steps (T for packed rows) */
    int64_t *blocks;     /* [B] block index of each row */
    int B, T;
} secap_lm_batch;

/* Batch `step` (0 .. steps_per_epoch - 1) of epoch `epoch`, order seeded
 * by seed; fatal when step is out of range.  Draws the epoch's permutation
 * afresh in step-arena scratch (O(N) time, 8 N bytes), so the call keeps
 * no state. */
secap_lm_batch secap_lmtext_batch(secap_ctx *c, const secap_lmtext *t, uint64_t seed, int64_t epoch,
                                  int64_t step, int batch_size);
/* Rows = the given blocks (e.g. every block of a held-out corpus, in order,
 * for evaluation); n rows. */
secap_lm_batch secap_lmtext_rows(secap_ctx *c, const secap_lmtext *t, const int64_t *blocks, int n);

/* Next-token cross entropy, mean over the real targets of the batch
 * (secap_llama_forward + secap_llama_loss): a scalar tensor on c's tape.
 * Fatal when the model's vocabulary is smaller than a token id. */
secap_tensor *secap_lm_loss(secap_ctx *c, const secap_llama *m, const secap_lm_batch *b);

/* Mean next-token cross entropy (nats per token) over every block of t, in
 * block order, batch_size rows at a time (held-out evaluation; perplexity =
 * exp of it).  Runs without a tape and without dropout, and rewinds c's
 * step arena to where it was after each batch, so it needs one batch's
 * activations and leaves the arena and the tape as it found them. */
double secap_lm_eval(secap_ctx *c, const secap_llama *m, const secap_lmtext *t, int batch_size);

#endif
