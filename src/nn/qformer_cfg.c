/* Q-Former config: defaults, weight-file attributes, validation. */
#include "secap/qformer.h"
#include "secap/base.h"

#include <string.h>

void secap_qformer_config_default(secap_qformer_config *c)
{
    memset(c, 0, sizeof *c);
    c->hidden_size = 768;
    c->num_hidden_layers = 12;
    c->num_attention_heads = 12;
    c->intermediate_size = 3072;
    c->vocab_size = 21128;
    c->max_position_embeddings = 512;
    c->type_vocab_size = 2;
    c->layer_norm_eps = 1e-12;
    c->hidden_dropout_prob = 0.1;
    c->attention_probs_dropout_prob = 0.1;
    c->initializer_range = 0.02;
    c->num_query_tokens = 32;
    c->cross_attention_freq = 2;
    c->encoder_width = 768;
    c->audio_width = 1024;
    c->llm_width = 4096;
    c->embed_dim = 256;
    c->text_mode = 1;
}

/* The config.json fields BERT and the Q-Former share. */
static void read_bert_fields(secap_qformer_config *c, secap_weights *w)
{
    secap_weights_require_string(w, "hidden_act", "gelu", "the Q-Former implements exact (erf) GELU");
    if (secap_weights_has_attr(w, "position_embedding_type"))
        secap_weights_require_string(w, "position_embedding_type", "absolute",
                                     "relative position embeddings are not implemented");
    c->hidden_size = secap_weights_attr_int_in(w, "hidden_size", 1, 1 << 16);
    c->num_hidden_layers = secap_weights_attr_int_in(w, "num_hidden_layers", 1, 1024);
    c->num_attention_heads = secap_weights_attr_int_in(w, "num_attention_heads", 1, 1 << 12);
    c->intermediate_size = secap_weights_attr_int_in(w, "intermediate_size", 1, 1 << 20);
    c->vocab_size = secap_weights_attr_int_in(w, "vocab_size", 0, 1 << 24);
    c->max_position_embeddings = secap_weights_attr_int_in(w, "max_position_embeddings", 0, 1 << 20);
    c->type_vocab_size = secap_weights_attr_int_in(w, "type_vocab_size", 0, 1 << 16);
    c->layer_norm_eps = secap_weights_attr_double(w, "layer_norm_eps");
    c->hidden_dropout_prob = secap_weights_attr_double(w, "hidden_dropout_prob");
    c->attention_probs_dropout_prob = secap_weights_attr_double(w, "attention_probs_dropout_prob");
    c->initializer_range = secap_weights_attr_double(w, "initializer_range");
}

void secap_qformer_config_read(secap_qformer_config *c, secap_weights *w)
{
    memset(c, 0, sizeof *c);
    secap_weights_require_string(w, "model_type", "qformer",
                   "this is not a Q-Former file; a plain BERT file initialises one through secap_qformer_init_bert");
    read_bert_fields(c, w);
    c->num_query_tokens = secap_weights_attr_int_in(w, "num_query_tokens", 1, 1 << 16);
    c->cross_attention_freq = secap_weights_attr_int_in(w, "cross_attention_freq", 1, 1024);
    c->encoder_width = secap_weights_attr_int_in(w, "encoder_width", 1, 1 << 16);
    c->audio_width = secap_weights_attr_int_in(w, "audio_width", 0, 1 << 16);
    c->llm_width = secap_weights_attr_int_in(w, "llm_width", 0, 1 << 20);
    c->embed_dim = secap_weights_attr_int_in(w, "embed_dim", 0, 1 << 16);
    c->text_mode = secap_weights_attr_int_in(w, "text_mode", 0, 1);
    secap_qformer_config_validate(c, secap_weights_path(w));
}

void secap_qformer_config_read_bert(secap_qformer_config *c, secap_weights *w)
{
    secap_weights_require_string(w, "model_type", "bert",
                                 "a Q-Former is initialised from a converted BERT file (bert-base-chinese)");
    read_bert_fields(c, w);
    c->text_mode = 1;
    secap_qformer_config_validate(c, secap_weights_path(w));
}

