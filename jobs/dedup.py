"""Dedup stage: exact + MinHash-LSH deduplication across all dumps.

    crawl2model dedup --input runs/x/documents --output runs/x/deduped
    spark-submit jobs/dedup.py --input runs/x/documents --output runs/x/deduped
"""
from __future__ import annotations

import argparse
import sys

from crawl2model.jobs.stage import SparkStage

DESCRIPTION = (
    "Remove exact and near duplicates across all dumps (or within each dump with --mode per-dump). "
    "Writes kept/ (the document table plus cluster_id and cluster_size, the copies each kept document had), "
    "duplicates/ (each removed document with its URL, representative, reason exact|near, estimated Jaccard "
    "and cluster_id), report.json with the removal rate by number of dumps, and rate_by_dumps.svg."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p, input_help="document table (ingest output or any Parquet with doc_id, dump, text)",
                     output_help="output folder (kept/, duplicates/, report.json)")
    p.add_argument("--threshold", type=float, help="Jaccard similarity of near duplicates (default 0.8)")
    p.add_argument("--num-perm", type=int, help="MinHash permutations (default 128)")
    p.add_argument("--ngram", type=int, help="shingle length in words, or characters for CJK (default 5)")
    p.add_argument("--bands", type=int, help="LSH bands (default: derived from --threshold)")
    p.add_argument("--rows", type=int, help="LSH rows per band (default: derived from --threshold)")
    p.add_argument("--mode", choices=["global", "per-dump"],
                   help="deduplicate across all dumps (default) or within each")
    p.add_argument("--keep", choices=["earliest", "latest", "longest"],
                   help="which copy survives: from the oldest dump (default), the newest, or the longest")
    p.add_argument("--seed", type=int, help="MinHash seed (default 0)")
    p.add_argument("--scheme", choices=["fast", "datasketch"],
                   help="signature scheme: fast (default) or datasketch-compatible k-permutation MinHash")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                   help="check LSH candidates by estimated Jaccard (default on)")
    p.add_argument("--url-dedup", action=argparse.BooleanOptionalAction, default=None,
                   help="also treat documents with the same URL as duplicates (default off)")
    p.add_argument("--rate-by-dumps", action=argparse.BooleanOptionalAction, default=None,
                   help="compute the removal rate for the first k dumps, k = 1..N, and within each dump "
                        "(one union-find pass over the edges each; default on)")
    p.add_argument("--verify-by", choices=["signature", "shingles"],
                   help="how candidates are verified: signature (Jaccard estimate, default) or shingles (exact "
                        "Jaccard of the shingle sets, with LSH tuned 0.1 below --threshold: exact near the "
                        "threshold, slower)")
    p.add_argument("--candidate-threshold", type=float, metavar="T",
                   help="similarity the LSH bands are tuned to (default: --threshold; with --verify-by "
                        "shingles, 0.1 below it)")
    p.add_argument("--one-task-docs", type=int, metavar="N",
                   help="inputs of at most N documents are deduplicated after their signatures in one Python "
                        "task (a few KB of worker memory per document), larger ones by the distributed plan "
                        "(default 250000; 0 always distributes)")
    p.add_argument("--one-task-edges", type=int, metavar="N",
                   help="in the distributed plan, graphs of at most N edges get their components from one "
                        "union-find task, larger ones from large-star/small-star rounds (default 10000000)")
    p.add_argument("--max-shingles", type=int, help="cap on shingles per document (default 100000)")
    p.add_argument("--output-partitions", type=int, help="files per dump in kept/ (default 4)")
    p.add_argument("--index", metavar="DIR",
                   help="incremental mode: deduplicate only dumps newer than those in this index, "
                        "against it, then add them to it (created if missing)")


STAGE = SparkStage(
    "dedup", help="exact + near-duplicate removal across dumps", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.dedup:DedupConfig", body="crawl2model.pipeline.dedup:run",
    worker_preload=("crawl2model.pipeline.dedup:warm_kernels",))
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
