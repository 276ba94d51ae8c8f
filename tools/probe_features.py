#!/usr/bin/python3
"""tools/probe_features.py - does a feature set carry the emotion class?

A linear probe (multinomial logistic regression) of the emotion class of the
demo corpus (data/demo: emotion.txt, train.list, dev.list) on utterance-level
features, trained on train and evaluated on dev:

  --cache FILE     a feature cache written by bin/secap-extract (one float32
                   dataset [frames x dim] per utterance id, "/" in ids escaped
                   as %2F, "%" as %25): pooled to [mean, std] over frames
  --acoustic       simple acoustic statistics computed here from the audio:
                   64-band log-mel (25 ms / 10 ms at 16 kHz) mean and std per
                   band, plus frame log-energy (mean, std, 10/50/90 %) and the
                   pitch track of torchaudio's detect_pitch_frequency (median,
                   spread, slope over the last 30 % of voiced frames), and the
                   duration
  (both may be given: every set is probed on its own, in the order given)

Probe: features standardised with the train mean/std, softmax regression
trained full-batch with L-BFGS, L2 penalty chosen by 5-fold cross-validation
on train only (never on dev) from 1e-4 .. 1e1; reports dev accuracy, the
train accuracy, and chance (the majority class of dev and 1 / classes).

  /usr/bin/python3 tools/probe_features.py --data data/demo \\
      --cache build/demo/features.h5 --acoustic
"""
import argparse
import os
import sys

import numpy as np
import torch


def read_map(path):
    m = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            k, _, v = line.partition(" ")
            m[k] = v.strip()
    return m


def read_list(path):
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip()]


def escape_id(i):
    return i.replace("%", "%25").replace("/", "%2F")


def cache_features(path, ids):
    import h5py
    out = []
    with h5py.File(path, "r") as f:
        for i in ids:
            name = escape_id(i)
            if name not in f:
                sys.exit(f"probe_features: {path} has no features for utterance {i} "
                         f"(hint: run bin/secap-extract --data on the same corpus)")
            x = np.asarray(f[name], dtype=np.float64)
            out.append(np.concatenate([x.mean(0), x.std(0)]))
    return np.stack(out).astype(np.float32)


def acoustic_features(data, ids):
    import torchaudio
    scp = read_map(os.path.join(data, "wav.scp"))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, win_length=400,
                                               hop_length=160, n_mels=64)
    out = []
    for i in ids:
        p = scp[i]
        if not os.path.isabs(p):
            p = os.path.join(data, p)
        wav, sr = torchaudio.load(p)
        wav = wav.mean(0, keepdim=True)
        if sr != 16000:
            wav = torchaudio.functional.resample(wav, sr, 16000)
        lm = torch.log(mel(wav)[0] + 1e-6)                           # [64, F]
        fr = wav[0, : (wav.shape[1] // 160) * 160].reshape(-1, 160)
        en = torch.log((fr ** 2).mean(1) + 1e-8)                     # [F]
        q = torch.quantile(en, torch.tensor([0.1, 0.5, 0.9]))
        f0 = torchaudio.functional.detect_pitch_frequency(wav, 16000)[0]
        voiced = f0[(f0 > 60) & (f0 < 600)]
        if voiced.numel() < 4:
            voiced = torch.full((4,), 100.0)
        lf = torch.log(voiced)
        k = max(2, int(0.3 * lf.numel()))
        tail = lf[-k:]
        slope = torch.tensor(0.0) if k < 2 else (tail[-k // 2:].mean() - tail[: k // 2].mean())
        feat = torch.cat([lm.mean(1), lm.std(1), torch.stack([en.mean(), en.std()]), q,
                          torch.stack([lf.median(), lf.std(), torch.quantile(lf, 0.9) - torch.quantile(lf, 0.1),
                                       slope, torch.tensor(wav.shape[1] / 16000.0)])])
        out.append(feat.numpy())
    return np.stack(out).astype(np.float32)


def fit(x, y, ncls, l2):
    torch.manual_seed(0)
    x = torch.from_numpy(x).double()
    y = torch.from_numpy(y)
    W = torch.zeros(x.shape[1], ncls, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(ncls, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ W + b, y) + l2 * (W ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def accuracy(W, b, x, y):
    pred = (torch.from_numpy(x).double() @ W + b).argmax(1).numpy()
    return float((pred == y).mean())


def probe(name, xtr, ytr, xdv, ydv, ncls):
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr = (xtr - mu) / sd
    xdv = (xdv - mu) / sd
    rng = np.random.default_rng(0)
    folds = rng.permutation(len(ytr)) % 5
    best = None
    for l2 in [1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1]:
        accs = []
        for k in range(5):
            tr, va = folds != k, folds == k
            W, b = fit(xtr[tr], ytr[tr], ncls, l2)
            accs.append(accuracy(W, b, xtr[va], ytr[va]))
        cv = float(np.mean(accs))
        if best is None or cv > best[1]:
            best = (l2, cv)
    W, b = fit(xtr, ytr, ncls, best[0])
    dev = accuracy(W, b, xdv, ydv)
    train = accuracy(W, b, xtr, ytr)
    print(f"{name:40s} dim {xtr.shape[1]:5d}  l2 {best[0]:g}  cv(train) {100 * best[1]:5.1f} %  "
          f"train {100 * train:5.1f} %  dev {100 * dev:5.1f} %", flush=True)
    return dev


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/demo")
    ap.add_argument("--cache", action="append", default=[], help="a feature cache (repeatable)")
    ap.add_argument("--acoustic", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.cache and not a.acoustic:
        sys.exit("probe_features: give --cache FILE and/or --acoustic")
    emo = read_map(os.path.join(a.data, "emotion.txt"))
    train = read_list(os.path.join(a.data, "train.list"))
    dev = read_list(os.path.join(a.data, "dev.list"))
    classes = sorted(set(emo.values()))
    ytr = np.array([classes.index(emo[i]) for i in train])
    ydv = np.array([classes.index(emo[i]) for i in dev])
    counts = np.bincount(ydv, minlength=len(classes))
    print(f"data {a.data}: {len(train)} train, {len(dev)} dev, {len(classes)} classes; chance: "
          f"1/{len(classes)} = {100 / len(classes):.1f} %, dev majority class {100 * counts.max() / len(ydv):.1f} %",
          flush=True)
    for c in a.cache:
        probe(f"cache {c}", cache_features(c, train), ytr, cache_features(c, dev), ydv, len(classes))
    if a.acoustic:
        probe("acoustic (log-mel, energy, pitch stats)", acoustic_features(a.data, train), ytr,
              acoustic_features(a.data, dev), ydv, len(classes))


if __name__ == "__main__":
    main()
