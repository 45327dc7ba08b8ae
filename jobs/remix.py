"""Remix stage: domain labels, target mixture, deterministic up/down-sampling, shuffled shards.

    crawl2model remix --input runs/x/filtered/kept --output runs/x/shards --mixture infra/remix/mix.example.toml
    spark-submit jobs/remix.py --input runs/x/filtered/kept --output runs/x/shards
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from crawl2model.jobs.stage import SparkStage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crawl2model.core.outputs import StageOutput
    from crawl2model.pipeline.remix import RemixConfig

DESCRIPTION = (
    "Label each document's domain (URL/host rules, then an optional fastText topic classifier), "
    "re-weight domains to a target mixture by repeating (up to --max-copies) or sampling documents "
    "by a hash of doc_id and the seed, shuffle, and write Parquet shards of about --shard-size with "
    "manifest.json (per shard: documents, bytes, per-domain counts, sha256), dropped/ (documents "
    "left out, with the reason), report.json (target vs achieved mix) and mix.png."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p, input_help="document table (filter or dedup output, or any Parquet with doc_id and text)",
                     output_help="shard folder (shard-NNNNN.parquet, manifest.json, dropped/, report.json, mix.png)")
    p.add_argument("--mixture", metavar="MIX.toml",
                   help="target shares per domain in a [target] table (default: keep the measured mixture)")
    p.add_argument("--domain-rules", metavar="RULES.toml",
                   help="URL regex / host suffix -> domain table (default infra/remix/domains.toml)")
    p.add_argument("--classifier", metavar="MODEL",
                   help="fastText model for documents no rule matches: a model file or a "
                        "`quality-models train-classifier` output folder")
    p.add_argument("--min-classifier-prob", type=float, metavar="P",
                   help="classifier labels below this probability become 'other' (default 0)")
    p.add_argument("--unit", choices=["bytes", "tokens"], help="what shares count (default bytes)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder, for --unit tokens")
    p.add_argument("--max-copies", type=float, metavar="N", help="cap on repetitions of a document (default 4)")
    p.add_argument("--total", metavar="N",
                   help="output size in the unit: input (default), max (largest meeting every target), or a number")
    p.add_argument("--shard-size", metavar="SIZE", help="target Parquet file size (default 256MB)")
    p.add_argument("--seed", type=int, help="seed of sampling and shuffle (default 0)")


def run(spark: "SparkSession", cfg: "RemixConfig", out: "StageOutput") -> dict:
    """The stage body: load the topic classifier the config names, if any, then the pipeline's remix."""
    from crawl2model.pipeline import remix
    from crawl2model.quality_models.scorers import Labeller
    from crawl2model.quality_models.shipped import classifier_file

    classifier = Labeller(classifier_file(cfg.classifier)) if cfg.classifier else None
    return remix.run(spark, cfg, out, classifier)


STAGE = SparkStage(
    "remix", help="domain mixture -> shuffled curated shards", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.remix:RemixConfig", body="crawl2model.jobs.remix:run")
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
