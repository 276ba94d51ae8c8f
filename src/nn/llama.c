/* The LLaMA decoder (Hugging Face LlamaForCausalLM semantics) with PEFT LoRA
 * on the autograd engine; the math and the names are in
 * include/secap/llama.h.  Written in model order: the name tables, loading /
 * saving (base and adapter), the projections, the layers, the caption batch
 * and loss, decoding against a KV cache.
 *
 * The model holds no mutable state: activations live in the caller's step
 * arena and on its tape, decoding state in a secap_kvcache.  Base weights are
 * frozen (float32 or bf16 storage), LoRA tensors are the only trainable
 * parameters, and gradients flow back to whatever the caller passed in x.
 * With opts.train_base (LM pretraining) the base table's entries are made
 * trainable float32 parameters instead; the same ops then accumulate their
 * weight gradients (a tied embedding gets both the lookup's and lm_head's). */
#include "secap/llama.h"
#include "secap/autograd.h"
#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/ops.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    secap_tensor *w;             /* [out, in] frozen */
    secap_tensor *A, *B;         /* lora_A [r, in], lora_B [out, r], or NULL */
} proj;

enum { P_Q, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN, P_COUNT };
static const char *const PROJ_NAME[P_COUNT] = { "q_proj", "k_proj", "v_proj", "o_proj",
                                                "gate_proj", "up_proj", "down_proj" };

typedef struct {
    secap_tensor *in_norm;       /* input_layernorm [D] */
    secap_tensor *post_norm;     /* post_attention_layernorm [D] */
    proj p[P_COUNT];
} ll_layer;

struct secap_llama {
    secap_llama_config cfg;
    secap_lora_config lcfg;      /* valid when has_lora */
    int has_lora;
    int train_base;              /* base tensors trainable (opts.train_base) */
    float lora_scale;            /* alpha / r */
    secap_tensor *embed;         /* model.embed_tokens.weight [V, D] */
    secap_tensor *norm;          /* model.norm.weight [D] */
    secap_tensor *lm_head;       /* [V, D]; = embed when tied */
    ll_layer *layers;            /* [L] */
    secap_params *base;
    secap_params *lora;          /* NULL without adapters */
};

/* ------------------------------------------------------------ name tables */

static void proj_shape(const secap_llama_config *c, int k, int64_t *out, int64_t *in)
{
    int64_t D = c->hidden_size, I = c->intermediate_size, hd = D / c->num_attention_heads;
    int64_t Wkv = hd * c->num_key_value_heads;
    switch (k) {
    case P_Q: case P_O: *out = D; *in = D; break;
    case P_K: case P_V: *out = Wkv; *in = D; break;
    case P_GATE: case P_UP: *out = I; *in = D; break;
    default: *out = D; *in = I; break;
    }
}

static const char *proj_module(int k) { return k <= P_O ? "self_attn" : "mlp"; }

/* The base model in HF state-dict order. */
static void base_table(secap_llama *m)
{
    const secap_llama_config *c = &m->cfg;
    secap_params *p = m->base;
    int64_t V = c->vocab_size, D = c->hidden_size;
    secap_params_add(p, &m->embed, SECAP_SHAPE(V, D), "model.embed_tokens.weight");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        ll_layer *Y = &m->layers[l];
        for (int k = 0; k <= P_O; k++) {
            int64_t o, i;
            proj_shape(c, k, &o, &i);
            secap_params_add(p, &Y->p[k].w, SECAP_SHAPE(o, i), "model.layers.%d.self_attn.%s.weight", l,
                             PROJ_NAME[k]);
        }
        for (int k = P_GATE; k < P_COUNT; k++) {
            int64_t o, i;
            proj_shape(c, k, &o, &i);
            secap_params_add(p, &Y->p[k].w, SECAP_SHAPE(o, i), "model.layers.%d.mlp.%s.weight", l, PROJ_NAME[k]);
        }
        secap_params_add(p, &Y->in_norm, SECAP_SHAPE(D), "model.layers.%d.input_layernorm.weight", l);
        secap_params_add(p, &Y->post_norm, SECAP_SHAPE(D), "model.layers.%d.post_attention_layernorm.weight", l);
    }
    secap_params_add(p, &m->norm, SECAP_SHAPE(D), "model.norm.weight");
    if (!c->tie_word_embeddings) secap_params_add(p, &m->lm_head, SECAP_SHAPE(V, D), "lm_head.weight");
}

