/* The stage-1 Q-Former of a secap-train checkpoint (secap/ckpt_qformer.h):
 * the trainer's models rebuilt from the checkpoint's config text and its
 * trainable tensors read over them, as src/train/infer.c does for
 * captioning. */
#include "secap/ckpt_qformer.h"
#include "train_internal.h"

#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/h5io.h"
#include "secap/weights.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct secap_ckpt_qformer {
    trainer tr;
    char *ckpt;
    long long gstep;
};

int secap_is_train_checkpoint(const char *path)
{
    if (secap_is_dir(path)) return 1;
    if (access(path, R_OK) != 0) return 0;
    if (!secap_h5_is_readable(path)) return 0;
    secap_weights *w = secap_weights_open(path);
    int r = secap_weights_has_attr(w, "format") && !strcmp(secap_weights_attr_string(w, "format"), SECAP_CKPT_FORMAT);
    secap_weights_discard(w);
    return r;
}

static void release(void *arg)
{
    secap_ckpt_qformer *k = arg;
    secap_train_free_models(&k->tr);
    if (k->tr.c) secap_ctx_free(k->tr.c);
    free(k->ckpt);
    free(k);
}

secap_ckpt_qformer *secap_ckpt_qformer_open(const char *path, int threads)
{
    if (access(path, F_OK) != 0)
        secap_fatal("--model %s: %s (hint: a ckpt-*.h5 or best.h5 written by bin/secap-train, its run directory, or a "
                    "Q-Former file)", path, strerror(errno));
    char *ckpt = secap_ckpt_resolve("--model", path);
    secap_cleanup cl0;
    secap_cleanup_push(&cl0, free, ckpt);
    secap_ckpt_qformer *k = secap_xcalloc(1, sizeof *k, "checkpoint Q-Former");
    secap_cleanup cl1;
    secap_cleanup_push(&cl1, free, k);
    trainer *tr = &k->tr;
    int64_t stage_idx, step, gstep;
    secap_ckpt_read_config(ckpt, &tr->cfg, &stage_idx, &step, &gstep);
    secap_cleanup_pop(&cl1);
    secap_cleanup_pop(&cl0);
    k->ckpt = ckpt;
    k->gstep = (long long)gstep;
    secap_cleanup cl;
    secap_cleanup_push(&cl, release, k);

    const secap_train_config *t = &tr->cfg;
    int qi = -1, any_q = 0, any_llm = 0;
    for (int i = 0; i < t->train.nstages; i++) {
        if (t->train.stage[i] == SECAP_STAGE_QFORMER) qi = i;
        any_q |= t->train.stage[i] != SECAP_STAGE_LM;
        any_llm |= t->train.stage[i] != SECAP_STAGE_QFORMER;
    }
    if (!any_q)
        secap_fatal("checkpoint %s: its run has no Q-Former (train.stages = %s) (hint: a checkpoint of a run with "
                    "the qformer or caption stage)", ckpt, t->train.stages);
    if (qi >= 0 && (stage_idx < qi || (stage_idx == qi && step == 0)))
        fprintf(stderr, "secap: warning: checkpoint %s was saved at stage %s step %lld, before any qformer step: its "
                "Q-Former is the initial one\n", ckpt,
                stage_idx < t->train.nstages ? secap_stage_name(t->train.stage[stage_idx]) : "done", (long long)step);
    secap_ckpt_need_file(ckpt, "hubert.weights", t->hubert.weights);
    secap_ckpt_need_file(ckpt, "qformer.vocab", t->qformer.vocab);
    if (any_llm) {
        /* the caption stage's LLaMA sets audio_llama_project's width */
        secap_ckpt_need_file(ckpt, "llama.tokenizer", t->llama.tokenizer);
        if (t->llama.weights[0]) secap_ckpt_need_file(ckpt, "llama.weights", t->llama.weights);
        if (t->train.prompts[0]) secap_ckpt_need_file(ckpt, "train.prompts", t->train.prompts);
    }
    if (t->hubert.cache[0] && access(t->hubert.cache, R_OK) != 0) tr->cfg.hubert.cache[0] = 0;
    secap_ckpt_open_models(tr, ckpt, threads);
    secap_cleanup_pop(&cl);
    return k;
}

void secap_ckpt_qformer_free(secap_ckpt_qformer *k)
{
    if (k) release(k);
}

secap_ctx *secap_ckpt_qformer_ctx(secap_ckpt_qformer *k) { return k->tr.c; }
const secap_qformer *secap_ckpt_qformer_model(const secap_ckpt_qformer *k) { return k->tr.qf; }
const secap_hubert *secap_ckpt_qformer_hubert(const secap_ckpt_qformer *k) { return k->tr.hub; }
const secap_hubert *secap_ckpt_qformer_hubert_top(const secap_ckpt_qformer *k) { return k->tr.hub_top; }
void secap_ckpt_qformer_normalize(const secap_ckpt_qformer *k, float *x, int64_t T, int64_t A)
{
    secap_featnorm_apply(&k->tr, x, T, A);
}
const secap_train_config *secap_ckpt_qformer_config(const secap_ckpt_qformer *k) { return &k->tr.cfg; }
const char *secap_ckpt_qformer_path(const secap_ckpt_qformer *k) { return k->ckpt; }
long long secap_ckpt_qformer_step(const secap_ckpt_qformer *k) { return k->gstep; }
