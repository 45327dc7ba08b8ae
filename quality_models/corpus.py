"""Reading training text for the quality models from the formats people have at hand.

JSON Lines (a text field, and a label field for labelled data), Parquet tables
(a stage's output folder or a file, with a `text` column) and plain text files
with one document a line; local paths or URIs (through `core.fs`). Readers
return what they skipped as well, so a training report can account for every
row it read.
"""
from __future__ import annotations

import json
import posixpath
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from crawl2model.core.errors import InputError
from crawl2model.core.fs import filesystem
from crawl2model.core.outputs import data_files


def _lines(path: str) -> Iterator[str]:
    fs, p = filesystem(path)
    if fs.get_file_info(p).type != pafs.FileType.File:
        raise InputError(f"input not found: {path}")
    with fs.open_input_stream(p) as f:
        yield from f.read().decode("utf-8").splitlines()


def _is_parquet(path: str) -> bool:
    fs, p = filesystem(path)
    return p.endswith(".parquet") or fs.get_file_info(p).type == pafs.FileType.Directory


def _parquet(path: str, columns: list[str]) -> pa.Table:
    """`columns` of a Parquet table: a stage output's committed files, or a user's own files."""
    fs, p = filesystem(path)
    folder = fs.get_file_info(p).type == pafs.FileType.Directory
    files = [filesystem(f)[1] for f in data_files(path, (".parquet",))]  # what its stage committed
    dataset = ds.dataset(files, filesystem=fs, format="parquet", partitioning="hive" if folder else None,
                         partition_base_dir=p if folder else None)
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(dataset.schema.names)})")
    return dataset.to_table(columns=columns)


def _jsonl_rows(path: str) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(_lines(path), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: not JSON: {e}") from None


def _present(text: Any) -> bool:
    return isinstance(text, str) and bool(text.strip())


def read_texts(path: str, text_field: str = "text") -> tuple[list[str], int]:
    """(every non-empty document in `path`, how many rows were empty or had no text)."""
    if _is_parquet(path):
        texts = _parquet(path, [text_field]).column(text_field).to_pylist()
    elif posixpath.basename(path).endswith((".jsonl", ".json")):
        texts = [row.get(text_field) for row in _jsonl_rows(path)]
    else:
        texts = list(_lines(path))
    kept = [t for t in texts if _present(t)]
    return kept, len(texts) - len(kept)


def read_labelled(path: str, text_field: str = "text",
                  label_field: str = "label") -> tuple[list[str], list[str], int]:
    """(texts, labels, rows skipped for lacking either) from JSON Lines or Parquet."""
    if _is_parquet(path):
        t = _parquet(path, [text_field, label_field])
        rows = list(zip(t.column(text_field).to_pylist(), t.column(label_field).to_pylist()))
    else:
        rows = [(r.get(text_field), r.get(label_field)) for r in _jsonl_rows(path)]
    pairs = [(t, str(lab)) for t, lab in rows if _present(t) and lab is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs], len(rows) - len(pairs)
