"""Benchmark decontamination: documents sharing an n-gram with an evaluation sample, found by a Spark join.

Text is tokenized the same way on both sides: lower-cased runs of letters and
digits, and each CJK character on its own (Chinese and Japanese have no spaces,
so "13 words" there are 13 characters). Every window of `ngram` tokens gets a
64-bit key (a polynomial of 64-bit token hashes, as `heuristics` keys its
n-grams), the same on every machine. The evaluation samples' keys form a table,
the documents' keys another, and Spark joins them on the key: the evaluation set
is never shipped inside a function to every task, and the planner broadcasts
it only when it is small.

A contaminated document is either removed (`mode = "remove"`, the default) or
has the characters of every matched window cut out (`mode = "cut"`; removed only
if no letter or digit is left). Either way it carries the benchmarks and sample ids it
matched (`MATCH_FIELDS`). Evaluation samples shorter than `ngram` tokens cannot
match and are counted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.core.errors import ConfigError, InputError
from crawl2model.core.log import Timer, get_logger
from crawl2model.core.text import HAN, HIRAGANA, KATAKANA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from crawl2model.core.outputs import StageOutput

log = get_logger("decontaminate")

MODES = ("remove", "cut")
_HANGUL = "".join(f"{chr(a)}-{chr(b)}" for a, b in ((0xAC00, 0xD7AF),))
_TOKEN = re.compile(f"[{HAN}{HIRAGANA}{KATAKANA}{_HANGUL}]|[^\\W_]+")
_P = np.uint64(0x100000001B3)
MATCH_FIELDS = [pa.field("decon_benchmarks", pa.list_(pa.string())), pa.field("decon_samples", pa.list_(pa.string())),
                pa.field("decon_ngrams", pa.int32()), pa.field("decon_cut_chars", pa.int32())]
KEYS_DDL = "doc_id string, key long, pos int"


@dataclass
class DecontaminateConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    # Evaluation sets: JSON Lines or Parquet files, one sample a row; the benchmark is the file's name.
    eval: list[str] = field(default_factory=list)
    # The sample's fields whose text is matched (a list field's items are joined); those present are used.
    eval_fields: list[str] = field(default_factory=lambda: ["text", "question", "prompt", "input", "context",
                                                            "answer", "choices"])
    # The sample id field; without it, "<file>:<row>".
    id_field: str = "id"
    ngram: int = 13
    mode: str = "remove"
    output_partitions: int = 4
    overwrite: bool = False

    def validate(self) -> None:
        for name in ("input", "eval", "eval_fields"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, [getattr(self, name)])
        if not self.input or not self.output or not self.eval:
            raise ConfigError("decontaminate: --input, --eval and --output are required")
        if self.ngram < 3:
            raise ConfigError(f"decontaminate: ngram must be >= 3, got {self.ngram}")
        if self.mode not in MODES:
            raise ConfigError(f"decontaminate: mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for path in self.eval:
            if not os.path.isfile(path):
                raise ConfigError(f"decontaminate: eval file not found: {path}")
            if not path.endswith((".jsonl", ".json", ".parquet")):
                raise ConfigError(f"decontaminate: {path}: eval files are .jsonl or .parquet")


# --- tokens and keys (pure) ---------------------------------------------------------------

def tokens(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Normalized tokens of `text` and their character spans."""
    toks, spans = [], []
    for m in _TOKEN.finditer(text or ""):
        toks.append(m.group(0).lower())
        spans.append(m.span())
    return toks, spans


def _token_hash(tok: str, cache: dict[str, int]) -> int:
    h = cache.get(tok)
    if h is None:
        h = cache[tok] = int.from_bytes(hashlib.blake2b(tok.encode("utf-8", "surrogatepass"),
                                                        digest_size=8).digest(), "little")
    return h


