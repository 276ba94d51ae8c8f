#!/usr/bin/python3
"""tests/ref_generate.py OUTDIR - PyTorch reference for the C text generation.

Greedy decoding and beam search written from the definitions of Hugging
Face's `generate` (transformers 4.3x: GenerationMixin._greedy_search /
_beam_search, BeamSearchScorer.process / finalize, BeamHypotheses.add /
is_done, RepetitionPenaltyLogitsProcessor, NoRepeatNGramLogitsProcessor,
MinNewTokensLengthLogitsProcessor), in plain torch (Debian has no
transformers) on the LLaMA of tests/ref_llama.py, every step a full
recomputation of the sequence in float64 (no cache).

Writes to OUTDIR:
  gen_llama.h5   random LLaMA (GQA, untied), config as root attributes; the
                 EOS row of lm_head is scaled up so EOS wins now and then
  gen_cases.h5   one group per case: attributes num_beams, max_new_tokens,
                 min_new_tokens, repetition_penalty, no_repeat_ngram_size,
                 length_penalty, early_stopping (0 false, 1 true, 2 never),
                 num_return_sequences; /prompts [P, Lmax] + /prompt_len [P]
                 (int32, each row starts with BOS); /ids [P * K, max_new]
                 (-1 padded), /len, /eos, /score [P * K] the reference's
                 sequences, best first.

Prompts are drawn until each case has 4 whose decisions are clear: at every
step the scores that decide (the top-1 vs top-2 for greedy, the 2W + 1 best
candidates for beams) are at least 1e-4 apart, so float32 rounding in C
cannot flip a choice.
"""
import math
import os
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import convert_hf  # noqa: E402
import ref_llama  # noqa: E402

torch.set_num_threads(2)
MARGIN = 1e-4
CFG = dict(vocab_size=83, hidden_size=32, intermediate_size=44, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)


class Unclear(Exception):
    pass


def last_logits(W, ids):
    x = W["model.embed_tokens.weight"][ids][None]
    return ref_llama.forward(CFG, None, W, None, x, [len(ids)])[0, -1]


def process(scores, seq, ng, o):
    """HF's processors, in its order, on a float64 [V] score vector."""
    s = scores.clone()
    if o["repetition_penalty"] != 1.0:
        idx = torch.tensor(sorted(set(seq)), dtype=torch.long)
        g = s[idx]
        s[idx] = torch.where(g < 0, g * o["repetition_penalty"], g / o["repetition_penalty"])
    n = o["no_repeat_ngram_size"]
    if n > 0 and len(seq) + 1 >= n:
        grams = {}
        for i in range(len(seq) - n + 1):
            grams.setdefault(tuple(seq[i:i + n - 1]), []).append(seq[i + n - 1])
        for t in grams.get(tuple(seq[len(seq) - n + 1:]), []):
            s[t] = -math.inf
    if ng < o["min_new_tokens"]:
        s[CFG["eos_token_id"]] = -math.inf
    return s


def greedy(W, prompt, o):
    seq, out, score = list(prompt), [], 0.0
    eos = 0
    for step in range(o["max_new_tokens"]):
        lg = last_logits(W, seq)
        s = process(lg, seq, step, o)
        top = torch.topk(s, 2).values
        if float(top[0] - top[1]) < MARGIN:
            raise Unclear
        t = int(torch.argmax(s))
        score += float(torch.log_softmax(lg, -1)[t])
        if t == CFG["eos_token_id"]:
            eos = 1
            break
        seq.append(t)
        out.append(t)
    return [(out, score, eos)]


class Hyps:
    def __init__(self, nb, lp, early, max_new):
        self.nb, self.lp, self.early, self.max_new = nb, lp, early, max_new
        self.beams, self.worst = [], 1e9

    def add(self, toks, sum_lp, gen_len, eos):
        score = sum_lp / (gen_len ** self.lp)
        if len(self.beams) < self.nb or score > self.worst:
            self.beams.append((score, toks, eos))
            if len(self.beams) > self.nb:
                srt = sorted([(s, i) for i, (s, _, _) in enumerate(self.beams)])
                del self.beams[srt[0][1]]
                self.worst = srt[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best, cur_len):
        if len(self.beams) < self.nb:
            return False
        if self.early == 1:
            return True
        if self.early == 2 and self.lp > 0:
            high = best / (self.max_new ** self.lp)
        else:
            high = best / (cur_len ** self.lp)
        return self.worst >= high


