/* bin/secap-train's run: models, stages, the step loop, metrics, signals
 * (secap/train.h; checkpoints in src/train/ckpt.c).
 *
 * One optimizer step of stage `qformer` (paper stage 1), batch of B clips:
 *   a  = HuBERT features [B, T, A] (feature cache, or the frozen encoder)
 *   qo = Q-Former query mode (a)               [B, Q, H]
 *   q  = speech_proj(mean_Q qo)                [B, E]
 *   t  = text_proj(text mode(transcript)[CLS]) [B, E]   (w_mi > 0)
 *   k  = text_proj(text mode(caption)[CLS])    [B, E]   (w_con > 0)
 *   1. vCLUB estimator step on detached (q, t)     (its own AdamW, loss.mi_lr);
 *      with w_mi = 0 and loss.mi_monitor = true too (t under no_grad, the
 *      dropout RNG put back; "mi" logs U measured on the batch, not trained)
 *   2. loss = w_mi U(q, t) + w_con L_con(q, k, labels); backward; clip; AdamW.
 * Stage `caption` (paper stage 2):
 *   x = audio_llama_project(qo) [B, Q, D] -> [BOS][x][prompt][caption][EOS]
 *   loss = mean cross entropy over caption tokens and EOS; the prompt is drawn
 *   per batch from the prompt list.  Trainable: Q-Former (all of it), LoRA.
 *   SECAP.md's optional stage-2 terms: with loss.caption_w_mi / caption_w_con
 *   > 0 the stage-1 objective with those weights (estimator step included)
 *   is added to the cross-entropy.
 *   Ablations (src/train/bridge.c): qformer.bridge = linear replaces the
 *   Q-Former and audio_llama_project by pooling + one Linear (no stage
 *   qformer); qformer.freeze_in_caption trains only audio_llama_project
 *   and LoRA here.
 * Stage `lm`: full-parameter LLaMA training on packed text (secap/lmtext.h),
 *   batch `step` of the stage a pure function of (lm.seed, step); from the
 *   caption stage on the base takes no gradient.
 * Learning rate: secap_schedule_lr (warm-up, then cosine / linear / constant
 * to optim.min_lr at the stage's last step).  A step whose loss or gradient
 * norm is not finite is skipped (no update, a warning, "skipped": 1 in
 * metrics.jsonl); train.max_bad_steps in a row stop the run with exit 1,
 * keeping the last good checkpoint.
 * Evaluation (both leave the RNG streams and the model state as they were):
 * eval.every: dev loss, and in stage qformer the dev probes of
 * src/train/probe.c (retrieval, emotion centroid, vCLUB U, transcript
 * probe; fields dev_r1 ... in metrics.jsonl); eval.caption_every (caption stage): dev captions
 * from the in-memory models, BLEU-4 / CIDEr / emotion accuracy, and best.h5
 * (a hard link to the checkpoint of the highest dev CIDEr, see save_best). */
#include "secap/train.h"
#include "train_internal.h"

#include "secap/base.h"
#include "secap/dist.h"
#include "secap/fileutil.h"
#include "secap/autograd.h"
#include "secap/ops.h"
#include "secap/emotion.h"
#include "secap/score.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop_signal;
static void on_stop(int sig) { g_stop_signal = sig; }

/* ------------------------------------------------------------ tokenizers */

static const char *const BUILTIN_PROMPTS[] = {
    "请用一句中文概括音频中讲话者的情感：",
    "请描述这段语音中说话人的情绪：",
    "用一句话描述说话人的语气和情感：",
    "这段话的说话人听起来是什么情绪？",
    "请概括说话人的情感状态和说话方式：",
};

/* ids of text for the LLaMA (no BOS/EOS), at most cap; returns the count. */
static int llm_encode(trainer *tr, const char *text, int32_t *out, int cap)
{
    int n = 0;
    if (tr->spm) {
        const int32_t *ids;
        size_t k = secap_spm_encode(tr->spm, text, strlen(text), 0, tr->spm_scratch, &ids);
        n = (int)(k < (size_t)cap ? k : (size_t)cap);
        memcpy(out, ids, (size_t)n * sizeof *out);
    } else {
        int32_t *ids = NULL;
        int k = secap_berttok_tokenize(tr->llm_bert, text, &ids);
        n = k < cap ? k : cap;
        memcpy(out, ids, (size_t)n * sizeof *out);
        free(ids);
    }
    return n;
}

static void load_prompts(trainer *tr)
{
    const secap_train_config *t = &tr->cfg;
    char **lines = NULL;
    int n = 0;
    if (t->train.prompts[0]) {
        FILE *f = fopen(t->train.prompts, "rb");
        if (!f) secap_fatal("train.prompts %s: %s (hint: a UTF-8 file with one prompt a line)", t->train.prompts,
                            strerror(errno));
        char buf[4096];
        while (fgets(buf, sizeof buf, f)) {
            size_t l = strlen(buf);
            while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r')) buf[--l] = 0;
            if (!l) continue;
            lines = realloc(lines, (size_t)(n + 1) * sizeof *lines);
            lines[n++] = secap_xstrdup(buf, "prompt");
        }
        fclose(f);
        if (!n) secap_fatal("train.prompts %s: no prompt in the file (hint: one prompt a line)", t->train.prompts);
    } else {
        n = (int)(sizeof BUILTIN_PROMPTS / sizeof *BUILTIN_PROMPTS);
        lines = secap_xmalloc((size_t)n * sizeof *lines, "prompts");
        for (int i = 0; i < n; i++) lines[i] = secap_xstrdup(BUILTIN_PROMPTS[i], "prompt");
    }
    tr->nprompts = n;
    tr->prompt_ids = secap_xcalloc((size_t)n, sizeof *tr->prompt_ids, "prompt ids");
    tr->prompt_len = secap_xcalloc((size_t)n, sizeof *tr->prompt_len, "prompt lengths");
    for (int i = 0; i < n; i++) {
        tr->prompt_ids[i] = secap_xmalloc(256 * sizeof(int32_t), "prompt ids");
        tr->prompt_len[i] = llm_encode(tr, lines[i], tr->prompt_ids[i], 256);
        free(lines[i]);
    }
    free(lines);
}

/* ------------------------------------------------------------------ data */

static void load_data(trainer *tr)
{
    secap_train_config *t = &tr->cfg;
    secap_problems probs = { 0 };
    tr->d = secap_dataset_read(t->data_dir, &t->data, &probs);
    secap_dataset_validate(tr->d, &probs);
    secap_dataset_apply_policy(tr->d, &probs, t->data.on_error);
    secap_problems_free(&probs);
    if (!tr->d->has_splits) secap_split_by_hash(tr->d, t->data.seed, t->data.split_ratios);
    int *idx = NULL;
    int ntrain = secap_split_indices(tr->d, SECAP_SPLIT_TRAIN, &idx);
    free(idx);
    if (ntrain == 0)
        secap_fatal("data %s: the train split is empty (hint: check train.list or data.split_ratios)", t->data_dir);
    tr->ntrain = ntrain;
}

/* Features of the batch: [B, Tmax, A] in the step arena and frames [B],
 * from the cache or the frozen encoder at hubert.layer. */
static secap_tensor *batch_features_frozen(trainer *tr, const secap_batch *b, int32_t *frames)
{
    secap_ctx *c = tr->c;
    if (tr->fc) {
        float *f[256];
        int64_t F[256], A = 0, Tm = 0;
        if (b->B > 256) secap_fatal("train: batch of %d items (hint: data.batch_size at most 256)", b->B);
        for (int i = 0; i < b->B; i++) {
            const char *id = tr->d->items[b->item[i]].id;
            int64_t dim;
            f[i] = secap_featcache_get(tr->fc, id, &F[i], &dim);
            if (!f[i])
                secap_fatal("hubert.cache %s: no features of %s (hint: run bin/secap-extract --hubert %s --data %s "
                            "--out %s, or leave hubert.cache empty to extract on the fly)", tr->cfg.hubert.cache,
                            id, tr->cfg.hubert.weights, tr->cfg.data_dir, tr->cfg.hubert.cache);
            if (A && dim != A) secap_fatal("hubert.cache %s: %s has width %lld, others %lld", tr->cfg.hubert.cache,
                                           id, (long long)dim, (long long)A);
            A = dim;
            if (F[i] > Tm) Tm = F[i];
        }
        secap_tensor *x = secap_zeros(c, SECAP_SHAPE(b->B, Tm, A));
        for (int i = 0; i < b->B; i++) {
            memcpy(secap_f32(x) + (size_t)(i * Tm * A), f[i], (size_t)(F[i] * A) * sizeof(float));
            frames[i] = (int32_t)F[i];
            free(f[i]);
        }
        secap_featnorm_apply_batch(tr, x, frames);
        return x;
    }
    int prev = secap_no_grad_begin(c);
    secap_tensor *y = secap_hubert_forward(c, tr->hub, b->audio, b->lengths, b->B, b->T, tr->cfg.hubert.layer, frames);
    secap_no_grad_end(c, prev);
    secap_featnorm_apply_batch(tr, y, frames);
    return y;
}

/* hubert.train_layers: the trainable top layers on x = hidden_states[L - N]
 * (x itself without them). */
secap_tensor *secap_train_hubert_top(trainer *tr, secap_tensor *x, const int32_t *frames)
{
    if (!tr->hub_top) return x;
    const secap_hubert_config *h = secap_hubert_cfg(tr->hub_top);
    return secap_hubert_layers(tr->c, tr->hub_top, x, frames, h->num_hidden_layers - tr->cfg.hubert.train_layers);
}

