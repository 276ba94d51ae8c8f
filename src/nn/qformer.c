/* The Q-Former (BLIP-2's BERT with learnable queries, LAVIS Qformer.py
 * semantics) on the autograd engine; the math is in include/secap/qformer.h.
 * Written in model order: the name tables, loading / saving, the blocks,
 * the two modes, the heads.
 *
 * Every block is post-LN BERT: y = LayerNorm(x + dropout(sublayer(x))).
 * Query and text mode share the embeddings LayerNorm and every self-attention;
 * query mode alone has cross-attention (to the projected audio frames, in
 * layers l % cross_attention_freq == 0) and uses the query feed-forward, text
 * mode the text feed-forward.  The model holds no mutable state: activations
 * live in the caller's step arena and on its tape. */
#include "secap/qformer.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    secap_tensor *q_w, *q_b;    /* self.query [H, H], [H] */
    secap_tensor *k_w, *k_b;    /* self.key   [H, H] (cross: [H, W]), [H] */
    secap_tensor *v_w, *v_b;    /* self.value [H, H] (cross: [H, W]), [H] */
    secap_tensor *o_w, *o_b;    /* output.dense [H, H], [H] */
    secap_tensor *ln_w, *ln_b;  /* output.LayerNorm [H] */
} attn_block;

typedef struct {
    secap_tensor *i_w, *i_b;    /* intermediate(_query).dense [I, H], [I] */
    secap_tensor *o_w, *o_b;    /* output(_query).dense [H, I], [H] */
    secap_tensor *ln_w, *ln_b;  /* output(_query).LayerNorm [H] */
} ffn_block;

typedef struct {
    attn_block self;
    attn_block cross;           /* bound when has_cross */
    int has_cross;              /* l % cross_attention_freq == 0 */
    ffn_block text;             /* intermediate / output (text mode) */
    ffn_block query;            /* intermediate_query / output_query */
} qf_layer;

struct secap_qformer {
    secap_qformer_config cfg;
    int trainable;
    secap_tensor *word;         /* [V, H] or NULL (no text mode) */
    secap_tensor *pos;          /* [P, H] or NULL */
    secap_tensor *type;         /* [Y, H] or NULL (Y = 0, or no text mode) */
    secap_tensor *emb_ln_w, *emb_ln_b;   /* embeddings.LayerNorm [H] */
    qf_layer *layers;           /* [L] */
    secap_tensor *query_tokens; /* [1, Q, H] */
    secap_tensor *ap_w, *ap_b;  /* audio_project [W, A], [W] or NULL */
    secap_tensor *lp_w, *lp_b;  /* audio_llama_project [D, H], [D] or NULL */
    secap_tensor *sp_w, *sp_b;  /* speech_proj [E, H], [E] or NULL */
    secap_tensor *tp_w, *tp_b;  /* text_proj [E, H], [E] or NULL */
    secap_params *bert;         /* names relative to the BERT prefix */
    secap_params *root;         /* query_tokens and the projections */
};

/* ------------------------------------------------------------ name tables */

static void attn_entries(secap_params *p, attn_block *A, const char *kind, int l, int64_t H, int64_t Wkv)
{
    const char *f = "encoder.layer.%d.%s.%s";
    secap_params_add(p, &A->q_w, SECAP_SHAPE(H, H), f, l, kind, "self.query.weight");
    secap_params_add(p, &A->q_b, SECAP_SHAPE(H), f, l, kind, "self.query.bias");
    secap_params_add(p, &A->k_w, SECAP_SHAPE(H, Wkv), f, l, kind, "self.key.weight");
    secap_params_add(p, &A->k_b, SECAP_SHAPE(H), f, l, kind, "self.key.bias");
    secap_params_add(p, &A->v_w, SECAP_SHAPE(H, Wkv), f, l, kind, "self.value.weight");
    secap_params_add(p, &A->v_b, SECAP_SHAPE(H), f, l, kind, "self.value.bias");
    secap_params_add(p, &A->o_w, SECAP_SHAPE(H, H), f, l, kind, "output.dense.weight");
    secap_params_add(p, &A->o_b, SECAP_SHAPE(H), f, l, kind, "output.dense.bias");
    secap_params_add(p, &A->ln_w, SECAP_SHAPE(H), f, l, kind, "output.LayerNorm.weight");
    secap_params_add(p, &A->ln_b, SECAP_SHAPE(H), f, l, kind, "output.LayerNorm.bias");
}

