/* SentencePiece BPE tokenizer: model loading, normalisation, BPE merges,
 * decoding.  See include/secap/spm.h for what is supported and refused.
 *
 * The model file is a protobuf ModelProto (sentencepiece_model.proto):
 *
 *   ModelProto      1 pieces (repeated SentencePiece)  2 trainer_spec
 *                   3 normalizer_spec  4 self_test_data  5 denormalizer_spec
 *   SentencePiece   1 piece (string)  2 score (float)  3 type (enum 1..6)
 *   NormalizerSpec  1 name  2 precompiled_charsmap  3 add_dummy_prefix
 *                   4 remove_extra_whitespaces  5 escape_whitespaces
 *   TrainerSpec     3 model_type  24 treat_whitespace_as_suffix
 *                   35 byte_fallback  44 unk_surface  45-48 unk/bos/eos/pad
 *                   piece, ... (the rest only describes training)
 *
 * Wire format: each field is a varint key (number << 3 | wire type) and a
 * value: varint (0), 8 bytes (1), varint length + bytes (2), 4 bytes (5).
 * Unknown fields are skipped; a message field seen twice is merged, a scalar
 * seen twice keeps the last value (protobuf's rules).
 *
 * Encoding one line (as libsentencepiece 0.1.97, bpe_model.cc and
 * normalizer.cc):
 *   1. normalise: leading spaces dropped (remove_extra_whitespaces), "▁"
 *      prepended (add_dummy_prefix; appended with treat_whitespace_as_suffix),
 *      each character replaced by its charsmap rule (longest match) or kept,
 *      runs of spaces squeezed, ' ' -> "▁", trailing "▁" dropped; user-defined
 *      symbols pass through untouched;
 *   2. split into characters, a user-defined symbol being one frozen symbol;
 *   3. agenda: every adjacent pair (a, b) whose concatenation ab is a piece
 *      (NORMAL, USER_DEFINED or UNUSED) with score(ab); repeatedly take the
 *      best (highest score, then leftmost), replace a, b by ab, and add the
 *      pairs ab forms with its new neighbours.  Entries whose symbols changed
 *      since they were queued are recognised by their length and skipped;
 *   4. a result piece of type UNUSED is split back into the two symbols of
 *      the last pair queued for it, recursively;
 *   5. ids: a string with no piece is <unk>; with byte_fallback an <unk>
 *      becomes the <0xNN> pieces of its UTF-8 bytes, otherwise a run of
 *      consecutive <unk> becomes one.  A string that is a CONTROL piece
 *      (only in hand-made models) fails the encode, as in the library.
 */
#include "secap/spm.h"
#include "secap/base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SPACE_SYM "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* ---- parsed protobuf (views into the file bytes) ------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n;
} view;

typedef struct {
    view piece;
    float score;
    int type;
    size_t off; /* byte offset of the message, for errors */
} raw_piece;

typedef struct {
    view input, expected;
} raw_sample;

typedef struct {
    int present;
    view name, charsmap, rule_tsv;
    int add_dummy_prefix, remove_extra_ws, escape_ws; /* defaults 1, 1, 1 */
    size_t charsmap_off;
} raw_norm;

typedef struct {
    int model_type; /* 1 UNIGRAM (default), 2 BPE, 3 WORD, 4 CHAR */
    int vocab_size;
    int byte_fallback, treat_ws_suffix, split_digits, allow_ws_only;
    int split_by_ws, split_by_number, split_by_script, max_piece_len;
    int unk_id, bos_id, eos_id, pad_id; /* as configured for training */
    view unk_piece, bos_piece, eos_piece, pad_piece, unk_surface;
    int has_unk_surface;
    int n_control, n_user;
    float character_coverage;
} raw_trainer;

typedef struct {
    raw_piece *pieces;
    size_t npieces, cap;
    raw_trainer ts;
    raw_norm ns, dns;
    raw_sample *samples;
    size_t nsamples, scap;
    int has_trainer;
} raw_model;

/* ---- the loaded model ---------------------------------------------------- */

typedef struct {
    int present;
    int add_dummy_prefix, remove_extra_ws, escape_ws, ws_suffix;
    uint32_t *trie;    /* [trie_n] double-array units, NULL: no charsmap */
    size_t trie_n;
    char *strs;        /* [strs_n + 1] replacement strings, NUL-separated */
    size_t strs_n;
    char name[64];
    size_t charsmap_bytes;
} spm_norm;

typedef struct {
    int32_t *slot;     /* [cap] piece id, -1 empty */
    uint32_t *tag;     /* [cap] low hash bits of the id in slot */
    size_t mask;
} spm_map;

struct secap_spm {
    char *file;
    int n;             /* pieces */
    char *blob;        /* piece strings, each NUL-terminated */
    uint32_t *off;     /* [n] start in blob */
    uint32_t *plen;    /* [n] byte length */
    float *score;      /* [n] */
    uint8_t *type;     /* [n] secap_spm_type */
    int32_t *canon;    /* [n] PieceToId(IdToPiece(id)), used by decode */
    uint8_t *byte_val; /* [n] byte of a BYTE piece */
    spm_map normal;    /* NORMAL, USER_DEFINED, UNUSED pieces */
    spm_map reserved;  /* CONTROL, UNKNOWN, BYTE pieces */
    spm_map lookup;    /* every string once, as PieceToId resolves it */
    uint32_t max_normal_len;
    int unk;           /* the UNKNOWN piece */
    int bos, eos, pad, unk_api;
    int byte_id[256];  /* BYTE piece of each byte (byte_fallback) */
    int byte_fallback, has_unused;
    int32_t *ud;       /* user-defined ids sorted by first byte, longest first */
    int n_ud;
    int ud_lo[257];    /* ud[ud_lo[b] .. ud_lo[b + 1]) start with byte b */
    char *unk_surface;
    size_t unk_surface_n;
    spm_norm norm, denorm;
    raw_trainer ts;    /* for describe (views cleared) */
    int counts[7];     /* pieces per type */
};

typedef struct {
    int32_t prev, next; /* -1 at the ends */
    uint32_t start, len; /* bytes of the normalised text */
    int32_t id;          /* the piece a merge made, -1 for a single character */
    uint8_t freeze;      /* user-defined symbol: never merged */
} spm_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size;
    int32_t id;          /* the piece left + right makes */
} spm_pair;

struct secap_spm_scratch {
    char *norm;
    size_t norm_cap;
    spm_sym *sym;
    size_t sym_cap;
    spm_pair *heap;
    size_t heap_n, heap_cap;
    int32_t *ids;
    uint32_t *pstart, *plen; /* piece extents (self-test only); plen 0: byte piece */
    size_t ids_n, ids_cap, p_cap;
    int want_pieces;
    int32_t *rev_left;   /* [rev_cap] UNUSED piece -> left length of its last pair */
    size_t rev_cap;
    int32_t *rev_touched;
    size_t rev_nt, rev_tcap;
};

/* ---- errors -------------------------------------------------------------- */

static _Noreturn __attribute__((format(printf, 2, 3))) void spm_fail(const char *file, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    secap_fatal("spm: %s: %s", file, msg);
}

/* ---- protobuf wire reader ------------------------------------------------ */

typedef struct {
    const uint8_t *base; /* start of the file */
    const uint8_t *p, *end;
    const char *file;
} pb;

#define PB_HINT "(hint: the file is truncated or corrupt, or not a sentencepiece model)"

static size_t pb_off(const pb *r) { return (size_t)(r->p - r->base); }

static uint64_t pb_varint(pb *r, const char *field)
{
    uint64_t v = 0;
    size_t at = pb_off(r);
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            spm_fail(r->file, "byte offset %zu, %s: varint runs past the end of its message " PB_HINT, at, field);
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            spm_fail(r->file, "byte offset %zu, %s: varint longer than 64 bits " PB_HINT, at, field);
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) return v;
    }
    spm_fail(r->file, "byte offset %zu, %s: varint longer than 10 bytes " PB_HINT, at, field);
}

