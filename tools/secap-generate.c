/* secap-generate - continue a prompt with a LLaMA (and optional LoRA adapter).
 *
 *   secap-generate --llama model.h5 [--lora adapter.h5|dir]
 *                  (--tokenizer tokenizer.model --prompt "text" | --prompt-ids "1 450 ...")
 *                  [--max-new-tokens N] [--greedy | decode options] [--seed N] [--ids]
 *
 * Writes the continuation of the prompt (EOS excluded), one line per
 * returned sequence (best first): text decoded with the tokenizer, or
 * space-separated ids with --ids.  A --prompt is encoded with the BOS
 * prepended, as LLaMA expects; --prompt-ids are taken as given (include the
 * BOS yourself).  Decode options carry Hugging Face's generate names with
 * dashes (src/nn/generate.c has the math); --greedy names the default
 * explicitly and refuses any sampling or beam option beside it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "secap/base.h"
#include "secap/cli.h"
#include "secap/generate.h"
#include "secap/llama.h"
#include "secap/spm.h"

#define PROG "secap-generate"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " --llama <weights.h5> [--lora <adapter.h5 or dir>]\n"
        "         (--tokenizer <tokenizer.model> --prompt <text> | --prompt-ids \"<ids>\")\n"
        "         [--max-new-tokens N] [--min-new-tokens N]\n"
        "         [--greedy | --num-beams N --do-sample --temperature X --top-k K --top-p P\n"
        "          --repetition-penalty R --no-repeat-ngram-size N --length-penalty L\n"
        "          --early-stopping true|false|never --num-return-sequences N]\n"
        "         [--seed N] [--ids] [--bf16] [--threads N]\n"
        "Writes the continuation of the prompt (EOS excluded), one line per returned\n"
        "sequence, best first: text, or token ids with --ids.\n"
        "  --llama        base weights (HF names; tools/convert_hf.py writes them)\n"
        "  --lora         a PEFT adapter file, or a directory holding adapter_model.h5\n"
        "  --tokenizer    SentencePiece model; --prompt is encoded with BOS prepended\n"
        "  --prompt-ids   space-separated prompt ids, used as given (include the BOS)\n"
        "  --greedy       greedy decoding (the default), no other decode option allowed\n"
        "  --do-sample    sample (with --num-beams > 1: beam sampling)\n"
        "  decode options take Hugging Face generate's meaning; defaults: max-new-tokens 64,\n"
        "  num-beams 1, temperature 1, top-k 50, top-p 1, repetition-penalty 1,\n"
        "  length-penalty 1, early-stopping false, seed 0\n"
        "  --ids          print ids instead of text (needs no tokenizer)\n"
        "  --bf16         keep the frozen weights as bf16 in memory\n"
        "  --threads N    OpenMP/OpenBLAS threads (default: $SECAP_THREADS or all cores)\n");
}

static int32_t *parse_ids(const char *s, int *n)
{
    int cap = 16, k = 0;
    int32_t *ids = secap_xmalloc((size_t)cap * sizeof *ids, "prompt ids");
    for (const char *p = s;;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff || (*end && *end != ' ' && *end != '\t' && *end != ','))
            secap_fatal(PROG ": --prompt-ids: \"%.20s\" is not a token id (hint: --prompt-ids \"1 450 4996\")", p);
        if (k == cap) {
            cap *= 2;
            int32_t *ni = realloc(ids, (size_t)cap * sizeof *ni);
            if (!ni) secap_fatal(PROG ": out of memory for %d prompt ids", cap);
            ids = ni;
        }
        ids[k++] = (int32_t)v;
        p = end;
    }
    if (!k) secap_fatal(PROG ": --prompt-ids is empty (hint: at least the BOS id, e.g. --prompt-ids 1)");
    *n = k;
    return ids;
}

/* "--top-k" -> "top_k" when it is a decode option taking a value. */
static const char *const VALUE_OPTS[] = { "--max-new-tokens", "--min-new-tokens", "--num-beams", "--temperature",
                                          "--top-k", "--top-p", "--repetition-penalty", "--no-repeat-ngram-size",
                                          "--length-penalty", "--early-stopping", "--num-return-sequences",
                                          "--seed", NULL };
/* options that conflict with --greedy */
static int is_search_opt(const char *key)
{
    return strcmp(key, "--max-new-tokens") && strcmp(key, "--min-new-tokens") && strcmp(key, "--seed") &&
           strcmp(key, "--repetition-penalty") && strcmp(key, "--no-repeat-ngram-size");
}

