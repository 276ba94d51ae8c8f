/* Captions from a secap-train checkpoint (secap/infer.h).
 *
 * The models come from the trainer's own builder (secap_train_build_models)
 * run on the checkpoint's config text, so inference and training cannot
 * disagree on sizes, tokenizers or the LLaMA's base; then the checkpoint's
 * trainable tensors are read over them (secap_ckpt_load_params).
 *
 * One batch of B clips:
 *   a      [B, F, A]  features (cache or encoder), frames [B]
 *   qo     [B, Q, H]  Q-Former query mode
 *   x      [B, Q, D]  audio_llama_project(qo) (qformer.bridge = linear: the
 *                     pooled features through the bridge, src/train/bridge.c)
 *   prefix [B, T, D]  rows [BOS][x_b][prompt] (secap_llama_caption_batch
 *                     without a caption: its trailing EOS is dropped by
 *                     giving secap_generate the row length minus one)
 *   ids               secap_generate (greedy / beams / sampling per decode)
 */
#include "secap/infer.h"
#include "train_internal.h"

#include "secap/audio.h"
#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/weights.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct secap_captioner {
    trainer tr;
    char *ckpt;
    long long gstep;
    secap_decode_config dec;
    char prompt[512];
    int32_t *prompt_ids;
    int prompt_len;
};

int secap_train_encode_prompt(trainer *tr, const char *text, int32_t **out)
{
    if (tr->spm) {
        const int32_t *ids;
        size_t k = secap_spm_encode(tr->spm, text, strlen(text), 0, tr->spm_scratch, &ids);
        *out = secap_xmalloc((k ? k : 1) * sizeof *ids, "prompt ids");
        memcpy(*out, ids, k * sizeof *ids);
        return (int)k;
    }
    return secap_berttok_tokenize(tr->llm_bert, text, out);
}

static void encode_prompt(secap_captioner *cp)
{
    free(cp->prompt_ids);
    cp->prompt_ids = NULL;
    cp->prompt_len = secap_train_encode_prompt(&cp->tr, cp->prompt, &cp->prompt_ids);
}

static void captioner_release(void *arg)
{
    secap_captioner *cp = arg;
    secap_train_free_models(&cp->tr);
    if (cp->tr.c) secap_ctx_free(cp->tr.c);
    free(cp->prompt_ids);
    free(cp->ckpt);
    free(cp);
}

secap_captioner *secap_captioner_open(const char *path, int use_cache, int threads)
{
    char *ckpt = secap_ckpt_resolve("--checkpoint", path);
    secap_cleanup cl0;
    secap_cleanup_push(&cl0, free, ckpt);
    secap_captioner *cp = secap_xcalloc(1, sizeof *cp, "captioner");
    secap_cleanup cl1;
    secap_cleanup_push(&cl1, free, cp);
    trainer *tr = &cp->tr;
    int64_t stage_idx, step, gstep;
    secap_ckpt_read_config(ckpt, &tr->cfg, &stage_idx, &step, &gstep);
    secap_cleanup_pop(&cl1);
    secap_cleanup_pop(&cl0);
    cp->ckpt = ckpt;
    cp->gstep = (long long)gstep;
    secap_cleanup cl;
    secap_cleanup_push(&cl, captioner_release, cp);

    const secap_train_config *t = &tr->cfg;
    int ci = -1;
    for (int i = 0; i < t->train.nstages; i++)
        if (t->train.stage[i] == SECAP_STAGE_CAPTION) ci = i;
    if (ci < 0)
        secap_fatal("checkpoint %s: its run has no caption stage (train.stages = %s), so it cannot caption (hint: "
                    "a checkpoint of a run with train.stages including caption)", ckpt, t->train.stages);
    if (stage_idx < ci || (stage_idx == ci && step == 0))
        secap_fatal("checkpoint %s was saved at stage %s step %lld, before any caption step (hint: finish the run "
                    "with bin/secap-train --resume %s, or pass the run directory for its newest checkpoint)", ckpt,
                    stage_idx < t->train.nstages ? secap_stage_name(t->train.stage[stage_idx]) : "done",
                    (long long)step, ckpt);
    secap_ckpt_need_file(ckpt, "hubert.weights", t->hubert.weights);
    if (strcmp(t->qformer.bridge, "linear")) secap_ckpt_need_file(ckpt, "qformer.vocab", t->qformer.vocab);   /* no Q-Former */
    secap_ckpt_need_file(ckpt, "llama.tokenizer", t->llama.tokenizer);
    if (t->llama.weights[0]) secap_ckpt_need_file(ckpt, "llama.weights", t->llama.weights);
    if (t->train.prompts[0]) secap_ckpt_need_file(ckpt, "train.prompts", t->train.prompts);
    if (!use_cache) tr->cfg.hubert.cache[0] = 0;
    else if (t->hubert.cache[0]) secap_ckpt_need_file(ckpt, "hubert.cache", t->hubert.cache);
    secap_ckpt_open_models(tr, ckpt, threads);

    secap_decode_config_default(&cp->dec);
    cp->dec.max_new_tokens = t->decode.max_new_tokens;
    cp->dec.num_beams = t->decode.num_beams;
    snprintf(cp->prompt, sizeof cp->prompt, "%s", t->decode.prompt);
    encode_prompt(cp);
    secap_cleanup_pop(&cl);
    return cp;
}

