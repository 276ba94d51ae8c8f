/* The run config of bin/secap-train: sections, keys, defaults, validation and
 * the resolved INI text (secap/train.h).
 *
 * The trainer's own sections (hubert, qformer, llama, optim, train, eval,
 * decode, log, and data.dir) are described by one key table: type, field,
 * range.  The data, lora and loss sections belong to their modules and go
 * through their setters (secap_data_config_set, secap_lora_config_set,
 * secap_stage1_config_set), whose messages are prefixed with the key's
 * file:line here. */
#include "secap/train.h"
#include "secap/base.h"
#include "secap/fileutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const SECTIONS[] = { "data", "hubert", "augment", "qformer", "llama", "lora", "lm", "loss",
                                        "optim", "train", "eval", "decode", "log", NULL };
static const char *const STAGES[SECAP_NSTAGES] = { "lm", "qformer", "caption" };

const char *secap_stage_name(int s) { return s >= 0 && s < SECAP_NSTAGES ? STAGES[s] : "?"; }
int secap_stage_parse(const char *name)
{
    for (int i = 0; i < SECAP_NSTAGES; i++)
        if (!strcmp(name, STAGES[i])) return i;
    return -1;
}

typedef enum { K_INT, K_I64, K_DBL, K_STR, K_BOOL, K_ENUM } ktype;

typedef struct {
    const char *key;      /* "section.key" */
    ktype type;
    size_t off, size;     /* field in secap_train_config; size for strings */
    double lo, hi;        /* numeric range */
    const char *choices;  /* K_ENUM: "a|b|c" */
} keydef;

