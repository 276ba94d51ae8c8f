#!/usr/bin/python3
"""tests/ref_emotion.py OUTDIR - captions of the demo corpus' generator
(tools/make_demo_corpus.py: draw_prosody, captions_for) with their class, for
the emotion keyword test.

Writes OUTDIR/emotion_captions.json:
  {"captions": [[caption, class], ...]   20 utterances x 5 captions per class
   "cues": [caption, ...]}               the same captions with the emotion
                                         phrase removed (prosody cues only:
                                         these must name no class)
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import make_demo_corpus as D  # noqa: E402


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(7)
    caps, cues = [], []
    for cls in D.CLASSES:
        for _ in range(20):
            pros = D.draw_prosody(cls, rng)
            for c in D.captions_for(cls, pros, rng):
                caps.append([c, cls])
                stripped = c
                for w in D.EMOTION_WORDS[cls]:
                    stripped = stripped.replace(w, "")
                assert stripped != c, c
                cues.append(stripped)
    with open(os.path.join(outdir, "emotion_captions.json"), "w", encoding="utf-8") as f:
        json.dump({"captions": caps, "cues": cues}, f, ensure_ascii=False)
    print(f"ref_emotion: {len(caps)} captions of {len(D.CLASSES)} classes")


if __name__ == "__main__":
    main()
