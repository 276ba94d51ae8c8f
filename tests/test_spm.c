/* tests/test_spm.c - the SentencePiece BPE tokenizer against libsentencepiece.
 *
 * tests/ref_spm.py trains models with sentencepiece's trainer (and writes a
 * few by hand) and records, for each, what python3-sentencepiece gives:
 * every piece (string, type, score), the ids of each test line (plain and
 * with BOS/EOS), and the text of id sequences.  Every record must match
 * exactly.  Models with identity normalisation and the dummy prefix must also
 * round-trip their valid UTF-8 lines.  The rest checks refusals: model types
 * other than BPE, self-test failures, and malformed files built here
 * (truncated at every byte, bad wire types, overlong varints, bad enums,
 * NaN scores, duplicate/empty/missing pieces, broken byte pieces and
 * character maps), each with a message naming the file and the fault.
 */
#include "testutil.h"

#include <stdint.h>

#include "secap/spm.h"

/* ---- small helpers -------------------------------------------------------- */

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s (run tests/ref_spm.py %s first)", path, getenv("SECAP_REF_DIR"));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    b[sz] = '\0';
    *n = (size_t)sz;
    return b;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes hex in place; returns the byte count. */
static size_t unhex(char *s)
{
    size_t n = strlen(s), k = 0;
    assert_true(n % 2 == 0);
    for (size_t i = 0; i < n; i += 2) {
        int h = hexval(s[i]), l = hexval(s[i + 1]);
        assert_true(h >= 0 && l >= 0);
        s[k++] = (char)(h * 16 + l);
    }
    return k;
}

static size_t parse_ids(const char *s, int32_t *out, size_t cap)
{
    size_t k = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        assert_true(end != s);
        assert_true(k < cap);
        out[k++] = (int32_t)v;
        s = end;
        while (*s == ' ') s++;
    }
    return k;
}

/* Independent strict UTF-8 check (RFC 3629). */
static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!l || i + l > n) return 0;
        uint32_t cp = l == 1 ? c : l == 2 ? (c & 31) : l == 3 ? (c & 15) : (c & 7);
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 63);
        }
        if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp < 0xE000))
            return 0;
        i += l;
    }
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* ---- parity with libsentencepiece ----------------------------------------- */

enum { MAXIDS = 1 << 16 };