#define F(field) offsetof(secap_train_config, field)
#define S(field) offsetof(secap_train_config, field), sizeof(((secap_train_config *)0)->field)
static const keydef KEYS[] = {
    { "data.dir", K_STR, S(data_dir), 0, 0, NULL },
    { "hubert.weights", K_STR, S(hubert.weights), 0, 0, NULL },
    { "hubert.cache", K_STR, S(hubert.cache), 0, 0, NULL },
    { "hubert.layer", K_INT, F(hubert.layer), 0, -1, 1000, NULL },
    { "hubert.train_layers", K_INT, F(hubert.train_layers), 0, 0, 1000, NULL },
    { "hubert.standardize", K_BOOL, F(hubert.standardize), 0, 0, 1, NULL },
    { "augment.noise", K_DBL, F(augment.noise), 0, 0, 100, NULL },
    { "augment.time_masks", K_INT, F(augment.time_masks), 0, 0, 1000, NULL },
    { "augment.time_mask_width", K_DBL, F(augment.time_mask_width), 0, 0, 1, NULL },
    { "augment.feature_masks", K_INT, F(augment.feature_masks), 0, 0, 1000, NULL },
    { "augment.feature_mask_width", K_INT, F(augment.feature_mask_width), 0, 0, 1 << 20, NULL },
    { "qformer.weights", K_STR, S(qformer.weights), 0, 0, NULL },
    { "qformer.bert", K_STR, S(qformer.bert), 0, 0, NULL },
    { "qformer.vocab", K_STR, S(qformer.vocab), 0, 0, NULL },
    { "qformer.lower_case", K_BOOL, F(qformer.lower_case), 0, 0, 1, NULL },
    { "qformer.hidden_size", K_INT, F(qformer.hidden_size), 0, 1, 65536, NULL },
    { "qformer.num_hidden_layers", K_INT, F(qformer.num_hidden_layers), 0, 1, 256, NULL },
    { "qformer.num_attention_heads", K_INT, F(qformer.num_attention_heads), 0, 1, 1024, NULL },
    { "qformer.intermediate_size", K_INT, F(qformer.intermediate_size), 0, 1, 1 << 20, NULL },
    { "qformer.num_query_tokens", K_INT, F(qformer.num_query_tokens), 0, 1, 4096, NULL },
    { "qformer.cross_attention_freq", K_INT, F(qformer.cross_attention_freq), 0, 1, 256, NULL },
    { "qformer.encoder_width", K_INT, F(qformer.encoder_width), 0, 1, 65536, NULL },
    { "qformer.embed_dim", K_INT, F(qformer.embed_dim), 0, 1, 65536, NULL },
    { "qformer.max_position_embeddings", K_INT, F(qformer.max_position_embeddings), 0, 4, 1 << 16, NULL },
    { "qformer.dropout", K_DBL, F(qformer.dropout), 0, 0, 0.99, NULL },
    { "qformer.initializer_range", K_DBL, F(qformer.initializer_range), 0, 1e-6, 9.99, NULL },
    { "qformer.bridge", K_ENUM, S(qformer.bridge), 0, 0, "qformer|linear" },
    { "qformer.freeze_in_caption", K_BOOL, F(qformer.freeze_in_caption), 0, 0, 1, NULL },
    { "llama.weights", K_STR, S(llama.weights), 0, 0, NULL },
    { "llama.tokenizer", K_STR, S(llama.tokenizer), 0, 0, NULL },
    { "llama.vocab_size", K_INT, F(llama.vocab_size), 0, 0, 1 << 24, NULL },
    { "llama.hidden_size", K_INT, F(llama.hidden_size), 0, 1, 65536, NULL },
    { "llama.intermediate_size", K_INT, F(llama.intermediate_size), 0, 1, 1 << 20, NULL },
    { "llama.num_hidden_layers", K_INT, F(llama.num_hidden_layers), 0, 1, 1024, NULL },
    { "llama.num_attention_heads", K_INT, F(llama.num_attention_heads), 0, 1, 1024, NULL },
    { "llama.num_key_value_heads", K_INT, F(llama.num_key_value_heads), 0, 0, 1024, NULL },
    { "llama.max_position_embeddings", K_INT, F(llama.max_position_embeddings), 0, 8, 1 << 20, NULL },
    { "llama.bf16", K_BOOL, F(llama.bf16), 0, 0, 1, NULL },
    { "llama.max_caption_tokens", K_INT, F(llama.max_caption_tokens), 0, 1, 4096, NULL },
    { "optim.lr", K_DBL, F(optim.lr), 0, 1e-12, 10, NULL },
    { "optim.min_lr", K_DBL, F(optim.min_lr), 0, 0, 10, NULL },
    { "optim.weight_decay", K_DBL, F(optim.weight_decay), 0, 0, 10, NULL },
    { "optim.beta1", K_DBL, F(optim.beta1), 0, 0, 0.999999, NULL },
    { "optim.beta2", K_DBL, F(optim.beta2), 0, 0, 0.99999999, NULL },
    { "optim.eps", K_DBL, F(optim.eps), 0, 1e-30, 1, NULL },
    { "optim.max_grad_norm", K_DBL, F(optim.max_grad_norm), 0, 0, 1e9, NULL },
    { "optim.warmup", K_I64, F(optim.warmup), 0, 0, 1e12, NULL },
    { "optim.schedule", K_ENUM, S(optim.schedule), 0, 0, "cosine|linear|constant" },
    { "train.out_dir", K_STR, S(train.out_dir), 0, 0, NULL },
    { "train.max_steps", K_I64, F(train.max_steps), 0, 0, 1e12, NULL },
    { "train.epochs", K_DBL, F(train.epochs), 0, 1e-6, 1e6, NULL },
    { "train.stage_steps", K_STR, S(train.stage_steps), 0, 0, NULL },
    { "train.stages", K_STR, S(train.stages), 0, 0, NULL },
    { "train.seed", K_I64, F(train.seed), 0, 0, 9.2e18, NULL },
    { "train.save_every", K_I64, F(train.save_every), 0, 0, 1e12, NULL },
    { "train.keep", K_INT, F(train.keep), 0, 1, 1000000, NULL },
    { "train.max_bad_steps", K_INT, F(train.max_bad_steps), 0, 1, 1000000, NULL },
    { "train.stop_at_step", K_I64, F(train.stop_at_step), 0, 0, 1e12, NULL },
    { "train.prompts", K_STR, S(train.prompts), 0, 0, NULL },
    { "train.threads", K_INT, F(train.threads), 0, 0, 4096, NULL },
    { "train.dist_timeout", K_DBL, F(train.dist_timeout), 0, 0, 1e7, NULL },
    { "train.dist_bucket_mb", K_DBL, F(train.dist_bucket_mb), 0, 0.001, 4096, NULL },
    { "train.dist_overlap", K_BOOL, F(train.dist_overlap), 0, 0, 1, NULL },
    { "train.init_from", K_STR, S(init_from), 0, 0, NULL },
    { "eval.every", K_I64, F(eval.every), 0, 0, 1e12, NULL },
    { "eval.batches", K_INT, F(eval.batches), 0, 1, 1000000, NULL },
    { "eval.caption_every", K_I64, F(eval.caption_every), 0, 0, 1e12, NULL },
    { "eval.caption_clips", K_INT, F(eval.caption_clips), 0, 1, 1000000, NULL },
    { "eval.probe_clips", K_INT, F(eval.probe_clips), 0, 0, 1000000, NULL },
    { "decode.prompt", K_STR, S(decode.prompt), 0, 0, NULL },
    { "decode.max_new_tokens", K_INT, F(decode.max_new_tokens), 0, 1, 100000, NULL },
    { "decode.num_beams", K_INT, F(decode.num_beams), 0, 1, 64, NULL },
    { "log.every", K_I64, F(log.every), 0, 1, 1e12, NULL },
    { "log.progress", K_ENUM, S(log.progress), 0, 0, "auto|bar|lines" },
    { "log.plots", K_BOOL, F(log.plots), 0, 0, 1, NULL },
};
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

