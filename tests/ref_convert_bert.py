#!/usr/bin/python3
"""tests/ref_convert_bert.py OUTDIR - BERT and SECap conversions (tools/convert_hf.py).

Writes small random checkpoints the way their owners save them, converts
them, checks the output in Python, and leaves in OUTDIR what
tests/test_convert.c loads with the C Q-Former:
  convert_bert_bin.h5   a BertForPreTraining state dict (torch.save, zip
                        format): `bert.` prefix, TensorFlow-era LayerNorm
                        gamma/beta spelling, position_ids buffer, pooler and
                        cls.* heads, fp16 and bf16 tensors among the fp32 ones
  convert_bert_old.h5   the same saved in torch's legacy (pre-1.6) format,
                        as bert-base-chinese's pytorch_model.bin is
  convert_bert_st.h5    the same tensors as model.safetensors, BertModel names
                        (no prefix, weight/bias spelling)
  convert_bert_expect.h5  the expected BERT tensors under the Q-Former names
                        (Qformer.bert.<BertModel name>), float32, plain h5py
  convert_secap.h5      SECap's model.ckpt layout (MotionAudio's state dict:
                        audio_Qformer.bert.*, audio_query_tokens,
                        audio_project, audio_llama_project, plus frozen
                        hubert_model.* / text2vec_model.* / llama_model.*)
  convert_secap_pl.h5   the same inside a Lightning checkpoint dict
                        ("state_dict", "model." prefix, other entries)
  convert_secap_expect.h5 the expected Q-Former tensors, float32
  qformer_tiny.h5       --init random --config qformer-tiny
Exits non-zero on any mismatch.
"""
import argparse
import json
import os
import shutil
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_convert import FAILS, expect, read_h5, run, save_safetensors, unmappable, write_dir  # noqa: E402
import convert_hf as C  # noqa: E402  (ref_convert put tools/ on the path)

BERT_CFG = {  # bert-base-chinese's config.json, small
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "directionality": "bidi", "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 32,
    "initializer_range": 0.02, "intermediate_size": 48, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 40, "model_type": "bert", "num_attention_heads": 4,
    "num_hidden_layers": 3, "pad_token_id": 0, "pooler_fc_size": 32, "pooler_num_attention_heads": 4,
    "pooler_num_fc_layers": 3, "pooler_size_per_head": 8, "pooler_type": "first_token_transform",
    "type_vocab_size": 2, "vocab_size": 99,
}
# tensors stored in reduced precision in the checkpoints
HALF = {"encoder.layer.1.attention.self.query.weight": torch.float16,
        "encoder.layer.2.intermediate.dense.weight": torch.bfloat16}


def bert_model_tensors(cfg, seed):
    """BertModel state dict (names without prefix), values already at the
    precision they are stored in."""
    rng = np.random.default_rng(seed)
    out = {}
    for n, (shape, _o) in C.bert_names(C.full_config(cfg)).items():
        t = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        out[n] = t.to(HALF[n]) if n in HALF else t
    return out


def pretraining_dict(model, cfg):
    """BertForPreTraining's spelling: bert. prefix, gamma/beta, buffers, heads."""
    sd = {}
    for n, t in model.items():
        n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        sd["bert." + n] = t
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    sd["bert.embeddings.position_ids"] = torch.arange(cfg["max_position_embeddings"]).unsqueeze(0)
    sd["cls.predictions.bias"] = torch.zeros(V)
    sd["cls.predictions.transform.dense.weight"] = torch.randn(H, H)
    sd["cls.predictions.transform.dense.bias"] = torch.zeros(H)
    sd["cls.predictions.transform.LayerNorm.gamma"] = torch.ones(H)
    sd["cls.predictions.transform.LayerNorm.beta"] = torch.zeros(H)
    sd["cls.predictions.decoder.weight"] = model["embeddings.word_embeddings.weight"]
    sd["cls.seq_relationship.weight"] = torch.randn(2, H)
    sd["cls.seq_relationship.bias"] = torch.zeros(2)
    return sd


def write_expect(path, tensors):
    with h5py.File(path, "w") as f:
        for n, t in tensors.items():
            f.create_dataset(n, data=t.float().numpy() if hasattr(t, "numpy") else np.asarray(t, np.float32))


