/* Fuzz target: BERT vocab.txt files (src/text/berttok.c): the loader's line
 * and special-token rules, then tokenising and encoding with what loaded.
 * Every id must lie in the vocabulary and map back to a token.
 *
 * Input: the bytes of one vocab.txt. */
#include "fuzz.h"
#include "secap/berttok.h"

static secap_berttok *T;   /* loaded between the steps of one input */

static void tokenize(const char *text)
{
    int32_t *ids = NULL;
    secap_cleanup cl;
    int n = secap_berttok_tokenize(T, text, &ids);
    secap_cleanup_push(&cl, free, ids);
    int V = secap_berttok_size(T);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) fuzz_die("tokenize gave id %d outside [0, %d)", ids[i], V);
        if (!secap_berttok_token(T, ids[i], NULL)) fuzz_die("id %d has no token", ids[i]);
    }
    secap_cleanup_pop(&cl);
    free(ids);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    T = NULL;
    const char *path = fuzz_file("vocab.txt", data, size);
    FUZZ_TRY(T = secap_berttok_load(path, 1));
    if (!T) return;
    static const char *const texts[] = {
        "", "她的声音很高兴。", "Hello, WORLD! 123", "[CLS] x [SEP] [MASK]", "naïve café ﬁ ①", "😀\t\x01 end",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) FUZZ_TRY(tokenize(texts[i]));
    secap_berttok_free(T);
}
