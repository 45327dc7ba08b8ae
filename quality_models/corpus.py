"""Reading training text for the quality models from the formats people have at hand.

JSON Lines (a text field, and a label field for labelled data), Parquet tables
(a stage's output folder or a file, with a `text` column) and plain text files
with one document a line.
"""
from __future__ import annotations

import json
import os
from typing import Iterator


def _is_parquet(path: str) -> bool:
    return path.endswith(".parquet") or os.path.isdir(path)


def _jsonl_rows(path: str) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not JSON: {e}") from None


def read_texts(path: str, text_field: str = "text") -> list[str]:
    """Every non-empty document in `path`."""
    if _is_parquet(path):
        from crawl2model.pipeline.tables import arrow_dataset

        texts = arrow_dataset(path).to_table(columns=[text_field]).column(text_field).to_pylist()
    elif path.endswith((".jsonl", ".json")):
        texts = [row.get(text_field) for row in _jsonl_rows(path)]
    else:
        with open(path, encoding="utf-8") as f:
            texts = f.read().splitlines()
    return [t for t in texts if t and t.strip()]


def read_labelled(path: str, text_field: str = "text", label_field: str = "label") -> tuple[list[str], list[str]]:
    """(texts, labels) from JSON Lines or Parquet; rows missing either are skipped."""
    if _is_parquet(path):
        from crawl2model.pipeline.tables import arrow_dataset

        t = arrow_dataset(path).to_table(columns=[text_field, label_field])
        rows = zip(t.column(text_field).to_pylist(), t.column(label_field).to_pylist())
    else:
        rows = ((r.get(text_field), r.get(label_field)) for r in _jsonl_rows(path))
    pairs = [(t, str(lab)) for t, lab in rows if t and t.strip() and lab is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]
