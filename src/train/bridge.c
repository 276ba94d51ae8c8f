/* The audio -> LLaMA bridge of the caption stage, and its linear ablation
 * (qformer.bridge; SECAP.md section 3: "Q-Former over a linear bridge
 * +4.85 %").
 *
 * qformer.bridge = qformer (SECap):
 *   qo = Q-Former query mode (a)          [B, Q, H]
 *   x  = audio_llama_project(qo)          [B, Q, D]
 * qformer.bridge = linear (the ablation's baseline; this project's choice,
 * as SECap's paper gives no code for it):
 *   P[b, q, t] = 1 / |S_bq| for t in S_bq, else 0        [B, Q, T]
 *     S_bq = [floor(q F_b / Q), max(floor((q+1) F_b / Q), floor(q F_b / Q) + 1))
 *     F_b = the clip's frames (at least 1): Q contiguous segments of equal
 *     length (+-1 frame) that cover the valid frames; a clip shorter than Q
 *     frames repeats frames.  Padding frames never enter.
 *   m = P a                                 [B, Q, A]   (average pooling over time)
 *   x = m W^T + b, W [D, A], b [D]          [B, Q, D]
 * so the LLaMA sees the same number of audio positions (num_query_tokens)
 * either way and only the bridge differs.  W starts as PyTorch's
 * nn.Linear (kaiming uniform), b at zero; both train in the caption stage
 * (with LoRA).  Checkpoints hold them as "bridge.weight", "bridge.bias".
 * No Q-Former is built, so stage qformer does not apply (the config refuses
 * it, src/train/config.c).  HuBERT stays frozen: gradients reach W and b
 * only. */
#include "train_internal.h"

#include "secap/base.h"
#include "secap/ops.h"

void secap_bridge_build(trainer *tr, int A, int D)
{
    secap_params *p = secap_params_new("bridge");
    secap_params_default_trainable(p, 1);
    int iw = secap_params_add(p, &tr->bridge_w, SECAP_SHAPE(D, A), "weight");
    secap_params_add(p, &tr->bridge_b, SECAP_SHAPE(D), "bias");
    secap_params_set_init(p, iw, SECAP_INIT_KAIMING, 0);
    secap_params_load(p, tr->c, NULL, NULL, tr->cfg.train.seed ^ 0xb41d6eu);
    tr->bridge = p;
}

/* a [B, T, A], frames [B] -> [B, Q, A] averages over Q segments of each
 * clip's valid frames (the pooling matrix is a constant). */
static secap_tensor *segment_pool(secap_ctx *c, secap_tensor *a, const int32_t *frames, int Q)
{
    int64_t B = a->shape[0], T = a->shape[1];
    secap_tensor *P = secap_zeros(c, SECAP_SHAPE(B, Q, T));
    float *p = secap_f32(P);
    for (int64_t b = 0; b < B; b++) {
        int64_t F = frames[b] < 1 ? 1 : frames[b] > T ? T : frames[b];
        for (int64_t q = 0; q < Q; q++) {
            int64_t s = q * F / Q, e = (q + 1) * F / Q;
            if (e <= s) e = s + 1;
            for (int64_t t = s; t < e; t++) p[(b * Q + q) * T + t] = 1.0f / (float)(e - s);
        }
    }
    return secap_matmul(c, P, a, 0, 0);
}

secap_tensor *secap_train_audio_tokens(trainer *tr, secap_tensor *a, const int32_t *frames, secap_tensor **qo_out)
{
    secap_ctx *c = tr->c;
    if (qo_out) *qo_out = NULL;
    if (tr->bridge) {
        secap_tensor *m = segment_pool(c, a, frames, tr->cfg.qformer.num_query_tokens);
        return secap_linear(c, m, tr->bridge_w, tr->bridge_b);
    }
    if (!tr->qf) secap_fatal("caption: no Q-Former and no linear bridge built (hint: a bug; please report it)");
    secap_tensor *qo = secap_qformer_query(c, tr->qf, a, frames);
    if (qo_out) *qo_out = qo;
    return secap_qformer_llm_project(c, tr->qf, qo);
}

/* qformer.freeze_in_caption (ablation; SECAP.md: freezing the Q-Former in
 * stage 2 cost SECap 19.5 % similarity).  Frozen: the BERT layers, the
 * query tokens, audio_project, speech_proj and text_proj, which take no
 * gradient from here on (the step computes none for them).  Still trained
 * with LoRA: audio_llama_project, the Q-Former's map into the LLaMA's
 * width, which stage qformer never trains (it starts random in stage
 * caption, so freezing it too would feed the LLaMA a random projection).
 * Called by secap_train_stage_optimizer after the LoRA groups. */
void secap_train_freeze_qformer(trainer *tr, int nodecay_group, int decay_group)
{
    const secap_params *root = secap_qformer_root_params(tr->qf), *bert = secap_qformer_bert_params(tr->qf);
    if (secap_adamw_add_params(tr->opt, tr->c, root, "audio_llama_project.bias", NULL, nodecay_group) +
            secap_adamw_add_params(tr->opt, tr->c, root, "audio_llama_project.weight", NULL, decay_group) != 2)
        secap_fatal("qformer.freeze_in_caption: the Q-Former has no trainable audio_llama_project (hint: a Q-Former "
                    "built with the LLaMA's width, llm_width > 0)");
    const secap_params *tabs[3] = { bert, root, tr->hub_top ? secap_hubert_params(tr->hub_top) : NULL };
    for (int k = 0; k < 3 && tabs[k]; k++)
        for (int i = secap_params_next(tabs[k], NULL, -1); i >= 0; i = secap_params_next(tabs[k], NULL, i)) {
            const secap_param_entry *e = secap_params_entry(tabs[k], i);
            if (k == 1 && secap_params_match("audio_llama_project.*", e->name)) continue;
            if (e->t) e->t->requires_grad = 0;
        }
}
