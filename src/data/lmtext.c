/* Text corpus for LM pretraining (stage lm): sources -> token stream ->
 * packed blocks -> seeded batches -> next-token loss.  The layout and the
 * batch order are specified in include/secap/lmtext.h.
 *
 * Stream s[0 .. S) = for each document in source order: BOS, its pieces, EOS.
 * Block n: ids s[nT .. nT+T), targets s[nT+1 .. nT+T+1), N = (S-1) / T.
 * Epoch e: perm = Fisher-Yates shuffle of 0 .. N-1 by an xoshiro stream
 * seeded (seed, e); step k: rows perm[kB .. kB+B).
 * Loss: mean over the B*T targets of -log softmax(logits)[target]. */
#include "secap/lmtext.h"
#include "secap/base.h"
#include "secap/ops.h"
#include "secap/rng.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct secap_lmtext {
    const secap_spm *tok;        /* NULL: text only */
    secap_spm_scratch *scr;
    int32_t *s;                  /* [S] token stream */
    int64_t S, cap;
    int64_t docs;
    char *text;                  /* cleaned documents, each NUL-terminated */
    int64_t text_len, text_cap;
    int64_t *doc_text;           /* [docs] offset of document i in text */
    int64_t *doc_tok;            /* [docs] offset of its BOS in s */
    int64_t doc_text_cap, doc_tok_cap;
    int T;               /* block size, 0 until packed */
    int64_t N;           /* blocks */
};

/* ---------------------------------------------------------------- config */

void secap_lm_config_default(secap_lm_config *c)
{
    memset(c, 0, sizeof *c);
    c->block_size = 128;
    c->batch_size = 16;
    c->seed = 1;
}

static long long lm_int(const char *key, const char *v, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        secap_fatal("config lm.%s = '%s': not an integer in [%lld, %lld] (hint: see README, LM pretraining)", key,
                    v, lo, hi);
    return x;
}

static void lm_str(char *dst, size_t cap, const char *key, const char *v)
{
    if (strlen(v) >= cap)
        secap_fatal("config lm.%s = '%s': longer than %zu bytes (hint: shorter paths)", key, v, cap - 1);
    snprintf(dst, cap, "%s", v);
}

int secap_lm_config_set(void *cfg, const char *key, const char *value)
{
    secap_lm_config *c = cfg;
    if (!strncmp(key, "lm.", 3)) key += 3;   /* secap_ini_apply passes "section.key" */
    if (!strcmp(key, "block_size")) c->block_size = (int)lm_int(key, value, 1, 1 << 20);
    else if (!strcmp(key, "batch_size")) c->batch_size = (int)lm_int(key, value, 1, 1 << 20);
    else if (!strcmp(key, "seed")) c->seed = (uint64_t)lm_int(key, value, 0, INT64_MAX);
    else if (!strcmp(key, "prompts")) lm_str(c->prompts, sizeof c->prompts, key, value);
    else if (!strcmp(key, "text")) lm_str(c->text, sizeof c->text, key, value);
    else return 1;
    return 0;
}

void secap_lm_config_validate(const secap_lm_config *c, const char *where)
{
    if (c->block_size < 1 || c->batch_size < 1)
        secap_fatal("%s: lm.block_size = %d and lm.batch_size = %d must both be >= 1", where, c->block_size,
                    c->batch_size);
}

void secap_lm_config_print(const secap_lm_config *c, FILE *f)
{
    fprintf(f, "lm.block_size = %d\nlm.batch_size = %d\nlm.seed = %" PRIu64 "\nlm.prompts = %s\nlm.text = %s\n",
            c->block_size, c->batch_size, c->seed, c->prompts, c->text);
}

/* ---------------------------------------------------------------- corpus */

secap_lmtext *secap_lmtext_new(const secap_spm *tok)
{
    if (tok && (secap_spm_bos_id(tok) < 0 || secap_spm_eos_id(tok) < 0))
        secap_fatal("lm text: the tokenizer has no BOS or EOS piece (bos %d, eos %d) (hint: train it with "
                    "spm_train's defaults --bos_id=1 --eos_id=2, tools/train_spm.sh)", secap_spm_bos_id(tok),
                    secap_spm_eos_id(tok));
    secap_lmtext *t = secap_xcalloc(1, sizeof *t, "lm text");
    t->tok = tok;
    t->scr = secap_spm_scratch_new();
    return t;
}