static const char *WIRE_NAME[8] = {"varint", "64-bit", "length-delimited", "group start",
                                   "group end", "32-bit", "invalid (6)", "invalid (7)"};

/* Reads a key; 0 at the end of the message. */
static int pb_key(pb *r, int *num, int *wt, const char *msg)
{
    if (r->p >= r->end) return 0;
    size_t at = pb_off(r);
    uint64_t k = pb_varint(r, msg);
    *num = (int)(k >> 3);
    *wt = (int)(k & 7);
    if ((k >> 3) == 0 || (k >> 3) > 536870911u)
        spm_fail(r->file, "byte offset %zu, %s: field number %llu is not valid " PB_HINT, at, msg,
                 (unsigned long long)(k >> 3));
    return 1;
}

static view pb_bytes(pb *r, const char *field)
{
    size_t at = pb_off(r);
    uint64_t n = pb_varint(r, field);
    size_t left = (size_t)(r->end - r->p);
    if (n > left)
        spm_fail(r->file, "byte offset %zu, %s: length %llu runs past the end of its message (%zu bytes left) " PB_HINT,
                 at, field, (unsigned long long)n, left);
    view v = {r->p, (size_t)n};
    r->p += n;
    return v;
}

static void pb_fixed(pb *r, size_t n, const char *field, void *out)
{
    if ((size_t)(r->end - r->p) < n)
        spm_fail(r->file, "byte offset %zu, %s: %zu-byte value runs past the end of its message " PB_HINT,
                 pb_off(r), field, n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i); /* little-endian on the wire */
    r->p += n;
    if (n == 4) { uint32_t u = (uint32_t)v; memcpy(out, &u, 4); }
    else memcpy(out, &v, 8);
}

static void pb_skip(pb *r, int wt, int num, const char *msg)
{
    char field[96];
    snprintf(field, sizeof field, "%s field %d", msg, num);
    uint64_t tmp;
    switch (wt) {
    case 0: pb_varint(r, field); break;
    case 1: pb_fixed(r, 8, field, &tmp); break;
    case 2: pb_bytes(r, field); break;
    case 5: pb_fixed(r, 4, field, &tmp); break;
    default:
        spm_fail(r->file, "byte offset %zu, %s: wire type %d (%s) is not used by sentencepiece models " PB_HINT,
                 pb_off(r), field, wt, WIRE_NAME[wt]);
    }
}

static void pb_want(const pb *r, size_t at, int wt, int want, const char *field)
{
    if (wt != want)
        spm_fail(r->file, "byte offset %zu, %s: wire type %d (%s), expected %d (%s) " PB_HINT,
                 at, field, wt, WIRE_NAME[wt], want, WIRE_NAME[want]);
}

static int pb_bool(pb *r, const char *field) { return pb_varint(r, field) != 0; }

static int pb_int32(pb *r, const char *field)
{
    size_t at = pb_off(r);
    int64_t v = (int64_t)pb_varint(r, field);
    if (v < INT32_MIN || v > INT32_MAX)
        spm_fail(r->file, "byte offset %zu, %s: %lld does not fit an int32 " PB_HINT, at, field, (long long)v);
    return (int)v;
}

static pb pb_sub(const pb *r, view v)
{
    pb s = {r->base, v.p, v.p + v.n, r->file};
    return s;
}

/* ---- ModelProto parsing -------------------------------------------------- */

static const char *const MODEL_NAME[5] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};

static void parse_piece(pb *r, raw_piece *pc, size_t idx)
{
    char field[64];
    int num, wt;
    pc->piece.p = NULL; pc->piece.n = 0;
    pc->score = 0.0f;
    pc->type = SECAP_SPM_NORMAL;
    while (pb_key(r, &num, &wt, "pieces[]")) {
        size_t at = pb_off(r);
        switch (num) {
        case 1:
            snprintf(field, sizeof field, "pieces[%zu].piece", idx);
            pb_want(r, at, wt, 2, field);
            pc->piece = pb_bytes(r, field);
            break;
        case 2:
            snprintf(field, sizeof field, "pieces[%zu].score", idx);
            pb_want(r, at, wt, 5, field);
            pb_fixed(r, 4, field, &pc->score);
            break;
        case 3: {
            snprintf(field, sizeof field, "pieces[%zu].type", idx);
            pb_want(r, at, wt, 0, field);
            uint64_t t = pb_varint(r, field);
            if (t < 1 || t > 6)
                spm_fail(r->file, "byte offset %zu, %s: unknown piece type %llu (hint: NORMAL=1 UNKNOWN=2 CONTROL=3 "
                         "USER_DEFINED=4 UNUSED=5 BYTE=6; the file is corrupt or from a newer sentencepiece)",
                         at, field, (unsigned long long)t);
            pc->type = (int)t;
            break;
        }
        default: pb_skip(r, wt, num, "pieces[]");
        }
    }
}

/* TrainerSpec fields and their wire types, for the ones we do not read:
 * checked so that a corrupt file is not half-read in silence. */
static int trainer_wire(int num)
{
    switch (num) {
    case 1: case 2: case 5: case 7: case 30: case 31: case 36: case 44: case 45: case 46: case 47: case 48: case 53:
        return 2;
    case 10: case 15: case 51:
        return 5;
    case 3: case 4: case 6: case 11: case 12: case 13: case 14: case 16: case 17: case 18: case 19: case 20:
    case 21: case 22: case 23: case 24: case 25: case 26: case 32: case 33: case 34: case 35:
    case 40: case 41: case 42: case 43: case 49: case 50: case 52:
        return 0;
    default:
        return -1;
    }
}

static void parse_trainer(pb *r, raw_trainer *t)
{
    int num, wt;
    char field[64];
    while (pb_key(r, &num, &wt, "trainer_spec")) {
        size_t at = pb_off(r);
        int want = trainer_wire(num);
        if (want < 0) { pb_skip(r, wt, num, "trainer_spec"); continue; }
        snprintf(field, sizeof field, "trainer_spec field %d", num);
        pb_want(r, at, wt, want, field);
        switch (num) {
        case 3: {
            uint64_t v = pb_varint(r, "trainer_spec.model_type");
            if (v < 1 || v > 4)
                spm_fail(r->file, "byte offset %zu, trainer_spec.model_type: unknown model type %llu "
                         "(hint: UNIGRAM=1 BPE=2 WORD=3 CHAR=4)", at, (unsigned long long)v);
            t->model_type = (int)v;
            break;
        }
        case 4: t->vocab_size = pb_int32(r, "trainer_spec.vocab_size"); break;
        case 10: pb_fixed(r, 4, "trainer_spec.character_coverage", &t->character_coverage); break;
        case 20: t->max_piece_len = pb_int32(r, "trainer_spec.max_sentencepiece_length"); break;
        case 21: t->split_by_script = pb_bool(r, "trainer_spec.split_by_unicode_script"); break;
        case 22: t->split_by_ws = pb_bool(r, "trainer_spec.split_by_whitespace"); break;
        case 23: t->split_by_number = pb_bool(r, "trainer_spec.split_by_number"); break;
        case 24: t->treat_ws_suffix = pb_bool(r, "trainer_spec.treat_whitespace_as_suffix"); break;
        case 25: t->split_digits = pb_bool(r, "trainer_spec.split_digits"); break;
        case 26: t->allow_ws_only = pb_bool(r, "trainer_spec.allow_whitespace_only_pieces"); break;
        case 30: pb_bytes(r, "trainer_spec.control_symbols"); t->n_control++; break;
        case 31: pb_bytes(r, "trainer_spec.user_defined_symbols"); t->n_user++; break;
        case 35: t->byte_fallback = pb_bool(r, "trainer_spec.byte_fallback"); break;
        case 40: t->unk_id = pb_int32(r, "trainer_spec.unk_id"); break;
        case 41: t->bos_id = pb_int32(r, "trainer_spec.bos_id"); break;
        case 42: t->eos_id = pb_int32(r, "trainer_spec.eos_id"); break;
        case 43: t->pad_id = pb_int32(r, "trainer_spec.pad_id"); break;
        case 44: t->unk_surface = pb_bytes(r, "trainer_spec.unk_surface"); t->has_unk_surface = 1; break;
        case 45: t->unk_piece = pb_bytes(r, "trainer_spec.unk_piece"); break;
        case 46: t->bos_piece = pb_bytes(r, "trainer_spec.bos_piece"); break;
        case 47: t->eos_piece = pb_bytes(r, "trainer_spec.eos_piece"); break;
        case 48: t->pad_piece = pb_bytes(r, "trainer_spec.pad_piece"); break;
        default: pb_skip(r, wt, num, "trainer_spec");
        }
    }
}

