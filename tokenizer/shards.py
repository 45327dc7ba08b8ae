"""The token-shard format, its one owner: schema, encoder, writer, manifest, reader.

A shard `part-NNNNN.arrow` is an Arrow IPC *file* (so `pyarrow.memory_map`
reads it without copying): `input_ids: large_list<uint32>` (the document's
tokens then EOS), `doc_id`, `domain`. A folder of shards has `manifest.json`
listing each shard with its documents, tokens and sha256, and the tokenizer
that made them. The tokenize job writes shards with `write_shard` (one per
Spark task), the trainer reads them with `shard_paths`/`open_shard`, and test
fixtures write them the same way.

Documents are encoded by `tokenizer.encoder` (tiktoken where the tokenizer
folder allows it, `tokenizers` otherwise), special strings as text, so a web
page that contains the literal string "<｜end▁of▁sentence｜>" cannot inject
an EOS. An encoder is built once per process, cached by its spec.
"""
from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from crawl2model.core.errors import InputError
from crawl2model.core.fs import AtomicFile, filesystem, sha256_file
from crawl2model.tokenizer.encoder import Encoder, EncoderSpec, get_encoder

SHARD_SCHEMA = pa.schema([
    pa.field("input_ids", pa.large_list(pa.uint32()), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("domain", pa.string()),
])
RESULT_SCHEMA = pa.schema([
    ("shard", pa.string()), ("documents", pa.int64()), ("tokens", pa.int64()), ("bytes", pa.int64()),
    ("skipped_empty", pa.int64()), ("encode_seconds", pa.float64()), ("encode_cpu_seconds", pa.float64()),
    ("sha256", pa.string()),
    ("languages", pa.string()),  # JSON {lang: [bytes, tokens]}
])
ENCODE_BATCH = 256
MANIFEST = "manifest.json"


# --- the pure part: Arrow batches of documents -> token arrays ---------------------------

def encode_documents(encoder: Encoder, texts: list[str], eos_id: int) -> pa.LargeListArray:
    """`tokens + [EOS]` per text, as one large_list<uint32> array."""
    eos = np.array([eos_id], dtype=np.uint32)
    encoded = encoder.encode_batch(texts)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(ids) + 1 for ids in encoded], out=offsets[1:])
    values = np.concatenate([part for ids in encoded for part in (ids, eos)]) if texts else np.zeros(0, np.uint32)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


def tokenize_batch(encoder: Encoder, batch: pa.RecordBatch, eos_id: int) -> tuple[pa.RecordBatch, int, dict[str, list[int]]]:
    """(shard rows, skipped empty documents, [UTF-8 bytes, tokens without EOS] per language).

    The language is the batch's `lang` column (the filter's), "?" without one;
    bytes per token by language is how a tokenizer is judged across languages.
    """
    texts = batch.column("text").to_pylist()
    keep = [i for i, t in enumerate(texts) if t]
    kept_texts = [texts[i] for i in keep]
    idx = pa.array(keep, type=pa.int64())
    names = batch.schema.names
    domain = batch.column("domain") if "domain" in names else pa.nulls(len(texts), pa.string())
    ids = encode_documents(encoder, kept_texts, eos_id)
    rows = pa.record_batch([
        ids,
        batch.column("doc_id").take(idx).cast(pa.string()),
        domain.take(idx).cast(pa.string()),
    ], schema=SHARD_SCHEMA)
    langs = batch.column("lang").take(idx).to_pylist() if "lang" in names else [None] * len(keep)
    per_lang: dict[str, list[int]] = {}
    for lang, text, n in zip(langs, kept_texts, np.diff(ids.offsets.to_numpy()) - 1):
        acc = per_lang.setdefault(lang or "?", [0, 0])
        acc[0] += len(text.encode("utf-8", "surrogatepass"))
        acc[1] += int(n)
    return rows, len(texts) - len(keep), per_lang


def add_counts(into: dict[str, list[int]], more: dict[str, list[int]]) -> dict[str, list[int]]:
    """Add per-language [bytes, tokens] counts into `into` (what a shard and a job total)."""
    for lang, (n_bytes, n_tokens) in more.items():
        acc = into.setdefault(lang, [0, 0])
        acc[0] += n_bytes
        acc[1] += n_tokens
    return into


