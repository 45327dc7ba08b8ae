"""Tokenizer: exact pre-token pieces, the id layout of the 15 specials, round trips, transformers loading."""
from __future__ import annotations

import itertools
import json
import random
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawl2model.jobs.cli import main as cli
from crawl2model.tokenizer import files
from crawl2model.tokenizer.pretokenize import (
    build_pre_tokenizer,
    character_ranges,
    fused_pattern,
    pieces,
    split_patterns,
)
from crawl2model.tokenizer.specials import (
    BOS,
    EOS,
    INVALID_UTF8_BYTES,
    byte_to_glyph,
    decode_bytes,
    encode_bytes,
    glyph_to_byte,
    valid_utf8_alphabet,
)

PRE = build_pre_tokenizer()


def P(text: str) -> str:
    return "|".join(pieces(text, PRE))


# --- pre-tokenization -------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Hello world, 12345 apples!\n\n  def f(x):\n\treturn x**2  ",
     "Hello|Ġworld|,|Ġ|1|2|3|4|5|Ġapples|!|Ċ|Ċ|Ġ|Ġdef|Ġf|(|x|):|Ċ|ĉreturn|Ġx|**|2|ĠĠ"),
    ("pi=3.14159, 2024年", "pi|=|3|.|1|4|1|5|9|,|Ġ|2|0|2|4|å¹´"),
    ("line1\r\nline2\rx\n", "line|1|č|Ċ|line|2|č|x|Ċ"),
    ("a\t\tb   c  ", "a|ĉ|ĉb|ĠĠ|Ġc|ĠĠ"),
    ("   ", "ĠĠĠ"),
])
def test_ascii_pieces(text, expected):
    assert P(text) == expected


def test_chinese_with_english_and_fullwidth_punctuation():
    text = "我爱北京，Hello世界！ok。（３）"
    got = [bytes(glyph_to_byte()[g] for g in p).decode() for p in pieces(text, PRE)]
    assert got == ["我爱北京", "，", "Hello", "世界", "！", "ok", "。（", "３", "）"]


@pytest.mark.parametrize("text, expected", [
    ("I ❤\ufe0f you 😀😀!", ["I", " ❤\ufe0f", " you", " 😀😀", "!"]),
    ("日本語のテキスト と 한국어", ["日本語のテキスト", " ", "と", " ", "한국어"]),
    ("Größe café naïve", ["Größe", " café", " naïve"]),
    ("नमस्ते दुनिया", ["नमस्ते", " दुनिया"]),
    ("١٢ ab", ["١", "٢", " ab"]),
    ("“quoted”—done…", ["“", "quoted", "”—", "done", "…"]),
])
def test_unicode_pieces(text, expected):
    assert [bytes(glyph_to_byte()[g] for g in p).decode() for p in pieces(text, PRE)] == expected


def test_kelvin_sign_does_not_widen_the_letter_class():
    """U+212A normalizes to 'K'; a pasted range 'K-ℭ' would cover most of the BMP."""
    letters = character_ranges()["letters"]
    assert all(hi - lo < 0x2000 for lo, hi in letters)
    for rx in [fused_pattern()] + [rx for _, rx in split_patterns()]:
        assert rx.isascii(), "character classes must be written as \\x{...} escapes"


# An independent reference: the same rules from `unicodedata` predicates, no regex.
def _ref_is_cjk(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK UNIFIED", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA", "HANGUL"))


def _ref_pieces(text: str) -> list[str]:
    ws = lambda c: c.isspace() and c not in "\r\n\x1c\x1d\x1e\x1f"
    letter = lambda c: (unicodedata.category(c)[0] == "L" or unicodedata.category(c) in ("Mn", "Mc")) \
        and not _ref_is_cjk(c) and not unicodedata.name(c, "").startswith("VARIATION SELECTOR")
    punct = lambda c: unicodedata.category(c)[0] in "PS" and (ord(c) < 0x80 or 0x2000 <= ord(c) <= 0x206F
                                                             or 0x3000 <= ord(c) <= 0x303F or 0xFF00 <= ord(c) <= 0xFFEF)

    def run_with_ws(pred):
        def find(s, i):
            while i < len(s):
                start = i + 1 if ws(s[i]) and i + 1 < len(s) and pred(s[i + 1]) else i
                if pred(s[start]):
                    end = start
                    while end < len(s) and pred(s[end]):
                        end += 1
                    return i, end
                i += 1
            return None
        return find

    def newline(s, i):
        j = next((k for k in range(i, len(s)) if s[k] in "\r\n"), None)
        return None if j is None else (j, j + 1)

    def trailing(s, i):
        j = len(s)
        while j > i and ws(s[j - 1]):
            j -= 1
        return (j, len(s)) if j < len(s) else None

    def cjk(s, i):
        while i < len(s) and not _ref_is_cjk(s[i]):
            i += 1
        if i == len(s):
            return None
        end = i
        while end < len(s) and _ref_is_cjk(s[end]):
            end += 1
        return i, end

    def digit(s, i):
        j = next((k for k in range(i, len(s)) if unicodedata.category(s[k]) == "Nd"), None)
        return None if j is None else (j, j + 1)

    parts = [text]
    for find in (newline, run_with_ws(letter), run_with_ws(punct), trailing, cjk, digit):
        nxt = []
        for s in parts:
            i = 0
            while (m := find(s, i)) is not None:
                nxt += [s[i:m[0]], s[m[0]:m[1]]]
                i = m[1]
            nxt.append(s[i:])
        parts = [p for p in nxt if p]
    return parts


