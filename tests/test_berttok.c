/* BERT tokenizer (src/text/berttok.c) against tests/ref_berttok.py, an
 * independent Python implementation of Hugging Face's BertTokenizer, on a
 * bert-base-chinese-style 21128-line vocab: basic tokens, word pieces, ids,
 * model inputs (pairs, truncation) and padded batches for a corpus of mixed
 * Chinese / English / digits / punctuation / emoji / accents / full-width /
 * control characters / missing characters / over-long words and input, both
 * lower-cased and cased; the vocab loader's corners (line ends, repeats,
 * empty lines); every code point Python knows through the basic tokenizer.
 * Then the refusals (bad vocab files, bad text, bad lengths) and the vocab
 * builder (tools/secap-vocab).
 *
 * Fixtures come from tests/ref_berttok.py via tests/run.sh (build/ref).
 */
#include "testutil.h"

#include <stdint.h>

#include "secap/berttok.h"

/* ---- fixture parsing ---------------------------------------------------- */

static FILE *open_ref(const char *name)
{
    const char *p = tu_ref_path(name);
    FILE *f = fopen(p, "rb");
    if (!f) fail_msg("cannot open %s (hint: run /usr/bin/python3 tests/ref_berttok.py build/ref)", p);
    return f;
}

/* Splits line (modified in place) at tabs, keeping empty fields. */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    line[strcspn(line, "\n")] = 0;
    for (char *p = line; n < max;) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

/* Hex to bytes (malloc'ed, NUL-terminated); *len the byte count. */
static char *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        s[i] = (char)v;
    }
    s[n] = 0;
    if (len) *len = n;
    return s;
}

/* Space-separated integers into v (malloc'ed); returns the count. */
static int parse_ints(const char *s, int32_t **v)
{
    int n = 0, cap = 16;
    *v = malloc((size_t)cap * sizeof **v);
    for (const char *p = s; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) break;
        if (n == cap) { cap *= 2; *v = realloc(*v, (size_t)cap * sizeof **v); }
        (*v)[n++] = (int32_t)x;
        p = end;
    }
    return n;
}

/* Space-separated hex tokens as one string "tok1 tok2 ..." (hex kept). */
typedef struct { char *buf; size_t n, cap; int count; } strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->n + n + 2 > b->cap) {
        b->cap = 2 * (b->n + n + 2) + 256;
        b->buf = realloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->n, s, n);
    b->n += n;
    b->buf[b->n] = 0;
}

/* secap_bert_emit collecting tokens as hex, space-separated. */
static void collect_hex(void *ctx, const char *tok, size_t len, int special)
{
    (void)special;
    strbuf *b = ctx;
    if (b->count++) sb_add(b, " ", 1);
    char h[3];
    for (size_t i = 0; i < len; i++) {
        snprintf(h, sizeof h, "%02x", (unsigned char)tok[i]);
        sb_add(b, h, 2);
    }
    if (!b->buf) sb_add(b, "", 0);
}

/* The i-th space-separated hex token of s, decoded (static buffer). */
static const char *nth_token(const char *s, int i)
{
    static char out[1024];
    while (i-- > 0 && s) { s = strchr(s, ' '); if (s) s++; }
    if (!s) return "(none)";
    size_t n = strcspn(s, " ");
    char hex[2048];
    if (n >= sizeof hex) n = sizeof hex - 2;
    memcpy(hex, s, n);
    hex[n] = 0;
    char *t = unhex(hex, NULL);
    snprintf(out, sizeof out, "%s", t);
    free(t);
    return out;
}

static int first_diff_token(const char *a, const char *b)
{
    int k = 0;
    while (*a && *a == *b) { if (*a == ' ') k++; a++; b++; }
    return k;
}

static secap_berttok *g_tok[2];   /* [cased, lower] on the reference vocab */