/* inter: "intermediate" or "intermediate_query"; out: "output" or "output_query". */
static void ffn_entries(secap_params *p, ffn_block *F, const char *inter, const char *out, int l, int64_t H,
                        int64_t I)
{
    secap_params_add(p, &F->i_w, SECAP_SHAPE(I, H), "encoder.layer.%d.%s.dense.weight", l, inter);
    secap_params_add(p, &F->i_b, SECAP_SHAPE(I), "encoder.layer.%d.%s.dense.bias", l, inter);
    secap_params_add(p, &F->o_w, SECAP_SHAPE(H, I), "encoder.layer.%d.%s.dense.weight", l, out);
    secap_params_add(p, &F->o_b, SECAP_SHAPE(H), "encoder.layer.%d.%s.dense.bias", l, out);
    secap_params_add(p, &F->ln_w, SECAP_SHAPE(H), "encoder.layer.%d.%s.LayerNorm.weight", l, out);
    secap_params_add(p, &F->ln_b, SECAP_SHAPE(H), "encoder.layer.%d.%s.LayerNorm.bias", l, out);
}

/* The BERT part in LAVIS's state-dict order. */
static void bert_table(secap_params *p, const secap_qformer_config *c, secap_qformer *m)
{
    int64_t H = c->hidden_size, I = c->intermediate_size, W = c->encoder_width;
    if (c->text_mode) {
        secap_params_add(p, &m->word, SECAP_SHAPE(c->vocab_size, H), "embeddings.word_embeddings.weight");
        secap_params_add(p, &m->pos, SECAP_SHAPE(c->max_position_embeddings, H), "embeddings.position_embeddings.weight");
        if (c->type_vocab_size > 0)
            secap_params_add(p, &m->type, SECAP_SHAPE(c->type_vocab_size, H), "embeddings.token_type_embeddings.weight");
    }
    secap_params_add(p, &m->emb_ln_w, SECAP_SHAPE(H), "embeddings.LayerNorm.weight");
    secap_params_add(p, &m->emb_ln_b, SECAP_SHAPE(H), "embeddings.LayerNorm.bias");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        qf_layer *Y = &m->layers[l];
        Y->has_cross = l % c->cross_attention_freq == 0;
        attn_entries(p, &Y->self, "attention", l, H, H);
        if (Y->has_cross) attn_entries(p, &Y->cross, "crossattention", l, H, W);
        if (c->text_mode) ffn_entries(p, &Y->text, "intermediate", "output", l, H, I);
        ffn_entries(p, &Y->query, "intermediate_query", "output_query", l, H, I);
    }
}

static void root_table(secap_params *p, const secap_qformer_config *c, secap_qformer *m)
{
    int64_t H = c->hidden_size;
    secap_params_add(p, &m->query_tokens, SECAP_SHAPE(1, c->num_query_tokens, H), "query_tokens");
    if (c->audio_width > 0) {
        secap_params_add(p, &m->ap_w, SECAP_SHAPE(c->encoder_width, c->audio_width), "audio_project.weight");
        secap_params_add(p, &m->ap_b, SECAP_SHAPE(c->encoder_width), "audio_project.bias");
    }
    if (c->llm_width > 0) {
        secap_params_add(p, &m->lp_w, SECAP_SHAPE(c->llm_width, H), "audio_llama_project.weight");
        secap_params_add(p, &m->lp_b, SECAP_SHAPE(c->llm_width), "audio_llama_project.bias");
    }
    if (c->embed_dim > 0) {
        secap_params_add(p, &m->sp_w, SECAP_SHAPE(c->embed_dim, H), "speech_proj.weight");
        secap_params_add(p, &m->sp_b, SECAP_SHAPE(c->embed_dim), "speech_proj.bias");
        if (c->text_mode) {
            secap_params_add(p, &m->tp_w, SECAP_SHAPE(c->embed_dim, H), "text_proj.weight");
            secap_params_add(p, &m->tp_b, SECAP_SHAPE(c->embed_dim), "text_proj.bias");
        }
    }
}

/* A model with both tables built (nothing loaded). */
static secap_qformer *qformer_new(const secap_qformer_config *cfg, int trainable, const char *where)
{
    secap_qformer_config_validate(cfg, where);
    secap_qformer *m = secap_xcalloc(1, sizeof *m, "qformer model");
    m->cfg = *cfg;
    m->trainable = trainable != 0;
    m->layers = secap_xcalloc((size_t)cfg->num_hidden_layers, sizeof *m->layers, "qformer layers");
    m->bert = secap_params_new("qformer");
    m->root = secap_params_new("qformer");
    for (int k = 0; k < 2; k++) {
        secap_params *p = k ? m->root : m->bert;
        secap_params_default_trainable(p, m->trainable);
        secap_params_default_std(p, (float)cfg->initializer_range);
    }
    bert_table(m->bert, cfg, m);
    root_table(m->root, cfg, m);
    return m;
}

