/* bench_lm_pretrain - does LM pretraining (stage lm) learn?  A tiny LLaMA
 * trained from scratch on the demo text, train and held-out perplexity
 * printed as it goes.
 *
 *   bin/bench/bench_lm_pretrain [--steps N] [--eval-every N] [--dim D] [--layers L]
 *       [--block-size T] [--batch-size B] [--lr X] [--seed S]
 *       [--tokenizer MODEL] [--data DIR] [--prompts FILE] [--text FILE]... [--no-fortunes]
 *
 * Train text: the captions and transcripts of the dataset's train split, the
 * prompt list and fortunes-zh (chinese, tang300, song100), packed into rows
 * of T tokens (include/secap/lmtext.h).  Held-out text: the dev split's
 * captions and transcripts (never seen in training; the test split is not
 * touched).  Model: LLaMA with tied embeddings, D (128), L (4) layers,
 * D/32 heads, FFN 8D/3 rounded up to a multiple of 8, vocabulary of the
 * tokenizer, every base tensor trainable (secap_llama_opts.train_base).
 * AdamW (0.9, 0.95, weight decay 0.1, none on norms), lr warm-up over 5% of
 * the steps then cosine to 10%, gradient norm clipped at 1.  At step 0 and
 * every --eval-every steps: the mean next-token loss and perplexity on 64
 * fixed train blocks (drawn once with the seed) and on every held-out block.
 *
 * Defaults read data/demo and build/demo/tokenizer.model; when either is
 * missing it says how to make them (make demo; tools/train_spm.sh) and
 * exits 0 without measuring.
 */
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/lmtext.h"
#include "secap/llama.h"
#include "secap/optim.h"
#include "secap/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "bench_lm_pretrain";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Mean loss over the given blocks, no tape, arena rewound. */
static double eval_blocks(secap_ctx *c, const secap_llama *m, const secap_lmtext *t, const int64_t *blocks,
                          int n, int B)
{
    int prev = secap_no_grad_begin(c);
    double sum = 0;
    for (int i = 0; i < n; i += B) {
        size_t mark = secap_arena_mark(c->step);
        int k = n - i < B ? n - i : B;
        secap_lm_batch b = secap_lmtext_rows(c, t, blocks + i, k);
        sum += (double)secap_f32(secap_lm_loss(c, m, &b))[0] * k;
        secap_arena_rewind(c->step, mark);
    }
    secap_no_grad_end(c, prev);
    return sum / n;
}