/* The batch's features from the cache or the frozen encoder at hubert.layer,
 * [augment] on training steps, then hubert.train_layers' trainable top layers. */
static secap_tensor *batch_features(trainer *tr, const secap_batch *b, int32_t *frames)
{
    secap_tensor *x = batch_features_frozen(tr, b, frames);
    secap_augment_batch(tr, b, x, frames);   /* [augment]: training steps only */
    return secap_train_hubert_top(tr, x, frames);
}

/* ---------------------------------------------------------------- models */

/* Every model file the config names, checked before any work: one message
 * listing each missing file with the commands that make it. */
static void check_model_files(const secap_train_config *t, int init_random)
{
    char msg[8192] = "";
    size_t n = 0;
    int bad = 0, llm = 0, q = 0;
    for (int i = 0; i < t->train.nstages; i++) {
        llm |= t->train.stage[i] != SECAP_STAGE_QFORMER;
        q |= t->train.stage[i] != SECAP_STAGE_LM && strcmp(t->qformer.bridge, "linear");
    }
#define MISSING(path, ...)                                                                    \
    do {                                                                                      \
        bad++;                                                                                \
        if (n < sizeof msg - 1200) {                                                          \
            n += (size_t)snprintf(msg + n, sizeof msg - n, "\n  %s is missing; make it with:\n    ", path); \
            n += (size_t)snprintf(msg + n, sizeof msg - n, __VA_ARGS__);                      \
        }                                                                                     \
    } while (0)
    if (!t->hubert.weights[0] || access(t->hubert.weights, R_OK))
        MISSING(t->hubert.weights[0] ? t->hubert.weights : "hubert.weights",
                "huggingface-cli download TencentGameMate/chinese-hubert-large config.json preprocessor_config.json "
                "pytorch_model.bin --local-dir models/chinese-hubert-large\n    /usr/bin/python3 tools/convert_hf.py "
                "models/chinese-hubert-large --out %s\n    (random weights for a scale test: /usr/bin/python3 "
                "tools/convert_hf.py --init random --config hubert-large --out %s)",
                t->hubert.weights[0] ? t->hubert.weights : "models/hubert-large.h5",
                t->hubert.weights[0] ? t->hubert.weights : "models/hubert-large.h5");
    if (q && (!t->qformer.vocab[0] || access(t->qformer.vocab, R_OK)))
        MISSING(t->qformer.vocab[0] ? t->qformer.vocab : "qformer.vocab",
                "huggingface-cli download bert-base-chinese vocab.txt --local-dir models/bert-base-chinese\n    "
                "(or the corpus' own: bin/secap-vocab --data %s --out %s)", t->data_dir,
                t->qformer.vocab[0] ? t->qformer.vocab : "build/vocab.txt");
    if (q && !init_random && t->qformer.bert[0] && !t->qformer.weights[0] && access(t->qformer.bert, R_OK))
        MISSING(t->qformer.bert, "huggingface-cli download bert-base-chinese config.json model.safetensors vocab.txt "
                "--local-dir models/bert-base-chinese\n    /usr/bin/python3 tools/convert_hf.py "
                "models/bert-base-chinese --out %s", t->qformer.bert);
    if (q && !init_random && t->qformer.weights[0] && access(t->qformer.weights, R_OK))
        MISSING(t->qformer.weights, "/usr/bin/python3 tools/convert_hf.py --secap models/secap/model.ckpt --out %s",
                t->qformer.weights);
    if (llm && !init_random && t->llama.weights[0] && access(t->llama.weights, R_OK))
        MISSING(t->llama.weights, "huggingface-cli download minlik/chinese-llama-7b-merged --local-dir "
                "models/chinese-llama-7b\n    /usr/bin/python3 tools/convert_hf.py models/chinese-llama-7b --out %s "
                "--dtype bf16", t->llama.weights);
    if (llm && (!t->llama.tokenizer[0] || access(t->llama.tokenizer, R_OK)))
        MISSING(t->llama.tokenizer[0] ? t->llama.tokenizer : "llama.tokenizer",
                "huggingface-cli download minlik/chinese-llama-7b-merged tokenizer.model --local-dir "
                "models/chinese-llama-7b\n    (a LLaMA trained from scratch may use a vocab.txt: bin/secap-vocab "
                "--data %s --out build/vocab.txt)", t->data_dir);
#undef MISSING
    if (bad)
        secap_fatal("secap-train: %d model file%s missing (tools/README-convert.md has the details):%s\n  (hint: or "
                    "run with --init random to train every model from random weights at the config's sizes; the "
                    "HuBERT file and the tokenizers are still needed)", bad, bad > 1 ? "s" : "", msg);
}

