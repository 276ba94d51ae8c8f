/* LLaMA and LoRA configs: defaults, weight-file attributes, validation. */
#include "secap/llama.h"
#include "secap/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void secap_llama_config_default(secap_llama_config *c)
{
    memset(c, 0, sizeof *c);
    c->vocab_size = 32000;
    c->hidden_size = 4096;
    c->intermediate_size = 11008;
    c->num_hidden_layers = 32;
    c->num_attention_heads = 32;
    c->num_key_value_heads = 32;
    c->max_position_embeddings = 2048;
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 10000.0;
    c->tie_word_embeddings = 0;
    c->bos_token_id = 1;
    c->eos_token_id = 2;
    c->pad_token_id = -1;
    c->initializer_range = 0.02;
}

static int attr_int_or(secap_weights *w, const char *name, int64_t lo, int64_t hi, int dflt)
{
    return secap_weights_has_attr(w, name) ? secap_weights_attr_int_in(w, name, lo, hi) : dflt;
}

void secap_llama_config_read(secap_llama_config *c, secap_weights *w)
{
    const char *path = secap_weights_path(w);
    secap_llama_config_default(c);
    const char *mt = secap_weights_attr_string(w, "model_type");
    if (strcmp(mt, "llama") != 0)
        secap_fatal("weights %s: model_type = \"%s\", expected \"llama\" (hint: convert a LlamaForCausalLM "
                    "checkpoint with tools/convert_hf.py; an adapter file is loaded through "
                    "secap_llama_opts.adapter)", path, mt);
    if (secap_weights_has_attr(w, "hidden_act")) {
        const char *act = secap_weights_attr_string(w, "hidden_act");
        if (strcmp(act, "silu") != 0)
            secap_fatal("weights %s: attribute hidden_act = \"%s\", only \"silu\" is supported (LLaMA's SwiGLU)",
                        path, act);
    }
    if (secap_weights_has_attr(w, "rope_scaling"))
        secap_fatal("weights %s: attribute rope_scaling is present; scaled rotary embeddings are not implemented "
                    "(hint: drop it only if the config.json has \"rope_scaling\": null)", path);
    static const char *const nobias[] = { "attention_bias", "mlp_bias" };
    for (int i = 0; i < 2; i++)
        if (secap_weights_has_attr(w, nobias[i]) && secap_weights_attr_int(w, nobias[i]) != 0)
            secap_fatal("weights %s: attribute %s is true; projections with biases are not implemented "
                        "(LLaMA has none)", path, nobias[i]);
    c->vocab_size = secap_weights_attr_int_in(w, "vocab_size", 1, 1 << 24);
    c->hidden_size = secap_weights_attr_int_in(w, "hidden_size", 1, 1 << 16);
    c->intermediate_size = secap_weights_attr_int_in(w, "intermediate_size", 1, 1 << 20);
    c->num_hidden_layers = secap_weights_attr_int_in(w, "num_hidden_layers", 1, 1024);
    c->num_attention_heads = secap_weights_attr_int_in(w, "num_attention_heads", 1, 1 << 12);
    c->num_key_value_heads = attr_int_or(w, "num_key_value_heads", 1, 1 << 12, c->num_attention_heads);
    c->max_position_embeddings = secap_weights_attr_int_in(w, "max_position_embeddings", 1, 1 << 24);
    c->rms_norm_eps = secap_weights_attr_double(w, "rms_norm_eps");
    if (secap_weights_has_attr(w, "rope_theta")) c->rope_theta = secap_weights_attr_double(w, "rope_theta");
    c->tie_word_embeddings = attr_int_or(w, "tie_word_embeddings", 0, 1, 0);
    c->bos_token_id = attr_int_or(w, "bos_token_id", -1, 1 << 24, 1);
    c->eos_token_id = attr_int_or(w, "eos_token_id", -1, 1 << 24, 2);
    c->pad_token_id = attr_int_or(w, "pad_token_id", -1, 1 << 24, -1);
    if (secap_weights_has_attr(w, "initializer_range"))
        c->initializer_range = secap_weights_attr_double(w, "initializer_range");
    if (secap_weights_has_attr(w, "head_dim")) {
        int64_t hd = secap_weights_attr_int(w, "head_dim");
        if (c->num_attention_heads > 0 && hd * c->num_attention_heads != c->hidden_size)
            secap_fatal("weights %s: attribute head_dim = %lld, but hidden_size / num_attention_heads = %d / %d; "
                        "a head size other than hidden_size / heads is not implemented", path, (long long)hd,
                        c->hidden_size, c->num_attention_heads);
    }
    secap_llama_config_validate(c, path);
}