static void check_ref(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "spm_%s.model", name);
    secap_spm *m = secap_spm_load(tu_ref_path(path));
    snprintf(path, sizeof path, "spm_%s.ref", name);
    size_t size;
    char *text = read_all(tu_ref_path(path), &size);
    secap_spm_scratch *s = secap_spm_scratch_new();
    int32_t *want = malloc(MAXIDS * sizeof *want);
    assert_non_null(want);
    int roundtrip = 0;
    size_t n_enc = 0, n_encbe = 0, n_dec = 0, n_piece = 0, n_rt = 0, n_fail = 0, bad = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *f[8] = {0};
        int nf = 0;
        for (char *p = line; nf < 8;) {
            f[nf++] = p;
            char *t = strchr(p, '\t');
            if (!t) break;
            *t = '\0';
            p = t + 1;
        }
        if (!strcmp(f[0], "meta")) {
            assert_int_equal(nf, 7);
            assert_int_equal(secap_spm_vocab_size(m), atoi(f[1]));
            assert_int_equal(secap_spm_bos_id(m), atoi(f[2]));
            assert_int_equal(secap_spm_eos_id(m), atoi(f[3]));
            assert_int_equal(secap_spm_unk_id(m), atoi(f[4]));
            assert_int_equal(secap_spm_pad_id(m), atoi(f[5]));
            roundtrip = atoi(f[6]);
        } else if (!strcmp(f[0], "piece")) {
            assert_int_equal(nf, 6);
            int id = atoi(f[1]);
            size_t pl, wl = unhex(f[4]);
            const char *p = secap_spm_piece(m, id, &pl);
            if (pl != wl || memcmp(p, f[4], wl)) fail_msg("%s: piece %d is \"%s\", sentencepiece \"%.*s\"", name, id, p, (int)wl, f[4]);
            /* python cannot tell USER_DEFINED from NORMAL: both are 1 there */
            int ty = secap_spm_piece_type(m, id), want_ty = atoi(f[2]);
            if (!(ty == want_ty || (want_ty == 1 && ty == SECAP_SPM_USER_DEFINED)))
                fail_msg("%s: piece %d has type %d, sentencepiece %d", name, id, ty, want_ty);
            /* python prints the float32 score widened to double, exactly */
            if (secap_spm_score(m, id) != (float)strtod(f[3], NULL))
                fail_msg("%s: piece %d score %.9g, sentencepiece %s", name, id, secap_spm_score(m, id), f[3]);
            assert_int_equal(secap_spm_piece_id(m, p, pl), atoi(f[5])); /* sp.piece_to_id */
            n_piece++;
        } else if (!strcmp(f[0], "enc") || !strcmp(f[0], "encbe")) {
            assert_int_equal(nf, 3);
            int be = f[0][3] == 'b';
            size_t len = unhex(f[1]);
            size_t nw = parse_ids(f[2], want, MAXIDS);
            const int32_t *got;
            size_t ng = secap_spm_encode(m, f[1], len, be ? SECAP_SPM_ADD_BOS | SECAP_SPM_ADD_EOS : 0, s, &got);
            if (ng != nw || memcmp(got, want, nw * sizeof *want)) {
                size_t k = 0;
                while (k < ng && k < nw && got[k] == want[k]) k++;
                fprintf(stderr, "  %s line %zu: %zu-byte input \"%.60s\" differs at id %zu\n", name, lineno, len,
                        f[1], k);
                print_ids("C", got + (k > 5 ? k - 5 : 0), ng - (k > 5 ? k - 5 : 0));
                print_ids("sentencepiece", want + (k > 5 ? k - 5 : 0), nw - (k > 5 ? k - 5 : 0));
                bad++;
            }
            if (!be && roundtrip && valid_utf8((const unsigned char *)f[1], len) &&
                !memmem(f[1], len, "\xe2\x96\x81", 3)) {
                size_t dl;
                char *back = secap_spm_decode(m, got, ng, &dl);
                if (dl != len || memcmp(back, f[1], len)) {
                    fprintf(stderr, "  %s line %zu: decode(encode(x)) != x for \"%.60s\"\n", name, lineno, f[1]);
                    bad++;
                }
                free(back);
                n_rt++;
            }
            if (be) n_encbe++; else n_enc++;
        } else if (!strcmp(f[0], "encfail")) {
            assert_int_equal(nf, 2);
            size_t len = unhex(f[1]);
            const int32_t *got;
            EXPECT_FATAL(secap_spm_encode(m, f[1], len, 0, s, &got), "is a CONTROL piece");
            n_fail++;
        } else if (!strcmp(f[0], "dec")) {
            assert_int_equal(nf, 3);
            size_t nw = parse_ids(f[1], want, MAXIDS);
            size_t wl = unhex(f[2]), gl;
            char *got = secap_spm_decode(m, want, nw, &gl);
            if (gl != wl || memcmp(got, f[2], wl)) {
                fprintf(stderr, "  %s line %zu: decode gives \"%.80s\" (%zu bytes), sentencepiece \"%.*s\" (%zu)\n",
                        name, lineno, got, gl, (int)(wl < 80 ? wl : 80), f[2], wl);
                print_ids("ids", want, nw);
                bad++;
            }
            free(got);
            n_dec++;
        } else {
            fail_msg("%s line %zu: unknown record \"%s\"", path, lineno, f[0]);
        }
    }
    fprintf(stderr, "  %s: %zu pieces, %zu lines encoded, %zu with BOS/EOS, %zu refused, %zu decoded, %zu round trips\n",
            name, n_piece, n_enc, n_encbe, n_fail, n_dec, n_rt);
    assert_true(n_piece > 0 && n_enc > 60 && n_dec > 100);
    if (roundtrip) assert_true(n_rt > 100);
    if (bad) fail_msg("%s: %zu records differ from sentencepiece", name, bad);
    free(want);
    free(text);
    secap_spm_scratch_free(s);
    secap_spm_free(m);
}