static void build_models(trainer *tr, int init_random)
{
    secap_train_config *t = &tr->cfg;
    secap_ctx *c = tr->c;
    int need_q = 0, need_llm = 0;
    for (int i = 0; i < t->train.nstages; i++) {
        need_q |= t->train.stage[i] != SECAP_STAGE_LM;
        need_llm |= t->train.stage[i] != SECAP_STAGE_QFORMER;
    }
    int linear = !strcmp(t->qformer.bridge, "linear");   /* ablation: no Q-Former (src/train/bridge.c) */
    if (linear) need_q = 0;
    /* HuBERT: frozen, for its width, the cache key and on-the-fly features */
    if (!t->hubert.weights[0] || access(t->hubert.weights, R_OK) != 0)
        secap_fatal("hubert.weights \"%s\": no such file (hint: convert chinese-hubert-large: /usr/bin/python3 "
                    "tools/convert_hf.py models/chinese-hubert-large --out %s (tools/README-convert.md); a random "
                    "one for scale tests: /usr/bin/python3 tools/convert_hf.py --init random --config hubert-large "
                    "--out %s)", t->hubert.weights, t->hubert.weights[0] ? t->hubert.weights : "models/hubert.h5",
                    t->hubert.weights[0] ? t->hubert.weights : "models/hubert.h5");
    tr->hub = secap_hubert_load(c, t->hubert.weights, 0);
    int A = secap_hubert_cfg(tr->hub)->hidden_size;
    if (t->hubert.train_layers > 0) {
        int L = secap_hubert_cfg(tr->hub)->num_hidden_layers, N = t->hubert.train_layers;
        if (N > L)
            secap_fatal("config hubert.train_layers = %d: %s has %d transformer layers (hint: 1..%d)", N,
                        t->hubert.weights, L, L);
        if (t->hubert.layer != L - N)
            secap_fatal("config hubert.train_layers = %d trains layers %d..%d of %s, so the features must be "
                        "hidden_states[%d], not hubert.layer = %d (hint: hubert.layer = %d, and a cache extracted "
                        "with bin/secap-extract --layer %d)", N, L - N, L - 1, t->hubert.weights, L - N,
                        t->hubert.layer, L - N, L - N);
        if (need_q || need_llm) tr->hub_top = secap_hubert_load_top(c, t->hubert.weights, N);
    }
    if (t->hubert.cache[0]) {
        char enc[1024], set[256];
        secap_hubert_cache_key(tr->hub, t->hubert.weights, t->hubert.layer, enc, sizeof enc, set, sizeof set);
        secap_featcache_key key = { enc, set };
        if (access(t->hubert.cache, R_OK) != 0)
            secap_fatal("hubert.cache %s: no such file (hint: bin/secap-extract --hubert %s --data %s --out %s, or "
                        "leave hubert.cache empty to extract on the fly)", t->hubert.cache, t->hubert.weights,
                        t->data_dir, t->hubert.cache);
        int rebuilt = 0;
        tr->fc = secap_featcache_open(t->hubert.cache, &key, &rebuilt);
        if (rebuilt)
            secap_fatal("hubert.cache %s was made with other encoder weights or settings (hint: re-run "
                        "bin/secap-extract --hubert %s --data %s --out %s)", t->hubert.cache, t->hubert.weights,
                        t->data_dir, t->hubert.cache);
    }
    if (t->hubert.standardize) {   /* statistics: fitted here for a run, read from the checkpoint otherwise */
        secap_featnorm_build(tr, A);
        if (!tr->infer) secap_featnorm_fit(tr);
    }
    /* LLaMA: config and tokenizer (the Q-Former's llm_width is its width) */
    secap_llama_config lc;
    secap_llama_config_default(&lc);
    if (need_llm) {
        if (!t->llama.tokenizer[0] || access(t->llama.tokenizer, R_OK) != 0)
            secap_fatal("llama.tokenizer \"%s\": no such file (hint: the model's tokenizer.model, or a vocab.txt "
                        "from bin/secap-vocab for a LLaMA trained from scratch)", t->llama.tokenizer);
        size_t tl = strlen(t->llama.tokenizer);
        if (tl > 6 && !strcmp(t->llama.tokenizer + tl - 6, ".model")) {
            tr->spm = secap_spm_load(t->llama.tokenizer);
            tr->spm_scratch = secap_spm_scratch_new();
        } else {
            tr->llm_bert = secap_berttok_load(t->llama.tokenizer, 1);
        }
        int tv = tr->spm ? secap_spm_vocab_size(tr->spm) : secap_berttok_size(tr->llm_bert);
        if (t->llama.weights[0] && !init_random) {
            if (access(t->llama.weights, R_OK) != 0)
                secap_fatal("llama.weights %s: no such file (hint: convert chinese-llama-7b: huggingface-cli download "
                            "minlik/chinese-llama-7b-merged --local-dir models/chinese-llama-7b && /usr/bin/python3 "
                            "tools/convert_hf.py models/chinese-llama-7b --out %s --dtype bf16; or run with --init "
                            "random for a scale test)", t->llama.weights, t->llama.weights);
            secap_weights *w = secap_weights_open(t->llama.weights);
            secap_llama_config_read(&lc, w);
            secap_weights_discard(w);
        } else {
            lc.vocab_size = t->llama.vocab_size ? t->llama.vocab_size : tv;
            lc.hidden_size = t->llama.hidden_size;
            lc.intermediate_size = t->llama.intermediate_size;
            lc.num_hidden_layers = t->llama.num_hidden_layers;
            lc.num_attention_heads = t->llama.num_attention_heads;
            lc.num_key_value_heads = t->llama.num_key_value_heads ? t->llama.num_key_value_heads
                                                                   : t->llama.num_attention_heads;
            lc.max_position_embeddings = t->llama.max_position_embeddings;
            secap_llama_config_validate(&lc, "config [llama]");
        }
        if (tv > lc.vocab_size)
            secap_fatal("llama.tokenizer %s has %d tokens, the LLaMA's vocab_size is %d (hint: the tokenizer of "
                        "that model, or llama.vocab_size = 0 for a random one)", t->llama.tokenizer, tv, lc.vocab_size);
    } else {
        lc.hidden_size = t->llama.hidden_size;
    }
    /* Q-Former */
    if (need_q) {
        if (!t->qformer.vocab[0] || access(t->qformer.vocab, R_OK) != 0)
            secap_fatal("qformer.vocab \"%s\": no such file (hint: bert-base-chinese's vocab.txt, or bin/secap-vocab "
                        "--data %s --out build/vocab.txt)", t->qformer.vocab, t->data_dir);
        tr->qtok = secap_berttok_load(t->qformer.vocab, t->qformer.lower_case);
        secap_qformer_config qc;
        secap_qformer_config_default(&qc);
        qc.hidden_size = t->qformer.hidden_size;
        qc.num_hidden_layers = t->qformer.num_hidden_layers;
        qc.num_attention_heads = t->qformer.num_attention_heads;
        qc.intermediate_size = t->qformer.intermediate_size;
        qc.vocab_size = secap_berttok_size(tr->qtok);
        qc.max_position_embeddings = t->qformer.max_position_embeddings;
        qc.hidden_dropout_prob = t->qformer.dropout;
        qc.initializer_range = t->qformer.initializer_range;
        qc.num_query_tokens = t->qformer.num_query_tokens;
        qc.cross_attention_freq = t->qformer.cross_attention_freq;
        qc.encoder_width = t->qformer.encoder_width;
        qc.audio_width = A;
        qc.llm_width = lc.hidden_size;
        qc.embed_dim = t->qformer.embed_dim;
        qc.text_mode = 1;
        if (!init_random && t->qformer.weights[0]) {
            if (access(t->qformer.weights, R_OK) != 0)
                secap_fatal("qformer.weights %s: no such file (hint: a Q-Former file, e.g. /usr/bin/python3 "
                            "tools/convert_hf.py --secap model.ckpt --out %s; or leave it empty)", t->qformer.weights,
                            t->qformer.weights);
            tr->qf = secap_qformer_load(c, t->qformer.weights, 1);
        } else if (!init_random && t->qformer.bert[0]) {
            if (access(t->qformer.bert, R_OK) != 0)
                secap_fatal("qformer.bert %s: no such file (hint: huggingface-cli download bert-base-chinese "
                            "config.json model.safetensors vocab.txt --local-dir models/bert-base-chinese && "
                            "/usr/bin/python3 tools/convert_hf.py models/bert-base-chinese --out %s; or run with "
                            "--init random)", t->qformer.bert, t->qformer.bert);
            tr->qf = secap_qformer_init_bert(c, t->qformer.bert, &qc, 1, t->train.seed);
        } else {
            secap_qformer_config_validate(&qc, "config [qformer]");
            tr->qf = secap_qformer_init_random(c, &qc, 1, t->train.seed);
        }
        const secap_qformer_config *q = secap_qformer_cfg(tr->qf);
        if (q->audio_width != A)
            secap_fatal("qformer: audio_width %d differs from the HuBERT width %d of %s (hint: a Q-Former made for "
                        "this encoder)", q->audio_width, A, t->hubert.weights);
        if (q->vocab_size < secap_berttok_size(tr->qtok))
            secap_fatal("qformer.vocab %s has %d tokens, the Q-Former's vocab_size is %d (hint: the vocab.txt the "
                        "Q-Former was made with)", t->qformer.vocab, secap_berttok_size(tr->qtok), q->vocab_size);
    }
    if (need_q && (tr->has_stage[SECAP_STAGE_QFORMER] ||
                   (tr->has_stage[SECAP_STAGE_CAPTION] && (t->loss.caption_w_mi > 0 || t->loss.caption_w_con > 0)))) {
        secap_stage1_config *s = &t->loss;
        s->mi.x_dim = s->mi.y_dim = secap_qformer_cfg(tr->qf)->embed_dim;
        tr->est = secap_vclub_new(c, &s->mi, NULL, NULL, t->train.seed ^ 0x5eedu);
        tr->temp = secap_contrastive_params_new(c, s->temp_init, NULL, NULL);
    }
    if (linear && tr->has_stage[SECAP_STAGE_CAPTION]) secap_bridge_build(tr, A, lc.hidden_size);
    if (need_llm) {
        if (!init_random && t->llama.weights[0] && lc.vocab_size != t->llama.vocab_size && t->llama.vocab_size)
            secap_fatal("llama.vocab_size %d differs from %s's %d (hint: 0 takes the file's)", t->llama.vocab_size,
                        t->llama.weights, lc.vocab_size);
        int lm = tr->has_stage[SECAP_STAGE_LM];
        if (lm && t->llama.bf16)
            secap_fatal("config: stage lm trains the LLaMA base, which llama.bf16 = true stores frozen (hint: "
                        "llama.bf16 = false)");
        if (lm && !tr->spm)
            secap_fatal("llama.tokenizer %s: stage lm needs a SentencePiece tokenizer.model (hint: "
                        "tools/train_spm.sh --data %s --out build/demo/tokenizer.model)", t->llama.tokenizer,
                        t->data_dir);
        secap_llama_opts lo = { .lora = &t->lora, .adapter = NULL, .base_bf16 = t->llama.bf16,
                                .seed = t->train.seed, .train_base = lm };
        if (!init_random && t->llama.weights[0]) tr->llm = secap_llama_load(c, t->llama.weights, &lo);
        else tr->llm = secap_llama_init_random(c, &lc, &lo);
        load_prompts(tr);
        if (lm && !tr->infer) {
            tr->lmt = secap_lmtext_build(&t->lm, tr->spm, tr->d, SECAP_SPLIT_TRAIN);
            secap_lmtext_print_stats(tr->lmt, stderr);
            if (secap_lmtext_steps_per_epoch(tr->lmt, t->lm.batch_size) < 1)
                secap_fatal("stage lm: the text makes %lld blocks of %d tokens, fewer than one batch of %d (hint: "
                            "lower lm.block_size or lm.batch_size, or add lm.text files)",
                            (long long)secap_lmtext_blocks(tr->lmt), t->lm.block_size, t->lm.batch_size);
        }
    }
}

static void free_models(trainer *tr)
{
    if (tr->lmt) secap_lmtext_free(tr->lmt);
    if (tr->lmt_dev) secap_lmtext_free(tr->lmt_dev);
    if (tr->est) secap_vclub_free(tr->est);
    if (tr->temp) secap_params_free(tr->temp);
    if (tr->llm) secap_llama_free(tr->llm);
    if (tr->qf) secap_qformer_free(tr->qf);
    if (tr->bridge) secap_params_free(tr->bridge);
    if (tr->hub) secap_hubert_free(tr->hub);
    if (tr->hub_top) secap_hubert_free(tr->hub_top);
    if (tr->fnorm) secap_params_free(tr->fnorm);
    if (tr->fc) secap_featcache_close(tr->fc);
    if (tr->qtok) secap_berttok_free(tr->qtok);
    if (tr->llm_bert) secap_berttok_free(tr->llm_bert);
    if (tr->spm) secap_spm_free(tr->spm);
    if (tr->spm_scratch) secap_spm_scratch_free(tr->spm_scratch);
    for (int i = 0; i < tr->nprompts; i++) free(tr->prompt_ids[i]);
    free(tr->prompt_ids);
    free(tr->prompt_len);
}

void secap_train_build_models(trainer *tr, int init_random) { build_models(tr, init_random); }
void secap_train_free_models(trainer *tr) { free_models(tr); }

/* --------------------------------------------------------------- summary */

static void summary_row(FILE *f, const char *name, const secap_params *p, int trainable)
{
    if (!p) return;
    int64_t n = secap_params_numel(p, 0), nt = secap_params_numel(p, 1);
    int64_t bytes = secap_params_bytes(p, 0), bt = secap_params_bytes(p, 1);
    /* trainable: value + gradient + two AdamW moments, f32 */
    double mem = (double)(bytes - bt) + 4.0 * (double)bt * (trainable ? 1 : 0) + (trainable ? 0 : (double)bt);
    fprintf(f, "  %-22s %14lld %14lld %14lld %10.1f MiB\n", name, (long long)n, (long long)nt, (long long)(n - nt),
            mem / 1048576.0);
}