static int setup(void **st)
{
    if (tu_tmpdir_setup(st)) return -1;
    const char *p = tu_ref_path("berttok/vocab.txt");
    FILE *f = fopen(p, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (hint: run /usr/bin/python3 tests/ref_berttok.py build/ref)\n", p);
        return -1;
    }
    fclose(f);
    g_tok[0] = secap_berttok_load(p, 0);
    g_tok[1] = secap_berttok_load(p, 1);
    return 0;
}

static int teardown(void **st)
{
    secap_berttok_free(g_tok[0]);
    secap_berttok_free(g_tok[1]);
    return tu_tmpdir_teardown(st);
}

/* ---- the reference vocab ------------------------------------------------ */

static void test_vocab_layout(void **st)
{
    (void)st;
    secap_berttok *t = g_tok[1];
    assert_int_equal(secap_berttok_size(t), 21128);
    assert_int_equal(secap_berttok_distinct(t), 21128);
    assert_int_equal(secap_berttok_special_id(t, SECAP_BERT_PAD), 0);
    assert_int_equal(secap_berttok_special_id(t, SECAP_BERT_UNK), 100);
    assert_int_equal(secap_berttok_special_id(t, SECAP_BERT_CLS), 101);
    assert_int_equal(secap_berttok_special_id(t, SECAP_BERT_SEP), 102);
    assert_int_equal(secap_berttok_special_id(t, SECAP_BERT_MASK), 103);
    /* every line's id is its line number, and converts back */
    FILE *f = open_ref("berttok/vocab.txt");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int id = 0, bad = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        line[--n] = 0;
        size_t len;
        const char *back = secap_berttok_token(t, id, &len);
        if (secap_berttok_id(t, line, (size_t)n) != id || len != (size_t)n || memcmp(back, line, len)) {
            if (bad++ < 5) print_error("line %d \"%s\": id %d, token \"%s\"\n", id + 1, line,
                                       secap_berttok_id(t, line, (size_t)n), back);
        }
        id++;
    }
    free(line);
    fclose(f);
    assert_int_equal(id, 21128);
    assert_int_equal(bad, 0);
    assert_int_equal(secap_berttok_id(t, "##aff", 5) >= 0, 1);
    assert_int_equal(secap_berttok_id(t, "aff", 3), -1);
}

/* ---- the corpus --------------------------------------------------------- */

static int compare_ids(const char *name, int lower, const char *what, const secap_berttok *t,
                       const int32_t *got, int ngot, const int32_t *want, int nwant)
{
    int n = ngot < nwant ? ngot : nwant;
    for (int i = 0; i < n; i++) {
        if (got[i] == want[i]) continue;
        print_error("%s (lower %d) %s: position %d: got %d \"%s\", reference %d \"%s\"\n", name, lower, what, i,
                    got[i], secap_berttok_token(t, got[i], NULL), want[i], secap_berttok_token(t, want[i], NULL));
        return 1;
    }
    if (ngot != nwant) {
        print_error("%s (lower %d) %s: %d ids, reference %d\n", name, lower, what, ngot, nwant);
        return 1;
    }
    return 0;
}