static void test_ref(void **state) { check_ref((const char *)*state); }

static void test_refusals(void **state)
{
    (void)state;
    size_t size;
    char *text = read_all(tu_ref_path("spm_refuse.txt"), &size);
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        char path[4200];
        snprintf(path, sizeof path, "%s", tu_ref_path(line));
        EXPECT_FATAL(secap_spm_load(path), tab + 1);
        assert_non_null(strstr(secap_last_error(), path)); /* names the file */
        fprintf(stderr, "  refused: %s\n", secap_last_error());
        n++;
    }
    assert_int_equal(n, 4);
    free(text);
}

/* ---- a protobuf writer for hand-made models ------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        put(b, &c, 1);
    } while (v);
}

static void put_len(buf *b, int num, const void *p, size_t n)
{
    put_varint(b, (uint64_t)num << 3 | 2);
    put_varint(b, n);
    put(b, p, n);
}

static void put_int(buf *b, int num, int64_t v)
{
    put_varint(b, (uint64_t)num << 3);
    put_varint(b, (uint64_t)v);
}

typedef struct {
    const char *s;
    float score;
    int type;
} tpiece;

static void put_piece(buf *b, const tpiece *t)
{
    buf m = {0};
    put_len(&m, 1, t->s, strlen(t->s));
    put_varint(&m, 2 << 3 | 5);
    put(&m, &t->score, 4); /* little-endian host */
    if (t->type != 1) put_int(&m, 3, t->type);
    put_len(b, 1, m.p, m.n);
    free(m.p);
}