static void print_summary(trainer *tr, FILE *f)
{
    fprintf(f, "model summary (memory: frozen storage, trainable value + gradient + 2 AdamW moments):\n");
    fprintf(f, "  %-22s %14s %14s %14s %14s\n", "module", "parameters", "trainable", "frozen", "memory");
    summary_row(f, "hubert", secap_hubert_params(tr->hub), 0);
    if (tr->hub_top) summary_row(f, "hubert (top layers, trainable)", secap_hubert_params(tr->hub_top), 1);
    if (tr->fnorm) summary_row(f, "feature_norm (fixed)", tr->fnorm, 0);
    if (tr->qf) {
        summary_row(f, "qformer.bert", secap_qformer_bert_params(tr->qf), 1);
        summary_row(f, "qformer.root", secap_qformer_root_params(tr->qf), 1);
    }
    if (tr->bridge) summary_row(f, "bridge (linear)", tr->bridge, 1);
    if (tr->est) summary_row(f, "mi_estimator", secap_vclub_params(tr->est), 1);
    if (tr->temp) summary_row(f, "contrastive.temp", tr->temp, 1);
    if (tr->llm) {
        summary_row(f, "llama.base", secap_llama_base_params(tr->llm), secap_llama_train_base(tr->llm));
        summary_row(f, "llama.lora", secap_llama_lora_params(tr->llm), 1);
    }
    double tot = (double)secap_arena_used(tr->c->param);
    fprintf(f, "  parameter arena in use: %.1f MiB (mapped frozen weights not counted); activations come on top "
            "(step arena, sized by the first step)\n", tot / 1048576.0);
}

/* ---------------------------------------------------------------- stages */

void secap_train_stage_optimizer(trainer *tr, int stage)
{
    secap_train_config *t = &tr->cfg;
    secap_ctx *c = tr->c;
    if (tr->opt) secap_adamw_free(tr->opt);
    tr->opt = secap_adamw_new((float)t->optim.beta1, (float)t->optim.beta2, (float)t->optim.eps);
    int nd = secap_adamw_group(tr->opt, 1.0f, 0.0f), d = secap_adamw_group(tr->opt, 1.0f, (float)t->optim.weight_decay);
    const char *nodecay = "*.bias,*LayerNorm*,*norm.weight,temp";
    const secap_params *tabs[6] = { 0 };
    int n = 0;
    if (stage == SECAP_STAGE_LM) {
        const secap_params *base = secap_llama_base_params(tr->llm);
        secap_adamw_add_params(tr->opt, c, base, SECAP_LLAMA_NO_DECAY, NULL, nd);
        secap_adamw_add_params(tr->opt, c, base, NULL, NULL, d);
        return;
    }
    if (stage == SECAP_STAGE_CAPTION && tr->llm && secap_llama_train_base(tr->llm)) {
        /* the base trained in stage lm is frozen from here on: no gradients */
        const secap_params *base = secap_llama_base_params(tr->llm);
        for (int i = secap_params_next(base, NULL, -1); i >= 0; i = secap_params_next(base, NULL, i))
            secap_params_entry(base, i)->t->requires_grad = 0;
    }
    if (stage == SECAP_STAGE_QFORMER) {
        tabs[n++] = secap_qformer_bert_params(tr->qf);
        tabs[n++] = secap_qformer_root_params(tr->qf);
        tabs[n++] = tr->temp;
        if (tr->hub_top) tabs[n++] = secap_hubert_params(tr->hub_top);   /* its trainable top layers */
    } else if (stage == SECAP_STAGE_CAPTION) {
        if (tr->bridge) tabs[n++] = tr->bridge;
        else if (!t->qformer.freeze_in_caption) {
            tabs[n++] = secap_qformer_bert_params(tr->qf);
            tabs[n++] = secap_qformer_root_params(tr->qf);
        }
        if (tr->hub_top && !t->qformer.freeze_in_caption) tabs[n++] = secap_hubert_params(tr->hub_top);
        if (secap_llama_lora_params(tr->llm)) tabs[n++] = secap_llama_lora_params(tr->llm);
        if (t->loss.caption_w_con > 0) tabs[n++] = tr->temp;
    }
    for (int i = 0; i < n; i++) secap_adamw_add_params(tr->opt, c, tabs[i], nodecay, NULL, nd);
    for (int i = 0; i < n; i++) secap_adamw_add_params(tr->opt, c, tabs[i], NULL, NULL, d);
    if (stage == SECAP_STAGE_CAPTION && tr->qf && t->qformer.freeze_in_caption)
        secap_train_freeze_qformer(tr, nd, d);
}

/* Texts of the batch: transcripts (or "" when absent) and the drawn captions. */
static void batch_texts(trainer *tr, const secap_batch *b, const char **tx, const char **cap)
{
    for (int i = 0; i < b->B; i++) {
        const secap_item *it = &tr->d->items[b->item[i]];
        tx[i] = it->transcript ? it->transcript : "";
        cap[i] = it->captions[b->caption[i]];
    }
}

static secap_tensor *text_embed(trainer *tr, const char *const *texts, int B)
{
    secap_bert_batch bb;
    secap_berttok_encode_batch(tr->qtok, B, texts, NULL, secap_qformer_cfg(tr->qf)->max_position_embeddings, &bb);
    secap_tensor *o = secap_qformer_text(tr->c, tr->qf, bb.ids, bb.lens, NULL, B, bb.len);
    secap_tensor *e = secap_qformer_text_embed(tr->c, tr->qf, o);
    secap_bert_batch_free(&bb);
    return e;
}

secap_tensor *secap_train_batch_features(trainer *tr, const secap_batch *b, int32_t *frames)
{
    return batch_features(tr, b, frames);
}
secap_tensor *secap_train_text_embed(trainer *tr, const char *const *texts, int B) { return text_embed(tr, texts, B); }

/* The stage-1 objective on the query outputs qo [B, Q, H] of batch b, with
 * the weights w_mi and w_con (stage qformer: loss.w_mi / w_con; stage
 * caption: loss.caption_w_mi / caption_w_con): the estimator step on the
 * detached embeddings (not while evaluating), then w_mi U + w_con L_con.
 * monitor (stage qformer's loss.mi_monitor): with w_mi = 0 the estimator is
 * still fitted and U measured, outside the loss. */
static secap_tensor *stage1_loss(trainer *tr, const secap_batch *b, secap_tensor *qo, float w_mi, float w_con,
                                 int monitor, step_terms *st)
{
    secap_ctx *c = tr->c;
    secap_stage1_config s = tr->cfg.loss;
    s.w_mi = w_mi;
    s.w_con = w_con;
    secap_tensor *q = secap_qformer_speech_embed(c, tr->qf, qo, SECAP_QFORMER_POOL_MEAN);
    const char *tx[256], *cap[256];
    batch_texts(tr, b, tx, cap);
    /* MPI: the losses over the whole global batch of Bg rows from gathered
     * embeddings (secap/dist.h, stage qformer) */
    int dist = secap_dist_size() > 1 && !tr->evaluating;
    int64_t Bg = dist ? (int64_t)secap_dist_sum(b->B) : b->B;
    if (dist) q = secap_dist_gather_rows(c, q, Bg);
    secap_tensor *t = NULL, *k = NULL;
    if (s.w_mi > 0) {
        t = text_embed(tr, tx, b->B);
        if (dist) t = secap_dist_gather_rows(c, t, Bg);
        if (!tr->evaluating) st->est = secap_vclub_step(c, tr->est, q, t, s.mi.lr);
    } else if (monitor && !tr->evaluating) {
        /* loss.mi_monitor: the estimator is fitted and U measured although
         * U is not in the loss, on detached embeddings, the context's RNG
         * (dropout) put back: the model trains exactly as without it. */
        secap_rng cr = c->rng;
        int prev = secap_no_grad_begin(c);
        secap_tensor *tm = text_embed(tr, tx, b->B);
        if (dist) tm = secap_dist_gather_rows(c, tm, Bg);
        secap_no_grad_end(c, prev);
        st->est = secap_vclub_step(c, tr->est, q, tm, s.mi.lr);
        prev = secap_no_grad_begin(c);
        st->mi = secap_f32(secap_vclub_bound(c, tr->est, secap_detach(c, q), tm, NULL))[0];
        secap_no_grad_end(c, prev);
        c->rng = cr;
    }
    if (s.w_con > 0) k = text_embed(tr, cap, b->B);
    if (k && dist) k = secap_dist_gather_rows(c, k, Bg);
    int32_t labels[256];
    int have_labels = 1;
    if (dist) secap_dist_gather_i32(c, b->label, labels, Bg);
    else memcpy(labels, b->label, (size_t)b->B * sizeof *labels);
    for (int i = 0; i < Bg; i++) have_labels &= labels[i] >= 0;
    secap_stage1_terms terms = { 0, 0 };
    secap_tensor *temp = tr->temp ? secap_params_get(tr->temp, "temp") : NULL;
    if (temp && dist && secap_dist_rank() > 0) temp = secap_detach(c, temp);   /* its gradient once: rank 0 */
    secap_tensor *loss = secap_stage1_objective(c, &s, tr->est, temp, q, t, k, have_labels ? labels : NULL, &tr->rng,
                                                &terms);
    if (dist) {   /* value L / N on each rank (the logged sum is L), gradient L's */
        float v = secap_f32(loss)[0];
        loss = secap_scale(c, loss, 1.0f, v / (float)secap_dist_size() - v);
    }
    if (s.w_mi > 0) st->mi = terms.mi;
    st->con = terms.con;
    st->temp = temp ? secap_f32(temp)[0] : 0;
    return loss;
}