def beam_search(W, prompt, o):
    nb, V, eos = o["num_beams"], CFG["vocab_size"], CFG["eos_token_id"]
    beams = [list(prompt) for _ in range(nb)]
    bscore = torch.tensor([0.0] + [-1e9] * (nb - 1), dtype=torch.float64)
    hyps = Hyps(nb, o["length_penalty"], o["early_stopping"], o["max_new_tokens"])
    P, done = len(prompt), False
    for step in range(o["max_new_tokens"]):
        rows = []
        for j in range(nb):
            lg = last_logits(W, beams[j])
            rows.append(process(torch.log_softmax(lg, -1), beams[j], step, o) + bscore[j])
        flat = torch.stack(rows).reshape(-1)
        vals, idx = torch.topk(flat, 2 * nb + 1)
        gaps = (vals[:-1] - vals[1:]).abs()
        if float(gaps.min()) < MARGIN:
            raise Unclear
        vals, idx = vals[:2 * nb], idx[:2 * nb]
        nxt, nscore = [], []
        for rank, (v, f) in enumerate(zip(vals.tolist(), idx.tolist())):
            j, t = f // V, f % V
            if t == eos:
                if rank >= nb:
                    continue
                hyps.add(beams[j][P:], v, step + 1, 1)
            else:
                nxt.append(beams[j] + [t])
                nscore.append(v)
            if len(nxt) == nb:
                break
        done = hyps.is_done(float(vals[0]), step + 1)
        beams, bscore = nxt, torch.tensor(nscore, dtype=torch.float64)
        if done:
            break
    if not done:
        for j in range(nb):
            hyps.add(beams[j][P:], float(bscore[j]), len(beams[j]) - P, 0)
    srt = sorted(hyps.beams, key=lambda h: h[0])
    out = []
    for _ in range(o["num_return_sequences"]):
        s, toks, e = srt.pop()
        out.append((toks, s, e))
    return out


def base_opts(**kw):
    o = dict(num_beams=1, max_new_tokens=12, min_new_tokens=0, repetition_penalty=1.0, no_repeat_ngram_size=0,
             length_penalty=1.0, early_stopping=0, num_return_sequences=1)
    o.update(kw)
    return o


CASES = {
    "greedy": base_opts(max_new_tokens=16),
    "greedy_penalties": base_opts(max_new_tokens=14, repetition_penalty=1.6, no_repeat_ngram_size=2,
                                  min_new_tokens=4),
    "beam3": base_opts(num_beams=3, max_new_tokens=12, num_return_sequences=2),
    "beam4_early": base_opts(num_beams=4, max_new_tokens=10, early_stopping=1, length_penalty=0.5),
    "beam3_never": base_opts(num_beams=3, max_new_tokens=10, early_stopping=2, length_penalty=1.3,
                             repetition_penalty=1.4, no_repeat_ngram_size=2, min_new_tokens=3, num_return_sequences=3),
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_generate.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(31)
    sd = ref_llama.make_weights(CFG, gen, False)
    sd["lm_head.weight"][CFG["eos_token_id"]] *= 2.5
    W = {k: v.double() for k, v in sd.items()}
    attrs = dict(CFG, model_type="llama", hidden_act="silu", source="tests/ref_generate.py seed=31")
    convert_hf.write_weights(os.path.join(outdir, "gen_llama.h5"), {k: v.numpy() for k, v in sd.items()}, attrs,
                             "fp32", order=list(sd))
    path = os.path.join(outdir, "gen_cases.h5")
    tmp = path + ".tmp"
    pg = torch.Generator().manual_seed(32)
    with h5py.File(tmp, "w") as f:
        for name, o in CASES.items():
            prompts, results, tries, n_eos = [], [], 0, 0
            while len(prompts) < 4:
                tries += 1
                if tries > 400:
                    sys.exit(f"ref_generate: case {name}: no clear prompts found")
                L = int(torch.randint(2, 8, (1,), generator=pg))
                p = [CFG["bos_token_id"]] + torch.randint(3, CFG["vocab_size"], (L,), generator=pg).tolist()
                try:
                    r = greedy(W, p, o) if o["num_beams"] == 1 else beam_search(W, p, o)
                except Unclear:
                    continue
                prompts.append(p)
                results.append(r)
                n_eos += sum(e for _, _, e in r)
            K, M = o["num_return_sequences"], o["max_new_tokens"]
            g = f.create_group(name)
            for k, v in o.items():
                g.attrs[k] = v
            g["prompts"] = np.asarray([p + [0] * (8 - len(p)) for p in prompts], dtype=np.int32)
            g["prompt_len"] = np.asarray([len(p) for p in prompts], dtype=np.int32)
            flat = [s for r in results for s in r]
            g["ids"] = np.asarray([t + [-1] * (M - len(t)) for t, _, _ in flat], dtype=np.int32)
            g["len"] = np.asarray([len(t) for t, _, _ in flat], dtype=np.int32)
            g["eos"] = np.asarray([e for _, _, e in flat], dtype=np.int32)
            g["score"] = np.asarray([s for _, s, _ in flat], dtype=np.float32)
            print(f"  {name}: {len(prompts)} prompts ({tries} drawn), {len(flat)} sequences, {n_eos} end with EOS, "
                  f"lengths {[len(t) for t, _, _ in flat]}")
    os.replace(tmp, path)
    print("ref_generate: ok")


if __name__ == "__main__":
    main()
