#!/usr/bin/python3
"""tests/ref_convert_llama.py OUTDIR - LLaMA conversions (tools/convert_hf.py).

Sharded HF LlamaForCausalLM checkpoints written the way HF's save_pretrained
writes them (pytorch_model-0000N-of-0000M.bin or model-0000N-of-0000M.safetensors
with their *.index.json), small, with grouped-query attention and the old
rotary_emb.inv_freq buffers:
  1. fp16 .bin shards, bf16 .safetensors shards, fp32 .safetensors shards, each
     to --dtype fp32 (exactly the source values) and --dtype bf16 (torch's
     round-to-nearest-even of the source, which keeps bf16 sources bit for bit);
  2. attributes: config.json values with LlamaConfig's defaults filled in
     (num_key_value_heads = num_attention_heads, rope_theta 10000 when an old
     config lacks them), model_type, source, config_json;
  3. streaming: the converter loads one tensor, writes it, and only then
     loads the next, shard after shard (TRACE hook), and its traced peak
     memory on a 23 MB model stays below a quarter of the model;
  4. tied embeddings (no lm_head), refusals (a missing shard, a wrong shape,
     an unsupported hidden_act), --init random for llama presets.
Leaves in OUTDIR, for tests/test_convert.c: convert_llama_bf16.h5 (fp16
.bin shards -> bf16) and convert_llama_expect.h5 (torch's bf16 rounding of
the source, float32, plain h5py).
Exits non-zero on any mismatch.
"""
import json
import os
import shutil
import sys
import tracemalloc

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_convert import FAILS, expect, read_h5, run, unmappable, write_dir  # noqa: E402
import convert_hf as C  # noqa: E402

CFG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 67, "hidden_size": 32,
       "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
       "hidden_act": "silu", "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
       "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False,
       "torch_dtype": "float16", "initializer_range": 0.02}
# chinese-llama-7b-merged's config.json predates num_key_value_heads and rope_theta
OLD_CFG = {k: v for k, v in CFG.items() if k not in ("num_key_value_heads", "rope_theta")}
OLD_CFG["num_attention_heads"] = 2


def llama_tensors(cfg, seed, dtype):
    rng = np.random.default_rng(seed)
    names = C.llama_names(C.full_config(cfg))
    out = {}
    for n, (shape, opt) in names.items():
        if opt:
            continue
        x = torch.from_numpy((rng.standard_normal(shape) * 0.5).astype(np.float32)).to(dtype)
        out[n] = x
    return out