static int is_target(const char *targets, const char *name)
{
    size_t len = strlen(name);
    for (const char *s = targets; *s;) {
        size_t n = strcspn(s, ",");
        if (n == len && !strncmp(s, name, n)) return 1;
        s += n;
        if (*s == ',') s++;
    }
    return 0;
}

/* LoRA entries (PEFT names); from_file: loaded from an adapter, else PEFT's
 * initialisation (A kaiming-uniform, B zeros). */
static void lora_table(secap_llama *m, int from_file)
{
    const secap_llama_config *c = &m->cfg;
    secap_params *p = m->lora;
    int64_t r = m->lcfg.r;
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (int k = 0; k < P_COUNT; k++) {
            if (!is_target(m->lcfg.target_modules, PROJ_NAME[k])) continue;
            int64_t o, in;
            proj_shape(c, k, &o, &in);
            proj *P = &m->layers[l].p[k];
            const char *f = SECAP_LORA_PREFIX "model.layers.%d.%s.%s.lora_%s.weight";
            int a = secap_params_add(p, &P->A, SECAP_SHAPE(r, in), f, l, proj_module(k), PROJ_NAME[k], "A");
            int b = secap_params_add(p, &P->B, SECAP_SHAPE(o, r), f, l, proj_module(k), PROJ_NAME[k], "B");
            if (!from_file) {
                secap_params_set_init(p, a, SECAP_INIT_KAIMING, 0);
                secap_params_set_init(p, b, SECAP_INIT_ZEROS, 0);
            }
        }
}

static secap_llama *llama_new(const secap_llama_config *cfg, const secap_llama_opts *o, const char *where)
{
    secap_llama_config_validate(cfg, where);
    if (o && o->train_base && o->base_bf16)
        secap_fatal("%s: secap_llama_opts asks for trainable base weights (train_base) stored as bf16 (base_bf16) "
                    "(hint: trainable tensors are float32; turn base_bf16 off for LM pretraining)", where);
    secap_llama *m = secap_xcalloc(1, sizeof *m, "llama model");
    m->cfg = *cfg;
    m->train_base = o && o->train_base;
    m->layers = secap_xcalloc((size_t)cfg->num_hidden_layers, sizeof *m->layers, "llama layers");
    m->base = secap_params_new("llama");
    secap_params_default_trainable(m->base, m->train_base);
    secap_params_default_std(m->base, (float)cfg->initializer_range);
    base_table(m);
    if (o && o->base_bf16)
        secap_params_set_dtype(m->base, "*_proj.weight,model.embed_tokens.weight,lm_head.weight", SECAP_BF16);
    return m;
}

/* What a failing load releases (parameters already made stay in c's arena). */
typedef struct { secap_weights *w; secap_llama *m; } llama_loading;

static void llama_loading_free(void *arg)
{
    llama_loading *l = arg;
    secap_weights_close(l->w);
    secap_llama_free(l->m);
}

/* Adds the adapters the options ask for (after the base is loaded); the
 * adapter file's reader sits in ld->w while it may fail. */
static void attach_lora(llama_loading *ld, secap_ctx *c, const secap_llama_opts *o)
{
    secap_llama *m = ld->m;
    if (!o) return;
    if (o->adapter) {
        ld->w = secap_weights_open(o->adapter);
        secap_lora_config_read(&m->lcfg, ld->w);
    } else if (o->lora && o->lora->r > 0) {
        m->lcfg = *o->lora;
        secap_lora_config_validate(&m->lcfg, "secap_llama_opts.lora");
    } else {
        return;
    }
    m->has_lora = 1;
    m->lora_scale = (float)(m->lcfg.alpha / m->lcfg.r);
    m->lora = secap_params_new("lora");
    secap_params_default_trainable(m->lora, 1);
    lora_table(m, ld->w != NULL);
    secap_params_load(m->lora, c, ld->w, NULL, o->seed);
    if (ld->w) {
        secap_weights *w = ld->w;
        ld->w = NULL;   /* closed by the check, even when it fails */
        secap_weights_close_checked(w, NULL);
    }
}