static const tpiece BASE[] = {
    {"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}, {"\xe2\x96\x81", -1, 1},
    {"a", -2, 1}, {"b", -3, 1}, {"ab", -4, 1}, {"\xe2\x96\x81" "a", -5, 1},
};
#define NBASE (sizeof BASE / sizeof *BASE)

/* pieces + trainer_spec{model_type: BPE, extra} + normalizer_spec{identity, extra} + tail */
static buf make_model(const tpiece *pieces, size_t n, const buf *trainer_extra, const buf *norm_extra,
                      const buf *tail)
{
    buf b = {0}, t = {0}, z = {0};
    for (size_t i = 0; i < n; i++) put_piece(&b, &pieces[i]);
    put_int(&t, 3, 2);
    if (trainer_extra) put(&t, trainer_extra->p, trainer_extra->n);
    put_len(&b, 2, t.p, t.n);
    put_len(&z, 1, "identity", 8);
    if (norm_extra) put(&z, norm_extra->p, norm_extra->n);
    put_len(&b, 3, z.p, z.n);
    if (tail) put(&b, tail->p, tail->n);
    free(t.p);
    free(z.p);
    return b;
}

static secap_spm *load_buf(const buf *b) { return secap_spm_from_memory(b->p, b->n, "hand.model"); }

static void test_hand_model(void **state)
{
    (void)state;
    buf b = make_model(BASE, NBASE, NULL, NULL, NULL);
    secap_spm *m = load_buf(&b);
    secap_spm_scratch *s = secap_spm_scratch_new();
    size_t nl;
    const char *norm = secap_spm_normalize(m, "ab a", 4, s, &nl);
    assert_string_equal(norm, "\xe2\x96\x81" "ab" "\xe2\x96\x81" "a");
    /* "▁ab▁a": "ab" (-4) merges first, then "▁a" (-5) on the right; "▁" + "ab"
     * is no piece, so the first ▁ stays alone */
    const int32_t *ids;
    size_t k = secap_spm_encode(m, "ab a", 4, SECAP_SPM_ADD_BOS | SECAP_SPM_ADD_EOS, s, &ids);
    const int32_t want[] = {1, 3, 6, 7, 2};
    assert_int_equal(k, 5);
    assert_memory_equal(ids, want, sizeof want);
    /* "c" is no piece: one <unk> for the run "cc", no byte fallback */
    k = secap_spm_encode(m, "acc", 3, 0, s, &ids);
    const int32_t want2[] = {7, 0};
    assert_int_equal(k, 2);
    assert_memory_equal(ids, want2, sizeof want2);
    size_t dl;
    char *d = secap_spm_decode(m, ids, k, &dl);
    assert_string_equal(d, "a \xe2\x81\x87 "); /* unk_surface " ⁇ " */
    free(d);
    EXPECT_FATAL(secap_spm_decode(m, (const int32_t[]){3, 8}, 2, NULL), "id 8 at position 1 is outside the vocabulary");
    EXPECT_FATAL(secap_spm_piece(m, -1, NULL), "outside the vocabulary");
    secap_spm_scratch_free(s);
    secap_spm_free(m);
    free(b.p);
}

/* Loads the bytes expecting a fatal error containing `what`. */
#define EXPECT_BAD(bytes, what)                                                                                      \
    do {                                                                                                             \
        buf bb_ = (bytes);                                                                                           \
        EXPECT_FATAL(load_buf(&bb_), what);                                                                          \
        assert_non_null(strstr(secap_last_error(), "hand.model"));                                                   \
        fprintf(stderr, "  %s\n", secap_last_error());                                                               \
        free(bb_.p);                                                                                                 \
    } while (0)

static buf raw(const void *p, size_t n)
{
    buf b = {0};
    put(&b, p, n);
    return b;
}

#define RESET(b) do { free((b).p); (b) = (buf){0}; } while (0)

static void test_malformed(void **state)
{
    (void)state;
    buf ex = {0};

    EXPECT_FATAL(secap_spm_load("/nonexistent/tokenizer.model"), "cannot open");
    EXPECT_FATAL(secap_spm_load("/tmp"), "not a regular file");
    EXPECT_FATAL(secap_spm_from_memory("", 0, "hand.model"), "empty model file");

    /* wire-level faults */
    ex = raw("\x4b", 1); /* field 9, wire type 3 (group) */
    EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "wire type 3");
    RESET(ex);
    ex = raw("\x4e\x00", 2); /* field 9, wire type 6 */
    EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "wire type 6");
    RESET(ex);
    ex = raw("\x48\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12); /* varint of 11 bytes */
    EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "varint longer");
    RESET(ex);
    ex = raw("\x0a\xe8\x07\x0a\x01", 5); /* pieces: length 1000, 2 bytes there */
    EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "length 1000 runs past the end");
    RESET(ex);
    ex = raw("\x00\x01", 2); /* field number 0 */
    EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "field number 0");
    RESET(ex);
    ex = raw("\x10\x01", 2); /* trainer_spec (2) as a varint */
    EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "trainer_spec: wire type 0 (varint), expected 2");
    RESET(ex);
    put_varint(&ex, 35 << 3 | 2); /* byte_fallback as a string */
    put_varint(&ex, 1);
    put(&ex, "x", 1);
    EXPECT_BAD(make_model(BASE, NBASE, &ex, NULL, NULL), "trainer_spec field 35");
    RESET(ex);

    /* piece-level faults */
    tpiece p[NBASE + 2];
    memcpy(p, BASE, sizeof BASE);
    p[5].type = 9;
    EXPECT_BAD(make_model(p, NBASE, NULL, NULL, NULL), "pieces[5].type: unknown piece type 9");
    memcpy(p, BASE, sizeof BASE);
    p[6].score = NAN;
    EXPECT_BAD(make_model(p, NBASE, NULL, NULL, NULL), "pieces[6] \"ab\": score is NaN");
    memcpy(p, BASE, sizeof BASE);
    p[NBASE] = (tpiece){"ab", -9, 1};
    EXPECT_BAD(make_model(p, NBASE + 1, NULL, NULL, NULL), "pieces[8] \"ab\" is already defined as pieces[6]");
    p[NBASE] = (tpiece){"ab", -9, 4}; /* USER_DEFINED shares the map with NORMAL */
    EXPECT_BAD(make_model(p, NBASE + 1, NULL, NULL, NULL), "already defined");
    p[NBASE] = (tpiece){"ab", 0, 3};  /* CONTROL lives in the other map: allowed */
    {
        buf ok = make_model(p, NBASE + 1, NULL, NULL, NULL);
        secap_spm *m = load_buf(&ok);
        assert_int_equal(secap_spm_piece_id(m, "ab", 2), 8); /* reserved pieces are looked up first */
        secap_spm_free(m);
        free(ok.p);
    }
    p[NBASE] = (tpiece){"", -9, 1};
    EXPECT_BAD(make_model(p, NBASE + 1, NULL, NULL, NULL), "pieces[8]: empty piece string");
    p[NBASE] = (tpiece){"<unk2>", 0, 2};
    EXPECT_BAD(make_model(p, NBASE + 1, NULL, NULL, NULL), "a second UNKNOWN piece");
    EXPECT_BAD(make_model(BASE + 1, NBASE - 1, NULL, NULL, NULL), "no piece has type UNKNOWN");
    p[NBASE] = (tpiece){"<0x41>", 0, 6};
    EXPECT_BAD(make_model(p, NBASE + 1, NULL, NULL, NULL), "byte_fallback is false");
    put_int(&ex, 35, 1); /* byte_fallback = true */
    EXPECT_BAD(make_model(p, NBASE + 1, &ex, NULL, NULL), "no byte piece <0x00>");
    p[NBASE] = (tpiece){"<0x4g>", 0, 6};
    EXPECT_BAD(make_model(p, NBASE + 1, &ex, NULL, NULL), "<0xNN>");
    p[NBASE] = (tpiece){"<0x4a>", 0, 6};
    EXPECT_BAD(make_model(p, NBASE + 1, &ex, NULL, NULL), "<0xNN>");
    RESET(ex);

    /* model types */
    put_int(&ex, 3, 1);
    EXPECT_BAD(make_model(BASE, NBASE, &ex, NULL, NULL), "model_type is UNIGRAM");
    RESET(ex);
    put_int(&ex, 3, 7);
    EXPECT_BAD(make_model(BASE, NBASE, &ex, NULL, NULL), "unknown model type 7");
    RESET(ex);
    put_int(&ex, 4, (int64_t)1 << 40);
    EXPECT_BAD(make_model(BASE, NBASE, &ex, NULL, NULL), "does not fit an int32");
    RESET(ex);
    {   /* no trainer_spec at all: protobuf's default model type, UNIGRAM */
        buf b = {0};
        for (size_t i = 0; i < NBASE; i++) put_piece(&b, &BASE[i]);
        EXPECT_BAD(b, "has no trainer_spec");
    }

    /* character maps: <u32 trie bytes><units><strings> */
    {
        const uint8_t big[] = {0xff, 0, 0, 0, 1, 2, 3, 4};
        put_len(&ex, 2, big, sizeof big);
        EXPECT_BAD(make_model(BASE, NBASE, NULL, &ex, NULL), "trie size 255 exceeds");
        RESET(ex);
        put_len(&ex, 2, big, 3);
        EXPECT_BAD(make_model(BASE, NBASE, NULL, &ex, NULL), "too short");
        RESET(ex);
        const uint8_t odd[] = {3, 0, 0, 0, 1, 2, 3, 4};
        put_len(&ex, 2, odd, sizeof odd);
        EXPECT_BAD(make_model(BASE, NBASE, NULL, &ex, NULL), "not a positive multiple of 4");
        RESET(ex);
        /* one unit (offset 0): the child of 'a' is unit 97, outside the trie */
        const uint8_t one[] = {4, 0, 0, 0, 0, 0, 0, 0, 'x', 0};
        put_len(&ex, 2, one, sizeof one);
        buf b = make_model(BASE, NBASE, NULL, &ex, NULL);
        secap_spm *m = load_buf(&b);
        secap_spm_scratch *s = secap_spm_scratch_new();
        const int32_t *ids;
        EXPECT_FATAL(secap_spm_encode(m, "a", 1, 0, s, &ids), "trie index 97 is outside its 1 units");
        secap_spm_scratch_free(s);
        secap_spm_free(m);
        free(b.p);
        RESET(ex);
    }

    /* self-test samples: a matching one loads, a wrong one is refused */
    {
        buf smp = {0}, st = {0};
        put_len(&smp, 1, "ab a", 4);
        put_len(&smp, 2, "\xe2\x96\x81 ab \xe2\x96\x81" "a", 11);
        put_len(&st, 1, smp.p, smp.n);
        put_len(&ex, 4, st.p, st.n);
        buf b = make_model(BASE, NBASE, NULL, NULL, &ex);
        secap_spm_free(load_buf(&b));
        free(b.p);
        RESET(ex);
        free(smp.p); smp = (buf){0};
        free(st.p); st = (buf){0};
        put_len(&smp, 1, "ab a", 4);
        put_len(&smp, 2, "\xe2\x96\x81" "a b \xe2\x96\x81" "a", 11);
        put_len(&st, 1, smp.p, smp.n);
        put_len(&ex, 4, st.p, st.n);
        EXPECT_BAD(make_model(BASE, NBASE, NULL, NULL, &ex), "self_test_data sample 0");
        RESET(ex);
        free(smp.p);
        free(st.p);
    }

    /* BOS/EOS requested from a model without them */
    {
        tpiece q[NBASE];
        memcpy(q, BASE, sizeof BASE);
        q[1].type = 1; /* "<s>" NORMAL: no BOS */
        buf b = make_model(q, NBASE, NULL, NULL, NULL);
        secap_spm *m = load_buf(&b);
        assert_int_equal(secap_spm_bos_id(m), -1);
        assert_int_equal(secap_spm_eos_id(m), 2);
        secap_spm_scratch *s = secap_spm_scratch_new();
        const int32_t *ids;
        EXPECT_FATAL(secap_spm_encode(m, "a", 1, SECAP_SPM_ADD_BOS, s, &ids), "no BOS piece");
        secap_spm_scratch_free(s);
        secap_spm_free(m);
        free(b.p);
    }
}

