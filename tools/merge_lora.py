#!/usr/bin/python3
"""tools/merge_lora.py --base BASE.h5 --adapter ADAPTER.h5 --out MERGED.h5 [--dtype fp32|bf16]

Merges a LoRA adapter (secap_llama_save_adapter's adapter_model.h5: PEFT
names, model_type "lora") into the base LLaMA weight file it was trained on:
for every adapted projection

    W' = W + (lora_alpha / r) * B @ A        (A [r, in], B [out, r])

computed in float64 and stored float32 (or bf16 with --dtype bf16; the
update is then rounded).  Every other tensor and every root attribute of the
base file is copied; the result loads as a plain LLaMA (no adapters) whose
outputs equal the base model with the adapter.  The output is written
atomically (temp file + rename) and may not replace an input or a file that
is not a weight file.  Needs python3-numpy and python3-h5py.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_hf  # noqa: E402

PREFIX = "base_model.model."


class MergeError(Exception):
    pass


def read_all(path, what):
    import h5py
    if not os.path.isfile(path):
        raise MergeError(f"{what} {path}: no such file")
    tensors, attrs = {}, {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            attrs[k] = v.decode() if isinstance(v, bytes) else v
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                raise MergeError(f"{what} {path}: {name} is a group, expected only tensors at the root")
            x = ds[()]
            if ds.attrs.get("dtype") in ("bfloat16", b"bfloat16"):
                x = convert_hf.bf16_to_f32(x)
            elif x.dtype.kind != "f":
                raise MergeError(f"{what} {path}: tensor {name} has dtype {x.dtype}, expected float32 or bfloat16")
            tensors[name] = np.asarray(x, dtype=np.float32)
    return tensors, attrs


def merge(base_path, adapter_path, out, dtype="fp32"):
    convert_hf.check_output(out, (base_path, adapter_path))
    base, battrs = read_all(base_path, "base")
    lora, lattrs = read_all(adapter_path, "adapter")
    if battrs.get("model_type") != "llama":
        raise MergeError(f"base {base_path}: model_type {battrs.get('model_type')!r}, expected 'llama'")
    if lattrs.get("model_type") != "lora" or lattrs.get("peft_type") != "LORA":
        raise MergeError(f"adapter {adapter_path}: model_type {lattrs.get('model_type')!r} / peft_type "
                         f"{lattrs.get('peft_type')!r}, expected 'lora' / 'LORA' (hint: secap_llama_save_adapter "
                         "writes adapter_model.h5)")
    r = int(lattrs["r"])
    scale = float(lattrs["lora_alpha"]) / r
    seen = set()
    for name in sorted(lora):
        if not name.endswith(".lora_A.weight"):
            if name.endswith(".lora_B.weight"):
                continue
            raise MergeError(f"adapter {adapter_path}: tensor {name} is neither a lora_A nor a lora_B weight")
        stem = name[:-len(".lora_A.weight")]
        bname = stem + ".lora_B.weight"
        if bname not in lora:
            raise MergeError(f"adapter {adapter_path}: {name} has no {bname}")
        if not stem.startswith(PREFIX):
            raise MergeError(f"adapter {adapter_path}: {name} lacks the PEFT prefix {PREFIX!r}")
        target = stem[len(PREFIX):] + ".weight"
        if target not in base:
            raise MergeError(f"adapter {adapter_path}: {name} adapts {target}, which base {base_path} does not hold "
                             "(hint: the adapter belongs to another base model)")
        A, B, W = lora[name], lora[bname], base[target]
        if A.shape != (r, W.shape[1]) or B.shape != (W.shape[0], r):
            raise MergeError(f"adapter {adapter_path}: {name} {A.shape} / {bname} {B.shape} do not fit {target} "
                             f"{W.shape} with r = {r}")
        base[target] = (W.astype(np.float64) + scale * (B.astype(np.float64) @ A.astype(np.float64))).astype(np.float32)
        seen.add(bname)
    orphans = [n for n in lora if n.endswith(".lora_B.weight") and n not in seen]
    if orphans:
        raise MergeError(f"adapter {adapter_path}: {orphans[0]} has no lora_A weight")
    attrs = dict(battrs)
    attrs["source"] = f"merge_lora: {os.path.basename(base_path)} + {os.path.basename(adapter_path)}"
    convert_hf.write_weights(out, base, {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()},
                             dtype, order=list(base))
    return len(seen)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--base", required=True)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    a = ap.parse_args(argv)
    try:
        n = merge(a.base, a.adapter, a.out, a.dtype)
    except (MergeError, convert_hf.ConvertError, KeyError) as e:
        sys.exit(f"merge_lora: {e}")
    print(f"merge_lora: merged {n} adapted projections into {a.out}")


if __name__ == "__main__":
    main()
