/* bench_stage1: one stage-1 training step of a bert-base-sized Q-Former on
 * cached features (issue 9, "Speed").
 *
 * Shapes: B = 16 clips of 6 s (T = 300 HuBERT frames, A = 1024: HuBERT-large
 * width), Q-Former 12 layers, H 768, 12 heads, I 3072, 32 queries,
 * cross-attention in layers 0, 2, ..., 10 (W 768), V 21128, E 256;
 * transcript and caption of S = 32 tokens each; vCLUB estimator (hidden
 * 256).  audio_llama_project is left out (stage 1 does not use it).
 * One step, the trainer's order (secap/losses.h):
 *   q   = speech_proj(mean_q Qformer(audio))             [B, E]   (tape)
 *   t   = text_proj(Qformer_text(transcript)[CLS])       [B, E]   (no grad:
 *         U takes t as stop-gradient, nothing else reads it)
 *   k   = text_proj(Qformer_text(caption)[CLS])          [B, E]   (tape)
 *   secap_vclub_step(q, t)                 the estimator's own AdamW step
 *   L   = w_mi U(q, t) + w_con L_con(q, k, labels)      (full vCLUB, labels)
 *   zero grads, backward, AdamW step (lr 1e-4, weight decay 0.05)
 * Training mode (hidden dropout 0.1 active), as a real step.
 *
 * Prints each timed step, the median and the median of each phase, model
 * FLOPs per step (2 per multiply-add of every matrix product: forward F of
 * each branch; backward 2F for the query and caption branches, less the
 * audio_project input gradient the features do not need; the transcript
 * branch forward only) and the fraction of the sgemm rate measured in the
 * same process (a 2048 x 1024 x 1024 product, best of 5) and of the nominal
 * 2-core AVX-512 peak (330 GFLOP/s, BENCHMARKS.md).
 *
 *   bin/bench/bench_stage1 [--steps N] [--warmup N]
 * The last line, "stage1 c median_ms=...", is what tools/bench/stage1_torch.py
 * --interleave reads. */
#include "benchutil.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/losses.h"
#include "secap/optim.h"
#include "secap/qformer.h"
#include "secap/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 16
#define T 300
#define S 32
#define NPHASE 5

static const char *const PHASE[NPHASE] = { "query fwd", "text fwd x2", "vclub step", "objective+backward",
                                           "adamw step" };

/* Forward FLOPs of one layer stack pass over rows x H (self-attention over
 * `len` positions), plus cross-attention to Tk keys of width W when cross. */
static double layer_flops(const secap_qformer_config *cf, double rows, double len, int cross, double Tk, int B_)
{
    double H = cf->hidden_size, Im = cf->intermediate_size, Wd = cf->encoder_width;
    double f = 2 * rows * H * H * 4             /* Q, K, V, O */
             + 2 * 2 * rows * len * H           /* Q K^T, P V */
             + 2 * 2 * rows * H * Im;            /* FFN */
    if (cross) f += 2 * rows * H * H * 2        /* Q, O */
                  + 2 * 2 * B_ * Tk * Wd * H     /* K, V of the audio */
                  + 2 * 2 * rows * Tk * H;      /* Q K^T, P V */
    return f;
}

static double step_flops(const secap_qformer_config *cf, int Hm)
{
    double Q = cf->num_query_tokens, H = cf->hidden_size, E = cf->embed_dim;
    double audio_proj = 2.0 * B * T * cf->audio_width * cf->encoder_width;
    double query = audio_proj, text = 0;
    for (int l = 0; l < cf->num_hidden_layers; l++) {
        query += layer_flops(cf, B * Q, Q, l % cf->cross_attention_freq == 0, T, B);
        text += layer_flops(cf, B * S, S, 0, 0, B);
    }
    query += 2.0 * B * H * E;
    text += 2.0 * B * H * E;
    double est = 2.0 * B * (2 * E * Hm + 2 * Hm * E);    /* mu and logvar MLPs */
    /* forward + backward (2x) of query and caption, minus the audio_project
     * dX; transcript forward; estimator: its step (3x) and the bound (3x) */
    return 3 * (query + text) - audio_proj + text + 6 * est;
}