/* Loads a model from bytes; NULL when it stopped with a fatal error (the
 * message is then secap_last_error()). */
static secap_spm *try_load(const char *data, size_t n, const char *name)
{
    secap_spm *volatile m = NULL;
    secap_set_error_handler(tu_handler, NULL);
    tu_armed = 1;
    if (setjmp(tu_jmp) == 0) m = secap_spm_from_memory(data, n, name);
    tu_armed = 0;
    secap_set_error_handler(NULL, NULL);
    return m;
}

/* Every prefix of a valid model either loads or stops with an error naming
 * the file: no crash, no read past the end (the ASan build checks that). */
static void test_truncated(void **state)
{
    (void)state;
    const char *names[] = {"spm_hand.model", "spm_llama_s.model", "spm_rules.model"};
    for (int k = 0; k < 3; k++) {
        size_t size;
        char *data = read_all(tu_ref_path(names[k]), &size);
        size_t step = size < 2000 ? 1 : size / 1500 + 1, loaded = 0, refused = 0;
        for (size_t cut = 0; cut < size; cut += step) {
            /* an exact-size copy so that ASan sees any read past the cut */
            char *copy = malloc(cut ? cut : 1);
            memcpy(copy, data, cut);
            secap_spm *m = try_load(copy, cut, "cut.model");
            if (!m) {
                if (!strstr(secap_last_error(), "cut.model")) fail_msg("error without the file name: %s", secap_last_error());
                refused++;
            } else {
                /* a cut between two fields is a valid, smaller protobuf */
                secap_spm_scratch *s = secap_spm_scratch_new();
                const int32_t *ids;
                secap_spm_encode(m, "ab 12 中文", 12, 0, s, &ids);
                secap_spm_scratch_free(s);
                secap_spm_free(m);
                loaded++;
            }
            free(copy);
        }
        fprintf(stderr, "  %s: %zu prefixes refused, %zu loaded\n", names[k], refused, loaded);
        assert_true(refused > 0);
        /* the whole file minus its last byte cuts its last field */
        char *copy = malloc(size - 1);
        memcpy(copy, data, size - 1);
        assert_null(try_load(copy, size - 1, "cut.model"));
        if (!strstr(secap_last_error(), "byte offset")) fail_msg("no offset in: %s", secap_last_error());
        free(copy);
        free(data);
    }
}