secap_llama *secap_llama_load(secap_ctx *c, const char *path, const secap_llama_opts *opts)
{
    llama_loading ld = { NULL, NULL };
    secap_cleanup cl;
    secap_cleanup_push(&cl, llama_loading_free, &ld);
    ld.w = secap_weights_open(path);
    secap_llama_config cfg;
    secap_llama_config_read(&cfg, ld.w);
    ld.m = llama_new(&cfg, opts, path);
    secap_params_load(ld.m->base, c, ld.w, NULL, opts ? opts->seed : 0);
    static const char *const tied_allow[] = { "lm_head.weight", NULL };
    secap_weights *w = ld.w;
    ld.w = NULL;
    secap_weights_close_checked(w, cfg.tie_word_embeddings ? tied_allow : NULL);
    if (cfg.tie_word_embeddings) ld.m->lm_head = ld.m->embed;
    attach_lora(&ld, c, opts);
    secap_cleanup_pop(&cl);
    return ld.m;
}

secap_llama *secap_llama_init_random(secap_ctx *c, const secap_llama_config *cfg, const secap_llama_opts *opts)
{
    llama_loading ld = { NULL, NULL };
    secap_cleanup cl;
    secap_cleanup_push(&cl, llama_loading_free, &ld);
    ld.m = llama_new(cfg, opts, "secap_llama_init_random");
    secap_params_load(ld.m->base, c, NULL, NULL, opts ? opts->seed : 0);
    if (cfg->tie_word_embeddings) ld.m->lm_head = ld.m->embed;
    attach_lora(&ld, c, opts);
    secap_cleanup_pop(&cl);
    return ld.m;
}

void secap_llama_free(secap_llama *m)
{
    if (!m) return;
    secap_params_free(m->base);
    secap_params_free(m->lora);
    free(m->layers);
    free(m);
}

const secap_llama_config *secap_llama_cfg(const secap_llama *m) { return &m->cfg; }
const secap_lora_config *secap_llama_lora_cfg(const secap_llama *m) { return m->has_lora ? &m->lcfg : NULL; }
const secap_params *secap_llama_base_params(const secap_llama *m) { return m->base; }
int secap_llama_train_base(const secap_llama *m) { return m->train_base; }
const secap_params *secap_llama_lora_params(const secap_llama *m) { return m->lora; }

void secap_llama_save(const secap_llama *m, const char *path)
{
    secap_weights *w = secap_weights_create(path);
    secap_llama_config_write(&m->cfg, w);
    secap_params_write(m->base, w, NULL, 0);
    secap_weights_close(w);
}

/* adapter_config.json as PEFT's LoraConfig.save_pretrained writes it. */
static void write_adapter_json(const secap_lora_config *l, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) secap_fatal("adapter: cannot create %s: %s (hint: check the directory is writable)", tmp, strerror(errno));
    secap_tmp_register(tmp);   /* removed if the run stops before the rename */
    fprintf(f, "{\n  \"base_model_name_or_path\": null,\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": false,\n"
               "  \"inference_mode\": true,\n  \"init_lora_weights\": true,\n  \"lora_alpha\": %.17g,\n"
               "  \"lora_dropout\": %.17g,\n  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n"
               "  \"r\": %d,\n  \"target_modules\": [", l->alpha, l->dropout, l->r);
    const char *s = l->target_modules;
    for (int first = 1; *s; first = 0) {
        size_t n = strcspn(s, ",");
        fprintf(f, "%s\"%.*s\"", first ? "" : ", ", (int)n, s);
        s += n;
        if (*s == ',') s++;
    }
    fprintf(f, "],\n  \"task_type\": \"CAUSAL_LM\"\n}\n");
    int bad = ferror(f);
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        secap_tmp_unregister(tmp);
        secap_fatal("adapter: cannot write %s: %s (hint: disk full or not writable?)", path, strerror(e));
    }
    secap_tmp_unregister(tmp);
}