MIXED = st.text(st.one_of(
    st.sampled_from(list("aZé ß\t\n\r  ,.!?()*_-'\"“”—…，。！（）、「」3０١我愛日本のカナ한국😀❤\ufe0f\u0301\u3000")),
    st.characters(exclude_categories=("Cs", "Cn"))), max_size=40)


def _comparable(ch: str) -> bool:
    """Characters on which the reference's notions agree with the blocks the tokenizer uses
    by design (e.g. Kangxi radicals are CJK by block, not by name; unassigned code points
    and exotic spaces differ between Unicode versions)."""
    from crawl2model.tokenizer.pretokenize import CJK, WHITESPACE

    cp = ord(ch)
    in_ws = ch in "\r\n" or any(lo <= cp <= hi for lo, hi in WHITESPACE)
    in_cjk = any(lo <= cp <= hi for lo, hi in CJK)
    return ch.isspace() == in_ws and _ref_is_cjk(ch) == in_cjk


def _sequential_splits():
    """The rules as DeepSeek serializes them: one `Split` per rule."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(rx), behavior="isolated") for _, rx in split_patterns()]
                                   + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


SEQUENTIAL = _sequential_splits()


@settings(max_examples=300, deadline=None)
@given(MIXED)
def test_pieces_match_reference_and_cover_the_text(text):
    got = pieces(text, PRE)
    assert got == pieces(text, SEQUENTIAL), "the fused pattern must cut exactly like the six splits"
    assert b"".join(bytes(glyph_to_byte()[g] for g in p) for p in got) == text.encode()
    if all(_comparable(c) for c in text):
        assert [bytes(glyph_to_byte()[g] for g in p).decode() for p in got] == _ref_pieces(text)


# --- the 15 specials --------------------------------------------------------------------

def test_alphabet_excludes_exactly_the_invalid_utf8_bytes():
    assert len(INVALID_UTF8_BYTES) == 13 and len(valid_utf8_alphabet()) == 243
    assert len(set(byte_to_glyph().values())) == 256
    for b in INVALID_UTF8_BYTES:
        with pytest.raises(UnicodeDecodeError):
            bytes([b, 0x80, 0x80, 0x80]).decode("utf-8")


def _corpus(folder, n_docs=400):
    """A small mixed corpus: English prose, Chinese, Python code, numbers."""
    rng = random.Random(7)
    words = ["the", "model", "reads", "tokens", "from", "shards", "and", "learns", "how", "text", "is", "written", "by", "people"]
    zh = ["我们", "训练", "一个", "语言", "模型", "数据", "清洗", "去重", "中文", "文本"]
    code = ["def f(x):\n    return x * 2\n", "for i in range(10):\n\tprint(i)\n", "if a == b:\n    pass\n"]
    docs = []
    for i in range(n_docs):
        en = " ".join(rng.choice(words) for _ in range(rng.randint(5, 30))).capitalize() + "."
        cn = "".join(rng.choice(zh) for _ in range(rng.randint(3, 12))) + "。"
        docs.append({"text": f"{en} {cn}\n{rng.choice(code)}Year {rng.randint(1900, 2030)}, ü À ÿ!\n"})
    (folder / "docs.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return folder


VOCAB = 400


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = _corpus(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    assert cli(["tokenizer", "train", "--input", str(data), "--output", str(out),
                "--vocab-size", str(VOCAB), "--max-bytes", "10MB", "--padded-vocab-size", "512"]) == 0
    return out


def test_specials_follow_the_ordinary_vocabulary(trained):
    tok = files.load(str(trained))
    assert tok.get_vocab_size() == VOCAB + 15
    assert tok.token_to_id(BOS) == VOCAB and tok.token_to_id(EOS) == VOCAB + 1
    for i, b in enumerate(INVALID_UTF8_BYTES):
        assert tok.id_to_token(VOCAB + 2 + i) == byte_to_glyph()[b]
    assert sorted(tok.get_vocab().values()) == list(range(VOCAB + 15))
    config = files.read_config(str(trained))
    assert config["padded_vocab_size"] == 512 and config["crawl2model"]["total_tokens"] == VOCAB + 15
    assert json.loads((trained / "special_tokens_map.json").read_text()) == {"bos_token": BOS, "eos_token": EOS}


def test_retraining_is_deterministic_and_skips_finished(trained, tmp_path):
    data = _corpus(tmp_path)
    again = tmp_path / "again"
    args = ["tokenizer", "train", "--input", str(data), "--output", str(again), "--vocab-size", str(VOCAB),
            "--max-bytes", "10MB", "--padded-vocab-size", "512"]
    assert cli(args) == 0
    assert (again / "tokenizer.json").read_bytes() == (trained / "tokenizer.json").read_bytes()
    mtime = (again / "tokenizer.json").stat().st_mtime_ns
    assert cli(args) == 0 and (again / "tokenizer.json").stat().st_mtime_ns == mtime


def test_byte_budget_limits_the_sample(tmp_path):
    from crawl2model.tokenizer import corpus

    files_ = corpus.discover([str(_corpus(tmp_path))])
    total = sum(len(d.encode()) for d in corpus.iter_documents(files_[0]))
    stats = corpus.SampleStats()
    kept = list(corpus.sample(files_, total // 4, seed=1, stats=stats))
    assert 0 < stats.bytes_kept and stats.bytes_kept - len(kept[-1].encode()) < total // 4
    assert kept == list(corpus.sample(files_, total // 4, seed=1))
    assert kept != list(corpus.sample(files_, total // 4, seed=2))


def test_paper_sizes_100015_and_102400(tmp_path):
    """The arithmetic at full size, without training 100k merges: a synthetic BPE with
    243 bytes + 99,757 merges gets the specials appended and is saved and reloaded."""
    from tokenizers import models
    from transformers import AutoTokenizer

    from crawl2model.tokenizer.specials import padded_size
    from crawl2model.tokenizer.train import add_specials, new_tokenizer

    alphabet = valid_utf8_alphabet()
    vocab = {g: i for i, g in enumerate(alphabet)}
    merges = []
    pairs = itertools.chain(((a, b) for a in alphabet for b in alphabet),      # 59,049 two-byte tokens
                            ((a + b, c) for a in alphabet for b in alphabet for c in alphabet))
    while len(vocab) < 100_000:
        a, b = next(pairs)
        merges.append((a, b))
        vocab[a + b] = len(vocab)
    tok = new_tokenizer()
    tok.model = models.BPE(vocab, merges)
    tok, n = add_specials(tok)
    assert n == 100_000 and tok.get_vocab_size() == 100_015 and padded_size(100_015) == 102_400
    assert tok.token_to_id(BOS) == 100_000 and tok.token_to_id(EOS) == 100_001
    assert tok.id_to_token(100_014) == byte_to_glyph()[0xFF]
    files.write_folder(tok, str(tmp_path), n, padded_size(100_015), 4096)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert len(hf) == 100_015 and hf.eos_token_id == 100_001 and hf.bos_token_id == 100_000
    assert files.read_config(str(tmp_path))["padded_vocab_size"] == 102_400


# --- round trips ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tok(trained):
    return files.load(str(trained))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=60) | MIXED)
def test_text_round_trip(tok, text):
    tok.encode_special_tokens = True  # as the tokenize job encodes: a literal "<｜end▁of▁sentence｜>" is text
    try:
        ids = tok.encode(text).ids
    finally:
        tok.encode_special_tokens = False
    assert all(i < VOCAB for i in ids), "valid UTF-8 never needs a special"
    assert tok.decode(ids) == text


def test_special_strings_in_text_round_trip(tok):
    text = f"a{EOS}b{BOS}"
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    tok.encode_special_tokens = True  # how the tokenize job encodes documents
    try:
        ids = tok.encode(text).ids
        assert VOCAB + 1 not in ids and tok.decode(ids) == text
    finally:
        tok.encode_special_tokens = False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=60))
def test_bytes_round_trip(tok, data):
    ids = encode_bytes(tok, data)
    assert decode_bytes(tok, ids) == data


def test_invalid_bytes_use_the_byte_tokens(tok):
    ids = encode_bytes(tok, b"ok\xc0\xff\xf5")
    assert ids[-3:] == [VOCAB + 2, VOCAB + 14, VOCAB + 4]
    assert decode_bytes(tok, ids) == b"ok\xc0\xff\xf5"


def test_transformers_loads_the_folder(trained):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(trained))
    ours = files.load(str(trained))
    text = "Hello world, 12345 apples!\n\n  def f(x):\n\treturn x**2  我爱中文。ü"
    assert len(hf) == VOCAB + 15
    assert hf.encode(text) == ours.encode(text).ids  # no BOS/EOS added, same pre-tokenizer
    assert hf.decode(hf.encode(text)) == text
    assert (hf.bos_token, hf.eos_token) == (BOS, EOS)


def test_report_checks_digits(trained, tmp_path, capsys):
    sample = tmp_path / "en.txt"
    sample.write_text("The year 2024 had 366 days.\n" * 50)
    out = tmp_path / "report.json"
    assert cli(["tokenizer", "report", "--tokenizer", str(trained), "--text", str(sample), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["vocab"]["digits_ok"] and result["vocab"]["cjk_tokens"] > 0
    assert result["files"][0]["bytes"] == 28 * 50 and result["files"][0]["bytes_per_token"] > 1
    assert "only digit tokens are 0-9" in capsys.readouterr().out