void secap_captioner_free(secap_captioner *cp)
{
    if (cp) captioner_release(cp);
}

const char *secap_captioner_checkpoint(const secap_captioner *cp) { return cp->ckpt; }
const secap_train_config *secap_captioner_config(const secap_captioner *cp) { return &cp->tr.cfg; }
long long secap_captioner_step(const secap_captioner *cp) { return cp->gstep; }
const secap_decode_config *secap_captioner_decode(const secap_captioner *cp) { return &cp->dec; }
const char *secap_captioner_prompt(const secap_captioner *cp) { return cp->prompt; }

int secap_captioner_set(secap_captioner *cp, const char *key, const char *value)
{
    if (!strncmp(key, "decode.", 7)) key += 7;
    if (!strcmp(key, "prompt")) {
        if (strlen(value) >= sizeof cp->prompt)
            secap_fatal("decode.prompt: %zu bytes, at most %zu (hint: a shorter prompt)", strlen(value),
                        sizeof cp->prompt - 1);
        snprintf(cp->prompt, sizeof cp->prompt, "%s", value);
        encode_prompt(cp);
        return 0;
    }
    return secap_decode_config_set(&cp->dec, key, value);
}

/* Features of clips [i0, i0 + B): [B, Fmax, A] in the step arena. */
static secap_tensor *features(trainer *tr, int B, const char *const *ids, const char *const *audio,
                              int32_t *frames)
{
    secap_ctx *c = tr->c;
    int cached = tr->fc != NULL && ids != NULL;
    for (int i = 0; cached && i < B; i++) cached = ids[i] && secap_featcache_has(tr->fc, ids[i]);
    if (cached) {
        float **f = secap_xcalloc((size_t)B, sizeof *f, "feature pointers");
        int64_t *F = secap_xcalloc((size_t)B, sizeof *F, "feature frames");
        int64_t A = 0, Tm = 0;
        for (int i = 0; i < B; i++) {
            int64_t dim;
            f[i] = secap_featcache_get(tr->fc, ids[i], &F[i], &dim);
            if (!f[i] || (A && dim != A))
                secap_fatal("hubert.cache %s: the features of %s cannot be read or have width %lld, not %lld (hint: "
                            "re-run bin/secap-extract, or --no-cache)", tr->cfg.hubert.cache, ids[i],
                            (long long)dim, (long long)A);
            A = dim;
            if (F[i] > Tm) Tm = F[i];
        }
        secap_tensor *x = secap_zeros(c, SECAP_SHAPE(B, Tm, A));
        for (int i = 0; i < B; i++) {
            memcpy(secap_f32(x) + (size_t)i * (size_t)(Tm * A), f[i], (size_t)(F[i] * A) * sizeof(float));
            frames[i] = (int32_t)F[i];
            free(f[i]);
        }
        free(f);
        free(F);
        secap_featnorm_apply_batch(tr, x, frames);
        return secap_train_hubert_top(tr, x, frames);
    }
    secap_audio *au = secap_xcalloc((size_t)B, sizeof *au, "audio");
    int64_t *ns = secap_xcalloc((size_t)B, sizeof *ns, "audio lengths");
    int64_t Nm = 0;
    for (int i = 0; i < B; i++) {
        char err[1024];
        if (!audio || !audio[i]) secap_fatal("caption: clip %d (%s) has no audio file and no cached features", i,
                                             ids && ids[i] ? ids[i] : "?");
        if (secap_audio_load(audio[i], SECAP_SAMPLE_RATE, &au[i], err, sizeof err) != 0) {
            for (int k = 0; k < i; k++) secap_audio_free(&au[k]);
            free(au);
            free(ns);
            secap_fatal("%s", err);
        }
        if (tr->cfg.data.normalize) secap_audio_normalize(au[i].x, au[i].n);
        ns[i] = au[i].n;
        if (ns[i] > Nm) Nm = ns[i];
    }
    float *wave = secap_xcalloc((size_t)B * (size_t)Nm, sizeof *wave, "audio batch");
    for (int i = 0; i < B; i++) {
        memcpy(wave + (size_t)i * (size_t)Nm, au[i].x, (size_t)au[i].n * sizeof *wave);
        secap_audio_free(&au[i]);
    }
    free(au);
    secap_tensor *y = secap_hubert_forward(c, tr->hub, wave, ns, B, Nm, tr->cfg.hubert.layer, frames);
    free(wave);
    free(ns);
    secap_featnorm_apply_batch(tr, y, frames);
    return secap_train_hubert_top(tr, y, frames);
}