static void parse_norm(pb *r, raw_norm *n, const char *msg)
{
    int num, wt;
    char field[64];
    n->present = 1;
    while (pb_key(r, &num, &wt, msg)) {
        size_t at = pb_off(r);
        const int want[7] = {-1, 2, 2, 0, 0, 0, 2};
        if (num > 6) { pb_skip(r, wt, num, msg); continue; }
        snprintf(field, sizeof field, "%s field %d", msg, num);
        pb_want(r, at, wt, want[num], field);
        switch (num) {
        case 1: n->name = pb_bytes(r, field); break;
        case 2: n->charsmap_off = pb_off(r); n->charsmap = pb_bytes(r, field); break;
        case 3: n->add_dummy_prefix = pb_bool(r, field); break;
        case 4: n->remove_extra_ws = pb_bool(r, field); break;
        case 5: n->escape_ws = pb_bool(r, field); break;
        case 6: n->rule_tsv = pb_bytes(r, field); break;
        }
    }
}

static void parse_samples(pb *r, raw_model *rm)
{
    int num, wt;
    while (pb_key(r, &num, &wt, "self_test_data")) {
        size_t at = pb_off(r);
        if (num != 1) { pb_skip(r, wt, num, "self_test_data"); continue; }
        pb_want(r, at, wt, 2, "self_test_data.samples");
        pb s = pb_sub(r, pb_bytes(r, "self_test_data.samples"));
        if (rm->nsamples == rm->scap) {
            rm->scap = rm->scap ? 2 * rm->scap : 16;
            raw_sample *ns = realloc(rm->samples, rm->scap * sizeof *ns);
            if (!ns) spm_fail(r->file, "out of memory for self-test samples");
            rm->samples = ns;
        }
        raw_sample *smp = &rm->samples[rm->nsamples++];
        memset(smp, 0, sizeof *smp);
        int n2, w2;
        while (pb_key(&s, &n2, &w2, "self_test_data.samples[]")) {
            size_t at2 = pb_off(&s);
            if (n2 == 1 || n2 == 2) {
                pb_want(&s, at2, w2, 2, n2 == 1 ? "self_test_data.samples[].input" : "self_test_data.samples[].expected");
                view v = pb_bytes(&s, "self_test_data.samples[]");
                if (n2 == 1) smp->input = v; else smp->expected = v;
            } else {
                pb_skip(&s, w2, n2, "self_test_data.samples[]");
            }
        }
    }
}

static void raw_defaults(raw_model *rm)
{
    memset(rm, 0, sizeof *rm);
    raw_trainer *t = &rm->ts;
    t->model_type = 1;
    t->vocab_size = 8000;
    t->split_by_ws = t->split_by_number = t->split_by_script = 1;
    t->max_piece_len = 16;
    t->unk_id = 0; t->bos_id = 1; t->eos_id = 2; t->pad_id = -1;
    t->character_coverage = 0.9995f;
    rm->ns.add_dummy_prefix = rm->ns.remove_extra_ws = rm->ns.escape_ws = 1;
    rm->dns.add_dummy_prefix = rm->dns.remove_extra_ws = rm->dns.escape_ws = 1;
}

static void parse_model(const uint8_t *data, size_t size, const char *file, raw_model *rm)
{
    raw_defaults(rm);
    pb r = {data, data, data + size, file};
    int num, wt;
    while (pb_key(&r, &num, &wt, "ModelProto")) {
        size_t at = pb_off(&r);
        static const char *const FIELD[6] = {"", "pieces", "trainer_spec", "normalizer_spec", "self_test_data",
                                             "denormalizer_spec"};
        if (num > 5) { pb_skip(&r, wt, num, "ModelProto"); continue; }
        pb_want(&r, at, wt, 2, FIELD[num]);
        pb s = pb_sub(&r, pb_bytes(&r, FIELD[num]));
        switch (num) {
        case 1:
            if (rm->npieces == rm->cap) {
                rm->cap = rm->cap ? 2 * rm->cap : 1024;
                raw_piece *np = realloc(rm->pieces, rm->cap * sizeof *np);
                if (!np) spm_fail(file, "out of memory for %zu pieces", rm->cap);
                rm->pieces = np;
            }
            rm->pieces[rm->npieces].off = at;
            parse_piece(&s, &rm->pieces[rm->npieces], rm->npieces);
            rm->npieces++;
            break;
        case 2: parse_trainer(&s, &rm->ts); rm->has_trainer = 1; break;
        case 3: parse_norm(&s, &rm->ns, "normalizer_spec"); break;
        case 4: parse_samples(&s, rm); break;
        case 5: parse_norm(&s, &rm->dns, "denormalizer_spec"); break;
        }
    }
}

/* ---- UTF-8 (util.h of sentencepiece) ------------------------------------- */

/* Length of the character starting with lead byte b, from the lead byte
 * alone (1 for stray continuation bytes). */
static inline size_t one_char_len(uint8_t b)
{
    static const uint8_t L[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return L[b >> 4];
}

/* 1 and *mb = its length if s starts with a well-formed character (no
 * overlong forms, surrogates or code points past U+10FFFF); else 0, *mb = 1. */
static inline int utf8_valid(const uint8_t *s, size_t n, size_t *mb)
{
    uint8_t b = s[0];
    if (b < 0x80) { *mb = 1; return 1; }
    if (n >= 2 && (b & 0xE0) == 0xC0) {
        uint32_t cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        if ((s[1] & 0xC0) == 0x80 && cp >= 0x80) { *mb = 2; return 1; }
    } else if (n >= 3 && (b & 0xF0) == 0xE0) {
        uint32_t cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000)) {
            *mb = 3;
            return 1;
        }
    } else if (n >= 4 && (b & 0xF8) == 0xF0) {
        uint32_t cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 && cp >= 0x10000 &&
            cp <= 0x10FFFF) {
            *mb = 4;
            return 1;
        }
    }
    *mb = 1;
    return 0;
}

/* ---- piece maps ----------------------------------------------------------- */

/* Loads of 8 / 4 bytes (unaligned, little-endian as the host). */
static inline uint64_t ld8(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t ld4(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* A multiply-xorshift hash; short strings are read with overlapping loads
 * instead of a byte loop. */
static inline uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull), v;
    if (n >= 8) {
        size_t k = 0;
        for (; k + 8 < n; k += 8) {
            h = (h ^ ld8(p + k)) * 0xff51afd7ed558ccdull;
            h ^= h >> 32;
        }
        v = ld8(p + n - 8);
    } else if (n >= 4) {
        v = (uint64_t)ld4(p) << 32 | ld4(p + n - 4);
    } else if (n) {
        v = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
    } else {
        v = 0;
    }
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return h;
}

static inline int eq_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (n >= 8) {
        for (size_t k = 0; k + 8 < n; k += 8)
            if (ld8(a + k) != ld8(b + k)) return 0;
        return ld8(a + n - 8) == ld8(b + n - 8);
    }
    if (n >= 4) return ld4(a) == ld4(b) && ld4(a + n - 4) == ld4(b + n - 4);
    for (size_t k = 0; k < n; k++)
        if (a[k] != b[k]) return 0;
    return 1;
}

static void map_init(spm_map *mp, size_t count)
{
    size_t cap = 16;
    while (cap < 2 * count) cap <<= 1;
    mp->slot = secap_xmalloc(cap * sizeof *mp->slot, "spm piece map");
    mp->tag = secap_xmalloc(cap * sizeof *mp->tag, "spm piece map");
    memset(mp->slot, 0xff, cap * sizeof *mp->slot);
    mp->mask = cap - 1;
}

