#!/usr/bin/python3
"""tools/make_demo_corpus.py - build the Chinese emotional-speech captioning
demo corpus in SECap's layout from Debian packages only.

espeak-ng (Mandarin, voice cmn-latn-pinyin) speaks short sentences taken
from fortunes-zh; sox adds the effects (in repeatable mode, -R, so its dither
is the same on every run).  Each utterance gets an emotion class whose prosody
(speaking rate, pitch level, pitch range, loudness, tremolo, pitch bend) is
drawn with jitter from the class profile; five Chinese captions are written
from the prosody actually sampled.  Sentences are drawn independently of the
class, so content and emotion are separable.  Everything is a function of the
seed: the same seed gives the same corpus.

Output (OUT, default data/demo), built in OUT.tmp and renamed when complete:
  wav/<id>.wav        24 kHz 16-bit mono
  wav.scp             <id> wav/<id>.wav
  text.txt            <id> <sentence>
  fid2captions.json   {id: [5 captions]}
  emotion.txt         <id> <class>
  train.list dev.list test.list   one id per line
  prosody.tsv         the sampled prosody of every utterance
See data/README.md for the class profiles and caption templates.
"""
import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave

FORTUNE_DIRS = ["/usr/share/games/fortunes", "/usr/share/fortunes"]
FORTUNE_FILES = ["chinese", "tang300", "song100"]
RATE = 24000
MIN_SEC, MAX_SEC = 2.0, 6.0
# espeak-ng speaks Mandarin at about 0.29 s per character at -s 175 (measured).
SEC_PER_CHAR_175 = 0.29

# Class profiles: (mean, sd) of espeak-ng speed (-s, words/min), pitch level
# (-p, 0-99), pitch range (SSML prosody range, 0-100), peak level (dBFS), the
# probability and (speed Hz, depth %) of a tremolo, and the pitch bend at the
# end of the sentence (cents, 0 = none).
PROFILES = {
    "开心": dict(speed=(195, 15), pitch=(66, 6), range=(75, 10), level=(-3, 1.5),
                 tremolo=(0.0, 0, 0), bend=(150, 80)),
    "悲伤": dict(speed=(125, 10), pitch=(30, 6), range=(18, 7), level=(-13, 2),
                 tremolo=(0.35, 4.5, 25), bend=(-350, 80)),
    "生气": dict(speed=(205, 15), pitch=(48, 6), range=(62, 10), level=(-0.5, 0.4),
                 tremolo=(0.0, 0, 0), bend=(0, 0)),
    "惊讶": dict(speed=(175, 15), pitch=(72, 6), range=(90, 6), level=(-3, 1.5),
                 tremolo=(0.0, 0, 0), bend=(450, 80)),
    "害怕": dict(speed=(170, 15), pitch=(60, 6), range=(40, 10), level=(-10, 2),
                 tremolo=(0.9, 7.0, 55), bend=(0, 0)),
    "平静": dict(speed=(150, 10), pitch=(45, 5), range=(32, 8), level=(-6, 1.5),
                 tremolo=(0.0, 0, 0), bend=(0, 0)),
    "激动": dict(speed=(235, 15), pitch=(76, 6), range=(85, 8), level=(-1, 0.8),
                 tremolo=(0.3, 8.0, 30), bend=(250, 100)),
}
CLASSES = list(PROFILES)
# The cmn-latn-pinyin voice, not plain cmn: Debian's espeak-ng 1.51 cmn voice
# reads each character's pinyin tone digit aloud in English ("jin one tian
# one", espeak-ng issues #1028/#1044); the pinyin variant speaks the tones.
SPEAKERS = ["cmn-latn-pinyin", "cmn-latn-pinyin+m3", "cmn-latn-pinyin+f2", "cmn-latn-pinyin+f4"]