def write_shard(batches: Iterable[pa.RecordBatch], tokenizer: EncoderSpec | str, eos_id: int,
                folder: str, shard_index: int) -> pa.RecordBatch:
    """Encode all `batches` into `folder/part-NNNNN.arrow`; one result row of counts.

    `tokenizer` is an `EncoderSpec` (or the text of tokenizer.json).

    Written as an `AtomicFile`, so a retried or speculative task never leaves a
    half-written shard behind."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per Spark task
    encoder = get_encoder(tokenizer)
    fs, base = filesystem(folder)
    name = f"part-{shard_index:05d}.arrow"
    docs = tokens = skipped = 0
    per_lang: dict[str, list[int]] = {}
    seconds = cpu_seconds = 0.0  # wall, and CPU of this thread (what "per core" means on a shared host)
    writer = out = None
    try:
        for batch in batches:
            for start in range(0, batch.num_rows, ENCODE_BATCH):
                t0, c0 = time.perf_counter(), time.thread_time()
                rows, n_skipped, batch_langs = tokenize_batch(encoder, batch.slice(start, ENCODE_BATCH), eos_id)
                seconds += time.perf_counter() - t0
                cpu_seconds += time.thread_time() - c0
                skipped += n_skipped
                if rows.num_rows == 0:
                    continue
                if writer is None:
                    out = AtomicFile(fs, posixpath.join(base, name))
                    writer = pa.ipc.new_file(out.stream, SHARD_SCHEMA)
                writer.write_batch(rows)
                docs += rows.num_rows
                tokens += len(rows.column(0).values)
                add_counts(per_lang, batch_langs)
    except BaseException:
        if writer is not None:
            writer.close()
            out.discard()
        raise
    digest = None
    if writer is not None:
        writer.close()
        out.commit()
        digest = out.sha256
    nbytes = sum(b for b, _ in per_lang.values())
    return pa.record_batch([[name if digest else None], [docs], [tokens], [nbytes], [skipped],
                            [seconds], [cpu_seconds], [digest], [json.dumps(per_lang, sort_keys=True)]],
                           schema=RESULT_SCHEMA)



def manifest(shards: list[dict], tokenizer: dict) -> dict:
    """manifest.json of a shard folder from the writers' result rows (shards in name order)."""
    shards = sorted((r for r in shards if r["shard"]), key=lambda r: r["shard"])
    return {
        "format": "arrow-ipc-file",
        "schema": {"input_ids": "large_list<uint32>", "doc_id": "string", "domain": "string"},
        "eos_appended": True,
        "tokenizer": tokenizer,
        "documents": sum(r["documents"] for r in shards),
        "tokens": sum(r["tokens"] for r in shards),
        "shards": [{"file": r["shard"], "documents": r["documents"], "tokens": r["tokens"],
                    "sha256": r["sha256"]} for r in shards],
    }


def write_ids(folder: str, shards: list[list[Sequence[int]]], tokenizer: dict | None = None,
              batch_rows: int = ENCODE_BATCH) -> dict:
    """Write already-encoded documents as a shard folder with its manifest; returns the manifest.

    For fixtures and small tools: the same files and manifest the tokenize
    job writes, from token ids instead of text (no EOS is added here).
    """
    fs, base = filesystem(folder)
    fs.create_dir(base, recursive=True)
    rows = []
    for index, docs in enumerate(shards):
        name = f"part-{index:05d}.arrow"
        path = posixpath.join(base, name)
        with fs.open_output_stream(path) as sink, pa.ipc.new_file(sink, SHARD_SCHEMA) as writer:
            for start in range(0, len(docs), batch_rows):
                part = [list(map(int, d)) for d in docs[start:start + batch_rows]]
                writer.write_batch(pa.record_batch([
                    pa.array(part, type=pa.large_list(pa.uint32())),
                    pa.array([f"{index}-{start + i}" for i in range(len(part))]),
                    pa.nulls(len(part), pa.string())], schema=SHARD_SCHEMA))
        rows.append({"shard": name, "documents": len(docs), "tokens": sum(len(d) for d in docs),
                     "sha256": sha256_file(fs, path)})
    listing = manifest(rows, tokenizer or {})
    with fs.open_output_stream(posixpath.join(base, MANIFEST)) as f:
        f.write((json.dumps(listing, indent=2) + "\n").encode())
    return listing


def shard_paths(folder: str) -> tuple[pafs.FileSystem, list[str], dict]:
    """(filesystem, shard paths in manifest order, manifest) of a token-shard folder."""
    fs, base = filesystem(folder)
    manifest_path = posixpath.join(base, MANIFEST)
    if fs.get_file_info(manifest_path).type == pafs.FileType.NotFound:
        raise InputError(f"no {MANIFEST} in token shard folder {folder} (write it with `crawl2model tokenize`)")
    with fs.open_input_stream(manifest_path) as f:
        listing = json.loads(f.read())
    paths = [posixpath.join(base, s["file"]) for s in listing.get("shards", [])]
    if not paths:
        raise InputError(f"{folder}: the manifest lists no shards")
    return fs, paths, listing


def open_shard(fs: pafs.FileSystem, path: str) -> pa.Table:
    """One shard as a table: memory-mapped on a local disk, read once from an object store."""
    source = pa.memory_map(path) if isinstance(fs, pafs.LocalFileSystem) else fs.open_input_file(path)
    return pa.ipc.open_file(source).read_all()
