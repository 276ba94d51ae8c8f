#!/usr/bin/python3
"""tests/ref_convert.py OUTDIR - tests of tools/convert_hf.py.

Builds fake Hugging Face checkpoint directories under OUTDIR/convert_tmp and
checks that the converter's HDF5 output holds exactly the source tensors:
  1. pytorch_model.bin (torch.save) with the `hubert.` prefix of the task
     models and the `parametrizations.weight.original0/1` weight-norm spelling,
     plus preprocessor_config.json; fp32 and bf16 (bf16 must equal torch's
     round-to-nearest-even bfloat16);
  2. model.safetensors written by hand (F32, F16 and BF16 tensors),
     `weight_g`/`weight_v` spelling, and the same split into two shards with
     model.safetensors.index.json;
  3. refusals: missing, unknown and wrong-shape tensors (each named), both
     weight-norm spellings at once, an unknown model_type, a head (lm_head.*)
     refused unless --ignore'd;
  4. --init random from presets and from a config file.
Exits non-zero on any mismatch.
"""
import contextlib
import io
import json
import os
import shutil
import struct
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import convert_hf as C  # noqa: E402

FAILS = []


def expect(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        FAILS.append(what)


def tiny_config():
    return {"model_type": "hubert", "architectures": ["HubertModel"], "hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48,
            "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True,
            "conv_dim": [16, 16, 24, 24, 32, 32, 40], "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
            "conv_stride": [5, 2, 2, 2, 2, 2, 2], "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 4, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
            "torch_dtype": "float32", "transformers_version": "4.30.0"}


def tiny_tensors(cfg, seed):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(shape).astype(np.float32)
            for n, (shape, _opt) in C.hubert_names(C.full_config(cfg)).items()}


def to_hf_names(sd, prefix="hubert.", parametrizations=True):
    out = {}
    for k, v in sd.items():
        if parametrizations:
            k = k.replace("conv.weight_g", "conv.parametrizations.weight.original0")
            k = k.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        out[prefix + k] = v
    return out


def write_dir(d, cfg, files):
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name, writer in files.items():
        writer(os.path.join(d, name))


def save_torch(sd):
    return lambda p: torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, p)


def save_safetensors(sd, dtypes=None):
    """Hand-written safetensors: u64 header length, JSON header, packed data."""
    def w(p):
        header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
        for k in sorted(sd):
            dt = (dtypes or {}).get(k, "F32")
            x = np.ascontiguousarray(sd[k], dtype=np.float32)
            if dt == "F16":
                b = x.astype("<f2").tobytes()
            elif dt == "BF16":
                b = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
            else:
                b = x.astype("<f4").tobytes()
            header[k] = {"dtype": dt, "shape": list(x.shape), "data_offsets": [off, off + len(b)]}
            blobs.append(b)
            off += len(b)
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return w


def run(argv):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = C.main(argv)
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue() + out.getvalue()


def read_h5(p):
    with h5py.File(p, "r") as f:
        ts = {}
        for k, ds in f.items():
            x = ds[()]
            if ds.attrs.get("dtype") == "bfloat16":
                x = C.bf16_to_f32(x)
            ts[k] = (x, ds.dtype, ds.attrs.get("dtype"))
        return ts, dict(f.attrs)


def unmappable(p):
    """Datasets secap_weights_mmap could not use in place: chunked, filtered
    or not on a 64-byte boundary."""
    bad = []
    with h5py.File(p, "r") as f:
        for k, ds in f.items():
            pl = ds.id.get_create_plist()
            off = ds.id.get_offset()
            if pl.get_layout() != h5py.h5d.CONTIGUOUS or pl.get_nfilters() or off is None or off % 64:
                bad.append(k)
    return bad