/* Corrupting single bytes never crashes either. */
static void test_corrupted(void **state)
{
    (void)state;
    size_t size;
    char *data = read_all(tu_ref_path("spm_llama_s.model"), &size);
    uint64_t x = 88172645463325252ull;
    int refused = 0, loaded = 0;
    for (int t = 0; t < 600; t++) {
        char *copy = malloc(size);
        memcpy(copy, data, size);
        for (int k = 0; k < 1 + t % 3; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            copy[x % size] = (char)(x >> 40);
        }
        secap_spm *m = try_load(copy, size, "bad.model");
        if (!m) {
            assert_non_null(strstr(secap_last_error(), "bad.model"));
            refused++;
        } else {
            secap_spm_scratch *s = secap_spm_scratch_new();
            const int32_t *ids;
            size_t n = secap_spm_encode(m, "Hello 世界 123 😀\t x", strlen("Hello 世界 123 😀\t x"), 0, s, &ids);
            for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && ids[i] < secap_spm_vocab_size(m));
            free(secap_spm_decode(m, ids, n, NULL));
            secap_spm_scratch_free(s);
            secap_spm_free(m);
            loaded++;
        }
        free(copy);
    }
    fprintf(stderr, "  600 corrupted copies: %d refused, %d loaded (flipped score or piece bytes)\n", refused, loaded);
    assert_true(refused > 0);
    free(data);
}

