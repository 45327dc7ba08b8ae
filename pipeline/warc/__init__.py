"""Streaming reader for WARC/WET and ARC crawl files, plain or gzip-compressed.

Layered bottom-up: `headers` and `http` parse bytes, `members` buffers plain
and gzip streams and finds gzip members again after damage, and `records`
frames records on top of them and plans splits. Importers use the names below.
"""

from crawl2model.pipeline.warc.records import Record, Skip, detect_format, is_splittable, iter_records

__all__ = ["Record", "Skip", "iter_records", "is_splittable", "detect_format"]