static void test_corpus(void **st)
{
    (void)st;
    FILE *f = open_ref("berttok/cases.tsv");
    char *line = NULL;
    size_t cap = 0;
    int cases = 0, failures = 0, unks = 0, truncated = 0, nul_texts = 0;
    while (getline(&line, &cap, f) > 0) {
        char *fl[10] = {0};
        if (split_tabs(line, fl, 10) != 10) fail_msg("cases.tsv: line %d has the wrong field count", cases + 1);
        const char *name = fl[0];
        int lower = atoi(fl[1]), max_len = atoi(fl[4]);
        const secap_berttok *t = g_tok[lower];
        size_t alen;
        char *a = unhex(fl[2], &alen);
        char *b = strcmp(fl[3], "-") ? unhex(fl[3], NULL) : NULL;

        /* basic tokens */
        strbuf got = {0};
        secap_bert_basic(a, alen, lower, name, collect_hex, &got);
        const char *g = got.buf ? got.buf : "";
        if (strcmp(g, fl[5])) {
            int k = first_diff_token(g, fl[5]);
            print_error("%s (lower %d) basic token %d: got \"%s\", reference \"%s\"\n", name, lower, k,
                        nth_token(g, k), nth_token(fl[5], k));
            failures++;
        }
        free(got.buf);

        /* word pieces: ids, and their texts */
        int32_t *ids, *want;
        int n = secap_berttok_tokenize_len(t, a, alen, &ids);
        int nw = parse_ints(fl[7], &want);
        failures += compare_ids(name, lower, "ids", t, ids, n, want, nw);
        strbuf pieces = {0};
        for (int i = 0; i < n; i++) {
            size_t len;
            const char *s = secap_berttok_token(t, ids[i], &len);
            collect_hex(&pieces, s, len, -1);
            unks += ids[i] == secap_berttok_special_id(t, SECAP_BERT_UNK);
        }
        if (strcmp(pieces.buf ? pieces.buf : "", fl[6])) {
            print_error("%s (lower %d): word piece texts differ from the reference\n", name, lower);
            failures++;
        }
        free(pieces.buf);
        free(ids);
        free(want);

        /* model input (encode takes C strings: a text holding NUL bytes is
         * checked above through tokenize_len only) */
        if (strlen(a) != alen) {
            nul_texts++;
            free(a); free(b);
            cases++;
            continue;
        }
        int32_t *enc = malloc((size_t)max_len * sizeof *enc), *types = malloc((size_t)max_len * sizeof *types);
        int32_t *wenc, *wtypes;
        int ne = secap_berttok_encode(t, a, b, max_len, enc, types);
        int nwe = parse_ints(fl[8], &wenc);
        parse_ints(fl[9], &wtypes);
        failures += compare_ids(name, lower, "encoded ids", t, enc, ne, wenc, nwe);
        if (ne == nwe && memcmp(types, wtypes, (size_t)ne * sizeof *types)) {
            print_error("%s (lower %d): token type ids differ\n", name, lower);
            failures++;
        }
        truncated += ne == max_len;
        free(enc); free(types); free(wenc); free(wtypes);
        free(a); free(b);
        cases++;
    }
    free(line);
    fclose(f);
    print_message("%d cases, %d [UNK] pieces, %d truncated inputs\n", cases, unks, truncated);
    assert_true(cases >= 60);
    assert_true(unks > 10);
    assert_true(truncated >= 10);
    assert_int_equal(nul_texts, 2);          /* the "controls" case, in both modes */
    assert_int_equal(failures, 0);
}