void secap_llama_config_validate(const secap_llama_config *c, const char *where)
{
    if (c->vocab_size < 1 || c->hidden_size < 1 || c->intermediate_size < 1 || c->num_hidden_layers < 1 ||
        c->num_attention_heads < 1 || c->num_key_value_heads < 1 || c->max_position_embeddings < 1)
        secap_fatal("llama config %s: vocab_size %d, hidden_size %d, intermediate_size %d, num_hidden_layers %d, "
                    "num_attention_heads %d, num_key_value_heads %d and max_position_embeddings %d must all be "
                    "positive", where, c->vocab_size, c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                    c->num_attention_heads, c->num_key_value_heads, c->max_position_embeddings);
    if (c->hidden_size % c->num_attention_heads)
        secap_fatal("llama config %s: hidden_size %d is not a multiple of num_attention_heads %d", where,
                    c->hidden_size, c->num_attention_heads);
    if ((c->hidden_size / c->num_attention_heads) % 2)
        secap_fatal("llama config %s: head size %d is odd; rotary embeddings rotate pairs (hint: check "
                    "hidden_size and num_attention_heads)", where, c->hidden_size / c->num_attention_heads);
    if (c->num_attention_heads % c->num_key_value_heads)
        secap_fatal("llama config %s: num_attention_heads %d is not a multiple of num_key_value_heads %d "
                    "(grouped-query attention shares each kv head among H/G query heads)", where,
                    c->num_attention_heads, c->num_key_value_heads);
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
        secap_fatal("llama config %s: rms_norm_eps = %g must be in (0, 1)", where, c->rms_norm_eps);
    if (!(c->rope_theta > 1 && c->rope_theta < 1e12))
        secap_fatal("llama config %s: rope_theta = %g must be in (1, 1e12) (LLaMA uses 10000)", where, c->rope_theta);
    if (c->tie_word_embeddings != 0 && c->tie_word_embeddings != 1)
        secap_fatal("llama config %s: tie_word_embeddings = %d, expected 0 or 1", where, c->tie_word_embeddings);
    if (c->bos_token_id < 0 || c->bos_token_id >= c->vocab_size || c->eos_token_id < 0 ||
        c->eos_token_id >= c->vocab_size)
        secap_fatal("llama config %s: bos_token_id %d and eos_token_id %d must be ids in [0, %d) (the caption "
                    "batch needs both)", where, c->bos_token_id, c->eos_token_id, c->vocab_size);
    if (c->pad_token_id < -1 || c->pad_token_id >= c->vocab_size)
        secap_fatal("llama config %s: pad_token_id = %d must be -1 (none) or an id in [0, %d)", where,
                    c->pad_token_id, c->vocab_size);
    if (!(c->initializer_range > 0 && c->initializer_range < 10))
        secap_fatal("llama config %s: initializer_range = %g must be in (0, 10)", where, c->initializer_range);
}

void secap_llama_config_write(const secap_llama_config *c, secap_weights *w)
{
    secap_weights_set_string(w, "model_type", "llama");
    secap_weights_set_string(w, "hidden_act", "silu");
    secap_weights_set_int(w, "vocab_size", c->vocab_size);
    secap_weights_set_int(w, "hidden_size", c->hidden_size);
    secap_weights_set_int(w, "intermediate_size", c->intermediate_size);
    secap_weights_set_int(w, "num_hidden_layers", c->num_hidden_layers);
    secap_weights_set_int(w, "num_attention_heads", c->num_attention_heads);
    secap_weights_set_int(w, "num_key_value_heads", c->num_key_value_heads);
    secap_weights_set_int(w, "max_position_embeddings", c->max_position_embeddings);
    secap_weights_set_double(w, "rms_norm_eps", c->rms_norm_eps);
    secap_weights_set_double(w, "rope_theta", c->rope_theta);
    secap_weights_set_int(w, "tie_word_embeddings", c->tie_word_embeddings);
    secap_weights_set_int(w, "bos_token_id", c->bos_token_id);
    secap_weights_set_int(w, "eos_token_id", c->eos_token_id);
    secap_weights_set_int(w, "pad_token_id", c->pad_token_id);
    secap_weights_set_double(w, "initializer_range", c->initializer_range);
}

/* ------------------------------------------------------------------ LoRA */