/* ------------------------------------------------------- loading, saving */

const char *const SECAP_QFORMER_IGNORABLE[] = { "*embeddings.position_ids", NULL };

/* Cleanups of a load that stops through secap_fatal (the parameters stay
 * in the context's arena). */
static void close_weights(void *w) { secap_weights_close(w); }
static void free_model(void *m) { secap_qformer_free(m); }

secap_qformer *secap_qformer_read(secap_ctx *c, secap_weights *w, const char *bert_prefix, int trainable)
{
    secap_qformer_config cfg;
    secap_qformer_config_read(&cfg, w);
    secap_qformer *m = qformer_new(&cfg, trainable, secap_weights_path(w));
    secap_cleanup cl;
    secap_cleanup_push(&cl, free_model, m);
    secap_params_load(m->bert, c, w, bert_prefix ? bert_prefix : SECAP_QFORMER_PREFIX, 0);
    secap_params_load(m->root, c, w, NULL, 0);
    secap_cleanup_pop(&cl);
    return m;
}

/* Closes w with the unknown-tensor check; m is freed if that fails. */
static secap_qformer *close_checked(secap_weights *w, secap_qformer *m, const char *const *allow)
{
    secap_cleanup cl;
    secap_cleanup_push(&cl, free_model, m);
    secap_weights_close_checked(w, allow);   /* frees w even when it fails */
    secap_cleanup_pop(&cl);
    return m;
}

secap_qformer *secap_qformer_load(secap_ctx *c, const char *path, int trainable)
{
    secap_weights *w = secap_weights_open(path);
    secap_cleanup cl;
    secap_cleanup_push(&cl, close_weights, w);
    secap_qformer *m = secap_qformer_read(c, w, SECAP_QFORMER_PREFIX, trainable);
    secap_cleanup_pop(&cl);
    return close_checked(w, m, SECAP_QFORMER_IGNORABLE);
}

/* Entries not in a plain BERT file take their random rule. */
static void set_random(secap_params *p, const char *patterns, float std)
{
    for (int i = secap_params_next(p, patterns, -1); i >= 0; i = secap_params_next(p, patterns, i))
        secap_params_set_init(p, i, secap_params_entry(p, i)->rand_init, std);
}

secap_qformer *secap_qformer_init_bert(secap_ctx *c, const char *bert_path, const secap_qformer_config *extras,
                                       int trainable, uint64_t seed)
{
    secap_weights *w = secap_weights_open(bert_path);
    secap_cleanup cw, cm;
    secap_cleanup_push(&cw, close_weights, w);
    secap_qformer_config cfg = *extras;
    secap_qformer_config_read_bert(&cfg, w);
    secap_qformer *m = qformer_new(&cfg, trainable, bert_path);
    secap_cleanup_push(&cm, free_model, m);
    float std = (float)cfg.initializer_range;
    set_random(m->bert, "encoder.layer.*.crossattention.*", std);   /* the root table loads without a file */
    /* intermediate_query.X <- intermediate.X, output_query.X <- output.X */
    const char *pq = "encoder.layer.*.intermediate_query.*,encoder.layer.*.output_query.*";
    for (int i = secap_params_next(m->bert, pq, -1); i >= 0; i = secap_params_next(m->bert, pq, i)) {
        char src[256];
        const char *name = secap_params_entry(m->bert, i)->name, *q = strstr(name, "_query.");
        snprintf(src, sizeof src, "%.*s%s", (int)(q - name), name, q + strlen("_query"));
        int j = secap_params_find(m->bert, src);
        if (j < 0) secap_fatal("qformer: no text feed-forward entry %s to copy into %s", src, name);
        secap_params_set_copy(m->bert, i, j);
    }
    /* converted BertModel names, or BertForPreTraining's "bert."-prefixed ones */
    const char *prefix = secap_weights_has(w, "bert.embeddings.LayerNorm.weight") ? "bert." : "";
    secap_params_load(m->bert, c, w, prefix, seed);
    secap_params_load(m->root, c, NULL, NULL, seed);
    static const char *const ignore[] = { "pooler.*", "bert.pooler.*", "cls.*", "*position_ids", NULL };
    secap_cleanup_pop(&cm);
    secap_cleanup_pop(&cw);
    return close_checked(w, m, ignore);
}

