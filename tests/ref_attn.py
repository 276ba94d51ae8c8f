#!/usr/bin/python3
"""tests/ref_attn.py OUTDIR - PyTorch reference for grouped-query attention,
cache (offset) attention and per-row rotary embedding (tests/test_attn_parity.c).

Attention goes through PyTorch's scaled-dot-product attention
(torch.nn.functional.scaled_dot_product_attention, or the private
_scaled_dot_product_attention of torch 1.13, which has no `scale` argument:
there q is pre-multiplied by scale * sqrt(d)) with an explicit boolean mask
(True = the key takes part):
    visible[b, i, j] = j < key_len[b]  and  (not causal or j <= p_i),
    p_i = q_pos[b] + i   (Tk - Tq + i when the case has no q_pos).
Keys and values are repeat_interleave'd from G to H heads for the reference
only (query head h reads kv head h // (H/G), HF repeat_kv order); the C op
reads them in place.  A query row with no visible key must give zeros: the
reference unmasks its row for the call and multiplies the output by 0, so
such rows also pass no gradient.  Gradients come from autograd with a
random output gradient dout.  Each case is checked inside this script
against the same math in float64 (explicit softmax) before it is written.

RoPE is the Hugging Face LLaMA formula in float32:
    inv_freq = 1 / theta^(arange(0, d, 2) / d),  angle = pos * inv_freq,
    emb = cat(angle, angle),  y = x * cos(emb) + rotate_half(x) * sin(emb),
with positions per row and step [B, T].

Writes OUTDIR/attn_parity.h5, float32 datasets named "<case>.<what>":
  attention cases (gqa_causal_pad, gqa_cross_scale, mqa, cache_offset,
  cache_decode):
    .config   [4]  heads, kv_heads, causal, scale
    .key_len  [B]  (absent: every key valid)
    .q_pos    [B]  (absent: Tk - Tq)
    .q [B, Tq, H*d]   .k .v [B, Tk, G*d]   .dout [B, Tq, H*d]
    .out [B, Tq, H*d] .dq .dk .dv          (gradients of sum(out * dout))
  rope cases (rope_rows, rope_theta5e5):
    .config [2] heads, theta    .pos [B, T]   .x .dout .out .dx [B, T, H*d]
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def sdpa(q, k, v, mask, scale):
    """q [B, H, Tq, d], k, v [B, H, Tk, d], mask [B, 1, Tq, Tk] bool."""
    d = q.shape[-1]
    if hasattr(F, "scaled_dot_product_attention"):
        try:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        except TypeError:  # torch 2.0: no scale argument
            return F.scaled_dot_product_attention(q * (scale * d ** 0.5), k, v, attn_mask=mask)
    out, _ = F._scaled_dot_product_attention(q * (scale * d ** 0.5), k, v, mask, 0.0, False, False)
    return out


def visible_mask(B, Tq, Tk, key_len, q_pos, causal):
    j = torch.arange(Tk)[None, None, :]
    kl = torch.tensor(key_len if key_len is not None else [Tk] * B)[:, None, None]
    vis = (j < kl).expand(B, Tq, Tk)
    if causal:
        p0 = torch.tensor(q_pos if q_pos is not None else [Tk - Tq] * B)[:, None, None]
        p = p0 + torch.arange(Tq)[None, :, None]
        vis = vis & (j <= p)
    return vis  # [B, Tq, Tk]


def attention_case(g, name, B, Tq, Tk, H, G, d, causal, scale=None, key_len=None, q_pos=None):
    scale = 1.0 / d ** 0.5 if scale is None else scale
    q = torch.randn(B, Tq, H * d, generator=g)
    k = torch.randn(B, Tk, G * d, generator=g)
    v = torch.randn(B, Tk, G * d, generator=g)
    dout = torch.randn(B, Tq, H * d, generator=g)
    vis = visible_mask(B, Tq, Tk, key_len, q_pos, causal)
    any_vis = vis.any(-1)                         # [B, Tq]
    call_mask = vis | ~any_vis[..., None]         # empty rows unmasked for the call ...
    r = H // G

    def run(q, k, v, dtype):
        qh = q.to(dtype).view(B, Tq, H, d).transpose(1, 2)
        kh = k.to(dtype).view(B, Tk, G, d).transpose(1, 2).repeat_interleave(r, dim=1)
        vh = v.to(dtype).view(B, Tk, G, d).transpose(1, 2).repeat_interleave(r, dim=1)
        if dtype == torch.float32:
            o = sdpa(qh, kh, vh, call_mask[:, None], scale)
        else:  # float64 explicit softmax, the cross-check
            s = (qh @ kh.transpose(-1, -2)) * scale
            s = s.masked_fill(~call_mask[:, None], float("-inf"))
            o = s.softmax(-1) @ vh
        o = o * any_vis[:, None, :, None].to(dtype)   # ... and zeroed after
        return o.transpose(1, 2).reshape(B, Tq, H * d)

    res = {}
    for dtype in (torch.float32, torch.float64):
        qq, kk, vv = (t.clone().to(dtype).requires_grad_(True) for t in (q, k, v))
        o = run(qq, kk, vv, dtype)
        (o * dout.to(dtype)).sum().backward()
        res[dtype] = (o.detach(), qq.grad, kk.grad, vv.grad)
    for a, b, what in zip(res[torch.float32], res[torch.float64], ("out", "dq", "dk", "dv")):
        err = (a.double() - b).abs().max().item()
        assert err < 1e-4, f"{name}.{what}: float32 SDPA differs from float64 by {err}"
    out, dq, dk, dv = res[torch.float32]
    cfg = np.array([H, G, int(causal), scale], dtype=np.float32)
    data = dict(config=cfg, q=q, k=k, v=v, dout=dout, out=out, dq=dq, dk=dk, dv=dv)
    if key_len is not None:
        data["key_len"] = np.array(key_len, dtype=np.float32)
    if q_pos is not None:
        data["q_pos"] = np.array(q_pos, dtype=np.float32)
    for key, val in data.items():
        g_out[f"{name}.{key}"] = np.asarray(val.numpy() if torch.is_tensor(val) else val, dtype=np.float32)
    print(f"  {name}: B={B} Tq={Tq} Tk={Tk} heads={H}/{G} d={d} causal={int(causal)} "
          f"visible rows {int(any_vis.sum())}/{B * Tq}")


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_case(g, name, B, T, H, d, pos, theta):
    x = torch.randn(B, T, H * d, generator=g)
    dout = torch.randn(B, T, H * d, generator=g)
    pos = torch.tensor(pos, dtype=torch.int64).view(B, T)
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = pos[:, :, None].float() * inv_freq[None, None, :]       # [B, T, d/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]                # [B, 1, T, d]
    xx = x.clone().requires_grad_(True)
    xh = xx.view(B, T, H, d).transpose(1, 2)
    y = (xh * cos + rotate_half(xh) * sin).transpose(1, 2).reshape(B, T, H * d)
    (y * dout).sum().backward()
    data = dict(config=np.array([H, theta], dtype=np.float32), pos=pos.float(), x=x, dout=dout,
                out=y.detach(), dx=xx.grad)
    for key, val in data.items():
        g_out[f"{name}.{key}"] = np.asarray(val.numpy() if torch.is_tensor(val) else val, dtype=np.float32)
    print(f"  {name}: B={B} T={T} heads={H} d={d} theta={theta:g} positions {int(pos.min())}..{int(pos.max())}")


g_out = {}


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "build/ref"
    os.makedirs(outdir, exist_ok=True)
    g = torch.Generator().manual_seed(20240508)
    attention_case(g, "gqa_causal_pad", B=2, Tq=7, Tk=7, H=8, G=2, d=16, causal=True, key_len=[7, 4])
    attention_case(g, "gqa_cross_scale", B=2, Tq=5, Tk=9, H=6, G=3, d=8, causal=False, scale=0.3,
                   key_len=[9, 3])
    attention_case(g, "mqa", B=2, Tq=6, Tk=6, H=4, G=1, d=16, causal=True)
    # new queries against a [B, Tmax=12] cache: rows at positions 5.., 0.. and
    # one with no valid key (zeros, no gradient)
    attention_case(g, "cache_offset", B=3, Tq=4, Tk=12, H=8, G=2, d=16, causal=True,
                   key_len=[9, 4, 0], q_pos=[5, 0, 2])
    attention_case(g, "cache_decode", B=3, Tq=1, Tk=10, H=8, G=4, d=16, causal=True,
                   key_len=[10, 3, 7], q_pos=[9, 2, 6])
    # a row from 0, one at an offset, a left-padded row (HF puts padding at
    # position 1), a beam far along
    rope_case(g, "rope_rows", B=4, T=5, H=4, d=16,
              pos=[0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 1, 1, 0, 1, 2, 1000, 1001, 1002, 1003, 1004], theta=10000.0)
    rope_case(g, "rope_theta5e5", B=2, T=3, H=2, d=64, pos=[3, 4, 5, 250, 251, 252], theta=500000.0)
    path = os.path.join(outdir, "attn_parity.h5")
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["source"] = f"tests/ref_attn.py torch {torch.__version__}"
        for key, val in g_out.items():
            f[key] = val
    os.replace(tmp, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
