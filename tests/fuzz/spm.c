/* Fuzz target: SentencePiece models (src/text/spm.c): the protobuf reader,
 * the model checks, and then encoding and decoding with whatever loaded.
 * Every id an encode returns must lie in the vocabulary, and decoding them
 * must not fail.
 *
 * Input: the bytes of one tokenizer.model. */
#include "fuzz.h"
#include "secap/spm.h"

static secap_spm *M;           /* loaded between the steps of one input */
static secap_spm_scratch *S;

static void encode_decode(const char *text, unsigned flags)
{
    const int32_t *ids = NULL;
    size_t n = secap_spm_encode(M, text, strlen(text), flags, S, &ids);
    int V = secap_spm_vocab_size(M);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) fuzz_die("encode gave id %d outside [0, %d)", ids[i], V);
    char *back = secap_spm_decode(M, ids, n, NULL);
    free(back);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    M = NULL;
    FUZZ_TRY(M = secap_spm_from_memory(data, size, "fuzz.model"));
    if (!M) return;
    S = secap_spm_scratch_new();
    static const char *const texts[] = {
        "", " ", "hello world", "  two  spaces\tand a tab", "你好，世界！12345", "emoji 😀 and é\xcc\x81",
        "\xff\xfe broken utf-8 \xc3", "<unk><s></s>",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        FUZZ_TRY(encode_decode(texts[i], 0));
        FUZZ_TRY(encode_decode(texts[i], SECAP_SPM_ADD_BOS | SECAP_SPM_ADD_EOS));   /* refused without BOS/EOS */
    }
    secap_spm_scratch_free(S);
    secap_spm_free(M);
}
