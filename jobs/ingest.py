"""Ingest stage: crawl files -> document table (Parquet, partitioned by dump).

    crawl2model ingest --input crawl/ --output runs/x/documents
    spark-submit jobs/ingest.py --input crawl/ --output runs/x/documents
"""
from __future__ import annotations

import argparse
import sys

from crawl2model.jobs.stage import SparkStage

DESCRIPTION = (
    "Read WARC/WET/ARC files (plain or gzip) grouped in one folder per dump, or JSONL/Parquet "
    "files with a 'text' field, and write the document table as Parquet partitioned by dump, "
    "plus report.json (documents per dump, skipped records per reason) and _skipped/ "
    "(every skipped record with its reason)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p,
                     input_help="crawl root (one subfolder per dump), files or globs",
                     output_help="output folder (written atomically, with _SUCCESS)")
    p.add_argument("--dump", help="dump id for files/globs not inside a dump folder")
    p.add_argument("--extractor", help="HTML main-text extractor: resiliparse (default) or trafilatura")
    p.add_argument("--max-payload-bytes", metavar="SIZE", help="skip record bodies larger than this (default 8MB)")
    p.add_argument("--max-text-chars", type=int, metavar="N",
                   help="skip documents with more characters than this (default 1000000)")
    p.add_argument("--min-text-chars", type=int, metavar="N", help="skip shorter documents (default 1)")
    p.add_argument("--split-size", metavar="SIZE", help="read larger crawl files with several tasks (default 256MB)")
    p.add_argument("--task-size", metavar="SIZE", help="pack small files into tasks of this size (default 128MB)")


STAGE = SparkStage(
    "ingest", help="crawl files -> document table", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.ingest:IngestConfig", body="crawl2model.pipeline.ingest:run")
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
