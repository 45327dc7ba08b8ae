"""The `deepseek-llm` preset: DeepSeek LLM's published pre-tokenizer, its quirks, and the fused regex
rustbpe trains with, measured against the published pipeline on held-out lines."""
from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
import regex

from crawl2model.jobs.cli import main as cli
from crawl2model.tokenizer import deepseek, encoder, files
from crawl2model.tokenizer.pretokenize import build_pre_tokenizer, encoding_pattern
from crawl2model.tokenizer.specials import glyph_to_byte

DATA = Path(__file__).parent / "data" / "tokenizer"


def published():
    """The pre-tokenizer block of deepseek-ai/deepseek-llm-7b-base's tokenizer.json (non-ASCII as \\u escapes)."""
    from tokenizers import Tokenizer

    spec = json.loads((DATA / "deepseek_llm_pre_tokenizer.json").read_text())
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
           "pre_tokenizer": spec, "post_processor": None, "decoder": None,
           "model": {"type": "BPE", "vocab": {}, "merges": []}}
    return Tokenizer.from_str(json.dumps(tok)).pre_tokenizer


PUBLISHED = published()
OURS = build_pre_tokenizer("deepseek-llm")


def hf_pieces(pre, text: str) -> list[str]:
    g2b = glyph_to_byte()
    return [bytes(g2b[c] for c in p).decode("utf-8") for p, _ in pre.pre_tokenize_str(text)]


def fused_finder():
    pattern = encoding_pattern("deepseek-llm")[0]  # \x{HEX} (fancy-regex) -> \UXXXXXXXX (Python regex)
    return regex.compile(re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: f"\\U{int(m.group(1), 16):08X}", pattern)).findall


def heldout_lines() -> dict[str, list[str]]:
    with gzip.open(DATA / "heldout.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return {lang: [line for r in rows if r["lang"] == lang for line in r["text"].split("\n") if line]
            for lang in ("en", "zh", "code", "digits")}


def test_letter_class_is_the_published_one_with_the_real_kelvin_sign():
    letters = dict(deepseek.LETTERS)
    assert letters[0x212A] == 0x212D and 0x4B not in letters  # U+212A-U+212D, not "K"-U+212D
    assert all(hi - lo < 0x200 for lo, hi in deepseek.LETTERS)
    for rx in deepseek.split_patterns() + [deepseek.fused_pattern()]:
        assert rx.isascii()
    # With "K"-U+212D, × and © would be letters; the real class leaves them out. KELVIN SIGN is a
    # letter, but also inside the "CJK" class (U+0800-U+9FA5), so step 5 cuts it out again.
    assert hf_pieces(OURS, "a×b ©c\u212ad") == ["a", "×", "b", " ©", "c", "\u212a", "d"]


@pytest.mark.parametrize("text, expected", [
    ('He said ")。" then', ["He", " said", " \")", "。", "\"", " then"]),
    ("a “quoted” word", ["a", " ", "“", "quoted", "”", " word"]),
    ("café naïve Việt", ["caf", "é", " na", "ï", "ve", " Vi", "ệ", "t"]),
    ("价格：€12，共3个。", ["价格", "：", "€", "1", "2", "，", "共", "3", "个", "。"]),
    ("x = 12345  \n", ["x", " =", " ", "1", "2", "3", "4", "5", "  ", "\n"]),
    ("ⅫⅢ ½ ², ①②", ["Ⅻ", "Ⅲ", " ", "½", " ", "²", ",", " ", "①", "②"]),
])
def test_published_quirks(text, expected):
    assert hf_pieces(PUBLISHED, text) == expected
    assert hf_pieces(OURS, text) == expected
    assert fused_finder()(text) == expected


def test_preset_cuts_exactly_like_the_published_pipeline():
    for lang, lines in heldout_lines().items():
        assert [hf_pieces(OURS, t) for t in lines] == [hf_pieces(PUBLISHED, t) for t in lines], lang


def test_fused_regex_agrees_on_held_out_lines():
    find = fused_finder()
    for lang, lines in heldout_lines().items():
        agree = sum(find(t) == hf_pieces(PUBLISHED, t) for t in lines)
        assert len(lines) >= 500 and agree / len(lines) >= 0.999, (lang, agree, len(lines))


def test_training_with_the_preset(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(DATA / "train.txt.gz", corpus / "train.txt.gz")
    out = tmp_path / "tok"
    assert cli(["tokenizer", "train", "--input", str(corpus), "--output", str(out), "--vocab-size", "1000",
                "--pretokenizer", "deepseek-llm", "--max-bytes", "500KB"]) == 0
    saved = json.loads((out / "tokenizer.json").read_text())["pre_tokenizer"]
    assert [p["type"] for p in saved["pretokenizers"]] == ["Split"] * 5 + ["Digits", "ByteLevel"]
    config = files.read_config(str(out))["crawl2model"]
    assert config["pretokenizer"] == "deepseek-llm" and config["tiktoken"]["matches_tokenizer_json"] is False
    assert encoder.read_spec(str(out)).backend == "tokenizers"  # ids come from tokenizer.json itself
    tok = files.load(str(out))
    text = "café “x”。 12"
    assert tok.decode(tok.encode(text).ids) == text
