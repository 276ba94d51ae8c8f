#!/usr/bin/python3
"""tests/ref_spm.py OUTDIR - sentencepiece reference for the C BPE tokenizer.

Trains small BPE models with sentencepiece's own trainer (Debian's
python3-sentencepiece 0.1.97) on a generated corpus of mixed Chinese, English,
digits, emoji, punctuation, tabs and whitespace runs, builds a few models by
hand (protobuf written here) for corner cases the trainer never produces,
and records what libsentencepiece gives on held-out test lines: characters
unseen in training, other scripts, emoji sequences, NFKC-sensitive text, tabs,
runs of spaces, empty lines, malformed UTF-8, very long lines.

Writes to OUTDIR, for each model NAME:
  spm_NAME.model   the model
  spm_NAME.ref     tab-separated records, hex for every byte string:
    meta   vocab bos eos unk pad roundtrip   (ids as sp.bos_id() etc.;
                                              roundtrip 1: decode(encode(x)) == x
                                              must hold for valid UTF-8 x
                                              without U+2581)
    piece  id type score hex(piece) id2      (type: sentencepiece enum, 1 also for
                                              USER_DEFINED, which python cannot tell; id2:
                                              sp.piece_to_id(piece))
    enc    hex(text) ids                     sp.encode(text)
    encbe  hex(text) ids                     sp.encode(text, add_bos, add_eos)
    encfail hex(text)                        the library fails on text (a CONTROL
                                             piece in the result; python gives [])
    dec    ids hex(text)                     sp.decode(ids)
  spm_refuse.txt  "file<TAB>substring": models the C code must refuse
                  (unigram, word, char), with a word its error must contain
  spm_bench.txt   ~2 MB of corpus lines for tools/bench/bench_spm.c
"""
import os
import random
import struct
import sys
import zlib

import sentencepiece as spm

OUT = sys.argv[1] if len(sys.argv) > 1 else "build/ref"
os.makedirs(OUT, exist_ok=True)
TMP = os.path.join(OUT, "spm_tmp")
os.makedirs(TMP, exist_ok=True)

EN = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
      "word but not what all were we when your can said there use an each which she do how their if will up "
      "other about out many then them these so some her would make like him into time has look two more write "
      "go see number no way could people my than first water been call who oil its now find long down day did "
      "get come made may part voice emotion speaker calm angry happy sad surprised neutral fear caption model "
      "token piece merge byte fallback LLaMA Transformer HuBERT Q-Former OpenBLAS").split()
ZH = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面"
      "而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性"
      "好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第"
      "向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管"
      "特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处"
      "说话语速声音情绪开心悲伤愤怒惊讶平静恐惧厌恶兴奋低沉洪亮轻柔缓慢急促")
PUNCT = list("，。！？、；：“”（）《》…—,.!?;:'\"()[]{}<>@#$%^&*-_=+/\\|~`")
EMOJI = [chr(c) for c in range(0x1F600, 0x1F640)] + ["❤", "✨", "👍", "🎉", "🔥"]


def gen_line(r):
    parts = []
    for _ in range(r.randint(1, 14)):
        k = r.random()
        if k < 0.35:
            parts.append(r.choice(EN) if r.random() < 0.8 else r.choice(EN).capitalize())
        elif k < 0.65:
            parts.append("".join(r.choice(ZH) for _ in range(r.randint(1, 8))))
        elif k < 0.78:
            parts.append(str(r.randint(0, 10 ** r.randint(1, 7))))
        elif k < 0.86:
            parts.append(r.choice(PUNCT))
        else:
            parts.append("".join(r.choice(EMOJI) for _ in range(r.randint(1, 3))))
    line = ""
    for i, p in enumerate(parts):
        if i:
            k = r.random()
            if k < 0.75:
                line += " "
            elif k < 0.85:
                line += ""
            elif k < 0.93:
                line += " " * r.randint(2, 6)
            else:
                line += "\t" * r.randint(1, 2)
        line += p
    if r.random() < 0.05:
        line = " " * r.randint(1, 3) + line
    if r.random() < 0.05:
        line += " " * r.randint(1, 3)
    return line


def corpus(seed, n):
    r = random.Random(seed)
    return [gen_line(r) for _ in range(n)]


TRAIN = os.path.join(TMP, "train.txt")
with open(TRAIN, "w", encoding="utf-8") as f:
    f.write("\n".join(corpus(1, 6000)) + "\n")