EMOTION_WORDS = {
    "开心": ["情绪愉悦", "听起来很开心", "语气中透着喜悦", "心情很好", "带着笑意"],
    "悲伤": ["情绪低落", "透着悲伤", "听起来很难过", "语气哀伤", "带着一丝伤感"],
    "生气": ["情绪愤怒", "带着怒气", "语气中充满不满", "听起来很生气", "显得十分恼火"],
    "惊讶": ["感到很惊讶", "语气充满惊奇", "显得难以置信", "情绪中带着意外", "听起来十分吃惊"],
    "害怕": ["情绪紧张害怕", "透着恐惧", "听起来很不安", "语气惊恐", "显得胆怯"],
    "平静": ["情绪平稳", "语气平和", "听起来很平静", "显得从容淡定", "情绪没有明显波动"],
    "激动": ["情绪激动", "显得非常兴奋", "语气热烈", "难掩激动之情", "情绪高涨"],
}


def speed_words(s):
    if s < 135: return ["语速缓慢", "说话很慢", "语速很慢"]
    if s < 162: return ["语速较慢", "说话偏慢", "语速平缓"]
    if s < 188: return ["语速适中", "语速正常", "说话不快不慢"]
    if s < 215: return ["语速较快", "说话偏快", "语速稍快"]
    return ["语速很快", "说话飞快", "语速极快"]


def pitch_words(p):
    if p < 36: return ["声音低沉", "音调很低", "嗓音低沉"]
    if p < 52: return ["音调偏低", "声音较低", "音调平常"]
    if p < 64: return ["音调适中", "声音不高不低", "音调中等"]
    if p < 73: return ["音调较高", "声音偏高", "嗓音较尖"]
    return ["声音高亢", "音调很高", "嗓音尖细高亢"]


def range_words(r):
    if r < 28: return ["语调平淡", "几乎没有起伏", "语调单调"]
    if r < 55: return ["语调略有起伏", "语调变化不大", "抑扬较少"]
    if r < 80: return ["语调起伏明显", "抑扬顿挫", "语调富于变化"]
    return ["语调起伏很大", "抑扬变化强烈", "语调夸张"]


def level_words(db):
    if db < -10: return ["声音很轻", "音量很小", "轻声细语"]
    if db < -4.5: return ["音量适中", "声音不大", "音量平常"]
    if db < -1.5: return ["声音响亮", "音量较大", "声音洪亮"]
    return ["声音很大", "音量很高", "大声说话"]


def effect_words(pros):
    out = []
    if pros["tremolo"]:
        out.append(["声音颤抖", "嗓音发颤", "声音有些发抖"])
    if pros["bend"] > 100:
        out.append(["句尾语调上扬", "尾音上扬", "句末音调升高"])
    elif pros["bend"] < -100:
        out.append(["句尾语调下沉", "尾音下降", "句末音调走低"])
    return out


TEMPLATES = [
    "{a}，{b}，{emo}",
    "{a}，{b}，{c}，{emo}",
    "说话人{a}，{b}，{emo}",
    "{emo}，{a}，{b}",
    "{a}且{b}，{emo}",
    "这段语音{a}，{b}，{emo}",
    "{a}，{emo}",
    "说话者{emo}，{a}，{b}",
]


def captions_for(cls, pros, rng, k=5):
    cue_sets = [speed_words(pros["speed"]), pitch_words(pros["pitch"]),
                range_words(pros["range"]), level_words(pros["level"])] + effect_words(pros)
    # Effects (tremolo, bend) are the most telling cues: keep them first.
    n_fx = len(cue_sets) - 4
    caps, tries = [], 0
    while len(caps) < k and tries < 200:
        tries += 1
        order = cue_sets[4:] + rng.sample(cue_sets[:4], 4) if n_fx else rng.sample(cue_sets, 4)
        if n_fx and rng.random() < 0.5:
            rng.shuffle(order)
        cues = [rng.choice(s) for s in order]
        emo = rng.choice(EMOTION_WORDS[cls])
        tpl = rng.choice(TEMPLATES)
        cap = tpl.format(a=cues[0], b=cues[1], c=cues[2], emo=emo)
        if cap not in caps:
            caps.append(cap)
    return caps