/* The paper's built-in training prompt (also the decode default). */
#define PROMPT0 "请用一句中文概括音频中讲话者的情感："

void secap_train_config_default(secap_train_config *t)
{
    memset(t, 0, sizeof *t);
    secap_data_config_default(&t->data);
    t->hubert.layer = -1;
    t->qformer.lower_case = 1;
    t->qformer.hidden_size = 768;
    t->qformer.num_hidden_layers = 12;
    t->qformer.num_attention_heads = 12;
    t->qformer.intermediate_size = 3072;
    t->qformer.num_query_tokens = 32;
    t->qformer.cross_attention_freq = 2;
    t->qformer.encoder_width = 768;
    t->qformer.embed_dim = 256;
    t->qformer.max_position_embeddings = 512;
    t->qformer.dropout = 0.1;
    t->qformer.initializer_range = 0.02;
    snprintf(t->qformer.bridge, sizeof t->qformer.bridge, "qformer");
    t->llama.hidden_size = 4096;
    t->llama.intermediate_size = 11008;
    t->llama.num_hidden_layers = 32;
    t->llama.num_attention_heads = 32;
    t->llama.num_key_value_heads = 0;
    t->llama.max_position_embeddings = 2048;
    t->llama.bf16 = 1;
    t->llama.max_caption_tokens = 64;
    secap_lora_config_default(&t->lora);
    secap_lm_config_default(&t->lm);
    secap_stage1_config_default(&t->loss);
    t->optim.lr = 1.3e-5;
    t->optim.min_lr = 0;
    t->optim.weight_decay = 1e-6;
    t->optim.beta1 = 0.9;
    t->optim.beta2 = 0.999;
    t->optim.eps = 1e-8;
    t->optim.max_grad_norm = 1.0;
    t->optim.warmup = 0;
    snprintf(t->optim.schedule, sizeof t->optim.schedule, "cosine");
    t->train.max_steps = -1;
    t->train.epochs = 1;
    t->train.seed = 1;
    t->train.save_every = 0;
    t->train.keep = 3;
    t->train.max_bad_steps = 5;
    t->train.dist_timeout = 600;
    t->train.dist_bucket_mb = 64;
    t->train.dist_overlap = 0;
    t->eval.every = 0;
    t->eval.batches = 4;
    t->eval.caption_every = 0;
    t->eval.caption_clips = 32;
    snprintf(t->decode.prompt, sizeof t->decode.prompt, "%s", PROMPT0);
    t->decode.max_new_tokens = 50;
    t->decode.num_beams = 5;
    t->log.every = 10;
    snprintf(t->log.progress, sizeof t->log.progress, "auto");
    t->log.plots = 1;
}

