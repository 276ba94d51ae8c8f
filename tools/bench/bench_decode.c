/* bench_decode: greedy decoding speed of the LLaMA (secap_generate) for the
 * 110M shape of llama2.c's stories110M (D 768, 12 layers, 12 heads, FFN
 * 2048, vocab 32000, untied), random weights, batch 1.
 *
 * Each rep generates --tokens new tokens (min_new_tokens = max_new_tokens,
 * so a random model cannot stop early at EOS) from the prompt [BOS], once
 * with float32 base weights and once with bf16 (interleaved, so a busy
 * neighbour hits both alike), and prints the median tokens/s over the reps
 * (tokens / wall time of the whole generate call, the 1-token prefill
 * included) and the weight bytes read per second (every token reads every
 * weight once).
 *
 *   bin/bench/bench_decode [--tokens N] [--reps R] [--dtype f32|bf16|both]
 * (SECAP_THREADS threads) */
#include "benchutil.h"
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/generate.h"
#include "secap/llama.h"
#include "secap/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double weight_bytes(const secap_llama *m)
{
    const secap_params *p = secap_llama_base_params(m);
    double b = 0;
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *e = secap_params_entry(p, i);
        if (!strcmp(e->name, "model.embed_tokens.weight")) continue;   /* one row read per token */
        b += (double)e->t->n * (e->t->dtype == SECAP_BF16 ? 2 : 4);
    }
    return b;
}

int main(int argc, char **argv)
{
    long tokens = 256, reps = 5;
    const char *dtype = "both";
    for (int i = 1; i < argc; i++) {
        if (secap_cli_is(argv[i], "--tokens"))
            tokens = secap_cli_long(secap_cli_value(argc, argv, &i, "--tokens", "bench_decode"), "--tokens", 1, 1000);
        else if (secap_cli_is(argv[i], "--reps"))
            reps = secap_cli_long(secap_cli_value(argc, argv, &i, "--reps", "bench_decode"), "--reps", 1, 1000);
        else if (secap_cli_is(argv[i], "--dtype"))
            dtype = secap_cli_value(argc, argv, &i, "--dtype", "bench_decode");
        else
            secap_fatal("bench_decode: unknown argument %s (usage: bench_decode [--tokens N] [--reps R] "
                        "[--dtype f32|bf16|both])", argv[i]);
    }
    int use[2] = { strcmp(dtype, "bf16") != 0, strcmp(dtype, "f32") != 0 };
    if (!use[0] && !use[1]) secap_fatal("bench_decode: --dtype %s is not f32, bf16 or both", dtype);
    secap_threads_init(0);
    secap_llama_config cfg;
    secap_llama_config_default(&cfg);
    cfg.vocab_size = 32000;
    cfg.hidden_size = 768;
    cfg.intermediate_size = 2048;
    cfg.num_hidden_layers = 12;
    cfg.num_attention_heads = 12;
    cfg.num_key_value_heads = 12;
    cfg.max_position_embeddings = 1024;
    cfg.rms_norm_eps = 1e-5;
    secap_ctx *c = secap_ctx_new(0, 0, 1);
    c->training = 0;
    secap_llama *m[2] = { NULL, NULL };
    const char *name[2] = { "f32", "bf16" };
    for (int k = 0; k < 2; k++) {
        if (!use[k]) continue;
        secap_llama_opts o = { .base_bf16 = k, .seed = 7 };
        double t0 = now();
        m[k] = secap_llama_init_random(c, &cfg, &o);
        fprintf(stderr, "bench_decode: %s model initialised in %.1f s\n", name[k], now() - t0);
    }
    secap_decode_config d;
    secap_decode_config_default(&d);
    d.max_new_tokens = d.min_new_tokens = (int)tokens;
    int32_t bos = cfg.bos_token_id, one = 1;
    const int32_t *row = &bos;
    double *tps[2];
    for (int k = 0; k < 2; k++) tps[k] = calloc((size_t)reps, sizeof(double));
    /* one warm-up run each (first touch of the cache and arena pages) */
    for (int k = 0; k < 2; k++) {
        if (!use[k]) continue;
        secap_gen_result r;
        secap_generate_ids(c, m[k], &row, &one, 1, &d, &r);
        secap_gen_result_free(&r);
    }
    for (long rep = 0; rep < reps; rep++)
        for (int k = 0; k < 2; k++) {
            if (!use[k]) continue;
            secap_gen_result r;
            double t0 = now();
            secap_generate_ids(c, m[k], &row, &one, 1, &d, &r);
            double t = now() - t0;
            if (r.len[0] != tokens) secap_fatal("bench_decode: generated %d tokens, not %ld", r.len[0], tokens);
            secap_gen_result_free(&r);
            tps[k][rep] = (double)tokens / t;
        }
    printf("decode, 110M shape (D 768, L 12, H 12, FFN 2048, V 32000), batch 1, greedy, %ld tokens, %d threads, "
           "median of %ld\n", tokens, secap_threads(), reps);
    for (int k = 0; k < 2; k++) {
        if (!use[k]) continue;
        qsort(tps[k], (size_t)reps, sizeof(double), cmp_double);
        double med = tps[k][reps / 2], wb = weight_bytes(m[k]);
        printf("  %-5s weights %.0f MB: %7.1f tokens/s (min %.1f, max %.1f), %.1f GB/s of weights\n", name[k],
               wb / 1e6, med, tps[k][0], tps[k][reps - 1], med * wb / 1e9);
        printf("RESULT bench=decode dtype=%s tokens_per_s=%.2f tokens=%ld\n", name[k], med, tokens);
    }
    for (int k = 0; k < 2; k++) { free(tps[k]); secap_llama_free(m[k]); }
    secap_ctx_free(c);
    return 0;
}