void secap_qformer_config_validate(const secap_qformer_config *c, const char *where)
{
    if (c->hidden_size < 1 || c->num_hidden_layers < 1 || c->num_attention_heads < 1 || c->intermediate_size < 1)
        secap_fatal("qformer config %s: hidden_size %d, num_hidden_layers %d, num_attention_heads %d and "
                    "intermediate_size %d must all be positive", where, c->hidden_size, c->num_hidden_layers,
                    c->num_attention_heads, c->intermediate_size);
    if (c->hidden_size % c->num_attention_heads)
        secap_fatal("qformer config %s: hidden_size %d is not a multiple of num_attention_heads %d",
                    where, c->hidden_size, c->num_attention_heads);
    if (c->num_query_tokens < 1)
        secap_fatal("qformer config %s: num_query_tokens = %d, need at least 1 (the paper uses 32)",
                    where, c->num_query_tokens);
    if (c->cross_attention_freq < 1)
        secap_fatal("qformer config %s: cross_attention_freq = %d, need at least 1 (cross-attention in layers "
                    "l %% freq == 0; the paper uses 2)", where, c->cross_attention_freq);
    if (c->encoder_width < 1)
        secap_fatal("qformer config %s: encoder_width = %d must be positive (the width of the audio frames the "
                    "queries attend to)", where, c->encoder_width);
    if (c->audio_width < 0 || c->llm_width < 0 || c->embed_dim < 0)
        secap_fatal("qformer config %s: audio_width %d, llm_width %d and embed_dim %d must be >= 0 (0 = no such "
                    "projection)", where, c->audio_width, c->llm_width, c->embed_dim);
    if (c->text_mode != 0 && c->text_mode != 1)
        secap_fatal("qformer config %s: text_mode = %d, expected 0 or 1", where, c->text_mode);
    if (c->text_mode && (c->vocab_size < 1 || c->max_position_embeddings < 1))
        secap_fatal("qformer config %s: text mode needs vocab_size (%d) and max_position_embeddings (%d) >= 1",
                    where, c->vocab_size, c->max_position_embeddings);
    if (c->type_vocab_size < 0)
        secap_fatal("qformer config %s: type_vocab_size = %d must be >= 0 (0 = no token types)", where,
                    c->type_vocab_size);
    if (!(c->layer_norm_eps > 0 && c->layer_norm_eps < 1))
        secap_fatal("qformer config %s: layer_norm_eps = %g must be in (0, 1)", where, c->layer_norm_eps);
    if (!(c->hidden_dropout_prob >= 0 && c->hidden_dropout_prob < 1) ||
        !(c->attention_probs_dropout_prob >= 0 && c->attention_probs_dropout_prob < 1))
        secap_fatal("qformer config %s: hidden_dropout_prob %g and attention_probs_dropout_prob %g must be in "
                    "[0, 1)", where, c->hidden_dropout_prob, c->attention_probs_dropout_prob);
    if (!(c->initializer_range > 0 && c->initializer_range < 10))
        secap_fatal("qformer config %s: initializer_range = %g must be in (0, 10)", where, c->initializer_range);
}

void secap_qformer_config_write(const secap_qformer_config *c, secap_weights *w)
{
    secap_weights_set_string(w, "model_type", "qformer");
    secap_weights_set_string(w, "hidden_act", "gelu");
    secap_weights_set_string(w, "position_embedding_type", "absolute");
    secap_weights_set_int(w, "hidden_size", c->hidden_size);
    secap_weights_set_int(w, "num_hidden_layers", c->num_hidden_layers);
    secap_weights_set_int(w, "num_attention_heads", c->num_attention_heads);
    secap_weights_set_int(w, "intermediate_size", c->intermediate_size);
    secap_weights_set_int(w, "vocab_size", c->vocab_size);
    secap_weights_set_int(w, "max_position_embeddings", c->max_position_embeddings);
    secap_weights_set_int(w, "type_vocab_size", c->type_vocab_size);
    secap_weights_set_double(w, "layer_norm_eps", c->layer_norm_eps);
    secap_weights_set_double(w, "hidden_dropout_prob", c->hidden_dropout_prob);
    secap_weights_set_double(w, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
    secap_weights_set_double(w, "initializer_range", c->initializer_range);
    secap_weights_set_int(w, "num_query_tokens", c->num_query_tokens);
    secap_weights_set_int(w, "cross_attention_freq", c->cross_attention_freq);
    secap_weights_set_int(w, "encoder_width", c->encoder_width);
    secap_weights_set_int(w, "audio_width", c->audio_width);
    secap_weights_set_int(w, "llm_width", c->llm_width);
    secap_weights_set_int(w, "embed_dim", c->embed_dim);
    secap_weights_set_int(w, "text_mode", c->text_mode);
}