def test_bert(outdir, top):
    model = bert_model_tensors(BERT_CFG, 11)
    want = {n: t.float().numpy() for n, t in model.items()}
    pre = pretraining_dict(model, BERT_CFG)
    variants = {
        "bin": {"pytorch_model.bin": lambda p: torch.save(pre, p)},
        "old": {"pytorch_model.bin": lambda p: torch.save(pre, p, _use_new_zipfile_serialization=False)},
        "st": {"model.safetensors": save_safetensors(
            want, {n: ("F16" if d == torch.float16 else "BF16") for n, d in HALF.items()})},
    }
    for tag, files in variants.items():
        d = os.path.join(top, "bert_" + tag)
        write_dir(d, BERT_CFG, files)
        out = os.path.join(outdir, f"convert_bert_{tag}.h5")
        rc, log = run([d, "--out", out])
        expect(rc == 0, f"bert {tag}: converts (rc {rc}) {log.strip()}")
        ts, attrs = read_h5(out) if rc == 0 else ({}, {})
        ok = set(ts) == set(want) and all(np.array_equal(ts[n][0], want[n]) for n in want)
        if not ok:
            print("    differ:", sorted(set(ts) ^ set(want)) or [n for n in want if not np.array_equal(ts[n][0], want[n])])
        expect(ok, f"bert {tag}: BertModel names, every tensor exact (fp16 / bf16 sources widened exactly), "
                   "cls.* and position_ids dropped, pooler kept")
        expect(rc == 0 and attrs["model_type"] == "bert" and attrs["hidden_size"] == 32
               and attrs["num_hidden_layers"] == 3 and attrs["type_vocab_size"] == 2
               and attrs["hidden_act"] == "gelu" and attrs["position_embedding_type"] == "absolute"
               and attrs["layer_norm_eps"] == 1e-12 and attrs["vocab_size"] == 99
               and attrs["source"].startswith("hf:") and json.loads(attrs["config_json"]) == BERT_CFG,
               f"bert {tag}: attributes (config.json values, BertConfig defaults, source, config_json)")
        expect(rc == 0 and not unmappable(out), f"bert {tag}: contiguous, uncompressed, 64-byte aligned")
        if tag == "bin":
            expect("dropped 9 tensor(s)" in log, "bert: reports the dropped heads and buffer")
    write_expect(os.path.join(outdir, "convert_bert_expect.h5"), {C.QF + n: want[n] for n in want
                                                                  if not n.startswith("pooler.")})
    # bf16 output of a bf16 source is the same bits; of an fp32 source, torch's rounding
    d = os.path.join(top, "bert_bin")
    out = os.path.join(top, "bert_bf16.h5")
    rc, _ = run([d, "--out", out, "--dtype", "bf16"])
    ts, _ = read_h5(out) if rc == 0 else ({}, {})
    ok = rc == 0 and all(np.array_equal(ts[n][0], torch.from_numpy(want[n]).to(torch.bfloat16).float().numpy())
                         for n in want)
    expect(ok, "bert --dtype bf16: torch's round-to-nearest-even of every tensor")
    # a wrong config is refused naming the tensors
    d = os.path.join(top, "bert_bad")
    write_dir(d, dict(BERT_CFG, num_hidden_layers=2, intermediate_size=40),
              {"pytorch_model.bin": lambda p: torch.save(pre, p)})
    rc, log = run([d, "--out", os.path.join(top, "bad.h5")])
    expect(rc == 1 and "unknown tensor encoder.layer.2.attention.self.query.weight" in log
           and "tensor encoder.layer.0.intermediate.dense.weight: shape [48, 32], expected [40, 32]" in log,
           "bert: a config that does not match is refused, naming tensors")
    d = os.path.join(top, "bert_act")
    write_dir(d, dict(BERT_CFG, hidden_act="relu"), {"pytorch_model.bin": lambda p: torch.save(pre, p)})
    rc, log = run([d, "--out", os.path.join(top, "bad.h5")])
    expect(rc == 1 and "hidden_act = 'relu'" in log, "bert: hidden_act other than gelu refused")


# SECap (thuhcsi/SECap model2.py): MotionAudio.init_Qformer builds LAVIS's
# BertLMHeadModel from bert-base-chinese with cross-attention every 2 layers,
# 32 queries; then deletes cls, word/position embeddings and every layer's
# intermediate/output.  The test uses the same layout at small sizes.
SECAP_CFG = {"model_type": "qformer", "num_attention_heads": 4, "vocab_size": 99,
             "max_position_embeddings": 40}


