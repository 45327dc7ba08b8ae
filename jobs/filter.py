"""Filter stage: language ID, heuristic rules, fastText quality, KenLM perplexity.

    crawl2model filter --input runs/x/deduped/kept --output runs/x/filtered [--rules rules.toml]
    crawl2model filter --reapply --input runs/x/filtered --output runs/x/filtered2 --rules strict.toml
    spark-submit jobs/filter.py --input runs/x/deduped/kept --output runs/x/filtered
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from crawl2model.jobs.stage import SparkStage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from crawl2model.core.outputs import StageOutput
    from crawl2model.pipeline.filters.filter_stage import FilterConfig
    from crawl2model.pipeline.filters.models import FilterModels

DESCRIPTION = (
    "Replace PII (e-mail, public IP addresses, phone numbers) by placeholders, compute every quality signal "
    "once (URL blocklist and banned words, lid.176 language and score, Gopher/C4/FineWeb heuristics, "
    "fastText quality_score, KenLM perplexity) as columns, then apply a rule set. Writes kept/, "
    "rejected/ (with the first failed rule, its value and threshold), report.json (pass rates per rule "
    "and per language) and histograms with the thresholds. --reapply applies a new rule set to a "
    "previous filter output's stored signals without recomputing them."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p, input_help="document table (dedup's kept/ or any Parquet with doc_id, dump, text); "
                                   "with --reapply, a previous filter output folder",
                     output_help="output folder (kept/, rejected/, report.json, hist_*.svg)")
    p.add_argument("--rules", metavar="RULES.toml", help="rule set overriding the defaults (pipeline/filters/rules.py)")
    p.add_argument("--reapply", action="store_true", default=None,
                   help="apply --rules to the stored signals of the filter output given as --input")
    p.add_argument("--quality-model", metavar="MODEL",
                   help="fastText quality classifier: a model file or a `quality-models train-classifier` "
                        "output folder (default: shipped)")
    p.add_argument("--kenlm-dir", nargs="+", metavar="DIR",
                   help="folders of kenlm_<lang>.binary models, such as `quality-models train-kenlm` outputs "
                        "(default: shipped)")
    p.add_argument("--blocklists", metavar="SOURCE",
                   help='URL blocklist and banned words: "datatrove" (the UT1 lists in the installed datatrove '
                        'wheel; the default when installed), a UT1 archive or folder, or "none"')
    p.add_argument("--blocklist-categories", nargs="+", metavar="CAT",
                   help="UT1 categories that block (default: adult phishing malware)")
    p.add_argument("--pii", nargs="*", metavar="KIND",
                   help="PII replaced by placeholders: any of email ip phone (default all; none: --pii)")
    p.add_argument("--output-partitions", type=int, help="files per dump in kept/ and rejected/ (default 4)")


def filter_models(cfg: "FilterConfig") -> "FilterModels":
    """The models behind the filter's signals, as the config names them (None: the shipped ones)."""
    from crawl2model.pipeline.filters.models import FilterModels
    from crawl2model.quality_models import shipped
    from crawl2model.quality_models.scorers import Labeller, PerplexityScorer, QualityScorer

    return FilterModels(language=Labeller(shipped.lid_model_path()),
                        quality=QualityScorer(shipped.classifier_file(cfg.quality_model)),
                        perplexity=PerplexityScorer(shipped.kenlm_files(cfg.kenlm_dir)))


def run(spark: "SparkSession", cfg: "FilterConfig", out: "StageOutput") -> dict:
    """The stage body: build the models (none to --reapply stored signals), then the pipeline's filter."""
    from crawl2model.pipeline.filters import filter_stage

    return filter_stage.run(spark, cfg, out, None if cfg.reapply else filter_models(cfg))


STAGE = SparkStage(
    "filter", help="language, heuristic, quality and perplexity filtering", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.pipeline.filters.filter_stage:FilterConfig",
    body="crawl2model.jobs.filter:run",
    worker_preload=("crawl2model.pipeline.filters.filter_stage", "crawl2model.core.text:_jieba"))
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