static char *detok(trainer *tr, const int32_t *ids, int n)
{
    if (tr->spm) {
        int V = secap_spm_vocab_size(tr->spm), k = 0;
        int32_t *keep = secap_xmalloc(((size_t)n + 1) * sizeof *keep, "caption ids");
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < V) keep[k++] = ids[i];
        size_t len, o = 0;
        char *s = secap_spm_decode(tr->spm, keep, (size_t)k, &len);
        free(keep);
        for (size_t i = 0; i < len; i++)   /* a byte piece <0x00> would end the C string early */
            if (s[i]) s[o++] = s[i];
        s[o] = 0;
        return s;
    }
    /* WordPiece: tokens joined, "##" continuations glued, specials left out */
    size_t cap = 16, l = 0;
    char *s = secap_xmalloc(cap, "caption");
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t tl;
        const char *tok = ids[i] >= 0 && ids[i] < secap_berttok_size(tr->llm_bert)
                              ? secap_berttok_token(tr->llm_bert, ids[i], &tl) : NULL;
        if (!tok || (tl > 2 && tok[0] == '[' && tok[tl - 1] == ']')) continue;
        if (tl >= 2 && !strncmp(tok, "##", 2)) { tok += 2; tl -= 2; }
        while (l + tl + 1 > cap) cap *= 2;
        s = realloc(s, cap);
        if (!s) secap_fatal("caption: out of memory");
        memcpy(s + l, tok, tl);
        l += tl;
        s[l] = 0;
    }
    return s;
}

void secap_train_caption(trainer *tr, const secap_decode_config *dec, const int32_t *prompt, int prompt_len, int n,
                         const char *const *ids, const char *const *audio, int batch, char **out)
{
    secap_ctx *c = tr->c;
    if (batch <= 0) batch = tr->cfg.data.batch_size;
    if (batch > 256) batch = 256;
    const int32_t *pr[256];
    int32_t pl[256], lens[256], frames[256];
    for (int i = 0; i < batch; i++) {
        pr[i] = prompt;
        pl[i] = prompt_len;
    }
    int prev = secap_no_grad_begin(c), was_training = c->training;
    c->training = 0;
    for (int i0 = 0; i0 < n; i0 += batch) {
        int B = n - i0 < batch ? n - i0 : batch;
        secap_tensor *a = features(tr, B, ids ? ids + i0 : NULL, audio ? audio + i0 : NULL, frames);
        secap_tensor *x = secap_train_audio_tokens(tr, a, frames, NULL);   /* [B, Q, D] */
        secap_llama_batch lb = secap_llama_caption_batch(c, tr->llm, x, pr, pl, NULL, NULL, B);
        for (int b = 0; b < B; b++) lens[b] = lb.lens[b] - 1;   /* without the EOS */
        secap_gen_result r;
        secap_generate(c, tr->llm, lb.x, lens, NULL, NULL, dec, &r);
        for (int b = 0; b < B; b++) {
            int s = b * r.per_row;
            out[i0 + b] = detok(tr, r.ids + (size_t)s * (size_t)r.max_len, r.len[s]);
        }
        secap_gen_result_free(&r);
        secap_ctx_reset(c);
    }
    c->training = was_training;
    secap_no_grad_end(c, prev);
}

void secap_captioner_run(secap_captioner *cp, int n, const char *const *ids, const char *const *audio, int batch,
                         char **out)
{
    secap_decode_config_validate(&cp->dec, "decode settings");
    secap_train_caption(&cp->tr, &cp->dec, cp->prompt_ids, cp->prompt_len, n, ids, audio, batch, out);
}