int main(int argc, char **argv)
{
    int steps = 300, every = 50, D = 128, L = 4, T = 64, B = 16, fortunes = 1;
    double lr = 3e-3;
    uint64_t seed = 1;
    const char *tokp = "build/demo/tokenizer.model", *data = "data/demo", *prompts = "data/prompts_zh.txt";
    const char *extra[16];
    int nextra = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (secap_cli_is(a, "--steps")) steps = (int)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 1, 1000000);
        else if (secap_cli_is(a, "--eval-every")) every = (int)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 1, 1000000);
        else if (secap_cli_is(a, "--dim")) D = (int)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 32, 8192);
        else if (secap_cli_is(a, "--layers")) L = (int)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 1, 128);
        else if (secap_cli_is(a, "--block-size")) T = (int)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 2, 8192);
        else if (secap_cli_is(a, "--batch-size")) B = (int)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 1, 4096);
        else if (secap_cli_is(a, "--seed")) seed = (uint64_t)secap_cli_long(secap_cli_value(argc, argv, &i, a, prog), a, 0, 1L << 62);
        else if (secap_cli_is(a, "--lr")) lr = atof(secap_cli_value(argc, argv, &i, a, prog));
        else if (secap_cli_is(a, "--tokenizer")) tokp = secap_cli_value(argc, argv, &i, a, prog);
        else if (secap_cli_is(a, "--data")) data = secap_cli_value(argc, argv, &i, a, prog);
        else if (secap_cli_is(a, "--prompts")) prompts = secap_cli_value(argc, argv, &i, a, prog);
        else if (secap_cli_is(a, "--no-fortunes")) fortunes = 0;
        else if (secap_cli_is(a, "--text") && nextra < 12) extra[nextra++] = secap_cli_value(argc, argv, &i, a, prog);
        else secap_fatal("%s: unknown option %s", prog, a);
    }
    if (!(lr > 0 && lr < 1)) secap_fatal("%s: --lr %g is not in (0, 1)", prog, lr);
    if (access(tokp, R_OK) || access(data, R_OK)) {
        printf("%s: needs %s and %s (make demo; tools/train_spm.sh): not measured\n", prog, data, tokp);
        return 0;
    }
    if (fortunes) {
        static const char *const F[] = { "/usr/share/games/fortunes/chinese", "/usr/share/games/fortunes/tang300",
                                         "/usr/share/games/fortunes/song100" };
        for (int k = 0; k < 3; k++) extra[nextra++] = F[k];
    }
    secap_threads_init(0);

    secap_spm *tok = secap_spm_load(tokp);
    secap_data_config dc;
    secap_data_config_default(&dc);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(data, &dc, &probs);
    if (probs.n) {
        secap_problems_print(&probs, stderr);
        secap_fatal("%s: %s has problems (listed above)", prog, data);
    }
    secap_lmtext *tr = secap_lmtext_new(tok), *ho = secap_lmtext_new(tok);
    secap_lmtext_add_dataset(tr, d, SECAP_SPLIT_TRAIN);
    secap_lmtext_add_file(tr, prompts);
    for (int k = 0; k < nextra; k++) secap_lmtext_add_file(tr, extra[k]);
    secap_lmtext_add_dataset(ho, d, SECAP_SPLIT_DEV);
    secap_lmtext_pack(tr, T);
    secap_lmtext_pack(ho, T);
    printf("train ");
    secap_lmtext_print_stats(tr, stdout);
    printf("held-out (dev split) ");
    secap_lmtext_print_stats(ho, stdout);

    secap_llama_config cf;
    secap_llama_config_default(&cf);
    cf.vocab_size = secap_spm_vocab_size(tok);
    cf.hidden_size = D;
    cf.intermediate_size = ((8 * D / 3) + 7) / 8 * 8;
    cf.num_hidden_layers = L;
    cf.num_attention_heads = D / 32 > 0 ? D / 32 : 1;
    cf.num_key_value_heads = cf.num_attention_heads;
    cf.max_position_embeddings = T;
    cf.rms_norm_eps = 1e-5;
    cf.tie_word_embeddings = 1;
    secap_ctx *c = secap_ctx_new(0, 0, seed);
    c->training = 1;
    secap_llama_opts o = { .train_base = 1, .seed = seed };
    secap_llama *m = secap_llama_init_random(c, &cf, &o);
    const secap_params *bp = secap_llama_base_params(m);
    secap_adamw *opt = secap_adamw_new(0.9f, 0.95f, 1e-8f);
    int g0 = secap_adamw_group(opt, 1.0f, 0.0f), g1 = secap_adamw_group(opt, 1.0f, 0.1f);
    secap_adamw_add_params(opt, c, bp, SECAP_LLAMA_NO_DECAY, NULL, g0);
    secap_adamw_add_params(opt, c, bp, NULL, NULL, g1);
    secap_schedule sch = { SECAP_SCHED_COSINE, (float)lr, steps / 20, steps, (float)lr / 10 };
    printf("model: D %d, %d layers, %d heads, FFN %d, V %d, tied; %lld parameters; T %d, B %d, %d steps, lr %g, "
           "%d threads\n", D, L, cf.num_attention_heads, cf.intermediate_size, cf.vocab_size,
           (long long)secap_params_numel(bp, 1), T, B, steps, lr, secap_threads());

    /* 64 fixed train blocks for the train perplexity; every held-out block */
    int ntr = secap_lmtext_blocks(tr) < 64 ? (int)secap_lmtext_blocks(tr) : 64;
    int64_t *trb = secap_xmalloc((size_t)ntr * sizeof *trb, "blocks");
    secap_rng r;
    secap_rng_seed_stream(&r, seed, 999);
    for (int i = 0; i < ntr; i++) trb[i] = (int64_t)secap_rng_below(&r, (uint64_t)secap_lmtext_blocks(tr));
    int nho = (int)secap_lmtext_blocks(ho);
    int64_t *hob = secap_xmalloc((size_t)nho * sizeof *hob, "blocks");
    for (int i = 0; i < nho; i++) hob[i] = i;

    int64_t spe = secap_lmtext_steps_per_epoch(tr, B);
    printf("%6s %9s %10s %9s %10s %9s %8s\n", "step", "train", "train ppl", "held-out", "held ppl", "lr", "s/step");
    double t0 = now(), tstep = 0;
    int nstep = 0;
    for (int s = 0; s <= steps; s++) {
        if (s % every == 0 || s == steps) {
            double a = eval_blocks(c, m, tr, trb, ntr, B), h = eval_blocks(c, m, ho, hob, nho, B);
            printf("%6d %9.4f %10.2f %9.4f %10.2f %9.2e %8.3f\n", s, a, exp(a), h, exp(h),
                   (double)secap_schedule_lr(&sch, s < steps ? s : steps - 1), nstep ? tstep / nstep : 0.0);
            fflush(stdout);
        }
        if (s == steps) break;
        double ts = now();
        secap_lm_batch b = secap_lmtext_batch(c, tr, seed, s / spe, s % spe, B);
        secap_backward(c, secap_lm_loss(c, m, &b));
        secap_clip_grad_norm(opt, 1.0);
        secap_adamw_step(opt, secap_schedule_lr(&sch, s));
        secap_adamw_zero_grad(opt);
        secap_ctx_reset(c);
        tstep += now() - ts;
        nstep++;
    }
    printf("total %.1f s (%.3f s per training step, %.0f tokens/s)\n", now() - t0, tstep / nstep,
           (double)B * T * nstep / tstep);
    free(trb);
    free(hob);
    secap_adamw_free(opt);
    secap_llama_free(m);
    secap_ctx_free(c);
    secap_lmtext_free(tr);
    secap_lmtext_free(ho);
    secap_dataset_free(d);
    secap_problems_free(&probs);
    secap_spm_free(tok);
    return 0;
}