def special_lines():
    r = random.Random(7)
    s = ["", " ", "   ", "\t", " \t ", "\t\t", "a", "a  b", "a   b    c", "  leading", "trailing  ", "  both  ",
         "\t\ttabs\tinside\t", "x\t \ty", "hello world", "Hello World HELLO",
         "emoji 👩‍👩‍👧‍👦 🇨🇳 ✊🏿 😀😃😄", "rare 龘 𠀀 𪚥 齉", "Кириллица и ещё", "العربية", "हिन्दी", "한국어 텍스트",
         "ﬁ ﬂ ① ㍻ Ａｂｃ １２３ ｶﾀｶﾅ ™ ½", "Ǆ ß ẞ İ Σς", "\u3000全角空格\u3000", "\u00a0nbsp\u00a0", "zero\u200bwidth",
         "e\u0301 cafe\u0301", "\x00nul\x00", "\x01\x7f\x1b[0m", "\r", "a\rb", "line\u2028sep", "a\x0bb\x0cc",
         "<s></s><unk><pad><sep>[MASK]<ctrl><0x41><0xZZ>", "▁ lower block ▁▁ ▁", " ▁", "\ufffd replacement",
         "123456789012345", "3.14159 -42 1e10 0x1F 007", "２０２４年１２月", "说话人语速较快，声音洪亮。",
         "她用缓慢的语速说话，听起来很悲伤😢", "mixed中文English123混合😀\tTab", "[MASK] <sep> [MASK]<sep>",
         "x" * 40, "ab" * 30, "\u2581" * 5]
    # very long lines
    s.append(" ".join(corpus(11, 600)))                   # ~20k chars mixed
    s.append(" " * 5000)
    s.append("a" * 3000)
    s.append("".join(r.choice(EMOJI) for _ in range(2000)))
    s.append("".join(r.choice(ZH) for _ in range(8000)))
    s.append("".join(chr(r.randint(0x4E00, 0x9FFF)) for _ in range(3000)))  # mostly unseen CJK
    s.append("\t".join(str(r.randint(0, 10 ** 9)) for _ in range(500)))
    s.append("".join(chr(r.choice([r.randint(0x20, 0x7E), r.randint(0xA0, 0x2FF), r.randint(0x370, 0x52F),
                                   r.randint(0x3040, 0x30FF), r.randint(0xAC00, 0xD7A3),
                                   r.randint(0x1F300, 0x1FAFF), r.randint(0x20000, 0x2A6DF)]))
                 for _ in range(4000)))
    return s


# Malformed UTF-8 (libsentencepiece replaces each bad byte with U+FFFD).
BAD = [b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80", b"\xe4\xb8", b"abc\x80def",
       b"\xe4\xb8\xad\xe6\x96", b"\xf0\x9f\x98", b" \xc3", b"\xc3\xa9\xc3"]


def test_lines():
    lines = [l.encode("utf-8") for l in corpus(2, 400) + special_lines()]
    return lines + BAD


def hexs(b):
    return b.hex()


def ids_str(ids):
    return " ".join(str(i) for i in ids)


def write_ref(name, sp, lines, roundtrip):
    r = random.Random(zlib.crc32(name.encode()))
    n = sp.get_piece_size()
    out = [f"meta\t{n}\t{sp.bos_id()}\t{sp.eos_id()}\t{sp.unk_id()}\t{sp.pad_id()}\t{int(roundtrip)}"]
    for i in range(n):
        t = 1
        if sp.is_unknown(i): t = 2
        elif sp.is_control(i): t = 3
        elif sp.is_unused(i): t = 5
        elif sp.is_byte(i): t = 6
        pc = sp.id_to_piece(i)
        out.append(f"piece\t{i}\t{t}\t{sp.get_score(i)!r}\t{hexs(pc.encode('utf-8'))}\t{sp.piece_to_id(pc)}")
    decs = []
    for l in lines:
        ids = sp.encode(l)
        if not ids and sp.encode_as_immutable_proto(l).pieces:
            out.append(f"encfail\t{hexs(l)}")  # a CONTROL piece in the result: the library fails
            continue
        out.append(f"enc\t{hexs(l)}\t{ids_str(ids)}")
        decs.append(ids)
        if roundtrip and b"\xe2\x96\x81" not in l:
            try:
                l.decode("utf-8")
                assert sp.decode(ids).encode("utf-8") == l, (name, l[:50])
            except UnicodeDecodeError:
                pass
    if sp.bos_id() >= 0 and sp.eos_id() >= 0:
        for l in lines[:60]:
            if not sp.encode(l) and sp.encode_as_immutable_proto(l).pieces:
                continue
            out.append(f"encbe\t{hexs(l)}\t{ids_str(sp.encode(l, add_bos=True, add_eos=True))}")
    # decode: the encodings, then random id sequences biased to the hard cases
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)]
    spacey = [i for i in range(n) if sp.id_to_piece(i).startswith("\u2581")]
    bytes_ = [i for i in range(n) if sp.is_byte(i)]
    for _ in range(400):
        seq = []
        for _ in range(r.randint(0, 12)):
            k = r.random()
            pool = special if k < 0.25 else spacey if k < 0.45 else bytes_ if k < 0.7 else None
            seq.append(r.choice(pool) if pool else r.randrange(n))
        decs.append(seq)
    for seq in decs:
        out.append(f"dec\t{ids_str(seq)}\t{hexs(sp.decode(seq).encode('utf-8'))}")
    with open(os.path.join(OUT, f"spm_{name}.ref"), "w") as f:
        f.write("\n".join(out) + "\n")