void secap_llama_save_adapter(const secap_llama *m, const char *dir)
{
    if (!m->has_lora)
        secap_fatal("secap_llama_save_adapter %s: the model has no adapters (hint: load it with "
                    "secap_llama_opts.lora r > 0)", dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        secap_fatal("secap_llama_save_adapter: cannot create directory %s: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.h5", dir);
    secap_weights *w = secap_weights_create(path);
    secap_weights_set_string(w, "model_type", "lora");
    secap_weights_set_string(w, "peft_type", "LORA");
    secap_weights_set_string(w, "task_type", "CAUSAL_LM");
    secap_weights_set_string(w, "bias", "none");
    secap_weights_set_int(w, "r", m->lcfg.r);
    secap_weights_set_double(w, "lora_alpha", m->lcfg.alpha);
    secap_weights_set_double(w, "lora_dropout", m->lcfg.dropout);
    secap_weights_set_string(w, "target_modules", m->lcfg.target_modules);
    secap_params_write(m->lora, w, NULL, 1);
    secap_weights_close(w);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    write_adapter_json(&m->lcfg, path);
}

/* ---------------------------------------------------------------- forward */

/* W x, plus (alpha/r) B A dropout(x) when the projection has an adapter. */
static secap_tensor *project(secap_ctx *c, const secap_llama *m, const proj *P, secap_tensor *x)
{
    secap_tensor *y = secap_linear(c, x, P->w, NULL);
    if (!P->A) return y;
    secap_tensor *u = secap_linear(c, secap_dropout(c, x, (float)m->lcfg.dropout), P->A, NULL);
    return secap_add(c, y, secap_scale(c, secap_linear(c, u, P->B, NULL), m->lora_scale, 0.0f));
}

secap_tensor *secap_llama_embed(secap_ctx *c, const secap_llama *m, const int32_t *ids, int B, int T)
{
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            secap_fatal("llama embed: token id %d at row %lld step %lld is outside [0, %d) (hint: the tokenizer "
                        "and the model disagree on the vocabulary)", ids[i], (long long)(i / T),
                        (long long)(i % T), m->cfg.vocab_size);
    return secap_embedding_bt(c, m->embed, ids, B, T);
}

static void check_x(const secap_llama *m, secap_tensor *x, const char *op)
{
    secap_check_live(x, op);
    char buf[64];
    if (x->ndim != 3 || x->shape[2] != m->cfg.hidden_size)
        secap_fatal("%s: x is %s, expected [B, T, %d] (hidden_size)", op, secap_shape_str(x, buf, sizeof buf),
                    m->cfg.hidden_size);
}

/* One decoder layer.  pos_bt/q_pos/key_len as secap_attention_ex and
 * secap_rope_bt take them; kc (may be NULL) receives the keys and values. */
static secap_tensor *layer_forward(secap_ctx *c, const secap_llama *m, int l, secap_tensor *x,
                                   const int32_t *pos_bt, const int32_t *key_len, secap_kvcache *kc,
                                   const int32_t *n)
{
    const secap_llama_config *cf = &m->cfg;
    const ll_layer *Y = &m->layers[l];
    int H = cf->num_attention_heads, G = cf->num_key_value_heads, hd = cf->hidden_size / H;
    float eps = (float)cf->rms_norm_eps, theta = (float)cf->rope_theta;
    secap_tensor *h = secap_rmsnorm(c, x, Y->in_norm, eps);
    secap_tensor *q = secap_rope_bt(c, project(c, m, &Y->p[P_Q], h), H, pos_bt, theta);
    secap_tensor *k = secap_rope_bt(c, project(c, m, &Y->p[P_K], h), G, pos_bt, theta);
    secap_tensor *v = project(c, m, &Y->p[P_V], h);
    secap_attn_opts o = { .heads = H, .kv_heads = G, .key_len = key_len, .q_pos = NULL, .causal = 1,
                          .scale = 1.0f / sqrtf((float)hd) };
    if (kc) {
        o.q_pos = secap_kvcache_append(kc, l, k, v, n);
        o.key_len = secap_kvcache_len(kc, l);
        k = secap_kvcache_k(c, kc, l);
        v = secap_kvcache_v(c, kc, l);
    }
    secap_tensor *a = secap_attention_ex(c, q, k, v, &o);
    x = secap_add(c, x, project(c, m, &Y->p[P_O], a));
    h = secap_rmsnorm(c, x, Y->post_norm, eps);
    secap_tensor *g = secap_silu(c, project(c, m, &Y->p[P_GATE], h));
    secap_tensor *f = secap_mul(c, g, project(c, m, &Y->p[P_UP], h));
    return secap_add(c, x, project(c, m, &Y->p[P_DOWN], f));
}

secap_tensor *secap_llama_forward(secap_ctx *c, const secap_llama *m, secap_tensor *x, const int32_t *lens)
{
    const char *op = "llama forward";
    check_x(m, x, op);
    int64_t B = x->shape[0], T = x->shape[1];
    if (T > m->cfg.max_position_embeddings)
        secap_fatal("%s: %lld steps exceed max_position_embeddings %d (hint: shorten the prompt or caption)", op,
                    (long long)T, m->cfg.max_position_embeddings);
    if (lens)
        for (int64_t b = 0; b < B; b++)
            if (lens[b] < 1 || lens[b] > T)
                secap_fatal("%s: lens[%lld] = %d is outside [1, %lld]", op, (long long)b, lens[b], (long long)T);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) x = layer_forward(c, m, l, x, NULL, lens, NULL, NULL);
    x = secap_rmsnorm(c, x, m->norm, (float)m->cfg.rms_norm_eps);
    return secap_linear(c, x, m->lm_head, NULL);
}