static inline int map_find(const secap_spm *m, const spm_map *mp, const uint8_t *p, size_t n)
{
    uint64_t h = hash_bytes(p, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & mp->mask;; i = (i + 1) & mp->mask) {
        int32_t id = mp->slot[i];
        if (id < 0) return -1;
        if (mp->tag[i] == tag && m->plen[id] == n && eq_bytes((const uint8_t *)m->blob + m->off[id], p, n)) return id;
    }
}

/* Inserts id; returns the id already there under the same string, or -1. */
static int map_insert(secap_spm *m, spm_map *mp, int id)
{
    const uint8_t *p = (const uint8_t *)m->blob + m->off[id];
    size_t n = m->plen[id];
    uint64_t h = hash_bytes(p, n);
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = (size_t)h & mp->mask;
    for (;; i = (i + 1) & mp->mask) {
        int32_t o = mp->slot[i];
        if (o < 0) break;
        if (mp->tag[i] == tag && m->plen[o] == n && !memcmp(m->blob + m->off[o], p, n)) return o;
    }
    mp->slot[i] = id;
    mp->tag[i] = tag;
    return -1;
}

/* PieceToId: reserved pieces first, then the others, else <unk>. */
static int piece_to_id_slow(const secap_spm *m, const uint8_t *p, size_t n)
{
    int id = map_find(m, &m->reserved, p, n);
    if (id >= 0) return id;
    id = map_find(m, &m->normal, p, n);
    return id >= 0 ? id : m->unk;
}

/* The same in one probe of the merged map. */
static inline int piece_to_id(const secap_spm *m, const uint8_t *p, size_t n)
{
    int id = map_find(m, &m->lookup, p, n);
    return id >= 0 ? id : m->unk;
}

/* ---- normaliser ----------------------------------------------------------- */

static inline uint32_t da_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t da_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static inline int da_has_leaf(uint32_t u) { return (u >> 8) & 1; }

/* Longest charsmap rule matching a prefix of key (darts-clone
 * commonPrefixSearch over the double array); 0 when none. */
static size_t trie_longest(const secap_spm *m, const spm_norm *nz, const uint8_t *key, size_t n, uint32_t *value)
{
    const uint32_t *a = nz->trie;
    size_t node = da_offset(a[0]), found = 0;
    int hits = 0;
    for (size_t i = 0; i < n; i++) {
        node ^= key[i];
        if (node >= nz->trie_n) goto corrupt;
        uint32_t u = a[node];
        if (da_label(u) != key[i]) break;
        node ^= da_offset(u);
        if (da_has_leaf(u)) {
            if (node >= nz->trie_n) goto corrupt;
            uint32_t v = a[node] & 0x7fffffffu;
            if (v >= nz->strs_n)
                spm_fail(m->file, "%s.precompiled_charsmap: rule value %u points past the %zu bytes of replacement "
                         "strings (hint: the character map is corrupt)", nz->name, v, nz->strs_n);
            if (++hits > 32)
                spm_fail(m->file, "%s.precompiled_charsmap: more than 32 nested rules match one position "
                         "(hint: the character map is corrupt)", nz->name);
            *value = v;
            found = i + 1;
        }
    }
    return found;
corrupt:
    spm_fail(m->file, "%s.precompiled_charsmap: trie index %zu is outside its %zu units "
             "(hint: the character map is corrupt)", nz->name, node, nz->trie_n);
}

/* Longest user-defined symbol at the start of p (found = 1), else one
 * character (by its lead byte). */
static inline size_t user_match(const secap_spm *m, const uint8_t *p, size_t n, int *found)
{
    if (m->n_ud) {
        for (int k = m->ud_lo[p[0]]; k < m->ud_lo[p[0] + 1]; k++) {
            int id = m->ud[k];
            size_t l = m->plen[id];
            if (l <= n && !memcmp(m->blob + m->off[id], p, l)) { *found = 1; return l; }
        }
    }
    *found = 0;
    size_t l = one_char_len(p[0]);
    return l < n ? l : n;
}

typedef struct {
    char *buf;
    size_t n, cap;
} strbuf;

static inline void sb_reserve(strbuf *b, size_t more)
{
    if (b->n + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) secap_fatal("spm: out of memory for %zu bytes of text (hint: a very long line?)", cap);
    b->buf = nb;
    b->cap = cap;
}

static inline void sb_add(strbuf *b, const void *p, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->buf + b->n, p, n);
    b->n += n;
}

/* One normalisation step at in[0..n): returns the bytes consumed and sets
 * out and olen to what they become (Normalizer::NormalizePrefix). */
static inline size_t norm_prefix(const secap_spm *m, const spm_norm *nz, int use_ud, const uint8_t *in, size_t n,
                                 const uint8_t **out, size_t *olen)
{
    if (use_ud && m->n_ud) {
        int found;
        size_t l = user_match(m, in, n, &found);
        if (found) { *out = in; *olen = l; return l; }
    }
    if (nz->trie) {
        uint32_t v = 0;
        size_t l = trie_longest(m, nz, in, n, &v);
        if (l) {
            *out = (const uint8_t *)nz->strs + v;
            *olen = strnlen(nz->strs + v, nz->strs_n - v);
            return l;
        }
    }
    size_t mb;
    if (utf8_valid(in, n, &mb)) { *out = in; *olen = mb; return mb; }
    *out = (const uint8_t *)REPLACEMENT;
    *olen = 3;
    return 1;
}

static inline void add_ws(const spm_norm *nz, strbuf *b)
{
    if (nz->escape_ws) sb_add(b, SPACE_SYM, 3);
    else sb_add(b, " ", 1);
}

/* Normalizer::Normalize into b (b->n = 0 first); NUL-terminates. */
static void normalize(const secap_spm *m, const spm_norm *nz, int use_ud, const uint8_t *in, size_t n, strbuf *b)
{
    b->n = 0;
    sb_reserve(b, 3 * n + 8);
    size_t pos = 0;
    const uint8_t *o;
    size_t ol;
    if (n == 0) goto done;
    if (nz->remove_extra_ws) {
        while (pos < n) {
            size_t c = norm_prefix(m, nz, use_ud, in + pos, n - pos, &o, &ol);
            if (!(ol == 1 && o[0] == ' ')) break;
            pos += c;
        }
    }
    if (pos == n) goto done;
    if (!nz->ws_suffix && nz->add_dummy_prefix) add_ws(nz, b);
    int prev_space = nz->remove_extra_ws;
    const int fast = !(use_ud && m->n_ud) && !nz->trie;
    while (pos < n) {
        if (fast && in[pos] < 0x80) { /* identity, ASCII: the byte itself */
            uint8_t c = in[pos++];
            if (c == ' ') {
                if (!prev_space) {
                    if (nz->escape_ws) { memcpy(b->buf + b->n, SPACE_SYM, 3); b->n += 3; }
                    else b->buf[b->n++] = ' ';
                }
                prev_space = nz->remove_extra_ws;
            } else {
                b->buf[b->n++] = (char)c;
                prev_space = 0;
            }
            continue;
        }
        size_t c = norm_prefix(m, nz, use_ud, in + pos, n - pos, &o, &ol);
        if (prev_space)
            while (ol && o[0] == ' ') { o++; ol--; }
        if (ol) {
            sb_reserve(b, 3 * ol);
            for (size_t k = 0; k < ol; k++) {
                if (nz->escape_ws && o[k] == ' ') { memcpy(b->buf + b->n, SPACE_SYM, 3); b->n += 3; }
                else b->buf[b->n++] = (char)o[k];
            }
            prev_space = o[ol - 1] == ' ';
        }
        pos += c;
        if (!nz->remove_extra_ws) prev_space = 0;
        sb_reserve(b, 3 * (n - pos) + 8);
    }
    if (nz->remove_extra_ws) {
        const char *sp = nz->escape_ws ? SPACE_SYM : " ";
        size_t sl = nz->escape_ws ? 3 : 1;
        while (b->n >= sl && !memcmp(b->buf + b->n - sl, sp, sl)) b->n -= sl;
    }
    if (nz->ws_suffix && nz->add_dummy_prefix) add_ws(nz, b);
done:
    b->buf[b->n] = '\0';
}