int main(int argc, char **argv)
{
    const char *llama = NULL, *lora = NULL, *tok = NULL, *prompt = NULL, *prompt_ids = NULL, *search = NULL;
    int print_ids = 0, greedy = 0, bf16 = 0;
    long threads = 0;
    secap_decode_config d;
    secap_decode_config_default(&d);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int done = 0;
        for (int k = 0; VALUE_OPTS[k] && !done; k++)
            if (secap_cli_is(a, VALUE_OPTS[k])) {
                const char *v = secap_cli_value(argc, argv, &i, VALUE_OPTS[k], PROG);
                char key[64];
                snprintf(key, sizeof key, "%s", VALUE_OPTS[k] + 2);
                for (char *p = key; *p; p++) if (*p == '-') *p = '_';
                secap_decode_config_set(&d, key, v);
                if (is_search_opt(VALUE_OPTS[k])) search = VALUE_OPTS[k];
                done = 1;
            }
        if (done) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (secap_cli_is(a, "--llama")) llama = secap_cli_value(argc, argv, &i, "--llama", PROG);
        else if (secap_cli_is(a, "--lora")) lora = secap_cli_value(argc, argv, &i, "--lora", PROG);
        else if (secap_cli_is(a, "--tokenizer")) tok = secap_cli_value(argc, argv, &i, "--tokenizer", PROG);
        else if (secap_cli_is(a, "--prompt-ids")) prompt_ids = secap_cli_value(argc, argv, &i, "--prompt-ids", PROG);
        else if (secap_cli_is(a, "--prompt")) prompt = secap_cli_value(argc, argv, &i, "--prompt", PROG);
        else if (secap_cli_is(a, "--threads"))
            threads = secap_cli_long(secap_cli_value(argc, argv, &i, "--threads", PROG), "--threads", 1, 1024);
        else if (!strcmp(a, "--do-sample")) { d.do_sample = 1; search = "--do-sample"; }
        else if (!strcmp(a, "--greedy")) greedy = 1;
        else if (!strcmp(a, "--ids")) print_ids = 1;
        else if (!strcmp(a, "--bf16")) bf16 = 1;
        else secap_fatal(PROG ": unknown argument \"%s\" (hint: " PROG " --help)", a);
    }
    if (!llama) { usage(stderr); secap_fatal(PROG ": --llama is required (hint: " PROG " --help)"); }
    if (!prompt == !prompt_ids)
        secap_fatal(PROG ": give exactly one of --prompt (with --tokenizer) and --prompt-ids (hint: " PROG " --help)");
    if (prompt && !tok) secap_fatal(PROG ": --prompt needs --tokenizer <tokenizer.model> to encode it");
    if (!print_ids && !tok)
        secap_fatal(PROG ": printing text needs --tokenizer (hint: or --ids to print token ids)");
    if (greedy && search)
        secap_fatal(PROG ": --greedy and %s contradict each other (hint: drop --greedy to search or sample)", search);
    secap_decode_config_validate(&d, PROG " options");
    secap_threads_init((int)threads);

    secap_spm *sp = tok ? secap_spm_load(tok) : NULL;
    int n = 0;
    int32_t *ids;
    if (prompt) {
        secap_spm_scratch *s = secap_spm_scratch_new();
        const int32_t *enc;
        size_t k = secap_spm_encode(sp, prompt, strlen(prompt), SECAP_SPM_ADD_BOS, s, &enc);
        ids = secap_xmalloc((k ? k : 1) * sizeof *ids, "prompt ids");
        memcpy(ids, enc, k * sizeof *ids);
        n = (int)k;
        secap_spm_scratch_free(s);
    } else {
        ids = parse_ids(prompt_ids, &n);
    }

    char adapter[4200];
    struct stat stt;
    if (lora && stat(lora, &stt) == 0 && S_ISDIR(stt.st_mode)) {
        snprintf(adapter, sizeof adapter, "%s/adapter_model.h5", lora);
        lora = adapter;
    }
    secap_ctx *c = secap_ctx_new(0, 0, d.seed);
    c->training = 0;
    secap_llama_opts o = { .lora = NULL, .adapter = lora, .base_bf16 = bf16, .seed = d.seed };
    secap_llama *m = secap_llama_load(c, llama, &o);
    int V = secap_llama_cfg(m)->vocab_size;
    if (sp && secap_spm_vocab_size(sp) > V)
        secap_fatal(PROG ": the tokenizer %s has %d pieces, the model %s only %d (hint: the tokenizer of another "
                    "model?)", tok, secap_spm_vocab_size(sp), llama, V);
    for (int i = 0; i < n; i++)
        if (ids[i] >= V)
            secap_fatal(PROG ": prompt id %d at position %d is outside the model's vocabulary [0, %d)", ids[i], i, V);

    secap_gen_result r;
    const int32_t *row = ids;
    secap_generate_ids(c, m, &row, &n, 1, &d, &r);
    for (int s = 0; s < r.rows * r.per_row; s++) {
        const int32_t *out = r.ids + (size_t)s * r.max_len;
        if (print_ids) {
            for (int i = 0; i < r.len[s]; i++) printf(i ? " %d" : "%d", out[i]);
            printf("\n");
        } else {
            /* ids past the tokenizer (a model with extra rows) are left out */
            int32_t *keep = secap_xmalloc(((size_t)r.len[s] + 1) * sizeof *keep, "output ids");
            int k = 0, dropped = 0;
            for (int i = 0; i < r.len[s]; i++) {
                if (out[i] < secap_spm_vocab_size(sp)) keep[k++] = out[i];
                else dropped++;
            }
            size_t len;
            char *text = secap_spm_decode(sp, keep, (size_t)k, &len);
            printf("%s\n", text);
            if (dropped) fprintf(stderr, PROG ": sequence %d: %d ids beyond the tokenizer left out\n", s, dropped);
            free(text);
            free(keep);
        }
    }
    if (fflush(stdout)) secap_fatal(PROG ": writing stdout: %s", strerror(errno));
    secap_gen_result_free(&r);
    free(ids);
    secap_llama_free(m);
    secap_ctx_free(c);
    secap_spm_free(sp);
    return 0;
}