/* ------------------------------------------------------ caption batch, loss */

secap_llama_batch secap_llama_caption_batch(secap_ctx *c, const secap_llama *m, secap_tensor *audio,
                                            const int32_t *const *prompt, const int32_t *prompt_len,
                                            const int32_t *const *caption, const int32_t *caption_len, int B)
{
    const char *op = "llama caption batch";
    const secap_llama_config *cf = &m->cfg;
    int64_t Q = 0;
    if (audio) {
        check_x(m, audio, op);
        if (audio->shape[0] != B)
            secap_fatal("%s: audio has %lld rows, the batch %d", op, (long long)audio->shape[0], B);
        Q = audio->shape[1];
    }
    if (B < 1) secap_fatal("%s: empty batch", op);
    secap_llama_batch r = { 0 };
    r.B = B;
    r.lens = secap_arena_alloc(c->step, (size_t)B * sizeof *r.lens, 0, op);
    int64_t T = 0;
    for (int b = 0; b < B; b++) {
        int32_t pl = prompt_len ? prompt_len[b] : 0, cl = caption_len ? caption_len[b] : 0;
        if (pl < 0 || cl < 0 || (pl && (!prompt || !prompt[b])) || (cl && (!caption || !caption[b])))
            secap_fatal("%s: row %d has prompt length %d and caption length %d (negative, or ids missing)", op, b,
                        pl, cl);
        r.lens[b] = (int32_t)(1 + Q + pl + cl + 1);
        if (r.lens[b] > T) T = r.lens[b];
    }
    r.T = (int)T;
    int64_t R = T - 1 - Q;   /* text steps after [BOS][audio] */
    int32_t pad = cf->pad_token_id >= 0 ? cf->pad_token_id : cf->eos_token_id;
    int32_t *bos = secap_arena_alloc(c->step, (size_t)B * sizeof *bos, 0, op);
    int32_t *rest = secap_arena_alloc(c->step, (size_t)(B * R) * sizeof *rest, 0, op);
    r.targets = secap_arena_alloc(c->step, (size_t)(B * T) * sizeof *r.targets, 0, op);
    for (int b = 0; b < B; b++) {
        bos[b] = cf->bos_token_id;
        int32_t *t = rest + b * R;
        int64_t j = 0;
        int32_t pl = prompt_len ? prompt_len[b] : 0, cl = caption_len ? caption_len[b] : 0;
        for (int i = 0; i < pl; i++) t[j++] = prompt[b][i];
        for (int i = 0; i < cl; i++) t[j++] = caption[b][i];
        t[j++] = cf->eos_token_id;
        while (j < R) t[j++] = pad;
        int64_t first = 1 + Q + pl;   /* step of the first caption token */
        for (int64_t s = 0; s < T; s++) {
            int64_t nx = s + 1;
            r.targets[b * T + s] = nx >= first && nx < r.lens[b] ? t[nx - 1 - Q] : SECAP_LLAMA_IGNORE;
        }
    }
    secap_tensor *parts[3];
    int np = 0;
    parts[np++] = secap_llama_embed(c, m, bos, B, 1);
    if (Q > 0) parts[np++] = audio;
    parts[np++] = secap_llama_embed(c, m, rest, B, (int)R);
    r.x = secap_concat(c, parts, np, 1);
    return r;
}

