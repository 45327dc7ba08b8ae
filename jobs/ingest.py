"""Ingest stage: crawl files -> document table (Parquet, partitioned by dump).

    crawl2model ingest --input crawl/ --output runs/x/documents
    crawl2model ingest --input warc.paths.gz --sample-files 0.01 --output runs/x/documents
    spark-submit jobs/ingest.py --input crawl/ --output runs/x/documents
"""
from __future__ import annotations

import argparse
import sys

from crawl2model.jobs.stage import SparkStage

DESCRIPTION = (
    "Read WARC/WET/ARC files (plain or gzip) grouped in one folder per dump, Common Crawl listings "
    "of them (warc.paths.gz, wet.paths.gz), or JSONL/Parquet files with a 'text' field, and write the document table as Parquet partitioned by dump, "
    "plus report.json (documents per dump, skipped records per reason) and _skipped/ "
    "(every skipped record with its reason)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p,
                     input_help="crawl root (one subfolder per dump), files, globs, or listings "
                                "(*.paths, *.paths.gz: one path per line, the dump taken from each path)",
                     output_help="output folder (written atomically, with _SUCCESS)")
    p.add_argument("--dump", help="dump id for files/globs not inside a dump folder")
    p.add_argument("--input-base", metavar="DIR_OR_URI",
                   help="where the relative paths of listings live: a local folder or a URI "
                        "(default s3://commoncrawl/; s3a:// works too, and https://data.commoncrawl.org/ "
                        "without AWS credentials)")
    p.add_argument("--limit-files", type=int, metavar="N",
                   help="trial run: the first N paths of each listing, in sorted order")
    p.add_argument("--sample-files", type=float, metavar="FRACTION",
                   help="trial run: the paths of each listing whose hash falls below FRACTION "
                        "(the same paths on every run; with --limit-files, N of those)")
    p.add_argument("--extractor", help="HTML main-text extractor: resiliparse (default) or trafilatura")
    p.add_argument("--max-payload-bytes", metavar="SIZE", help="skip record bodies larger than this (default 8MB)")
    p.add_argument("--max-text-chars", type=int, metavar="N",
                   help="skip documents with more characters than this (default 1000000)")
    p.add_argument("--min-text-chars", type=int, metavar="N", help="skip shorter documents (default 1)")
    p.add_argument("--split-size", metavar="SIZE", help="read larger crawl files with several tasks (default 256MB)")
    p.add_argument("--task-size", metavar="SIZE", help="pack small files into tasks of this size (default 128MB)")


STAGE = SparkStage(
    "ingest", help="crawl files -> document table", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.ingest:IngestConfig", body="crawl2model.pipeline.ingest:run",
    worker_preload=("crawl2model.pipeline.ingest",))
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