static const keydef *find_key(const char *key)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].key, key)) return &KEYS[i];
    return NULL;
}

/* "a, b, c" of the keys of one section (messages). */
static void section_keys(const char *sec, char *buf, size_t cap)
{
    size_t n = 0, sl = strlen(sec);
    buf[0] = 0;
    for (int i = 0; i < NKEYS && n < cap - 64; i++)
        if (!strncmp(KEYS[i].key, sec, sl) && KEYS[i].key[sl] == '.')
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", KEYS[i].key + sl + 1);
}

static void set_key(secap_train_config *t, const keydef *k, const char *v, const char *origin)
{
    char *p = (char *)t + k->off, *end;
    errno = 0;
    switch (k->type) {
    case K_STR:
        if (strlen(v) >= k->size)
            secap_fatal("%s: %s: value of %zu bytes is too long (hint: at most %zu)", origin, k->key, strlen(v),
                        k->size - 1);
        memcpy(p, v, strlen(v) + 1);
        return;
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(int *)p = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(int *)p = 0;
        else secap_fatal("%s: %s = \"%s\" is not a boolean (hint: accepted values: true, false, 1, 0)", origin,
                         k->key, v);
        return;
    case K_ENUM: {
        size_t vl = strlen(v);
        for (const char *c = k->choices; *c;) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == vl && !strncmp(c, v, vl)) { memcpy(p, v, vl + 1); return; }
            if (!bar) break;
            c = bar + 1;
        }
        char acc[128];
        snprintf(acc, sizeof acc, "%s", k->choices);
        for (char *q = acc; *q; q++) if (*q == '|') *q = ',';
        secap_fatal("%s: %s = \"%s\" is not accepted (hint: accepted values: %s)", origin, k->key, v, acc);
    }
    case K_INT: case K_I64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || x < k->lo || x > k->hi)
            secap_fatal("%s: %s = \"%s\" is not an integer in [%.17g, %.17g] (hint: accepted values: integers "
                        "from %.17g to %.17g)", origin, k->key, v, k->lo, k->hi, k->lo, k->hi);
        if (k->type == K_INT) *(int *)p = (int)x;
        else *(int64_t *)p = (int64_t)x;
        return;
    }
    case K_DBL: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x) || x < k->lo || x > k->hi)
            secap_fatal("%s: %s = \"%s\" is not a number in [%g, %g] (hint: accepted values: finite numbers "
                        "from %g to %g)", origin, k->key, v, k->lo, k->hi, k->lo, k->hi);
        *(double *)p = x;
        return;
    }
    }
}

/* Messages of the modules' own setters get the key's origin in front. */
static __thread const char *g_origin;
static __thread secap_error_fn g_prev;
static __thread int g_prefixing;

static void origin_handler(const char *msg, void *ctx)
{
    (void)ctx;
    if (g_prefixing) return;
    g_prefixing = 1;
    secap_set_error_handler(g_prev, NULL);
    secap_fatal("%s: %s", g_origin, msg);
}

typedef int (*setter)(void *cfg, const char *key, const char *value);
static int data_set(void *cfg, const char *k, const char *v) { return secap_data_config_set(cfg, k, v); }
static int loss_set(void *cfg, const char *k, const char *v) { return secap_stage1_config_set(cfg, k, v); }

/* Calls set with the module's messages prefixed by origin; returns its result. */
static int module_set(setter set, void *cfg, const char *key, const char *value, const char *origin)
{
    secap_error_fn prev = secap_set_error_handler(origin_handler, NULL);
    g_prev = prev;
    g_origin = origin;
    g_prefixing = 0;
    int r = set(cfg, key, value);
    secap_set_error_handler(prev, NULL);
    return r;
}

