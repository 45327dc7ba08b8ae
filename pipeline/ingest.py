"""Ingest: crawl files (WARC/WET/ARC) and user datasets (JSONL, Parquet) -> the document table.

The work of a task is `process_split`: one byte range of one file in, Arrow
batches out. Every input record comes out as exactly one row: a document
(`kind="doc"`), or a skipped record with its reason (`kind="skip"`); each
split adds one `kind="split"` row with the bytes it read. The Spark job
writes the documents, keeps the skips as a side table, and checks that
`records_in == docs_out + records_skipped`.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.core.errors import ConfigError
from crawl2model.core.fs import filesystem
from crawl2model.core.log import Timer, get_logger
from crawl2model.core.outputs import StageOutput
from crawl2model.core.sizes import parse_size
from crawl2model.pipeline.inputs import (
    COMMONCRAWL_BASE,
    ListingSelection,
    Split,
    discover_inputs,
    is_listing,
    pack_tasks,
    plan_splits,
)
from crawl2model.pipeline.parquet_out import write_parquet
from crawl2model.pipeline.schema import DOC_SCHEMA, host_of, make_doc_id

log = get_logger("ingest")


@dataclass
class IngestConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    dump: str | None = None
    # Listings (`warc.paths.gz`): relative listed paths are resolved against this folder or URI.
    input_base: str = COMMONCRAWL_BASE
    # Trial runs on listings: the first N paths of each listing (sorted), and/or
    # the paths whose hash falls below a fraction (the same paths on every run).
    limit_files: int | None = None
    sample_files: float | None = None
    extractor: str = "resiliparse"
    # A record body beyond this is not read into memory: skipped as payload_too_large.
    max_payload_bytes: int | str = "8MB"
    # Extracted text beyond this many characters: skipped as text_too_long.
    max_text_chars: int = 1_000_000
    # Documents shorter than this after extraction: skipped as empty_text.
    min_text_chars: int = 1
    # Crawl files larger than this are read by several tasks (by record offsets).
    split_size: int | str = "256MB"
    # Consecutive small splits are packed into tasks of about this size.
    task_size: int | str = "128MB"
    overwrite: bool = False

    def validate(self) -> None:
        from crawl2model.pipeline.extract import EXTRACTORS

        if not self.input:
            raise ConfigError("ingest: --input is required")
        if not self.output:
            raise ConfigError("ingest: --output is required")
        if isinstance(self.input, str):
            self.input = [self.input]
        if self.extractor not in EXTRACTORS:
            raise ConfigError(f"ingest: unknown extractor {self.extractor!r} (known: {', '.join(EXTRACTORS)})")
        for name in ("max_payload_bytes", "split_size", "task_size"):
            setattr(self, name, parse_size(getattr(self, name)))
            if getattr(self, name) <= 0:
                raise ConfigError(f"ingest: {name} must be positive")
        if self.max_text_chars <= 0 or self.min_text_chars < 0:
            raise ConfigError("ingest: max_text_chars must be > 0 and min_text_chars >= 0")
        self._validate_listing()

    def _validate_listing(self) -> None:
        if not isinstance(self.input_base, str) or not self.input_base:
            raise ConfigError(f"ingest: input_base must be a folder or URI, got {self.input_base!r}")
        limit, fraction = self.limit_files, self.sample_files
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"ingest: limit_files must be a whole number >= 1, got {limit!r}")
        if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                     or not 0 < fraction <= 1):
            raise ConfigError(f"ingest: sample_files must be a fraction in (0, 1], got {fraction!r}")
        # Silently reading everything when a trial run was asked for would be the costly surprise.
        if (limit is not None or fraction is not None) and not any(is_listing(p) for p in self.input):
            name = "limit_files" if limit is not None else "sample_files"
            raise ConfigError(f"ingest: {name} selects from listings (*.paths, *.paths.gz), "
                              "and no --input is one")

    def listing(self) -> ListingSelection:
        return ListingSelection(self.input_base, self.limit_files,
                                float(self.sample_files) if self.sample_files is not None else None)


# --- one row per input record -----------------------------------------------------------

ROW_SCHEMA = pa.schema(
    [pa.field("kind", pa.string(), nullable=False)]
    + [pa.field(f.name, f.type) for f in DOC_SCHEMA]
    + [
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("source", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("bytes_read", pa.int64()),
    ]
)
_FIELDS = ROW_SCHEMA.names


class _Rows:
    """Column buffers flushed as Arrow batches, bounded by row count and text bytes."""

    def __init__(self, max_rows: int = 512, max_text_bytes: int = 32 * 2**20) -> None:
        self.max_rows, self.max_text_bytes = max_rows, max_text_bytes
        self._reset()

    def _reset(self) -> None:
        self.cols: dict[str, list] = {name: [] for name in _FIELDS}
        self.n = 0
        self.text_bytes = 0

    def add(self, **row: Any) -> pa.RecordBatch | None:
        for name in _FIELDS:
            self.cols[name].append(row.get(name))
        self.n += 1
        self.text_bytes += len(row.get("text") or "")
        if self.n >= self.max_rows or self.text_bytes >= self.max_text_bytes:
            return self.flush()
        return None

    def flush(self) -> pa.RecordBatch | None:
        if not self.n:
            return None
        batch = pa.RecordBatch.from_pydict(self.cols, schema=ROW_SCHEMA)
        self._reset()
        return batch


def _doc(dump: str, doc_id: str, url: str | None, date: str | None, content_type: str | None,
         text: str, source: str, offset: int) -> dict:
    return dict(kind="doc", doc_id=doc_id, dump=dump, url=url, host=host_of(url), warc_date=date,
                content_type=content_type, text=text, n_chars=len(text), source=source, offset=offset)


def _skip(dump: str | None, reason: str, detail: str, source: str, offset: int | None,
          url: str | None = None) -> dict:
    return dict(kind="skip", dump=dump, url=url, reason=reason, detail=detail, source=source, offset=offset)


def _mime(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _status_reason(status: int) -> str:
    return f"http_{status // 100}xx" if 100 <= status < 600 else "http_bad_status"


def record_to_doc(rec, dump: str, cfg: IngestConfig, source: str) -> dict:
    """The policy that turns one crawl record into a document row or a skip row."""
    from crawl2model.pipeline.decode import DecodeError, decode_payload
    from crawl2model.pipeline.extract import content_kind, extract_text, normalize_text

    def skip(reason: str, detail: str) -> dict:
        return _skip(dump, reason, detail, source, rec.offset, rec.url)

    if rec.rec_type not in ("response", "resource", "conversion"):
        return skip(f"record_type_{rec.rec_type}", "not a document record")
    if rec.rec_type == "response" and rec.http_status is not None and rec.http_status != 200:
        return skip(_status_reason(rec.http_status), f"HTTP status {rec.http_status}")
    if rec.truncated and len(rec.payload) >= cfg.max_payload_bytes:
        return skip("payload_too_large", f"body exceeds {cfg.max_payload_bytes} bytes")
    # A body the crawler truncated (WARC-Truncated) still extracts; it is kept.
    if not rec.payload:
        return skip("empty_body", "record has no body")
    if rec.rec_type == "conversion":
        kind = "text"
    else:
        kind = content_kind(rec.content_type, rec.payload[:1024])
        if kind is None:
            return skip("unsupported_content_type", f"content type {rec.content_type!r}")
    try:
        decoded = decode_payload(rec.payload, rec.content_type, is_html=kind == "html")
    except DecodeError as e:
        return skip(getattr(e, "reason", "undecodable_text"), str(e))
    try:
        text = extract_text(decoded.text, cfg.extractor) if kind == "html" else decoded.text
    except Exception as e:  # an extractor bug on one page must not fail the task
        return skip("extraction_error", f"{type(e).__name__}: {e}")
    text = normalize_text(text)
    if len(text) < max(cfg.min_text_chars, 1):
        return skip("empty_text", f"{len(text)} characters after extraction")
    if len(text) > cfg.max_text_chars:
        return skip("text_too_long", f"{len(text)} characters > {cfg.max_text_chars}")
    key = rec.record_id or f"{rec.url}|{rec.date}|{rec.offset}"
    return _doc(dump, make_doc_id(dump, rec.url, key), rec.url, rec.date, _mime(rec.content_type),
                text, source, rec.offset)


def _crawl_rows(split: Split, cfg: IngestConfig) -> Iterator[dict]:
    from crawl2model.pipeline.warc import Skip, iter_records

    for item in iter_records(split.path, start=split.start, end=split.end if split.splittable else None,
                             max_payload_bytes=cfg.max_payload_bytes):
        if isinstance(item, Skip):
            yield _skip(split.dump, item.reason, item.detail, split.path, item.offset)
        else:
            try:
                yield record_to_doc(item, split.dump, cfg, split.path)
            except Exception as e:  # never lose the records around one that breaks us
                yield _skip(split.dump, "internal_error", f"{type(e).__name__}: {e}", split.path,
                            item.offset, item.url)


def _user_doc(obj: dict, split: Split, cfg: IngestConfig, position: int) -> dict:
    """A JSONL line or Parquet row with a `text` field (and optional url, id, dump, date)."""
    dump = obj.get("dump") or split.dump
    url = obj.get("url")
    if not dump:
        return _skip(None, "missing_dump", "row has no 'dump' and none was given (use --dump)",
                     split.path, position, url)
    text = obj.get("text")
    if not isinstance(text, str):
        return _skip(dump, "missing_text", "no string 'text' field", split.path, position, url)
    from crawl2model.pipeline.extract import normalize_text

    text = normalize_text(text)
    if len(text) < max(cfg.min_text_chars, 1):
        return _skip(dump, "empty_text", f"{len(text)} characters", split.path, position, url)
    if len(text) > cfg.max_text_chars:
        return _skip(dump, "text_too_long", f"{len(text)} characters > {cfg.max_text_chars}",
                     split.path, position, url)
    ident = obj.get("id")
    doc_id = make_doc_id(dump, "id", str(ident)) if ident is not None else \
        make_doc_id(dump, os.path.basename(split.path), str(position))
    date = obj.get("warc_date") or obj.get("date")
    return _doc(dump, doc_id, url, str(date) if date is not None else None, obj.get("content_type"),
                text, split.path, position)


def _jsonl_rows(split: Split, cfg: IngestConfig) -> Iterator[dict]:
    fs, path = filesystem(split.path)
    with fs.open_input_stream(path) as raw:
        stream = gzip.GzipFile(fileobj=raw) if split.path.endswith(".gz") else raw
        lineno = 0
        try:
            for lineno, line in enumerate(io.BufferedReader(stream, 1 << 20), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    yield _skip(split.dump, "malformed_json", f"line {lineno}: {e}", split.path, lineno)
                    continue
                if not isinstance(obj, dict):
                    yield _skip(split.dump, "malformed_json", f"line {lineno}: not an object", split.path, lineno)
                    continue
                yield _user_doc(obj, split, cfg, lineno)
        except (OSError, EOFError) as e:  # truncated gzip: keep every line read before it
            yield _skip(split.dump, "truncated_file", f"after line {lineno}: {e}", split.path, lineno)


def _parquet_rows(split: Split, cfg: IngestConfig) -> Iterator[dict]:
    fs, path = filesystem(split.path)
    pf = pq.ParquetFile(fs.open_input_file(path))
    wanted = [c for c in ("text", "url", "id", "dump", "warc_date", "date", "content_type")
              if c in pf.schema_arrow.names]
    if "text" not in wanted:
        yield _skip(split.dump, "missing_text", "Parquet file has no 'text' column", split.path, 0)
        return
    position = 0
    for batch in pf.iter_batches(batch_size=1024, columns=wanted):
        for row in batch.to_pylist():
            yield _user_doc(row, split, cfg, position)
            position += 1


_READERS = {"crawl": _crawl_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}


def process_split(split: Split, cfg: IngestConfig) -> Iterator[pa.RecordBatch]:
    """All rows of one split. An unreadable file becomes one skip row, not a failed job."""
    rows = _Rows()
    try:
        for row in _READERS[split.kind](split, cfg):
            if (batch := rows.add(**row)) is not None:
                yield batch
    except OSError as e:
        if (batch := rows.add(**_skip(split.dump, "unreadable_file", str(e), split.path, None))) is not None:
            yield batch
    rows.add(kind="split", dump=split.dump, source=split.path, offset=split.start,
             bytes_read=split.end - split.start)
    if (batch := rows.flush()) is not None:
        yield batch


def process_partition(batches: Iterable[pa.RecordBatch], cfg: IngestConfig) -> Iterator[pa.RecordBatch]:
    """The mapInArrow body: rows of splits in, document/skip/split rows out."""
    for batch in batches:
        for d in batch.to_pylist():
            yield from process_split(Split(**d), cfg)


# --- the Spark job ----------------------------------------------------------------------


def run(spark, cfg: IngestConfig, out: StageOutput) -> dict:
    """Ingest `cfg.input` into `out` (a claimed StageOutput); returns the report."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    timer = Timer()
    found = discover_inputs(cfg.input, cfg.dump, cfg.listing())
    files, ignored = found.files, found.ignored
    if found.missing:
        log.warning(f"{len(found.missing)} listed files not found, skipped (e.g. {found.missing[0]})")
    if not files:
        raise ConfigError(f"ingest: no input files found in {', '.join(cfg.input)}")
    splits = plan_splits(files, cfg.split_size)
    total_bytes = sum(f.size for f in files)
    # Small inputs still get about two tasks per core.
    per_task = -(-total_bytes // (2 * spark.sparkContext.defaultParallelism))
    tasks = pack_tasks(splits, max(1, min(cfg.task_size, per_task)))
    log.info(f"{len(files)} files ({total_bytes / 2**20:.1f} MiB) in "
                 f"{len({f.dump for f in files})} dumps -> {len(splits)} splits in {len(tasks)} tasks; "
                 f"{len(ignored)} files ignored")

    sc = spark.sparkContext
    split_schema = from_arrow_schema(pa.schema([("path", pa.string()), ("dump", pa.string()),
                                                ("kind", pa.string()), ("start", pa.int64()),
                                                ("end", pa.int64()), ("splittable", pa.bool_())]))
    # One pack per partition, in order: task boundaries (and so output files) are deterministic.
    rdd = sc.parallelize(tasks, len(tasks)).flatMap(lambda pack: [tuple(s.as_row().values()) for s in pack])
    split_df = spark.createDataFrame(rdd, split_schema)
    rows = split_df.mapInArrow(lambda it: process_partition(it, cfg), from_arrow_schema(ROW_SCHEMA))
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        docs = rows.where(F.col("kind") == "doc").select(*DOC_SCHEMA.names)
        # About one output file per GiB of input; a fixed count keeps reruns byte-identical.
        n_files = max(1, -(-total_bytes // 2**30))
        write_parquet(docs, out.tmp_uri, partition_by=["dump"], sort_by=["doc_id"], num_files=n_files)
        timer.mark("extract_and_write")
        write_parquet(rows.where(F.col("kind") == "skip").select("dump", "url", "source", "offset", "reason", "detail"),
                      f"{out.tmp_uri}/_skipped", sort_by=["source", "offset", "reason", "detail"], num_files=1)
        stats = (rows.groupBy("kind", "dump", "reason")
                     .agg(F.count(F.lit(1)).alias("n"), F.sum("bytes_read").alias("bytes"))
                     .collect())
    finally:
        rows.unpersist()

    per_dump: Counter = Counter()
    skipped: Counter = Counter()
    skipped_per_dump: Counter = Counter()
    bytes_read = 0
    for r in stats:
        if r["kind"] == "doc":
            per_dump[r["dump"]] += r["n"]
        elif r["kind"] == "skip":
            skipped[r["reason"]] += r["n"]
            skipped_per_dump[r["dump"] or "(none)"] += r["n"]
        else:
            bytes_read += r["bytes"] or 0
    docs_out = sum(per_dump.values())
    n_skipped = sum(skipped.values())
    seconds = timer.total
    report = {
        "stage": "ingest",
        # ingest counts records: each is a document or skipped for its reason
        "docs_in": docs_out + n_skipped,
        "docs_out": docs_out,
        "removed_by_reason": dict(skipped.most_common()),
        "records_in": docs_out + n_skipped,
        "records_skipped": n_skipped,
        "per_dump": dict(sorted(per_dump.items())),
        "skipped_per_dump": dict(sorted(skipped_per_dump.items())),
        "bytes_read": bytes_read,
        "input_bytes": total_bytes,
        "files": len(files),
        "files_ignored": len(ignored),
        "files_ignored_examples": ignored[:20],
        # listed in a listing but absent: skipped, so one gone file does not stop a dump's run
        "missing_listed": len(found.missing),
        "missing_listed_examples": found.missing[:20],
        "splits": len(splits),
        "tasks": len(tasks),
        "seconds": round(seconds, 3),
        "timings": timer.report(),
        "docs_per_second": round(docs_out / seconds, 1) if seconds else None,
        "extractor": cfg.extractor,
    }
    assert report["records_in"] == report["docs_out"] + report["records_skipped"]
    log.info(f"{docs_out} documents from {report['records_in']} records "
             f"({n_skipped} skipped: {dict(skipped.most_common(5))}) in {seconds:.1f}s")
    return report