static secap_tensor *step_qformer(trainer *tr, const secap_batch *b, step_terms *st)
{
    int32_t frames[256];
    secap_tensor *a = batch_features(tr, b, frames);
    secap_tensor *qo = secap_qformer_query(tr->c, tr->qf, a, frames);
    /* loss.mi_warmup: U's weight ramps up linearly over the first steps, so
     * that U (which a constant Q-embedding makes zero) does not flatten the
     * speech side before the contrastive term has shaped it */
    float w_mi = tr->cfg.loss.w_mi;
    int wu = tr->cfg.loss.mi_warmup;
    if (wu > 0 && tr->step + 1 < wu) w_mi *= (float)(tr->step + 1) / (float)wu;
    return stage1_loss(tr, b, qo, w_mi, tr->cfg.loss.w_con, tr->cfg.loss.mi_monitor, st);
}

static secap_tensor *step_caption(trainer *tr, const secap_batch *b, step_terms *st)
{
    secap_ctx *c = tr->c;
    int32_t frames[256];
    secap_tensor *a = batch_features(tr, b, frames);
    secap_tensor *qo;   /* the Q-Former's query outputs [B, Q, H]; NULL with the linear bridge */
    secap_tensor *x = secap_train_audio_tokens(tr, a, frames, &qo);   /* [B, Q, D] (src/train/bridge.c) */
    int B = b->B, maxc = tr->cfg.llama.max_caption_tokens;
    int p = (int)secap_rng_below(&tr->rng, (uint64_t)tr->nprompts);
    const int32_t *pr[256], *cp[256];
    int32_t pl[256], cl[256];
    int32_t *cbuf = secap_arena_alloc(c->step, (size_t)B * (size_t)maxc * sizeof(int32_t), 0, "caption ids");
    const char *tx[256], *cap[256];
    batch_texts(tr, b, tx, cap);
    int64_t longest = 0;
    for (int i = 0; i < B; i++) {
        pr[i] = tr->prompt_ids[p];
        pl[i] = tr->prompt_len[p];
        cl[i] = llm_encode(tr, cap[i], cbuf + (size_t)i * (size_t)maxc, maxc);
        cp[i] = cbuf + (size_t)i * (size_t)maxc;
        int64_t len = 2 + x->shape[1] + pl[i] + cl[i];
        if (len > longest) longest = len;
    }
    int maxpos = secap_llama_cfg(tr->llm)->max_position_embeddings;
    if (longest > maxpos)
        secap_fatal("caption stage: a sequence of %lld steps passes the LLaMA's %d positions (hint: lower "
                    "llama.max_caption_tokens or qformer.num_query_tokens)", (long long)longest, maxpos);
    secap_llama_batch lb = secap_llama_caption_batch(c, tr->llm, x, pr, pl, cp, cl, B);
    secap_tensor *logits = secap_llama_forward(c, tr->llm, lb.x, lb.lens);
    secap_tensor *loss = secap_llama_loss(c, logits, lb.targets);
    if (!tr->evaluating)   /* MPI: normalised by the global token count (secap/dist.h) */
        loss = secap_dist_mean_loss(c, loss, lb.targets, (int64_t)lb.B * lb.T);
    st->prompt = p;
    /* the cross-entropy term; MPI: summed over the ranks like the loss */
    st->caption = tr->evaluating ? secap_f32(loss)[0] : (float)secap_dist_sum(secap_f32(loss)[0]);
    const secap_stage1_config *s = &tr->cfg.loss;
    if (s->caption_w_mi > 0 || s->caption_w_con > 0) {
        if (!qo)
            secap_fatal("loss.caption_w_mi / caption_w_con need the Q-Former's embeddings; qformer.bridge = linear has "
                        "none (hint: set both to 0 with the linear bridge)");
        loss = secap_add(c, loss, stage1_loss(tr, b, qo, s->caption_w_mi, s->caption_w_con, 0, st));
    }
    return loss;
}

/* Stage lm: batch `step` of the packed text (epoch = step / steps per epoch),
 * a pure function of the stage step, so no loader state is needed. */
static secap_tensor *step_lm(trainer *tr, step_terms *st)
{
    int B = tr->cfg.lm.batch_size;
    int64_t spe = secap_lmtext_steps_per_epoch(tr->lmt, B);
    secap_lm_batch lb = secap_lmtext_batch(tr->c, tr->lmt, tr->cfg.lm.seed, tr->step / spe, tr->step % spe, B);
    st->lm_epoch = tr->step / spe;
    if (secap_dist_size() > 1) {   /* MPI: this rank's rows, global-count mean (secap/dist.h) */
        int64_t lo, hi;
        secap_dist_slice(B, secap_dist_rank(), secap_dist_size(), &lo, &hi);
        lb = secap_lmtext_rows(tr->c, tr->lmt, lb.blocks + lo, (int)(hi - lo));
    }
    return secap_dist_mean_loss(tr->c, secap_lm_loss(tr->c, tr->llm, &lb), lb.targets, (int64_t)lb.B * lb.T);
}

static secap_tensor *run_stage_step(trainer *tr, int stage, const secap_batch *b, step_terms *st)
{
    switch (stage) {
    case SECAP_STAGE_LM: return step_lm(tr, st);
    case SECAP_STAGE_QFORMER: return step_qformer(tr, b, st);
    case SECAP_STAGE_CAPTION: return step_caption(tr, b, st);
    default: secap_fatal("train: unknown stage %d", stage);
    }
}

/* ------------------------------------------------------------------ loop */

/* Mean loss over the first eval.batches batches of the dev split, without
 * gradients, dropout or estimator updates; the training state (RNGs, loader)
 * is left as it was, so evaluating does not change the training run.
 * Returns NAN when the dev split is empty. */
static double dev_loss(trainer *tr, int stage)
{
    if (tr->no_dev) return NAN;
    if (stage == SECAP_STAGE_LM) {
        if (!tr->lmt_dev) {
            int *idx = NULL;
            int n = secap_split_indices(tr->d, SECAP_SPLIT_DEV, &idx);
            free(idx);
            if (!n) { tr->no_dev = 1; return NAN; }
            tr->lmt_dev = secap_lmtext_build(&tr->cfg.lm, tr->spm, tr->d, SECAP_SPLIT_DEV);
        }
        /* the first eval.batches batches of dev blocks, in block order */
        secap_rng cr = tr->c->rng;
        int prev = secap_no_grad_begin(tr->c);
        tr->c->training = 0;
        int B = tr->cfg.lm.batch_size;
        int64_t nblk = secap_lmtext_blocks(tr->lmt_dev);
        int nb = (int)((nblk + B - 1) / B);
        if (nb > tr->cfg.eval.batches) nb = tr->cfg.eval.batches;
        double sum = 0;
        int64_t blocks[4096];
        for (int i = 0; i < nb; i++) {
            int n = 0;
            for (int64_t k = (int64_t)i * B; k < nblk && n < B && n < 4096; k++) blocks[n++] = k;
            secap_lm_batch lb = secap_lmtext_rows(tr->c, tr->lmt_dev, blocks, n);
            sum += secap_f32(secap_lm_loss(tr->c, tr->llm, &lb))[0];
            secap_ctx_reset(tr->c);
        }
        tr->c->training = 1;
        secap_no_grad_end(tr->c, prev);
        tr->c->rng = cr;
        tr->dev_batches = nb;
        return nb ? sum / nb : NAN;
    }
    if (!tr->dev) {
        int *idx = NULL;
        int n = secap_split_indices(tr->d, SECAP_SPLIT_DEV, &idx);
        free(idx);
        if (!n) {
            fprintf(stderr, "secap-train: warning: the dev split is empty; eval.every has nothing to evaluate\n");
            tr->no_dev = 1;
            return NAN;
        }
        secap_data_config dc = tr->cfg.data;
        dc.classes_per_batch = 0;
        tr->dev = secap_loader_create(tr->d, SECAP_SPLIT_DEV, 0, &dc);
    } else {
        secap_loader_set_state(tr->dev, (secap_loader_state){ 0, 0 });
    }
    secap_rng r = tr->rng, cr = tr->c->rng;
    int prev = secap_no_grad_begin(tr->c);
    tr->c->training = 0;
    tr->evaluating = 1;
    int nb = secap_loader_batches(tr->dev);
    if (nb > tr->cfg.eval.batches) nb = tr->cfg.eval.batches;
    double sum = 0;
    for (int i = 0; i < nb; i++) {
        step_terms st = { 0 };
        const secap_batch *b = secap_loader_next(tr->dev);
        sum += secap_f32(run_stage_step(tr, stage, b, &st))[0];
        secap_ctx_reset(tr->c);
    }
    tr->evaluating = 0;
    tr->c->training = 1;
    secap_no_grad_end(tr->c, prev);
    tr->rng = r;
    tr->c->rng = cr;
    tr->dev_batches = nb;
    return sum / nb;
}

/* eval.caption_every: captions the first eval.caption_clips dev clips (split
 * order) with the models in memory and the run's [decode] settings (the
 * captioner's path, secap_train_caption), scores them with the secap-score
 * library (zh-char tokens, every reference of a clip) and prints BLEU-4,
 * CIDEr, the emotion keyword accuracy (secap/emotion.h's built-in classes;
 * NAN when a clip's label is not one of them) and 3 examples.  Both RNG
 * streams and the context's mode are left as they were, so a run with it
 * trains exactly as one without.  Returns 0 when the dev split is empty. */