static void test_batches(void **st)
{
    (void)st;
    FILE *f = open_ref("berttok/batch.tsv");
    char *line = NULL;
    size_t cap = 0;
    int batches = 0;
    while (getline(&line, &cap, f) > 0) {
        char *fl[9] = {0};
        if (split_tabs(line, fl, 9) != 9) fail_msg("batch.tsv: line %d has the wrong field count", batches + 1);
        const char *name = fl[0];
        int lower = atoi(fl[1]), max_len = atoi(fl[2]);
        const secap_berttok *t = g_tok[lower];
        char *as[16] = {0}, *bs[16] = {0};
        int n = 0, nb = 0;
        for (char *p = fl[3], *c; n < 16; p = c + 1) {
            c = strchr(p, ',');
            if (c) *c = 0;
            as[n++] = unhex(p, NULL);
            if (!c) break;
        }
        if (strcmp(fl[4], "-"))
            for (char *p = fl[4], *c; nb < 16; p = c + 1) {
                c = strchr(p, ',');
                if (c) *c = 0;
                bs[nb++] = unhex(p, NULL);
                if (!c) break;
            }
        if (nb && nb != n) fail_msg("%s: %d first and %d second texts", name, n, nb);
        secap_bert_batch bb;
        secap_berttok_encode_batch(t, n, (const char *const *)as, nb ? (const char *const *)bs : NULL, max_len, &bb);
        int32_t *lens, *ids, *types;
        int T = atoi(fl[5]);
        assert_int_equal(parse_ints(fl[6], &lens), n);
        assert_int_equal(parse_ints(fl[7], &ids), n * T);
        assert_int_equal(parse_ints(fl[8], &types), n * T);
        if (bb.n != n || bb.len != T) fail_msg("%s (lower %d): batch [%d, %d], reference [%d, %d]", name, lower, bb.n, bb.len, n, T);
        for (int i = 0; i < n; i++) {
            if (bb.lens[i] != lens[i]) fail_msg("%s (lower %d) row %d: length %d, reference %d", name, lower, i, bb.lens[i], lens[i]);
            for (int j = 0; j < T; j++) {
                if (bb.ids[i * T + j] != ids[i * T + j] || bb.type_ids[i * T + j] != types[i * T + j])
                    fail_msg("%s (lower %d) row %d col %d: id %d type %d, reference id %d type %d", name, lower, i, j,
                             bb.ids[i * T + j], bb.type_ids[i * T + j], ids[i * T + j], types[i * T + j]);
                /* padding is [PAD] with type 0, exactly after the row's length */
                if (j >= bb.lens[i]) assert_int_equal(bb.ids[i * T + j], secap_berttok_special_id(t, SECAP_BERT_PAD));
            }
        }
        secap_bert_batch_free(&bb);
        free(lens); free(ids); free(types);
        for (int i = 0; i < n; i++) free(as[i]);
        for (int i = 0; i < nb; i++) free(bs[i]);
        batches++;
    }
    free(line);
    fclose(f);
    assert_int_equal(batches, 6);
}

/* ---- the loader's corners ----------------------------------------------- */

static void test_vocab_quirks(void **st)
{
    (void)st;
    secap_berttok *t = secap_berttok_load(tu_ref_path("berttok/quirks_vocab.txt"), 1);
    FILE *f = open_ref("berttok/quirks.tsv");
    char *line = NULL;
    size_t cap = 0;
    int checks = 0;
    while (getline(&line, &cap, f) > 0) {
        char *fl[3] = {0};
        int nf = split_tabs(line, fl, 3);
        if (!strcmp(fl[0], "size")) {
            assert_int_equal(secap_berttok_size(t), atoi(fl[1]));
        } else if (!strcmp(fl[0], "distinct")) {
            assert_int_equal(secap_berttok_distinct(t), atoi(fl[1]));
        } else if (!strcmp(fl[0], "id") && nf == 3) {
            size_t len;
            char *tok = unhex(fl[1], &len);
            int32_t got = secap_berttok_id(t, tok, len);
            if (got != atoi(fl[2])) fail_msg("quirks vocab: token \"%s\" has id %d, HF %d", tok, got, atoi(fl[2]));
            free(tok);
        } else if (!strcmp(fl[0], "token") && nf == 3) {
            size_t len, wlen;
            char *want = unhex(fl[2], &wlen);
            const char *got = secap_berttok_token(t, atoi(fl[1]), &len);
            if (len != wlen || memcmp(got, want, len))
                fail_msg("quirks vocab: id %s converts to \"%s\", HF \"%s\"", fl[1], got, want);
            free(want);
        } else {
            fail_msg("quirks.tsv: bad line %s", fl[0]);
        }
        checks++;
    }
    free(line);
    fclose(f);
    assert_true(checks > 30);
    secap_berttok_free(t);
}

/* ---- every code point ---------------------------------------------------- */

