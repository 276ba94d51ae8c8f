#!/usr/bin/python3
"""tools/convert_hf.py - Hugging Face checkpoint -> secap-c weight file (HDF5).

    convert_hf.py HF_DIR --out w.h5 [--dtype fp32|bf16] [--ignore GLOB ...]
    convert_hf.py --init random --config CONFIG.json|PRESET --out w.h5 [--seed N] [--dtype ...]
    convert_hf.py --secap model.ckpt --out bridge.h5 [--config QFORMER.json|PRESET] [--dtype ...]

HF_DIR holds config.json and the weights as model.safetensors,
pytorch_model.bin, or a sharded set with its *.index.json (model_type hubert,
bert or llama).  --secap converts SECap's released model.ckpt (the Q-Former
bridge) into a Q-Former file (model_type qformer).  Checkpoints are read
lazily: safetensors by hand (json + file reads), torch's zip format by
unpickling data.pkl without torch and reading each storage record when its
tensor is written; only legacy (pre-1.6) torch files need torch.load.
Tensors are loaded, checked and written one at a time, shard after shard, so
the memory peak is about twice the largest tensor (tools/README-convert.md).

The weight file (SECAP.md section 7):
  * one dataset per tensor at the root, named exactly as in the HF state dict
    of the bare model (`HubertModel`, `BertModel`, `LlamaForCausalLM`): the
    `hubert.` / `bert.` prefix of the task models is dropped; HuBERT's
    positional conv weight norm is always spelled
    `encoder.pos_conv_embed.conv.weight_g` / `.weight_v` (the newer
    `parametrizations.weight.original0` / `original1` spelling is renamed);
  * dtype float32, or bfloat16 stored as a uint16 dataset carrying the
    dataset attribute dtype="bfloat16" (the upper 16 bits of the float32,
    rounded to nearest even); contiguous, uncompressed, 64-byte aligned, so
    that the C loader can map them;
  * root attributes: every scalar / numeric-list key of config.json (with the
    HF defaults filled in for missing keys), named as in config.json; strings
    as UTF-8 strings, integers as int64, floats as float64, booleans as int64
    0/1, lists of numbers as 1-D int64/float64 arrays; plus `model_type`,
    `config_json` (the full config text), `source`, and `do_normalize` /
    `return_attention_mask` copied from preprocessor_config.json if present.

The file is written to a temporary name next to --out and renamed at the end,
so a crash never leaves a half-written weight file behind.

Models are described by one table entry each (MODELS below): default config,
name prefixes to strip, spelling fixes, tensors to drop, the function giving
every expected tensor name and shape, and a random initialiser: HuBERT, BERT
(the plain file secap_qformer_init_bert reads), the Q-Former
(include/secap/qformer.h) and LLaMA (HF LlamaForCausalLM).
"""
import argparse
import copy
import fnmatch
import json
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------------------
# HuBERT

HUBERT_DEFAULTS = {  # transformers.HubertConfig defaults
    "model_type": "hubert",
    "vocab_size": 32, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout": 0.1, "activation_dropout": 0.1, "attention_dropout": 0.1,
    "feat_proj_layer_norm": True, "feat_proj_dropout": 0.0, "final_dropout": 0.1,
    "layerdrop": 0.1, "initializer_range": 0.02, "layer_norm_eps": 1e-5,
    "feat_extract_norm": "group", "feat_extract_activation": "gelu",
    "conv_dim": [512] * 7, "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_bias": False,
    "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
    "do_stable_layer_norm": False, "apply_spec_augment": True,
    "mask_time_prob": 0.05, "mask_time_length": 10, "mask_time_min_masks": 2,
    "mask_feature_prob": 0.0, "mask_feature_length": 10, "mask_feature_min_masks": 0,
}

HUBERT_LARGE = {  # facebook/hubert-large-ll60k, TencentGameMate/chinese-hubert-large
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
    "intermediate_size": 4096, "feat_extract_norm": "layer", "conv_bias": True,
    "do_stable_layer_norm": True,
}

PRESETS = {
    "hubert-base": dict(HUBERT_DEFAULTS),
    "hubert-large": dict(HUBERT_DEFAULTS, **HUBERT_LARGE),
    # the demo's encoder (make demo): the large layout at a width that
    # extracts the whole demo corpus in well under a minute
    "hubert-demo": dict(HUBERT_DEFAULTS, **HUBERT_LARGE) | dict(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=512, conv_dim=[128] * 7,
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8),
    # tiny configs for tests: same conv strides/kernels, small widths
    "hubert-tiny-base": dict(HUBERT_DEFAULTS, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64,
                             conv_dim=[32] * 7, num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=4),
    "hubert-tiny-large": dict(HUBERT_DEFAULTS, **HUBERT_LARGE) | dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, conv_dim=[16, 16, 24, 24, 32, 32, 32],
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4),
}


def hubert_check_config(cfg):
    """Raises ValueError naming the key for an unusable HuBERT config."""
    n = len(cfg["conv_dim"])
    for k in ("conv_kernel", "conv_stride"):
        if len(cfg[k]) != n:
            raise ValueError(f"config: {k} has {len(cfg[k])} entries but conv_dim has {n}")
    for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "num_conv_pos_embeddings", "num_conv_pos_embedding_groups"):
        if not isinstance(cfg[k], int) or cfg[k] <= 0:
            raise ValueError(f"config: {k} = {cfg[k]!r} must be a positive integer")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError("config: hidden_size %d is not a multiple of num_attention_heads %d"
                         % (cfg["hidden_size"], cfg["num_attention_heads"]))
    if cfg["hidden_size"] % cfg["num_conv_pos_embedding_groups"]:
        raise ValueError("config: hidden_size %d is not a multiple of num_conv_pos_embedding_groups %d"
                         % (cfg["hidden_size"], cfg["num_conv_pos_embedding_groups"]))
    if cfg.get("conv_pos_batch_norm"):
        raise ValueError("config: conv_pos_batch_norm = true (BatchNorm positional conv) is not supported")
    if cfg["feat_extract_norm"] not in ("group", "layer"):
        raise ValueError(f"config: feat_extract_norm = {cfg['feat_extract_norm']!r}, expected 'group' or 'layer'")