static int dev_captions(trainer *tr, const char *sname, double *bleu4, double *cider, double *emo)
{
    if (tr->devcap_n < 0) {
        int *idx = NULL;
        int n = secap_split_indices(tr->d, SECAP_SPLIT_DEV, &idx);
        if (n > tr->cfg.eval.caption_clips) n = tr->cfg.eval.caption_clips;
        tr->devcap_idx = idx;
        tr->devcap_n = n;
        if (!n)
            fprintf(stderr, "secap-train: warning: the dev split is empty; eval.caption_every has nothing to "
                    "caption\n");
        tr->devcap_prompt_len = secap_train_encode_prompt(tr, tr->cfg.decode.prompt, &tr->devcap_prompt);
    }
    int n = tr->devcap_n;
    if (!n) return 0;
    secap_decode_config dec;
    secap_decode_config_default(&dec);
    dec.max_new_tokens = tr->cfg.decode.max_new_tokens;
    dec.num_beams = tr->cfg.decode.num_beams;
    secap_decode_config_validate(&dec, "[decode] (eval.caption_every)");
    const char **ids = secap_xcalloc((size_t)n, sizeof *ids, "dev clip ids");
    const char **audio = secap_xcalloc((size_t)n, sizeof *audio, "dev clip audio");
    char **hyp = secap_xcalloc((size_t)n, sizeof *hyp, "dev captions");
    int *label = secap_xcalloc((size_t)n, sizeof *label, "dev labels");
    for (int i = 0; i < n; i++) {
        ids[i] = tr->d->items[tr->devcap_idx[i]].id;
        audio[i] = tr->d->items[tr->devcap_idx[i]].audio;
    }
    double t0 = secap_now();
    secap_rng r = tr->rng, cr = tr->c->rng;
    secap_train_caption(tr, &dec, tr->devcap_prompt, tr->devcap_prompt_len, n, ids, audio, 0, hyp);
    tr->rng = r;
    tr->c->rng = cr;
    secap_corpus *co = secap_corpus_new(SECAP_TOK_ZH_CHAR);
    for (int i = 0; i < n; i++) {
        const secap_item *it = &tr->d->items[tr->devcap_idx[i]];
        secap_corpus_add(co, ids[i], hyp[i], (const char *const *)it->captions, it->n_captions);
    }
    secap_scores sc;
    secap_score(co, SECAP_METRIC_BLEU | SECAP_METRIC_CIDER, &sc, NULL);
    secap_corpus_free(co);
    *bleu4 = sc.bleu[3];
    *cider = sc.cider;
    *emo = NAN;
    secap_emokw *kw = secap_emokw_default();
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        int l = tr->d->items[tr->devcap_idx[i]].label;
        label[i] = l >= 0 ? secap_emokw_find(kw, tr->d->labels[l]) : -1;
        ok = label[i] >= 0;
    }
    if (ok) {
        secap_emo_acc acc;
        secap_emokw_accuracy(kw, n, (const char *const *)hyp, label, NULL, &acc);
        *emo = acc.accuracy;
    }
    secap_emokw_free(kw);
    char emos[32];
    snprintf(emos, sizeof emos, isfinite(*emo) ? "%.1f%%" : "n/a", 100 * *emo);
    fprintf(stderr, "%ssecap-train: %s step %lld: dev captions (%d clips, %.1f s): BLEU-4 %.2f CIDEr %.3f emotion %s\n",
            tr->bar ? "\n" : "", sname, (long long)tr->step, n, secap_now() - t0, 100 * *bleu4, *cider, emos);
    for (int i = 0; i < n && i < 3; i++)
        fprintf(stderr, "  %s  ref: %s\n  %*s  hyp: %s\n", ids[i], tr->d->items[tr->devcap_idx[i]].captions[0],
                (int)strlen(ids[i]), "", hyp[i]);
    for (int i = 0; i < n; i++) free(hyp[i]);
    free(hyp); free(ids); free(audio); free(label);
    return 1;
}

/* best.h5: a hard link to ckpt-<gstep>.h5 (a copy where the file system has
 * no hard links), made as best.h5.tmp.<pid> and renamed over best.h5, so a
 * reader sees the old or the new best, never a part; train.keep prunes only
 * ckpt-*.h5 names, and the link keeps the data when ckpt-<gstep>.h5 goes.
 * best.json {"gstep":..,"step":..,"stage":"caption","dev_cider":..} is
 * written after it (atomically too). */
static void write_text_file(const char *path, const char *text);
static void save_best(trainer *tr, int64_t gstep, int64_t step, double cider)
{
    const char *dir = tr->cfg.train.out_dir;
    char src[4200], tmp[4300], dst[4200];
    snprintf(src, sizeof src, "%s/ckpt-%010lld.h5", dir, (long long)gstep);
    snprintf(dst, sizeof dst, "%s/best.h5", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", dst, (int)getpid());
    unlink(tmp);
    secap_tmp_register(tmp);
    if (link(src, tmp) != 0) {
        FILE *in = fopen(src, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
        if (!in || !out)
            secap_fatal("%s: cannot copy %s to it: %s (hint: is the run directory writable?)", tmp, src,
                        strerror(errno));
        char buf[65536];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, in)) > 0)
            if (fwrite(buf, 1, k, out) != k) secap_fatal("%s: write failed: %s (hint: disk full?)", tmp, strerror(errno));
        fclose(in);
        if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0)
            secap_fatal("%s: write failed: %s (hint: disk full?)", tmp, strerror(errno));
    }
    if (rename(tmp, dst) != 0) secap_fatal("%s: rename failed: %s", dst, strerror(errno));
    secap_tmp_unregister(tmp);
    char js[256];
    snprintf(js, sizeof js, "{\"gstep\":%lld,\"step\":%lld,\"stage\":\"caption\",\"dev_cider\":%.9g}\n",
             (long long)gstep, (long long)step, cider);
    snprintf(dst, sizeof dst, "%s/best.json", dir);
    write_text_file(dst, js);
    tr->best_cider = cider;
    tr->best_gstep = gstep;
}

/* On resume: the best so far from best.json when it is not newer than the
 * checkpoint resumed; a newer one (its metrics were dropped) is removed. */
static void load_best(trainer *tr)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/best.json", tr->cfg.train.out_dir);
    tr->best_cider = -1;
    tr->best_gstep = -1;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char buf[512];
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    const char *g = strstr(buf, "\"gstep\":"), *c = strstr(buf, "\"dev_cider\":");
    long long gs = g ? strtoll(g + 8, NULL, 10) : -1;
    if (g && c && gs <= tr->gstep) {
        tr->best_gstep = gs;
        tr->best_cider = strtod(c + 12, NULL);
        return;
    }
    fprintf(stderr, "secap-train: %s names global step %lld, after the checkpoint resumed; best.h5 is dropped and "
            "tracked again from here\n", path, gs);
    unlink(path);
    snprintf(path, sizeof path, "%s/best.h5", tr->cfg.train.out_dir);
    unlink(path);
}

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static int64_t stage_total(trainer *tr)
{
    int64_t over = tr->cfg.train.steps_of[tr->cfg.train.stage[tr->stage_idx]];
    if (over > 0) return over;
    if (tr->cfg.train.max_steps > 0 && over < 0) return tr->cfg.train.max_steps;
    int per_epoch = tr->cfg.train.stage[tr->stage_idx] == SECAP_STAGE_LM
                        ? (int)secap_lmtext_steps_per_epoch(tr->lmt, tr->cfg.lm.batch_size) : secap_loader_batches(tr->L);
    int64_t n = (int64_t)ceil(tr->cfg.train.epochs * per_epoch);
    return n > 0 ? n : 1;
}

static void progress(trainer *tr, const char *stage, const step_terms *st, double loss, float lr, double gn,
                     double sps, int final)
{
    int64_t done = tr->step, total = tr->total;
    double el = secap_now() - tr->stage_t0;
    double eta = done > tr->stage_step0 ? el / (double)(done - tr->stage_step0) * (double)(total - done) : 0;
    char terms[160] = "";
    if (!strcmp(stage, "qformer") ||
        (!strcmp(stage, "caption") && (tr->cfg.loss.caption_w_mi > 0 || tr->cfg.loss.caption_w_con > 0)))
        snprintf(terms, sizeof terms, " mi %.4g con %.4g est %.4g tau %.4g", st->mi, st->con, st->est, st->temp);
    if (tr->bar)
        fprintf(stderr, "\r%s %lld/%lld loss %.4g%s lr %.3g %.1f samples/s ETA %d:%02d   %s", stage,
                (long long)done, (long long)total, loss, terms, lr, sps, (int)eta / 60, (int)eta % 60,
                final ? "\n" : "");
    else
        fprintf(stderr, "secap-train: %s step %lld/%lld loss %.6g%s lr %.4g grad_norm %.4g %.1f samples/s ETA "
                "%d:%02d\n", stage, (long long)done, (long long)total, loss, terms, lr, gn, sps, (int)eta / 60,
                (int)eta % 60);
    fflush(stderr);
}

static void mkdir_p(const char *dir)
{
    char buf[4200];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        secap_fatal("train.out_dir %s: cannot create it: %s (hint: a writable path)", dir, strerror(errno));
    if (!secap_is_dir(buf)) secap_fatal("train.out_dir %s is not a directory (hint: another path)", dir);
}

static void write_text_file(const char *path, const char *text)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) secap_fatal("%s: cannot write: %s (hint: is the run directory writable?)", tmp, strerror(errno));
    secap_tmp_register(tmp);
    fputs(text, f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
        secap_fatal("%s: write failed: %s (hint: disk full?)", tmp, strerror(errno));
    if (rename(tmp, path) != 0) secap_fatal("%s: rename failed: %s", path, strerror(errno));
    secap_tmp_unregister(tmp);
}