static int split_stages(secap_train_config *t, const char *origin)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", t->train.stages);
    t->train.nstages = 0;
    int seen[SECAP_NSTAGES] = { 0 }, last = -1;
    for (char *save = NULL, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*s)) s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
        int st = secap_stage_parse(s);
        if (st < 0)
            secap_fatal("%s: train.stages: unknown stage \"%s\" (hint: accepted values: a comma list of lm, "
                        "qformer, caption, in that order)", origin, s);
        if (seen[st] || st < last)
            secap_fatal("%s: train.stages = \"%s\": stages run in the order lm, qformer, caption, each once "
                        "(hint: e.g. \"qformer,caption\")", origin, t->train.stages);
        seen[st] = 1;
        last = st;
        t->train.stage[t->train.nstages++] = st;
    }
    if (!t->train.nstages)
        secap_fatal("%s: train.stages is empty (hint: accepted values: a comma list of lm, qformer, caption)",
                    origin);
    return 0;
}

void secap_train_config_from_ini(secap_train_config *t, secap_ini *ini)
{
    const char *stages_origin = "train.stages";
    for (int i = 0; i < ini->n; i++) {
        secap_ini_entry *e = &ini->e[i];
        const char *dot = strchr(e->key, '.');
        size_t sl = dot ? (size_t)(dot - e->key) : strlen(e->key);
        int known = 0;
        for (int s = 0; SECTIONS[s]; s++) known |= strlen(SECTIONS[s]) == sl && !strncmp(SECTIONS[s], e->key, sl);
        if (!known) {
            char acc[256];
            size_t n = 0;
            for (int s = 0; SECTIONS[s]; s++) n += (size_t)snprintf(acc + n, sizeof acc - n, "%s%s", s ? ", " : "", SECTIONS[s]);
            secap_fatal("%s: unknown section [%.*s] (key %s) (hint: accepted sections: %s)", e->origin, (int)sl, e->key,
                        e->key, acc);
        }
        const keydef *k = find_key(e->key);
        if (k) {
            set_key(t, k, e->value, e->origin);
            e->used = 1;
            if (!strcmp(e->key, "train.stages")) stages_origin = e->origin;
            continue;
        }
        int r = -1;
        if (!strncmp(e->key, "data.", 5)) r = module_set(data_set, &t->data, e->key, e->value, e->origin);
        else if (!strncmp(e->key, "lora.", 5)) r = module_set(secap_lora_config_set, &t->lora, e->key, e->value, e->origin);
        else if (!strncmp(e->key, "loss.", 5)) r = module_set(loss_set, &t->loss, e->key, e->value, e->origin);
        else if (!strncmp(e->key, "lm.", 3)) r = module_set(secap_lm_config_set, &t->lm, e->key, e->value, e->origin);
        if (r == 0) { e->used = 1; continue; }
        char acc[1024];
        char sec[32];
        snprintf(sec, sizeof sec, "%.*s", (int)sl, e->key);
        if (!strcmp(sec, "data"))
            snprintf(acc, sizeof acc, "dir and the data keys of README \"Data\" (on_error, max_seconds, normalize, "
                     "seed, split_ratios, batch_size, ...)");
        else if (!strcmp(sec, "lora")) snprintf(acc, sizeof acc, "r, lora_alpha, lora_dropout, target_modules");
        else if (!strcmp(sec, "lm")) snprintf(acc, sizeof acc, "block_size, batch_size, seed, prompts, text");
        else if (!strcmp(sec, "loss"))
            snprintf(acc, sizeof acc, "w_mi, w_con, w_pair, w_class, mi_variant, mi_hidden, mi_lr, mi_weight_decay, "
                     "temp_init, temp_min, temp_max, mi_monitor, mi_warmup, caption_w_mi, caption_w_con");
        else section_keys(sec, acc, sizeof acc);
        secap_fatal("%s: unknown key %s in section [%s] (hint: accepted keys: %s)", e->origin, e->key, sec, acc);
    }
    /* required keys */
    const char *req[] = { "data.dir", "train.out_dir", "train.max_steps", "train.stages" };
    for (int i = 0; i < 4; i++) {
        int have = 0;
        for (int j = 0; j < ini->n; j++) have |= !strcmp(ini->e[j].key, req[i]);
        if (!have)
            secap_fatal("config: required key %s is missing (hint: add it to the config file's [%.*s] section or "
                        "pass --%s=VALUE; README \"Training\" documents it)", req[i],
                        (int)(strchr(req[i], '.') - req[i]), req[i], req[i]);
    }
    if (!t->data_dir[0]) secap_fatal("config: data.dir is empty (hint: a dataset directory or a .jsonl manifest)");
    if (!t->train.out_dir[0]) secap_fatal("config: train.out_dir is empty (hint: the run directory to write)");
    split_stages(t, stages_origin);
    if (!strcmp(t->qformer.bridge, "linear")) {
        for (int i = 0; i < t->train.nstages; i++)
            if (t->train.stage[i] == SECAP_STAGE_QFORMER)
                secap_fatal("%s: train.stages = \"%s\" includes qformer, but qformer.bridge = linear has no "
                            "Q-Former to train there (hint: train.stages = lm,caption, or qformer.bridge = qformer)",
                            stages_origin, t->train.stages);
        if (t->qformer.freeze_in_caption)
            secap_fatal("config: qformer.freeze_in_caption = true with qformer.bridge = linear: there is no Q-Former "
                        "to freeze (hint: one ablation at a time; freeze_in_caption = false)");
    }
    for (int i = 0; i < SECAP_NSTAGES; i++) t->train.steps_of[i] = -1;
    char ss[128];
    snprintf(ss, sizeof ss, "%s", t->train.stage_steps);
    for (char *save = NULL, *tok = strtok_r(ss, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':'), *end;
        while (isspace((unsigned char)*tok)) tok++;
        if (colon) *colon = 0;
        int st = colon ? secap_stage_parse(tok) : -1;
        long long v = colon ? strtoll(colon + 1, &end, 10) : -1;
        if (st < 0 || !colon || *end || v < 0)
            secap_fatal("config: train.stage_steps = \"%s\": each entry is stage:steps with a stage out of lm, "
                        "qformer, caption and steps >= 0 (hint: e.g. lm:1000,caption:600)", t->train.stage_steps);
        t->train.steps_of[st] = v;
    }
    secap_lora_config_validate(&t->lora, "config [lora]");
    secap_stage1_config_validate(&t->loss, "config [loss]");
    secap_lm_config_validate(&t->lm, "config [lm]");
    if (t->qformer.hidden_size % t->qformer.num_attention_heads)
        secap_fatal("config: qformer.hidden_size %d is not a multiple of qformer.num_attention_heads %d (hint: "
                    "change one of them)", t->qformer.hidden_size, t->qformer.num_attention_heads);
    if (t->llama.hidden_size % t->llama.num_attention_heads)
        secap_fatal("config: llama.hidden_size %d is not a multiple of llama.num_attention_heads %d (hint: change "
                    "one of them)", t->llama.hidden_size, t->llama.num_attention_heads);
    if (t->optim.min_lr > t->optim.lr)
        secap_fatal("config: optim.min_lr %g is above optim.lr %g (hint: the floor must not exceed the peak)",
                    t->optim.min_lr, t->optim.lr);
}

