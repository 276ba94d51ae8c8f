/* bench_caption: one caption-stage training step of the LLaMA with LoRA for
 * the 110M shape (issue 10, "Scale, speed and memory").
 *
 * Shapes: llama2.c's stories110M (D 768, L 12 layers, H 12 heads, FFN I 2048,
 * V 32000, untied), random weights, frozen base in float32 and (second row)
 * in bf16; LoRA r 8, alpha 16, dropout 0.05 on q_proj,v_proj.  B = 8 rows of
 * T = 80 steps: [BOS] [Q = 32 audio vectors] [15 prompt ids] [31 caption
 * ids] [EOS].  The audio vectors are a leaf that takes a gradient (in the
 * trainer they come from the Q-Former's projection).  One step:
 *   logits = secap_llama_forward(caption batch)       [B, T, V]  (tape)
 *   loss   = mean CE over the caption tokens and EOS  (32 targets per row)
 *   zero grads, backward (LoRA A/B and the audio vectors), AdamW step on the
 *   LoRA table (lr 1e-4, weight decay 0.0).
 * Training mode (LoRA dropout active).
 *
 * Model FLOPs per step (2 per multiply-add), N = B T tokens, P = the frozen
 * product weights (4 D^2 + 3 D I per layer, plus lm_head V D):
 *   forward   2 P N + attention 4 B T^2 D per layer (QK^T and PV, the full
 *             T x T square) + LoRA 2 * 2 N r (D + D) per layer
 *   backward  input gradients only through frozen weights: 2 P N; attention
 *             2x its forward; LoRA 2x its forward (dX and dA/dB)
 * The fraction is taken of the sgemm rate measured in the same process (a
 * 2048 x 1024 x 1024 product, best of 5) and of the nominal 2-core AVX-512
 * peak (330 GFLOP/s, BENCHMARKS.md).
 *
 *   bin/bench/bench_caption [--steps N] [--warmup N] [--dtype f32|bf16|both]
 * The f32 and bf16 steps alternate; the lines "caption c DTYPE median_ms=..."
 * are what tools/bench/caption_torch.py --interleave reads. */
#include "benchutil.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/llama.h"
#include "secap/optim.h"
#include "secap/params.h"
#include "secap/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 8
#define Q 32
#define NP 15
#define NC 31
#define NPHASE 4

static const char *const PHASE[NPHASE] = { "forward", "loss", "backward", "adamw step" };