/* Keeps the metrics of global steps <= upto (a resume drops what the
 * interrupted run logged after its checkpoint). */
static void truncate_metrics(const char *path, int64_t upto)
{
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char *out = NULL, line[8192];
    size_t ol = 0;
    FILE *m = open_memstream(&out, &ol);
    while (fgets(line, sizeof line, f)) {
        const char *g = strstr(line, "\"gstep\":");
        if (!g || !strchr(line, '\n')) continue;  /* a torn last line */
        if (strtoll(g + 8, NULL, 10) <= upto) fputs(line, m);
    }
    fclose(f);
    fclose(m);
    write_text_file(path, out);
    free(out);
}

/* Test hook: SECAP_TRAIN_NAN_AT="3,5,6" makes the loss of those global
 * steps (1-based) NaN, to exercise the skip-and-stop path. */
static int nan_at(int64_t g)
{
    const char *e = getenv("SECAP_TRAIN_NAN_AT");
    for (const char *p = e; p && *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        if (v == g) return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/* Test hook: SECAP_TRAIN_DEV_CIDER="10:0.5,11:0.2" replaces the dev CIDEr
 * of those global steps (the tiny test models score 0 everywhere), to
 * exercise the best.h5 bookkeeping. */
static double cider_at(int64_t g, double cd)
{
    const char *e = getenv("SECAP_TRAIN_DEV_CIDER");
    for (const char *p = e; p && *p;) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || *end != ':') break;
        double c = strtod(end + 1, &end);
        if (v == g) return c;
        p = *end == ',' ? end + 1 : end;
    }
    return cd;
}

/* MPI data parallelism (secap/dist.h): joins the job when launched by
 * mpirun / srun; with more than one rank checks what the ranks must share
 * and refuses what is not supported.  Returns this rank (0 alone). */
static int dist_setup(trainer *tr, const char *config_text)
{
    int n = secap_dist_init(), rank = secap_dist_rank();
    if (n == 1) return 0;
    const secap_train_config *t = &tr->cfg;
    if ((tr->has_stage[SECAP_STAGE_CAPTION] || tr->has_stage[SECAP_STAGE_QFORMER]) && t->data.batch_size < n)
        secap_fatal("secap-train: data.batch_size %d is the global batch; it must be at least the %d ranks (hint: "
                    "--data.batch_size=%d or fewer ranks)", t->data.batch_size, n, n);
    if (tr->has_stage[SECAP_STAGE_LM] && t->lm.batch_size < n)
        secap_fatal("secap-train: lm.batch_size %d is the global batch; it must be at least the %d ranks (hint: "
                    "--lm.batch_size=%d or fewer ranks)", t->lm.batch_size, n, n);
    secap_dist_check_same(secap_hash64(config_text, strlen(config_text), 0x5ec0), "the resolved config");
    secap_dist_set_exchange(t->train.dist_bucket_mb, t->train.dist_overlap);
    if (rank == 0)
        fprintf(stderr, "secap-train: data parallel on %d ranks (MPI); global batch %d (qformer, caption) / %d (lm) "
                "rows; rank 0 writes %s\n", n, t->data.batch_size, t->lm.batch_size, t->train.out_dir);
    return rank;
}

