#!/usr/bin/python3
"""Writes the caption-metric fixtures in tests/fixtures/metrics/ with the COCO
caption toolkit itself (see tests/metrics/README.md for the exact commands).

    /usr/bin/python3 tests/metrics/make_fixtures.py \
        --pycocoevalcap /tmp/pycocoevalcap --meteor-jar /tmp/meteor/meteor-1.5.jar \
        --out tests/fixtures/metrics

For every corpus it writes three files:
  <name>.refs.json      {id: [reference, ...]}   (SECap fid2captions form)
  <name>.hyps.json      {id: hypothesis}         (some as one-element lists)
  <name>.expected.json  {"tokenize": mode, "ids": [...], "hyp_tokens": [...],
                         "corpus": {metric: score}, "per_item": {metric: [...]}}
per_item lists follow the order of "ids" (the order of the hypothesis file).

The toolkit gets pre-tokenised, space-joined strings made by tokenize() below,
a Python twin of the C rule in src/metrics/tokenize.c:
  BLEU-1..4  pycocoevalcap bleu.Bleu(4).compute_score (option 'closest')
  ROUGE_L    pycocoevalcap rouge.Rouge().compute_score
  CIDEr      pycocoevalcap cider.Cider().compute_score  (CIDEr-D, sigma 6, x10)
  METEOR     java -Xmx2G -jar meteor-1.5.jar test.txt ref.txt -l en -m exact -r N
             (plaintext mode, N references per segment; an item with fewer
             references repeats its last one, which cannot change the score:
             METEOR keeps the first best reference.)  Segment scores are the
             per-item scores, "Final score" the corpus score.
The corpora are synthetic (seeded), built to share many n-grams with their
references like real captioning output.
"""
import argparse
import importlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unicodedata

METRICS = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]


# ---------------------------------------------------------------- tokenizer
def is_cjk(cp):
    """Code points that are one token each under zh-char (letters/numbers only)."""
    return (0x3005 <= cp <= 0x3007 or 0x3021 <= cp <= 0x3029 or
            0x3038 <= cp <= 0x303B or 0x3040 <= cp <= 0x30FF or
            0x31F0 <= cp <= 0x31FF or 0x3400 <= cp <= 0x4DBF or
            0x4E00 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF or
            0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3134F)


def tokenize(text, mode):
    if mode == "space":
        return text.split()
    toks, run = [], []

    def flush():
        if run:
            toks.append("".join(run))
            run.clear()
    for ch in text:
        cat = unicodedata.category(ch)
        major = cat[0]
        if major in "PSZC":
            flush()
        elif major in "LN" and is_cjk(ord(ch)):
            flush()
            toks.append(ch)
        elif major in "LN":
            low = ch.lower()
            run.append(low if len(low) == 1 else ch)
        elif major == "M" and run:
            run.append(ch)
    flush()
    return toks


# ---------------------------------------------------------------- corpora
ZH_WHO = ["说话人", "她", "他", "这位女士", "这位男士", "一位年轻女性", "一位中年男性", "这个小孩"]
ZH_SPEED = ["较快", "缓慢", "平稳", "急促", "适中", "很快"]
ZH_VOL = ["洪亮", "低沉", "轻柔", "高亢", "微弱", "清脆"]
ZH_EMO = ["开心", "悲伤", "愤怒", "惊讶", "平静", "恐惧", "厌恶", "兴奋"]
ZH_TPL = [
    "{who}用{speed}的语速和{vol}的声音说话，听起来很{emo}。",
    "{who}的语气{emo}，语速{speed}，声音{vol}。",
    "{who}语速{speed}、音量{vol}，表达出{emo}的情绪！",
    "在这段语音中，{who}显得十分{emo}，说话{speed}，声音{vol}。",
    "{who}以{vol}的嗓音{speed}地讲述，透露出{emo}的心情。",
    "听上去{who}很{emo}，语调{vol}，节奏{speed}。",
    "{who}说OK的时候语气{emo}，声音{vol}……",
    "{who}（{emo}）语速{speed}，音量{vol}，共3句话。",
]
EN_WHO = ["The speaker", "She", "He", "A young woman", "An old man", "The child", "A male speaker"]
EN_SPEED = ["fast", "slow", "steady", "hurried", "moderate", "quick"]
EN_VOL = ["loud", "low", "soft", "high", "weak", "clear"]
EN_EMO = ["happy", "sad", "angry", "surprised", "calm", "afraid", "disgusted", "excited"]
EN_TPL = [
    "{who} speaks at a {speed} pace in a {vol} voice , and sounds {emo} .",
    "{who} sounds {emo} ; the speech is {speed} and the voice is {vol} .",
    "In this clip , {who} is {emo} , talking {speed} with a {vol} tone .",
    "{who} tells the story in a {vol} voice , which is {speed} and {emo} .",
    "It is clear that {who} is {emo} : the pace is {speed} , the volume {vol} .",
    "{who} said that the {vol} and {speed} voice was {emo} .",
    "{who} has a {vol} voice and is {emo} about the news for the first time .",
]