def load_sentences():
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    cjk = re.compile(r"^[\u4e00-\u9fff，、]+$")
    seen, out = set(), []
    for name in FORTUNE_FILES:
        path = next((os.path.join(d, name) for d in FORTUNE_DIRS
                     if os.path.exists(os.path.join(d, name))), None)
        if path is None:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = ansi.sub("", f.read())
        for fortune in text.split("\n%\n"):
            lines = [l.strip() for l in fortune.split("\n")
                     if l.strip() and "--" not in l and "作者" not in l and "《" not in l]
            for sent in re.split(r"[。！？；!?;：:\n]", "".join(lines)):
                sent = sent.strip("，、 ")
                n = sum(1 for ch in sent if "\u4e00" <= ch <= "\u9fff")
                if 8 <= n <= 30 and cjk.match(sent) and sent not in seen:
                    seen.add(sent)
                    out.append(sent)
    if not out:
        sys.exit("make_demo_corpus: no sentences found under %s (hint: apt-get install fortunes-zh)"
                 % " or ".join(FORTUNE_DIRS))
    return sorted(out)


def draw_prosody(cls, rng):
    p = PROFILES[cls]
    clamp = lambda v, lo, hi: max(lo, min(hi, v))
    pros = dict(
        speed=int(round(clamp(rng.gauss(*p["speed"]), 90, 300))),
        pitch=int(round(clamp(rng.gauss(*p["pitch"]), 5, 99))),
        range=int(round(clamp(rng.gauss(*p["range"]), 0, 100))),
        level=round(clamp(rng.gauss(*p["level"]), -20, -0.1), 1),
        speaker=rng.choice(SPEAKERS),
        tremolo=0, trem_speed=0.0, trem_depth=0,
        bend=0,
    )
    prob, tspeed, tdepth = p["tremolo"]
    if rng.random() < prob:
        pros["tremolo"] = 1
        pros["trem_speed"] = round(clamp(rng.gauss(tspeed, 1.0), 3, 12), 1)
        pros["trem_depth"] = int(round(clamp(rng.gauss(tdepth, 8), 10, 90)))
    if p["bend"][0]:
        pros["bend"] = int(round(rng.gauss(*p["bend"])))
    return pros


def pick_sentences(by_len, speed, rng, k=6):
    """k candidate sentences whose predicted duration at this speed lies in
    [2.2, 5.6] s; the worker speaks the first that really lasts 2-6 s."""
    per_char = SEC_PER_CHAR_175 * 175.0 / speed
    lo = max(8, int(2.2 / per_char + 0.999))
    hi = min(30, int(5.6 / per_char))
    lens = [n for n in range(lo, hi + 1) if by_len.get(n)] or [min(by_len)]
    return [rng.choice(by_len[rng.choice(lens)]) for _ in range(k)]


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode:
        raise RuntimeError("%s failed: %s" % (cmd[0], r.stderr.decode(errors="replace").strip()))


def wav_seconds(path):
    with wave.open(path) as w:
        return w.getnframes() / float(w.getframerate())


def synthesize(job):
    """Worker: speak one utterance, trying the candidate sentences until one
    lasts 2-6 s (else the last one); returns (id, sentence, seconds)."""
    uid, candidates, pros, out_path = job
    for text in candidates:
        sec = speak(text, pros, out_path)
        if MIN_SEC <= sec <= MAX_SEC:
            break
    return uid, text, sec


def speak(text, pros, out_path):
    """espeak-ng then the sox effects chain; returns the output's seconds."""
    with tempfile.TemporaryDirectory(prefix="secap_demo_") as tmp:
        raw = os.path.join(tmp, "raw.wav")
        ssml = '<speak><prosody range="%d">%s</prosody></speak>' % (pros["range"], text)
        run(["espeak-ng", "-v", pros["speaker"], "-s", str(pros["speed"]), "-p", str(pros["pitch"]),
             "-z", "-m", "-w", raw, ssml])
        dur = wav_seconds(raw)
        fx = []
        if pros["tremolo"]:
            fx += ["tremolo", str(pros["trem_speed"]), str(pros["trem_depth"])]
        if pros["bend"]:
            start = max(0.0, dur - 0.8)
            fx += ["bend", "-o", "8", "%.3f,%d,0.6" % (start, pros["bend"])]
        fx += ["gain", "-n", str(pros["level"]), "rate", "-h", str(RATE)]
        run(["sox", "-R", "-V1", raw, "-b", "16", "-c", "1", out_path] + fx)
    return wav_seconds(out_path)