def ngram_keys(toks: list[str], n: int, cache: dict[str, int] | None = None) -> np.ndarray:
    """The int64 key of every window of n tokens, in order (empty if fewer than n tokens)."""
    m = len(toks) - n + 1
    if m <= 0:
        return np.zeros(0, np.int64)
    cache = {} if cache is None else cache
    h = np.array([_token_hash(t, cache) for t in toks], dtype=np.uint64)
    keys = np.zeros(m, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            keys = keys * _P + h[j:j + m]
    return keys.view(np.int64)


def cut(text: str, positions: list[int], n: int) -> tuple[str, int]:
    """`text` without the characters of the windows starting at these token positions, and how many went.

    A cut runs from the first character of a window's first token to the last of its last; what
    lies between two cuts stays."""
    _, spans = tokens(text)
    covered = np.zeros(len(spans) + 1, np.int32)
    for p in positions:
        covered[p] += 1
        covered[min(p + n, len(spans))] -= 1
    inside = np.cumsum(covered)[:len(spans)] > 0
    pieces, last, removed, i = [], 0, 0, 0
    while i < len(spans):
        if not inside[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(spans) and inside[j + 1]:
            j += 1
        start, end = spans[i][0], spans[j][1]
        pieces.append(text[last:start])
        removed += end - start
        last = end
        i = j + 1
    pieces.append(text[last:])
    return "".join(pieces), removed


# --- evaluation samples ---------------------------------------------------------------------

def _sample_text(row: dict[str, Any], fields: list[str]) -> str:
    parts = []
    for f in fields:
        v = row.get(f)
        if isinstance(v, (list, tuple)):
            parts += [str(x) for x in v if x is not None]
        elif v is not None and not isinstance(v, dict):
            parts.append(str(v))
    return "\n".join(parts)


def read_samples(paths: list[str], fields: list[str], id_field: str) -> pa.Table:
    """(benchmark, sample_id, text) of every sample of the evaluation files."""
    bench, ids, texts = [], [], []
    for path in paths:
        name = os.path.basename(path).split(".")[0]
        if path.endswith(".parquet"):
            rows = pq.read_table(path).to_pylist()
        else:
            rows = []
            with open(path, encoding="utf-8") as f:
                for k, line in enumerate(f):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise InputError(f"decontaminate: {path}:{k + 1}: not JSON ({e.msg})") from e
        found = 0
        for k, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InputError(f"decontaminate: {path}: row {k + 1} is not an object")
            text = _sample_text(row, fields)
            found += bool(text)
            bench.append(name)
            ids.append(str(row.get(id_field, f"{os.path.basename(path)}:{k}")))
            texts.append(text)
        if rows and not found:
            raise InputError(f"decontaminate: {path}: no sample has any of the fields {', '.join(fields)}")
    return pa.table({"benchmark": bench, "sample_id": ids, "text": texts})


def sample_keys(batch: pa.RecordBatch, n: int) -> pa.RecordBatch:
    """(key, benchmark, sample_id) of each distinct window of each sample."""
    cache: dict[str, int] = {}
    keys, bench, ids = [], [], []
    for b, s, t in zip(*(batch.column(c).to_pylist() for c in ("benchmark", "sample_id", "text"))):
        k = np.unique(ngram_keys(tokens(t)[0], n, cache))
        keys.append(k)
        bench += [b] * len(k)
        ids += [s] * len(k)
    return pa.RecordBatch.from_pydict({"key": pa.array(np.concatenate(keys) if keys else [], pa.int64()),
                                       "benchmark": pa.array(bench, pa.string()),
                                       "sample_id": pa.array(ids, pa.string())})


def doc_keys(batch: pa.RecordBatch, n: int) -> pa.RecordBatch:
    """(doc_id, key, pos) of every window of every document."""
    cache: dict[str, int] = {}
    ids, keys, pos = [], [], []
    for d, t in zip(batch.column("doc_id").to_pylist(), batch.column("text").to_pylist()):
        k = ngram_keys(tokens(t or "")[0], n, cache)
        ids += [d] * len(k)
        keys.append(k)
        pos.append(np.arange(len(k), dtype=np.int32))
    return pa.RecordBatch.from_pydict({"doc_id": pa.array(ids, pa.string()),
                                       "key": pa.array(np.concatenate(keys) if keys else [], pa.int64()),
                                       "pos": pa.array(np.concatenate(pos) if pos else [], pa.int32())})


def apply_matches(batch: pa.RecordBatch, n: int, mode: str) -> pa.RecordBatch:
    """Documents joined with their matches (m_benchmarks, m_samples, m_pos) -> documents + MATCH_FIELDS,
    texts cut in "cut" mode; the join's columns dropped."""
    texts = batch.column("text").to_pylist()
    pos = batch.column("m_pos").to_pylist()
    out_text, ngrams, cut_chars = [], [], []
    for t, p in zip(texts, pos):
        p = sorted(set(p or []))
        ngrams.append(len(p))
        if p and mode == "cut":
            t, removed = cut(t, p, n)
            cut_chars.append(removed)
        else:
            cut_chars.append(0)
        out_text.append(t)
    keep = [c for c in batch.schema.names if not c.startswith("m_") and c not in {f.name for f in MATCH_FIELDS}]
    arrays = [pa.array(out_text, batch.schema.field("text").type) if c == "text" else batch.column(c) for c in keep]
    arrays += [pa.array([sorted(x) if x else [] for x in batch.column("m_benchmarks").to_pylist()],
                        pa.list_(pa.string())),
               pa.array([sorted(x) if x else [] for x in batch.column("m_samples").to_pylist()],
                        pa.list_(pa.string())),
               pa.array(ngrams, pa.int32()), pa.array(cut_chars, pa.int32())]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([batch.schema.field(c) for c in keep] + MATCH_FIELDS))


# --- the job ---------------------------------------------------------------------------------

def _schema_with(df: DataFrame, fields: list[pa.Field], drop: set[str]):
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StructType

    names = {f.name for f in fields} | drop
    return StructType([f for f in df.schema.fields if f.name not in names]
                      + list(from_arrow_schema(pa.schema(fields)).fields))


def run(spark: SparkSession, cfg: DecontaminateConfig, out: StageOutput) -> dict:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from crawl2model.pipeline.parquet_out import write_sides
    from crawl2model.pipeline.tables import read_table

    timer = Timer()
    n, mode = cfg.ngram, cfg.mode
    samples = read_samples(cfg.eval, cfg.eval_fields, cfg.id_field)
    short = sum(len(tokens(t)[0]) < n for t in samples.column("text").to_pylist())
    evals = (spark.createDataFrame(samples)
             .mapInArrow(lambda it: (sample_keys(b, n) for b in it), "key long, benchmark string, sample_id string")
             .distinct().persist(StorageLevel.MEMORY_AND_DISK))
    n_eval_keys = evals.count()
    timer.mark("eval")
    docs = read_table(spark, cfg.input)
    if "doc_id" not in docs.columns or "text" not in docs.columns:
        raise InputError(f"decontaminate: {', '.join(cfg.input)} has no doc_id and text columns")
    keys = docs.select("doc_id", "text").mapInArrow(lambda it: (doc_keys(b, n) for b in it), KEYS_DDL)
    matches = (keys.join(evals, "key")
               .groupBy("doc_id").agg(F.collect_set("benchmark").alias("m_benchmarks"),
                                      F.collect_set("sample_id").alias("m_samples"),
                                      F.collect_set("pos").alias("m_pos")))
    joined = docs.join(matches, "doc_id", "left")
    drop = {"m_benchmarks", "m_samples", "m_pos"}
    decided = joined.mapInArrow(lambda it: (apply_matches(b, n, mode) for b in it),
                                _schema_with(joined, MATCH_FIELDS, drop)).persist(StorageLevel.MEMORY_AND_DISK)
    # cut: removed when no letter or digit is left
    gone = (F.col("decon_ngrams") > 0) if mode == "remove" else ~F.col("text").rlike(r"[\p{L}\p{N}]")
    decided = decided.withColumn("_removed", gone)
    counts = decided.groupBy("_removed", (F.col("decon_ngrams") > 0).alias("hit")).agg(
        F.count("*").alias("n"), F.sum("decon_cut_chars").alias("cut")).collect()
    per_bench = (decided.where(F.col("decon_ngrams") > 0).select(F.explode("decon_benchmarks").alias("b"))
                 .groupBy("b").count().collect())
    samples_hit = (decided.where(F.col("decon_ngrams") > 0).select(F.explode("decon_samples").alias("s"))
                   .distinct().count())
    timer.mark("match")
    partition = ["dump"] if "dump" in decided.columns else []
    sides = decided.drop("_removed").withColumn("_side", F.when(gone, "removed").otherwise("kept"))
    files = write_sides(sides, out.tmp_uri, "_side", partition_by=partition, sort_by=["doc_id"],
                        num_files=cfg.output_partitions)
    kept_files, removed_files = files.get("kept", []), files.get("removed", [])
    timer.mark("write")
    evals.unpersist()
    decided.unpersist()
    docs_in = sum(r["n"] for r in counts)
    removed = sum(r["n"] for r in counts if r["_removed"])
    written = (sum(k for _, k in kept_files), sum(k for _, k in removed_files))
    if written != (docs_in - removed, removed):
        raise RuntimeError(f"decontaminate: counts disagree: {docs_in} in, {removed} removed, written {written}")
    reason = "contaminated" if mode == "remove" else "contaminated_nothing_left"
    log.info(f"{docs_in} in, {removed} removed ({mode}), {n_eval_keys} evaluation {n}-grams")
    return {"docs_in": docs_in, "docs_out": docs_in - removed,
            "removed_by_reason": {reason: removed} if removed else {},
            "mode": mode, "ngram": n,
            "contaminated_documents": sum(r["n"] for r in counts if r["hit"]),
            "cut_documents": sum(r["n"] for r in counts if r["hit"] and not r["_removed"]) if mode == "cut" else 0,
            "cut_chars": int(sum(r["cut"] or 0 for r in counts)),
            "per_benchmark": {r["b"]: r["count"] for r in sorted(per_bench, key=lambda r: r["b"])},
            "eval": {"files": cfg.eval, "samples": samples.num_rows, "samples_matched": samples_hit,
                     "samples_shorter_than_ngram": short, "ngrams": n_eval_keys},
            "timings": timer.report()}