def with_buffers(sd, cfg):
    sd = dict(sd)
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        sd[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    return sd


def shard(sd, n):
    """HF's split: consecutive names in model order into n shards."""
    keys = list(sd)
    per = -(-len(keys) // n)
    return [{k: sd[k] for k in keys[i * per:(i + 1) * per]} for i in range(n)]


def save_st(part):
    from ref_convert import save_safetensors
    tags = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32"}
    return save_safetensors({k: v.float().numpy() for k, v in part.items()},
                            {k: tags[v.dtype] for k, v in part.items()})


def sharded_dir(d, cfg, sd, n, fmt):
    parts = shard(sd, n)
    files, wm = {}, {}
    for i, part in enumerate(parts):
        if fmt == "bin":
            name = f"pytorch_model-{i + 1:05d}-of-{n:05d}.bin"
            files[name] = (lambda part: lambda p: torch.save(part, p))(part)
        else:
            name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            files[name] = save_st(part)
        wm.update({k: name for k in part})
    index = "pytorch_model.bin.index.json" if fmt == "bin" else "model.safetensors.index.json"
    files[index] = lambda p: open(p, "w").write(json.dumps({"metadata": {"total_size": 0}, "weight_map": wm}))
    write_dir(d, cfg, files)
    return [f for f in files if not f.endswith(".json")]


def check_trace(trace, shard_paths, what):
    """load(x) is followed by write(x) before the next load; files in order."""
    ok, files = True, []
    for i in range(0, len(trace), 2):
        a = trace[i]
        b = trace[i + 1] if i + 1 < len(trace) else None
        if a[0] != "load" or b is None or b[0] != "write" or b[1] != a[2]:
            ok = False
            break
        if not files or files[-1] != a[1]:
            files.append(a[1])
    ok = ok and files == shard_paths
    expect(ok, f"{what}: one tensor loaded at a time, written before the next load, shard after shard "
               f"({len(trace) // 2} tensors from {len(files)} shards)")


def test_sharded(top):
    for fmt, dtype, n in (("bin", torch.float16, 3), ("st", torch.bfloat16, 2), ("st", torch.float32, 4)):
        tag = f"{fmt}_{str(dtype).split('.')[-1]}"
        sd = llama_tensors(CFG, 5, dtype)
        d = os.path.join(top, tag)
        files = sharded_dir(d, CFG, with_buffers(sd, CFG), n, fmt)
        for out_dtype in ("fp32", "bf16"):
            out = os.path.join(top, f"{tag}_{out_dtype}.h5")
            C.TRACE = []
            rc, log = run([d, "--out", out, "--dtype", out_dtype])
            trace, C.TRACE = C.TRACE, None
            expect(rc == 0, f"llama {tag} -> {out_dtype}: converts (rc {rc}) {log.strip()}")
            ts, attrs = read_h5(out) if rc == 0 else ({}, {})
            if out_dtype == "fp32":
                want = {k: v.float().numpy() for k, v in sd.items()}
                kind = np.float32
            else:
                want = {k: v.to(torch.bfloat16).float().numpy() for k, v in sd.items()}
                kind = np.uint16
            ok = set(ts) == set(want) and all(np.array_equal(ts[k][0], want[k]) for k in want)
            ok = ok and all(v[1] == kind for v in ts.values())
            expect(ok, f"llama {tag} -> {out_dtype}: every tensor "
                       + ("exactly the source value" if out_dtype == "fp32" else "torch's bf16 rounding of the source")
                       + ", inv_freq buffers dropped")
            if out_dtype == "bf16" and dtype == torch.bfloat16:
                raw = {}
                import h5py
                with h5py.File(out, "r") as f:
                    raw = {k: f[k][()] for k in f}
                expect(all(np.array_equal(raw[k], sd[k].view(torch.int16).numpy().view(np.uint16)) for k in sd),
                       "llama bf16 source -> bf16: the same bits")
            check_trace(trace, [os.path.join(d, f) for f in files], f"llama {tag} -> {out_dtype}")
            expect(rc == 0 and not unmappable(out), f"llama {tag} -> {out_dtype}: contiguous, uncompressed, aligned")
            if tag == "bin_float16" and out_dtype == "bf16" and rc == 0:
                # for tests/test_convert.c: the file and its expected values (plain h5py)
                shutil.copy(out, os.path.join(OUTDIR, "convert_llama_bf16.h5"))
                import h5py
                with h5py.File(os.path.join(OUTDIR, "convert_llama_expect.h5"), "w") as f:
                    for k, v in want.items():
                        f.create_dataset(k, data=v)
            if tag == "bin_float16" and out_dtype == "fp32":
                a = attrs
                expect(rc == 0 and a["model_type"] == "llama" and a["hidden_size"] == 32
                       and a["intermediate_size"] == 40 and a["num_hidden_layers"] == 3
                       and a["num_attention_heads"] == 4 and a["num_key_value_heads"] == 2
                       and a["rms_norm_eps"] == 1e-5 and a["rope_theta"] == 500000.0 and a["vocab_size"] == 67
                       and a["max_position_embeddings"] == 64 and a["tie_word_embeddings"] == 0
                       and a["bos_token_id"] == 1 and a["eos_token_id"] == 2 and a["pad_token_id"] == 0
                       and a["hidden_act"] == "silu" and a["source"].startswith("hf:")
                       and json.loads(a["config_json"]) == CFG and "architectures" not in a,
                       "llama: attributes (config.json values, model_type, source, config_json)")


def test_old_config_tied(top):
    cfg = dict(OLD_CFG, tie_word_embeddings=True)
    sd = llama_tensors(cfg, 6, torch.float16)
    assert "lm_head.weight" not in sd
    d = os.path.join(top, "old")
    sharded_dir(d, cfg, sd, 2, "bin")
    out = os.path.join(top, "old.h5")
    rc, log = run([d, "--out", out])
    ts, a = read_h5(out) if rc == 0 else ({}, {})
    expect(rc == 0 and a["num_key_value_heads"] == 2 and a["rope_theta"] == 10000.0
           and a["tie_word_embeddings"] == 1 and "lm_head.weight" not in ts and set(ts) == set(sd),
           f"llama: old config (no num_key_value_heads / rope_theta) gets LlamaConfig's defaults; tied, no lm_head "
           f"{log.strip()}")


def test_memory(top):
    cfg = dict(CFG, vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=8,
               num_attention_heads=8, num_key_value_heads=8)
    sd = llama_tensors(cfg, 7, torch.float16)
    total = sum(v.numel() for v in sd.values()) * 4
    biggest = max(v.numel() for v in sd.values()) * 4
    for fmt in ("bin", "st"):
        d = os.path.join(top, "mem_" + fmt)
        sharded_dir(d, cfg, sd, 3, fmt)
        del_out = os.path.join(top, f"mem_{fmt}.h5")
        tracemalloc.start()
        rc, log = run([d, "--out", del_out, "--dtype", "bf16"])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        expect(rc == 0 and peak < total / 4,
               f"llama {fmt} shards: peak traced memory {peak / 1e6:.1f} MB for a {total / 1e6:.1f} MB (float32) "
               f"model, largest tensor {biggest / 1e6:.1f} MB: streamed")


def test_refusals(top):
    sd = llama_tensors(CFG, 8, torch.float16)
    d = os.path.join(top, "missing")
    files = sharded_dir(d, CFG, sd, 3, "st")
    os.unlink(os.path.join(d, files[1]))
    rc, log = run([d, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and files[1] in log and "missing" in log, "llama: a missing shard is named")
    bad = dict(sd)
    bad["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(32, 32, dtype=torch.float16)
    d = os.path.join(top, "shape")
    sharded_dir(d, CFG, bad, 2, "bin")
    rc, log = run([d, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "tensor model.layers.1.self_attn.k_proj.weight: shape [32, 32], expected [16, 32]" in log
           and not os.path.exists(os.path.join(top, "x.h5")), "llama: a wrong GQA shape is named, nothing written")
    d = os.path.join(top, "act")
    sharded_dir(d, dict(CFG, hidden_act="gelu"), sd, 2, "bin")
    rc, log = run([d, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "hidden_act = 'gelu'" in log, "llama: hidden_act other than silu refused")
    nan = dict(sd)
    nan["model.norm.weight"] = sd["model.norm.weight"].clone()
    nan["model.norm.weight"][5] = float("inf")
    d = os.path.join(top, "inf")
    sharded_dir(d, CFG, nan, 2, "st")
    rc, log = run([d, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "tensor model.norm.weight holds inf at [5]" in log and not os.path.exists(os.path.join(top, "x.h5"))
           and not [f for f in os.listdir(top) if ".tmp." in f],
           "llama: an infinite value found half-way is refused, no output and no temporary file left")


def test_random(top):
    for preset in ("llama-tiny",):
        out = os.path.join(top, preset + ".h5")
        rc, log = run(["--init", "random", "--config", preset, "--out", out, "--seed", "4", "--dtype", "bf16"])
        ts, a = read_h5(out) if rc == 0 else ({}, {})
        cfg = C.full_config(C.PRESETS[preset])
        names = C.llama_names(cfg)
        ok = rc == 0 and set(ts) == set(names) and all(ts[k][0].shape == names[k][0] for k in ts)
        ok = ok and all(np.all(ts[k][0] == 1) for k in ts if k.endswith("norm.weight"))
        w = np.concatenate([ts[k][0].ravel() for k in ts if not k.endswith("norm.weight")]) if ok else np.zeros(1)
        ok = ok and abs(w.std() - 0.02) < 0.002 and a["num_key_value_heads"] == 2
        expect(ok, f"--init random --config {preset}: names, shapes, RMSNorm 1, N(0, 0.02) (std {w.std():.4f}), bf16")


def test_bf16_blocks():
    x = (np.random.default_rng(9).standard_normal(2_500_003) * 3).astype(np.float32).reshape(1, -1)
    x[0, 1_048_580] = np.nan
    x[0, 7] = np.inf
    got = C.f32_to_bf16(x)
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x)
    expect(got.shape == x.shape and np.array_equal(got[~nan], want[~nan]) and got[nan][0] == 0x7FC0,
           "f32_to_bf16 over several 1M-element blocks == torch (NaN in the second block stays NaN)")


OUTDIR = None


def main():
    global OUTDIR
    if len(sys.argv) != 2:
        sys.exit("usage: ref_convert_llama.py OUTDIR")
    OUTDIR = sys.argv[1]
    top = os.path.join(sys.argv[1], "convert_llama_tmp")
    if os.path.exists(top):
        shutil.rmtree(top)
    os.makedirs(top)
    test_sharded(top)
    test_old_config_tied(top)
    test_memory(top)
    test_refusals(top)
    test_random(top)
    test_bf16_blocks()
    shutil.rmtree(top)
    if FAILS:
        sys.exit(f"ref_convert_llama: {len(FAILS)} check(s) FAILED")
    print("ref_convert_llama: ok")


if __name__ == "__main__":
    main()
