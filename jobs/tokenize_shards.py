"""Tokenize stage: document table -> token shards (Arrow IPC) + manifest.json.

    crawl2model tokenize --tokenizer runs/x/tokenizer --input runs/x/shards --output runs/x/tokens
    spark-submit jobs/tokenize_shards.py --tokenizer runs/x/tokenizer --input runs/x/shards --output runs/x/tokens
"""
from __future__ import annotations

import argparse
import sys

from crawl2model.jobs.stage import SparkStage

DESCRIPTION = (
    "Encode the 'text' of a Parquet document table (remix shards, or any table with text and "
    "doc_id, optional domain) with a trained tokenizer, and write memory-mappable Arrow IPC "
    "token shards (input_ids: large_list<uint32> with EOS appended, doc_id, domain), "
    "manifest.json (per shard: documents, tokens, sha256; totals; tokenizer hash) and report.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p,
                     input_help="Parquet document table(s): folders or files",
                     output_help="token shard folder (written atomically, with _SUCCESS)")
    p.add_argument("--tokenizer", metavar="DIR", help="folder from `crawl2model tokenizer train`")
    p.add_argument("--num-shards", type=int, metavar="N",
                   help="write N shards, hashed by doc_id (default: one per input partition)")


STAGE = SparkStage(
    "tokenize", help="document table -> token shards", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.token_shards:TokenizeConfig", body="crawl2model.pipeline.token_shards:run")
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