/* ---- scratch -------------------------------------------------------------- */

secap_spm_scratch *secap_spm_scratch_new(void)
{
    return secap_xcalloc(1, sizeof(secap_spm_scratch), "spm scratch");
}

void secap_spm_scratch_free(secap_spm_scratch *s)
{
    if (!s) return;
    free(s->norm); free(s->sym); free(s->heap); free(s->ids); free(s->pstart); free(s->plen);
    free(s->rev_left); free(s->rev_touched);
    free(s);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *np = realloc(p, c * elem);
    if (!np) secap_fatal("spm: out of memory for %zu %s", c, what);
    *cap = c;
    return np;
}

static inline void emit_id(secap_spm_scratch *s, int32_t id, uint32_t start, uint32_t len)
{
    if (s->ids_n == s->ids_cap) s->ids = grow(s->ids, &s->ids_cap, s->ids_n + 1, sizeof *s->ids, "token ids");
    if (s->want_pieces) {
        if (s->ids_n == s->p_cap) {
            size_t c = s->p_cap;
            s->pstart = grow(s->pstart, &c, s->ids_n + 1, sizeof *s->pstart, "token ids");
            s->plen = grow(s->plen, &s->p_cap, s->ids_n + 1, sizeof *s->plen, "token ids");
        }
        s->pstart[s->ids_n] = start;
        s->plen[s->ids_n] = len;
    }
    s->ids[s->ids_n++] = id;
}

/* ---- BPE ------------------------------------------------------------------ */

/* Agenda order: higher score first, then the leftmost pair. */
static inline int pair_before(const spm_pair *a, const spm_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(secap_spm_scratch *s, spm_pair p)
{
    s->heap = grow(s->heap, &s->heap_cap, s->heap_n + 1, sizeof *s->heap, "merge candidates");
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_before(&p, &s->heap[up])) break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = p;
}

static spm_pair heap_pop(secap_spm_scratch *s)
{
    spm_pair top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!pair_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

static inline void maybe_add(const secap_spm *m, secap_spm_scratch *s, const char *text, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return;
    const spm_sym *a = &s->sym[l], *b = &s->sym[r];
    if (a->freeze || b->freeze) return;
    uint32_t size = a->len + b->len;
    if (size > m->max_normal_len) return;
    int id = map_find(m, &m->normal, (const uint8_t *)text + a->start, size);
    if (id < 0) return;
    spm_pair p = {m->score[id], l, r, size, id};
    heap_push(s, p);
    if (m->type[id] == SECAP_SPM_UNUSED) { /* rev_merge[piece] = (a, b), last one wins */
        if (s->rev_left[id] < 0) {
            s->rev_touched = grow(s->rev_touched, &s->rev_tcap, s->rev_nt + 1, sizeof *s->rev_touched, "pieces");
            s->rev_touched[s->rev_nt++] = id;
        }
        s->rev_left[id] = (int32_t)a->len;
    }
}

typedef struct {
    int prev_unk;
} emit_state;

/* PopulateSentencePieceText for one (piece, id). */
static inline void emit_piece(const secap_spm *m, secap_spm_scratch *s, const char *text, uint32_t start, uint32_t len,
                              int id, emit_state *st)
{
    int t = m->type[id];
    int is_unk = t == SECAP_SPM_UNKNOWN;
    if (t == SECAP_SPM_CONTROL) /* has no surface: the library's "all normalized characters are not consumed" */
        spm_fail(m->file, "encode: the text yields \"%.*s\", which is a CONTROL piece (id %d); sentencepiece "
                 "refuses such input (its python binding returns no ids) (hint: the model makes a character or "
                 "a merge a CONTROL piece; remove it from the text)", (int)len, text + start, id);
    if (is_unk && m->byte_fallback) {
        for (uint32_t k = 0; k < len; k++) emit_id(s, m->byte_id[(uint8_t)text[start + k]], 0, 0);
    } else if (is_unk && st->prev_unk) {
        if (s->want_pieces) s->plen[s->ids_n - 1] += len; /* one <unk> for the run */
    } else {
        emit_id(s, id, start, len);
    }
    st->prev_unk = is_unk;
}

/* Output of one final symbol; known: the id of its string when a merge made
 * it (-1: look it up). */
static void resegment(const secap_spm *m, secap_spm_scratch *s, const char *text, uint32_t start, uint32_t len,
                      int known, emit_state *st)
{
    int id = known >= 0 ? m->canon[known] : piece_to_id(m, (const uint8_t *)text + start, len);
    if (m->type[id] == SECAP_SPM_UNUSED && s->rev_left[id] >= 0) {
        uint32_t l = (uint32_t)s->rev_left[id];
        resegment(m, s, text, start, l, -1, st);
        resegment(m, s, text, start + l, len - l, -1, st);
        return;
    }
    emit_piece(m, s, text, start, len, id, st);
}

/* Encodes into s->ids (and the piece extents when s->want_pieces). */
/* The scratch's text buffer is on loan to a strbuf while normalising: it is
 * given back on every exit, a caught error included (a grown buffer would
 * otherwise leak, and the scratch keep a freed pointer). */
typedef struct { strbuf *b; secap_spm_scratch *s; } text_loan;

static void give_back(void *arg)
{
    text_loan *l = arg;
    l->s->norm = l->b->buf;
    l->s->norm_cap = l->b->cap;
}

/* Normalises text into s->norm; returns its length. */
static size_t normalize_into(const secap_spm *m, const char *text, size_t len, secap_spm_scratch *s)
{
    strbuf b = {s->norm, 0, s->norm_cap};
    text_loan l = {&b, s};
    secap_cleanup cl;
    secap_cleanup_push(&cl, give_back, &l);
    normalize(m, &m->norm, 1, (const uint8_t *)text, len, &b);
    secap_cleanup_pop(&cl);
    give_back(&l);
    return b.n;
}

static void encode_core(const secap_spm *m, const char *text, size_t len, secap_spm_scratch *s)
{
    size_t n = normalize_into(m, text, len, s);
    s->ids_n = 0;
    if (n == 0) return;
    if (n > INT32_MAX / 2) secap_fatal("spm: %s: a line of %zu bytes is too long to encode (hint: split it)", m->file, n);
    const char *t = s->norm;

    if (m->has_unused) {
        if (s->rev_cap < (size_t)m->n) {
            free(s->rev_left);
            s->rev_left = secap_xmalloc((size_t)m->n * sizeof *s->rev_left, "spm unused-piece table");
            memset(s->rev_left, 0xff, (size_t)m->n * sizeof *s->rev_left);
            s->rev_cap = (size_t)m->n;
        }
        for (size_t k = 0; k < s->rev_nt; k++) s->rev_left[s->rev_touched[k]] = -1;
        s->rev_nt = 0;
    }

    /* Characters (user-defined symbols whole). */
    s->sym = grow(s->sym, &s->sym_cap, n, sizeof *s->sym, "symbols");
    int32_t ns = 0;
    for (size_t pos = 0; pos < n;) {
        int found;
        size_t l = user_match(m, (const uint8_t *)t + pos, n - pos, &found);
        spm_sym *y = &s->sym[ns];
        y->prev = ns - 1;
        y->start = (uint32_t)pos;
        y->len = (uint32_t)l;
        y->freeze = (uint8_t)found;
        y->id = -1;
        pos += l;
        y->next = pos < n ? ns + 1 : -1;
        ns++;
    }

    s->heap_n = 0;
    for (int32_t i = 1; i < ns; i++) maybe_add(m, s, t, i - 1, i);
    while (s->heap_n) {
        spm_pair top = heap_pop(s);
        spm_sym *a = &s->sym[top.left], *c = &s->sym[top.right];
        if (a->len == 0 || c->len == 0 || a->len + c->len != top.size) continue; /* stale */
        a->len += c->len;
        a->id = top.id;
        a->next = c->next;
        if (c->next >= 0) s->sym[c->next].prev = top.left;
        c->len = 0;
        maybe_add(m, s, t, a->prev, top.left);
        maybe_add(m, s, t, top.left, a->next);
    }

    emit_state st = {0};
    for (int32_t i = 0; i != -1; i = s->sym[i].next)
        resegment(m, s, t, s->sym[i].start, s->sym[i].len, s->sym[i].id, &st);
}

size_t secap_spm_encode(const secap_spm *m, const char *text, size_t len, unsigned flags, secap_spm_scratch *s,
                        const int32_t **ids)
{
    if (!m || !s || (!text && len)) secap_fatal("spm_encode: NULL model, scratch or text");
    if ((flags & SECAP_SPM_ADD_BOS) && m->bos < 0)
        spm_fail(m->file, "encode: BOS requested but the model has no BOS piece (hint: trainer_spec.bos_piece "
                 "is not a CONTROL piece; drop --bos)");
    if ((flags & SECAP_SPM_ADD_EOS) && m->eos < 0)
        spm_fail(m->file, "encode: EOS requested but the model has no EOS piece (hint: trainer_spec.eos_piece "
                 "is not a CONTROL piece; drop --eos)");
    s->want_pieces = 0;
    encode_core(m, text ? text : "", len, s);
    if (flags & SECAP_SPM_ADD_BOS) {
        emit_id(s, m->bos, 0, 0);
        memmove(s->ids + 1, s->ids, (s->ids_n - 1) * sizeof *s->ids);
        s->ids[0] = m->bos;
    }
    if (flags & SECAP_SPM_ADD_EOS) emit_id(s, m->eos, 0, 0);
    *ids = s->ids;
    return s->ids_n;
}

const char *secap_spm_normalize(const secap_spm *m, const char *text, size_t len, secap_spm_scratch *s,
                                size_t *out_len)
{
    size_t n = normalize_into(m, text ? text : "", len, s);
    if (out_len) *out_len = n;
    return s->norm;
}

/* ---- decode --------------------------------------------------------------- */

/* Bytes of a run of byte pieces, as UTF-8: each byte that does not start a
 * well-formed character becomes U+FFFD. */
static void flush_bytes(strbuf *out, const uint8_t *bytes, size_t n)
{
    for (size_t k = 0; k < n;) {
        size_t mb;
        if (utf8_valid(bytes + k, n - k, &mb)) sb_add(out, bytes + k, mb);
        else sb_add(out, REPLACEMENT, 3);
        k += mb;
    }
}

char *secap_spm_decode(const secap_spm *m, const int32_t *ids, size_t n, size_t *len)
{
    strbuf out = {0}, bytes = {0};
    sb_reserve(&out, 16);
    int is_bos_ws = 1, bos_ws_seen = 0;
    const int strip = m->norm.add_dummy_prefix || m->norm.remove_extra_ws;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= m->n) {
            free(out.buf); free(bytes.buf);
            spm_fail(m->file, "decode: id %d at position %zu is outside the vocabulary [0, %d) "
                     "(hint: ids from another tokenizer?)", (int)id, i, m->n);
        }
        int c = m->canon[id];
        int t = m->type[c];
        if (t == SECAP_SPM_BYTE) {
            uint8_t v = m->byte_val[c];
            sb_add(&bytes, &v, 1);
            continue;
        }
        flush_bytes(&out, (const uint8_t *)bytes.buf, bytes.n);
        bytes.n = 0;
        if (bos_ws_seen || out.n) is_bos_ws = 0;
        if (t == SECAP_SPM_CONTROL) {
            bos_ws_seen = 0;
        } else if (t == SECAP_SPM_UNKNOWN) {
            sb_add(&out, m->unk_surface, m->unk_surface_n);
            bos_ws_seen = 0;
        } else {
            const char *p = m->blob + m->off[c];
            size_t l = m->plen[c];
            int has = 0;
            if (is_bos_ws && strip && l >= 3 && !memcmp(p, SPACE_SYM, 3)) {
                p += 3; l -= 3;
                has = !m->norm.remove_extra_ws;
            }
            for (size_t k = 0; k < l;) {
                if (l - k >= 3 && !memcmp(p + k, SPACE_SYM, 3)) { sb_add(&out, " ", 1); k += 3; }
                else { sb_add(&out, p + k, 1); k++; }
            }
            bos_ws_seen = has;
        }
    }
    flush_bytes(&out, (const uint8_t *)bytes.buf, bytes.n);
    free(bytes.buf);
    if (m->denorm.present && m->denorm.trie) {
        strbuf d = {0};
        normalize(m, &m->denorm, 0, (const uint8_t *)out.buf, out.n, &d);
        free(out.buf);
        out = d;
        if (!out.buf) sb_reserve(&out, 1);
    }
    out.buf[out.n] = '\0';
    if (len) *len = out.n;
    return out.buf;
}