secap_tensor *secap_llama_loss(secap_ctx *c, secap_tensor *logits, const int32_t *targets)
{
    secap_check_live(logits, "llama loss");
    int64_t V = logits->shape[logits->ndim - 1], N = logits->n / V;
    secap_tensor *flat = secap_reshape(c, logits, SECAP_SHAPE(N, V));
    return secap_cross_entropy(c, flat, targets, SECAP_LLAMA_IGNORE);
}

/* --------------------------------------------------------------- decoding */

secap_kvcache *secap_llama_kvcache_new(const secap_llama *m, int64_t B, int64_t tmax)
{
    const secap_llama_config *cf = &m->cfg;
    if (tmax > cf->max_position_embeddings)
        secap_fatal("llama kvcache: tmax %lld exceeds max_position_embeddings %d", (long long)tmax,
                    cf->max_position_embeddings);
    int64_t W = (int64_t)cf->hidden_size / cf->num_attention_heads * cf->num_key_value_heads;
    return secap_kvcache_new(cf->num_hidden_layers, B, tmax, W);
}

secap_tensor *secap_llama_decode(secap_ctx *c, const secap_llama *m, secap_kvcache *kc, secap_tensor *x,
                                 const int32_t *n)
{
    const char *op = "llama decode";
    check_x(m, x, op);
    secap_kvcache_dims kd = secap_kvcache_shape(kc);
    int64_t B = x->shape[0], T = x->shape[1], D = m->cfg.hidden_size;
    if (kd.layers != m->cfg.num_hidden_layers || kd.batch != B)
        secap_fatal("%s: cache has %d layers x %lld rows, the model %d layers and x %lld rows (hint: make it with "
                    "secap_llama_kvcache_new)", op, kd.layers, (long long)kd.batch, m->cfg.num_hidden_layers,
                    (long long)B);
    if (n)
        for (int64_t b = 0; b < B; b++)
            if (n[b] < 0 || n[b] > T)
                secap_fatal("%s: n[%lld] = %d is outside [0, %lld]", op, (long long)b, n[b], (long long)T);
    int prev = secap_no_grad_begin(c), training = c->training;
    c->training = 0;   /* decoding is inference: no LoRA dropout */
    int32_t *pos = secap_arena_alloc(c->step, (size_t)(B * T) * sizeof *pos, 0, op);
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        secap_kvcache_positions(kc, l, T, pos);
        x = layer_forward(c, m, l, x, pos, NULL, kc, n);
    }
    /* the last new step of each row */
    secap_tensor *last = secap_zeros(c, SECAP_SHAPE(B, 1, D));
    for (int64_t b = 0; b < B; b++) {
        int64_t t = n ? n[b] - 1 : T - 1;
        if (t >= 0) memcpy(secap_f32(last) + b * D, secap_f32(x) + (b * T + t) * D, (size_t)D * sizeof(float));
    }
    last = secap_rmsnorm(c, last, m->norm, (float)m->cfg.rms_norm_eps);
    secap_tensor *y = secap_linear(c, last, m->lm_head, NULL);
    y = secap_reshape(c, y, SECAP_SHAPE(B, m->cfg.vocab_size));
    secap_no_grad_end(c, prev);
    c->training = training;
    return y;
}