def hubert_names(cfg):
    """Every tensor of HF `HubertModel`: {name: (shape, optional)}."""
    hubert_check_config(cfg)
    H, F = cfg["hidden_size"], cfg["intermediate_size"]
    dims, kern = cfg["conv_dim"], cfg["conv_kernel"]
    out = {}

    def add(name, *shape, optional=False):
        out[name] = (tuple(shape), optional)

    cin = 1
    for i, (c, k) in enumerate(zip(dims, kern)):
        p = f"feature_extractor.conv_layers.{i}."
        add(p + "conv.weight", c, cin, k)
        if cfg["conv_bias"]:
            add(p + "conv.bias", c)
        if cfg["feat_extract_norm"] == "layer" or i == 0:
            add(p + "layer_norm.weight", c)
            add(p + "layer_norm.bias", c)
        cin = c
    if cfg.get("feat_proj_layer_norm", True):
        add("feature_projection.layer_norm.weight", dims[-1])
        add("feature_projection.layer_norm.bias", dims[-1])
    add("feature_projection.projection.weight", H, dims[-1])
    add("feature_projection.projection.bias", H)
    K, G = cfg["num_conv_pos_embeddings"], cfg["num_conv_pos_embedding_groups"]
    add("encoder.pos_conv_embed.conv.weight_g", 1, 1, K)
    add("encoder.pos_conv_embed.conv.weight_v", H, H // G, K)
    add("encoder.pos_conv_embed.conv.bias", H)
    add("encoder.layer_norm.weight", H)
    add("encoder.layer_norm.bias", H)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            add(p + f"attention.{proj}.weight", H, H)
            add(p + f"attention.{proj}.bias", H)
        add(p + "layer_norm.weight", H)
        add(p + "layer_norm.bias", H)
        add(p + "feed_forward.intermediate_dense.weight", F, H)
        add(p + "feed_forward.intermediate_dense.bias", F)
        add(p + "feed_forward.output_dense.weight", H, F)
        add(p + "feed_forward.output_dense.bias", H)
        add(p + "final_layer_norm.weight", H)
        add(p + "final_layer_norm.bias", H)
    # Only used for SpecAugment in training; present when mask_time_prob > 0
    # or mask_feature_prob > 0.  Inference ignores it.
    add("masked_spec_embed", H, optional=True)
    return out


def hubert_random(cfg, rng):
    """HF HubertPreTrainedModel._init_weights-like initialisation (numpy)."""
    names = hubert_names(cfg)
    out = {}
    r = cfg.get("initializer_range", 0.02)
    for name, (shape, _opt) in names.items():
        if name == "masked_spec_embed":
            if cfg.get("mask_time_prob", 0) > 0 or cfg.get("mask_feature_prob", 0) > 0:
                out[name] = rng.uniform(0.0, 1.0, shape)
            continue
        if name.endswith("conv.weight"):   # kaiming_normal_, fan_in
            fan_in = shape[1] * shape[2]
            out[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif name.endswith("conv.weight_v"):
            fan_in = shape[1] * shape[2]
            out[name] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif name.endswith("conv.weight_g"):
            pass  # set from weight_v below, so that the initial weight = v
        elif name.endswith("conv.bias"):
            wshape = names[name[:-len("bias")] + ("weight_v" if "pos_conv" in name else "weight")][0]
            k = 1.0 / np.sqrt(wshape[1] * wshape[2])
            out[name] = rng.uniform(-k, k, shape)
        elif "norm" in name:
            out[name] = np.ones(shape) if name.endswith("weight") else np.zeros(shape)
        elif name.endswith(".weight"):
            out[name] = rng.normal(0.0, r, shape)
        else:
            out[name] = np.zeros(shape)
        if name in out:   # float32 right away: float64 copies of a large model add up
            out[name] = out[name].astype(np.float32)
    v = out["encoder.pos_conv_embed.conv.weight_v"].astype(np.float64)
    out["encoder.pos_conv_embed.conv.weight_g"] = np.sqrt((v * v).sum(axis=(0, 1), keepdims=True)).astype(np.float32)
    return out


def hubert_rename(name):
    name = name.replace(".parametrizations.weight.original0", ".weight_g")
    name = name.replace(".parametrizations.weight.original1", ".weight_v")
    return name


# ---------------------------------------------------------------------------
# BERT (bert-base-chinese) -> plain BERT file (model_type "bert")
#
# The file secap_qformer_init_bert reads: HF BertModel names (the `bert.`
# prefix of BertForPreTraining / BertForMaskedLM dropped), the pooler kept
# when present, the pre-training heads (cls.*) and the position_ids buffer
# dropped.  The Q-Former init itself (query feed-forward copied from the text
# feed-forward, cross-attention and queries random) happens in C.

BERT_DEFAULTS = {  # transformers.BertConfig defaults
    "model_type": "bert",
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
    "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "absolute",
}

BERT_BASE_CHINESE = dict(BERT_DEFAULTS, vocab_size=21128)


def _positive(cfg, keys, what):
    for k in keys:
        if not isinstance(cfg.get(k), int) or isinstance(cfg.get(k), bool) or cfg[k] <= 0:
            raise ValueError(f"{what} config: {k} = {cfg.get(k)!r} must be a positive integer")


def bert_check_config(cfg, what="bert"):
    _positive(cfg, ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"), what)
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError(f"{what} config: hidden_size {cfg['hidden_size']} is not a multiple of "
                         f"num_attention_heads {cfg['num_attention_heads']}")
    if cfg.get("hidden_act") != "gelu":
        raise ValueError(f"{what} config: hidden_act = {cfg.get('hidden_act')!r}; the C Q-Former implements "
                         "only exact 'gelu'")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{what} config: position_embedding_type = {cfg['position_embedding_type']!r}; only "
                         "'absolute' is implemented")


def _bert_layer_names(add, p, H, I, W=None, cross=False, text=True, query=False):
    """One BERT / Q-Former layer under prefix p."""
    kinds = ["attention"] + (["crossattention"] if cross else [])
    for kind in kinds:
        kv = W if kind == "crossattention" else H
        for proj in ("query", "key", "value"):
            add(f"{p}{kind}.self.{proj}.weight", H, H if proj == "query" else kv)
            add(f"{p}{kind}.self.{proj}.bias", H)
        add(f"{p}{kind}.output.dense.weight", H, H)
        add(f"{p}{kind}.output.dense.bias", H)
        add(f"{p}{kind}.output.LayerNorm.weight", H)
        add(f"{p}{kind}.output.LayerNorm.bias", H)
    for on, inter, out in ((text, "intermediate", "output"), (query, "intermediate_query", "output_query")):
        if on:
            add(f"{p}{inter}.dense.weight", I, H)
            add(f"{p}{inter}.dense.bias", I)
            add(f"{p}{out}.dense.weight", H, I)
            add(f"{p}{out}.dense.bias", H)
            add(f"{p}{out}.LayerNorm.weight", H)
            add(f"{p}{out}.LayerNorm.bias", H)


def bert_names(cfg):
    """Every tensor of HF `BertModel`: {name: (shape, optional)}."""
    bert_check_config(cfg)
    H, I = cfg["hidden_size"], cfg["intermediate_size"]
    out = {}

    def add(name, *shape, optional=False):
        out[name] = (tuple(shape), optional)

    add("embeddings.word_embeddings.weight", cfg["vocab_size"], H)
    add("embeddings.position_embeddings.weight", cfg["max_position_embeddings"], H)
    if cfg["type_vocab_size"] > 0:
        add("embeddings.token_type_embeddings.weight", cfg["type_vocab_size"], H)
    add("embeddings.LayerNorm.weight", H)
    add("embeddings.LayerNorm.bias", H)
    for i in range(cfg["num_hidden_layers"]):
        _bert_layer_names(add, f"encoder.layer.{i}.", H, I)
    add("pooler.dense.weight", H, H, optional=True)
    add("pooler.dense.bias", H, optional=True)
    return out


def normal_rule(names, cfg, rng):
    """The BERT / LLaMA random rule, one tensor at a time: LayerNorm / RMSNorm
    weights 1, biases 0, every other tensor normal(0, initializer_range)."""
    r = cfg.get("initializer_range", 0.02)
    for name, (shape, opt) in names.items():
        if opt and not name.startswith("pooler."):
            continue
        last = name.rsplit(".", 1)[-1]
        if "LayerNorm" in name or "layernorm" in name or name.endswith("norm.weight"):
            x = np.ones(shape, np.float32) if last == "weight" else np.zeros(shape, np.float32)
        elif last == "bias":
            x = np.zeros(shape, np.float32)
        else:
            x = rng.standard_normal(shape, dtype=np.float32)
            x *= np.float32(r)
        yield name, x


def bert_random(cfg, rng):
    return normal_rule(bert_names(cfg), cfg, rng)


def bert_rename(name):
    # checkpoints from the TensorFlow era (bert-base-chinese's pytorch_model.bin)
    # spell the LayerNorm parameters gamma / beta, as HF's loader renames them
    if ".LayerNorm." in name:
        name = name.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(".LayerNorm.beta", ".LayerNorm.bias")
    return name


# ---------------------------------------------------------------------------
# ERNIE (model_type "ernie": nghuyong/ernie-3.0-base-zh and what is trained
# from it, such as shibing624/text2vec-base-chinese-paraphrase, the encoder of
# SECap's similarity metric) -> plain BERT file (model_type "bert").
#
# HF ErnieModel is BertModel plus, when use_task_id, a task-type embedding
# added to every token's embedding sum; with the default task_type_ids (all 0)
# that is row 0 of embeddings.task_type_embeddings.weight at every position.
# Token type ids are 0 as well in the metric, so the conversion folds the
# task row into every token-type row: token_type'[t] = token_type[t] +
# task_type[0].  The result is a BERT file whose outputs equal ErnieModel's
# for task type 0 (and any token type), read by the C BERT code unchanged.

ERNIE_DEFAULTS = dict(BERT_DEFAULTS, model_type="ernie", task_type_vocab_size=3, use_task_id=False)


def ernie_names(cfg):
    names = bert_names(dict(cfg, model_type="bert"))
    if cfg.get("use_task_id"):
        _positive(cfg, ("task_type_vocab_size",), "ernie")
        names["embeddings.task_type_embeddings.weight"] = ((cfg["task_type_vocab_size"], cfg["hidden_size"]), False)
    return names


def ernie_fold(sd, cfg, where):
    """{name: Lazy} of an ErnieModel -> BertModel names, task row 0 folded
    into the token-type rows (see above)."""
    tt, task = "embeddings.token_type_embeddings.weight", "embeddings.task_type_embeddings.weight"
    if task not in sd:
        return sd
    if tt not in sd:
        raise ConvertError(f"{where}: ERNIE checkpoint with task-type but no token-type embeddings "
                           "(hint: set type_vocab_size in config.json)")
    a, b = sd[tt], sd[task]

    def fn(a=a, b=b):
        x = np.asarray(a.load(tt), dtype=np.float32)
        return x + np.asarray(b.load(task), dtype=np.float32)[0][None, :]

    out = {n: v for n, v in sd.items() if n != task}
    out[tt] = Lazy(tuple(a.shape), np.float32, fn, a.src)
    return out


# ---------------------------------------------------------------------------
# Q-Former (model_type "qformer"), include/secap/qformer.h

QFORMER_DEFAULTS = dict(BERT_BASE_CHINESE, model_type="qformer",
                        num_query_tokens=32, cross_attention_freq=2, encoder_width=768,
                        audio_width=1024, llm_width=4096, embed_dim=256, text_mode=1)
# SECap's released bridge: LAVIS BertEmbeddings (no token types), the text side
# deleted, no embedding heads.
QFORMER_SECAP = dict(QFORMER_DEFAULTS, type_vocab_size=0, embed_dim=0, text_mode=0)

QF = "Qformer.bert."


def qformer_names(cfg):
    """Every tensor of a Q-Former file (secap/qformer.h): {name: (shape, optional)}."""
    bert_check_config(cfg, "qformer")
    _positive(cfg, ("num_query_tokens", "cross_attention_freq", "encoder_width"), "qformer")
    for k in ("audio_width", "llm_width", "embed_dim", "type_vocab_size"):
        if not isinstance(cfg.get(k), int) or cfg[k] < 0:
            raise ValueError(f"qformer config: {k} = {cfg.get(k)!r} must be an integer >= 0 (0 = none)")
    if cfg["text_mode"] not in (0, 1, True, False):
        raise ValueError(f"qformer config: text_mode = {cfg['text_mode']!r}, expected 0 or 1")
    H, I, W = cfg["hidden_size"], cfg["intermediate_size"], cfg["encoder_width"]
    text = bool(cfg["text_mode"])
    out = {}

    def add(name, *shape, optional=False):
        out[name] = (tuple(shape), optional)

    if text:
        add(QF + "embeddings.word_embeddings.weight", cfg["vocab_size"], H)
        add(QF + "embeddings.position_embeddings.weight", cfg["max_position_embeddings"], H)
        if cfg["type_vocab_size"] > 0:
            add(QF + "embeddings.token_type_embeddings.weight", cfg["type_vocab_size"], H)
    add(QF + "embeddings.LayerNorm.weight", H)
    add(QF + "embeddings.LayerNorm.bias", H)
    for i in range(cfg["num_hidden_layers"]):
        _bert_layer_names(add, f"{QF}encoder.layer.{i}.", H, I, W, cross=i % cfg["cross_attention_freq"] == 0,
                          text=text, query=True)
    add("query_tokens", 1, cfg["num_query_tokens"], H)
    if cfg["audio_width"] > 0:
        add("audio_project.weight", W, cfg["audio_width"])
        add("audio_project.bias", W)
    if cfg["llm_width"] > 0:
        add("audio_llama_project.weight", cfg["llm_width"], H)
        add("audio_llama_project.bias", cfg["llm_width"])
    if cfg["embed_dim"] > 0:
        add("speech_proj.weight", cfg["embed_dim"], H)
        add("speech_proj.bias", cfg["embed_dim"])
        if text:
            add("text_proj.weight", cfg["embed_dim"], H)
            add("text_proj.bias", cfg["embed_dim"])
    return out


def qformer_random(cfg, rng):
    return normal_rule(qformer_names(cfg), cfg, rng)


# ---------------------------------------------------------------------------
# LLaMA (HF LlamaForCausalLM)

LLAMA_DEFAULTS = {  # transformers.LlamaConfig defaults
    "model_type": "llama",
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": None,
    "hidden_act": "silu", "max_position_embeddings": 2048, "initializer_range": 0.02,
    "rms_norm_eps": 1e-6, "use_cache": True, "pad_token_id": None, "bos_token_id": 1,
    "eos_token_id": 2, "tie_word_embeddings": False, "rope_theta": 10000.0,
    "attention_bias": False,
}

# minlik/chinese-llama-7b-merged (SECap's LM): LLaMA-7B with the 49953-piece
# Chinese vocabulary
LLAMA_7B_ZH = dict(LLAMA_DEFAULTS, vocab_size=49953, rms_norm_eps=1e-6, pad_token_id=0)


def llama_fill(cfg):
    """LlamaConfig's derived defaults: num_key_value_heads = num_attention_heads."""
    if cfg.get("num_key_value_heads") is None:
        cfg["num_key_value_heads"] = cfg["num_attention_heads"]
    return cfg


def llama_check_config(cfg):
    _positive(cfg, ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads"), "llama")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ValueError(f"llama config: hidden_size {cfg['hidden_size']} is not a multiple of "
                         f"num_attention_heads {cfg['num_attention_heads']}")
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise ValueError(f"llama config: num_attention_heads {cfg['num_attention_heads']} is not a multiple "
                         f"of num_key_value_heads {cfg['num_key_value_heads']}")
    if cfg.get("hidden_act") != "silu":
        raise ValueError(f"llama config: hidden_act = {cfg.get('hidden_act')!r}, only 'silu' (SwiGLU) is supported")
    if cfg.get("rope_scaling"):
        raise ValueError(f"llama config: rope_scaling = {cfg['rope_scaling']!r} is not supported "
                         "(plain rotary embeddings only)")


def llama_names(cfg):
    """Every tensor of HF `LlamaForCausalLM`: {name: (shape, optional)}."""
    llama_check_config(cfg)
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = D // cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"] * hd
    bias = bool(cfg.get("attention_bias"))
    out = {}

    def add(name, *shape, optional=False):
        out[name] = (tuple(shape), optional)

    add("model.embed_tokens.weight", V, D)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for proj, rows in (("q_proj", D), ("k_proj", KV), ("v_proj", KV), ("o_proj", D)):
            add(p + f"self_attn.{proj}.weight", rows, D)
            if bias:
                add(p + f"self_attn.{proj}.bias", rows)
        add(p + "mlp.gate_proj.weight", I, D)
        add(p + "mlp.up_proj.weight", I, D)
        add(p + "mlp.down_proj.weight", D, I)
        add(p + "input_layernorm.weight", D)
        add(p + "post_attention_layernorm.weight", D)
    add("model.norm.weight", D)
    # tied: HF checkpoints usually omit lm_head (it is embed_tokens)
    add("lm_head.weight", V, D, optional=bool(cfg.get("tie_word_embeddings")))
    return out


def llama_random(cfg, rng):
    names = llama_names(cfg)
    if cfg.get("tie_word_embeddings"):
        del names["lm_head.weight"]
    return normal_rule(names, cfg, rng)


def _identity(name):
    return name


PRESETS.update({
    "bert-base-chinese": dict(BERT_BASE_CHINESE),
    "bert-tiny": dict(BERT_DEFAULTS, vocab_size=99, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=48, max_position_embeddings=40),
    # the paper's bridge (secap_qformer_config_default)
    "qformer-q7x2": dict(QFORMER_DEFAULTS),
    "qformer-secap": dict(QFORMER_SECAP),
    "qformer-tiny": dict(QFORMER_DEFAULTS, vocab_size=99, hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=4, intermediate_size=48, max_position_embeddings=40,
                         num_query_tokens=4, encoder_width=24, audio_width=20, llm_width=40, embed_dim=16),
    "llama-7b": dict(LLAMA_DEFAULTS),
    "chinese-llama-7b": dict(LLAMA_7B_ZH),
    # issue 10's decode benchmark shape
    "llama-110m": dict(LLAMA_DEFAULTS, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                       intermediate_size=2048, max_position_embeddings=1024),
    "llama-tiny": dict(LLAMA_DEFAULTS, vocab_size=67, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
                       max_position_embeddings=64),
})

MODELS = {
    "hubert": {
        "defaults": HUBERT_DEFAULTS,
        "strip_prefixes": ("hubert.",),
        "rename": hubert_rename,
        "drop": (),
        "names": hubert_names,
        "random": hubert_random,
    },
    "bert": {
        "defaults": BERT_DEFAULTS,
        "strip_prefixes": ("bert.",),
        "rename": bert_rename,
        # pre-training heads and the position_ids buffer: the Q-Former never
        # reads them (secap_qformer_init_bert ignores them too)
        "drop": ("cls.*", "*position_ids"),
        "names": bert_names,
        "random": bert_random,
    },
    "ernie": {
        "defaults": ERNIE_DEFAULTS,
        "strip_prefixes": ("ernie.",),
        "rename": bert_rename,
        "drop": ("cls.*", "*position_ids"),
        "names": ernie_names,
        "random": lambda cfg, rng: normal_rule(ernie_names(cfg), cfg, rng),
    },
    "qformer": {
        "defaults": QFORMER_DEFAULTS,
        "strip_prefixes": (),
        "rename": _identity,
        "drop": ("*position_ids",),
        "names": qformer_names,
        "random": qformer_random,
    },
    "llama": {
        "defaults": LLAMA_DEFAULTS,
        "fill": llama_fill,
        "strip_prefixes": (),
        "rename": _identity,
        # rotary tables that old checkpoints saved as buffers; recomputed
        "drop": ("model.layers.*.self_attn.rotary_emb.inv_freq",),
        "names": llama_names,
        "random": llama_random,
    },
}

# ---------------------------------------------------------------------------
# Reading checkpoints


class ConvertError(Exception):
    pass


_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "bf16",
              "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round-to-nearest-even float32 -> bfloat16 bits (uint16); NaN stays NaN.
    Works in blocks of 1M elements, so a large tensor needs no float32-sized
    temporaries."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.reshape(-1).view(np.uint32)
    r = np.empty(u.size, np.uint16)
    step = 1 << 20
    for i in range(0, u.size, step):
        b = u[i:i + step]
        t = (b >> 16) & np.uint32(1)
        t += b
        t += np.uint32(0x7FFF)
        t >>= 16
        r[i:i + step] = t
        nan = np.isnan(x.reshape(-1)[i:i + step])
        if nan.any():
            r[i:i + step][nan] = 0x7FC0
    return r.reshape(x.shape)


# Test hook: a list that receives ("load", file, name) when a tensor's data is
# read and ("write", name) when it is written (tests/ref_convert_llama.py
# checks that shards are read one at a time).
TRACE = None


class Lazy:
    """A checkpoint tensor whose data is read only by load(): shape, dtype
    (a numpy dtype, or "bfloat16") and the source file are known without it.
    load() returns a float32 array for floating-point tensors (bf16 and fp16
    widen exactly), the stored type otherwise."""

    def __init__(self, shape, dtype, fn, src):
        self.shape, self.dtype, self._fn, self.src = tuple(int(d) for d in shape), dtype, fn, src

    @property
    def floating(self):
        return self.dtype == "bfloat16" or np.issubdtype(self.dtype, np.floating)

    def load(self, name="?"):
        if TRACE is not None:
            TRACE.append(("load", self.src, name))
        x = self._fn()
        if self.dtype == "bfloat16":
            x = bf16_to_f32(x)
        elif self.floating:
            x = x.astype(np.float32)
        if x.shape != self.shape:
            raise ConvertError(f"{self.src}: tensor {name}: {x.size} elements for shape {list(self.shape)}")
        return x


def _arr(v):
    return v.load() if isinstance(v, Lazy) else np.asarray(v)


def _is_float(v):
    return v.floating if isinstance(v, Lazy) else np.issubdtype(np.asarray(v).dtype, np.floating)


def read_safetensors(path):
    """Hand-written safetensors reader: u64 header size, JSON header, raw data
    (each tensor's bytes are read from the file when it is loaded)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ConvertError(f"{path}: truncated safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > 100 << 20:
            raise ConvertError(f"{path}: header size {n} is not plausible (not a safetensors file?)")
        header = json.loads(f.read(n))
    base, size = 8 + n, os.path.getsize(path) - 8 - n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ConvertError(f"{path}: tensor {name}: unsupported safetensors dtype {info['dtype']}")
        b, e = info["data_offsets"]
        if not 0 <= b <= e <= size:
            raise ConvertError(f"{path}: tensor {name}: data_offsets [{b}, {e}] outside the "
                               f"{size}-byte data section (truncated download?)")
        shape = tuple(info["shape"])
        item = 2 if dt == "bf16" else np.dtype(dt).itemsize
        if (e - b) != item * int(np.prod(shape, dtype=np.int64)):
            raise ConvertError(f"{path}: tensor {name}: {e - b} bytes for shape {list(shape)} of {info['dtype']}")

        def fn(b=b, e=e, dt=dt, shape=shape, name=name):
            # read, not mapped: the shard's pages do not pile up in the RSS
            buf = np.empty(e - b, np.uint8)
            with open(path, "rb") as f:
                f.seek(base + b)
                if f.readinto(memoryview(buf)) != e - b:
                    raise ConvertError(f"{path}: tensor {name}: file ends early")
            return (buf.view("<u2") if dt == "bf16" else buf.view(dt)).reshape(shape)
        out[name] = Lazy(shape, "bfloat16" if dt == "bf16" else np.dtype(dt), fn, path)
    return out


# torch.save's zip format read without torch and without loading the data:
# data.pkl is unpickled with the tensor rebuild functions replaced by Lazy
# makers, each reading its storage record from the zip when loaded.
_TORCH_STORAGES = {"HalfStorage": "<f2", "FloatStorage": "<f4", "DoubleStorage": "<f8",
                   "BFloat16Storage": "bfloat16", "LongStorage": "<i8", "IntStorage": "<i4",
                   "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}


class _Stub(dict):
    """Stands in for any other class in a checkpoint (Lightning's hyper-
    parameters, optimizer states): accepts and ignores everything."""

    def __init__(self, *a, **k):
        super().__init__()

    def __setstate__(self, state):
        pass

    def __call__(self, *a, **k):
        return _Stub()


def _read_torch_zip(path):
    import pickle
    import zipfile
    zf = zipfile.ZipFile(path)
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise ConvertError(f"{path}: a zip file without one data.pkl (not a torch.save file?)")
    root = pkl[0][: -len("data.pkl")]

    class Storage:
        def __init__(self, dtype, key):
            self.dtype, self.key = dtype, key

    def rebuild(storage, offset, size, stride, *rest):
        dt = storage.dtype
        item = 2 if dt == "bfloat16" else np.dtype(dt).itemsize

        def fn():
            raw = np.frombuffer(zf.read(f"{root}data/{storage.key}"), dtype="<u2" if dt == "bfloat16" else dt)
            if not size:
                return raw[offset:offset + 1].reshape(())
            need = offset + 1 + sum((s - 1) * st for s, st in zip(size, stride))
            if raw.size < need:
                raise ConvertError(f"{path}: storage {storage.key}: {raw.size} elements, the tensor needs {need}")
            x = np.lib.stride_tricks.as_strided(raw[offset:], shape=tuple(size),
                                                strides=tuple(s * item for s in stride))
            return np.ascontiguousarray(x)
        return Lazy(size, dt if dt == "bfloat16" else np.dtype(dt), fn, path)

    class Unpickler(pickle.Unpickler):
        def find_class(self, mod, name):
            if mod == "torch._utils" and name == "_rebuild_tensor_v2":
                return rebuild
            if mod == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
                return lambda data, *a: data
            if mod == "torch" and name in _TORCH_STORAGES:
                return name
            if mod == "collections" and name == "OrderedDict":
                import collections
                return collections.OrderedDict
            if mod in ("builtins", "__builtin__") and name in ("set", "frozenset", "tuple", "list", "dict"):
                import builtins
                return getattr(builtins, name)
            return _Stub

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
                raise ConvertError(f"{path}: unexpected persistent id {pid!r}")
            st = pid[1]
            if st not in _TORCH_STORAGES:
                raise ConvertError(f"{path}: storage type {st!r} is not supported")
            return Storage(_TORCH_STORAGES[st], pid[2])

    with zf.open(pkl[0]) as f:
        return Unpickler(f).load()


def _unwrap_state_dict(sd, path):
    # a Lightning checkpoint holds the weights under "state_dict"
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ConvertError(f"{path}: holds a {type(sd).__name__}, not a state dict")
    return sd


def read_torch_bin(path):
    """A torch.save'd state dict as {name: Lazy}.  Zip-format files (torch >=
    1.6) are read lazily without torch; the legacy format goes through
    torch.load and is held in memory whole."""
    import zipfile
    if zipfile.is_zipfile(path):
        sd = _unwrap_state_dict(_read_torch_zip(path), path)
        out = {}
        for k, v in sd.items():
            if not isinstance(v, Lazy):
                raise ConvertError(f"{path}: entry {k} is a {type(v).__name__}, not a tensor")
            out[k] = v
        return out
    try:
        import torch
    except ImportError:
        raise ConvertError(f"{path}: reading a legacy-format pytorch_model.bin needs torch "
                           "(hint: run with /usr/bin/python3, or convert the checkpoint to safetensors)")
    sd = _unwrap_state_dict(torch.load(path, map_location="cpu"), path)
    out = {}
    for k, v in sd.items():
        if not hasattr(v, "detach"):
            raise ConvertError(f"{path}: entry {k} is a {type(v).__name__}, not a tensor")
        v = v.detach()
        if v.is_floating_point():
            v = v.float()
        a = v.numpy()
        out[k] = Lazy(a.shape, a.dtype, lambda a=a: a, path)
    return out


def checkpoint_files(d):
    """The weight files of an HF directory, in order, each with its reader."""
    for index, reader in (("model.safetensors.index.json", read_safetensors),
                          ("pytorch_model.bin.index.json", read_torch_bin)):
        p = os.path.join(d, index)
        if os.path.exists(p):
            with open(p) as f:
                wm = json.load(f)["weight_map"]
            files = sorted(set(wm.values()))
            missing = [s for s in files if not os.path.exists(os.path.join(d, s))]
            if missing:
                raise ConvertError(f"{p}: shard(s) {', '.join(missing)} missing (hint: download every shard)")
            return [(os.path.join(d, s), reader) for s in files]
    for single, reader in (("model.safetensors", read_safetensors),
                           ("pytorch_model.bin", read_torch_bin)):
        p = os.path.join(d, single)
        if os.path.exists(p):
            return [(p, reader)]
    raise ConvertError(f"{d}: no model.safetensors, pytorch_model.bin or *.index.json "
                       "(hint: download the weights, e.g. `git lfs pull` in the repository)")


def read_checkpoint(d):
    """All tensors of an HF directory as {name: Lazy} (nothing loaded yet)."""
    out = {}
    for path, reader in checkpoint_files(d):
        for k, v in reader(path).items():
            if k in out:
                raise ConvertError(f"{path}: tensor {k} is also in {out[k].src}")
            out[k] = v
    return out


def load_config(spec):
    """A config.json path, a directory holding one, or a preset name."""
    if spec in PRESETS:
        return copy.deepcopy(PRESETS[spec]), json.dumps(PRESETS[spec], indent=2)
    p = os.path.join(spec, "config.json") if os.path.isdir(spec) else spec
    if not os.path.exists(p):
        raise ConvertError(f"config {spec!r}: no such file and not a preset "
                           f"(presets: {', '.join(sorted(PRESETS))})")
    with open(p) as f:
        text = f.read()
    return json.loads(text), text


def full_config(cfg):
    mt = cfg.get("model_type")
    if mt not in MODELS:
        raise ConvertError(f"config: model_type {mt!r} is not supported "
                           f"(supported: {', '.join(sorted(MODELS))})")
    full = copy.deepcopy(MODELS[mt]["defaults"])
    full.update(cfg)
    fill = MODELS[mt].get("fill")
    return fill(full) if fill else full


def normalise_names(sd, model, ignore, dropped=None):
    spec = MODELS[model]
    out = {}
    for k, v in sd.items():
        n = k
        for p in spec["strip_prefixes"]:
            if n.startswith(p):
                n = n[len(p):]
                break
        n = spec["rename"](n)
        if any(fnmatch.fnmatchcase(n, g) or fnmatch.fnmatchcase(k, g) for g in ignore):
            continue
        if any(fnmatch.fnmatchcase(n, g) for g in spec.get("drop", ())):
            if dropped is not None:
                dropped.append(k)
            continue
        if n in out:
            raise ConvertError(f"tensor {k}: maps to {n}, which is already present "
                               "(hint: the checkpoint holds two spellings of the same tensor)")
        out[n] = v
    return out


def check_tensors(sd, names, where):
    errs = []
    for n, (shape, opt) in names.items():
        if n not in sd:
            if not opt:
                errs.append(f"missing tensor {n} (expected shape {list(shape)})")
        elif tuple(sd[n].shape) != shape:
            errs.append(f"tensor {n}: shape {list(sd[n].shape)}, expected {list(shape)}")
    for n in sorted(sd):
        if n not in names:
            errs.append(f"unknown tensor {n} shape {list(sd[n].shape)}")
        elif not _is_float(sd[n]):
            errs.append(f"tensor {n}: dtype {sd[n].dtype}, expected a floating-point type")
    if errs:
        raise ConvertError(f"{where}: {len(errs)} problem(s):\n  " + "\n  ".join(errs) +
                           "\n(hint: is config.json the one of this checkpoint? "
                           "Task-head tensors can be dropped with --ignore 'GLOB')")


# ---------------------------------------------------------------------------
# Writing


def _attr_value(v):
    """Config value -> HDF5 attribute value, or None to skip it."""
    if isinstance(v, bool):
        return np.int64(v)
    if isinstance(v, int):
        return np.int64(v)
    if isinstance(v, float):
        return np.float64(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        if all(isinstance(x, int) for x in v):
            return np.asarray(v, dtype=np.int64)
        return np.asarray(v, dtype=np.float64)
    return None


def check_output(path, inputs=()):
    """Refuses an output that is a directory, one of the input files, or an
    existing file that is not a weight file (an HDF5 file with a model_type
    attribute): outputs never replace a file of another kind."""
    import h5py
    if os.path.isdir(path):
        raise ConvertError(f"--out {path} is a directory (give a file name, e.g. {path}/model.h5)")
    for p in inputs:
        if os.path.exists(p) and os.path.exists(path) and os.path.samefile(p, path):
            raise ConvertError(f"--out {path} is the input file {p} (inputs are never overwritten)")
    if not os.path.exists(path):
        return
    kind = None
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                kind = None if "model_type" in f.attrs else "an HDF5 file without a model_type attribute"
        else:
            kind = f"not an HDF5 file ({os.path.getsize(path)} bytes)"
    except OSError as e:
        kind = f"an HDF5 file h5py cannot open ({e})"
    if kind:
        raise ConvertError(f"--out {path} exists and is {kind}, not a weight file; it is never overwritten "
                           "(choose another path, or remove the file if it is yours to lose)")


def _check_finite_one(n, x):
    if np.isfinite(x).all():
        return
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        idx = np.unravel_index(int(bad[0]), x.shape)
        raise ConvertError(f"tensor {n} holds {x.flat[bad[0]]} at {list(map(int, idx))} of {list(x.shape)} "
                           f"({bad.size} non-finite values; the checkpoint is damaged or from a diverged run)")


def check_finite(tensors):
    """Refuses NaN or infinite values, naming the tensor and the element."""
    for n in sorted(tensors):
        _check_finite_one(n, np.asarray(tensors[n], dtype=np.float32))


class WeightWriter:
    """Writes a weight file one tensor at a time, atomically: everything goes
    to <path>.tmp.<pid>, renamed over <path> by commit(); any exception (a
    NaN found half-way included) removes the temporary file.

        with WeightWriter(path, attrs, "bf16") as w:
            w.add(name, array)
            w.commit()
    """

    def __init__(self, path, attrs, dtype="fp32", inputs=()):
        import h5py
        if dtype not in ("fp32", "bf16"):
            raise ConvertError(f"dtype {dtype!r}: expected fp32 or bf16")
        check_output(path, inputs)
        self.path, self.dtype, self.tmp = path, dtype, f"{path}.tmp.{os.getpid()}"
        self.count = self.params = 0
        # Tensors contiguous and uncompressed (h5py's default without
        # chunks/compression), every object on a 64-byte boundary: the C
        # side then maps them in place (secap_weights_mmap).
        self.f = h5py.File(self.tmp, "w", alignment_threshold=1, alignment_interval=64)
        try:
            for k, v in attrs.items():
                a = _attr_value(v)
                if a is not None:
                    self.f.attrs[k] = a
        except BaseException:
            self.abort()
            raise

    def add(self, name, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        _check_finite_one(name, x)
        if TRACE is not None:
            TRACE.append(("write", name))
        if self.dtype == "bf16":
            ds = self.f.create_dataset(name, data=f32_to_bf16(x))
            ds.attrs["dtype"] = "bfloat16"
        else:
            self.f.create_dataset(name, data=x)
        self.count += 1
        self.params += x.size

    def commit(self):
        self.f.close()
        self.f = None
        os.replace(self.tmp, self.path)

    def abort(self):
        if self.f is not None:
            try:
                self.f.close()
            except Exception:
                pass
            self.f = None
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if self.f is not None:
            self.abort()
        return False


def write_weights(path, tensors, attrs, dtype="fp32", order=None):
    """Writes {name: array} and {attr: value} atomically (temp file + rename)."""
    check_finite({n: _arr(v) for n, v in tensors.items()} if any(isinstance(v, Lazy) for v in tensors.values())
                 else tensors)
    with WeightWriter(path, attrs, dtype) as w:
        for n in (order or sorted(tensors)):
            if n in tensors:
                w.add(n, _arr(tensors[n]))
        w.commit()


def write_streaming(out, sd, attrs, dtype, inputs=()):
    """Writes {name: Lazy} grouped by source file, in file order, loading one
    tensor at a time: the peak memory is one tensor (source dtype + float32
    + bfloat16 copies), whatever the checkpoint's size."""
    groups = {}
    for n, v in sd.items():
        groups.setdefault(v.src, []).append(n)
    with WeightWriter(out, attrs, dtype, inputs) as w:
        for src, ns in groups.items():
            for n in ns:
                w.add(n, sd[n].load(n))
        w.commit()
    return w.count, w.params


def _inputs_of(path):
    if os.path.isdir(path):
        return [os.path.join(path, f) for f in os.listdir(path)]
    return [path]


def convert(hf_dir, out, dtype="fp32", ignore=()):
    check_output(out, _inputs_of(hf_dir))
    cfg_raw, text = load_config(hf_dir)
    cfg = full_config(cfg_raw)
    model = cfg["model_type"]
    if model == "qformer":
        raise ConvertError(f"{hf_dir}: model_type 'qformer' has no Hugging Face checkpoint; convert BERT "
                           "(model_type 'bert') or SECap's checkpoint (--secap model.ckpt)")
    names = MODELS[model]["names"](cfg)
    dropped = []
    sd = normalise_names(read_checkpoint(hf_dir), model, ignore, dropped)
    if dropped:
        print(f"convert_hf: dropped {len(dropped)} tensor(s) the {model} file does not keep "
              f"({', '.join(MODELS[model]['drop'])})")
    check_tensors(sd, names, hf_dir)
    attrs = dict(cfg)
    if model == "ernie":   # written as the plain BERT file it becomes
        sd = ernie_fold(sd, cfg, hf_dir)
        attrs["model_type"], attrs["source_model_type"] = "bert", "ernie"
    pre = os.path.join(hf_dir, "preprocessor_config.json")
    if os.path.exists(pre):
        with open(pre) as f:
            pc = json.load(f)
        for k in ("do_normalize", "return_attention_mask", "sampling_rate"):
            if k in pc:
                attrs[k] = pc[k]
    attrs["config_json"] = text
    attrs["source"] = "hf:" + os.path.abspath(hf_dir)
    shapes = {n: v.shape for n, v in sd.items()}
    write_streaming(out, sd, attrs, dtype, _inputs_of(hf_dir))
    return shapes, cfg


# SECap's released model.ckpt (thuhcsi/SECap model2.py, MotionAudio): the whole
# LightningModule's state dict.  The bridge is audio_Qformer.bert.* (LAVIS
# BertModel, no token types, word/position embeddings and the text FFN set to
# None), audio_query_tokens, audio_project, audio_llama_project; the frozen
# HuBERT, text2vec BERT and LLaMA are converted from their own checkpoints.
SECAP_RENAMES = (("audio_Qformer.bert.", QF), ("audio_query_tokens", "query_tokens"))
SECAP_FROZEN = ("hubert_model.", "text2vec_model.", "llama_model.")


def secap_bridge(sd, path, ignore=()):
    """SECap state dict {name: Lazy} -> Q-Former names, frozen parts left out."""
    keys = list(sd)
    if keys and all(k.startswith("model.") for k in keys):
        sd = {k[len("model."):]: v for k, v in sd.items()}
    out, frozen = {}, 0
    for k, v in sd.items():
        if k.startswith(SECAP_FROZEN):
            frozen += 1
            continue
        n = k
        for a, b in SECAP_RENAMES:
            if n.startswith(a):
                n = b + n[len(a):]
                break
        if fnmatch.fnmatchcase(n, "*position_ids") or any(fnmatch.fnmatchcase(n, g) or fnmatch.fnmatchcase(k, g)
                                                          for g in ignore):
            continue
        out[n] = v
    if "query_tokens" not in out:
        raise ConvertError(f"{path}: no audio_query_tokens (nor query_tokens): not SECap's checkpoint "
                           f"(first keys: {', '.join(keys[:5])})")
    return out, frozen


def secap_shape_config(cfg, sd):
    """Sizes read off the tensors (the checkpoint holds no config)."""
    cfg = dict(cfg)
    _, Q, H = sd["query_tokens"].shape
    cfg.update(hidden_size=H, num_query_tokens=Q)
    layers = sorted({int(n[len(QF) + len("encoder.layer."):].split(".")[0]) for n in sd
                     if n.startswith(QF + "encoder.layer.")})
    if layers:
        cfg["num_hidden_layers"] = layers[-1] + 1
        cross = sorted({int(n[len(QF) + len("encoder.layer."):].split(".")[0]) for n in sd
                        if n.startswith(QF + "encoder.layer.") and n.endswith(".crossattention.self.key.weight")})
        if len(cross) > 1:
            cfg["cross_attention_freq"] = cross[1] - cross[0]
        elif cross:
            cfg["cross_attention_freq"] = cfg["num_hidden_layers"]
        k = f"{QF}encoder.layer.0.intermediate_query.dense.weight"
        if k in sd:
            cfg["intermediate_size"] = sd[k].shape[0]
    if "audio_project.weight" in sd:
        cfg["encoder_width"], cfg["audio_width"] = sd["audio_project.weight"].shape
    else:
        cfg["audio_width"] = 0
    cfg["llm_width"] = sd["audio_llama_project.weight"].shape[0] if "audio_llama_project.weight" in sd else 0
    cfg["embed_dim"] = sd["speech_proj.weight"].shape[0] if "speech_proj.weight" in sd else 0
    cfg["text_mode"] = int(QF + "embeddings.word_embeddings.weight" in sd)
    if not cfg["text_mode"]:
        cfg["type_vocab_size"] = int(sd[QF + "embeddings.token_type_embeddings.weight"].shape[0]) \
            if QF + "embeddings.token_type_embeddings.weight" in sd else 0
    return cfg


def convert_secap(ckpt, out, dtype="fp32", config="qformer-secap", ignore=()):
    """SECap's model.ckpt -> a Q-Former file (model_type "qformer")."""
    check_output(out, [ckpt])
    if not os.path.isfile(ckpt):
        raise ConvertError(f"--secap {ckpt}: no such file (hint: SECap's model.ckpt, from the link in its readme)")
    cfg_raw, _ = load_config(config)
    if cfg_raw.get("model_type") != "qformer":
        raise ConvertError(f"--config {config}: model_type {cfg_raw.get('model_type')!r}, expected 'qformer'")
    sd, frozen = secap_bridge(read_torch_bin(ckpt), ckpt, ignore)
    cfg = full_config(secap_shape_config(cfg_raw, sd))
    names = qformer_names(cfg)
    check_tensors(sd, names, ckpt)
    print(f"convert_hf: {ckpt}: left out {frozen} frozen tensor(s) (HuBERT, text2vec, LLaMA: convert them "
          "from their own checkpoints)")
    attrs = dict(cfg)
    attrs["config_json"] = json.dumps(cfg, indent=2)
    attrs["source"] = "secap:" + os.path.abspath(ckpt)
    shapes = {n: v.shape for n, v in sd.items()}
    write_streaming(out, {n: sd[n] for n in names if n in sd}, attrs, dtype, [ckpt])
    return shapes, cfg


def init_random(config, out, seed=0, dtype="fp32"):
    """Random weights for a config, generated and written one tensor at a time."""
    cfg_raw, text = load_config(config)
    cfg = full_config(cfg_raw)
    rng = np.random.default_rng(seed)
    model = cfg["model_type"]
    names = MODELS[model]["names"](cfg)
    attrs = dict(cfg)
    attrs["config_json"] = text
    attrs["source"] = f"random:seed={seed}"
    gen = MODELS[model]["random"](cfg, rng)
    items = ((n, gen[n]) for n in names if n in gen) if isinstance(gen, dict) else gen
    shapes = {}
    with WeightWriter(out, attrs, dtype) as w:
        for n, x in items:
            w.add(n, x)
            shapes[n] = x.shape
        w.commit()
    return shapes, cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hf_dir", nargs="?", help="Hugging Face checkpoint directory")
    ap.add_argument("--out", required=True, help="output weight file (.h5)")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--init", choices=("random",), help="create random weights instead of converting")
    ap.add_argument("--config", help="config.json, a directory with one, or a preset: " + ", ".join(sorted(PRESETS)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                    help="drop checkpoint tensors matching GLOB (e.g. 'lm_head.*'); repeatable")
    ap.add_argument("--secap", metavar="MODEL.CKPT",
                    help="convert SECap's released checkpoint into a Q-Former file (--config: a qformer "
                         "config or preset for what the tensors do not tell, default qformer-secap)")
    a = ap.parse_args(argv)
    try:
        if a.init:
            if a.hf_dir or not a.config:
                ap.error("--init random takes --config and no checkpoint directory")
            sd, cfg = init_random(a.config, a.out, a.seed, a.dtype)
        elif a.secap:
            if a.hf_dir:
                ap.error("--secap takes the checkpoint file and no directory")
            sd, cfg = convert_secap(a.secap, a.out, a.dtype, a.config or "qformer-secap", a.ignore)
        else:
            if not a.hf_dir:
                ap.error("give a checkpoint directory, or --init random --config ...")
            sd, cfg = convert(a.hf_dir, a.out, a.dtype, a.ignore)
    except (ConvertError, ValueError, KeyError, OSError) as e:
        print(f"convert_hf: error: {e}", file=sys.stderr)
        return 1
    n = sum(int(np.prod(v)) for v in sd.values())
    print(f"convert_hf: wrote {a.out}: {cfg['model_type']}, {len(sd)} tensors, {n} parameters, {a.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
