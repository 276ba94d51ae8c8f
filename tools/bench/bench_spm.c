/* bench_spm - SentencePiece BPE encode/decode throughput.
 *
 * Encodes the ~2 MB mixed corpus tests/ref_spm.py writes (Chinese, English,
 * digits, emoji, punctuation, tabs, whitespace runs; 30,000 lines) with the
 * models it trains: llama_l (LLaMA-like: identity, byte fallback, 6000
 * pieces), llama_s (800 pieces) and nfkc_user (nmt_nfkc character map,
 * user-defined symbols).  One thread, line by line as secap-tokenize does;
 * then two threads with a scratch each.  Median of 5 runs after a warm-up.
 * Writes build/bench/bench_spm.txt ("model MB/s" per line), which
 * tools/bench/bench_spm.py prints next to python sentencepiece's figure.
 * Runs tests/ref_spm.py first when its fixtures are missing.
 *
 *   bin/bench/bench_spm [runs]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "secap/base.h"
#include "secap/spm.h"

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) secap_fatal("bench_spm: cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = secap_xmalloc((size_t)sz + 1, "corpus");
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) secap_fatal("bench_spm: short read on %s", path);
    fclose(f);
    b[sz] = '\0';
    *n = (size_t)sz;
    return b;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *text;
    size_t *start, *len; /* [lines] */
    size_t lines, bytes;
} corpus;

/* Encodes every line; returns the token count. */
static size_t encode_all(const secap_spm *m, const corpus *c, int threads)
{
    size_t tokens = 0;
#pragma omp parallel num_threads(threads) reduction(+ : tokens)
    {
        secap_spm_scratch *s = secap_spm_scratch_new();
#pragma omp for schedule(dynamic, 64)
        for (size_t l = 0; l < c->lines; l++) {
            const int32_t *ids;
            tokens += secap_spm_encode(m, c->text + c->start[l], c->len[l], 0, s, &ids);
        }
        secap_spm_scratch_free(s);
    }
    return tokens;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) runs = 1;
    const char *dir = getenv("SECAP_REF_DIR");
    if (!dir || !*dir) dir = "build/ref";
    char path[1024];
    snprintf(path, sizeof path, "%s/spm_bench.txt", dir);
    struct stat st;
    if (stat(path, &st)) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref_spm.py '%s'", dir);
        fprintf(stderr, "bench_spm: %s missing; running %s\n", path, cmd);
        if (system(cmd)) secap_fatal("bench_spm: %s failed (hint: run from the repository root; make test)", cmd);
    }
    corpus c = {0};
    char *text = read_all(path, &c.bytes);
    c.text = text;
    for (size_t i = 0; i < c.bytes; i++) c.lines += text[i] == '\n';
    c.start = secap_xmalloc(c.lines * sizeof *c.start, "lines");
    c.len = secap_xmalloc(c.lines * sizeof *c.len, "lines");
    size_t l = 0, b = 0;
    for (size_t i = 0; i < c.bytes; i++)
        if (text[i] == '\n') { c.start[l] = b; c.len[l] = i - b; l++; b = i + 1; }

    mkdir("build", 0755);
    mkdir("build/bench", 0755);
    FILE *out = fopen("build/bench/bench_spm.txt", "w");
    printf("corpus: %s, %zu lines, %.2f MB (encode: one line per call)\n", path, c.lines, c.bytes / 1e6);
    printf("%-10s %8s %10s %12s %12s %12s\n", "model", "pieces", "tokens", "1 thr MB/s", "2 thr MB/s", "decode MB/s");
    const char *models[] = {"llama_l", "llama_s", "nfkc_user"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/spm_%s.model", dir, models[k]);
        secap_spm *m = secap_spm_load(path);
        size_t tokens = encode_all(m, &c, 1); /* warm-up */
        double t1[16], t2[16], td[16];
        for (int r = 0; r < runs && r < 16; r++) {
            double t0 = secap_now();
            encode_all(m, &c, 1);
            t1[r] = secap_now() - t0;
            t0 = secap_now();
            encode_all(m, &c, 2);
            t2[r] = secap_now() - t0;
        }
        /* decode: the ids of every line, back to text */
        secap_spm_scratch *s = secap_spm_scratch_new();
        int32_t **ids = secap_xmalloc(c.lines * sizeof *ids, "ids");
        size_t *nids = secap_xmalloc(c.lines * sizeof *nids, "ids");
        for (size_t i = 0; i < c.lines; i++) {
            const int32_t *p;
            nids[i] = secap_spm_encode(m, c.text + c.start[i], c.len[i], 0, s, &p);
            ids[i] = secap_xmalloc((nids[i] + 1) * sizeof **ids, "ids");
            memcpy(ids[i], p, nids[i] * sizeof **ids);
        }
        for (int r = 0; r < runs && r < 16; r++) {
            double t0 = secap_now();
            size_t total = 0;
            for (size_t i = 0; i < c.lines; i++) {
                size_t n;
                free(secap_spm_decode(m, ids[i], nids[i], &n));
                total += n;
            }
            td[r] = secap_now() - t0;
            if (total == 0) secap_fatal("bench_spm: decoded nothing");
        }
        int n = runs < 16 ? runs : 16;
        qsort(t1, (size_t)n, sizeof *t1, cmp_d);
        qsort(t2, (size_t)n, sizeof *t2, cmp_d);
        qsort(td, (size_t)n, sizeof *td, cmp_d);
        double mb = c.bytes / 1e6;
        printf("%-10s %8d %10zu %12.1f %12.1f %12.1f\n", models[k], secap_spm_vocab_size(m), tokens, mb / t1[n / 2],
               mb / t2[n / 2], mb / td[n / 2]);
        if (out) fprintf(out, "%s %.3f %.3f\n", models[k], mb / t1[n / 2], mb / t2[n / 2]);
        for (size_t i = 0; i < c.lines; i++) free(ids[i]);
        free(ids);
        free(nids);
        secap_spm_scratch_free(s);
        secap_spm_free(m);
    }
    if (out) fclose(out);
    printf("(median of %d runs; MB/s of UTF-8 input, decode: of the output text)\n", runs);
    free(c.start);
    free(c.len);
    free(text);
    return 0;
}
