/* secap/berttok.h - the BERT tokenizer of the Q-Former's text mode, with the
 * semantics of Hugging Face's (slow) BertTokenizer, tokenize_chinese_chars on.
 *
 * Basic tokenisation of a text, in this order (HF BasicTokenizer):
 *   1. verbatim "[PAD]" "[UNK]" "[CLS]" "[SEP]" "[MASK]" in the text are
 *      special tokens, cut out before anything else (HF's added-token split);
 *   2. cleaning: U+0000, U+FFFD and every Unicode C* character except
 *      \t \n \r are dropped; \t \n \r and Zs characters become spaces;
 *   3. each CJK ideograph (U+4E00-9FFF, 3400-4DBF, 20000-2A6DF, 2A700-2B73F,
 *      2B740-2B81F, 2B820-2CEAF, F900-FAFF, 2F800-2FA1F) gets spaces around it;
 *   4. NFC, then split on Python's str.split() whitespace;
 *   5. lower_case on: each code point lower-cased (Python str.lower() of a
 *      single character: no final-sigma rule, as HF lower-cases the text one
 *      character at a time), then NFD with the Mn marks dropped;
 *   6. each punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, or
 *      a Unicode P* category) becomes its own token.
 * WordPiece then splits each basic token greedily, longest match first, into
 * vocabulary entries, continuation pieces written "##piece"; a token longer
 * than 100 code points, or one with a part that matches nothing, becomes
 * [UNK] as a whole.
 *
 * The vocabulary is a vocab.txt read exactly as HF's load_vocab reads it
 * (bert-base-chinese's 21128-line file loads unchanged): lines end at \n,
 * \r\n or \r (Python's universal newlines); the id of a token is its 0-based
 * line number; a line may hold any UTF-8, spaces included, and an empty line
 * is an (unmatchable) token of its own; a token on two lines maps to the
 * later id, and the earlier id converts back to "[UNK]" (HF's ids_to_tokens).
 * [PAD], [UNK], [CLS] and [SEP] must be present; [MASK] may be absent.
 *
 * lower_case = 1 is the uncased BERT setting (do_lower_case=True, accents
 * stripped), which Google's Chinese BERT was trained with; lower_case = 0 is
 * do_lower_case=False, what HF's from_pretrained("bert-base-chinese") uses
 * (its vocab has no capital Latin letters, so "A" is then [UNK]).
 *
 * Character properties come from utf8proc (Unicode 15.0 in Debian 12); the
 * Python reference's are Unicode 14.0.  The two agree on every code point
 * assigned in 14.0 (tests/test_berttok.c checks them all); a character new
 * in 15.0 is kept here where Python 3.11 would drop it as unassigned.
 *
 * A loaded tokenizer is read-only: any number of threads may tokenize with it
 * at once.  Bad input (unreadable or invalid vocab, invalid UTF-8 in a text,
 * a too small max_len) stops through secap_fatal() naming the file and line.
 *
 *   secap_berttok *tok = secap_berttok_load("vocab.txt", 1);
 *   secap_bert_batch bb;
 *   secap_berttok_encode_batch(tok, 2, texts, NULL, 512, &bb);
 *   ... bb.ids [2, bb.len], bb.lens [2] ...
 *   secap_bert_batch_free(&bb);
 *   secap_berttok_free(tok);
 */
#ifndef SECAP_BERTTOK_H
#define SECAP_BERTTOK_H

#include <stddef.h>
#include <stdint.h>

/* Longest basic token WordPiece splits (HF max_input_chars_per_word). */
#define SECAP_BERT_MAX_WORD_CHARS 100

typedef enum {
    SECAP_BERT_PAD = 0,   /* "[PAD]"  */
    SECAP_BERT_UNK,       /* "[UNK]"  */
    SECAP_BERT_CLS,       /* "[CLS]"  */
    SECAP_BERT_SEP,       /* "[SEP]"  */
    SECAP_BERT_MASK,      /* "[MASK]" */
    SECAP_BERT_NSPECIAL
} secap_bert_special;

/* The text of a special token, e.g. "[CLS]". */
const char *secap_bert_special_text(secap_bert_special s);

/* ---- basic tokenisation (no vocabulary needed) ------------------------- */

/* Called once per basic token in text order: tok[len] is UTF-8 (not
 * NUL-terminated), special is -1, or the secap_bert_special a verbatim
 * special token in the text stands for. */
typedef void (*secap_bert_emit)(void *ctx, const char *tok, size_t len, int special);

/* Basic-tokenises text[len] (UTF-8; NUL bytes are text, and dropped).  what
 * names the text in error messages (NULL: "text"). */
void secap_bert_basic(const char *text, size_t len, int lower_case, const char *what,
                      secap_bert_emit emit, void *ctx);

/* ---- the tokenizer ----------------------------------------------------- */

typedef struct secap_berttok secap_berttok;

secap_berttok *secap_berttok_load(const char *vocab_path, int lower_case);
void secap_berttok_free(secap_berttok *t);

