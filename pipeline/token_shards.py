"""Tokenize stage: document table -> memory-mappable token shards (Arrow IPC) + manifest.json.

Each Spark task encodes one partition of documents in batches and writes one
shard `part-NNNNN.arrow` itself (Arrow IPC *file* format, so `pyarrow.memory_map`
reads it without copying): `input_ids: large_list<uint32>` (the document's
tokens then EOS), `doc_id`, `domain`. The task returns one row of counts and
the shard's sha256; the driver turns those into manifest.json. Documents
without text are counted as skipped, never dropped silently.

The tokenizer travels to the workers as the text of tokenizer.json in a
broadcast variable and is built once per Python worker (cached by its hash).
Documents are encoded with `encode_special_tokens`, so a web page that
contains the literal string "<｜end▁of▁sentence｜>" cannot inject an EOS.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa

from crawl2model.core.errors import ConfigError
from crawl2model.core.outputs import StageOutput
from crawl2model.core.fs import filesystem, sha256_file, write_json
from crawl2model.pipeline.tables import read_table

SHARD_SCHEMA = pa.schema([
    pa.field("input_ids", pa.large_list(pa.uint32()), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("domain", pa.string()),
])
RESULT_SCHEMA = pa.schema([
    ("shard", pa.string()), ("documents", pa.int64()), ("tokens", pa.int64()), ("bytes", pa.int64()),
    ("skipped_empty", pa.int64()), ("encode_seconds", pa.float64()), ("sha256", pa.string()),
])
ENCODE_BATCH = 256


@dataclass
class TokenizeConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    tokenizer: str = ""
    # Shards to write; default: one per input partition (Spark reads ~128 MB of Parquet per task).
    num_shards: int | None = None
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        for name in ("input", "output", "tokenizer"):
            if not getattr(self, name):
                raise ConfigError(f"tokenize: --{name} is required")
        if not os.path.isfile(os.path.join(self.tokenizer, "tokenizer.json")):
            raise ConfigError(f"tokenize: no tokenizer.json in {self.tokenizer}")
        if self.num_shards is not None and self.num_shards <= 0:
            raise ConfigError("tokenize: num_shards must be positive")


# --- the pure part: Arrow batches of documents -> token arrays ---------------------------

_TOKENIZERS: dict[str, object] = {}


def get_tokenizer(tokenizer_json: str):
    """One `tokenizers.Tokenizer` per process for a given tokenizer.json text."""
    key = hashlib.sha256(tokenizer_json.encode()).hexdigest()
    tok = _TOKENIZERS.get(key)
    if tok is None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(tokenizer_json)
        tok.encode_special_tokens = True
        _TOKENIZERS[key] = tok
    return tok


def encode_documents(tok, texts: list[str], eos_id: int) -> pa.LargeListArray:
    """`tokens + [EOS]` per text, as one large_list<uint32> array."""
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    eos = np.array([eos_id], dtype=np.uint32)
    parts: list[np.ndarray] = []
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    for i, enc in enumerate(encodings):
        ids = np.asarray(enc.ids, dtype=np.uint32)
        parts += [ids, eos]
        offsets[i + 1] = offsets[i] + len(ids) + 1
    values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


def tokenize_batch(tok, batch: pa.RecordBatch, eos_id: int) -> tuple[pa.RecordBatch, int, int]:
    """(shard rows, skipped empty documents, UTF-8 bytes encoded) for one batch of documents."""
    texts = batch.column("text").to_pylist()
    keep = [i for i, t in enumerate(texts) if t]
    kept_texts = [texts[i] for i in keep]
    idx = pa.array(keep, type=pa.int64())
    domain = batch.column("domain") if "domain" in batch.schema.names else pa.nulls(len(texts), pa.string())
    rows = pa.record_batch([
        encode_documents(tok, kept_texts, eos_id),
        batch.column("doc_id").take(idx).cast(pa.string()),
        domain.take(idx).cast(pa.string()),
    ], schema=SHARD_SCHEMA)
    return rows, len(texts) - len(keep), sum(len(t.encode("utf-8", "surrogatepass")) for t in kept_texts)


def write_shard(batches: Iterable[pa.RecordBatch], tokenizer_json: str, eos_id: int,
                folder: str, shard_index: int) -> pa.RecordBatch:
    """Encode all `batches` into `folder/part-NNNNN.arrow`; one result row of counts.

    Written under a temporary name and moved into place, so a retried or
    speculative task never leaves a half-written shard behind."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one core per Spark task
    tok = get_tokenizer(tokenizer_json)
    fs, base = filesystem(folder)
    name = f"part-{shard_index:05d}.arrow"
    tmp = posixpath.join(base, f".{name}.{os.getpid()}.tmp")
    docs = tokens = nbytes = skipped = 0
    seconds = 0.0
    writer = None
    sink = None
    try:
        for batch in batches:
            for start in range(0, batch.num_rows, ENCODE_BATCH):
                t0 = time.perf_counter()
                rows, n_skipped, n_bytes = tokenize_batch(tok, batch.slice(start, ENCODE_BATCH), eos_id)
                seconds += time.perf_counter() - t0
                skipped += n_skipped
                if rows.num_rows == 0:
                    continue
                if writer is None:
                    sink = fs.open_output_stream(tmp)
                    writer = pa.ipc.new_file(sink, SHARD_SCHEMA)
                writer.write_batch(rows)
                docs += rows.num_rows
                tokens += len(rows.column(0).values)
                nbytes += n_bytes
    finally:
        if writer is not None:
            writer.close()
            sink.close()
    digest = None
    if writer is not None:
        final = posixpath.join(base, name)
        fs.move(tmp, final)
        digest = sha256_file(fs, final)
    return pa.record_batch([[name if digest else None], [docs], [tokens], [nbytes], [skipped],
                            [seconds], [digest]], schema=RESULT_SCHEMA)


