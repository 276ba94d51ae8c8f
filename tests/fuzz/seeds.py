#!/usr/bin/python3
"""tests/fuzz/seeds.py - writes the seed corpora tests/fuzz/<target>/ (the
committed files are its output; re-run it only to change the seeds).

    /usr/bin/python3 tests/fuzz/seeds.py

Seeds are small valid inputs plus a few near-misses for every reader, so the
fuzzer starts from inputs that reach deep into each parser.  Files named
regress-* are regression inputs of fixed findings (README.md, "Reliability")
and are never written or removed here.  Needs h5py, numpy and sox (the test
group of tools/deps.sh).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import convert_hf  # noqa: E402

SEP = b"\n====\n"


def target_dir(name):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-"):
            os.unlink(os.path.join(d, f))
    return d


def put(d, name, data):
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def js(obj):
    return json.dumps(obj, ensure_ascii=False).encode()


# ---------------------------------------------------------------- score_json

def score_json():
    d = target_dir("score_json")
    refs = {"u1": ["她很开心。", "说话人语气开心"], "u2": "他很生气", "u3": ["Hello World 你好", "hello，world！"]}
    hyps = {"u1": "她非常开心", "u2": ["他有点生气", "另一个"], "u3": "HELLO world"}
    put(d, "zh", b"\x00" + js(refs) + SEP + js(hyps))
    put(d, "zh-per-item", b"\x02" + js(refs) + SEP + js(hyps))
    en_r = {"a": ["a man is speaking loudly", "the man talks in a loud voice"], "b": ["she whispers"]}
    en_h = {"a": "a man speaks loudly", "b": "she is whispering softly"}
    put(d, "space", b"\x01" + js(en_r) + SEP + js(en_h))
    put(d, "same-file", b"\x03" + js({"x": ["的的的的的", "开心的说话"], "y": "好"}))
    put(d, "empty-hyp", b"\x00" + js({"k": "有参考"}) + SEP + js({"k": ""}))
    put(d, "extra-ref", b"\x00" + js({"k": "一", "only_ref": "二"}) + SEP + js({"k": "一"}))
    put(d, "escapes", b"\x00" + b'{"e\\u00e9": "caf\\u00e9 \\ud83d\\ude00", "t": "tab\\tnew\\nline"}' + SEP +
        b'{"e\\u00e9": ["caf\\u00e9"], "t": "tab"}')
    put(d, "missing-ref", b"\x00" + js({"a": "x"}) + SEP + js({"b": "y"}))
    put(d, "duplicate", b"\x00" + b'{"a": "x", "a": "y"}' + SEP + js({"a": "x"}))
    put(d, "malformed", b"\x00" + b'{"a": ["x",]}' + SEP + js({"a": "x"}))
    put(d, "not-object", b"\x00" + b'["a"]' + SEP + js({"a": "x"}))
    put(d, "nested", b"\x00" + js({"a": [["x"]]}) + SEP + js({"a": "x"}))
    put(d, "bad-utf8", b"\x00" + b'{"a": "\xff\xfe"}' + SEP + js({"a": "x"}))


# ------------------------------------------------------------ dataset readers

def data_layout():
    """Parts: wav.scp, text.txt, fid2captions.json, emotion.txt, train/dev/test.list."""
    d = target_dir("data_layout")
    scp = b"a dataset/wav/a.wav\nb\t\tdataset/wav/b.wav  \n\nc  local/c.wav\r\n"
    text = "a 今天天气很好 \t\nb\t我们去公园散步\nc 你好\n".encode()
    caps = js({"a": "语速较快，声音高亢", "b": ["语速缓慢，情绪低落", "声音低沉"], "c": ["音调适中"]})
    emo = "a 激动\nb 悲伤\nc 平静\n".encode()
    put(d, "full", b"\x00" + SEP.join([scp, text, caps, emo, b"a\n", b"b\n", b"c\n"]))
    put(d, "skip", b"\x01" + SEP.join([scp, text, caps, emo]))
    put(d, "scp-only", b"\x00" + SEP.join([b"x /abs/x.wav\n", b"", js({"x": "cap"})]))
    put(d, "problems", b"\x01" + SEP.join([b"a a.wav\na dup.wav\nnopath\n\xff\xfe bad.wav\n",
                                           b"a t\nz unknown\n", js({"a": ["", 3], "q": "x"}),
                                           b"a\n", b"zz\n", b"", b"a\n"]))
    put(d, "bad-json", b"\x00" + SEP.join([b"a a.wav\n", b"a t\n", b'{"a": "x",\n "b": }']))
    put(d, "binary", b"\x00" + b"a a.wav\n\x00\x01")


def data_manifest():
    d = target_dir("data_manifest")
    lines = [
        {"key": "a", "source": "wav/a.wav", "target": "语速较快", "transcript": "今天", "emotion": "激动"},
        {"key": "b", "source": "/abs/b.flac", "target": ["低沉", "缓慢"], "transcript": "我们", "emotion": "悲伤"},
        {"key": "c", "source": "c.wav", "target": ["平静"], "transcript": "你好", "emotion": "平静"},
    ]
    mf = b"\n".join(js(x) for x in lines) + b"\n"
    put(d, "full", b"\x00" + mf + SEP + b"a\n" + SEP + b"b\n" + SEP + b"c\n")
    put(d, "skip", b"\x01" + mf)
    put(d, "minimal", b"\x00" + js({"key": "k", "source": "k.wav", "target": "x"}))
    bad = [b'{"key": "a", "source": "a.wav", "target": "x"}', b'{"key": "a", "source": "b.wav", "target": "y"}',
           b'{"key": "", "source": "", "target": []}', b'{"key": 1}', b'[1, 2]', b'{"key": "t", "source": "t.wav", '
           b'"target": "x", "transcript": "only one"}', b'{"key": "u", "source": "u.wav", "target": [""]}',
           b'{"key": "v", "source": "v.wav" "target": "x"}', b'\xff\xfe']
    put(d, "problems", b"\x01" + b"\n".join(bad) + SEP + b"zz\n")


# ----------------------------------------------------------------------- ini

def ini():
    d = target_dir("ini")
    put(d, "q7x2", open(os.path.join(HERE, "..", "..", "configs", "q7x2.ini"), "rb").read()
        if os.path.exists(os.path.join(HERE, "..", "..", "configs", "q7x2.ini")) else b"[data]\nseed = 1\n")
    put(d, "data", b"# a config\n[data]\non_error = skip ; inline\nmax_seconds = 12.5\nnormalize = true\n"
        b"seed = 42\nsplit_ratios = 0.8,0.1,0.1\nbatch_size = 4\nmax_batch_seconds = 60\n"
        b"bucket_batches = 8\nclasses_per_batch = 7\nper_class = 2\nprefetch = 2\nworkers = 1\n"
        b"label_file = labels.txt\n")
    put(d, "sections", b"[train]\nlr = 1e-4 # comment\nname = a#b\n\n[ model ]\n  hidden = 768\n[data]\nseed=3\n")
    put(d, "unknown", b"[data]\ntypo_key = 1\n")
    put(d, "bad-value", b"[data]\nbatch_size = -3\non_error = maybe\nsplit_ratios = 1,2\n")
    put(d, "no-section", b"key = 1\n")
    put(d, "bad-header", b"[data\nseed = 1\n")
    put(d, "nul", b"[data]\nseed = \x00\x01\n")


# -------------------------------------------------------------- train_config

def train_config():
    d = target_dir("train_config")
    for name in ("demo", "q7x2"):
        path = os.path.join(HERE, "..", "..", "configs", name + ".ini")
        if os.path.exists(path):
            put(d, name, open(path, "rb").read())
    put(d, "minimal", b"[data]\ndir = d\n[train]\nout_dir = r\nmax_steps = 5\nstages = qformer\n"
        b"stage_steps = qformer:3\n[loss]\nw_mi = 0.123456789\n[data]\nmax_seconds = 1.23456789\n")
    put(d, "bad-stages", b"[data]\ndir = d\n[train]\nout_dir = r\nmax_steps = 1\nstages = caption,lm\n")
    put(d, "missing", b"[data]\ndir = d\n[train]\nstages = lm\n")


# ---------------------------------------------------------------------- audio

def wav_pcm(path, rate, channels, width, n):
    t = np.arange(n) / rate
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    x = np.repeat(x[:, None], channels, axis=1)
    if width == 1:
        b = ((x + 1) * 127.5).astype(np.uint8).tobytes()
    elif width == 2:
        b = (x * 32767).astype("<i2").tobytes()
    elif width == 3:
        v = (x * 8388607).astype("<i4").reshape(-1)
        b = b"".join(struct.pack("<i", int(s))[:3] for s in v)
    else:
        b = (x * 2147483647).astype("<i4").tobytes()
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b)


def wav_float(rate, channels, n):
    x = (0.25 * np.sin(np.arange(n * channels) * 0.1)).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(x)) + x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def audio():
    d = target_dir("audio")
    with tempfile.TemporaryDirectory() as tmp:
        def via_file(name, fn):
            p = os.path.join(tmp, name)
            fn(p)
            put(d, name, open(p, "rb").read())

        via_file("pcm16-16k-mono.wav", lambda p: wav_pcm(p, 16000, 1, 2, 480))
        via_file("pcm16-8k-stereo.wav", lambda p: wav_pcm(p, 8000, 2, 2, 300))
        via_file("pcm8-22050.wav", lambda p: wav_pcm(p, 22050, 1, 1, 700))
        via_file("pcm24-48k.wav", lambda p: wav_pcm(p, 48000, 1, 3, 500))
        via_file("pcm32-44100-3ch.wav", lambda p: wav_pcm(p, 44100, 3, 4, 200))
        via_file("empty.wav", lambda p: wav_pcm(p, 16000, 1, 2, 0))
        put(d, "float-16k.wav", wav_float(16000, 1, 400))
        put(d, "float-24k-stereo.wav", wav_float(24000, 2, 300))
        good = open(os.path.join(d, "seed-pcm16-16k-mono.wav"), "rb").read()
        put(d, "truncated.wav", good[:len(good) // 2])
        for name, args in [("sox.flac", ["-r", "16000", "-c", "1", "-b", "16"]),
                           ("sox.ogg", ["-r", "16000", "-c", "1", "-C", "-1"]),
                           ("sox.aiff", ["-r", "11025", "-c", "2", "-b", "16"]),
                           ("sox.au", ["-r", "8000", "-c", "1", "-e", "u-law"]),
                           ("sox-alaw.wav", ["-r", "8000", "-c", "1", "-e", "a-law"]),
                           ("sox-adpcm.wav", ["-r", "16000", "-c", "1", "-e", "ima-adpcm"]),
                           ("sox.w64", ["-r", "16000", "-c", "1", "-b", "16"]),
                           ("sox.caf", ["-r", "16000", "-c", "1", "-b", "16"])]:
            p = os.path.join(tmp, name)
            subprocess.run(["sox", "-n"] + args + [p, "synth", "0.03", "sine", "300-900"], check=True)
            put(d, name, open(p, "rb").read())


# ------------------------------------------------------------- HDF5 readers

TINY = {
    "model_type": "hubert", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 8, "conv_dim": [8, 8], "conv_kernel": [10, 3], "conv_stride": [5, 2],
    "conv_bias": False, "feat_extract_norm": "group", "do_stable_layer_norm": False,
    "num_conv_pos_embeddings": 4, "num_conv_pos_embedding_groups": 2, "layer_norm_eps": 1e-5,
}


def weights():
    import h5py
    d = target_dir("weights")
    with tempfile.TemporaryDirectory() as tmp:
        for tag, over, dtype in [("tiny-base", {}, "fp32"),
                                 ("tiny-large-bf16", {"feat_extract_norm": "layer", "do_stable_layer_norm": True,
                                                      "conv_bias": True}, "bf16")]:
            cfg = convert_hf.full_config(dict(TINY, **over))
            sd = convert_hf.MODELS["hubert"]["random"](cfg, np.random.default_rng(1))
            out = os.path.join(tmp, tag + ".h5")
            convert_hf.write_weights(out, sd, cfg, dtype, order=list(convert_hf.MODELS["hubert"]["names"](cfg)))
            put(d, tag + ".h5", open(out, "rb").read())
        p = os.path.join(tmp, "small.h5")
        with h5py.File(p, "w") as f:
            f.attrs["model_type"] = "hubert"
            f.attrs["hidden_size"] = np.int64(4)
            f.attrs["conv_dim"] = np.asarray([4, 4], dtype=np.int64)
            f.attrs["layer_norm_eps"] = np.float64(1e-5)
            f.create_dataset("a.weight", data=np.arange(6, dtype=np.float32).reshape(2, 3))
            b = f.create_dataset("b.bias", data=np.asarray([0x3f80, 0xc000, 0x7fc0], dtype=np.uint16))
            b.attrs["dtype"] = "bfloat16"
            f.create_dataset("c.f64", data=np.ones(2))
            f.create_dataset("d.scalar", data=np.float32(1.5))
            f.create_dataset("e.chunked", data=np.ones((3, 4), np.float32), chunks=(2, 2), compression="gzip")
            f.create_group("grp")
        put(d, "small.h5", open(p, "rb").read())


def featcache():
    import h5py
    d = target_dir("featcache")
    with tempfile.TemporaryDirectory() as tmp:
        def cache(name, attrs, data):
            p = os.path.join(tmp, name)
            with h5py.File(p, "w") as f:
                for k, v in attrs.items():
                    f.attrs[k] = np.bytes_(v)
                for k, v in data.items():
                    if v.ndim == 2 and v.size:
                        f.create_dataset(k, data=v, chunks=v.shape, compression="gzip", compression_opts=4)
                    else:
                        f.create_dataset(k, data=v)
            put(d, name, open(p, "rb").read())

        key = {"format": "secap-features-2", "encoder": "enc", "settings": "set"}
        x = np.arange(12, dtype=np.float32).reshape(4, 3)
        cache("valid.h5", key, {"a": x, "b": x[:1], "c%2Fd": x})
        cache("empty.h5", key, {})
        cache("stale.h5", dict(key, settings="other"), {"a": x})
        cache("bad-rank.h5", key, {"a": np.ones((2, 2, 2), np.float32), "b": np.ones(3, np.float32)})
        cache("ints.h5", key, {"a": np.ones((2, 3), np.int32), "z": np.zeros((0, 3), np.float32)})
        p = os.path.join(tmp, "num-attr.h5")
        with h5py.File(p, "w") as f:
            f.attrs["format"] = np.int64(1)
            f.create_dataset("a", data=x)
        put(d, "num-attr.h5", open(p, "rb").read())


# ---------------------------------------------------------------- spm, vocab

def spm():
    import sentencepiece as sp
    d = target_dir("spm")
    corpus = ["hello world, hello there", "你好世界，今天天气很好。", "numbers 12345 and 678",
              "tabs\tand  spaces", "emoji 😀 ok", "语速较快，声音较高，情绪中带着一丝不满"] * 20
    with tempfile.TemporaryDirectory() as tmp:
        txt = os.path.join(tmp, "c.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write("\n".join(corpus) + "\n")
        for name, extra in [("llama-like", dict(byte_fallback=True, split_digits=True,
                                                normalization_rule_name="identity",
                                                remove_extra_whitespaces=False)),
                            ("nfkc-user", dict(user_defined_symbols=["<sep>"]))]:
            prefix = os.path.join(tmp, name)
            sp.SentencePieceTrainer.train(input=txt, model_prefix=prefix, vocab_size=400 if "llama" in name else 120,
                                          model_type="bpe", minloglevel=2,
                                          character_coverage=1.0, **extra)
            put(d, name + ".model", open(prefix + ".model", "rb").read())
    put(d, "empty.model", b"")
    put(d, "truncated.model", open(os.path.join(d, "seed-llama-like.model"), "rb").read()[:300])


def vocab():
    d = target_dir("vocab")
    head = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    body = list("的一是不了人我在有他这中大来上个国们到说和地也子时道出而要于就下得可你年生声音高兴") + \
        ["hello", "world", "##s", "##ing", "1", "2", "##3", ",", "!", "。", "，"]
    put(d, "bert-like.txt", "\n".join(head + body).encode() + b"\n")
    put(d, "crlf.txt", "\r\n".join(head + body).encode())
    put(d, "duplicates.txt", "\n".join(head + body + ["hello", ""]).encode() + b"\n")
    put(d, "no-unk.txt", b"[PAD]\n[CLS]\n[SEP]\nhello\n")
    put(d, "bom.txt", b"\xef\xbb\xbf" + "\n".join(head + body).encode())


def lmtext():
    d = target_dir("lmtext")
    put(d, "fortune.txt", "今天天气很好\n%\n  \x1b[32m《静夜思》\x1b[m  \n\n床前明月光，疑是地上霜。\r\nThe fox 123\n".encode())
    put(d, "prompts.txt", "请用一句中文概括音频中讲话者的情感：\n请描述说话人的情绪：\n".encode())
    put(d, "nested-escape.txt", b"\xc2\xa0 x\x1b[;\x1b[34;1mm y \xe3\x80\x80\n\t\n")
    put(d, "bad-utf8.txt", b"ok\n\xe4\xbd\n")
    put(d, "nul.txt", b"ok\nab\x00cd\n")


def main():
    score_json()
    data_layout()
    data_manifest()
    ini()
    train_config()
    audio()
    weights()
    featcache()
    spm()
    vocab()
    lmtext()
    for t in sorted(os.listdir(HERE)):
        p = os.path.join(HERE, t)
        if os.path.isdir(p):
            n = len(os.listdir(p))
            size = sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p))
            print(f"tests/fuzz/{t}/: {n} files, {size} bytes")


if __name__ == "__main__":
    main()
