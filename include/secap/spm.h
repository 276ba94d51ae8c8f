/* secap/spm.h - SentencePiece BPE tokenizer (LLaMA's tokenizer.model).
 *
 * Reads a serialized sentencepiece ModelProto (protobuf, parsed here with a
 * small wire-format reader) and encodes/decodes exactly as Debian 12's
 * libsentencepiece 0.1.97 does for BPE models:
 *
 *   text --normalise--> "▁hello▁world" --split--> characters (user-defined
 *   symbols whole) --merge--> pieces --ids--> unknown pieces as <0xNN> bytes
 *   (byte_fallback) or one <unk> per run of unknown characters.
 *
 * Normalisation follows the model's normalizer_spec: add_dummy_prefix,
 * remove_extra_whitespaces, escape_whitespaces (' ' -> U+2581 "▁"), the
 * precompiled character map when there is one (nmt_nfkc, nfkc_cf, user TSV
 * rules; applied through its double-array trie, as the library does), and
 * trainer_spec.treat_whitespace_as_suffix.  Malformed UTF-8 bytes become
 * U+FFFD, one per byte.  Merging repeatedly joins the adjacent pair whose
 * concatenation is a vocabulary piece of the highest score (ties: leftmost);
 * pieces of type UNUSED are split back into the pair they were made from.
 * The trainer options split_digits, split_by_*, allow_whitespace_only_pieces
 * and max_sentencepiece_length shape the vocabulary only: encoding follows
 * from the pieces the model holds, as in the library.
 *
 * Refused with an error naming the file: model types other than BPE
 * (unigram, word, char), and every structural fault the library refuses
 * (empty or duplicate pieces, no or two <unk>, byte pieces without
 * byte_fallback or an incomplete set of 256, a broken character map) plus
 * malformed protobuf (truncation, bad wire types, overlong varints, unknown
 * enum values; errors give the field and byte offset) and NaN scores.  A
 * model's self_test_data samples are encoded at load and must match.
 *
 * A loaded model is read-only and may be shared by threads; each thread
 * encodes with its own secap_spm_scratch.
 */
#ifndef SECAP_SPM_H
#define SECAP_SPM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct secap_spm secap_spm;
typedef struct secap_spm_scratch secap_spm_scratch;

/* ModelProto.SentencePiece.Type */
typedef enum {
    SECAP_SPM_NORMAL = 1,
    SECAP_SPM_UNKNOWN = 2,
    SECAP_SPM_CONTROL = 3,
    SECAP_SPM_USER_DEFINED = 4,
    SECAP_SPM_UNUSED = 5,
    SECAP_SPM_BYTE = 6,
} secap_spm_type;

/* encode flags: prepend bos_id / append eos_id (as python's add_bos/add_eos;
 * fatal when the model has no such piece). */
enum { SECAP_SPM_ADD_BOS = 1u, SECAP_SPM_ADD_EOS = 2u };

/* Loads a tokenizer.model; any fault is fatal (secap_fatal) with the path. */
secap_spm *secap_spm_load(const char *path);
/* The same from bytes in memory; `name` labels error messages.  The bytes
 * are copied where needed and may be freed after the call. */
secap_spm *secap_spm_from_memory(const void *data, size_t size, const char *name);
void secap_spm_free(secap_spm *m);

/* Vocabulary. */
int secap_spm_vocab_size(const secap_spm *m);
/* Special ids as sentencepiece reports them: the id of trainer_spec's
 * bos/eos/pad piece ("<s>", "</s>", "<pad>" by default) when it is a CONTROL
 * piece, of unk_piece when it is the UNKNOWN piece; -1 otherwise. */
int secap_spm_bos_id(const secap_spm *m);
int secap_spm_eos_id(const secap_spm *m);
int secap_spm_unk_id(const secap_spm *m);
int secap_spm_pad_id(const secap_spm *m);
/* Piece string of id (NUL-terminated; *len gets its byte length when len is
 * not NULL), its score and type.  id must be in [0, vocab_size). */
const char *secap_spm_piece(const secap_spm *m, int id, size_t *len);
float secap_spm_score(const secap_spm *m, int id);
secap_spm_type secap_spm_piece_type(const secap_spm *m, int id);
/* Id of a piece string (sentencepiece's PieceToId: control/unknown/byte
 * pieces first, then the others); the <unk> id when there is none. */
int secap_spm_piece_id(const secap_spm *m, const char *piece, size_t len);
/* One paragraph describing the model (type, vocabulary, normaliser, flags). */
void secap_spm_describe(const secap_spm *m, FILE *f);

/* Per-thread work space for encoding; grows as needed. */
secap_spm_scratch *secap_spm_scratch_new(void);
void secap_spm_scratch_free(secap_spm_scratch *s);

/* Encodes text[0..len) (UTF-8; need not be NUL-terminated, may contain NUL)
 * and returns the number of ids; *ids points into s and stays valid until the
 * next call with s.  flags: SECAP_SPM_ADD_BOS | SECAP_SPM_ADD_EOS. */
size_t secap_spm_encode(const secap_spm *m, const char *text, size_t len, unsigned flags,
                        secap_spm_scratch *s, const int32_t **ids);
/* The normalised text the merges run on ("▁hello▁world"); points into s
 * (NUL-terminated), valid until the next call with s. */
const char *secap_spm_normalize(const secap_spm *m, const char *text, size_t len,
                                secap_spm_scratch *s, size_t *out_len);
/* Decodes ids into a malloc'd NUL-terminated string (*len gets its length
 * when len is not NULL): control pieces vanish, <unk> becomes the model's
 * unk_surface (" ⁇ "), runs of byte pieces are read as UTF-8 (U+FFFD for each
 * byte of a malformed sequence), "▁" becomes ' ', and the leading "▁" that
 * the dummy prefix added is dropped.  An id outside the vocabulary is fatal. */
char *secap_spm_decode(const secap_spm *m, const int32_t *ids, size_t n, size_t *len);

#endif