void secap_lmtext_free(secap_lmtext *t)
{
    if (!t) return;
    secap_spm_scratch_free(t->scr);
    free(t->s);
    free(t->text);
    free(t->doc_text);
    free(t->doc_tok);
    free(t);
}

/* Grows *p (elements of `size` bytes, capacity *cap) to hold `need`. */
static void grow(void **p, int64_t *cap, int64_t need, size_t size, const char *where)
{
    if (need <= *cap) return;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (!q) secap_fatal("lm text %s: out of memory growing the corpus to %lld elements", where, (long long)c);
    *p = q;
    *cap = c;
}

/* Copies text without ANSI CSI sequences (ESC '[' bytes 0x20-0x3F, then
 * one final byte 0x40-0x7E) into dst; returns the length. */
static size_t strip_ansi(char *dst, const char *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\x1b' && i + 1 < len && src[i + 1] == '[') {
            size_t j = i + 2;
            while (j < len && (unsigned char)src[j] >= 0x20 && (unsigned char)src[j] <= 0x3f) j++;
            if (j < len && (unsigned char)src[j] >= 0x40 && (unsigned char)src[j] <= 0x7e) {
                i = j;
                continue;
            }
        }
        dst[n++] = src[i];
    }
    return n;
}

/* Byte length of the space (ASCII space or tab, U+00A0, U+3000) that s[0..n)
 * starts / ends with, or 0. */
static size_t space_at(const char *s, size_t n)
{
    if (n >= 1 && (s[0] == ' ' || s[0] == '\t')) return 1;
    if (n >= 2 && !memcmp(s, "\xc2\xa0", 2)) return 2;
    if (n >= 3 && !memcmp(s, "\xe3\x80\x80", 3)) return 3;
    return 0;
}

static size_t space_before(const char *s, size_t n)
{
    if (n >= 1 && (s[n - 1] == ' ' || s[n - 1] == '\t')) return 1;
    if (n >= 2 && !memcmp(s + n - 2, "\xc2\xa0", 2)) return 2;
    if (n >= 3 && !memcmp(s + n - 3, "\xe3\x80\x80", 3)) return 3;
    return 0;
}

void secap_lmtext_add_line(secap_lmtext *t, const char *text, size_t len, const char *where)
{
    if (t->T)
        secap_fatal("lm text %s: added after secap_lmtext_pack (hint: add every source, then pack once)", where);
    const char *nul = memchr(text, 0, len);
    if (nul)
        secap_fatal("lm text %s: the line holds a NUL byte at byte %zu (hint: the file is not UTF-8 text)", where,
                    (size_t)(nul - text) + 1);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n' || text[i] == '\r')
            secap_fatal("lm text %s: a line break inside the text at byte %zu (hint: a document is one line; split "
                        "it or replace the break with a space)", where, i + 1);
    /* clean into the text buffer (the document's slot, NUL-terminated) */
    grow((void **)&t->text, &t->text_cap, t->text_len + (int64_t)len + 1, 1, where);
    char *z = t->text + t->text_len;
    size_t n = strip_ansi(z, text, len), b = 0;
    for (size_t m = 0; m != n;) m = n, n = strip_ansi(z, z, n);   /* nested: ESC[;ESC[1mm */
    for (size_t w; (w = space_at(z + b, n - b)) > 0;) b += w;
    for (size_t w; n > b && (w = space_before(z + b, n - b)) > 0;) n -= w;
    if (n == b) return;   /* empty: skipped */
    memmove(z, z + b, n - b);
    n -= b;
    z[n] = 0;
    if (secap_utf8_chars(z) < 0)
        secap_fatal("lm text %s: not valid UTF-8 (hint: convert the file, e.g. iconv -t UTF-8)", where);
    grow((void **)&t->doc_text, &t->doc_text_cap, t->docs + 1, sizeof *t->doc_text, where);
    grow((void **)&t->doc_tok, &t->doc_tok_cap, t->docs + 1, sizeof *t->doc_tok, where);
    t->doc_text[t->docs] = t->text_len;
    t->doc_tok[t->docs] = t->S;
    t->text_len += (int64_t)n + 1;
    t->docs++;
    if (!t->tok) return;
    const int32_t *ids;
    size_t k = secap_spm_encode(t->tok, z, n, SECAP_SPM_ADD_BOS | SECAP_SPM_ADD_EOS, t->scr, &ids);
    grow((void **)&t->s, &t->cap, t->S + (int64_t)k, sizeof *t->s, where);
    memcpy(t->s + t->S, ids, k * sizeof *ids);
    t->S += (int64_t)k;
}