int main(int argc, char **argv)
{
    long steps = 3, warmup = 1;
    const char *dtype = "both";
    for (int i = 1; i < argc; i++) {
        if (secap_cli_is(argv[i], "--steps"))
            steps = secap_cli_long(secap_cli_value(argc, argv, &i, "--steps", "bench_caption"), "--steps", 1, 1000);
        else if (secap_cli_is(argv[i], "--warmup"))
            warmup = secap_cli_long(secap_cli_value(argc, argv, &i, "--warmup", "bench_caption"), "--warmup", 0, 100);
        else if (secap_cli_is(argv[i], "--dtype"))
            dtype = secap_cli_value(argc, argv, &i, "--dtype", "bench_caption");
        else
            secap_fatal("bench_caption: unknown argument %s (usage: bench_caption [--steps N] [--warmup N] "
                        "[--dtype f32|bf16|both])", argv[i]);
    }
    int use[2] = { strcmp(dtype, "bf16") != 0, strcmp(dtype, "f32") != 0 };
    if (!use[0] && !use[1]) secap_fatal("bench_caption: --dtype %s is not f32, bf16 or both", dtype);
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
    secap_lora_config lc;
    secap_lora_config_default(&lc);   /* r 8, alpha 16, dropout 0.05, q_proj,v_proj */
    secap_ctx *c = secap_ctx_new(0, 0, 1);
    c->training = 1;

    const char *name[2] = { "f32", "bf16" };
    secap_llama *m[2] = { NULL, NULL };
    secap_adamw *opt[2] = { NULL, NULL };
    int64_t nlora = 0;
    for (int k = 0; k < 2; k++) {
        if (!use[k]) continue;
        secap_llama_opts o = { .lora = &lc, .base_bf16 = k, .seed = 7 };
        double t0 = secap_now();
        m[k] = secap_llama_init_random(c, &cfg, &o);
        fprintf(stderr, "bench_caption: %s model initialised in %.1f s\n", name[k], secap_now() - t0);
        opt[k] = secap_adamw_new(0.9f, 0.999f, 1e-8f);
        secap_adamw_add_params(opt[k], c, secap_llama_lora_params(m[k]), NULL, NULL,
                               secap_adamw_group(opt[k], 1.0f, 0.0f));
        nlora = secap_params_numel(secap_llama_lora_params(m[k]), 1);
    }

    secap_rng r;
    secap_rng_seed(&r, 7);
    const int64_t D = cfg.hidden_size;
    float *audio = malloc(sizeof(float) * B * Q * (size_t)D);
    if (!audio) secap_fatal("bench_caption: out of memory for the audio vectors");
    for (int64_t i = 0; i < (int64_t)B * Q * D; i++) audio[i] = 0.02f * secap_rng_normal(&r);
    int32_t pids[B][NP], cids[B][NC], plen[B], clen[B];
    const int32_t *pp[B], *cp[B];
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < NP; i++) pids[b][i] = 3 + (int32_t)(secap_rng_u64(&r) % 31990);
        for (int i = 0; i < NC; i++) cids[b][i] = 3 + (int32_t)(secap_rng_u64(&r) % 31990);
        plen[b] = NP;
        clen[b] = NC;
        pp[b] = pids[b];
        cp[b] = cids[b];
    }
    const int T = 1 + Q + NP + NC + 1;
    double gf = bench_llama_step_flops(&cfg, B, lc.r, 2, T);
    double peak = bench_sgemm_rate();
    printf("caption step: LLaMA 110M shape (D 768, L 12, H 12, FFN 2048, V 32000), LoRA r %d alpha %g on %s "
           "(%lld trainable), B=%d T=%d (%d audio vectors, %d prompt, %d caption + EOS), %d threads\n", lc.r,
           lc.alpha, lc.target_modules, (long long)nlora, B, T, Q, NP, NC, secap_threads());
    printf("model FLOPs per step %.1f GFLOP; sgemm 2048x1024x1024 in this process %.1f GFLOP/s\n", gf * 1e-9,
           peak * 1e-9);
    fflush(stdout);

    double *tot[2], *ph[2][NPHASE];
    for (int k = 0; k < 2; k++) {
        tot[k] = malloc(sizeof(double) * (size_t)steps);
        for (int p = 0; p < NPHASE; p++) ph[k][p] = malloc(sizeof(double) * (size_t)steps);
    }
    for (long it = 0; it < warmup + steps; it++)
        for (int k = 0; k < 2; k++) {
            if (!use[k]) continue;
            double t[NPHASE + 1];
            t[0] = secap_now();
            secap_tensor *a = secap_leaf(c, SECAP_SHAPE(B, Q, D), audio);
            secap_llama_batch bt = secap_llama_caption_batch(c, m[k], a, pp, plen, cp, clen, B);
            if (bt.T != T) secap_fatal("bench_caption: batch has T %d, expected %d", bt.T, T);
            secap_tensor *logits = secap_llama_forward(c, m[k], bt.x, bt.lens);
            t[1] = secap_now();
            secap_tensor *loss = secap_llama_loss(c, logits, bt.targets);
            t[2] = secap_now();
            secap_adamw_zero_grad(opt[k]);
            secap_backward(c, loss);
            t[3] = secap_now();
            secap_adamw_step(opt[k], 1e-4f);
            float lv = secap_f32(loss)[0];
            secap_ctx_reset(c);
            t[4] = secap_now();
            double ms = (t[4] - t[0]) * 1e3;
            printf("  %s %s %ld: %.1f ms  (loss %.4f)\n", name[k], it < warmup ? "warm-up" : "step",
                   it < warmup ? it + 1 : it - warmup + 1, ms, lv);
            fflush(stdout);
            if (it >= warmup) {
                tot[k][it - warmup] = ms;
                for (int p = 0; p < NPHASE; p++) ph[k][p][it - warmup] = (t[p + 1] - t[p]) * 1e3;
            }
        }
    for (int k = 0; k < 2; k++) {
        if (!use[k]) continue;
        double med = median(tot[k], (int)steps);
        for (int p = 0; p < NPHASE; p++)
            printf("  %s phase %-12s median %8.1f ms\n", name[k], PHASE[p], median(ph[k][p], (int)steps));
        printf("%s median %.1f ms/step, %.1f GFLOP/s = %.0f %% of the in-process sgemm rate, %.0f %% of 330 GFLOP/s\n",
               name[k], med, gf / (med * 1e-3) * 1e-9, 100 * gf / (med * 1e-3) / peak,
               100 * gf / (med * 1e-3) / 330e9);
        printf("caption c %s median_ms=%.1f gflop=%.2f sgemm_gflops=%.1f\n", name[k], med, gf * 1e-9, peak * 1e-9);
        printf("RESULT bench=caption dtype=%s ms=%.1f gflop=%.2f sgemm_gflops=%.1f\n", name[k], med, gf * 1e-9,
               peak * 1e-9);
    }
    for (int k = 0; k < 2; k++) {
        for (int p = 0; p < NPHASE; p++) free(ph[k][p]);
        free(tot[k]);
        if (opt[k]) secap_adamw_free(opt[k]);
        secap_llama_free(m[k]);
    }
    free(audio);
    secap_ctx_free(c);
    return 0;
}