def plan(n, seed, sentences):
    """Every utterance's class, prosody, candidate sentences and captions."""
    rng = random.Random(seed)
    by_len = {}
    for s in sentences:
        by_len.setdefault(sum(1 for ch in s if "\u4e00" <= ch <= "\u9fff"), []).append(s)
    items = []
    for i in range(n):
        urng = random.Random("%d/%d" % (seed, i))
        cls = CLASSES[i % len(CLASSES)] if i < len(CLASSES) else rng.choice(CLASSES)
        pros = draw_prosody(cls, urng)
        cands = pick_sentences(by_len, pros["speed"], urng)
        items.append(dict(id="demo_%05d" % i, cls=cls, pros=pros, candidates=cands,
                          captions=captions_for(cls, pros, urng)))
    return items


def assign_splits(items, ratios, seed):
    rng = random.Random("split/%d" % seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    n_dev = int(round(ratios[1] * len(items)))
    n_test = int(round(ratios[2] * len(items)))
    split = {}
    for k, i in enumerate(order):
        split[items[i]["id"]] = "dev" if k < n_dev else "test" if k < n_dev + n_test else "train"
    return split


def write_tables(tmp, items, split):
    with open(os.path.join(tmp, "wav.scp"), "w", encoding="utf-8") as f:
        for it in items:
            f.write("%s wav/%s.wav\n" % (it["id"], it["id"]))
    with open(os.path.join(tmp, "text.txt"), "w", encoding="utf-8") as f:
        for it in items:
            f.write("%s %s\n" % (it["id"], it["text"]))
    with open(os.path.join(tmp, "emotion.txt"), "w", encoding="utf-8") as f:
        for it in items:
            f.write("%s %s\n" % (it["id"], it["cls"]))
    with open(os.path.join(tmp, "fid2captions.json"), "w", encoding="utf-8") as f:
        json.dump({it["id"]: it["captions"] for it in items}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for name in ("train", "dev", "test"):
        with open(os.path.join(tmp, name + ".list"), "w", encoding="utf-8") as f:
            for it in items:
                if split[it["id"]] == name:
                    f.write(it["id"] + "\n")
    keys = ["speaker", "speed", "pitch", "range", "level", "tremolo", "trem_speed", "trem_depth", "bend"]
    with open(os.path.join(tmp, "prosody.tsv"), "w", encoding="utf-8") as f:
        f.write("\t".join(["id", "emotion"] + keys + ["seconds"]) + "\n")
        for it in items:
            f.write("\t".join([it["id"], it["cls"]] + [str(it["pros"][k]) for k in keys]
                              + ["%.3f" % it["seconds"]]) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="data/demo")
    ap.add_argument("--num", type=int, default=1500, help="number of utterances (default 1500)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--split", default="0.8,0.1,0.1", help="train,dev,test ratios")
    args = ap.parse_args()
    ratios = [float(x) for x in args.split.split(",")]
    if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-6:
        sys.exit("make_demo_corpus: --split needs three ratios summing to 1, e.g. 0.8,0.1,0.1")
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            sys.exit("make_demo_corpus: %s not found (hint: tools/deps.sh demo, as root)" % tool)

    t0 = time.time()
    sentences = load_sentences()
    items = plan(args.num, args.seed, sentences)
    tmp = args.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "wav"))
    jobs = [(it["id"], it["candidates"], it["pros"], os.path.join(tmp, "wav", it["id"] + ".wav")) for it in items]
    seconds, texts = {}, {}
    with multiprocessing.Pool(args.jobs) as pool:
        for k, (uid, text, sec) in enumerate(pool.imap_unordered(synthesize, jobs, chunksize=8)):
            seconds[uid], texts[uid] = sec, text
            if (k + 1) % 250 == 0:
                print("make_demo_corpus: %d/%d utterances (%.0f s)" % (k + 1, len(jobs), time.time() - t0),
                      flush=True)
    for it in items:
        it["seconds"], it["text"] = seconds[it["id"]], texts[it["id"]]
    write_tables(tmp, items, assign_splits(items, ratios, args.seed))
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)
    hours = sum(seconds.values()) / 3600.0
    print("make_demo_corpus: %d utterances, %.2f h, %d sentences in the pool, %d jobs, %.0f s -> %s"
          % (len(items), hours, len(sentences), args.jobs, time.time() - t0, args.out))


if __name__ == "__main__":
    main()
