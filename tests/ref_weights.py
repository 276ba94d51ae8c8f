#!/usr/bin/python3
"""tests/ref_weights.py OUTDIR - a weight file written the way Python users write one.

Writes to OUTDIR:
  weights_h5py.h5           root attributes set with plain h5py, `f.attrs[k] = v`
                            for every key of a HuBERT-like config.json exactly as
                            json.load gives it (bool -> h5py's enum FALSE/TRUE
                            over int8, int -> int64, float -> float64, str ->
                            variable-length UTF-8, lists -> 1-D arrays of int64,
                            float64, bool or strings).  Keys whose value is None
                            or a nested dict are skipped, as tools/convert_hf.py
                            skips them (h5py cannot store either).  Further
                            attributes cover what numpy users write: integer
                            scalars of every width and signedness, float16/32/64,
                            numpy bool, fixed-length ASCII and UTF-8 strings,
                            variable-length ASCII, typed lists, an empty list,
                            and kinds a getter must refuse (a 2-D array, a
                            uint64 past INT64_MAX).  Two tensors: a float32
                            [32] and a bfloat16 [4, 8] (uint16 + dtype tag).
  weights_h5py_expect.json  what the C getters must return for every attribute
                            written ("bool", "int", "double", "string", "ints",
                            "doubles"; numbers as exact decimal strings), the
                            skipped keys ("absent"), and the tensor values.
The C side is tests/test_weights.c (test_h5py_attrs).
"""
import json
import os
import sys

import h5py
import numpy as np

# A HuBERT config.json as Hugging Face writes it (chinese-hubert-large's keys,
# test-sized widths), with the nulls and nested dicts real configs carry.
CONFIG_JSON = """{
  "_name_or_path": "TencentGameMate/chinese-hubert-large",
  "activation_dropout": 0.1,
  "apply_spec_augment": true,
  "architectures": ["HubertModel"],
  "attention_dropout": 0.1,
  "bos_token_id": 1,
  "classifier_proj_size": 256,
  "conv_bias": true,
  "conv_dim": [16, 16, 24, 24, 32, 32, 40],
  "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
  "conv_stride": [5, 2, 2, 2, 2, 2, 2],
  "ctc_loss_reduction": "sum",
  "ctc_zero_infinity": false,
  "do_stable_layer_norm": true,
  "eos_token_id": 2,
  "feat_extract_activation": "gelu",
  "feat_extract_dropout": 0.0,
  "feat_extract_norm": "layer",
  "feat_proj_dropout": 0.1,
  "feat_proj_layer_norm": true,
  "final_dropout": 0.1,
  "hidden_act": "gelu",
  "hidden_dropout": 0.1,
  "hidden_size": 32,
  "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
  "initializer_range": 0.02,
  "intermediate_size": 64,
  "layer_norm_eps": 1e-05,
  "layer_weights": [0.5, 0.25, 1],
  "layerdrop": 0.1,
  "mask_feature_length": 10,
  "mask_feature_prob": 0.0,
  "mask_time_length": 10,
  "mask_time_prob": 0.05,
  "model_type": "hubert",
  "num_attention_heads": 4,
  "num_conv_pos_embedding_groups": 4,
  "num_conv_pos_embeddings": 16,
  "num_feat_extract_layers": 7,
  "num_hidden_layers": 2,
  "pad_token_id": 0,
  "task_specific_params": null,
  "tokenizer_class": null,
  "torch_dtype": "float32",
  "transformers_version": "4.16.0.dev0",
  "use_weighted_layer_sum": false,
  "vocab_size": 32,
  "frozen_layers": [true, false, true],
  "note": "中文 情感 caption, with spaces"
}"""


def exact(x):
    """A number as a decimal string that strtod/strtoll read back exactly."""
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return repr(float(x))   # float16/32 values are exact in a double


