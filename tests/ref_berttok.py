#!/usr/bin/python3
"""Reference for the BERT tokenizer (src/text/berttok.c): writes fixtures into
the directory given as argv[1] (tests/run.sh passes build/ref) under berttok/.

python3-transformers is not in Debian 12, so this is an independent Python
implementation of Hugging Face's slow BertTokenizer, written from its
definitions with unicodedata (Python's own Unicode tables):

  - load_vocab: the file read in text mode (universal newlines), each line
    minus its "\\n" is a token, its index the id; a repeated token keeps the
    later index; ids_to_tokens inverts that dict (a shadowed id is absent and
    converts to the unk token);
  - PreTrainedTokenizer.tokenize: with do_lower_case the text is lower-cased
    one character at a time except the special tokens (HF's regex with
    "(.+?)"), then split at the special tokens (the added-tokens trie);
  - BasicTokenizer: _clean_text, _tokenize_chinese_chars, NFC,
    whitespace_tokenize, lower() + _run_strip_accents, _run_split_on_punc,
    whitespace_tokenize;
  - WordpieceTokenizer: greedy longest-match-first, "##" continuations, more
    than 100 characters -> unk;
  - build_inputs_with_special_tokens / token type ids; truncation=True with
    the "longest_first" strategy as newer HF computes it (first_remove /
    second_remove), padding=True.

Fixtures (hex is UTF-8 in hex; lists are space-separated):
  vocab.txt        a bert-base-chinese-style vocabulary of exactly 21128 lines
  cases.tsv        name lower hex(a) hex(b)|- max_len basic pieces ids enc_ids enc_types
  batch.tsv        name lower max_len hex(a),... hex(b),...|- T lens ids types
  quirks_vocab.txt a vocab with CRLF/CR line ends, an empty line, repeats,
                   U+2028 and U+0085 inside lines, a NUL byte, no final newline
  quirks.tsv       size N / distinct N / id hex(token) id / token id hex(token)
  unicode_lower.tsv, unicode_cased.tsv
                   every code point Python knows (Unicode 14), in blocks:
                   start hex(chars joined by spaces) basic-tokens
"""
import os
import re
import sys
import unicodedata

OUT = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build/ref", "berttok")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_LINES = 21128   # bert-base-chinese's vocab.txt


# ---------------------------------------------------------------- vocab

def load_vocab(path):
    vocab = {}
    with open(path, "r", encoding="utf-8") as f:   # newline=None: \n, \r\n and \r end lines
        lines = f.readlines()
    for i, line in enumerate(lines):
        vocab[line.rstrip("\n")] = i
    ids_to_tokens = {i: t for t, i in vocab.items()}
    return vocab, ids_to_tokens, len(lines)


# ---------------------------------------------------------------- basic tokenizer

def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_chinese(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def whitespace_tokenize(text):
    text = text.strip()
    return text.split() if text else []


def clean_text(text):
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            continue
        out.append(" " if is_whitespace(ch) else ch)
    return "".join(out)


def space_chinese(text):
    return "".join(" %s " % ch if is_chinese(ord(ch)) else ch for ch in text)


def strip_accents(text):
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def split_on_punc(text):
    words, new = [], True
    for ch in text:
        if is_punctuation(ch):
            words.append([ch])
            new = True
        else:
            if new:
                words.append([])
            new = False
            words[-1].append(ch)
    return ["".join(w) for w in words]


def basic_tokenize(text, lower):
    text = space_chinese(clean_text(text))
    text = unicodedata.normalize("NFC", text)
    split = []
    for tok in whitespace_tokenize(text):
        if lower:
            tok = strip_accents(tok.lower())
        split.extend(split_on_punc(tok))
    return whitespace_tokenize(" ".join(split))


def wordpiece(token, vocab):
    if len(token) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(token):
        end, cur = len(token), None
        while start < end:
            sub = token[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS) + ")")


def pre_tokens(text, lower):
    """Chunks of PreTrainedTokenizer.tokenize: (text, is_special)."""
    if lower:
        pat = "(" + "|".join(re.escape(s) for s in SPECIALS) + ")|(.+?)"
        text = re.sub(pat, lambda m: m.groups()[0] or m.groups()[1].lower(), text, flags=re.DOTALL)
    out = []
    for i, part in enumerate(SPECIAL_RE.split(text)):
        if i % 2:
            out.append((part, True))
        elif part:
            out.append((part, False))
    return out


def basic_with_specials(text, lower):
    toks = []
    for part, special in pre_tokens(text, lower):
        toks.extend([part] if special else basic_tokenize(part, lower))
    return toks


def tokenize(text, lower, vocab):
    pieces = []
    for part, special in pre_tokens(text, lower):
        if special:
            pieces.append(part)
        else:
            for tok in basic_tokenize(part, lower):
                pieces.extend(wordpiece(tok, vocab))
    return pieces


