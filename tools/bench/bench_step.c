/* bench_step: one whole caption-stage training step at a mid-size
 * configuration, features not cached (issue 13, "Whole-step goal").
 *
 * Shapes: B = 4 clips of 4 s (N = 64000 samples at 16 kHz), HuBERT-base
 * (12 layers, H 768, random weights from tools/convert_hf.py --init random,
 * made once as build/bench/hubert-base.h5), frozen: F = 199 frames x 768.
 * Q-Former bert-base (12 layers, H 768, 12 heads, I 3072, 32 queries,
 * cross-attention in layers 0, 2, ..., 10, audio_project 768 -> 768,
 * audio_llama_project 768 -> 768, text side present as in the trainer),
 * trainable.  LLaMA 110M shape (D 768, 12 layers, 12 heads, FFN 2048,
 * V 32000, untied), random frozen float32 base, LoRA r 8, alpha 16, dropout
 * 0.05 on q_proj, v_proj.  Each row: [BOS] [32 audio vectors] [15 prompt]
 * [31 caption] [EOS], T = 80.  One step, the trainer's order
 * (src/train/trainer.c, step_caption):
 *   a      = HuBERT(wave)                    [B, F, 768]  (no grad)
 *   qo     = Qformer_query(a, frames)        [B, 32, 768] (tape, dropout 0.1)
 *   x      = audio_llama_project(qo)         [B, 32, 768]
 *   logits = LLaMA(caption batch of x)       [B, T, V]
 *   loss   = mean CE over the caption tokens and EOS
 *   zero grads, backward, AdamW (lr 1e-4, weight decay 0.05 except biases
 *   and LayerNorms) over the Q-Former tables and the LoRA table.
 *
 * Model FLOPs per step (2 per multiply-add of every matrix product):
 *   HuBERT forward                     secap_hubert_flops
 *   Q-Former query mode, forward F_q:  audio_project 2 B F A W; per layer
 *     Q/K/V/O 8 R H^2, QK^T and PV 4 R Q H, FFN 4 R H I (R = B Q rows), in
 *     cross layers Q/O 4 R H^2, the audio K/V 4 B F W H, QK^T and PV 4 R F H;
 *     audio_llama_project 2 R H D
 *   backward of the Q-Former 2 F_q less the audio_project input gradient
 *     (2 B F A W: the frozen features take no gradient)
 *   LLaMA as bench_caption: forward 2 P N + attention 4 B T^2 D per layer
 *     + LoRA; backward 2 P N (input gradients only) + 2x attention and LoRA.
 * The fraction is of the sgemm rate measured in the same process (2048 x
 * 1024 x 1024, best of 5) and of the nominal 2-core AVX-512 peak (330
 * GFLOP/s, BENCHMARKS.md).  tools/bench/step_torch.py is the same step in
 * PyTorch.
 *
 *   bin/bench/bench_step [--steps N] [--warmup N]
 * Prints each step, the phase medians and one line
 * "RESULT bench=step ms=... gflop=... sgemm_gflops=..." (tools/bench/run.py). */
#include "benchutil.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/hubert.h"
#include "secap/llama.h"
#include "secap/optim.h"
#include "secap/params.h"
#include "secap/qformer.h"
#include "secap/rng.h"
#include "secap/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define B 4
#define NSAMP 64000
#define NP 15
#define NC 31
#define NPHASE 6

static const char *const PHASE[NPHASE] = { "hubert fwd", "qformer fwd", "llama fwd", "loss", "backward",
                                           "adamw step" };

/* Gliding harmonics with an envelope and a little noise (as bench_hubert). */
static void speechlike(float *x, int64_t n, uint64_t seed)
{
    secap_rng r;
    secap_rng_seed(&r, seed);
    double phase = 0;
    for (int64_t i = 0; i < n; i++) {
        double t = i / 16000.0, f = 140.0 * (1 + 0.25 * sin(2 * M_PI * 1.3 * t)) + 30 * t, s = 0;
        phase += 2 * M_PI * f / 16000.0;
        for (int h = 1; h <= 10; h++) s += sin(h * phase + h) / h;
        double env = 0.5 + 0.5 * pow(sin(2 * M_PI * 3.0 * t), 2);
        x[i] = (float)(0.2 * s * env + 0.02 * secap_rng_normal(&r));
    }
}

