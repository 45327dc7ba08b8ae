"""Real token shards of the bundled sample crawl, built in-process without Spark.

Tests, benchmarks and smoke runs of the trainer need shards made the way the
pipeline makes them (the sample's WARC/WET/ARC records through ingest's record
policy, a byte-level BPE tokenizer with the 15 specials, shards written by the
tokenize job's own `tokenizer.shards.write_shard` and manifest) but cannot
afford a JVM. This calls those stages' pure functions directly: documents
are split round-robin into a training and a held-out folder.
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from crawl2model.core.resources import resource
from crawl2model.pipeline.ingest import IngestConfig, process_split
from crawl2model.pipeline.inputs import discover, plan_splits
from crawl2model.tokenizer import files, shards
from crawl2model.tokenizer.specials import EOS, N_SPECIAL, padded_size
from crawl2model.tokenizer.train import add_specials, train_bpe

SAMPLE = resource("crawl2model.jobs", "sample")


def sample_documents(sample: Path = SAMPLE) -> list[str]:
    """Texts of the sample's documents, in a fixed order (dedup and filtering are not applied)."""
    cfg = IngestConfig(input=[str(sample)], output="-")
    cfg.validate()
    found, _ = discover(cfg.input)
    texts = []
    for split in plan_splits(found, cfg.split_size):
        for batch in process_split(split, cfg):
            table = batch.to_pydict()
            texts += [t for kind, t in zip(table["kind"], table["text"]) if kind == "doc" and t]
    return texts


def _write_folder(texts: list[str], tokenizer_json: str, eos_id: int, folder: Path, tok_meta: dict,
                  n_shards: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(n_shards):
        part = texts[i::n_shards]
        batch = pa.record_batch({"text": part, "doc_id": [f"s{i}-{j}" for j in range(len(part))],
                                 "domain": ["sample"] * len(part)})
        results += shards.write_shard([batch], tokenizer_json, eos_id, str(folder), i).to_pylist()
    listing = shards.manifest(results, tok_meta)
    (folder / shards.MANIFEST).write_text(json.dumps(listing, indent=2) + "\n")
    return listing


def build(out: Path, vocab_size: int = 512, val_every: int = 10, n_shards: int = 2) -> dict:
    """OUT/tokenizer, OUT/train, OUT/val from the bundled sample; returns the padded vocab size and token counts.

    Every `val_every`-th document is held out. The padded vocabulary (a multiple
    of 128) is what a model on these shards must use as `vocab_size`."""
    texts = sample_documents()
    held = set(range(0, len(texts), val_every))
    train_texts = [t for i, t in enumerate(texts) if i not in held]
    val_texts = [t for i, t in enumerate(texts) if i in held]
    tok, n_ordinary = add_specials(train_bpe(train_texts, vocab_size - N_SPECIAL))
    padded = padded_size(n_ordinary + N_SPECIAL, -(-(n_ordinary + N_SPECIAL) // 128) * 128)
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    files.write_folder(tok, str(tok_dir), n_ordinary, padded, 4096)
    eos_id = tok.token_to_id(EOS)
    meta = {"path": str(tok_dir.resolve()), "sha256": files.fingerprint(str(tok_dir)), "eos_id": eos_id,
            "vocab_size": tok.get_vocab_size(), "padded_vocab_size": padded}
    train = _write_folder(train_texts, tok.to_str(), eos_id, out / "train", meta, n_shards)
    val = _write_folder(val_texts, tok.to_str(), eos_id, out / "val", meta, 1)
    return {"vocab_size": padded, "train_tokens": train["tokens"], "val_tokens": val["tokens"],
            "documents": len(texts)}