/* Threads share one model, each with its own scratch. */
static void test_threads(void **state)
{
    (void)state;
    secap_spm *m = secap_spm_load(tu_ref_path("spm_llama_l.model"));
    size_t size;
    char *text = read_all(tu_ref_path("spm_bench.txt"), &size);
    size_t lines = 0, starts[2001];
    for (size_t i = 0; i < size && lines < 2000; i++)
        if (i == 0 || text[i - 1] == '\n') starts[lines++] = i;
    starts[lines] = starts[lines - 1];
    while (starts[lines] < size && text[starts[lines]] != '\n') starts[lines]++;
    starts[lines]++;
    /* a hash of each line's ids, one thread, then two threads */
    uint64_t one[2000], two[2000];
    secap_spm_scratch *s = secap_spm_scratch_new();
    for (size_t l = 0; l < lines; l++) {
        const int32_t *ids;
        size_t n = secap_spm_encode(m, text + starts[l], starts[l + 1] - starts[l] - 1, 0, s, &ids);
        one[l] = n;
        for (size_t i = 0; i < n; i++) one[l] = one[l] * 1000003u + (uint64_t)ids[i];
    }
    secap_spm_scratch_free(s);
#pragma omp parallel num_threads(2)
    {
        secap_spm_scratch *ts = secap_spm_scratch_new();
#pragma omp for schedule(dynamic, 7)
        for (size_t l = 0; l < lines; l++) {
            const int32_t *ids;
            size_t n = secap_spm_encode(m, text + starts[l], starts[l + 1] - starts[l] - 1, 0, ts, &ids);
            uint64_t h = n;
            for (size_t i = 0; i < n; i++) h = h * 1000003u + (uint64_t)ids[i];
            two[l] = h;
        }
        secap_spm_scratch_free(ts);
    }
    assert_true(lines == 2000);
    assert_memory_equal(one, two, lines * sizeof *one);
    free(text);
    secap_spm_free(m);
}

/* bin/secap-tokenize end to end: the encbe records of llama_m through
 * --bos --eos, then --decode back to the lines. */
static char tool_path[1024];

