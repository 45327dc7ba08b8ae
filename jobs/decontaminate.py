"""Benchmark decontamination: remove (or cut) documents sharing an n-gram with evaluation samples.

    crawl2model decontaminate --input runs/x/filtered/kept --eval mmlu.jsonl gsm8k.parquet --output runs/x/decon
    crawl2model decontaminate ... --mode cut --ngram 13
    spark-submit jobs/decontaminate.py --input ... --eval ... --output ...
"""
from __future__ import annotations

import argparse
import sys

from crawl2model.jobs.stage import SparkStage

DESCRIPTION = (
    "Find documents that share an n-gram (default 13 tokens: words, or characters in CJK text) with any "
    "evaluation sample (JSON Lines or Parquet files, one benchmark a file) by a Spark join on 64-bit n-gram "
    "keys, then remove them (default) or cut the matched spans out. Writes kept/, removed/ (each with the "
    "matched benchmarks and sample ids) and report.json (per benchmark)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p, input_help="document table (filter's kept/ or any Parquet with doc_id and text)",
                     output_help="output folder (kept/, removed/, report.json)")
    p.add_argument("--eval", nargs="+", metavar="FILE", help="evaluation sets: .jsonl or .parquet, a sample a row")
    p.add_argument("--eval-fields", nargs="+", metavar="FIELD",
                   help="sample fields whose text is matched (default: text question prompt input context "
                        "answer choices)")
    p.add_argument("--id-field", help="sample id field (default id; else FILE:ROW)")
    p.add_argument("--ngram", type=int, help="tokens per n-gram (default 13)")
    p.add_argument("--mode", choices=("remove", "cut"), help="remove contaminated documents (default) or cut "
                                                             "the matched spans")
    p.add_argument("--output-partitions", type=int, help="files per dump in kept/ and removed/ (default 4)")


STAGE = SparkStage(
    "decontaminate", help="remove documents overlapping evaluation sets (n-gram join)", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.filters.decontam:DecontaminateConfig",
    body="crawl2model.pipeline.filters.decontam:run")
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