/* build/bench/hubert-base.h5, made once with the converter (random weights). */
static const char *hubert_weights(void)
{
    static const char *path = "build/bench/hubert-base.h5";
    if (access(path, R_OK) != 0) {
        mkdir("build", 0777);
        mkdir("build/bench", 0777);
        const char *cmd = "/usr/bin/python3 tools/convert_hf.py --init random --config hubert-base "
                          "--out build/bench/hubert-base.h5";
        fprintf(stderr, "bench_step: making %s: %s\n", path, cmd);
        if (system(cmd) != 0)
            secap_fatal("bench_step: '%s' failed (hint: run from the repository root; needs python3-numpy, "
                        "python3-h5py)", cmd);
    }
    return path;
}

/* Forward FLOPs of the Q-Former's query mode over F audio frames. */
static double qformer_flops(const secap_qformer_config *cf, double F)
{
    double H = cf->hidden_size, Im = cf->intermediate_size, W = cf->encoder_width, Q = cf->num_query_tokens;
    double R = (double)B * Q, f = 2.0 * B * F * cf->audio_width * W;
    for (int l = 0; l < cf->num_hidden_layers; l++) {
        f += 8 * R * H * H + 4 * R * Q * H + 4 * R * H * Im;
        if (l % cf->cross_attention_freq == 0) f += 4 * R * H * H + 4.0 * B * F * W * H + 4 * R * F * H;
    }
    return f + 2 * R * H * cf->llm_width;
}