def to_ids(pieces, vocab):
    return [vocab.get(p, vocab["[UNK]"]) for p in pieces]


def encode(a, b, max_len, lower, vocab):
    ia = to_ids(tokenize(a, lower, vocab), vocab)
    ib = to_ids(tokenize(b, lower, vocab), vocab) if b is not None else None
    total = len(ia) + (len(ib) if ib is not None else 0) + (3 if ib is not None else 2)
    remove = max(0, total - max_len)
    if remove:
        if ib is None:
            ia = ia[:len(ia) - remove]
        else:
            la, lb = len(ia), len(ib)
            first = min(abs(la - lb), remove)
            second = remove - first
            if la > lb:
                ra, rb = first + second // 2, second - second // 2
            else:
                ra, rb = second // 2, first + second - second // 2
            ia, ib = ia[:la - ra], ib[:lb - rb]
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    ids = [cls] + ia + [sep]
    types = [0] * len(ids)
    if ib is not None:
        ids += ib + [sep]
        types += [1] * (len(ib) + 1)
    return ids, types


# ---------------------------------------------------------------- the vocabulary

# CJK characters the vocabulary leaves out on purpose (-> [UNK])
MISSING = "龘靐齉爩"


def make_vocab(corpus):
    lines = ["[PAD]"] + ["[unused%d]" % i for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>", "<T>"]
    lines += [chr(c) for c in range(33, 127) if not "A" <= chr(c) <= "Z"]
    singles = ("£¤¥§©«®°±²³µ·¹º»¼×ßæ÷øđŋɔəɡʰˇˈˊˋ˙"
               "αβγδεηθικλμνξοπρςστυφχψω" "абвгдежзийклмнопрстуфхцчшщъыьэюя"
               "‖•‥…‰′″※€℃№™ⅰⅱⅲ←↑→↓√∞≈≤≥①②③─│■□▲△○●★☆♀♂♪"
               "、。〃々〈〉《》「」『』【】〔〕〜"
               "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
               "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー"
               "ᄀᄂᄃᄅᄆᄇᄉᄋᄌ하ᅢᅥᅦᅧᅩᅮᅳᅵᆨᆫᆯᆷᆸᆼ"
               "！＂＃％＆＇（）＊＋，－．／：；＜＝＞？［］｛｝～"
               "😀😂👍🎉❤é")
    lines += list(singles)
    words = ["hello", "world", "the", "un", "##aff", "##able", "bert", "test", "##ing", "##s", "##ed", "##er",
             "caf", "na", "##ive", "##ve", "resume", "##sume", "20", "##23", "12", "##31", "##45",
             "3", "##14", "##159", "1000", "##000", "ok", "##ay", "e", "##mail", "don", "can",
             "##é", "##ü", "über", "straße", "##ß", "中国", "##😀", "##™", "ａｂｃ", "##ａ", "##ｂ",
             "カタカナ", "##カ", "##タ", "##ナ", "ᄋ", "##ᅡ", "##ᆫ", "##ᄂ", "##ᅧ", "##ᆼ", "##ᄒ", "##ᄉ",
             "##ᅦ", "##ᄋ", "##ᅭ", "dz", "##z", "ǆ", "ﬁ", "##ω", "σ", "##σ", "##ς", "##υ", "##ε",
             "##δ", "##ο", "##α", "##ι", "##κ", "##λ", "##μ", "##ν", "##ρ", "##τ"]
    words += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)] + ["##%d" % d for d in range(10)]
    seen = set(lines)
    for w in words:
        if w not in seen:
            lines.append(w)
            seen.add(w)
    corpus_cjk = sorted({ch for text in corpus for ch in text if is_chinese(ord(ch))} | {"豈"})
    cjk = [ch for ch in corpus_cjk if ch not in MISSING and ch != "豈"]   # 豈 U+F900 normalises to U+8C48
    cjk.append(chr(0x8C48))
    have = set(cjk)
    c = 0x4E00
    while len(lines) + 2 * len(cjk) < VOCAB_LINES - 1:
        ch = chr(c)
        if ch not in have and ch not in MISSING:
            cjk.append(ch)
            have.add(ch)
        c += 1
    lines += cjk
    lines += ["##" + ch for ch in cjk]
    if len(lines) < VOCAB_LINES:
        lines.append("##" + chr(c))
    assert len(lines) == VOCAB_LINES and len(set(lines)) == len(lines), (len(lines), len(set(lines)))
    assert lines[0] == "[PAD]" and lines[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return lines


# ---------------------------------------------------------------- the test corpus

def corpus_cases():
    long_cjk = "".join(chr(0x4E00 + (i * 37) % 900) for i in range(600))
    cases = [
        ("zh", "今天天气很好，我们去公园玩吧！"),
        ("mixed_en", "Hello World! 这是BERT的测试。"),
        ("digits", "2023年12月31日 下午3:45，温度-5.5℃，圆周率3.14159，1,000,000元"),
        ("emoji", "我好开心😀😂👍🏻!🎉🎉 ❤️ 👨‍👩‍👧 hello😀world"),
        ("accents", "Café naïve résumé Ångström ÉCOLE Über straße façade Ǆ ǅ ǆ İstanbul"),
        ("decomposed", "Cafe\u0301 e\u0301te\u0301 u\u0308ber A\u030angstro\u0308m"),
        ("fullwidth", "ＡＢＣ１２３！？（全角）ａｂｃ　ｘｙｚ，＂引号＂"),
        ("controls", "a\tb\nc\rd\x0be\x0cf\x01g\x7fh\u200bi\ufeffj\ufffdk\x00l\u0085m\u2028n\u2029o\u00a0p\u3000q\u200dr"),
        ("missing", "龘靐齉爩是生僻字，λόγος and ⅳ and Ⅻ"),
        ("unk_words", "abcλxyz café™ hello™ x☃y ǃkhomani"),
        ("long_word_100", "a" * 100),
        ("long_word_101", "a" * 101 + " ok"),
        ("long_accented_101", "é" * 101 + " é" * 3),
        ("decomposed_80", "e\u0301" * 80),
        ("long_word_pieces", "unaffable" * 11 + "x"),
        ("punct", "Hello,world...(test)[x]{y}<z> a+b=c 5%$#@!~`^|\\ “引号” 「括号」 ‐–—… · can't don't e-mail U.S.A."),
        ("symbols", "©®™°±×÷€£¥ §¶ ‰ ☃ ⌘ ⼀⼁ ㈱ ㎡"),
        ("special_tokens", "[CLS]你好[SEP]world[MASK] [cls] [UNK]x[PAD][SEP][Mask]"),
        ("greek_sigma", "ΟΔΥΣΣΕΥΣ ΣΑΣ Σ ςσΣ"),
        ("korean", "안녕하세요 한국어"),
        ("japanese", "カタカナとひらがな、漢字。ｶﾀｶﾅ が ガ"),
        ("cjk_ext", "\U00020000\U0002A700㐀豈\U0002F800 中\u0301文"),
        ("combining_alone", "\u0301 \u0301\u0302 a\u0301\u0302b"),
        ("ligature_titlecase", "ﬁne ǅemal Ǉ ǈ ﬀ"),
        ("whitespace_only", " \t\n\u3000\u2028 "),
        ("empty", ""),
        ("arabic_thai", "مرحبا بالعالم สวัสดีครับ"),
        ("long_input", long_cjk),
        ("mixed_long", "BERT模型在2018年发布，它的英文名是Bidirectional Encoder Representations from Transformers。" * 3),
    ]
    return cases


PAIR_CASES = [
    # (name, a, b, max_len)
    ("pair_basic", "今天天气很好", "Hello world!", 512),
    ("pair_trunc_a_longer", "一二三四五六七八九十百千", "hello world", 10),
    ("pair_trunc_equal", "一二三四五六", "七八九十百千", 9),
    ("pair_trunc_b_longer", "你好", "一二三四五六七八九十", 8),
    ("pair_trunc_to_zero", "一二三", "四五六", 3),
    ("pair_trunc_odd", "一二三四五", "六七八", 6),
    ("pair_empty_b", "一二三", "", 512),
    ("pair_long", "".join(chr(0x4E00 + i) for i in range(400)), "".join(chr(0x5000 + i) for i in range(300)), 512),
    ("single_trunc", "一二三四五六七八九十", None, 6),
    ("single_trunc_min", "一二三", None, 2),
    ("single_512", "".join(chr(0x4E00 + i) for i in range(700)), None, 512),
]

BATCHES = [
    ("batch_single", ["今天天气很好", "Hello", "", "一二三四五六七八九十一二三四五六七八九十"], None, 16),
    ("batch_pairs", ["今天天气很好", "Hello", "一"], ["wonderful day", "你好吗？", "二三四五六七八九十"], 12),
    ("batch_one", ["一二三"], None, 512),
]


# ---------------------------------------------------------------- writing

def hx(s):
    return s.encode("utf-8").hex()


def toks_hex(toks):
    return " ".join(hx(t) for t in toks)


def ints(v):
    return " ".join(str(i) for i in v)


def self_checks(vocab):
    """Known BertTokenizer behaviours (documented examples) on this vocab."""
    assert wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", True) == ["hello", "!", "how", "are", "you", "?"]
    assert basic_tokenize("H\u00E9llo", True) == ["hello"]
    assert basic_tokenize("ah\u535A\u63A8zz", True) == ["ah", "\u535A", "\u63A8", "zz"]
    assert basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", False) == ["HeLLo", "!", "how", "Are", "yoU", "?"]
    assert tokenize("ΣΑΣ", True, vocab)[0] == "σ"           # no final sigma: HF lower-cases char by char
    assert is_control("\u0005") and not is_control("\t") and is_whitespace("\u00A0") and is_punctuation("-")


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = corpus_cases()
    texts = [t for _, t in cases] + [p[1] for p in PAIR_CASES] + [p[2] or "" for p in PAIR_CASES]
    for _, a, b, _ in BATCHES:
        texts += a + (b or [])
    lines = make_vocab(texts)
    vpath = os.path.join(OUT, "vocab.txt")
    with open(vpath, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(l + "\n" for l in lines))
    vocab, _, nlines = load_vocab(vpath)
    assert nlines == VOCAB_LINES and len(vocab) == VOCAB_LINES
    self_checks(vocab)

    nunk = 0
    with open(os.path.join(OUT, "cases.tsv"), "w", encoding="ascii") as f:
        for lower in (1, 0):
            todo = [(n, t, None, 512) for n, t in cases] + PAIR_CASES
            for name, a, b, max_len in todo:
                basic = basic_with_specials(a, lower)
                pieces = tokenize(a, lower, vocab)
                ids = to_ids(pieces, vocab)
                nunk += ids.count(vocab["[UNK]"])
                enc, types = encode(a, b, max_len, lower, vocab)
                f.write("\t".join([name, str(lower), hx(a), "-" if b is None else hx(b), str(max_len),
                                   toks_hex(basic), toks_hex(pieces), ints(ids), ints(enc), ints(types)]) + "\n")
    assert nunk > 10, "the corpus must exercise [UNK]"

    with open(os.path.join(OUT, "batch.tsv"), "w", encoding="ascii") as f:
        for lower in (1, 0):
            for name, a, b, max_len in BATCHES:
                rows = [encode(a[i], b[i] if b else None, max_len, lower, vocab) for i in range(len(a))]
                T = max(len(r[0]) for r in rows)
                pad = vocab["[PAD]"]
                ids = [x for r in rows for x in r[0] + [pad] * (T - len(r[0]))]
                types = [x for r in rows for x in r[1] + [0] * (T - len(r[1]))]
                f.write("\t".join([name, str(lower), str(max_len), ",".join(hx(t) for t in a),
                                   ",".join(hx(t) for t in b) if b else "-", str(T),
                                   ints(len(r[0]) for r in rows), ints(ids), ints(types)]) + "\n")

    # a vocab exercising load_vocab's corners
    raw = ("[PAD]\r\n[UNK]\n[CLS]\r[SEP]\n\nfoo\nbar \nfoo\na\u2028b\nx\u0085y\ntab\there\n\x0bvt\n\n\n"
           "##ing\nnul\x00byte\n[MASK]\n\u00e9\ne\u0301\n[MASK]")
    qpath = os.path.join(OUT, "quirks_vocab.txt")
    with open(qpath, "wb") as f:
        f.write(raw.encode("utf-8"))
    qv, qinv, qn = load_vocab(qpath)
    with open(os.path.join(OUT, "quirks.tsv"), "w", encoding="ascii") as f:
        f.write("size\t%d\n" % qn)
        f.write("distinct\t%d\n" % len(qv))
        queries = list(qv) + ["bar", "[pad]", "foo\r", "a", "x", "vt", "nul", "e"]
        for q in queries:
            f.write("id\t%s\t%d\n" % (hx(q), qv.get(q, -1)))
        for i in range(qn):
            f.write("token\t%d\t%s\n" % (i, hx(qinv.get(i, "[UNK]"))))

    # every code point Python's tables know, one basic tokenisation per block
    for lower, name in ((1, "unicode_lower.tsv"), (0, "unicode_cased.tsv")):
        with open(os.path.join(OUT, name), "w", encoding="ascii") as f:
            for start in range(0, 0x110000, 512):
                chars = []
                for cp in range(start, start + 512):
                    if 0xD800 <= cp < 0xE000 or cp == 0:
                        continue
                    cat = unicodedata.category(chr(cp))
                    if cat == "Cn" or (cat == "Co" and cp >= 0xF0000):
                        continue            # unassigned in Python's Unicode, or the huge private planes
                    chars.append(chr(cp))
                if not chars:
                    continue
                text = " ".join(chars)
                f.write("%x\t%s\t%s\n" % (start, hx(text), toks_hex(basic_with_specials(text, lower))))
    print("ref_berttok: %d-line vocab, %d cases, unicode %s, fixtures in %s"
          % (VOCAB_LINES, 2 * (len(cases) + len(PAIR_CASES)), unicodedata.unidata_version, OUT))


if __name__ == "__main__":
    main()
