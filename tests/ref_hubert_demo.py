#!/usr/bin/python3
"""tests/ref_hubert_demo.py OUTDIR - HuBERT reference outputs on real speech.

The parity test's "real audio" case.  The utterance is the first item of the
demo corpus's test list (data/demo, 24 kHz, made by tools/make_demo_corpus.py)
when the corpus exists, else the same kind of speech made here with espeak-ng
and sox (Mandarin, 24 kHz 16-bit, like the corpus and SECap's test set).

Resampling happens once, with sox, to OUTDIR/hubert_demo_16k.wav (16-bit PCM
at 16 kHz), and both sides read that file: the C test through
secap_audio_load (no resampling at 16 kHz; libsndfile scales int16 by
1/32768) and this script with the `wave` module and the same scaling, so the
two resamplers (libsoxr in C, sox here) never have to agree to 1e-4.

The models are tests/ref_hubert.py's (same classes, configs, seeds and
weight randomisation), written to their own weight files so this fixture
never depends on the other script having run.

Writes to OUTDIR:
  hubert_demo_16k.wav        the utterance, 16 kHz mono 16-bit
  hubert_demo_source.txt     where it came from (one line)
  hubert_base_demo.h5, hubert_large_demo.h5   weights
  hubert_demo_io.h5          /wave [T] float32 (as read here)
                             /{base,large}/hidden_states [L+1, F, H]
                             HF output_hidden_states order (see ref_hubert.py)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave as wavmod

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_hubert  # noqa: E402
from ref_hubert import convert_hf  # noqa: E402

TOP = os.path.dirname(HERE)
SENTENCE = "今天的天气真不错，我们一起去公园散步吧。"


def demo_utterance():
    """(path of a 24 kHz wav, description) from data/demo, or None."""
    d = os.path.join(TOP, "data", "demo")
    scp, tl = os.path.join(d, "wav.scp"), os.path.join(d, "test.list")
    if not (os.path.exists(scp) and os.path.exists(tl)):
        return None
    with open(tl, encoding="utf-8") as f:
        ids = [ln.strip() for ln in f if ln.strip()]
    paths = {}
    with open(scp, encoding="utf-8") as f:
        for ln in f:
            p = ln.split()
            if len(p) >= 2:
                paths[p[0]] = p[1]
    for i in ids:
        if i in paths:
            p = paths[i] if os.path.isabs(paths[i]) else os.path.join(d, paths[i])
            if os.path.exists(p):
                return p, f"demo corpus utterance {i} ({os.path.relpath(p, TOP)})"
    return None


def synthesize(tmp):
    raw, out = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "speech24k.wav")
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin+f2", "-s", "175", "-p", "60", "-w", raw, SENTENCE],
                   check=True)
    subprocess.run(["sox", raw, "-r", "24000", "-b", "16", "-c", "1", out, "gain", "-n", "-3"], check=True)
    return out, f"espeak-ng speech (data/demo absent): {SENTENCE}"


def read_wav16(path):
    with wavmod.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return x.astype(np.float32) / 32768.0


def variant(tag, cfg, seed, x, outdir, f):
    gen = torch.Generator().manual_seed(seed)
    model = ref_hubert.HubertModel(cfg)
    ref_hubert.randomise(model, gen)
    sd = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
    names = list(convert_hf.hubert_names(cfg))
    attrs = dict(cfg, config_json="", source=f"tests/ref_hubert_demo.py seed={seed}")
    convert_hf.write_weights(os.path.join(outdir, f"hubert_{tag}_demo.h5"), sd, attrs, "fp32", order=names)
    model = model.double().eval()
    with torch.no_grad():
        last, hs, _ = model(torch.from_numpy(x).double()[None])
    F = last.shape[1]
    assert F == int(ref_hubert.frames_hf(torch.tensor(len(x))))
    f[f"{tag}/hidden_states"] = torch.stack([h[0] for h in hs]).float().numpy()
    print(f"  {tag}: {F} frames, {len(hs)} hidden states")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_hubert_demo.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        src = demo_utterance() or synthesize(tmp)
        wav16 = os.path.join(outdir, "hubert_demo_16k.wav")
        subprocess.run(["sox", src[0], "-r", "16000", "-b", "16", "-c", "1", wav16 + ".tmp.wav"], check=True)
        shutil.move(wav16 + ".tmp.wav", wav16)
    with open(os.path.join(outdir, "hubert_demo_source.txt"), "w", encoding="utf-8") as f:
        f.write(src[1] + "\n")
    x = read_wav16(wav16)
    print(f"  {src[1]}: {len(x) / 16000:.2f} s")
    io = os.path.join(outdir, "hubert_demo_io.h5")
    with h5py.File(io + ".tmp", "w") as f:
        f["wave"] = x
        variant("base", ref_hubert.BASE, 1, x, outdir, f)
        variant("large", ref_hubert.LARGE, 2, x, outdir, f)
    os.replace(io + ".tmp", io)
    print(f"ref_hubert_demo: ok ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