void secap_lmtext_write_text(const secap_lmtext *t, FILE *f)
{
    for (int64_t i = 0; i < t->docs; i++) {
        fputs(t->text + t->doc_text[i], f);
        fputc('\n', f);
    }
}

int64_t secap_lmtext_roundtrip_check(const secap_lmtext *t, FILE *report)
{
    if (!t->tok) secap_fatal("lm text: round-trip check of a text-only corpus (hint: give it a tokenizer)");
    int64_t bad = 0;
    for (int64_t i = 0; i < t->docs; i++) {
        int64_t a = t->doc_tok[i], e = i + 1 < t->docs ? t->doc_tok[i + 1] : t->S;
        const char *want = t->text + t->doc_text[i];
        size_t n;
        char *got = secap_spm_decode(t->tok, t->s + a, (size_t)(e - a), &n);
        if (n != strlen(want) || memcmp(got, want, n)) {
            if (report && bad < 5) fprintf(report, "lm text: document %lld round-trips to \"%s\", not \"%s\"\n",
                                           (long long)i, got, want);
            bad++;
        }
        free(got);
    }
    return bad;
}

int secap_lmtext_add_dataset(secap_lmtext *t, const secap_dataset *d, int split)
{
    static const char *const NAME[3] = { "train", "dev", "test" };
    if (split == SECAP_SPLIT_TEST)
        secap_fatal("lm text %s: asked for the test split's text (hint: LM pretraining reads the train split (or "
                    "dev for a held-out measure) so test captions are never seen)", d->source);
    if (split < 0 || split >= SECAP_NSPLITS)
        secap_fatal("lm text %s: split %d is not SECAP_SPLIT_TRAIN or SECAP_SPLIT_DEV", d->source, split);
    int64_t before = t->docs;
    char where[600];
    for (int i = 0; i < d->n; i++) {
        const secap_item *it = &d->items[i];
        if (it->split != split) continue;
        if (it->transcript) {
            snprintf(where, sizeof where, "%s: item %s (%s split) transcript", d->source, it->id, NAME[split]);
            secap_lmtext_add_line(t, it->transcript, strlen(it->transcript), where);
        }
        for (int k = 0; k < it->n_captions; k++) {
            snprintf(where, sizeof where, "%s: item %s (%s split) caption %d", d->source, it->id, NAME[split], k + 1);
            secap_lmtext_add_line(t, it->captions[k], strlen(it->captions[k]), where);
        }
    }
    return (int)(t->docs - before);
}

/* What a failing read releases. */
typedef struct { FILE *f; char *line; } file_reading;

static void file_reading_free(void *arg)
{
    file_reading *r = arg;
    if (r->f) fclose(r->f);
    free(r->line);
}