secap_qformer *secap_qformer_init_random(secap_ctx *c, const secap_qformer_config *cfg, int trainable,
                                         uint64_t seed)
{
    secap_qformer *m = qformer_new(cfg, trainable, "(random init)");
    secap_params_load(m->bert, c, NULL, NULL, seed);
    secap_params_load(m->root, c, NULL, NULL, seed);
    return m;
}

void secap_qformer_free(secap_qformer *m)
{
    if (!m) return;
    secap_params_free(m->bert);
    secap_params_free(m->root);
    free(m->layers);
    free(m);
}

void secap_qformer_write(const secap_qformer *m, secap_weights *w, int trainable_only)
{
    secap_qformer_config_write(&m->cfg, w);
    secap_params_write(m->bert, w, SECAP_QFORMER_PREFIX, trainable_only);
    secap_params_write(m->root, w, NULL, trainable_only);
}

void secap_qformer_save(const secap_qformer *m, const char *path, int trainable_only)
{
    secap_weights *w = secap_weights_create(path);
    secap_qformer_write(m, w, trainable_only);
    secap_weights_close(w);
}

const secap_qformer_config *secap_qformer_cfg(const secap_qformer *m) { return &m->cfg; }
const secap_params *secap_qformer_bert_params(const secap_qformer *m) { return m->bert; }
const secap_params *secap_qformer_root_params(const secap_qformer *m) { return m->root; }

secap_tensor *secap_qformer_param(const secap_qformer *m, const char *name)
{
    size_t n = strlen(SECAP_QFORMER_PREFIX);
    if (!strncmp(name, SECAP_QFORMER_PREFIX, n)) return secap_params_get(m->bert, name + n);
    return secap_params_get(m->root, name);
}

/* ----------------------------------------------------------------- blocks */

/* x [B, Tq, H], kv [B, Tk, H or W] -> LN(x + drop(O(MHA(x, kv, kv)))) [B, Tq, H].
 *
 * The key bias b_k enters the forward as in BERT but takes no gradient: it
 * adds s q_i . b_k to every score S_ij of query row i (s the scale), the
 * same for every key j, masked ones included, and softmax over j is
 * invariant under a shift of its row, so d loss / d b_k = sum_j dK_j =
 * s sum_i q_i sum_j dS_ij = 0 exactly (the softmax backward's rows sum to
 * 0).  Computed, that sum is float round-off, which AdamW (update ~ lr g /
 * (|g| + eps)) turns into steps of up to lr of noise that differ between
 * runs that differ only in rounding (MPI vs one process, tests/test_dist.c).
 * Detached, b_k's gradient is the exact 0: its moments stay 0 and AdamW
 * leaves it as loaded (biases are in the trainer's no-decay group). */
static secap_tensor *attn_fwd(secap_ctx *c, const secap_qformer *m, const attn_block *A, secap_tensor *x,
                              secap_tensor *kv, const int32_t *key_len)
{
    const secap_qformer_config *cf = &m->cfg;
    int heads = cf->num_attention_heads;
    float scale = 1.0f / sqrtf((float)(cf->hidden_size / heads));
    secap_tensor *q = secap_linear(c, x, A->q_w, A->q_b);
    secap_tensor *k = secap_linear(c, kv, A->k_w, secap_detach(c, A->k_b));   /* gradient exactly 0 (above) */
    secap_tensor *v = secap_linear(c, kv, A->v_w, A->v_b);
    secap_tensor *a = secap_attention(c, q, k, v, heads, key_len, 0, scale);
    secap_tensor *y = secap_dropout(c, secap_linear(c, a, A->o_w, A->o_b), (float)cf->hidden_dropout_prob);
    return secap_layernorm(c, secap_add(c, x, y), A->ln_w, A->ln_b, (float)cf->layer_norm_eps);
}

/* x [B, T, H] -> LN(x + drop(W2 GELU(W1 x))). */
static secap_tensor *ffn_fwd(secap_ctx *c, const secap_qformer *m, const ffn_block *F, secap_tensor *x)
{
    const secap_qformer_config *cf = &m->cfg;
    secap_tensor *h = secap_gelu(c, secap_linear(c, x, F->i_w, F->i_b));
    secap_tensor *y = secap_dropout(c, secap_linear(c, h, F->o_w, F->o_b), (float)cf->hidden_dropout_prob);
    return secap_layernorm(c, secap_add(c, x, y), F->ln_w, F->ln_b, (float)cf->layer_norm_eps);
}