int main(int argc, char **argv)
{
    long steps = 3, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (secap_cli_is(argv[i], "--steps"))
            steps = secap_cli_long(secap_cli_value(argc, argv, &i, "--steps", "bench_step"), "--steps", 1, 1000);
        else if (secap_cli_is(argv[i], "--warmup"))
            warmup = secap_cli_long(secap_cli_value(argc, argv, &i, "--warmup", "bench_step"), "--warmup", 0, 100);
        else
            secap_fatal("bench_step: unknown argument %s (usage: bench_step [--steps N] [--warmup N])", argv[i]);
    }
    secap_threads_init(0);
    secap_ctx *c = secap_ctx_new(0, 0, 1);
    c->training = 1;

    double t0 = secap_now();
    secap_hubert *hub = secap_hubert_load(c, hubert_weights(), 0);
    const secap_hubert_config *hc = secap_hubert_cfg(hub);

    secap_qformer_config qc;
    secap_qformer_config_default(&qc);
    qc.audio_width = hc->hidden_size;
    qc.encoder_width = 768;
    qc.llm_width = 768;
    secap_qformer *qf = secap_qformer_init_random(c, &qc, 1, 3);

    secap_llama_config lc;
    secap_llama_config_default(&lc);
    lc.vocab_size = 32000;
    lc.hidden_size = 768;
    lc.intermediate_size = 2048;
    lc.num_hidden_layers = 12;
    lc.num_attention_heads = 12;
    lc.num_key_value_heads = 12;
    lc.max_position_embeddings = 1024;
    lc.rms_norm_eps = 1e-5;
    secap_lora_config lo;
    secap_lora_config_default(&lo);   /* r 8, alpha 16, dropout 0.05, q_proj,v_proj */
    secap_llama_opts o = { .lora = &lo, .seed = 7 };
    secap_llama *llm = secap_llama_init_random(c, &lc, &o);
    fprintf(stderr, "bench_step: models ready in %.1f s\n", secap_now() - t0);

    secap_adamw *opt = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int nd = secap_adamw_group(opt, 1.0f, 0.0f), d = secap_adamw_group(opt, 1.0f, 0.05f);
    const secap_params *tabs[3] = { secap_qformer_bert_params(qf), secap_qformer_root_params(qf),
                                    secap_llama_lora_params(llm) };
    int64_t ntrain = 0;
    for (int i = 0; i < 3; i++) {
        secap_adamw_add_params(opt, c, tabs[i], "*.bias,*LayerNorm*", NULL, nd);
        secap_adamw_add_params(opt, c, tabs[i], NULL, NULL, d);
        ntrain += secap_params_numel(tabs[i], 1);
    }

    float *wave = secap_xmalloc(sizeof(float) * B * NSAMP, "bench_step audio");
    int64_t nsamp[B];
    for (int b = 0; b < B; b++) {
        speechlike(wave + (size_t)b * NSAMP, NSAMP, 7 + (uint64_t)b);
        nsamp[b] = NSAMP;
    }
    secap_rng r;
    secap_rng_seed(&r, 7);
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
    const int Q = qc.num_query_tokens, T = 1 + Q + NP + NC + 1;
    int64_t one = NSAMP;
    double Fr = 0;   /* frames per clip, read off the first forward */
    double gh = secap_hubert_flops(hc, nsamp, B, -1);
    double peak = bench_sgemm_rate();
    double *tot = secap_xmalloc(sizeof(double) * (size_t)steps, "bench_step times"), *ph[NPHASE];
    for (int p = 0; p < NPHASE; p++) ph[p] = secap_xmalloc(sizeof(double) * (size_t)steps, "bench_step times");
    double gf = 0;
    for (long it = 0; it < warmup + steps; it++) {
        double t[NPHASE + 1];
        int32_t frames[B];
        t[0] = secap_now();
        int prev = secap_no_grad_begin(c);
        secap_tensor *a = secap_hubert_forward(c, hub, wave, nsamp, B, one, -1, frames);
        secap_no_grad_end(c, prev);
        t[1] = secap_now();
        secap_tensor *qo = secap_qformer_query(c, qf, a, frames);
        secap_tensor *x = secap_qformer_llm_project(c, qf, qo);
        t[2] = secap_now();
        secap_llama_batch bt = secap_llama_caption_batch(c, llm, x, pp, plen, cp, clen, B);
        if (bt.T != T) secap_fatal("bench_step: batch has T %d, expected %d", bt.T, T);
        secap_tensor *logits = secap_llama_forward(c, llm, bt.x, bt.lens);
        t[3] = secap_now();
        secap_tensor *loss = secap_llama_loss(c, logits, bt.targets);
        t[4] = secap_now();
        secap_adamw_zero_grad(opt);
        secap_backward(c, loss);
        t[5] = secap_now();
        secap_adamw_step(opt, 1e-4f);
        float lv = secap_f32(loss)[0];
        if (!isfinite(lv)) secap_fatal("bench_step: non-finite loss at step %ld", it);
        if (it == 0) {
            Fr = a->shape[1];
            double gq = qformer_flops(&qc, Fr);
            gf = gh + 3 * gq - 2.0 * B * Fr * qc.audio_width * qc.encoder_width +
                 bench_llama_step_flops(&lc, B, lo.r, 2, T);
            printf("whole caption step: HuBERT-base (frozen, %d x %.0f s -> %.0f frames), Q-Former L=%d H=%d I=%d "
                   "Q=%d, LLaMA 110M shape + LoRA r %d on %s; %lld trainable, T=%d, %d threads\n", B,
                   NSAMP / 16000.0, Fr, qc.num_hidden_layers, qc.hidden_size, qc.intermediate_size, Q, lo.r,
                   lo.target_modules, (long long)ntrain, T, secap_threads());
            printf("model FLOPs per step %.1f GFLOP (HuBERT %.1f, Q-Former fwd %.1f x ~3, LLaMA %.1f); sgemm "
                   "2048x1024x1024 in this process %.1f GFLOP/s\n", gf * 1e-9, gh * 1e-9, gq * 1e-9,
                   bench_llama_step_flops(&lc, B, lo.r, 2, T) * 1e-9, peak * 1e-9);
        }
        secap_ctx_reset(c);
        t[6] = secap_now();
        double ms = (t[6] - t[0]) * 1e3;
        printf("  %s %ld: %.1f ms  (loss %.4f)\n", it < warmup ? "warm-up" : "step", it < warmup ? it + 1 :
               it - warmup + 1, ms, lv);
        fflush(stdout);
        if (it >= warmup) {
            tot[it - warmup] = ms;
            for (int p = 0; p < NPHASE; p++) ph[p][it - warmup] = (t[p + 1] - t[p]) * 1e3;
        }
    }
    double med = median(tot, (int)steps);
    for (int p = 0; p < NPHASE; p++) printf("  phase %-12s median %8.1f ms\n", PHASE[p], median(ph[p], (int)steps));
    printf("median %.1f ms/step, %.1f GFLOP/s = %.0f %% of the in-process sgemm rate, %.0f %% of 330 GFLOP/s\n", med,
           gf / (med * 1e-3) * 1e-9, 100 * gf / (med * 1e-3) / peak, 100 * gf / (med * 1e-3) / 330e9);
    printf("RESULT bench=step ms=%.1f gflop=%.2f sgemm_gflops=%.1f hubert_ms=%.1f\n", med, gf * 1e-9, peak * 1e-9,
           median(ph[0], (int)steps));
    for (int p = 0; p < NPHASE; p++) free(ph[p]);
    free(tot);
    free(wave);
    secap_adamw_free(opt);
    secap_llama_free(llm);
    secap_qformer_free(qf);
    secap_hubert_free(hub);
    secap_ctx_free(c);
    return 0;
}