/* Number of ids: the vocab file's lines (an embedding table's rows). */
int secap_berttok_size(const secap_berttok *t);
/* Distinct tokens (HF vocab_size; smaller than size when lines repeat). */
int secap_berttok_distinct(const secap_berttok *t);
int secap_berttok_lower_case(const secap_berttok *t);
const char *secap_berttok_path(const secap_berttok *t);

/* Id of an exact vocabulary entry (e.g. "##ing"), -1 when absent. */
int32_t secap_berttok_id(const secap_berttok *t, const char *token, size_t len);
/* Token text of an id (NUL-terminated; *len, if given, its byte length,
 * which differs from strlen only for a line holding U+0000).  An id shadowed
 * by a later line with the same token gives "[UNK]", as HF does.  Stops on
 * an id outside [0, size). */
const char *secap_berttok_token(const secap_berttok *t, int32_t id, size_t *len);
/* Id of a special token; -1 only for an absent [MASK]. */
int32_t secap_berttok_special_id(const secap_berttok *t, secap_bert_special s);

/* Word-piece ids of text (no [CLS]/[SEP]); returns their count, *ids is
 * malloc'ed (free it; NULL when the count is 0).  A verbatim special token in
 * the text gives its id ([UNK]'s for an absent [MASK]). */
int secap_berttok_tokenize(const secap_berttok *t, const char *text, int32_t **ids);
/* The same for text[len], which may hold NUL bytes. */
int secap_berttok_tokenize_len(const secap_berttok *t, const char *text, size_t len, int32_t **ids);

/* Model input for one text (b NULL) or a pair:
 *   [CLS] a [SEP]            type ids 0 ... 0
 *   [CLS] a [SEP] b [SEP]    type ids 0 ... 0 1 ... 1
 * truncated to at most max_len tokens as HF's truncation=True
 * ("longest_first": one token at a time off the end of the longer of a and
 * b, of b when they are equally long).  ids[max_len] and type_ids[max_len]
 * (type_ids may be NULL) receive the sequence; returns its length.
 * max_len >= 2 (>= 3 for a pair), usually the model's position limit. */
int secap_berttok_encode(const secap_berttok *t, const char *a, const char *b, int max_len,
                         int32_t *ids, int32_t *type_ids);

/* A padded batch (HF padding=True: to the longest row). */
typedef struct {
    int      n;         /* B rows */
    int      len;       /* T: the longest row after truncation */
    int32_t *ids;       /* [B, T] token ids, [PAD] after lens[b] */
    int32_t *type_ids;  /* [B, T] token type ids, 0 on padding */
    int32_t *lens;      /* [B] valid tokens per row (attention length; the
                           attention op's key_len) */
} secap_bert_batch;

/* Encodes n >= 1 texts a[i] (with b[i] for pairs; b NULL, or a NULL b[i],
 * for single texts) as secap_berttok_encode does, then pads. */
void secap_berttok_encode_batch(const secap_berttok *t, int n, const char *const *a,
                                const char *const *b, int max_len, secap_bert_batch *out);
void secap_bert_batch_free(secap_bert_batch *bb);

/* ---- building a vocab.txt from a corpus (src/text/bertvocab.c) --------- */

typedef struct {
    int lower_case;   /* basic tokenisation as the tokenizer will use it (1) */
    int min_count;    /* a learned piece occurs at least this often (2) */
    int max_pieces;   /* at most this many learned word pieces (2000) */
} secap_bertvocab_opts;

void secap_bertvocab_opts_default(secap_bertvocab_opts *o);

typedef struct secap_bertvocab secap_bertvocab;

secap_bertvocab *secap_bertvocab_new(const secap_bertvocab_opts *o);
/* Counts the basic tokens of one text (what names it in errors). */
void secap_bertvocab_add(secap_bertvocab *v, const char *text, const char *what);
/* The vocabulary, one token per line, bert-base-chinese's layout:
 *   0 [PAD], 1-99 [unused1]..[unused99], 100 [UNK], 101 [CLS], 102 [SEP],
 *   103 [MASK], 104 <S>, 105 <T>, then single characters by code point
 *   (ASCII punctuation, digits and a-z always; every character of the
 *   corpus), then the learned pieces in the order learned, then "##c" for
 *   every digit, letter and non-CJK corpus character, by code point.
 * Pieces are learned on the corpus' non-CJK words by byte-pair merges (the
 * most frequent adjacent pair of pieces, weighted by word count, becomes a
 * new piece, "##"-prefixed unless word-initial) until max_pieces or until no
 * pair occurs min_count times.  Returns the line count; *lines (malloc'ed
 * strings, free each and the array) receives them. */
int secap_bertvocab_build(const secap_bertvocab *v, char ***lines);
/* Writes the vocabulary atomically (temp file, then rename); returns the
 * line count. */
int secap_bertvocab_write(const secap_bertvocab *v, const char *path);
void secap_bertvocab_free(secap_bertvocab *v);

#endif