int secap_train_main(const secap_train_opts *o)
{
    trainer T, *tr = &T;
    memset(tr, 0, sizeof T);
    /* the config: a file or the checkpoint's, then overrides */
    char *ckpt = o->resume ? secap_ckpt_resolve("--resume", o->resume) : NULL;
    char *ckpt_config = ckpt ? secap_ckpt_config_text(ckpt) : NULL;
    secap_ini *ini;
    if (o->config) ini = secap_train_config_load(o->config);   /* [config] base = ... */
    else if (ckpt) {
        char where[4200];
        snprintf(where, sizeof where, "%s (its config)", ckpt);
        ini = secap_ini_from_text(ckpt_config, where);
    }
    else secap_fatal("secap-train: no --config (hint: --config configs/demo.ini, or --resume RUN_DIR)");
    for (int i = 0; i < o->noverrides; i++)
        if (!secap_ini_set_arg(ini, o->overrides[i]))
            secap_fatal("secap-train: %s is not --section.key=value (hint: see --help)", o->overrides[i]);
    secap_train_config_default(&tr->cfg);
    secap_train_config_from_ini(&tr->cfg, ini);
    secap_ini_free(ini);
    /* The run uses the config as its resolved text reads back (the module
     * printers round some values to %g), so a run resumed from that text
     * computes with exactly the same values. */
    char *text = secap_train_config_text(&tr->cfg);
    ini = secap_ini_from_text(text, "the resolved config");
    secap_train_config_default(&tr->cfg);
    secap_train_config_from_ini(&tr->cfg, ini);
    secap_ini_free(ini);
    char *text2 = secap_train_config_text(&tr->cfg);
    if (strcmp(text, text2))
        secap_fatal("secap-train: the resolved config does not read back to itself (hint: a bug; please report it "
                    "with the config)");
    free(text2);
    if (ckpt) secap_ckpt_check_config(ckpt, ckpt_config, text);
    for (int i = 0; i < tr->cfg.train.nstages; i++) tr->has_stage[tr->cfg.train.stage[i]] = 1;
    int rank = dist_setup(tr, text);
    secap_threads_init(tr->cfg.train.threads);
    tr->c = secap_ctx_new(0, 0, tr->cfg.train.seed);
    tr->c->training = 1;
    secap_rng_seed_stream(&tr->rng, tr->cfg.train.seed, 0x7a41);
    tr->devcap_n = -1;
    tr->best_cider = -1;
    tr->best_gstep = -1;
    check_model_files(&tr->cfg, o->init_random);
    load_data(tr);
    build_models(tr, o->init_random);
    if (o->dry_run) {
        printf("secap-train: config and data are valid: %d train items in %s, stages %s\n", tr->ntrain,
               tr->cfg.data_dir, tr->cfg.train.stages);
        print_summary(tr, stdout);
        free_models(tr);
        secap_dataset_free(tr->d);
        secap_ctx_free(tr->c);
        free(text); free(ckpt); free(ckpt_config);
        return 0;
    }
    secap_dist_rank_rng(&tr->c->rng);   /* dropout: a stream per rank */
    if (rank == 0) print_summary(tr, stderr);
    char path[4200];
    int lockfd = -1;
    if (rank == 0) {   /* MPI: rank 0 alone owns the run directory */
        mkdir_p(tr->cfg.train.out_dir);
        /* one run per directory: an exclusive lock, released by the kernel
         * however the process ends (kill -9 included) */
        snprintf(path, sizeof path, "%s/.lock", tr->cfg.train.out_dir);
        lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (lockfd < 0)
            secap_fatal("%s: cannot open: %s (hint: is the run directory writable?)", path, strerror(errno));
        if (flock(lockfd, LOCK_EX | LOCK_NB) != 0)
            secap_fatal("train.out_dir %s: another secap-train is running in this directory (hint: wait for it, stop "
                        "it with SIGTERM, or choose another train.out_dir)", tr->cfg.train.out_dir);
        if (!ckpt) {
            /* a fresh run never mixes its checkpoints with an earlier run's */
            char *old = NULL;
            if (secap_ckpt_has_any(tr->cfg.train.out_dir, &old))
                secap_fatal("train.out_dir %s holds checkpoints of an earlier run (%s) (hint: --resume %s to continue "
                            "it, or another train.out_dir)", tr->cfg.train.out_dir, old, tr->cfg.train.out_dir);
        }
        snprintf(path, sizeof path, "%s/config.ini", tr->cfg.train.out_dir);
        write_text_file(path, text);
    }
    tr->L = secap_loader_create(tr->d, SECAP_SPLIT_TRAIN, 1, &tr->cfg.data);
    tr->stage_idx = 0;
    tr->step = 0;
    if (!ckpt && tr->cfg.init_from[0]) secap_ckpt_init_from(tr, tr->cfg.init_from);
    if (ckpt) {
        secap_ckpt_load(tr, ckpt);   /* sets stage_idx, step, gstep, rngs, loader, tensors, optimizer */
        secap_dist_rank_rng(&tr->c->rng);
        if (rank == 0)
            fprintf(stderr, "secap-train: resumed from %s at stage %s step %lld (global step %lld)\n", ckpt,
                tr->stage_idx < tr->cfg.train.nstages ? secap_stage_name(tr->cfg.train.stage[tr->stage_idx]) : "done",
                (long long)tr->step, (long long)tr->gstep);
    }
    snprintf(path, sizeof path, "%s/metrics.jsonl", tr->cfg.train.out_dir);
    if (rank) snprintf(path, sizeof path, "/dev/null");   /* MPI: only rank 0 logs */
    else if (ckpt) truncate_metrics(path, tr->gstep);
    else unlink(path);
    if (ckpt) {
        if (rank == 0) load_best(tr);
    } else if (rank == 0) {   /* a fresh run: no best of an earlier one */
        char bp[4200];
        snprintf(bp, sizeof bp, "%s/best.json", tr->cfg.train.out_dir);
        unlink(bp);
        snprintf(bp, sizeof bp, "%s/best.h5", tr->cfg.train.out_dir);
        unlink(bp);
    }
    FILE *mf = fopen(path, "ab");
    if (!mf) secap_fatal("%s: cannot open: %s (hint: is the run directory writable?)", path, strerror(errno));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    tr->bar = !strcmp(tr->cfg.log.progress, "bar") || (!strcmp(tr->cfg.log.progress, "auto") && isatty(2));
    secap_dist_watchdog_start(tr->cfg.train.dist_timeout, &tr->gstep);

    int rc = 0, stopped = 0;
    while (tr->stage_idx < tr->cfg.train.nstages && !stopped) {
        int stage = tr->cfg.train.stage[tr->stage_idx];
        const char *sname = secap_stage_name(stage);
        tr->total = stage_total(tr);
        if (!tr->opt_loaded) secap_train_stage_optimizer(tr, stage);
        tr->opt_loaded = 0;
        secap_schedule sch = { secap_sched_parse(tr->cfg.optim.schedule), (float)tr->cfg.optim.lr,
                               tr->cfg.optim.warmup, tr->total, (float)tr->cfg.optim.min_lr };
        tr->stage_t0 = secap_now();
        tr->stage_step0 = tr->step;
        if (rank == 0)
            fprintf(stderr, "secap-train: stage %s: %lld steps (from step %lld)\n", sname, (long long)tr->total,
                (long long)tr->step);
        while (tr->step < tr->total) {
            double t0 = secap_now();
            const secap_batch *b = stage == SECAP_STAGE_LM ? NULL : secap_loader_next(tr->L);
            secap_batch shard;   /* MPI: this rank's rows of the global batch b */
            step_terms st = { 0 };
            float lr = secap_schedule_lr(&sch, tr->step);
            secap_adamw_zero_grad(tr->opt);
            secap_tensor *loss = run_stage_step(tr, stage, b ? secap_dist_shard_batch(b, &shard) : NULL, &st);
            double lv = secap_dist_sum(secap_f32(loss)[0]), gn = NAN;
            if (nan_at(tr->gstep + 1)) lv = NAN;   /* test hook: SECAP_TRAIN_NAN_AT */
            int skipped = 0;
            if (!isfinite(lv)) skipped = 1;
            else {
                secap_dist_grads_begin(tr->c, tr->opt);
                secap_backward(tr->c, loss);
                int early = secap_dist_grads_end(tr->c, tr->opt);
                if (rank == 0 && tr->step == tr->stage_step0 && secap_dist_size() > 1)
                    fprintf(stderr, "secap-train: stage %s: gradients exchanged in buckets of at most %g MiB%s "
                            "(%d started during the backward pass)\n", sname, tr->cfg.train.dist_bucket_mb,
                            tr->cfg.train.dist_overlap ? ", overlapped with the backward pass" : "", early);
                gn = secap_clip_grad_norm(tr->opt, tr->cfg.optim.max_grad_norm);
                if (!isfinite(gn)) skipped = 1;
                else secap_adamw_step(tr->opt, lr);
            }
            if (skipped) {
                secap_adamw_zero_grad(tr->opt);
                tr->bad++;
                fprintf(stderr, "secap-train: warning: %s step %lld: non-finite %s (%g); step skipped (%d in a "
                        "row, at most %d)\n", sname, (long long)tr->step, isfinite(lv) ? "gradient norm" : "loss",
                        isfinite(lv) ? gn : lv, tr->bad, tr->cfg.train.max_bad_steps);
            } else {
                tr->bad = 0;
            }
            secap_ctx_reset(tr->c);
            tr->step++;
            tr->gstep++;
            secap_loader_state ls = secap_loader_get_state(tr->L);
            tr->loader_epoch = ls.epoch;
            tr->loader_step = ls.step;
            int nb = b ? b->B : tr->cfg.lm.batch_size;
            double dt = secap_now() - t0, sps = dt > 0 ? nb / dt : 0;
            char lvs[32], gns[32];   /* JSON has no NaN: non-finite values are null */
            snprintf(lvs, sizeof lvs, isfinite(lv) ? "%.9g" : "null", lv);
            snprintf(gns, sizeof gns, isfinite(gn) ? "%.9g" : "null", gn);
            fprintf(mf, "{\"stage\":\"%s\",\"step\":%lld,\"gstep\":%lld,\"epoch\":%lld,\"loss\":%s", sname,
                    (long long)tr->step, (long long)tr->gstep, (long long)(b ? b->epoch : st.lm_epoch), lvs);
            if (stage == SECAP_STAGE_QFORMER)
                fprintf(mf, ",\"mi\":%.9g,\"con\":%.9g,\"est\":%.9g,\"temp\":%.9g", st.mi, st.con, st.est, st.temp);
            if (stage == SECAP_STAGE_CAPTION) {
                char cs[32];
                snprintf(cs, sizeof cs, isfinite(st.caption) ? "%.9g" : "null", st.caption);
                fprintf(mf, ",\"caption\":%s,\"prompt\":%d", cs, st.prompt);
                if (tr->cfg.loss.caption_w_mi > 0 || tr->cfg.loss.caption_w_con > 0)
                    fprintf(mf, ",\"mi\":%.9g,\"con\":%.9g,\"est\":%.9g,\"temp\":%.9g", st.mi, st.con, st.est,
                            st.temp);
            }
            if (tr->cfg.eval.every && (tr->step % tr->cfg.eval.every == 0 || tr->step == tr->total)) {
                double dl = dev_loss(tr, stage);
                if (isfinite(dl)) {
                    fprintf(mf, ",\"dev_loss\":%.9g", dl);
                    fprintf(stderr, "%ssecap-train: %s step %lld: dev loss %.6g (%d batches)\n", tr->bar ? "\n" : "",
                            sname, (long long)tr->step, dl, tr->dev_batches);
                    secap_probe_result pr;   /* stage-1 dev probes (src/train/probe.c) */
                    if (stage == SECAP_STAGE_QFORMER && secap_train_probe(tr, &pr))
                        secap_train_probe_report(tr, &pr, mf, sname);
                }
            }
            int new_best = 0;
            double dev_cd = NAN;
            int64_t dev_step = tr->step;
            if (stage == SECAP_STAGE_CAPTION && tr->cfg.eval.caption_every &&
                (tr->step % tr->cfg.eval.caption_every == 0 || tr->step == tr->total)) {
                double b4, cd, em;
                if (dev_captions(tr, sname, &b4, &cd, &em)) {
                    cd = cider_at(tr->gstep, cd);   /* test hook: SECAP_TRAIN_DEV_CIDER */
                    fprintf(mf, ",\"dev_bleu4\":%.9g,\"dev_cider\":%.9g", b4, cd);
                    if (isfinite(em)) fprintf(mf, ",\"dev_emotion\":%.9g", em);
                    new_best = cd > tr->best_cider;
                    dev_cd = cd;
                }
            }
            fprintf(mf, ",\"lr\":%.9g,\"grad_norm\":%s,\"samples_per_s\":%.4g,\"rss_mb\":%.1f,\"skipped\":%d}\n",
                    lr, gns, sps, rss_mb(), skipped);
            fflush(mf);
            if (tr->bad >= tr->cfg.train.max_bad_steps) {
                fclose(mf);
                secap_fatal("train: %d non-finite steps in a row at %s step %lld (hint: lower optim.lr or check the "
                            "data; the last good checkpoint in %s is kept)", tr->bad, sname, (long long)tr->step,
                            tr->cfg.train.out_dir);
            }
            int last = tr->step == tr->total;
            if (rank == 0 && (tr->bar || last || tr->step % tr->cfg.log.every == 0))
                progress(tr, sname, &st, lv, lr, gn, sps, last);
            int stop_now = secap_dist_any(g_stop_signal) ||
                           (tr->cfg.train.stop_at_step && tr->gstep >= tr->cfg.train.stop_at_step);
            if (last) {
                tr->stage_idx++;
                tr->step = 0;
                if (rank == 0) {
                    secap_ckpt_save(tr, 0);
                    fflush(mf);
                    secap_train_plot_stage(tr, sname);   /* <out_dir>/plots/<stage>.png (src/train/plots.c) */
                }
            } else if (stop_now || new_best || (tr->cfg.train.save_every && tr->step % tr->cfg.train.save_every == 0)) {
                if (rank == 0) secap_ckpt_save(tr, 1);   /* a new best dev CIDEr is saved at its step */
            }
            if (new_best && rank == 0) save_best(tr, tr->gstep, dev_step, dev_cd);
            secap_dist_progress(tr->gstep);
            if (stop_now) {
                if (tr->bar) fputc('\n', stderr);
                if (rank == 0)
                    fprintf(stderr, "secap-train: %s after global step %lld; checkpoint saved. Resume with:\n  "
                        "bin/secap-train --resume %s\n", g_stop_signal ? "interrupted" : "stopped (train.stop_at_step)",
                        (long long)tr->gstep, tr->cfg.train.out_dir);
                stopped = 1;
                break;
            }
            if (last) break;
        }
    }
    secap_dist_watchdog_stop();
    if (!stopped && rank == 0)
        fprintf(stderr, "secap-train: done: %lld steps; run directory %s\n", (long long)tr->gstep,
                          tr->cfg.train.out_dir);
    fclose(mf);
    secap_loader_free(tr->L);
    if (tr->dev) secap_loader_free(tr->dev);
    free(tr->devcap_idx);
    free(tr->devcap_prompt);
    if (lockfd >= 0) close(lockfd);
    if (tr->opt) secap_adamw_free(tr->opt);
    free_models(tr);
    secap_dataset_free(tr->d);
    secap_ctx_free(tr->c);
    free(text); free(ckpt); free(ckpt_config);
    return rc;
}
