"""rustbpe training: its ranks become tokenizer.json (vocab + merges in rank order) and tokenizer.tiktoken,
and the saved HF tokenizer encodes held-out real text to exactly the trainer's own ids."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from crawl2model.jobs.cli import main as cli
from crawl2model.tokenizer import files, ranks
from crawl2model.tokenizer.pretokenize import encoding_pattern
from crawl2model.tokenizer.specials import BOS, EOS, INVALID_UTF8_BYTES, byte_to_glyph

DATA = Path(__file__).parent / "data" / "tokenizer"
VOCAB = 3000


def heldout() -> list[dict]:
    with gzip.open(DATA / "heldout.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    shutil.copy(DATA / "train.txt.gz", folder / "train.txt.gz")
    return folder


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    assert cli(["tokenizer", "train", "--input", str(corpus), "--output", str(out),
                "--vocab-size", str(VOCAB), "--padded-vocab-size", "3072"]) == 0
    return out


@pytest.fixture(scope="module")
def trainer(corpus):
    """rustbpe run directly on the same documents, as the reference encoder."""
    import rustbpe

    from crawl2model.tokenizer import corpus as tc

    t = rustbpe.Tokenizer()
    t.train_from_iterator(tc.sample(tc.discover([str(corpus)]), 1 << 40, seed=0),
                          VOCAB + len(INVALID_UTF8_BYTES), pattern=encoding_pattern()[0])
    return t


def test_folder_layout_and_report(trained):
    tok = files.load(str(trained))
    assert tok.get_vocab_size() == VOCAB + 15
    assert tok.token_to_id(BOS) == VOCAB and tok.token_to_id(EOS) == VOCAB + 1
    assert [tok.id_to_token(VOCAB + 2 + i) for i in range(13)] == [byte_to_glyph()[b] for b in INVALID_UTF8_BYTES]
    report = json.loads((trained / "report.json").read_text())
    assert report["trainer"] == "rustbpe" and report["ordinary_tokens"] == VOCAB
    tk = files.read_config(str(trained))["crawl2model"]["tiktoken"]
    assert tk == {"file": "tokenizer.tiktoken", "pattern": encoding_pattern()[0], "matches_tokenizer_json": True}
    saved = ranks.loads((trained / "tokenizer.tiktoken").read_text())
    assert sorted(saved.values()) == [*range(VOCAB), *range(VOCAB + 2, VOCAB + 15)]
    vocab = tok.get_vocab()
    assert all(vocab[ranks.glyphs(t)] == r for t, r in saved.items()), "tiktoken ranks are the tokenizer.json ids"


def test_merges_are_derivable_in_rank_order(trained):
    saved = ranks.loads((trained / "tokenizer.tiktoken").read_text())
    ordinary = {t: r for t, r in saved.items() if r < VOCAB}
    merges = ranks.merges(ordinary)
    assert len(merges) == VOCAB - 243
    by_rank = sorted(ordinary, key=ordinary.get)
    assert all(a + b == by_rank[243 + i] for i, (a, b) in enumerate(merges))
    data = json.loads((trained / "tokenizer.json").read_text())
    assert [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in data["model"]["merges"]] == \
        [(ranks.glyphs(a), ranks.glyphs(b)) for a, b in merges]


def test_ranks_that_no_merge_reaches_are_refused():
    base = {bytes([b]): b for b in range(256)}
    # "abc" ranked before "ab" and "bc": no lower-ranked pair makes it.
    with pytest.raises(ValueError, match="not one merge"):
        ranks.merges({**base, b"abc": 256, b"ab": 257})


def test_saved_tokenizer_encodes_like_the_trainer(trained, trainer):
    tok = files.load(str(trained))
    tok.encode_special_tokens = True
    ours = {t: r for t, r in ranks.from_rustbpe(trainer.get_mergeable_ranks()).items()}
    saved = ranks.loads((trained / "tokenizer.tiktoken").read_text())
    assert all(saved[t] == r for t, r in ours.items()), "same training text, same merges"
    to_ours = {r: ours[t] for t, r in trainer.get_mergeable_ranks() if t in ours}
    docs = [d["text"] for d in heldout()]
    mismatched = [d for d, enc in zip(docs, tok.encode_batch_fast(docs, add_special_tokens=False))
                  if enc.ids != [to_ours[i] for i in trainer.encode(d)]]
    assert len(docs) > 2000 and mismatched == []


def test_hf_trainer_stays_selectable(corpus, tmp_path):
    out = tmp_path / "hf"
    assert cli(["tokenizer", "train", "--input", str(corpus), "--output", str(out), "--vocab-size", "500",
                "--trainer", "hf", "--max-bytes", "300KB"]) == 0
    assert json.loads((out / "report.json").read_text())["trainer"] == "hf"
    assert not (out / "tokenizer.tiktoken").exists()
    assert "tiktoken" not in files.read_config(str(out))["crawl2model"]


def test_unknown_trainer_is_a_usage_error(corpus, tmp_path, capsys):
    assert cli(["tokenizer", "train", "--input", str(corpus), "--output", str(tmp_path / "x"),
                "--config", _run_file(tmp_path, 'trainer = "sentencepiece"')]) == 2
    assert "trainer must be one of rustbpe, hf" in capsys.readouterr().err


def _run_file(tmp_path: Path, line: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(f"[tokenizer]\n{line}\n")
    return str(path)
