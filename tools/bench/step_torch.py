#!/usr/bin/python3
"""PyTorch reference for bench_step: one whole caption-stage training step at
the mid-size configuration, features not cached, the same shapes, order and
threads as tools/bench/bench_step.c (see its header):

  B 4 clips of 4 s; torchaudio's HuBERT-base (random weights, eval mode,
  frozen: forward under no_grad inside the step); the Q-Former of
  tests/ref_qformer.py (bert-base: 12 layers, H 768, I 3072, 32 queries,
  cross-attention every 2 layers, audio_project 768 -> 768,
  audio_llama_project 768 -> 768, hidden dropout 0.1 as in
  tools/bench/stage1_torch.py), trainable; the LLaMA of
  tools/bench/caption_torch.py (110M shape, frozen float32 base, PEFT LoRA r 8
  on q_proj, v_proj); [BOS] [32 audio vectors] [15 prompt] [31 caption] [EOS];
  mean cross entropy over caption + EOS; backward; one AdamW (lr 1e-4,
  weight decay 0.05 except biases and LayerNorms) over the Q-Former and the
  LoRA tensors.  The Q-Former's text-side tensors (word embeddings, text_proj)
  get zero gradients so AdamW updates the same tensors as the C step (the C
  optimizer holds the trainer's whole Q-Former tables).

  /usr/bin/python3 tools/bench/step_torch.py [--steps N] [--warmup N] [--threads N]
Prints each step, the phase medians and "RESULT bench=step ms=..."
(tools/bench/run.py).
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as Fn
import torchaudio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import caption_torch  # noqa: E402
import stage1_torch  # noqa: E402  (also adds hidden dropout to ref_qformer's layers)

B, NSAMP = 4, 64000
caption_torch.B = B          # the LLaMA reference reads its batch size from the module
PHASES = ["hubert fwd", "qformer fwd", "llama fwd", "loss", "backward", "adamw step"]
P_DROP = stage1_torch.P_DROP


def speechlike(n, seed):
    import math
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / 16000
    f = 140.0 * (1 + 0.25 * torch.sin(2 * math.pi * 1.3 * t)) + 30 * t
    phase = 2 * math.pi * torch.cumsum(f, 0) / 16000
    x = sum(torch.sin(h * phase + h) / h for h in range(1, 11))
    env = 0.5 + 0.5 * torch.sin(2 * math.pi * 3.0 * t) ** 2
    return (0.2 * x * env + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)).float()


def build():
    torch.manual_seed(0)
    hub = torchaudio.models.hubert_base().eval()
    for p in hub.parameters():
        p.requires_grad_(False)
    cfg = dict(stage1_torch.CFG, audio_width=768, encoder_width=768, llm_width=768)
    qf = stage1_torch.Stage1(cfg)
    with torch.no_grad():
        for name, p in qf.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0, 0.02)
            p.grad = torch.zeros_like(p)
    qf.train()
    gen = torch.Generator().manual_seed(7)
    llm = caption_torch.Model(torch.float32, gen)
    data = caption_torch.make_data(gen)
    data["wave"] = torch.stack([speechlike(NSAMP, 7 + b) for b in range(B)])
    qnames = list(qf.named_parameters())
    nodecay = [p for n, p in qnames if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in qnames if not (n.endswith("bias") or "LayerNorm" in n)] + llm.params
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=nodecay, weight_decay=0.0)],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    ntrain = sum(p.numel() for p in qf.parameters()) + sum(p.numel() for p in llm.params)
    return hub, qf, llm, opt, data, ntrain


def query(qf, a):
    bert = qf.Qformer.bert
    x = Fn.dropout(bert.embeddings.LayerNorm(qf.query_tokens.expand(a.shape[0], -1, -1)), P_DROP, qf.training)
    ap = qf.audio_project(a)
    amask = torch.ones(a.shape[0], a.shape[1])
    for layer in bert.encoder.layer:
        x = layer.forward_query(x, ap, amask)
    return qf.audio_llama_project(x)


def step(hub, qf, llm, opt, d):
    t = [time.perf_counter()]
    with torch.no_grad():
        a, _ = hub(d["wave"])
    t.append(time.perf_counter())
    audio = query(qf, a)
    t.append(time.perf_counter())
    e = llm.emb[d["ids"]]
    x = torch.cat((e[:, :1], audio, e[:, 1:]), 1)
    logits = llm.forward(x, d["lens"])
    t.append(time.perf_counter())
    loss = Fn.cross_entropy(logits.reshape(-1, caption_torch.V), d["targets"].reshape(-1), ignore_index=-100)
    t.append(time.perf_counter())
    opt.zero_grad(set_to_none=False)
    loss.backward()
    t.append(time.perf_counter())
    opt.step()
    t.append(time.perf_counter())
    return [(t[i + 1] - t[i]) * 1e3 for i in range(len(PHASES))], float(loss), a.shape[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SECAP_THREADS", "0") or 0) or 2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    hub, qf, llm, opt, d, ntrain = build()
    print(f"torch {torch.__version__} / torchaudio {torchaudio.__version__}, {a.threads} threads, {ntrain} "
          f"trainable, models ready in {time.perf_counter() - t0:.1f} s", flush=True)
    tot, ph = [], [[] for _ in PHASES]
    for it in range(a.warmup + a.steps):
        p, lv, frames = step(hub, qf, llm, opt, d)
        print(f"  torch {'warm-up' if it < a.warmup else 'step'} {it + 1 if it < a.warmup else it - a.warmup + 1}: "
              f"{sum(p):.1f} ms  (loss {lv:.4f}, {frames} frames)", flush=True)
        if it >= a.warmup:
            tot.append(sum(p))
            for i, v in enumerate(p):
                ph[i].append(v)
    for n, v in zip(PHASES, ph):
        print(f"  phase {n:12s} median {statistics.median(v):8.1f} ms")
    med = statistics.median(tot)
    print(f"median {med:.1f} ms/step")
    print(f"RESULT bench=step ms={med:.1f} hubert_ms={statistics.median(ph[0]):.1f}")


if __name__ == "__main__":
    main()
