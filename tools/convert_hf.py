#!/usr/bin/python3
"""tools/convert_hf.py - Hugging Face checkpoint -> secap-c weight file (HDF5).

    convert_hf.py HF_DIR --out w.h5 [--dtype fp32|bf16] [--ignore GLOB ...]
    convert_hf.py --init random --config CONFIG.json|PRESET --out w.h5 [--seed N] [--dtype ...]

HF_DIR holds config.json and the weights as model.safetensors,
pytorch_model.bin, or a sharded set with its *.index.json.  The safetensors
format is read by hand (json + numpy); pytorch_model.bin needs torch.

The weight file (SECAP.md section 7):
  * one dataset per tensor at the root, named exactly as in the HF state dict
    of the bare model (`HubertModel`): the `hubert.` prefix of the task heads
    is dropped and the positional conv's weight norm is always spelled
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
name prefixes to strip, the function giving every expected tensor name and
shape, and a random initialiser.  HuBERT is there now; BERT and LLaMA are added
by writing their entries.
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


MODELS = {
    "hubert": {
        "defaults": HUBERT_DEFAULTS,
        "strip_prefixes": ("hubert.",),
        "rename": hubert_rename,
        "names": hubert_names,
        "random": hubert_random,
    },
    # "bert": {...}, "llama": {...}  -- same five fields.
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
    """Round-to-nearest-even float32 -> bfloat16 bits (uint16); NaN stays NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        r[nan] = 0x7FC0
    return r


def read_safetensors(path):
    """Hand-written safetensors reader: u64 header size, JSON header, raw data."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ConvertError(f"{path}: truncated safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > 100 << 20:
            raise ConvertError(f"{path}: header size {n} is not plausible (not a safetensors file?)")
        header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if os.path.getsize(path) > 8 + n \
            else np.zeros(0, np.uint8)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ConvertError(f"{path}: tensor {name}: unsupported safetensors dtype {info['dtype']}")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        buf = np.asarray(data[b:e])
        if dt == "bf16":
            arr = bf16_to_f32(buf.view("<u2"))
        else:
            arr = buf.view(dt)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ConvertError(f"{path}: tensor {name}: {arr.size} elements for shape {list(shape)}")
        out[name] = arr.reshape(shape)
    return out


def read_torch_bin(path):
    try:
        import torch
    except ImportError:
        raise ConvertError(f"{path}: reading pytorch_model.bin needs torch "
                           "(hint: run with /usr/bin/python3, or convert the checkpoint to safetensors)")
    sd = torch.load(path, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    out = {}
    for k, v in sd.items():
        if not hasattr(v, "detach"):
            raise ConvertError(f"{path}: entry {k} is a {type(v).__name__}, not a tensor")
        v = v.detach()
        if v.is_floating_point():
            v = v.float()
        out[k] = v.numpy()
    return out


def read_checkpoint(d):
    """All tensors of an HF directory as {name: numpy array}."""
    for index, reader in (("model.safetensors.index.json", read_safetensors),
                          ("pytorch_model.bin.index.json", read_torch_bin)):
        p = os.path.join(d, index)
        if os.path.exists(p):
            with open(p) as f:
                wm = json.load(f)["weight_map"]
            out = {}
            for shard in sorted(set(wm.values())):
                out.update(reader(os.path.join(d, shard)))
            return out
    for single, reader in (("model.safetensors", read_safetensors),
                           ("pytorch_model.bin", read_torch_bin)):
        p = os.path.join(d, single)
        if os.path.exists(p):
            return reader(p)
    raise ConvertError(f"{d}: no model.safetensors, pytorch_model.bin or *.index.json "
                       "(hint: download the weights, e.g. `git lfs pull` in the repository)")


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
    return full


def normalise_names(sd, model, ignore):
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
        elif not np.issubdtype(sd[n].dtype, np.floating):
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


def check_finite(tensors):
    """Refuses NaN or infinite values, naming the tensor and the element."""
    for n in sorted(tensors):
        x = np.asarray(tensors[n], dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            idx = np.unravel_index(int(bad[0]), x.shape)
            raise ConvertError(f"tensor {n} holds {x.flat[bad[0]]} at {list(map(int, idx))} of {list(x.shape)} "
                               f"({bad.size} non-finite values; the checkpoint is damaged or from a diverged run)")


def write_weights(path, tensors, attrs, dtype="fp32", order=None):
    """Writes {name: array} and {attr: value} atomically (temp file + rename)."""
    import h5py
    check_output(path)
    check_finite(tensors)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        # Tensors contiguous and uncompressed (h5py's default without
        # chunks/compression), every object on a 64-byte boundary: the C
        # side then maps them in place (secap_weights_mmap).
        with h5py.File(tmp, "w", alignment_threshold=1, alignment_interval=64) as f:
            for k, v in attrs.items():
                a = _attr_value(v)
                if a is not None:
                    f.attrs[k] = a
            for n in (order or sorted(tensors)):
                if n not in tensors:
                    continue
                x = np.ascontiguousarray(tensors[n], dtype=np.float32)
                if dtype == "bf16":
                    ds = f.create_dataset(n, data=f32_to_bf16(x))
                    ds.attrs["dtype"] = "bfloat16"
                else:
                    f.create_dataset(n, data=x)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def convert(hf_dir, out, dtype="fp32", ignore=()):
    check_output(out, [os.path.join(hf_dir, f) for f in os.listdir(hf_dir)] if os.path.isdir(hf_dir) else [])
    cfg_raw, text = load_config(hf_dir)
    cfg = full_config(cfg_raw)
    model = cfg["model_type"]
    names = MODELS[model]["names"](cfg)
    sd = normalise_names(read_checkpoint(hf_dir), model, ignore)
    check_tensors(sd, names, hf_dir)
    attrs = dict(cfg)
    pre = os.path.join(hf_dir, "preprocessor_config.json")
    if os.path.exists(pre):
        with open(pre) as f:
            pc = json.load(f)
        for k in ("do_normalize", "return_attention_mask", "sampling_rate"):
            if k in pc:
                attrs[k] = pc[k]
    attrs["config_json"] = text
    attrs["source"] = "hf:" + os.path.abspath(hf_dir)
    write_weights(out, sd, attrs, dtype, order=list(names))
    return sd, cfg


def init_random(config, out, seed=0, dtype="fp32"):
    cfg_raw, text = load_config(config)
    cfg = full_config(cfg_raw)
    rng = np.random.default_rng(seed)
    sd = MODELS[cfg["model_type"]]["random"](cfg, rng)
    attrs = dict(cfg)
    attrs["config_json"] = text
    attrs["source"] = f"random:seed={seed}"
    write_weights(out, sd, attrs, dtype, order=list(MODELS[cfg["model_type"]]["names"](cfg)))
    return sd, cfg


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
    a = ap.parse_args(argv)
    try:
        if a.init:
            if a.hf_dir or not a.config:
                ap.error("--init random takes --config and no checkpoint directory")
            sd, cfg = init_random(a.config, a.out, a.seed, a.dtype)
        else:
            if not a.hf_dir:
                ap.error("give a checkpoint directory, or --init random --config ...")
            sd, cfg = convert(a.hf_dir, a.out, a.dtype, a.ignore)
    except (ConvertError, ValueError, KeyError, OSError) as e:
        print(f"convert_hf: error: {e}", file=sys.stderr)
        return 1
    n = sum(int(np.prod(v.shape)) for v in sd.values())
    print(f"convert_hf: wrote {a.out}: {cfg['model_type']}, {len(sd)} tensors, {n} parameters, {a.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
