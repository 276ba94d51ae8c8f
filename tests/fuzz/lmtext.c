/* Fuzz target: LM-pretraining text files (src/data/lmtext.c): the line
 * reader, the cleaning (ANSI escapes, surrounding spaces, fortune
 * separators) and the UTF-8 / NUL checks, then tokenising, packing and
 * batching with the LLaMA-like seed tokenizer of the spm target.
 *
 * Checks on what a file that is accepted gives: every cleaned document is
 * non-empty, one line, without surrounding ASCII spaces or a CR; there are
 * no more documents than lines; with the tokenizer every document
 * decodes back to its text (unless the input holds U+2581 itself), and every packed row is a window of the stream.
 *
 * Input: the bytes of one text file. */
#include "fuzz.h"
#include "secap/lmtext.h"
#include "secap/tensor.h"

static secap_spm *TOK;          /* loaded once; NULL when the seed is absent */
static secap_lmtext *T;         /* released by the cleanup on a refusal */
static secap_ctx *C;

static void lm_release(void *arg)
{
    (void)arg;
    secap_lmtext_free(T);
    T = NULL;
}

static void check_text(size_t lines)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) fuzz_die("open_memstream failed");
    secap_lmtext_write_text(T, f);
    fclose(f);
    int64_t docs = 0;
    for (char *p = buf, *e; p < buf + n; p = e + 1) {
        e = memchr(p, '\n', (size_t)(buf + n - p));
        if (!e) fuzz_die("the text does not end with a newline");
        size_t len = (size_t)(e - p);
        if (!len) fuzz_die("document %lld is empty", (long long)docs);
        if (p[0] == ' ' || p[0] == '\t' || p[len - 1] == ' ' || p[len - 1] == '\t')
            fuzz_die("document %lld keeps surrounding spaces", (long long)docs);
        if (memchr(p, '\r', len)) fuzz_die("document %lld holds a CR", (long long)docs);
        docs++;
    }
    free(buf);
    if (docs != secap_lmtext_documents(T))
        fuzz_die("%lld documents written, %lld counted", (long long)docs, (long long)secap_lmtext_documents(T));
    if ((size_t)docs > lines) fuzz_die("%lld documents from %zu lines", (long long)docs, lines);
}

static void text_only(const char *path, size_t lines)
{
    secap_cleanup cl;
    T = secap_lmtext_new(NULL);
    secap_cleanup_push(&cl, lm_release, NULL);
    secap_lmtext_add_file(T, path);
    check_text(lines);
    secap_cleanup_pop(&cl);
    lm_release(NULL);
}

/* U+2581 "▁" in the text itself decodes as a space (SentencePiece's
 * whitespace mark): such text does not round-trip, in the library either. */
static int has_space_mark;

static void tokenized(const char *path)
{
    secap_cleanup cl;
    T = secap_lmtext_new(TOK);
    secap_cleanup_push(&cl, lm_release, NULL);
    secap_lmtext_add_file(T, path);
    if (!has_space_mark && secap_lmtext_roundtrip_check(T, NULL) != 0)
        fuzz_die("a document does not decode back to its text");
    if (secap_lmtext_tokens(T) >= 5) {
        secap_lmtext_pack(T, 4);
        const int32_t *s = secap_lmtext_stream(T);
        int64_t N = secap_lmtext_blocks(T);
        if (N != (secap_lmtext_tokens(T) - 1) / 4) fuzz_die("%lld blocks", (long long)N);
        secap_lm_batch b = secap_lmtext_batch(C, T, 1, 0, 0, 1);
        if (memcmp(b.ids, s + b.blocks[0] * 4, 4 * sizeof *s) ||
            memcmp(b.targets, s + b.blocks[0] * 4 + 1, 4 * sizeof *s))
            fuzz_die("row of block %lld is not its stream window", (long long)b.blocks[0]);
        secap_ctx_reset(C);
    }
    secap_cleanup_pop(&cl);
    lm_release(NULL);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    if (!C) {
        C = secap_ctx_new((size_t)16 << 20, (size_t)64 << 20, 1);
        FUZZ_TRY(TOK = secap_spm_load("tests/fuzz/spm/seed-llama-like.model"));
    }
    const char *path = fuzz_file("text.txt", data, size);
    size_t lines = size > 0;
    for (size_t i = 0; i + 1 < size; i++) lines += data[i] == '\n';
    has_space_mark = memmem(data, size, "\xe2\x96\x81", 3) != NULL;
    volatile int ok = 0;
    FUZZ_TRY(text_only(path, lines); ok = 1);
    if (ok && TOK) FUZZ_TRY(tokenized(path));
    secap_ctx_reset(C);
}