static void unicode_sweep(const char *file, int lower)
{
    FILE *f = open_ref(file);
    char *line = NULL;
    size_t cap = 0;
    int blocks = 0, failures = 0;
    while (getline(&line, &cap, f) > 0) {
        char *fl[3] = {0};
        if (split_tabs(line, fl, 3) != 3) fail_msg("%s: bad line %d", file, blocks + 1);
        size_t len;
        char *text = unhex(fl[1], &len);
        strbuf got = {0};
        secap_bert_basic(text, len, lower, file, collect_hex, &got);
        const char *g = got.buf ? got.buf : "";
        if (strcmp(g, fl[2])) {
            int k = first_diff_token(g, fl[2]);
            char want[1024];
            snprintf(want, sizeof want, "%s", nth_token(fl[2], k));
            print_error("%s block U+%s: token %d: got \"%s\", Python \"%s\"\n", file, fl[0], k, nth_token(g, k), want);
            failures++;
        }
        free(got.buf);
        free(text);
        blocks++;
    }
    free(line);
    fclose(f);
    print_message("%s: %d blocks of code points\n", file, blocks);
    assert_true(blocks > 200);
    assert_int_equal(failures, 0);
}

static void test_unicode_lower(void **st) { (void)st; unicode_sweep("berttok/unicode_lower.tsv", 1); }
static void test_unicode_cased(void **st) { (void)st; unicode_sweep("berttok/unicode_cased.tsv", 0); }

/* ---- truncation properties (independent of the reference) --------------- */

static void test_truncation_properties(void **st)
{
    (void)st;
    const secap_berttok *t = g_tok[1];
    const char *a = "一二三四五六七八九十", *b = "hello world 你好";
    int32_t *ia, *ib;
    int na = secap_berttok_tokenize(t, a, &ia), nb = secap_berttok_tokenize(t, b, &ib);
    assert_int_equal(na, 10);
    int32_t cls = secap_berttok_special_id(t, SECAP_BERT_CLS), sep = secap_berttok_special_id(t, SECAP_BERT_SEP);
    int32_t ids[64], types[64];
    for (int max_len = 3; max_len <= 30; max_len++) {
        int n = secap_berttok_encode(t, a, b, max_len, ids, types);
        int full = na + nb + 3;
        assert_int_equal(n, full < max_len ? full : max_len);
        assert_int_equal(ids[0], cls);
        assert_int_equal(ids[n - 1], sep);
        int seps = 0, k = -1;
        for (int i = 0; i < n; i++) if (ids[i] == sep) { seps++; if (k < 0) k = i; }
        assert_int_equal(seps, 2);
        int ka = k - 1, kb = n - k - 2;             /* kept tokens of a and b */
        /* kept parts are prefixes; the longer side lost the most (longest_first) */
        assert_memory_equal(ids + 1, ia, (size_t)ka * sizeof *ids);
        assert_memory_equal(ids + k + 1, ib, (size_t)kb * sizeof *ids);
        if (n == max_len && full > max_len) {
            int lost_a = na - ka, lost_b = nb - kb;
            if (lost_a && lost_b) assert_true(abs(ka - kb) <= 1);
            assert_true(lost_a == 0 || ka >= kb);
        }
        for (int i = 0; i < n; i++) assert_int_equal(types[i], i <= k ? 0 : 1);
        /* the single-text form */
        int n1 = secap_berttok_encode(t, a, NULL, max_len, ids, types);
        assert_int_equal(n1, na + 2 < max_len ? na + 2 : max_len);
        assert_int_equal(ids[n1 - 1], sep);
        for (int i = 0; i < n1; i++) assert_int_equal(types[i], 0);
    }
    free(ia);
    free(ib);
}

/* ---- refusals ----------------------------------------------------------- */

