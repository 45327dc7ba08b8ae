"""The tokenize job in Spark local mode: Parquet documents -> memory-mapped token shards + manifest."""
from __future__ import annotations

import argparse
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.core.fs import read_json
from crawl2model.tokenizer import files, ranks
from crawl2model.tokenizer.encoder import get_encoder
from crawl2model.tokenizer.pretokenize import encoding_pattern
from crawl2model.tokenizer.shards import encode_documents
from crawl2model.tokenizer.specials import EOS
from crawl2model.tokenizer.train import add_specials, train_bpe, train_rustbpe

pytestmark = pytest.mark.spark

TEXTS = [
    "The tokenizer turns documents into shards. " * 5,
    "我们训练一个语言模型，数据来自网页。",
    "",
    f"A page that quotes {EOS} literally must not end early.",
    "def f(x):\n    return x ** 2  # 12345\n",
    None,
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    tok, n = add_specials(train_bpe([t for t in TEXTS if t] * 20, vocab_size=300))
    files.write_folder(tok, str(folder), n, 384, 4096)
    return folder


@pytest.fixture(scope="module")
def rustbpe_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok-rustbpe")
    tok, ordinary = train_rustbpe([t for t in TEXTS if t] * 20, vocab_size=300)
    tok, n = add_specials(tok)
    files.write_folder(tok, str(folder), n, 384, 4096,
                       tiktoken=(ranks.dumps(ranks.with_specials(ordinary)), encoding_pattern()[0], True))
    return folder


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs") / "table"
    folder.mkdir()
    table = pa.table({"doc_id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS,
                      "domain": ["web", "zh", "web", "web", "code", "web"],
                      "lang": ["en", "zh", "en", "en", None, "en"]})
    pq.write_table(table.slice(0, 3), folder / "part-0.parquet")
    pq.write_table(table.slice(3), folder / "part-1.parquet")
    return folder


def _run(argv: list[str]) -> int:
    from crawl2model.jobs import tokenize_shards as tokenize

    parser = argparse.ArgumentParser()
    tokenize.register(parser.add_subparsers())
    args = parser.parse_args(["tokenize", *argv])
    return args.func(args)


def _read_shards(out) -> dict[str, list[int]]:
    manifest = read_json(str(out / "manifest.json"))
    rows: dict[str, list[int]] = {}
    for shard in manifest["shards"]:
        path = out / shard["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        assert table.schema.field("input_ids").type == pa.large_list(pa.uint32())
        assert table.num_rows == shard["documents"] and len(table["input_ids"].combine_chunks().values) == shard["tokens"]
        rows.update(zip(table["doc_id"].to_pylist(), table["input_ids"].to_pylist()))
    return rows


def test_tokenize_job_writes_mappable_shards(spark, tokenizer_dir, documents, tmp_path):
    out = tmp_path / "tokens"
    argv = ["--tokenizer", str(tokenizer_dir), "--input", str(documents), "--output", str(out)]
    assert _run(argv) == 0
    report = read_json(str(out / "report.json"))
    manifest = read_json(str(out / "manifest.json"))
    assert report["docs_in"] == 6 and report["docs_out"] == 4 and report["removed_by_reason"] == {"empty_text": 2}
    assert manifest["documents"] == 4 and manifest["tokenizer"]["sha256"] == files.fingerprint(str(tokenizer_dir))
    tok = files.load(str(tokenizer_dir))
    eos = tok.token_to_id(EOS)
    rows = _read_shards(out)
    assert sorted(rows) == ["d0", "d1", "d3", "d4"]
    for doc_id, ids in rows.items():
        text = TEXTS[int(doc_id[1:])]
        assert ids[-1] == eos and eos not in ids[:-1]  # the literal EOS in d3 stays text
        assert tok.decode(ids[:-1]) == text
    assert sum(len(v) for v in rows.values()) == manifest["tokens"] == report["tokens"]
    by_lang = report["bytes_per_token_by_language"]
    assert set(by_lang) == {"en", "zh", "?"}  # "?": a document without a language
    zh = TEXTS[1].encode()
    assert by_lang["zh"] == round(len(zh) / (len(rows["d1"]) - 1), 4)
    assert _run(argv) == 0  # finished: skipped, not recomputed
    assert read_json(str(out / "manifest.json")) == manifest


def test_hash_sharding_is_deterministic(spark, tokenizer_dir, documents, tmp_path):
    manifests = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert _run(["--tokenizer", str(tokenizer_dir), "--input", str(documents), "--output", str(out),
                     "--num-shards", "2"]) == 0
        manifests.append(json.loads((out / "manifest.json").read_text())["shards"])
    assert manifests[0] == manifests[1] and sum(s["documents"] for s in manifests[0]) == 4


def test_tiktoken_and_tokenizers_write_the_same_shards(spark, rustbpe_dir, documents, tmp_path):
    rows, reports = {}, {}
    for name in ("tiktoken", "tokenizers"):
        out = tmp_path / name
        assert _run(["--tokenizer", str(rustbpe_dir), "--input", str(documents), "--output", str(out),
                     "--encoder", name]) == 0
        rows[name], reports[name] = _read_shards(out), read_json(str(out / "report.json"))
    assert reports["tiktoken"]["encoder"] == "tiktoken" and reports["tokenizers"]["encoder"] == "tokenizers"
    assert rows["tiktoken"] == rows["tokenizers"] and len(rows["tiktoken"]) == 4
    assert reports["tiktoken"]["tokens"] == reports["tokenizers"]["tokens"]


def test_encode_documents_appends_eos(tokenizer_dir):
    tok = get_encoder((tokenizer_dir / "tokenizer.json").read_text())
    arr = encode_documents(tok, ["ab", "", "c d"], eos_id=7)
    assert arr.type == pa.large_list(pa.uint32())
    assert [row[-1] for row in arr.to_pylist()] == [7, 7, 7] and arr.to_pylist()[1] == [7]
