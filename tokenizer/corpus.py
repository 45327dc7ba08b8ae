"""Training text for the tokenizer: files and folders in, a deterministic sample out.

The corpus may be far larger than the byte budget (the paper sampled 24 GB),
and must never be loaded whole. So every file's text size is estimated from
metadata alone (file size, the gzip trailer, Parquet column statistics), a
keep-rate `budget / estimate` is derived, and then documents are streamed and
kept by a random draw seeded from (seed, file): the same inputs and seed give
the same sample, independent of how many cores read them. Files are visited
in a seed-shuffled order, so the hard stop at the budget does not always cut
the same tail.
"""
from __future__ import annotations

import gzip
import io
import json
import posixpath
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs

from crawl2model.core.errors import InputError
from crawl2model.core.fs import filesystem
from crawl2model.core.outputs import data_files

TEXT_SUFFIXES = (".txt", ".txt.gz", ".text", ".md")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
# Plain text is cut into documents at line ends once this long, so that one
# huge file is still sampled in small units.
TEXT_CHUNK_CHARS = 1 << 16


@dataclass(frozen=True, slots=True)
class CorpusFile:
    path: str
    key: str        # path relative to the input it was found under: seeds its draws
    kind: str       # "text" | "jsonl" | "parquet"
    est_bytes: int  # estimated UTF-8 bytes of text inside


def file_kind(name: str) -> str | None:
    lower = name.lower()
    for kind, suffixes in (("text", TEXT_SUFFIXES), ("jsonl", JSONL_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if lower.endswith(suffixes):
            return kind
    return None


def estimate_bytes(path: str, kind: str, size: int | None = None) -> int:
    """UTF-8 bytes of text in a file (local path or URI), from metadata only."""
    fs, inner = filesystem(path)
    size = fs.get_file_info(inner).size if size is None else size
    if kind == "parquet":
        import pyarrow.parquet as pq

        with fs.open_input_file(inner) as fh:
            md = pq.ParquetFile(fh).metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        if "text" not in names:
            raise ValueError(f"{path}: Parquet file has no 'text' column (columns: {', '.join(names)})")
        col = names.index("text")
        return sum(md.row_group(g).column(col).total_uncompressed_size for g in range(md.num_row_groups))
    if path.endswith(".gz") and size >= 18:
        with fs.open_input_file(inner) as f:  # ISIZE: uncompressed length mod 2**32 of the last member
            f.seek(size - 4)
            isize = int.from_bytes(f.read(4), "little")
        return isize if isize >= size else 4 * size
    return size


def discover(inputs: list[str]) -> list[CorpusFile]:
    """Readable files under `inputs`, sorted. A folder is what its stage's `_SUCCESS` lists
    (an unfinished output is refused), else its files, hidden and `_` files and
    unknown suffixes skipped; a file named explicitly is read as text if its
    suffix is unknown."""
    found: dict[str, CorpusFile] = {}
    for spec in inputs:
        fs, root = filesystem(spec)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.Directory:  # a stage output: what its _SUCCESS lists
            for path in data_files(spec, TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES):
                rel = path[len(spec.rstrip("/")) + 1:]
                kind = file_kind(rel)
                found[path] = CorpusFile(path, rel, kind, estimate_bytes(path, kind))
        elif info.type == pafs.FileType.File:
            kind = file_kind(spec) or "text"
            found[spec] = CorpusFile(spec, posixpath.basename(root), kind, estimate_bytes(spec, kind, info.size))
        else:
            raise InputError(f"tokenizer input not found: {spec}")
    if not found:
        raise InputError(f"no text, JSONL or Parquet files in {', '.join(inputs)}")
    return sorted(found.values(), key=lambda f: f.path)


def _open_text(path: str) -> io.TextIOBase:
    fs, inner = filesystem(path)
    raw = fs.open_input_stream(inner, compression=None)
    if path.endswith(".gz"):
        raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def iter_documents(f: CorpusFile) -> Iterator[str]:
    """The documents of one file, streamed."""
    if f.kind == "parquet":
        import pyarrow.parquet as pq

        fs, inner = filesystem(f.path)
        with fs.open_input_file(inner) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=1024, columns=["text"]):
                yield from (t for t in batch.column(0).to_pylist() if t)
    elif f.kind == "jsonl":
        with _open_text(f.path) as fh:
            for line in fh:
                if line.strip():
                    text = json.loads(line).get("text")
                    if text:
                        yield text
    else:
        with _open_text(f.path) as fh:
            for lines in batches_by_chars(fh, TEXT_CHUNK_CHARS):
                yield "".join(lines)


def batches_by_chars(texts: Iterable[str], limit: int) -> Iterator[list[str]]:
    """Consecutive texts grouped until a group holds at least `limit` characters (the last may hold fewer)."""
    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@dataclass
class SampleStats:
    files: int = 0
    files_read: int = 0
    est_bytes: int = 0
    keep_rate: float = 1.0
    docs_seen: int = 0
    docs_kept: int = 0
    bytes_kept: int = 0
    seconds: float = 0.0


def sample(files: list[CorpusFile], max_bytes: int, seed: int, stats: SampleStats | None = None,
           progress: Callable[[str], None] | None = None, every_bytes: int = 64 << 20) -> Iterator[str]:
    """Documents of `files` kept with probability budget/estimate, until `max_bytes` UTF-8 bytes."""
    stats = stats if stats is not None else SampleStats()
    stats.files = len(files)
    stats.est_bytes = sum(f.est_bytes for f in files)
    stats.keep_rate = min(1.0, max_bytes / max(stats.est_bytes, 1))
    order = list(files)
    random.Random(seed).shuffle(order)
    t0 = time.time()
    next_report = every_bytes
    for f in order:
        stats.files_read += 1
        rng = random.Random(f"{seed}\0{f.key}")
        for doc in iter_documents(f):
            stats.docs_seen += 1
            if rng.random() >= stats.keep_rate:
                continue
            stats.docs_kept += 1
            stats.bytes_kept += len(doc.encode("utf-8", "surrogatepass"))
            yield doc
            if progress and stats.bytes_kept >= next_report:
                next_report += every_bytes
                mb = stats.bytes_kept / 1e6
                progress(f"sampled {mb:,.0f} / {max_bytes / 1e6:,.0f} MB from {stats.files_read}/{len(files)} "
                         f"files ({mb / max(time.time() - t0, 1e-9):,.1f} MB/s)")
            if stats.bytes_kept >= max_bytes:
                stats.seconds = time.time() - t0
                return
    stats.seconds = time.time() - t0