static const char *const LORA_TARGETS[] = { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj", NULL };

void secap_lora_config_default(secap_lora_config *l)
{
    memset(l, 0, sizeof *l);
    l->r = 8;
    l->alpha = 16;
    l->dropout = 0.05;
    snprintf(l->target_modules, sizeof l->target_modules, "q_proj,v_proj");
}

void secap_lora_config_validate(const secap_lora_config *l, const char *where)
{
    if (l->r < 0 || l->r > 65536)
        secap_fatal("lora config %s: r = %d must be in [0, 65536] (0 = no adapters)", where, l->r);
    if (l->r == 0) return;
    if (!(l->alpha > 0 && l->alpha < 1e6))
        secap_fatal("lora config %s: lora_alpha = %g must be positive (the update is scaled by alpha / r)",
                    where, l->alpha);
    if (!(l->dropout >= 0 && l->dropout < 1))
        secap_fatal("lora config %s: lora_dropout = %g must be in [0, 1)", where, l->dropout);
    /* every comma-separated target must be a known projection */
    const char *s = l->target_modules;
    if (!*s)
        secap_fatal("lora config %s: target_modules is empty (hint: \"q_proj,v_proj\", or r = 0 for no adapters)",
                    where);
    while (*s) {
        size_t n = strcspn(s, ",");
        int ok = 0;
        for (int i = 0; LORA_TARGETS[i]; i++)
            if (n == strlen(LORA_TARGETS[i]) && !strncmp(s, LORA_TARGETS[i], n)) ok = 1;
        if (!ok)
            secap_fatal("lora config %s: target_modules entry \"%.*s\" is not a LLaMA projection (known: q_proj, "
                        "k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; separate with commas, no spaces)",
                        where, (int)n, s);
        s += n;
        if (*s == ',') s++;
    }
}

void secap_lora_config_read(secap_lora_config *l, secap_weights *w)
{
    const char *path = secap_weights_path(w);
    memset(l, 0, sizeof *l);
    const char *mt = secap_weights_attr_string(w, "model_type");
    if (strcmp(mt, "lora") != 0)
        secap_fatal("adapter %s: model_type = \"%s\", expected \"lora\" (hint: write adapters with "
                    "secap_llama_save_adapter)", path, mt);
    const char *pt = secap_weights_attr_string(w, "peft_type");
    if (strcmp(pt, "LORA") != 0)
        secap_fatal("adapter %s: peft_type = \"%s\", only \"LORA\" is supported", path, pt);
    if (secap_weights_has_attr(w, "bias")) {
        const char *b = secap_weights_attr_string(w, "bias");
        if (strcmp(b, "none") != 0)
            secap_fatal("adapter %s: bias = \"%s\", only \"none\" is supported (adapters without bias terms)", path, b);
    }
    l->r = secap_weights_attr_int_in(w, "r", 1, 65536);
    l->alpha = secap_weights_attr_double(w, "lora_alpha");
    l->dropout = secap_weights_attr_double(w, "lora_dropout");
    const char *t = secap_weights_attr_string(w, "target_modules");
    if (strlen(t) >= sizeof l->target_modules)
        secap_fatal("adapter %s: target_modules \"%s\" is too long", path, t);
    snprintf(l->target_modules, sizeof l->target_modules, "%s", t);
    secap_lora_config_validate(l, path);
}

/* "lora.KEY = V" of a run config. */
static double lora_number(const char *key, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        secap_fatal("config lora.%s = '%s': not a number in [%g, %g] (hint: see README, LLaMA with LoRA)", key, v,
                    lo, hi);
    return x;
}

int secap_lora_config_set(void *cfg, const char *key, const char *value)
{
    secap_lora_config *l = cfg;
    if (!strncmp(key, "lora.", 5)) key += 5;   /* secap_ini_apply passes "section.key" */
    if (!strcmp(key, "r")) {
        double x = lora_number(key, value, 0, 65536);
        if (x != (double)(int)x) secap_fatal("config lora.r = '%s': not an integer (hint: lora.r = 8)", value);
        l->r = (int)x;
    } else if (!strcmp(key, "lora_alpha")) {
        l->alpha = lora_number(key, value, 1e-6, 1e6);
    } else if (!strcmp(key, "lora_dropout")) {
        l->dropout = lora_number(key, value, 0, 0.999999);
    } else if (!strcmp(key, "target_modules")) {
        if (strlen(value) >= sizeof l->target_modules)
            secap_fatal("config lora.target_modules = '%s': too long", value);
        snprintf(l->target_modules, sizeof l->target_modules, "%s", value);
    } else {
        return 1;
    }
    return 0;
}