static void print_key(const secap_train_config *t, const keydef *k, FILE *f)
{
    const char *p = (const char *)t + k->off;
    const char *name = strchr(k->key, '.') + 1;
    switch (k->type) {
    case K_STR: case K_ENUM: fprintf(f, "%s = %s\n", name, p); break;
    case K_BOOL: fprintf(f, "%s = %s\n", name, *(const int *)p ? "true" : "false"); break;
    case K_INT: fprintf(f, "%s = %d\n", name, *(const int *)p); break;
    case K_I64: fprintf(f, "%s = %lld\n", name, (long long)*(const int64_t *)p); break;
    case K_DBL: fprintf(f, "%s = %.17g\n", name, *(const double *)p); break;
    }
}

/* "sec.key = value" lines from a module printer, as "key = value". */
static void strip_prefix(const char *text, const char *sec, FILE *f)
{
    size_t sl = strlen(sec);
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        if (n > sl && !strncmp(l, sec, sl) && l[sl] == '.') fprintf(f, "%.*s\n", (int)(n - sl - 1), l + sl + 1);
        else if (n) fprintf(f, "%.*s\n", (int)n, l);
        l += n + (nl != NULL);
    }
}

char *secap_train_config_text(const secap_train_config *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) secap_fatal("config: open_memstream failed (out of memory)");
    fprintf(f, "# resolved config of a secap-train run: every key, defaults included\n");
    for (int s = 0; SECTIONS[s]; s++) {
        const char *sec = SECTIONS[s];
        size_t sl = strlen(sec);
        fprintf(f, "\n[%s]\n", sec);
        for (int i = 0; i < NKEYS; i++)
            if (!strncmp(KEYS[i].key, sec, sl) && KEYS[i].key[sl] == '.') print_key(t, &KEYS[i], f);
        char *mb = NULL;
        size_t ml = 0;
        FILE *m = NULL;
        if (!strcmp(sec, "data") || !strcmp(sec, "loss") || !strcmp(sec, "lm")) {
            m = open_memstream(&mb, &ml);
            if (!m) secap_fatal("config: open_memstream failed (out of memory)");
            if (!strcmp(sec, "data")) secap_data_config_print(&t->data, m);
            else if (!strcmp(sec, "lm")) secap_lm_config_print(&t->lm, m);
            else secap_stage1_config_print(&t->loss, m);
            fclose(m);
            strip_prefix(mb, sec, f);
            free(mb);
        } else if (!strcmp(sec, "lora")) {
            fprintf(f, "r = %d\nlora_alpha = %.17g\nlora_dropout = %.17g\ntarget_modules = %s\n", t->lora.r,
                    t->lora.alpha, t->lora.dropout, t->lora.target_modules);
        }
    }
    fclose(f);
    return buf;
}