static secap_tensor *embed_norm(secap_ctx *c, const secap_qformer *m, secap_tensor *x)
{
    x = secap_layernorm(c, x, m->emb_ln_w, m->emb_ln_b, (float)m->cfg.layer_norm_eps);
    return secap_dropout(c, x, (float)m->cfg.hidden_dropout_prob);
}

/* ------------------------------------------------------------------ modes */

secap_tensor *secap_qformer_query(secap_ctx *c, const secap_qformer *m, secap_tensor *audio, const int32_t *frames)
{
    const secap_qformer_config *cf = &m->cfg;
    secap_check_live(audio, "qformer_query");
    char sb[64];
    int64_t in_w = cf->audio_width > 0 ? cf->audio_width : cf->encoder_width;
    if (audio->dtype != SECAP_F32 || audio->ndim != 3 || audio->shape[2] != in_w || audio->shape[0] < 1 ||
        audio->shape[1] < 1)
        secap_fatal("qformer_query: audio features %s, expected float32 [B, T, %lld] (hint: %s)",
                    secap_shape_str(audio, sb, sizeof sb), (long long)in_w,
                    cf->audio_width > 0 ? "audio_width is the speech encoder's hidden size"
                                        : "this model has no audio_project: features come in at encoder_width");
    int64_t B = audio->shape[0], T = audio->shape[1], Q = cf->num_query_tokens, H = cf->hidden_size;
    const int32_t *klen = NULL;
    if (frames)
        for (int64_t b = 0; b < B; b++) {
            if (frames[b] < 1 || frames[b] > T)
                secap_fatal("qformer_query: item %lld has %d valid frames, outside [1, %lld] (hint: frames[b] "
                            "counts the valid rows of the padded [B, T, ...] batch)", (long long)b, frames[b],
                            (long long)T);
            if (frames[b] < T) klen = frames;
        }

    secap_tensor *a = m->ap_w ? secap_linear(c, audio, m->ap_w, m->ap_b) : audio;   /* [B, T, W] */
    /* LN(query_tokens) is the same for every item: normalise [1, Q, H] once,
     * then broadcast to [B, Q, H] (the gradient sums over the batch) */
    secap_tensor *x = secap_layernorm(c, m->query_tokens, m->emb_ln_w, m->emb_ln_b, (float)cf->layer_norm_eps);
    if (B > 1) x = secap_add(c, secap_zeros(c, 3, (int64_t[]){B, Q, H}), x);
    x = secap_dropout(c, x, (float)cf->hidden_dropout_prob);
    for (int l = 0; l < cf->num_hidden_layers; l++) {
        const qf_layer *Y = &m->layers[l];
        x = attn_fwd(c, m, &Y->self, x, x, NULL);
        if (Y->has_cross) x = attn_fwd(c, m, &Y->cross, x, a, klen);
        x = ffn_fwd(c, m, &Y->query, x);
    }
    return x;
}