static const char *write_tmp(const char *name, const char *bytes, size_t n)
{
    const char *p = tu_tmp("%s", name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return p;
}

static void test_bad_vocab(void **st)
{
    (void)st;
    secap_berttok *t = NULL;
    EXPECT_FATAL(t = secap_berttok_load(tu_tmp("absent/vocab.txt"), 1), "cannot open");
    EXPECT_FATAL(t = secap_berttok_load(tu_tmp("absent/vocab.txt"), 1), "absent/vocab.txt");

    const char *volatile p = write_tmp("empty.txt", "", 0);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "empty");
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "empty.txt");

    static const char bad_utf8[] = "[PAD]\n[UNK]\nab\xC3(\n[CLS]\n[SEP]\n";
    p = write_tmp("bad_utf8.txt", bad_utf8, sizeof bad_utf8 - 1);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "bad_utf8.txt:3: invalid UTF-8 at byte 2");

    static const char overlong[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xC0\xAF\n";
    p = write_tmp("overlong.txt", overlong, sizeof overlong - 1);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "overlong.txt:5: invalid UTF-8");

    static const char no_cls[] = "[PAD]\n[UNK]\n[SEP]\nhello\n";
    p = write_tmp("no_cls.txt", no_cls, sizeof no_cls - 1);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "no_cls.txt: no line holds [CLS]");

    static const char lower_cls[] = "[PAD]\n[UNK]\n[cls]\n[SEP]\n";
    p = write_tmp("lower_cls.txt", lower_cls, sizeof lower_cls - 1);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "line 3 holds \"[cls]\"");

    static const char bom[] = "\xEF\xBB\xBF[PAD]\n[UNK]\n[CLS]\n[SEP]\n";
    p = write_tmp("bom.txt", bom, sizeof bom - 1);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "bom.txt: no line holds [PAD]");
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "line 1 holds");

    static const char spaces[] = "[PAD]\n[UNK] \n[CLS]\n[SEP]\n";
    p = write_tmp("spaces.txt", spaces, sizeof spaces - 1);
    EXPECT_FATAL(t = secap_berttok_load(p, 1), "line 2 holds \"[UNK] \"");

    /* the smallest valid vocab, without [MASK]: a verbatim [MASK] is [UNK] */
    static const char minimal[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]";
    p = write_tmp("minimal.txt", minimal, sizeof minimal - 1);
    t = secap_berttok_load(p, 1);
    assert_int_equal(secap_berttok_size(t), 4);
    assert_int_equal(secap_berttok_special_id(t, SECAP_BERT_MASK), -1);
    int32_t *ids;
    assert_int_equal(secap_berttok_tokenize(t, "[MASK]x[SEP]", &ids), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], 3);
    free(ids);
    assert_int_equal(secap_berttok_tokenize(t, " \t", &ids), 0);
    assert_null(ids);
    EXPECT_FATAL(secap_berttok_token(t, 4, NULL), "id 4 is outside [0, 4)");
    EXPECT_FATAL(secap_berttok_token(t, -1, NULL), "minimal.txt");
    secap_berttok_free(t);
}

static void test_bad_input(void **st)
{
    (void)st;
    const secap_berttok *t = g_tok[1];
    int32_t *ids = NULL, buf[8];
    EXPECT_FATAL(secap_berttok_tokenize(t, "ok\xE4\xB8", &ids), "invalid UTF-8 at byte 2");
    EXPECT_FATAL(secap_berttok_tokenize(t, "\xED\xA0\x80", &ids), "invalid UTF-8 at byte 0");   /* a surrogate */
    EXPECT_FATAL(secap_bert_basic("a\xFF", 2, 1, "caption of utt7", collect_hex, &(strbuf){0}), "caption of utt7");
    EXPECT_FATAL(secap_berttok_encode(t, "你好", NULL, 1, buf, NULL), "max_len 1 leaves no room");
    EXPECT_FATAL(secap_berttok_encode(t, "你好", "好", 2, buf, NULL), "max_len 2 leaves no room for [CLS] and [SEP] twice");
    secap_bert_batch bb;
    const char *texts[1] = {"你好"};
    EXPECT_FATAL(secap_berttok_encode_batch(t, 0, texts, NULL, 16, &bb), "batch of 0 texts");
    /* a NUL byte is text (dropped like HF's cleaning), not the end */
    assert_int_equal(secap_berttok_tokenize_len(t, "你\0好", 7, &ids), 2);
    free(ids);
}