def expect_of(v):
    """(kind, value) the C getters must return for what h5py stores for v."""
    if isinstance(v, (bool, np.bool_)):
        return "bool", exact(v)
    if isinstance(v, (int, np.integer)):
        return "int", exact(v)
    if isinstance(v, (float, np.floating)):
        return "double", exact(v)
    if isinstance(v, (str, bytes)):
        return "string", v.decode() if isinstance(v, bytes) else v
    a = np.asarray(v)
    if a.dtype.kind in "US" or a.dtype == object:
        assert a.size == 1, "only 1-element string lists are read as a string"
        return "string", str(a.reshape(-1)[0])
    if a.dtype.kind in "biu":
        return "ints", [exact(x) for x in a.reshape(-1)]
    return "doubles", [exact(x) for x in a.reshape(-1)]


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    cfg = json.loads(CONFIG_JSON)
    attrs, absent = [], []
    path = os.path.join(outdir, "weights_h5py.h5")
    with h5py.File(path, "w") as f:
        # 1. every config key, as a user would write it
        for k, v in cfg.items():
            if v is None or isinstance(v, dict):
                absent.append(k)
                continue
            f.attrs[k] = v
            kind, val = expect_of(v)
            attrs.append({"name": k, "kind": kind, "value": val})
        # 2. numpy scalars, strings and lists of every width and flavour
        extra = {
            "np_int8": np.int8(-128), "np_uint8": np.uint8(255), "np_int16": np.int16(-32768),
            "np_uint16": np.uint16(65535), "np_int32": np.int32(-2147483648), "np_uint32": np.uint32(4294967295),
            "np_int64": np.int64(-(2 ** 63)), "np_uint64": np.uint64(2 ** 63 - 1),
            "np_float16": np.float16(0.333), "np_float32": np.float32(1e-5), "np_float64": np.float64(-2.5e300),
            "np_bool": np.bool_(False),
            "str_fixed_ascii": np.bytes_(b"layer"),
            "list_int8": np.array([-1, 2, -3], np.int8), "list_uint16": np.array([1, 65535], np.uint16),
            "list_uint64": np.array([0, 2 ** 63 - 1], np.uint64),
            "list_float32": np.array([0.5, 0.1], np.float32), "list_float16": np.array([1.5, -0.1], np.float16),
            "list_bool": np.array([False, True]), "list_one": np.array([7], np.int32),
        }
        for k, v in extra.items():
            f.attrs[k] = v
            kind, val = expect_of(v)
            attrs.append({"name": k, "kind": kind, "value": val})
        f.attrs.create("str_fixed_utf8", np.array("情感描述".encode(), dtype=h5py.string_dtype("utf-8", 16)))
        attrs.append({"name": "str_fixed_utf8", "kind": "string", "value": "情感描述"})
        f.attrs.create("str_vlen_ascii", "plain ascii", dtype=h5py.string_dtype("ascii"))
        attrs.append({"name": "str_vlen_ascii", "kind": "string", "value": "plain ascii"})
        f.attrs["list_empty"] = []           # h5py: float64 [0]
        attrs.append({"name": "list_empty", "kind": "ints", "value": []})
        # 3. kinds the getters refuse (messages checked in the C test)
        f.attrs["bad_matrix"] = np.zeros((2, 2), np.int64)
        f.attrs["bad_uint64_big"] = np.uint64(2 ** 64 - 1)
        f.attrs["bad_strings"] = ["a", "b"]
        # tensors
        rng = np.random.default_rng(5)
        a = rng.standard_normal(32).astype(np.float32)
        b = rng.standard_normal((4, 8)).astype(np.float32)
        bb = (b.view(np.uint32) >> 16).astype(np.uint16)   # truncation: any bf16 bits do
        f.create_dataset("encoder.layer_norm.weight", data=a)
        ds = f.create_dataset("encoder.proj.weight", data=bb)
        ds.attrs["dtype"] = "bfloat16"
    expect = {"attrs": attrs, "absent": absent,
              "tensors": [{"name": "encoder.layer_norm.weight", "dtype": "f32", "shape": [32],
                           "value": [exact(x) for x in a]},
                          {"name": "encoder.proj.weight", "dtype": "bf16", "shape": [4, 8],
                           "value": [str(int(x)) for x in bb.reshape(-1)]}]}
    with open(os.path.join(outdir, "weights_h5py_expect.json"), "w") as f:
        json.dump(expect, f, ensure_ascii=False, indent=1)
    print(f"ref_weights: wrote {path}: {len(attrs)} attributes checked, skipped (None or dict): {', '.join(absent)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tests/ref_weights.py OUTDIR")
    main(sys.argv[1])