secap_tensor *secap_qformer_text(secap_ctx *c, const secap_qformer *m, const int32_t *ids, const int32_t *lens,
                                 const int32_t *types, int B, int S)
{
    const secap_qformer_config *cf = &m->cfg;
    if (!cf->text_mode)
        secap_fatal("qformer_text: this Q-Former has no text mode (text_mode = 0: its word/position embeddings and "
                    "text feed-forward were dropped, as in SECap's released bridge) (hint: load a stage-1 Q-Former "
                    "or initialise one from BERT)");
    if (B < 1 || S < 1)
        secap_fatal("qformer_text: batch of %d x %d tokens (hint: at least one item of one token, [CLS])", B, S);
    if (S > cf->max_position_embeddings)
        secap_fatal("qformer_text: %d tokens per item, more than max_position_embeddings = %d (hint: truncate the "
                    "text to the position limit when tokenising)", S, cf->max_position_embeddings);
    const int32_t *klen = NULL;
    for (int b = 0; b < B; b++) {
        int n = lens ? lens[b] : S;
        if (n < 1 || n > S)
            secap_fatal("qformer_text: item %d has %d tokens, outside [1, %d] (hint: lens[b] counts the valid "
                        "tokens of the padded row, [CLS] included)", b, n, S);
        if (n < S) klen = lens;
        for (int s = 0; s < S; s++) {
            int32_t id = ids[(size_t)b * (size_t)S + (size_t)s];
            if (id < 0 || id >= cf->vocab_size)
                secap_fatal("qformer_text: token id %d at item %d, position %d is outside the vocabulary [0, %d) "
                            "(hint: padding must be a valid id too, e.g. [PAD] = 0)", id, b, s, cf->vocab_size);
            if (types && (types[(size_t)b * (size_t)S + (size_t)s] < 0 ||
                          types[(size_t)b * (size_t)S + (size_t)s] >= cf->type_vocab_size))
                secap_fatal("qformer_text: token type %d at item %d, position %d is outside [0, %d) (hint: pass "
                            "NULL for single-segment text)", types[(size_t)b * (size_t)S + (size_t)s], b, s,
                            cf->type_vocab_size);
        }
    }
    secap_tensor *x = secap_embedding_bt(c, m->word, ids, B, S);            /* [B, S, H] */
    x = secap_add(c, x, secap_slice(c, m->pos, 0, 0, S));                   /* + positions 0..S-1 */
    if (types) x = secap_add(c, x, secap_embedding_bt(c, m->type, types, B, S));
    else if (m->type) x = secap_add(c, x, secap_slice(c, m->type, 0, 0, 1));  /* type 0 everywhere */
    x = embed_norm(c, m, x);
    for (int l = 0; l < cf->num_hidden_layers; l++) {
        x = attn_fwd(c, m, &m->layers[l].self, x, x, klen);
        x = ffn_fwd(c, m, &m->layers[l].text, x);
    }
    return x;
}

/* ------------------------------------------------------------------ heads */

static void check_out(const secap_qformer *m, secap_tensor *x, int64_t rows, const char *op, const char *what)
{
    secap_check_live(x, op);
    char sb[64], want[64];
    if (rows > 0) snprintf(want, sizeof want, "[B, %lld, %d]", (long long)rows, m->cfg.hidden_size);
    else snprintf(want, sizeof want, "[B, S, %d]", m->cfg.hidden_size);
    if (x->ndim != 3 || x->shape[2] != m->cfg.hidden_size || (rows > 0 && x->shape[1] != rows))
        secap_fatal("%s: input %s, expected %s %s (hint: pass the output of %s)", op,
                    secap_shape_str(x, sb, sizeof sb), what, want,
                    rows > 0 ? "secap_qformer_query" : "secap_qformer_text");
}

secap_tensor *secap_qformer_speech_embed(secap_ctx *c, const secap_qformer *m, secap_tensor *query_out,
                                         secap_qformer_pool pool)
{
    if (!m->sp_w)
        secap_fatal("qformer_speech_embed: this Q-Former has no speech_proj (embed_dim = 0) (hint: set embed_dim "
                    "when initialising the model)");
    check_out(m, query_out, m->cfg.num_query_tokens, "qformer_speech_embed", "query outputs");
    if (pool == SECAP_QFORMER_POOL_MEAN) return secap_linear(c, secap_mean(c, query_out, 1), m->sp_w, m->sp_b);
    if (pool == SECAP_QFORMER_POOL_NONE) return secap_linear(c, query_out, m->sp_w, m->sp_b);
    secap_fatal("qformer_speech_embed: unknown pooling %d (hint: SECAP_QFORMER_POOL_MEAN or _NONE)", (int)pool);
}

secap_tensor *secap_qformer_text_embed(secap_ctx *c, const secap_qformer *m, secap_tensor *text_out)
{
    if (!m->tp_w)
        secap_fatal("qformer_text_embed: this Q-Former has no text_proj (embed_dim = 0 or no text mode) (hint: set "
                    "embed_dim when initialising the model)");
    check_out(m, text_out, 0, "qformer_text_embed", "text outputs");
    int64_t B = text_out->shape[0], H = m->cfg.hidden_size;
    secap_tensor *cls = secap_reshape(c, secap_slice(c, text_out, 1, 0, 1), 2, (int64_t[]){B, H});
    return secap_linear(c, cls, m->tp_w, m->tp_b);
}

secap_tensor *secap_qformer_llm_project(secap_ctx *c, const secap_qformer *m, secap_tensor *query_out)
{
    if (!m->lp_w)
        secap_fatal("qformer_llm_project: this Q-Former has no audio_llama_project (llm_width = 0) (hint: set "
                    "llm_width to the LLM's hidden size)");
    check_out(m, query_out, m->cfg.num_query_tokens, "qformer_llm_project", "query outputs");
    return secap_linear(c, query_out, m->lp_w, m->lp_b);
}
