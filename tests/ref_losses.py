#!/usr/bin/python3
"""tests/ref_losses.py OUTDIR - PyTorch reference for the C stage-1 losses.

Written from the definitions (SECAP.md section 3; CLUB's variational network:
two nn.Sequential MLPs Linear -> ReLU -> Linear, the log-variance one ending
in Tanh; BLIP-2's ITC with a learnable temperature), NOT from the C code.
The bound is computed the direct way, over every pair (i, j), so the C
code's O(B E) rewriting of the inner mean is checked too.  Everything runs
in float64 from float32 values; fixtures are stored float32.

Writes OUTDIR/losses_io.h5:
  /q [B, X]  /t [B, Y]  /k [B, X]    Q-, T- and C-embeddings
  /labels [B] int32   classes with 3, 3, 1 and 1 members: rows with several
                      positives and rows with none
  /perm [B] int32     the sampled variant's permutation
  /temp [1]           the temperature (inside the clamp range)
  /temp_low [1]       a temperature below 0.001 (the C code must clamp it)
  /est/<name>         the estimator (p_mu.0.weight [Hm, X], ...)
  /w_pair, /w_class, /w_mi, /w_con  [1] weights used below
  /val/<loss> [1] and /grad/<loss>/<input or parameter> for
    U_full       d/dq                 (t stop-gradient, estimator fixed)
    U_sampled    d/dq
    L_est        d/d every estimator parameter (q, t detached)
    con_nolab    d/dq, d/dk, d/dtemp  (labels absent: CLIP / ITC, w_pair)
    con_lab      d/dq, d/dk, d/dtemp  (labels, w_pair and w_class)
    con_low      value at temp_low, which the clamp raises to 0.001
    objective    w_mi U_full + w_con con_lab: d/dq, d/dk, d/dtemp
  /step/<name>   the estimator after one AdamW step on L_est (lr 0.01,
                 betas 0.9 / 0.999, eps 1e-8, weight decay 0.01)
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

torch.set_num_threads(2)

B, X, Y, HM = 8, 6, 5, 7
LABELS = [2, 0, 2, 1, 0, 2, 0, 3]
W_PAIR, W_CLASS = 0.7, 0.4
W_MI, W_CON = 0.3, 0.8
STEP_LR, STEP_WD = 0.01, 0.01


class Estimator(nn.Module):
    def __init__(self):
        super().__init__()
        self.p_mu = nn.Sequential(nn.Linear(X, HM), nn.ReLU(), nn.Linear(HM, Y))
        self.p_logvar = nn.Sequential(nn.Linear(X, HM), nn.ReLU(), nn.Linear(HM, Y), nn.Tanh())

    def forward(self, q):
        return self.p_mu(q), self.p_logvar(q)


def bound(est, q, t, perm):
    """U of SECAP.md: positive minus negative log-likelihood terms, pairwise."""
    mu, lv = est(q)
    pos = -((mu - t) ** 2) / (2 * lv.exp())                       # [B, Y]
    if perm is None:
        diff = mu[:, None, :] - t[None, :, :]                      # [B(i), B(j), Y]
        neg = -(diff ** 2).mean(dim=1) / (2 * lv.exp())
    else:
        neg = -((mu - t[perm]) ** 2) / (2 * lv.exp())
    return (pos.sum(-1) - neg.sum(-1)).mean()


def est_loss(est, q, t):
    mu, lv = est(q)
    return ((mu - t) ** 2 / lv.exp() + lv).sum(-1).mean()


def contrastive(q, k, temp, labels, w_pair, w_class):
    with torch.no_grad():
        temp.clamp_(0.001, 0.5)
    z, n = Fn.normalize(q, dim=-1), Fn.normalize(k, dim=-1)
    s = z @ n.t() / temp

    def direction(sim):
        lp = Fn.log_softmax(sim, dim=1)
        total = 0
        for i in range(B):
            term = w_pair * lp[i, i]
            if labels is not None:
                same = [p for p in range(B) if p != i and labels[p] == labels[i]]
                if same:
                    term = term + w_class * torch.stack([lp[i, p] for p in same]).mean()
            total = total + term
        return -total / B

    return 0.5 * (direction(s) + direction(s.t()))


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)

    def rnd(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).float().double()

    est = Estimator()
    with torch.no_grad():
        for p in est.parameters():
            p.copy_(rnd(*p.shape, scale=0.5))
    sd32 = {k: v.detach().float().clone() for k, v in est.state_dict().items()}
    est = est.double()
    q0 = rnd(B, X)
    t0 = 0.8 * q0[:, :Y] + rnd(B, Y, scale=0.5)      # t depends on q
    k0 = q0 + rnd(B, X, scale=0.7)
    perm = torch.randperm(B, generator=gen)
    assert sorted(perm.tolist()) == list(range(B)) and perm.tolist() != list(range(B))
    labels = LABELS
    temp0 = 0.09

    vals, grads = {}, {}

    def leaf(x):
        return x.clone().requires_grad_(True)

    for tag, pm in (("U_full", None), ("U_sampled", perm)):
        q = leaf(q0)
        est.zero_grad()
        u = bound(est, q, t0, pm)     # t0 is no leaf: stop-gradient; C fixes the estimator
        u.backward()
        vals[tag] = u.item()
        grads[tag] = {"q": q.grad}

    est.zero_grad()
    le = est_loss(est, q0, t0)
    le.backward()
    vals["L_est"] = le.item()
    grads["L_est"] = {k: p.grad.clone() for k, p in est.named_parameters()}

    for tag, lab, wc in (("con_nolab", None, 0.0), ("con_lab", labels, W_CLASS)):
        q, k, temp = leaf(q0), leaf(k0), leaf(torch.tensor(temp0, dtype=torch.float64))
        l = contrastive(q, k, temp, lab, W_PAIR, wc)
        l.backward()
        vals[tag] = l.item()
        grads[tag] = {"q": q.grad, "k": k.grad, "temp": temp.grad.reshape(1)}

    temp_low = torch.tensor(0.0004, dtype=torch.float64)
    vals["con_low"] = contrastive(q0, k0, temp_low.clone(), labels, W_PAIR, W_CLASS).item()

    q, k, temp = leaf(q0), leaf(k0), leaf(torch.tensor(temp0, dtype=torch.float64))
    obj = W_MI * bound(est, q, t0, None) + W_CON * contrastive(q, k, temp, labels, W_PAIR, W_CLASS)
    est.zero_grad()
    obj.backward()
    vals["objective"] = obj.item()
    grads["objective"] = {"q": q.grad, "k": k.grad, "temp": temp.grad.reshape(1)}

    opt = torch.optim.AdamW(est.parameters(), lr=STEP_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=STEP_WD)
    opt.zero_grad()
    est_loss(est, q0, t0).backward()
    opt.step()
    stepped = {k: v.detach().clone() for k, v in est.state_dict().items()}

    for tag, g in grads.items():
        for name, v in g.items():
            assert v is not None and float(v.abs().max()) > 0, f"no gradient {tag}/{name}"

    path = os.path.join(outdir, "losses_io.h5")
    tmp = path + ".tmp"
    f32 = lambda x: np.asarray(x.detach().numpy() if torch.is_tensor(x) else x, dtype=np.float32)
    with h5py.File(tmp, "w") as f:
        f["q"], f["t"], f["k"] = f32(q0), f32(t0), f32(k0)
        f["labels"] = np.asarray(labels, dtype=np.int32)
        f["perm"] = perm.numpy().astype(np.int32)
        f["temp"] = np.asarray([temp0], dtype=np.float32)
        f["temp_low"] = np.asarray([temp_low.item()], dtype=np.float32)
        for name, v in (("w_pair", W_PAIR), ("w_class", W_CLASS), ("w_mi", W_MI), ("w_con", W_CON),
                        ("step_lr", STEP_LR), ("step_wd", STEP_WD)):
            f[name] = np.asarray([v], dtype=np.float32)
        for name, v in sd32.items():
            f["est/" + name] = v.numpy()
        for name, v in stepped.items():
            f["step/" + name] = f32(v)
        for tag, v in vals.items():
            f["val/" + tag] = np.asarray([v], dtype=np.float32)
        for tag, g in grads.items():
            for name, v in g.items():
                f[f"grad/{tag}/{name}"] = f32(v)
        f.attrs["dims"] = np.asarray([B, X, Y, HM], dtype=np.int32)
    os.replace(tmp, path)
    print(f"ref_losses: wrote {path} (U_full {vals['U_full']:.5g}, U_sampled {vals['U_sampled']:.5g}, "
          f"L_est {vals['L_est']:.5g}, con {vals['con_nolab']:.5g} / {vals['con_lab']:.5g})")


if __name__ == "__main__":
    main()
