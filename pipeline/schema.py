"""The document table: one schema for every stage (DESIGN.md, "Data contracts").

Stages only ever add columns to it, so a user's own Parquet dataset with these
columns can enter the flow at any stage.
"""
from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import pyarrow as pa

DOC_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("dump", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("host", pa.string()),
        pa.field("warc_date", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_chars", pa.int64(), nullable=False),
    ]
)

DOC_COLUMNS = DOC_SCHEMA.names

# Columns the remix stage adds (pipeline/remix.py): the document's domain; where that label
# came from ("input" table, URL "rule", topic "classifier", or "default" when nothing matched);
# and which repetition of an up-sampled document a row is (0 for the first).
REMIX_FIELDS = [
    pa.field("domain", pa.string(), nullable=False),
    pa.field("domain_source", pa.string(), nullable=False),
    pa.field("copy", pa.int32(), nullable=False),
]


def make_doc_id(*parts: str | bytes | None) -> str:
    """A stable 128-bit hex id from the parts that identify a document.

    Ids are hashes of content/URL, never positions or Spark-generated ids, so a
    rerun of any stage on the same input gives the same ids (DESIGN.md, principle 3).
    A NUL separates the parts so that ("ab", "c") and ("a", "bc") differ.
    """
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if part is None:
            part = b""
        elif isinstance(part, str):
            part = part.encode("utf-8", "surrogatepass")
        h.update(part)
        h.update(b"\x00")
    return h.hexdigest()


def host_of(url: str | None) -> str | None:
    """Lower-cased host name of a URL without port or credentials, or None."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host or None