def secap_tensors(seed, H=32, L=3, I=48, Q=5, W=24, A=20, D=40, freq=2):
    rng = np.random.default_rng(seed)
    r = lambda *s: torch.from_numpy(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    sd = {"hubert_model.feature_projection.projection.weight": r(A, 8),
          "text2vec_model.embeddings.word_embeddings.weight": r(7, 6),
          "llama_model.model.embed_tokens.weight": r(9, D).half(),
          "audio_Qformer.bert.embeddings.position_ids": torch.arange(40).unsqueeze(0),
          "audio_Qformer.bert.embeddings.LayerNorm.weight": r(H),
          "audio_Qformer.bert.embeddings.LayerNorm.bias": r(H)}
    for i in range(L):
        p = f"audio_Qformer.bert.encoder.layer.{i}."
        for kind in ["attention"] + (["crossattention"] if i % freq == 0 else []):
            kv = W if kind == "crossattention" else H
            sd[p + kind + ".self.query.weight"] = r(H, H)
            sd[p + kind + ".self.query.bias"] = r(H)
            for k in ("key", "value"):
                sd[p + f"{kind}.self.{k}.weight"] = r(H, kv)
                sd[p + f"{kind}.self.{k}.bias"] = r(H)
            sd[p + kind + ".output.dense.weight"] = r(H, H)
            sd[p + kind + ".output.dense.bias"] = r(H)
            sd[p + kind + ".output.LayerNorm.weight"] = r(H)
            sd[p + kind + ".output.LayerNorm.bias"] = r(H)
        sd[p + "intermediate_query.dense.weight"] = r(I, H)
        sd[p + "intermediate_query.dense.bias"] = r(I)
        sd[p + "output_query.dense.weight"] = r(H, I)
        sd[p + "output_query.dense.bias"] = r(H)
        sd[p + "output_query.LayerNorm.weight"] = r(H)
        sd[p + "output_query.LayerNorm.bias"] = r(H)
    sd["audio_query_tokens"] = r(1, Q, H)
    sd["audio_project.weight"] = r(W, A)
    sd["audio_project.bias"] = r(W)
    sd["audio_llama_project.weight"] = r(D, H)
    sd["audio_llama_project.bias"] = r(D)
    return sd


def secap_expected(sd):
    out = {}
    for k, t in sd.items():
        if k.startswith(("hubert_model.", "text2vec_model.", "llama_model.")) or k.endswith("position_ids"):
            continue
        n = k.replace("audio_Qformer.bert.", C.QF).replace("audio_query_tokens", "query_tokens")
        out[n] = t.float().numpy()
    return out


def test_secap(outdir, top):
    sd = secap_tensors(21)
    want = secap_expected(sd)
    cfgp = os.path.join(top, "secap_qformer.json")
    os.makedirs(top, exist_ok=True)
    with open(cfgp, "w") as f:
        json.dump(SECAP_CFG, f)
    plain = os.path.join(top, "model.ckpt")
    torch.save(sd, plain)
    pl = os.path.join(top, "lightning.ckpt")
    torch.save({"epoch": 7, "global_step": 1234, "pytorch-lightning_version": "2.0.2",
                # nn.Parameter values, as a module's parameters pickle
                "state_dict": {"model." + k: (torch.nn.Parameter(v, requires_grad=False) if v.is_floating_point() else v)
                               for k, v in sd.items()},
                "hyper_parameters": argparse.Namespace(lr=1e-4),
                "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}]},
               pl)
    for tag, ck in (("", plain), ("_pl", pl)):
        out = os.path.join(outdir, f"convert_secap{tag}.h5")
        C.TRACE = []
        rc, log = run(["--secap", ck, "--config", cfgp, "--out", out])
        loaded, C.TRACE = [e[2] for e in C.TRACE if e[0] == "load"], None
        expect(sorted(loaded) == sorted(want), f"secap{tag}: only the bridge's tensors are read from the checkpoint "
                                               "(the frozen HuBERT / text2vec / LLaMA data never is)")
        expect(rc == 0, f"secap{tag}: converts (rc {rc}) {log.strip()}")
        ts, attrs = read_h5(out) if rc == 0 else ({}, {})
        ok = set(ts) == set(want) and all(np.array_equal(ts[n][0], want[n]) for n in want)
        if not ok:
            print("    differ:", sorted(set(ts) ^ set(want)))
        expect(ok, f"secap{tag}: Q-Former names (Qformer.bert.*, query_tokens, projections), every tensor exact, "
                   "frozen parts and position_ids left out")
        expect(rc == 0 and attrs["model_type"] == "qformer" and attrs["text_mode"] == 0
               and attrs["type_vocab_size"] == 0 and attrs["embed_dim"] == 0 and attrs["hidden_size"] == 32
               and attrs["num_hidden_layers"] == 3 and attrs["intermediate_size"] == 48
               and attrs["num_query_tokens"] == 5 and attrs["cross_attention_freq"] == 2
               and attrs["encoder_width"] == 24 and attrs["audio_width"] == 20 and attrs["llm_width"] == 40
               and attrs["num_attention_heads"] == 4 and attrs["source"].startswith("secap:")
               and "left out 3 frozen tensor(s)" in log,
               f"secap{tag}: attributes read off the tensors (text_mode 0, no token types, no embed heads)")
    write_expect(os.path.join(outdir, "convert_secap_expect.h5"), want)
    # the default config (bert-base-chinese's 12 heads) cannot split H = 32
    rc, log = run(["--secap", plain, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "num_attention_heads 12" in log, "secap: heads come from --config; a bad split is refused")
    bad = dict(sd)
    del bad["audio_Qformer.bert.encoder.layer.1.output_query.dense.bias"]
    bad["audio_Qformer.bert.encoder.layer.1.crossattention.self.query.weight"] = torch.zeros(32, 32)
    torch.save(bad, os.path.join(top, "bad.ckpt"))
    rc, log = run(["--secap", os.path.join(top, "bad.ckpt"), "--config", cfgp, "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "missing tensor Qformer.bert.encoder.layer.1.output_query.dense.bias" in log
           and "unknown tensor Qformer.bert.encoder.layer.1.crossattention.self.query.weight" in log
           and not os.path.exists(os.path.join(top, "x.h5")),
           "secap: missing / unknown tensors refused, naming each, nothing written")
    torch.save({"foo.weight": torch.zeros(2)}, os.path.join(top, "other.ckpt"))
    rc, log = run(["--secap", os.path.join(top, "other.ckpt"), "--out", os.path.join(top, "x.h5")])
    expect(rc == 1 and "not SECap's checkpoint" in log, "secap: another checkpoint is refused")
    rc, log = run(["--secap", plain, "--config", cfgp, "--out", plain])
    expect(rc == 1 and "is the input file" in log, "secap: never overwrites its input")


def test_random(outdir, top):
    for preset in ("qformer-tiny", "bert-tiny"):
        # the Q-Former one is left for tests/test_convert.c
        out = os.path.join(outdir if preset == "qformer-tiny" else top, preset.replace("-", "_") + ".h5")
        rc, log = run(["--init", "random", "--config", preset, "--out", out, "--seed", "3"])
        ts, attrs = read_h5(out) if rc == 0 else ({}, {})
        cfg = C.full_config(C.PRESETS[preset])
        names = C.MODELS[cfg["model_type"]]["names"](cfg)
        ok = rc == 0 and set(ts) == set(names) and all(ts[n][0].shape == names[n][0] for n in ts)
        ok = ok and all(np.all(ts[n][0] == 1) for n in ts if "LayerNorm.weight" in n)
        ok = ok and all(np.all(ts[n][0] == 0) for n in ts if n.endswith("bias"))
        big = [ts[n][0] for n in ts if n.endswith("weight") and "LayerNorm" not in n or n == "query_tokens"]
        allw = np.concatenate([x.ravel() for x in big]) if big else np.zeros(1)
        ok = ok and abs(allw.std() - 0.02) < 0.002 and abs(allw.mean()) < 0.002
        expect(ok, f"--init random --config {preset}: every name and shape, LayerNorm 1/0, biases 0, "
                   f"weights N(0, 0.02) (std {allw.std():.4f})")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_convert_bert.py OUTDIR")
    outdir = sys.argv[1]
    top = os.path.join(outdir, "convert_bert_tmp")
    if os.path.exists(top):
        shutil.rmtree(top)
    os.makedirs(top)
    test_bert(outdir, top)
    test_secap(outdir, top)
    test_random(outdir, top)
    shutil.rmtree(top)
    if FAILS:
        sys.exit(f"ref_convert_bert: {len(FAILS)} check(s) FAILED")
    print("ref_convert_bert: ok")


if __name__ == "__main__":
    main()