/* [config] base = FILE: the file's keys on top of FILE's (secap/train.h). */
static secap_ini *load_with_base(const char *path, int depth)
{
    secap_ini *ini = secap_ini_load(path);
    int bi = -1;
    for (int i = 0; i < ini->n; i++) {
        if (strncmp(ini->e[i].key, "config.", 7)) continue;
        if (strcmp(ini->e[i].key, "config.base")) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s: unknown key %s in section [config] (hint: accepted keys: base)",
                     ini->e[i].origin, ini->e[i].key);
            secap_ini_free(ini);
            secap_fatal("%s", msg);
        }
        bi = i;
    }
    if (bi < 0) return ini;
    const secap_ini_entry *be = &ini->e[bi];
    char base[2200], msg[3000];
    msg[0] = 0;
    if (!be->value[0])
        snprintf(msg, sizeof msg, "%s: config.base is empty (hint: a config file, relative to this one, e.g. "
                 "base = demo.ini)", be->origin);
    else if (depth >= 8)
        snprintf(msg, sizeof msg, "%s: config.base = %s: more than 8 nested bases (hint: a base that names this "
                 "file again? break the cycle)", be->origin, be->value);
    if (!msg[0]) {
        const char *slash = strrchr(path, '/');
        if (be->value[0] == '/' || !slash) snprintf(base, sizeof base, "%s", be->value);
        else snprintf(base, sizeof base, "%.*s/%s", (int)(slash - path), path, be->value);
        if (access(base, R_OK) != 0 || secap_is_dir(base))
            snprintf(msg, sizeof msg, "%s: config.base = %s: cannot read %s: %s (hint: a config file; a relative path "
                     "is relative to the directory of the file that names it)", be->origin, be->value, base,
                     secap_is_dir(base) ? "a directory" : strerror(errno));
    }
    if (msg[0]) {
        secap_ini_free(ini);
        secap_fatal("%s", msg);
    }
    secap_cleanup cl;
    secap_cleanup_push(&cl, (void (*)(void *))secap_ini_free, ini);
    secap_ini *out = load_with_base(base, depth + 1);
    secap_cleanup_pop(&cl);
    for (int i = 0; i < ini->n; i++)
        if (i != bi) secap_ini_set(out, ini->e[i].key, ini->e[i].value, ini->e[i].origin);
    secap_ini_free(ini);
    return out;
}

secap_ini *secap_train_config_load(const char *path) { return load_with_base(path, 0); }