def render(rng, tpl, vocab, attrs):
    return rng.choice(tpl).format(**{k: (attrs[k] if rng.random() < 0.8 else rng.choice(vocab[k]))
                                     for k in attrs})


def perturb(rng, s, lang):
    """Hypothesis-style damage: repeats, truncation, case changes."""
    r = rng.random()
    if r < 0.08:
        return s + (s[: len(s) // 2] if lang == "zh" else " " + " ".join(s.split()[:5]))
    if r < 0.14:
        return s[: max(1, len(s) // 3)] if lang == "zh" else " ".join(s.split()[:3])
    if r < 0.20 and lang == "en":
        return s.upper()
    return s


def make_corpus(rng, lang, n, refs_lo, refs_hi, prefix):
    if lang == "zh":
        tpl, vocab = ZH_TPL, {"who": ZH_WHO, "speed": ZH_SPEED, "vol": ZH_VOL, "emo": ZH_EMO}
    else:
        tpl, vocab = EN_TPL, {"who": EN_WHO, "speed": EN_SPEED, "vol": EN_VOL, "emo": EN_EMO}
    refs, hyps = {}, {}
    for i in range(n):
        attrs = {k: rng.choice(v) for k, v in vocab.items()}
        iid = "%s%04d" % (prefix, i)
        refs[iid] = [render(rng, tpl, vocab, attrs) for _ in range(rng.randint(refs_lo, refs_hi))]
        hyp = perturb(rng, render(rng, tpl, vocab, attrs), lang)
        hyps[iid] = [hyp] if i % 7 == 3 else hyp
    return refs, hyps


def beam_corpus(rng, n):
    """Long sentences over a small alphabet: many candidate matches per word,
    so METEOR's beam (40 paths) prunes and its tie-breaks decide."""
    alphabet = "的了是我你他很好开心说话"
    refs, hyps = {}, {}
    for i in range(n):
        base = [rng.choice(alphabet) for _ in range(rng.randint(15, 90))]
        refs["bs%03d" % i] = ["".join(base if r == 0 else
                                      [c if rng.random() < 0.7 else rng.choice(alphabet) for c in base])
                              for r in range(rng.randint(1, 3))]
        cut = rng.randint(0, len(base))
        hyp = base[cut:] + base[:cut]
        hyp = [c for c in hyp if rng.random() < 0.85] + [rng.choice(alphabet) for _ in range(rng.randint(0, 10))]
        hyps["bs%03d" % i] = "".join(hyp)
    return refs, hyps


def edge_corpus():
    """Hand-made corner cases (zh-char tokenisation)."""
    refs = {
        "empty_hyp": ["她很开心。", "说话人语气开心"],
        "punct_hyp": ["他很生气"],
        "longer_hyp": ["开心", "很开心"],
        "repeat_ngrams": ["的的的的的", "开心的说话"],
        "one_token": ["好"],
        "one_token_miss": ["好"],
        "one_token_hyp": ["她说话很快", "他说得快"],
        "identical": ["语速平稳，声音低沉"],
        "latin_mix": ["Hello World 你好", "hello，world！"],
        "empty_ref": ["。。。", "平静"],
        "both_empty": ["！"],
        "reordered": ["甲乙丙丁戊己", "丁戊己甲乙丙"],
        "func_words": ["the a of the to in", "and the voice"],
    }
    hyps = {
        "empty_hyp": "",
        "punct_hyp": "。，！？",
        "longer_hyp": "她说话的时候非常非常开心而且语速很快",
        "repeat_ngrams": "的的的的的的的的",
        "one_token": "好",
        "one_token_miss": "坏",
        "one_token_hyp": ["快"],
        "identical": "语速平稳，声音低沉",
        "latin_mix": "HELLO world你好！",
        "empty_ref": "平静平静",
        "both_empty": "",
        "reordered": "戊己甲乙丙丁",
        "func_words": "The voice of the speaker, to the end",
    }
    return refs, hyps


# ---------------------------------------------------------------- toolkit
def load_toolkit(path):
    path = os.path.abspath(path)
    sys.path.insert(0, os.path.dirname(path))
    pkg = os.path.basename(path)
    mods = {m: importlib.import_module("%s.%s.%s" % (pkg, m, m)) for m in ("bleu", "rouge", "cider")}
    return mods["bleu"].Bleu(4), mods["rouge"].Rouge(), mods["cider"].Cider()


def run_meteor(jar, ids, gts, res, workdir):
    nref = max(len(gts[i]) for i in ids)
    test = os.path.join(workdir, "test.txt")
    ref = os.path.join(workdir, "ref.txt")
    with open(test, "w", encoding="utf-8") as ft, open(ref, "w", encoding="utf-8") as fr:
        for i in ids:
            ft.write(res[i][0] + "\n")
            rs = gts[i] + [gts[i][-1]] * (nref - len(gts[i]))
            for r in rs:
                fr.write(r + "\n")
    cmd = ["java", "-Xmx2G", "-jar", jar, test, ref, "-l", "en", "-m", "exact", "-r", str(nref)]
    print("  $", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seg = [float(m) for m in re.findall(r"^Segment \d+ score:\t(\S+)$", out, re.M)]
    final = float(re.search(r"^Final score:\s+(\S+)$", out, re.M).group(1))
    assert len(seg) == len(ids), "METEOR returned %d segments for %d items" % (len(seg), len(ids))
    return final, seg


def score(toolkit, jar, refs, hyps, mode, workdir):
    bleu, rouge, cider = toolkit
    ids = list(hyps.keys())
    gts = {i: [" ".join(tokenize(r, mode)) for r in refs[i]] for i in ids}
    res = {}
    for i in ids:
        h = hyps[i][0] if isinstance(hyps[i], list) else hyps[i]
        res[i] = [" ".join(tokenize(h, mode))]
    corpus, per = {}, {}
    b, bl = bleu.compute_score(gts, res, verbose=0)
    for n in range(4):
        corpus["Bleu_%d" % (n + 1)] = b[n]
        per["Bleu_%d" % (n + 1)] = list(bl[n])
    corpus["METEOR"], per["METEOR"] = run_meteor(jar, ids, gts, res, workdir)
    r, rl = rouge.compute_score(gts, res)
    corpus["ROUGE_L"], per["ROUGE_L"] = float(r), [float(x) for x in rl]
    c, cl = cider.compute_score(gts, res)
    corpus["CIDEr"], per["CIDEr"] = float(c), [float(x) for x in cl]
    return {"tokenize": mode, "ids": ids, "hyp_tokens": [res[i][0] for i in ids],
            "corpus": corpus, "per_item": {m: [float(x) for x in per[m]] for m in METRICS}}


def write(out, name, refs, hyps, expected):
    for suffix, obj in (("refs", refs), ("hyps", hyps), ("expected", expected)):
        with open(os.path.join(out, "%s.%s.json" % (name, suffix)), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=None if suffix != "expected" else 0)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pycocoevalcap", required=True, help="checkout of salaniz/pycocoevalcap (the package dir)")
    ap.add_argument("--meteor-jar", required=True, help="meteor-1.5.jar built from cmu-mtlab/meteor")
    ap.add_argument("--out", default="tests/fixtures/metrics")
    a = ap.parse_args()
    toolkit = load_toolkit(a.pycocoevalcap)
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(20240605)
    corpora = [
        ("zh_multi", "zh-char", make_corpus(rng, "zh", 600, 5, 5, "zm")),
        ("zh_single", "zh-char", make_corpus(rng, "zh", 500, 1, 1, "zs")),
        ("zh_varref", "zh-char", make_corpus(rng, "zh", 500, 1, 5, "zv")),
        ("en_multi", "zh-char", make_corpus(rng, "en", 500, 2, 5, "em")),
        ("en_space", "space", make_corpus(rng, "en", 500, 1, 4, "es")),
        ("edge", "zh-char", edge_corpus()),
        ("meteor_beam", "zh-char", beam_corpus(rng, 120)),
    ]
    with tempfile.TemporaryDirectory() as work:
        for name, mode, (refs, hyps) in corpora:
            print("==", name, file=sys.stderr)
            exp = score(toolkit, a.meteor_jar, refs, hyps, mode, work)
            print("  ", json.dumps(exp["corpus"]), file=sys.stderr)
            write(a.out, name, refs, hyps, exp)


if __name__ == "__main__":
    main()