static void test_tool(void **state)
{
    (void)state;
    if (access(tool_path, X_OK)) fail_msg("%s is missing (hint: make builds it next to bin/tests)", tool_path);
    size_t size;
    char *text = read_all(tu_ref_path("spm_llama_m.ref"), &size);
    FILE *in = fopen(tu_tmp("in.txt"), "wb"), *want = fopen(tu_tmp("want.txt"), "wb");
    assert_non_null(in);
    assert_non_null(want);
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "encbe\t", 6)) continue;
        char *hex = line + 6, *tab = strchr(hex, '\t');
        *tab = '\0';
        size_t len = unhex(hex);
        if (memchr(hex, '\n', len)) continue; /* a line of the program cannot hold one */
        fwrite(hex, 1, len, in);
        fputc('\n', in);
        fprintf(want, "%s\n", tab + 1);
        n++;
    }
    fclose(in);
    fclose(want);
    assert_true(n > 40);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --bos --eos < '%s' > '%s'", tool_path,
             tu_ref_path("spm_llama_m.model"), tu_tmp("in.txt"), tu_tmp("ids.txt"));
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", tu_tmp("ids.txt"), tu_tmp("want.txt"));
    if (system(cmd)) fail_msg("secap-tokenize ids differ from sentencepiece's: diff %s %s", tu_tmp("ids.txt"), tu_tmp("want.txt"));
    snprintf(cmd, sizeof cmd, "'%s' --model '%s' --decode < '%s' > '%s'", tool_path,
             tu_ref_path("spm_llama_m.model"), tu_tmp("ids.txt"), tu_tmp("back.txt"));
    assert_int_equal(system(cmd), 0);
    /* the encbe lines include malformed UTF-8 only past the first 60 lines,
     * and none with U+2581: the decode is the input */
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", tu_tmp("in.txt"), tu_tmp("back.txt"));
    if (system(cmd)) fail_msg("secap-tokenize --decode does not give the input back: diff %s %s", tu_tmp("in.txt"), tu_tmp("back.txt"));
    /* bad ids are an error naming the line */
    snprintf(cmd, sizeof cmd, "printf '1 2\\n5 99999\\n' | '%s' --model '%s' --decode > /dev/null 2> '%s'", tool_path,
             tu_ref_path("spm_llama_m.model"), tu_tmp("err.txt"));
    assert_int_not_equal(system(cmd), 0);
    size_t en;
    char *err = read_all(tu_tmp("err.txt"), &en);
    if (!strstr(err, "line 2: id 99999 is outside the vocabulary")) fail_msg("unexpected error: %s", err);
    free(err);
    free(text);
}

int main(int argc, char **argv)
{
    static const char *refs[] = {"llama_s", "llama_m", "llama_l", "llama_noesc", "nfkc_user", "nfkc_cf_suffix",
                                 "nfkc_unused", "noprefix", "rules", "hand", "hand_noesc"};
    struct CMUnitTest tests[32];
    int n = 0;
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
        struct CMUnitTest t = cmocka_unit_test_prestate(test_ref, (void *)refs[i]);
        static char names[16][48];
        snprintf(names[i], sizeof names[i], "test_ref_%s", refs[i]);
        t.name = names[i];
        tests[n++] = t;
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_refusals);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_hand_model);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_malformed);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_truncated);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_corrupted);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_threads);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_tool);
    /* argv[0] is BIN/tests/test_spm: the program is BIN/secap-tokenize */
    snprintf(tool_path, sizeof tool_path, "%s", argc > 0 ? argv[0] : "bin/tests/test_spm");
    char *slash = strrchr(tool_path, '/');
    if (slash) *slash = '\0';
    slash = strrchr(tool_path, '/');
    if (slash) slash[1] = '\0'; else snprintf(tool_path, sizeof tool_path, "./");
    strncat(tool_path, "secap-tokenize", sizeof tool_path - strlen(tool_path) - 1);
    return _cmocka_run_group_tests("spm", tests, (size_t)n, tu_tmpdir_setup, tu_tmpdir_teardown);
}