# --- the Spark job ----------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"[tokenize] {msg}", file=sys.stderr, flush=True)


def run(spark, cfg: TokenizeConfig, out: StageOutput) -> dict:
    """Tokenize `cfg.input` into `out` (a begun StageOutput); returns the report."""
    import pyarrow.fs as pafs
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from crawl2model.tokenizer import files
    from crawl2model.tokenizer.specials import EOS

    t0 = time.time()
    with open(os.path.join(cfg.tokenizer, files.TOKENIZER_JSON), encoding="utf-8") as f:
        tokenizer_json = f.read()
    tok = get_tokenizer(tokenizer_json)
    eos_id = tok.token_to_id(EOS)
    if eos_id is None:
        raise ConfigError(f"tokenize: {cfg.tokenizer} has no {EOS} token")
    tok_config = files.read_config(cfg.tokenizer)

    from functools import reduce

    df = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True),
                (read_table(spark, path) for path in cfg.input))
    if "text" not in df.columns or "doc_id" not in df.columns:
        raise ConfigError(f"tokenize: input needs 'text' and 'doc_id' columns, has {', '.join(df.columns)}")
    domain = F.col("domain").cast("string") if "domain" in df.columns else F.lit(None).cast("string")
    df = df.select("text", "doc_id", domain.alias("domain"))
    if cfg.num_shards:
        # Hash partitioning plus a sort makes shard contents independent of input layout.
        df = df.repartition(cfg.num_shards, "doc_id").sortWithinPartitions("doc_id")

    folder = out.tmp_path if isinstance(out.fs, pafs.LocalFileSystem) else out.tmp_uri
    shared = spark.sparkContext.broadcast(tokenizer_json)

    def body(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        yield write_shard(batches, shared.value, eos_id, folder, TaskContext.get().partitionId())

    results = [r.asDict() for r in df.mapInArrow(body, from_arrow_schema(RESULT_SCHEMA)).collect()]
    shards = sorted((r for r in results if r["shard"]), key=lambda r: r["shard"])
    documents = sum(r["documents"] for r in results)
    skipped = sum(r["skipped_empty"] for r in results)
    tokens = sum(r["tokens"] for r in results)
    nbytes = sum(r["bytes"] for r in results)
    encode_seconds = sum(r["encode_seconds"] for r in results)
    manifest = {
        "format": "arrow-ipc-file",
        "schema": {"input_ids": "large_list<uint32>", "doc_id": "string", "domain": "string"},
        "eos_appended": True,
        "tokenizer": {"path": os.path.abspath(cfg.tokenizer), "sha256": files.fingerprint(cfg.tokenizer),
                      "eos_id": eos_id, "vocab_size": tok.get_vocab_size(),
                      "padded_vocab_size": tok_config.get("padded_vocab_size")},
        "documents": documents,
        "tokens": tokens,
        "shards": [{"file": r["shard"], "documents": r["documents"], "tokens": r["tokens"],
                    "sha256": r["sha256"]} for r in shards],
    }
    write_json(out.fs, out.path("manifest.json"), manifest)
    seconds = time.time() - t0
    report = {
        "stage": "tokenize",
        "docs_in": documents + skipped,
        "docs_out": documents,
        "removed_by_reason": {"empty_text": skipped} if skipped else {},
        "tokens": tokens,
        "bytes": nbytes,
        "bytes_per_token": round(nbytes / max(tokens - documents, 1), 4),
        "shards": len(shards),
        "seconds": round(seconds, 3),
        "encode_seconds_all_tasks": round(encode_seconds, 3),
        "encode_mb_per_s_per_core": round(nbytes / 1e6 / encode_seconds, 3) if encode_seconds else None,
        "tokenizer_sha256": manifest["tokenizer"]["sha256"],
    }
    assert report["docs_in"] == report["docs_out"] + skipped
    _log(f"{documents} documents -> {tokens:,} tokens in {len(shards)} shards "
         f"({skipped} empty skipped) in {seconds:.1f}s")
    return report