def train(name, **kw):
    prefix = os.path.join(TMP, name)
    args = dict(input=TRAIN, model_prefix=prefix, model_type="bpe", num_threads=2, minloglevel=2)
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    data = open(prefix + ".model", "rb").read()
    with open(os.path.join(OUT, f"spm_{name}.model"), "wb") as f:
        f.write(data)
    return data


LLAMA = dict(byte_fallback=True, split_digits=True, normalization_rule_name="identity", add_dummy_prefix=True,
             remove_extra_whitespaces=False, allow_whitespace_only_pieces=True, character_coverage=0.9995,
             max_sentencepiece_length=16, pad_id=-1)

lines = test_lines()


def ref(name, roundtrip, data=None):
    path = os.path.join(OUT, f"spm_{name}.model")
    if data is not None:
        with open(path, "wb") as f:
            f.write(data)
    sp = spm.SentencePieceProcessor(model_file=path)
    write_ref(name, sp, lines, roundtrip)
    return sp


# LLaMA-like (byte fallback, digits split, identity, dummy prefix, spaces kept), three sizes.
ref("llama_s", 1, train("llama_s", vocab_size=800, **dict(LLAMA, character_coverage=0.98)))
ref("llama_m", 1, train("llama_m", vocab_size=1500, user_defined_symbols=["<sep>", "[MASK]", "😀😀"],
                        control_symbols=["<ctrl>"], **LLAMA))
llama_l = train("llama_l", vocab_size=6000, **LLAMA)
ref("llama_l", 1)
# Default nmt_nfkc normalisation with user-defined symbols, no byte fallback
# (runs of unknown characters -> one <unk>), a pad id, and self-test samples.
nfkc = train("nfkc_user", vocab_size=1200, user_defined_symbols=["<sep>", "[MASK]", "##"], pad_id=3,
             self_test_sample_size=40, character_coverage=0.995)
ref("nfkc_user", 0)
# nfkc_cf (case folding), whitespace as suffix, custom ids and unk surface, no BOS.
ref("nfkc_cf_suffix", 0, train("nfkc_cf_suffix", vocab_size=1000, normalization_rule_name="nfkc_cf",
                                treat_whitespace_as_suffix=True, byte_fallback=True, control_symbols=["<c1>", "<c2>"],
                                bos_id=-1, eos_id=1, unk_id=2, unk_surface="<?>"))
# Identity without the dummy prefix, extra whitespace removed.
ref("noprefix", 0, train("noprefix", vocab_size=1000, normalization_rule_name="identity", add_dummy_prefix=False,
                         byte_fallback=True, split_digits=True))
# Custom rules (longest match, a deletion) and a denormaliser.
rules = os.path.join(TMP, "rules.tsv")
with open(rules, "w") as f:
    f.write("41 42\t78\n41\t61\n9\t20\n31 32 33\t\n4E2D 6587\t4E2D 5B57\n")
derules = os.path.join(TMP, "derules.tsv")
with open(derules, "w") as f:
    f.write("78\t41 42\n5B57\t6587\n")
ref("rules", 0, train("rules", vocab_size=1000, normalization_rule_tsv=rules, denormalization_rule_tsv=derules,
                      byte_fallback=True))


# ---- models the trainer never writes: a protobuf writer -------------------
def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_bytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def f_varint(num, v):
    return varint(num << 3) + varint(v)


def piece(p, score, typ=1):
    body = f_bytes(1, p.encode("utf-8")) + varint(2 << 3 | 5) + struct.pack("<f", score)
    if typ != 1:
        body += f_varint(3, typ)
    return f_bytes(1, body)