def same_tensors(got, want, what, exact_fn=lambda x: x):
    ok = set(got) == set(want)
    if not ok:
        print("    names differ:", sorted(set(got) ^ set(want)))
    for k in want:
        if k in got and not np.array_equal(got[k][0], exact_fn(want[k])):
            print(f"    {k}: values differ")
            ok = False
    expect(ok, what)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_convert.py OUTDIR")
    top = os.path.join(sys.argv[1], "convert_tmp")
    if os.path.exists(top):
        shutil.rmtree(top)
    os.makedirs(top)
    cfg = tiny_config()
    sd = tiny_tensors(cfg, 1)
    sd["masked_spec_embed"] = np.random.default_rng(2).uniform(size=32).astype(np.float32)

    # 1. pytorch_model.bin, hubert. prefix, parametrizations spelling
    d1 = os.path.join(top, "bin")
    write_dir(d1, cfg, {"pytorch_model.bin": save_torch(to_hf_names(sd)),
                        "preprocessor_config.json": lambda p: open(p, "w").write(
                            json.dumps({"do_normalize": True, "return_attention_mask": True,
                                        "sampling_rate": 16000}))})
    out = os.path.join(top, "bin.h5")
    rc, log = run([d1, "--out", out])
    expect(rc == 0, f"convert pytorch_model.bin (rc {rc}) {log.strip()}")
    ts, attrs = read_h5(out) if rc == 0 else ({}, {"model_type": None})
    same_tensors(ts, sd, "bin: every tensor equal, names normalised")
    expect(all(v[1] == np.float32 for v in ts.values()), "bin: float32 datasets")
    expect(rc == 0 and attrs["model_type"] == "hubert" and attrs["hidden_size"] == 32
           and list(attrs["conv_dim"]) == cfg["conv_dim"] and attrs["conv_bias"] == 1
           and attrs["do_stable_layer_norm"] == 1 and attrs["feat_extract_norm"] == "layer"
           and attrs["feat_extract_activation"] == "gelu" and attrs["feat_proj_layer_norm"] == 1
           and abs(attrs["layer_norm_eps"] - 1e-5) < 1e-20 and attrs["do_normalize"] == 1
           and attrs["attention_dropout"] == 0.1 and "architectures" not in attrs
           and json.loads(attrs["config_json"]) == cfg,
           "bin: attributes (config values, HF defaults filled, preprocessor keys, config_json)")
    expect(not [p for p in os.listdir(top) if ".tmp." in p], "no temporary file left behind")
    expect(rc == 0 and not unmappable(out), "fp32: every tensor contiguous, uncompressed, 64-byte aligned")

    out16 = os.path.join(top, "bin_bf16.h5")
    rc, log = run([d1, "--out", out16, "--dtype", "bf16"])
    expect(rc == 0, "convert --dtype bf16")
    ts16, _ = read_h5(out16) if rc == 0 else ({}, {})
    expect(rc == 0 and all(v[1] == np.uint16 and v[2] == "bfloat16" for v in ts16.values()),
           "bf16: uint16 datasets tagged dtype=bfloat16")
    expect(rc == 0 and not unmappable(out16), "bf16: every tensor contiguous, uncompressed, 64-byte aligned")
    same_tensors(ts16, sd, "bf16: equals torch's round-to-nearest-even bfloat16",
                 lambda x: torch.from_numpy(x).to(torch.bfloat16).float().numpy())
    edge = np.array([1.0, 1.00390625, 1.01171875, 1.005859375, -0.0, np.inf, 3.4e38, 1e-40], np.float32)
    expect(np.array_equal(C.f32_to_bf16(edge), torch.from_numpy(edge).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)),
           "f32_to_bf16 == torch on ties, overflow and subnormals")

    # 2. safetensors by hand, weight_g/weight_v spelling, mixed dtypes; then sharded
    d2 = os.path.join(top, "st")
    dts = {"encoder.layers.0.attention.q_proj.weight": "F16",
           "encoder.layers.1.feed_forward.output_dense.weight": "BF16"}
    write_dir(d2, cfg, {"model.safetensors": save_safetensors(sd, dts)})
    out = os.path.join(top, "st.h5")
    rc, log = run([d2, "--out", out])
    expect(rc == 0, f"convert model.safetensors (rc {rc}) {log.strip()}")
    ts, _ = read_h5(out) if rc == 0 else ({}, {})
    want = dict(sd)
    want["encoder.layers.0.attention.q_proj.weight"] = sd["encoder.layers.0.attention.q_proj.weight"].astype(np.float16).astype(np.float32)
    want["encoder.layers.1.feed_forward.output_dense.weight"] = torch.from_numpy(
        sd["encoder.layers.1.feed_forward.output_dense.weight"]).to(torch.bfloat16).float().numpy()
    same_tensors(ts, want, "safetensors: every tensor equal (F32, F16, BF16 sources)")

    d3 = os.path.join(top, "sharded")
    keys = sorted(sd)
    half = {k: sd[k] for k in keys[: len(keys) // 2]}
    rest = {k: sd[k] for k in keys[len(keys) // 2:]}
    index = {"metadata": {}, "weight_map": {**{k: "model-00001-of-00002.safetensors" for k in half},
                                            **{k: "model-00002-of-00002.safetensors" for k in rest}}}
    write_dir(d3, cfg, {"model-00001-of-00002.safetensors": save_safetensors(half),
                        "model-00002-of-00002.safetensors": save_safetensors(rest),
                        "model.safetensors.index.json": lambda p: open(p, "w").write(json.dumps(index))})
    out = os.path.join(top, "sharded.h5")
    rc, log = run([d3, "--out", out])
    ts, _ = read_h5(out) if rc == 0 else ({}, {})
    same_tensors(ts, sd, "sharded safetensors with index: every tensor equal")

    # 3. refusals
    bad = dict(sd)
    del bad["encoder.layers.1.final_layer_norm.bias"]
    bad["encoder.layers.2.attention.q_proj.weight"] = np.zeros((32, 32), np.float32)
    bad["feature_projection.projection.weight"] = np.zeros((32, 39), np.float32)
    d4 = os.path.join(top, "bad")
    write_dir(d4, cfg, {"model.safetensors": save_safetensors(bad)})
    out = os.path.join(top, "bad.h5")
    rc, log = run([d4, "--out", out])
    expect(rc == 1 and "missing tensor encoder.layers.1.final_layer_norm.bias" in log
           and "unknown tensor encoder.layers.2.attention.q_proj.weight" in log
           and "tensor feature_projection.projection.weight: shape [32, 39], expected [32, 40]" in log
           and "3 problem(s)" in log and not os.path.exists(out),
           "refuses missing / unknown / wrong-shape tensors, naming each, writing nothing")
    print("    " + log.strip().replace("\n", "\n    "))

    both = to_hf_names(sd, prefix="", parametrizations=True)
    both["encoder.pos_conv_embed.conv.weight_g"] = sd["encoder.pos_conv_embed.conv.weight_g"]
    d5 = os.path.join(top, "both")
    write_dir(d5, cfg, {"pytorch_model.bin": save_torch(both)})
    rc, log = run([d5, "--out", os.path.join(top, "both.h5")])
    expect(rc == 1 and "already present" in log and "weight_g" in log, "refuses two spellings of one tensor")

    head = to_hf_names(sd)
    head["lm_head.weight"] = np.zeros((32, 32), np.float32)
    head["lm_head.bias"] = np.zeros(32, np.float32)
    d6 = os.path.join(top, "ctc")
    write_dir(d6, dict(cfg, architectures=["HubertForCTC"]), {"pytorch_model.bin": save_torch(head)})
    rc, log = run([d6, "--out", os.path.join(top, "ctc.h5")])
    expect(rc == 1 and "unknown tensor lm_head.bias" in log and "unknown tensor lm_head.weight" in log,
           "refuses a task head")
    rc, log = run([d6, "--out", os.path.join(top, "ctc.h5"), "--ignore", "lm_head.*"])
    ts, _ = read_h5(os.path.join(top, "ctc.h5")) if rc == 0 else ({}, {})
    same_tensors(ts, sd, "--ignore 'lm_head.*' drops the head")

    d7 = os.path.join(top, "bert")
    write_dir(d7, dict(cfg, model_type="whisper"), {"model.safetensors": save_safetensors(sd)})
    rc, log = run([d7, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "model_type 'whisper' is not supported" in log, "refuses an unknown model_type")
    rc, log = run([os.path.join(top, "nothing"), "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "no such file and not a preset" in log, "missing directory: clear error")
    os.makedirs(os.path.join(top, "noweights"))
    shutil.copy(os.path.join(d1, "config.json"), os.path.join(top, "noweights"))
    rc, log = run([os.path.join(top, "noweights"), "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "no model.safetensors, pytorch_model.bin" in log, "no weights: clear error")

    # non-finite values and unsafe outputs are refused before anything is written
    bad = dict(sd)
    bad["encoder.layer_norm.bias"] = sd["encoder.layer_norm.bias"].copy()
    bad["encoder.layer_norm.bias"][3] = np.nan
    d8 = os.path.join(top, "nan")
    write_dir(d8, cfg, {"model.safetensors": save_safetensors(bad)})
    rc, log = run([d8, "--out", os.path.join(top, "nan.h5")])
    expect(rc == 1 and "tensor encoder.layer_norm.bias holds nan at [3]" in log
           and not os.path.exists(os.path.join(top, "nan.h5")), "refuses NaN weights, naming tensor and element")
    notes = os.path.join(top, "notes.txt")
    with open(notes, "w") as f:
        f.write("keep me\n")
    rc, log = run([d1, "--out", notes])
    expect(rc == 1 and "exists and is not an HDF5 file (8 bytes), not a weight file" in log
           and open(notes).read() == "keep me\n", "never overwrites a file of another kind")
    rc, log = run([d1, "--out", top])
    expect(rc == 1 and "is a directory" in log, "refuses a directory as --out")
    rc, log = run([d2, "--out", os.path.join(d2, "model.safetensors")])
    expect(rc == 1 and "is the input file" in log, "never overwrites its input")
    expect(os.path.exists(os.path.join(top, "bin.h5")), "bin.h5 from step 1 exists")
    rc, log = run([d1, "--out", os.path.join(top, "bin.h5")])
    expect(rc == 0, "replaces an earlier weight file")

    # 4. random init
    for preset in ("hubert-tiny-base", "hubert-tiny-large"):
        out = os.path.join(top, preset + ".h5")
        rc, log = run(["--init", "random", "--config", preset, "--out", out, "--seed", "5"])
        ts, attrs = read_h5(out) if rc == 0 else ({}, {})
        names = C.hubert_names(C.full_config(C.PRESETS[preset]))
        ok = rc == 0 and set(ts) == set(names) and all(ts[k][0].shape == names[k][0] for k in ts)
        if ok:
            v = ts["encoder.pos_conv_embed.conv.weight_v"][0]
            g = ts["encoder.pos_conv_embed.conv.weight_g"][0]
            ok = np.allclose(g, np.sqrt((v.astype(np.float64) ** 2).sum(axis=(0, 1), keepdims=True)), rtol=1e-6)
            ok = ok and attrs["source"] == "random:seed=5"
        expect(ok, f"--init random --config {preset}: names, shapes, weight_g = |weight_v|")
    rc, _ = run(["--init", "random", "--config", os.path.join(d1, "config.json"), "--out",
                 os.path.join(top, "r1.h5"), "--seed", "7"])
    rc2, _ = run(["--init", "random", "--config", d1, "--out", os.path.join(top, "r2.h5"), "--seed", "7"])
    a, _ = read_h5(os.path.join(top, "r1.h5")) if rc == 0 else ({}, {})
    b, _ = read_h5(os.path.join(top, "r2.h5")) if rc2 == 0 else ({}, {})
    expect(rc == 0 and rc2 == 0 and a.keys() == b.keys() and all(np.array_equal(a[k][0], b[k][0]) for k in a),
           "--init random from a config file is deterministic for a seed")

    shutil.rmtree(top)
    if FAILS:
        sys.exit(f"ref_convert: {len(FAILS)} check(s) FAILED")
    print("ref_convert: ok")


if __name__ == "__main__":
    main()