int secap_lmtext_add_file(secap_lmtext *t, const char *path)
{
    file_reading r = { fopen(path, "rb"), NULL };
    if (!r.f)
        secap_fatal("lm text: cannot open %s: %s (hint: check lm.prompts / lm.text)", path, strerror(errno));
    secap_cleanup cl;
    secap_cleanup_push(&cl, file_reading_free, &r);
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    int64_t before = t->docs;
    char where[600];
    errno = 0;
    while ((n = getline(&r.line, &cap, r.f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len && (r.line[len - 1] == '\n' || r.line[len - 1] == '\r')) len--;
        if (len == 1 && r.line[0] == '%') continue;   /* fortune separator */
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        secap_lmtext_add_line(t, r.line, len, where);
    }
    if (ferror(r.f)) secap_fatal("lm text: read error in %s after line %d: %s", path, lineno, strerror(errno));
    secap_cleanup_pop(&cl);
    file_reading_free(&r);
    return (int)(t->docs - before);
}

void secap_lmtext_pack(secap_lmtext *t, int block_size)
{
    if (!t->tok) secap_fatal("lm text: packing a text-only corpus (hint: secap_lmtext_new with a tokenizer)");
    if (t->T) secap_fatal("lm text: secap_lmtext_pack called twice");
    if (block_size < 1) secap_fatal("lm text: block size %d < 1", block_size);
    if (t->S < (int64_t)block_size + 1)
        secap_fatal("lm text: %lld tokens in %lld documents make no block of %d tokens (+1 target) (hint: add text "
                    "or lower lm.block_size)", (long long)t->S, (long long)t->docs, block_size);
    t->T = block_size;
    t->N = (t->S - 1) / block_size;
}

secap_lmtext *secap_lmtext_build(const secap_lm_config *c, const secap_spm *tok, const secap_dataset *d, int split)
{
    secap_lm_config_validate(c, "lm text");
    secap_lmtext *t = secap_lmtext_new(tok);
    secap_cleanup cl;
    secap_cleanup_push(&cl, (void (*)(void *))secap_lmtext_free, t);
    if (d) secap_lmtext_add_dataset(t, d, split);
    if (c->prompts[0]) secap_lmtext_add_file(t, c->prompts);
    for (const char *s = c->text; *s;) {
        size_t n = strcspn(s, ",");
        if (n) {
            char path[sizeof c->text];
            snprintf(path, sizeof path, "%.*s", (int)n, s);
            secap_lmtext_add_file(t, path);
        }
        s += n;
        if (*s == ',') s++;
    }
    secap_lmtext_pack(t, c->block_size);
    secap_cleanup_pop(&cl);
    return t;
}

int64_t secap_lmtext_documents(const secap_lmtext *t) { return t->docs; }
int64_t secap_lmtext_tokens(const secap_lmtext *t) { return t->S; }
int64_t secap_lmtext_blocks(const secap_lmtext *t) { return t->N; }
int secap_lmtext_block_size(const secap_lmtext *t) { return t->T; }
const int32_t *secap_lmtext_stream(const secap_lmtext *t) { return t->s; }

void secap_lmtext_print_stats(const secap_lmtext *t, FILE *f)
{
    fprintf(f, "lm text: %lld documents, %lld tokens (%.1f per document, BOS/EOS included), %lld blocks of %d\n",
            (long long)t->docs, (long long)t->S, t->docs ? (double)t->S / (double)t->docs : 0.0, (long long)t->N,
            t->T);
}

int64_t secap_lmtext_steps_per_epoch(const secap_lmtext *t, int batch_size)
{
    if (batch_size < 1) secap_fatal("lm text: batch size %d < 1", batch_size);
    return t->N / batch_size;
}

/* --------------------------------------------------------------- batches */

static void need_packed(const secap_lmtext *t, const char *op)
{
    if (!t->T) secap_fatal("%s: the corpus is not packed (hint: call secap_lmtext_pack first)", op);
}

secap_lm_batch secap_lmtext_rows(secap_ctx *c, const secap_lmtext *t, const int64_t *blocks, int n)
{
    const char *op = "lm text rows";
    need_packed(t, op);
    if (n < 1) secap_fatal("%s: %d rows", op, n);
    int T = t->T;
    secap_lm_batch b = { 0 };
    b.B = n;
    b.T = T;
    b.ids = secap_arena_alloc(c->step, (size_t)n * (size_t)T * sizeof *b.ids, 0, op);
    b.targets = secap_arena_alloc(c->step, (size_t)n * (size_t)T * sizeof *b.targets, 0, op);
    b.lens = secap_arena_alloc(c->step, (size_t)n * sizeof *b.lens, 0, op);
    b.blocks = secap_arena_alloc(c->step, (size_t)n * sizeof *b.blocks, 0, op);
    for (int r = 0; r < n; r++) {
        int64_t k = blocks[r];
        if (k < 0 || k >= t->N) secap_fatal("%s: block %lld of row %d is outside [0, %lld)", op, (long long)k, r,
                                            (long long)t->N);
        const int32_t *s = t->s + k * T;
        memcpy(b.ids + (int64_t)r * T, s, (size_t)T * sizeof *s);
        memcpy(b.targets + (int64_t)r * T, s + 1, (size_t)T * sizeof *s);
        b.lens[r] = T;
        b.blocks[r] = k;
    }
    return b;
}

secap_lm_batch secap_lmtext_batch(secap_ctx *c, const secap_lmtext *t, uint64_t seed, int64_t epoch, int64_t step,
                                  int batch_size)
{
    const char *op = "lm text batch";
    need_packed(t, op);
    int64_t steps = secap_lmtext_steps_per_epoch(t, batch_size);
    if (epoch < 0 || step < 0 || step >= steps)
        secap_fatal("%s: epoch %lld step %lld is outside the %lld steps of an epoch (%lld blocks / batch %d) (hint: "
                    "a smaller lm.batch_size or lm.block_size, or more text)", op, (long long)epoch, (long long)step,
                    (long long)steps, (long long)t->N, batch_size);
    /* The epoch's permutation (of all N blocks, whatever B is), drawn in
     * scratch that is rewound once this step's rows are copied out. */
    int64_t *rows = secap_arena_alloc(c->step, (size_t)batch_size * sizeof *rows, 0, op);
    size_t mark = secap_arena_mark(c->step);
    int64_t *perm = secap_arena_alloc(c->step, (size_t)t->N * sizeof *perm, 0, op);
    for (int64_t i = 0; i < t->N; i++) perm[i] = i;
    secap_rng r;
    secap_rng_seed_stream(&r, seed, (uint64_t)epoch);
    for (int64_t i = t->N - 1; i > 0; i--) {
        int64_t j = (int64_t)secap_rng_below(&r, (uint64_t)i + 1);
        int64_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    memcpy(rows, perm + step * batch_size, (size_t)batch_size * sizeof *rows);
    secap_arena_rewind(c->step, mark);
    return secap_lmtext_rows(c, t, rows, batch_size);
}

/* ------------------------------------------------------------------ loss */

secap_tensor *secap_lm_loss(secap_ctx *c, const secap_llama *m, const secap_lm_batch *b)
{
    const secap_llama_config *cf = secap_llama_cfg(m);
    for (int64_t i = 0; i < (int64_t)b->B * b->T; i++)
        if (b->targets[i] != SECAP_LLAMA_IGNORE && (b->targets[i] < 0 || b->targets[i] >= cf->vocab_size))
            secap_fatal("lm loss: target id %d at row %lld step %lld is outside [0, %d) (hint: the tokenizer and "
                        "the model disagree on the vocabulary)", b->targets[i], (long long)(i / b->T),
                        (long long)(i % b->T), cf->vocab_size);
    secap_tensor *x = secap_llama_embed(c, m, b->ids, b->B, b->T);
    secap_tensor *logits = secap_llama_forward(c, m, x, b->lens);
    return secap_llama_loss(c, logits, b->targets);
}

double secap_lm_eval(secap_ctx *c, const secap_llama *m, const secap_lmtext *t, int batch_size)
{
    const char *op = "lm eval";
    need_packed(t, op);
    if (batch_size < 1) secap_fatal("%s: batch size %d < 1", op, batch_size);
    int prev = secap_no_grad_begin(c), training = c->training;
    c->training = 0;
    double sum = 0;
    int64_t count = 0;
    for (int64_t k0 = 0; k0 < t->N; k0 += batch_size) {
        size_t mark = secap_arena_mark(c->step);
        int n = (int)(t->N - k0 < batch_size ? t->N - k0 : batch_size);
        int64_t *rows = secap_arena_alloc(c->step, (size_t)n * sizeof *rows, 0, op);
        for (int r = 0; r < n; r++) rows[r] = k0 + r;
        secap_lm_batch b = secap_lmtext_rows(c, t, rows, n);
        secap_tensor *loss = secap_lm_loss(c, m, &b);
        int64_t real = (int64_t)n * t->T;
        sum += (double)secap_f32(loss)[0] * (double)real;
        count += real;
        secap_arena_rewind(c->step, mark);
    }
    secap_no_grad_end(c, prev);
    c->training = training;
    return sum / (double)count;
}