/* ---- model building -------------------------------------------------------- */

static char *view_dup(view v, const char *dflt, size_t *n)
{
    const uint8_t *p = v.n ? v.p : (const uint8_t *)dflt;
    size_t l = v.n ? v.n : strlen(dflt);
    char *s = secap_xmalloc(l + 1, "spm string");
    memcpy(s, p, l);
    s[l] = '\0';
    if (n) *n = l;
    return s;
}

static int byte_of_piece(const uint8_t *p, size_t n)
{
    static const char HEX[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(p, "<0x", 3) || p[5] != '>') return -1;
    const char *h = memchr(HEX, p[3], 16), *l = memchr(HEX, p[4], 16);
    if (!h || !l || !p[3] || !p[4]) return -1;
    return (int)((h - HEX) * 16 + (l - HEX));
}

static void build_norm(secap_spm *m, spm_norm *nz, const raw_norm *rn, const char *what, int ws_suffix)
{
    memset(nz, 0, sizeof *nz);
    nz->present = rn->present;
    nz->add_dummy_prefix = rn->add_dummy_prefix;
    nz->remove_extra_ws = rn->remove_extra_ws;
    nz->escape_ws = rn->escape_ws;
    nz->ws_suffix = ws_suffix;
    snprintf(nz->name, sizeof nz->name, "%s", what);
    if (!rn->charsmap.n) return;
    /* <trie size: u32 LE><double array: u32 LE units><replacement strings> */
    const uint8_t *b = rn->charsmap.p;
    size_t n = rn->charsmap.n;
    nz->charsmap_bytes = n;
    if (n <= 4)
        spm_fail(m->file, "byte offset %zu, %s.precompiled_charsmap: %zu bytes is too short for a character map "
                 "(hint: the file is corrupt)", rn->charsmap_off, what, n);
    uint32_t ts = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (ts > n - 4)
        spm_fail(m->file, "byte offset %zu, %s.precompiled_charsmap: trie size %u exceeds the map's %zu bytes "
                 "(hint: the character map is corrupt)", rn->charsmap_off, what, ts, n);
    if (ts == 0 || ts % 4)
        spm_fail(m->file, "byte offset %zu, %s.precompiled_charsmap: trie size %u is not a positive multiple of 4 "
                 "(hint: the character map is corrupt)", rn->charsmap_off, what, ts);
    nz->trie_n = ts / 4;
    nz->trie = secap_xmalloc(ts, "spm charsmap trie");
    for (size_t k = 0; k < nz->trie_n; k++) {
        const uint8_t *u = b + 4 + 4 * k;
        nz->trie[k] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    nz->strs_n = n - 4 - ts;
    nz->strs = secap_xmalloc(nz->strs_n + 1, "spm charsmap strings");
    memcpy(nz->strs, b + 4 + ts, nz->strs_n);
    nz->strs[nz->strs_n] = '\0';
}

static int cmp_ud(const void *a, const void *b, void *ctx)
{
    const secap_spm *m = ctx;
    int x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint8_t fx = (uint8_t)m->blob[m->off[x]], fy = (uint8_t)m->blob[m->off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (m->plen[x] != m->plen[y]) return m->plen[x] > m->plen[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void self_test(secap_spm *m, const raw_model *rm);

static void free_model(void *m) { secap_spm_free(m); }

static secap_spm *build_model(const raw_model *rm, const char *file)
{
    if (!rm->has_trainer)
        spm_fail(file, "the model has no trainer_spec, so its model_type is protobuf's default, UNIGRAM, which is "
                 "not implemented (hint: %s)", rm->npieces ? "the file looks truncated: sentencepiece writes "
                 "trainer_spec after the pieces" : "not a sentencepiece model?");
    if (rm->ts.model_type != 2)
        spm_fail(file, "trainer_spec.model_type is %s; only sentencepiece's BPE model is implemented "
                 "(hint: LLaMA's tokenizer.model is BPE; train with --model_type=bpe)", MODEL_NAME[rm->ts.model_type]);
    if (rm->npieces == 0) spm_fail(file, "the model has no pieces (hint: not a sentencepiece model?)");
    if (rm->npieces > INT32_MAX / 2) spm_fail(file, "%zu pieces is more than supported", rm->npieces);

    secap_spm *m = secap_xcalloc(1, sizeof *m, "spm model");
    secap_cleanup cl;   /* a refused model is freed (self_test frees it itself) */
    secap_cleanup_push(&cl, free_model, m);
    m->file = secap_xstrdup(file, "spm file name");
    m->n = (int)rm->npieces;
    size_t total = 0;
    for (size_t i = 0; i < rm->npieces; i++) total += rm->pieces[i].piece.n + 1;
    if (total > UINT32_MAX) spm_fail(file, "piece strings of %zu bytes are more than supported", total);
    m->blob = secap_xmalloc(total, "spm pieces");
    m->off = secap_xmalloc(rm->npieces * sizeof *m->off, "spm pieces");
    m->plen = secap_xmalloc(rm->npieces * sizeof *m->plen, "spm pieces");
    m->score = secap_xmalloc(rm->npieces * sizeof *m->score, "spm pieces");
    m->type = secap_xmalloc(rm->npieces, "spm pieces");
    m->canon = secap_xmalloc(rm->npieces * sizeof *m->canon, "spm pieces");
    m->byte_val = secap_xcalloc(rm->npieces, 1, "spm pieces");
    size_t at = 0;
    for (size_t i = 0; i < rm->npieces; i++) {
        const raw_piece *p = &rm->pieces[i];
        m->off[i] = (uint32_t)at;
        m->plen[i] = (uint32_t)p->piece.n;
        if (p->piece.n) memcpy(m->blob + at, p->piece.p, p->piece.n);
        m->blob[at + p->piece.n] = '\0';
        at += p->piece.n + 1;
        m->score[i] = p->score;
        m->type[i] = (uint8_t)p->type;
    }
    m->byte_fallback = rm->ts.byte_fallback;
    m->ts = rm->ts;
    m->ts.unk_piece.p = m->ts.bos_piece.p = m->ts.eos_piece.p = m->ts.pad_piece.p = m->ts.unk_surface.p = NULL;

    /* ModelInterface::InitializePieces, same checks in the same order. */
    size_t nnormal = 0;
    for (int i = 0; i < m->n; i++) {
        int t = m->type[i];
        nnormal += t == SECAP_SPM_NORMAL || t == SECAP_SPM_USER_DEFINED || t == SECAP_SPM_UNUSED;
    }
    map_init(&m->normal, nnormal);
    map_init(&m->reserved, (size_t)m->n - nnormal);
    m->unk = -1;
    for (int b = 0; b < 256; b++) m->byte_id[b] = -1;
    int n_ud = 0;
    for (int i = 0; i < m->n; i++) {
        const raw_piece *p = &rm->pieces[i];
        int t = m->type[i];
        if (!p->piece.n)
            spm_fail(file, "byte offset %zu, pieces[%d]: empty piece string (hint: pieces must not be empty; the "
                     "file is corrupt)", p->off, i);
        if (isnan(p->score))
            spm_fail(file, "byte offset %zu, pieces[%d] \"%s\": score is NaN, so merges have no order (hint: the "
                     "file is corrupt)", p->off, i, m->blob + m->off[i]);
        int normal = t == SECAP_SPM_NORMAL || t == SECAP_SPM_USER_DEFINED || t == SECAP_SPM_UNUSED;
        int dup = map_insert(m, normal ? &m->normal : &m->reserved, i);
        if (dup >= 0)
            spm_fail(file, "byte offset %zu, pieces[%d] \"%s\" is already defined as pieces[%d] (hint: piece strings "
                     "must be unique)", p->off, i, m->blob + m->off[i], dup);
        if (t == SECAP_SPM_USER_DEFINED) n_ud++;
        if (t == SECAP_SPM_UNUSED) m->has_unused = 1;
        if (t == SECAP_SPM_NORMAL || t == SECAP_SPM_USER_DEFINED || t == SECAP_SPM_UNUSED)
            if (m->plen[i] > m->max_normal_len) m->max_normal_len = m->plen[i];
        if (t == SECAP_SPM_UNKNOWN) {
            if (m->unk >= 0)
                spm_fail(file, "byte offset %zu, pieces[%d] \"%s\": a second UNKNOWN piece (pieces[%d] is one) "
                         "(hint: a model has exactly one <unk>)", p->off, i, m->blob + m->off[i], m->unk);
            m->unk = i;
        }
        if (t == SECAP_SPM_BYTE) {
            if (!m->byte_fallback)
                spm_fail(file, "byte offset %zu, pieces[%d] \"%s\" is a BYTE piece although "
                         "trainer_spec.byte_fallback is false (hint: the file is corrupt)",
                         p->off, i, m->blob + m->off[i]);
            int b = byte_of_piece(p->piece.p, p->piece.n);
            if (b < 0)
                spm_fail(file, "byte offset %zu, pieces[%d] \"%s\": a BYTE piece must read <0xNN> with two "
                         "upper-case hex digits", p->off, i, m->blob + m->off[i]);
            m->byte_id[b] = i;
            m->byte_val[i] = (uint8_t)b;
        }
        m->counts[t]++;
    }
    if (m->unk < 0) spm_fail(file, "no piece has type UNKNOWN (hint: every model needs an <unk> piece)");
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (m->byte_id[b] < 0)
                spm_fail(file, "trainer_spec.byte_fallback is true but there is no byte piece <0x%02X> "
                         "(hint: byte fallback needs all 256)", b);
    for (int i = 0; i < m->n; i++)
        m->canon[i] = piece_to_id_slow(m, (const uint8_t *)m->blob + m->off[i], m->plen[i]);
    map_init(&m->lookup, (size_t)m->n);
    for (int i = 0; i < m->n; i++)
        if (m->canon[i] == i) map_insert(m, &m->lookup, i);

    /* User-defined symbols: grouped by first byte, longest first. */
    m->n_ud = n_ud;
    m->ud = secap_xmalloc((size_t)(n_ud ? n_ud : 1) * sizeof *m->ud, "spm user-defined symbols");
    n_ud = 0;
    for (int i = 0; i < m->n; i++)
        if (m->type[i] == SECAP_SPM_USER_DEFINED) m->ud[n_ud++] = i;
    qsort_r(m->ud, (size_t)n_ud, sizeof *m->ud, cmp_ud, m);
    int k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < n_ud && (uint8_t)m->blob[m->off[m->ud[k]]] < b) k++;
        m->ud_lo[b] = b == 256 ? n_ud : k;
    }

    /* Special ids (SentencePieceProcessor::bos_id and friends). */
    size_t l;
    char *s;
    s = view_dup(rm->ts.bos_piece, "<s>", &l);
    m->bos = piece_to_id(m, (const uint8_t *)s, l);
    if (m->type[m->bos] != SECAP_SPM_CONTROL) m->bos = -1;
    free(s);
    s = view_dup(rm->ts.eos_piece, "</s>", &l);
    m->eos = piece_to_id(m, (const uint8_t *)s, l);
    if (m->type[m->eos] != SECAP_SPM_CONTROL) m->eos = -1;
    free(s);
    s = view_dup(rm->ts.pad_piece, "<pad>", &l);
    m->pad = piece_to_id(m, (const uint8_t *)s, l);
    if (m->type[m->pad] != SECAP_SPM_CONTROL) m->pad = -1;
    free(s);
    s = view_dup(rm->ts.unk_piece, "<unk>", &l);
    m->unk_api = piece_to_id(m, (const uint8_t *)s, l);
    if (m->type[m->unk_api] != SECAP_SPM_UNKNOWN) m->unk_api = -1;
    free(s);
    if (rm->ts.has_unk_surface) m->unk_surface = view_dup(rm->ts.unk_surface, "", &m->unk_surface_n);
    else m->unk_surface = view_dup((view){NULL, 0}, " \xE2\x81\x87 ", &m->unk_surface_n);

    build_norm(m, &m->norm, &rm->ns, "normalizer_spec", rm->ts.treat_ws_suffix);
    m->norm.present = 1;
    if (rm->dns.present) build_norm(m, &m->denorm, &rm->dns, "denormalizer_spec", 0);
    if (rm->ns.name.n) snprintf(m->norm.name, sizeof m->norm.name, "%.*s", (int)rm->ns.name.n, rm->ns.name.p);
    else snprintf(m->norm.name, sizeof m->norm.name, "(unnamed)");
    secap_cleanup_pop(&cl);
    self_test(m, rm);
    return m;
}

static void self_test(secap_spm *m, const raw_model *rm)
{
    if (!rm->nsamples) return;
    secap_spm_scratch *s = secap_spm_scratch_new();
    strbuf got = {0};
    for (size_t k = 0; k < rm->nsamples; k++) {
        const raw_sample *smp = &rm->samples[k];
        s->want_pieces = 1;
        s->ids_n = 0;
        encode_core(m, smp->input.n ? (const char *)smp->input.p : "", smp->input.n, s);
        got.n = 0;
        sb_reserve(&got, 1);
        for (size_t i = 0; i < s->ids_n; i++) {
            if (i) sb_add(&got, " ", 1);
            if (s->plen[i]) sb_add(&got, s->norm + s->pstart[i], s->plen[i]);
            else sb_add(&got, m->blob + m->off[s->ids[i]], m->plen[s->ids[i]]);
        }
        got.buf[got.n] = '\0';
        if (got.n != smp->expected.n || (got.n && memcmp(got.buf, smp->expected.p, got.n))) {
            char in[200], want[200];
            snprintf(in, sizeof in, "%.*s", (int)(smp->input.n < 150 ? smp->input.n : 150), (const char *)smp->input.p);
            snprintf(want, sizeof want, "%.*s", (int)(smp->expected.n < 150 ? smp->expected.n : 150),
                     (const char *)smp->expected.p);
            char gotc[200];
            snprintf(gotc, sizeof gotc, "%.150s", got.buf);
            free(got.buf);
            secap_spm_scratch_free(s);
            char file[512];
            snprintf(file, sizeof file, "%s", m->file);
            secap_spm_free(m);
            spm_fail(file, "self_test_data sample %zu: \"%s\" encodes to \"%s\" but the model expects \"%s\" "
                     "(hint: the model relies on rules this tokenizer does not apply; refused rather than "
                     "tokenised differently)", k, in, gotc, want);
        }
    }
    free(got.buf);
    secap_spm_scratch_free(s);
}

static void free_raw(void *arg)
{
    raw_model *rm = arg;
    free(rm->pieces);
    free(rm->samples);
}

secap_spm *secap_spm_from_memory(const void *data, size_t size, const char *name)
{
    if (!name) name = "(memory)";
    if (!data && size) spm_fail(name, "NULL data");
    if (size == 0) spm_fail(name, "empty model file (hint: not a sentencepiece model, or a failed download)");
    raw_model rm = {0};   /* realloc'd arrays, released on every exit */
    secap_cleanup cl;
    secap_cleanup_push(&cl, free_raw, &rm);
    parse_model(data, size, name, &rm);
    secap_spm *m = build_model(&rm, name);
    secap_cleanup_pop(&cl);
    free_raw(&rm);
    return m;
}

secap_spm *secap_spm_load(const char *path)
{
    if (!path) secap_fatal("spm: model path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) spm_fail(path, "cannot open: %s (hint: --model takes a sentencepiece tokenizer.model)", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        spm_fail(path, "not a regular file");
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) { fclose(f); spm_fail(path, "out of memory for %zu bytes", size); }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    int err = ferror(f);
    fclose(f);
    if (got != size || err) { free(buf); spm_fail(path, "read %zu of %zu bytes", got, size); }
    secap_cleanup cl;
    secap_cleanup_push(&cl, free, buf);
    secap_spm *m = secap_spm_from_memory(buf, size, path);
    secap_cleanup_pop(&cl);
    free(buf);
    return m;
}

void secap_spm_free(secap_spm *m)
{
    if (!m) return;
    free(m->file); free(m->blob); free(m->off); free(m->plen); free(m->score); free(m->type);
    free(m->canon); free(m->byte_val);
    free(m->normal.slot); free(m->normal.tag); free(m->reserved.slot); free(m->reserved.tag);
    free(m->lookup.slot); free(m->lookup.tag);
    free(m->ud); free(m->unk_surface);
    free(m->norm.trie); free(m->norm.strs); free(m->denorm.trie); free(m->denorm.strs);
    free(m);
}

/* ---- accessors -------------------------------------------------------------- */

static void check_id(const secap_spm *m, int id, const char *fn)
{
    if (!m) secap_fatal("%s: NULL model", fn);
    if (id < 0 || id >= m->n)
        spm_fail(m->file, "%s: id %d is outside the vocabulary [0, %d)", fn, id, m->n);
}

int secap_spm_vocab_size(const secap_spm *m) { return m->n; }
int secap_spm_bos_id(const secap_spm *m) { return m->bos; }
int secap_spm_eos_id(const secap_spm *m) { return m->eos; }
int secap_spm_unk_id(const secap_spm *m) { return m->unk_api; }
int secap_spm_pad_id(const secap_spm *m) { return m->pad; }

const char *secap_spm_piece(const secap_spm *m, int id, size_t *len)
{
    check_id(m, id, "spm_piece");
    if (len) *len = m->plen[id];
    return m->blob + m->off[id];
}

float secap_spm_score(const secap_spm *m, int id)
{
    check_id(m, id, "spm_score");
    return m->score[id];
}

secap_spm_type secap_spm_piece_type(const secap_spm *m, int id)
{
    check_id(m, id, "spm_piece_type");
    return (secap_spm_type)m->type[id];
}

int secap_spm_piece_id(const secap_spm *m, const char *piece, size_t len)
{
    return piece_to_id(m, (const uint8_t *)piece, len);
}

void secap_spm_describe(const secap_spm *m, FILE *f)
{
    const raw_trainer *t = &m->ts;
    fprintf(f, "model: %s\n", m->file);
    fprintf(f, "type: BPE, %d pieces (normal %d, user-defined %d, control %d, unknown %d, byte %d, unused %d)\n",
            m->n, m->counts[1], m->counts[4], m->counts[3], m->counts[2], m->counts[6], m->counts[5]);
    fprintf(f, "special ids: unk %d, bos %d, eos %d, pad %d\n", m->unk_api, m->bos, m->eos, m->pad);
    fprintf(f, "normalizer: %s%s, add_dummy_prefix %d, remove_extra_whitespaces %d, escape_whitespaces %d\n",
            m->norm.name, m->norm.trie ? " (precompiled charsmap)" : " (identity: no charsmap)",
            m->norm.add_dummy_prefix, m->norm.remove_extra_ws, m->norm.escape_ws);
    if (m->denorm.present)
        fprintf(f, "denormalizer: %s\n", m->denorm.trie ? "precompiled charsmap" : "none (no charsmap)");
    fprintf(f, "trainer: byte_fallback %d, split_digits %d, treat_whitespace_as_suffix %d, "
            "allow_whitespace_only_pieces %d, max_sentencepiece_length %d, vocab_size %d\n",
            t->byte_fallback, t->split_digits, t->treat_ws_suffix, t->allow_ws_only, t->max_piece_len,
            t->vocab_size);
}
