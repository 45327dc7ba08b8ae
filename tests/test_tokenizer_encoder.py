"""The tokenize job's encoder: tiktoken from tokenizer.tiktoken gives exactly the ids of `tokenizers`
on tokenizer.json, over real multilingual text and the inputs that break encoders."""
from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawl2model.core.errors import InputError
from crawl2model.jobs.cli import main as cli
from crawl2model.tokenizer import encoder
from crawl2model.tokenizer.specials import BOS, EOS

DATA = Path(__file__).parent / "data" / "tokenizer"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus")
    shutil.copy(DATA / "train.txt.gz", corpus / "train.txt.gz")
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    assert cli(["tokenizer", "train", "--input", str(corpus), "--output", str(out), "--vocab-size", "4000"]) == 0
    return out


@pytest.fixture(scope="module")
def pair(folder):
    spec = encoder.read_spec(str(folder))
    assert spec.backend == "tiktoken"
    return encoder.get_encoder(spec), encoder.TokenizersEncoder(spec.tokenizer_json)


def _assert_same(pair, texts):
    fast, hf = pair
    for text, a, b in zip(texts, fast.encode_batch(texts), hf.encode_batch(texts)):
        assert a.dtype == np.uint32 and a.tolist() == b.tolist(), repr(text[:200])


def _edge_cases(docs: list[str]) -> list[str]:
    rng = random.Random(1)
    raw = "\n".join(docs[:200]).encode()
    broken = bytearray(raw[:20000])
    for _ in range(200):  # invalid bytes next to multi-byte characters, decoded as the corpus reader does
        broken.insert(rng.randrange(len(broken)), rng.choice([0x80, 0xC0, 0xE4, 0xF0, 0xFF]))
    return [
        bytes(broken).decode("utf-8", "replace"),
        "emoji 😀😀 👩‍👩‍👧 ❤️ flags 🇫🇷🇯🇵 and 🧑🏽‍💻!",
        "1234567890 ١٢٣ ０１２３ ½ ² 3.14159e-10 0xDEADBEEF 2024年12月1日",
        "\ufffd\ufffd replacement\ufffdcharacters \ufffd",
        f"quoted specials {EOS} and {BOS} stay text",
        "mixed 中文English混合テキスト한국어 Ελληνικά русский عربي\u200b\u00a0\u3000end  ",
        "\t\t  \r\n\r\n   \n",
        "x" * 120_000,                              # one very long piece
        " ".join(docs)[:300_000],                   # one very long line
        "ab" * 50_000 + "\u0301" * 1000,
    ]


def test_tiktoken_ids_equal_tokenizers_on_real_multilingual_text(pair):
    with gzip.open(DATA / "heldout.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    docs = [r["text"] for r in rows]
    assert {"zh", "ja", "ko", "ar", "ru", "el", "vi", "digits"} <= {r["lang"] for r in rows}
    _assert_same(pair, docs)
    _assert_same(pair, _edge_cases(docs))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=80))
def test_tiktoken_ids_equal_tokenizers_on_arbitrary_text(pair, text):
    _assert_same(pair, [text])


def test_folders_without_tiktoken_fall_back_to_tokenizers(folder, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    (old / "tokenizer.tiktoken").unlink()
    spec = encoder.read_spec(str(old))
    assert spec.backend == "tokenizers" and encoder.get_encoder(spec).backend == "tokenizers"
    with pytest.raises(InputError, match="no tokenizer.tiktoken"):
        encoder.read_spec(str(old), "tiktoken")
    assert encoder.read_spec(str(folder), "tokenizers").backend == "tokenizers"