/* ---- the vocab builder -------------------------------------------------- */

static const char *const builder_corpus[] = {
    "她的声音很高兴，语速较快。",
    "Hello world! Hello again, hello BERT.",
    "说话人情绪激动，音调较高，2023年12月。",
    "naïve Café: hellos and worlds, 12345 67890 2023",
    "カタカナ テスト 😀",
};

static void test_vocab_builder(void **st)
{
    (void)st;
    int nt = (int)(sizeof builder_corpus / sizeof *builder_corpus);
    secap_bertvocab_opts o;
    secap_bertvocab_opts_default(&o);
    secap_bertvocab *v = secap_bertvocab_new(&o);
    for (int i = 0; i < nt; i++) secap_bertvocab_add(v, builder_corpus[i], "builder corpus");
    char **lines, **again;
    int n = secap_bertvocab_build(v, &lines);
    int n2 = secap_bertvocab_build(v, &again);
    assert_int_equal(n, n2);                       /* deterministic */
    for (int i = 0; i < n; i++) { assert_string_equal(lines[i], again[i]); free(again[i]); }
    free(again);
    assert_string_equal(lines[0], "[PAD]");
    assert_string_equal(lines[1], "[unused1]");
    assert_string_equal(lines[99], "[unused99]");
    assert_string_equal(lines[100], "[UNK]");
    assert_string_equal(lines[101], "[CLS]");
    assert_string_equal(lines[102], "[SEP]");
    assert_string_equal(lines[103], "[MASK]");
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!strcmp(lines[i], lines[j])) fail_msg("builder: \"%s\" on lines %d and %d", lines[i], i + 1, j + 1);

    const char *path = tu_tmp("built_vocab.txt");
    assert_int_equal(secap_bertvocab_write(v, path), n);
    secap_bertvocab_free(v);
    secap_berttok *t = secap_berttok_load(path, 1);
    assert_int_equal(secap_berttok_size(t), n);
    for (int i = 0; i < n; i++) assert_int_equal(secap_berttok_id(t, lines[i], strlen(lines[i])), i);
    for (int i = 0; i < n; i++) free(lines[i]);
    free(lines);

    /* every corpus text tokenises without [UNK]; frequent words are one piece */
    int32_t unk = secap_berttok_special_id(t, SECAP_BERT_UNK), *ids;
    for (int i = 0; i < nt; i++) {
        int k = secap_berttok_tokenize(t, builder_corpus[i], &ids);
        for (int j = 0; j < k; j++)
            if (ids[j] == unk) fail_msg("builder: corpus text %d has [UNK] at piece %d", i, j);
        free(ids);
    }
    assert_int_equal(secap_berttok_tokenize(t, "HELLO", &ids), 1);
    assert_string_equal(secap_berttok_token(t, ids[0], NULL), "hello");
    free(ids);
    assert_true(secap_berttok_id(t, "##é", strlen("##é")) < 0);     /* lower-cased: accents stripped */
    assert_true(secap_berttok_id(t, "##e", 3) >= 0);
    /* unseen Latin words still split into known characters, unseen CJK is [UNK] */
    int k = secap_berttok_tokenize(t, "zebra 龘", &ids);
    assert_true(k >= 2);
    assert_int_not_equal(ids[0], unk);
    assert_int_equal(ids[k - 1], unk);
    free(ids);
    secap_berttok_free(t);

    secap_bertvocab_opts bad = o;
    bad.min_count = 0;
    EXPECT_FATAL(secap_bertvocab_new(&bad), "min_count 0");
    EXPECT_FATAL(secap_bertvocab_write(NULL, NULL), "path is NULL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_layout),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_vocab_quirks),
        cmocka_unit_test(test_unicode_lower),
        cmocka_unit_test(test_unicode_cased),
        cmocka_unit_test(test_truncation_properties),
        cmocka_unit_test(test_bad_vocab),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_vocab_builder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