int main(int argc, char **argv)
{
    int steps = 3, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else { fprintf(stderr, "usage: bench_stage1 [--steps N] [--warmup N]\n"); return 2; }
    }
    if (steps < 1 || steps > 1000) steps = 3;
    secap_threads_init(0);
    secap_ctx *c = secap_ctx_new((size_t)8 << 30, (size_t)16 << 30, 1);
    c->training = 1;

    secap_qformer_config cf;
    secap_qformer_config_default(&cf);
    cf.llm_width = 0;
    secap_qformer *m = secap_qformer_init_random(c, &cf, 1, 1);
    secap_stage1_config sc;
    secap_stage1_config_default(&sc);
    sc.mi.x_dim = sc.mi.y_dim = cf.embed_dim;
    secap_vclub *est = secap_vclub_new(c, &sc.mi, NULL, NULL, 2);
    secap_params *tp = secap_contrastive_params_new(c, sc.temp_init, NULL, NULL);
    secap_tensor *temp = secap_params_entry(tp, 0)->t;

    secap_adamw *opt = secap_adamw_new(0.9f, 0.999f, 1e-8f);
    int nodecay = secap_adamw_group(opt, 1.0f, 0.0f), decay = secap_adamw_group(opt, 1.0f, 0.05f);
    const secap_params *tabs[3] = { secap_qformer_bert_params(m), secap_qformer_root_params(m), tp };
    int64_t nparam = 0;
    for (int i = 0; i < 3; i++) {
        secap_adamw_add_params(opt, c, tabs[i], "*.bias,*LayerNorm*,temp", NULL, nodecay);
        secap_adamw_add_params(opt, c, tabs[i], NULL, NULL, decay);
        nparam += secap_params_numel(tabs[i], 1);
    }

    secap_rng r;
    secap_rng_seed(&r, 7);
    float *audio = malloc(sizeof(float) * B * T * (size_t)cf.audio_width);
    for (int64_t i = 0; i < (int64_t)B * T * cf.audio_width; i++) audio[i] = secap_rng_normal(&r);
    int32_t frames[B], lens[B], labels[B], tids[B * S], cids[B * S];
    for (int b = 0; b < B; b++) {
        frames[b] = T;
        lens[b] = S;
        labels[b] = b % 7;
        for (int s = 0; s < S; s++) {
            tids[b * S + s] = s == 0 ? 101 : 1000 + (int32_t)(secap_rng_u64(&r) % 20000);
            cids[b * S + s] = s == 0 ? 101 : 1000 + (int32_t)(secap_rng_u64(&r) % 20000);
        }
    }

    double gf = step_flops(&cf, sc.mi.hidden);
    double peak = bench_sgemm_rate();
    printf("stage-1 step: Q-Former L=%d H=%d I=%d Q=%d freq=%d A=%d, B=%d T=%d S=%d, %lld trainable parameters, "
           "%d threads\n", cf.num_hidden_layers, cf.hidden_size, cf.intermediate_size, cf.num_query_tokens,
           cf.cross_attention_freq, cf.audio_width, B, T, S, (long long)nparam, secap_threads());
    printf("model FLOPs per step %.1f GFLOP; sgemm 2048x1024x1024 in this process %.1f GFLOP/s\n", gf * 1e-9,
           peak * 1e-9);
    fflush(stdout);

    double *tot = malloc(sizeof(double) * (size_t)steps), *ph[NPHASE];
    for (int p = 0; p < NPHASE; p++) ph[p] = malloc(sizeof(double) * (size_t)steps);
    for (int it = 0; it < warmup + steps; it++) {
        double t[NPHASE + 1];
        t[0] = secap_now();
        secap_tensor *a = secap_from_data(c, SECAP_SHAPE(B, T, cf.audio_width), audio);
        secap_tensor *q = secap_qformer_speech_embed(c, m, secap_qformer_query(c, m, a, frames),
                                                     SECAP_QFORMER_POOL_MEAN);
        t[1] = secap_now();
        int prev = secap_no_grad_begin(c);
        secap_tensor *tt = secap_qformer_text_embed(c, m, secap_qformer_text(c, m, tids, lens, NULL, B, S));
        secap_no_grad_end(c, prev);
        secap_tensor *k = secap_qformer_text_embed(c, m, secap_qformer_text(c, m, cids, lens, NULL, B, S));
        t[2] = secap_now();
        secap_vclub_step(c, est, q, tt, sc.mi.lr);
        t[3] = secap_now();
        secap_stage1_terms terms;
        secap_tensor *loss = secap_stage1_objective(c, &sc, est, temp, q, tt, k, labels, &r, &terms);
        secap_adamw_zero_grad(opt);
        secap_backward(c, loss);
        t[4] = secap_now();
        secap_adamw_step(opt, 1e-4f);
        secap_ctx_reset(c);
        t[5] = secap_now();
        double ms = (t[5] - t[0]) * 1e3;
        printf("  %s %d: %.1f ms  (U %.4f, L_con %.4f)\n", it < warmup ? "warm-up" : "step", it < warmup ? it + 1 :
               it - warmup + 1, ms, terms.mi, terms.con);
        fflush(stdout);
        if (it >= warmup) {
            tot[it - warmup] = ms;
            for (int p = 0; p < NPHASE; p++) ph[p][it - warmup] = (t[p + 1] - t[p]) * 1e3;
        }
    }
    double med = median(tot, steps);
    for (int p = 0; p < NPHASE; p++) printf("  phase %-20s median %8.1f ms\n", PHASE[p], median(ph[p], steps));
    printf("median %.1f ms/step, %.1f GFLOP/s = %.0f %% of the in-process sgemm rate, %.0f %% of 330 GFLOP/s\n", med,
           gf / (med * 1e-3) * 1e-9, 100 * gf / (med * 1e-3) / peak, 100 * gf / (med * 1e-3) / 330e9);
    printf("stage1 c median_ms=%.1f gflop=%.2f sgemm_gflops=%.1f\n", med, gf * 1e-9, peak * 1e-9);
    printf("RESULT bench=stage1 ms=%.1f gflop=%.2f sgemm_gflops=%.1f\n", med, gf * 1e-9, peak * 1e-9);
    for (int p = 0; p < NPHASE; p++) free(ph[p]);
    free(tot);
    free(audio);
    secap_adamw_free(opt);
    secap_params_free(tp);
    secap_vclub_free(est);
    secap_qformer_free(m);
    secap_ctx_free(c);
    return 0;
}
