#!/usr/bin/python3
"""tests/ref_similarity.py OUTDIR - PyTorch reference for SECap's sentence
similarity (src/metrics/similarity.c).

A BERT / ERNIE encoder written from the model definitions (HF BertModel /
ErnieModel semantics, eval mode: embeddings word + absolute position + token
type 0 (+ task type 0 for ERNIE with use_task_id) -> LayerNorm -> post-LN
layers of self-attention and a GELU (erf) feed-forward), mean pooling over
the attention mask, cosine with F.normalize, run in float64 from float32
random weights.  The weights are saved as a Hugging Face checkpoint directory
(config.json + pytorch_model.bin) and converted with tools/convert_hf.py, so
the C side reads what the converter makes of a real checkpoint (ERNIE: the
task-type row folded into the token types).

Tokenisation here is the BERT tokenizer's on the texts used: every text is
CJK ideographs and the full-width punctuation "，。！", each its own token,
an ideograph missing from the vocabulary [UNK]; [CLS] ... [SEP], truncated to
max_len tokens.

Writes to OUTDIR for TAG in (ernie, bert):
  sim_TAG.h5          the converted weight file (model_type "bert")
  sim_vocab.txt       the vocabulary (shared)
  sim_TAG_ref.json    {"max_len", "hyps", "refs", "emb_hyp" [n][H], "cos" [n],
                       "matrix" [n][n] (over hyps), "item_refs" [n][k],
                       "items" [n], "similarity", "share" [3]}
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import convert_hf  # noqa: E402

torch.set_num_threads(2)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list(dict.fromkeys("开心快乐高兴悲伤难过愤怒生气平静惊讶害怕恐惧语气声音说话者情绪低沉激动温和缓慢急促带着一丝的很有些"))
PUNCT = list("，。！")
MISSING = list("龍鳳")   # not in the vocabulary: [UNK]


def vocab_lines():
    return SPECIAL + CHARS + PUNCT


def tokenize(text, vocab, max_len):
    ids = [vocab[c] if c in vocab else vocab["[UNK]"] for c in text]
    ids = ids[:max_len - 2]
    return [vocab["[CLS]"]] + ids + [vocab["[SEP]"]]


def random_state(cfg, rng, task):
    """Random float32 state dict; LayerNorm weights near 1, biases non-zero,
    so that every parameter matters."""
    H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    sd = {}

    def n(name, *shape, scale=0.5):
        sd[name] = (rng.standard_normal(shape) * scale).astype(np.float32)

    n("embeddings.word_embeddings.weight", cfg["vocab_size"], H)
    n("embeddings.position_embeddings.weight", cfg["max_position_embeddings"], H)
    n("embeddings.token_type_embeddings.weight", cfg["type_vocab_size"], H)
    if task:
        n("embeddings.task_type_embeddings.weight", cfg["task_type_vocab_size"], H)
    sd["embeddings.LayerNorm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
    n("embeddings.LayerNorm.bias", H, scale=0.1)
    for l in range(L):
        p = f"encoder.layer.{l}."
        for proj in ("query", "key", "value"):
            n(p + f"attention.self.{proj}.weight", H, H, scale=1 / math.sqrt(H))
            n(p + f"attention.self.{proj}.bias", H, scale=0.1)
        n(p + "attention.output.dense.weight", H, H, scale=1 / math.sqrt(H))
        n(p + "attention.output.dense.bias", H, scale=0.1)
        n(p + "intermediate.dense.weight", I, H, scale=1 / math.sqrt(H))
        n(p + "intermediate.dense.bias", I, scale=0.1)
        n(p + "output.dense.weight", H, I, scale=1 / math.sqrt(I))
        n(p + "output.dense.bias", H, scale=0.1)
        for blk in ("attention.output", "output"):
            sd[p + blk + ".LayerNorm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
            n(p + blk + ".LayerNorm.bias", H, scale=0.1)
    n("pooler.dense.weight", H, H)
    n("pooler.dense.bias", H)
    return sd


def encode(sd, cfg, ids_list, task):
    """Mean-pooled last-layer outputs [n, H] (float64) of each id list alone
    and as one padded batch (returned: the batch result; the two must agree)."""
    T = {k: torch.from_numpy(v).double() for k, v in sd.items()}
    H, nh, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd, eps = H // nh, cfg["layer_norm_eps"]
    B, S = len(ids_list), max(len(x) for x in ids_list)
    ids = torch.zeros(B, S, dtype=torch.long)
    mask = torch.zeros(B, S, dtype=torch.float64)
    for b, x in enumerate(ids_list):
        ids[b, :len(x)] = torch.tensor(x)
        mask[b, :len(x)] = 1
    x = T["embeddings.word_embeddings.weight"][ids] + T["embeddings.position_embeddings.weight"][:S][None]
    x = x + T["embeddings.token_type_embeddings.weight"][0]
    if task:
        x = x + T["embeddings.task_type_embeddings.weight"][0]
    x = Fn.layer_norm(x, (H,), T["embeddings.LayerNorm.weight"], T["embeddings.LayerNorm.bias"], eps)
    add = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float64).min

    def lin(h, name):
        return h @ T[name + ".weight"].T + T[name + ".bias"]

    for l in range(L):
        p = f"encoder.layer.{l}."

        def split(h):
            return h.view(B, S, nh, hd).transpose(1, 2)
        q, k, v = (split(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + add, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, S, H)
        x = Fn.layer_norm(lin(a, p + "attention.output.dense") + x, (H,),
                          T[p + "attention.output.LayerNorm.weight"], T[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(Fn.gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        x = Fn.layer_norm(f + x, (H,), T[p + "output.LayerNorm.weight"], T[p + "output.LayerNorm.bias"], eps)
    # sentence-transformers mean pooling: sum(h * mask) / clamp(sum(mask), 1e-9)
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1e-9)


def cos(a, b):
    return (Fn.normalize(a, dim=-1) * Fn.normalize(b, dim=-1)).sum(-1)


def texts(rng, n, lo, hi):
    out = []
    for _ in range(n):
        k = int(rng.integers(lo, hi + 1))
        s = "".join(CHARS[int(i)] for i in rng.integers(0, len(CHARS), k))
        if rng.random() < 0.3:
            j = int(rng.integers(0, len(s) + 1))
            s = s[:j] + PUNCT[int(rng.integers(0, 3))] + s[j:]
        out.append(s)
    return out


def variant(outdir, tag, task):
    rng = np.random.default_rng(11 if task else 12)
    base = dict(convert_hf.ERNIE_DEFAULTS if task else convert_hf.BERT_DEFAULTS)
    cfg = dict(base, vocab_size=len(vocab_lines()) + 7, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=48, max_position_embeddings=24,
               type_vocab_size=4 if task else 2)
    if task:
        cfg.update(use_task_id=True, task_type_vocab_size=3, layer_norm_eps=1e-5)
    sd = random_state(cfg, rng, task)
    hf = os.path.join(outdir, f"sim_{tag}_hf")
    shutil.rmtree(hf, ignore_errors=True)
    os.makedirs(hf)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    # ERNIE under its task-model prefix (ErnieForMaskedLM's spelling); BERT as a
    # plain BertModel state dict without prefix, as text2vec-base-chinese ships it
    prefix = "ernie." if task else ""
    torch.save({prefix + k: torch.from_numpy(v) for k, v in sd.items()}, os.path.join(hf, "pytorch_model.bin"))
    convert_hf.convert(hf, os.path.join(outdir, f"sim_{tag}.h5"))
    shutil.rmtree(hf)

    vocab = {t: i for i, t in enumerate(vocab_lines())}
    max_len = cfg["max_position_embeddings"]   # min(256, P)
    n = 9
    hyps = texts(rng, n, 2, 12)
    refs = texts(rng, n, 2, 12)
    hyps[1] = refs[1]                            # identical pair: cosine 1
    hyps[2] = "开心" + MISSING[0] + "龍"        # [UNK]s
    hyps[3] = "".join(CHARS[i % len(CHARS)] for i in range(40))   # truncated at max_len
    hyps[4] = "悲"                               # one token between [CLS] and [SEP]
    e_h = encode(sd, cfg, [tokenize(t, vocab, max_len) for t in hyps], task)
    e_r = encode(sd, cfg, [tokenize(t, vocab, max_len) for t in refs], task)
    alone = torch.cat([encode(sd, cfg, [tokenize(t, vocab, max_len)], task) for t in hyps])
    assert (alone - e_h).abs().max() < 1e-9, "padding changed a pooled embedding"
    c = cos(e_h, e_r)
    mat = cos(e_h[:, None, :], e_h[None, :, :])
    item_refs = [[refs[i]] + refs[:(i % 3)] for i in range(n)]   # 1 to 3 references
    items = []
    for i in range(n):
        er = encode(sd, cfg, [tokenize(t, vocab, max_len) for t in item_refs[i]], task)
        items.append(float(cos(e_h[i:i + 1], er).mean()))
    items_t = torch.tensor(items, dtype=torch.float64)
    ref = {
        "max_len": max_len,
        "hyps": hyps, "refs": refs,
        "emb_hyp": e_h.tolist(), "cos": c.tolist(), "matrix": mat.tolist(),
        "item_refs": item_refs, "items": items,
        "similarity": float(100 * items_t.mean()),
        "share": [float((items_t > t).double().mean()) for t in (0.5, 0.6, 0.8)],
    }
    with open(os.path.join(outdir, f"sim_{tag}_ref.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False)
    print(f"ref_similarity: {tag}: cos {[round(x, 4) for x in c.tolist()]}, items {[round(x, 4) for x in items]}")


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "sim_vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab_lines()) + "\n")
    variant(outdir, "ernie", True)
    variant(outdir, "bert", False)


if __name__ == "__main__":
    main()