def model(pieces, trainer=b"", normalizer=b""):
    return (b"".join(piece(*p) for p in pieces) + f_bytes(2, f_varint(3, 2) + trainer) +
            f_bytes(3, f_bytes(1, b"identity") + normalizer))


# Equal scores (leftmost wins), a pair that wins only later, UNUSED pieces
# split back, a single-character CONTROL piece, one string both CONTROL and
# NORMAL, user-defined symbols inside words.
hand = [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3), ("\u2581", -1), ("a", -2), ("b", -3), ("c", -4),
        ("d", -5), ("ab", -5), ("bc", -5), ("abc", -6), ("cd", -1.5), ("bcd", -7), ("\u2581a", -8),
        ("aa", -9), ("aaa", -9), ("dd", -10, 5), ("ddd", -3), ("z", 0, 3), ("x", 0, 3), ("x", -11),
        ("q", 0, 4), ("qq", 0, 4), ("\u2581\u2581", -12), ("e", -13), ("ee", -2.5, 5), ("eee", -1)]
hand_lines = [s.encode() for s in ["abc", "abcd", "abcabc", "bcab", "aaaa", "aaaaa", "dddd", "ddddd", "zz z", "x",
                                   "xx ax", "qqq", "aqqqa", "  a  ", "eeee", "eeeee", "ababab cdcd", "", " "]] + \
    [l for l in lines[:50]]
sp_hand_data = model(hand)
with open(os.path.join(OUT, "spm_hand.model"), "wb") as f:
    f.write(sp_hand_data)
sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "spm_hand.model"))
write_ref("hand", sp, hand_lines, 0)
# The same without escaping spaces and without the dummy prefix (fields the
# trainer has no flag for): spaces stay ' ' and may be merged like letters.
hand2 = [p for p in hand if p[0] != "\u2581\u2581"] + [(" ", -1.2), ("  ", -0.5), (" a", -3.5)]
with open(os.path.join(OUT, "spm_hand_noesc.model"), "wb") as f:
    f.write(model(hand2, normalizer=f_varint(3, 0) + f_varint(5, 0)))
sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, "spm_hand_noesc.model"))
write_ref("hand_noesc", sp, hand_lines, 0)

# UNUSED pieces through the library's own SetVocabulary (BPE marks every
# multi-character piece outside the list UNUSED), then reloaded from disk.
# On nfkc_user the same change breaks its self-test samples, which the
# library then refuses to load: so must the C code.
train("unused_base", vocab_size=1200, user_defined_symbols=["<sep>"], character_coverage=0.995)
unused_broken = None
for base, name in [("unused_base", "nfkc_unused"), ("nfkc_user", None)]:
    sp = spm.SentencePieceProcessor(model_file=os.path.join(OUT, f"spm_{base}.model"))
    keep = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if i % 3]
    sp.set_vocabulary(keep)
    if name:
        ref(name, 0, sp.serialized_model_proto())
    else:
        unused_broken = sp.serialized_model_proto()
with open(os.path.join(OUT, "spm_refuse_selftest.model"), "wb") as f:
    f.write(unused_broken)
try:
    spm.SentencePieceProcessor(model_file=os.path.join(OUT, "spm_refuse_selftest.model"))
    raise SystemExit("ref_spm: expected libsentencepiece to refuse spm_refuse_selftest.model")
except RuntimeError:
    pass

# A later normalizer_spec message merges into the first (protobuf rules):
# llama_l with escape_whitespaces off.
ref("llama_noesc", 0, llama_l + f_bytes(3, f_varint(5, 0)))

# ---- models to refuse ------------------------------------------------------
refuse = []
for mt in ["unigram", "word", "char"]:
    train(f"refuse_{mt}", model_type=mt, vocab_size=500 if mt == "unigram" else 300, use_all_vocab=mt != "unigram",
          hard_vocab_limit=False)
    refuse.append(f"spm_refuse_{mt}.model\tmodel_type is {mt.upper()}")
refuse.append("spm_refuse_selftest.model\tself_test_data")
with open(os.path.join(OUT, "spm_refuse.txt"), "w") as f:
    f.write("\n".join(refuse) + "\n")

# ---- benchmark corpus --------------------------------------------------------
with open(os.path.join(OUT, "spm_bench.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(corpus(3, 30000)) + "\n")
print("ref_spm: models", sorted(x for x in os.listdir(OUT) if x.startswith("spm_") and x.endswith(".model")))
