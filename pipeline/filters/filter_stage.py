"""The filter stage's Spark body: signals once, then rules, then kept/ and rejected/.

Signals are computed by `signal_batch` (a pure function on Arrow batches, run
by mapInArrow). The model signals come from the `FilterModels` that `run` is
given (`jobs/filter.py` builds them from the config; see `models.py`), so the
pipeline never loads a model itself. The rule set is applied by
`rules.decide` from the stored columns, so `--reapply` reads a previous
filter output (kept + rejected), drops the old decision and decides again
without any model.
"""
from __future__ import annotations

import functools
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from crawl2model.core.errors import ConfigError
from crawl2model.core.log import Timer, get_logger
from crawl2model.pipeline.cluster import prepare_workers
from crawl2model.pipeline.filters import blocklist, heuristics, pii, rules, summary
from crawl2model.pipeline.filters.blocklist import Blocklists
from crawl2model.pipeline.filters.langid import identify
from crawl2model.pipeline.filters.models import FilterModels

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from crawl2model.core.outputs import StageOutput

log = get_logger("filter")

BLOCKLIST_FIELDS = [*(pa.field(s, pa.float64()) for s in blocklist.SIGNALS),
                    pa.field(blocklist.MATCH_COLUMN, pa.string())]
SIGNAL_FIELDS = [pa.field("lang", pa.string()), pa.field("lang_score", pa.float64()),
                 *(pa.field(s, pa.float64()) for s in heuristics.SIGNALS),
                 pa.field("quality_score", pa.float64()), pa.field("perplexity", pa.float64()),
                 *BLOCKLIST_FIELDS, *pii.FIELDS]
SIGNAL_COLUMNS = [f.name for f in SIGNAL_FIELDS]
# A worker loads what the signals need on its first batch; these load it ahead (`_load_models`).
WARM_TEXTS = ["The filter loads its models before the first batch arrives.\nA second line of prose.",
              "过滤器在第一批文档到达之前加载模型。\n第二行中文。"]
# Columns a filter output written before they existed lacks; --reapply reads them as unmeasured.
LATER_FIELDS = [pa.field(s, pa.float64()) for s in heuristics.LATER_SIGNALS] + BLOCKLIST_FIELDS + pii.FIELDS
SIDE = "__side"  # kept or rejected: the folder a row is written to
# Histograms in the report folder: (signal, log scale).
PLOTTED = (("lang_score", False), ("n_words", True), ("mean_word_len", False), ("alpha_word_frac", False),
           ("dup_line_char_frac", False), ("top_2gram_frac", False), ("line_punct_frac", False),
           ("short_line_frac", False), ("quality_score", False), ("perplexity", True))


@dataclass
class FilterConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    # The rule set (see pipeline/filters/rules.py): a TOML file, or inline as the [filter.rules]
    # table of a run file; None: the rules in code.
    rules: str | dict[str, Any] | None = None
    # Input is a previous filter output: apply the rule set to its stored signals.
    reapply: bool = False
    # fastText quality classifier: a model file or a `quality-models train-classifier` output folder;
    # None: the shipped model.
    quality_model: str | None = None
    # Folders of KenLM models named kenlm_<lang>.binary (or .arpa), such as `quality-models train-kenlm`
    # outputs; None: the shipped models. Languages without a model get no perplexity.
    kenlm_dir: str | list[str] | None = None
    # URL blocklist and banned words (pipeline/filters/blocklist.py): "datatrove" (the UT1 lists and word
    # lists in the installed datatrove wheel), a UT1 archive or folder, or "none"; None: datatrove's
    # when it is installed, else none (with a warning).
    blocklists: str | None = None
    # UT1 categories whose domains and URLs block (flat lists, such as datatrove's, are used whole).
    blocklist_categories: list[str] = field(default_factory=lambda: list(blocklist.DEFAULT_CATEGORIES))
    # PII replaced by placeholders before any signal (pipeline/filters/pii.py): any of email, ip, phone.
    pii: list[str] = field(default_factory=lambda: list(pii.KINDS))
    # Files per dump in kept/ and rejected/.
    output_partitions: int = 4
    # Documents drawn for the histograms.
    histogram_sample: int = 50_000
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input or not self.output:
            raise ConfigError("filter: --input and --output are required")
        if self.output_partitions < 1:
            raise ConfigError("filter: output_partitions must be >= 1")
        if isinstance(self.pii, str):
            self.pii = [self.pii]
        unknown = sorted(set(self.pii) - set(pii.KINDS))
        if unknown:
            raise ConfigError(f"filter: pii: unknown kinds {unknown} (known: {', '.join(pii.KINDS)})")
        if isinstance(self.blocklist_categories, str):
            self.blocklist_categories = [self.blocklist_categories]
        if not self.reapply:  # what the paths hold is checked where the models are built
            kenlm = [self.kenlm_dir] if isinstance(self.kenlm_dir, str) else self.kenlm_dir or []
            for key, path in [("quality_model", self.quality_model), *(("kenlm_dir", d) for d in kenlm)]:
                if path is not None and not os.path.exists(path):
                    raise ConfigError(f"filter: {key} not found: {path}")
        self.ruleset()  # a bad rule set fails before Spark starts
        if not self.reapply:
            self.blocklist_spec()

    def ruleset(self) -> rules.RuleSet:
        return rules.load_ruleset(self.rules)

    def blocklist_spec(self) -> Blocklists | None:
        """The lists to match, or None when switched off (or left to datatrove, which is not installed)."""
        if self.blocklists in ("none", ""):
            return None
        categories = tuple(self.blocklist_categories)
        if self.blocklists is None:
            try:
                blocklist.datatrove_assets()
            except ConfigError as e:
                log.warning(f"no URL blocklist or banned words: {e}")
                return None
            return Blocklists(blocklist.DATATROVE, categories)
        spec = Blocklists(self.blocklists, categories)
        spec.path()  # a missing source fails before Spark starts
        return spec


# --- per-batch work (pure, runs in mapInArrow) -------------------------------------------

def signal_batch(batch: pa.RecordBatch, models: FilterModels, timings: dict[str, float] | None = None,
                 blocklists: Blocklists | None = None, redact: tuple[str, ...] = ()) -> pa.RecordBatch:
    """Documents -> documents (PII of the `redact` kinds replaced) + SIGNAL_COLUMNS (`timings` collects
    seconds per signal family; without `blocklists` their signals are NaN: unmeasured, passing)."""
    timer = Timer()
    texts, pii_counts = pii.redact_texts(batch.column("text").to_pylist(), tuple(redact))
    timer.mark("pii")
    n = len(texts)
    if blocklists is not None:
        urls = batch.column("url").to_pylist() if "url" in batch.schema.names else [None] * n
        blocked, matches = blocklist.signals(texts, urls, blocklists)
    else:
        blocked, matches = {s: np.full(n, np.nan) for s in blocklist.SIGNALS}, [None] * n
    timer.mark("blocklist")
    langs, lang_scores = identify(texts, models.language)
    timer.mark("lid")
    heur = heuristics.signals_table(texts, langs)
    timer.mark("heuristics")
    quality = models.quality(texts, langs)
    timer.mark("classifier")
    ppl = models.perplexity(texts, langs)
    timer.mark("kenlm")
    if timings is not None:
        for name, sec in timer.laps.items():
            timings[name] = timings.get(name, 0.0) + sec
    keep = [c for c in batch.schema.names if c not in SIGNAL_COLUMNS]
    arrays = [pa.array(texts, batch.schema.field("text").type) if c == "text" else batch.column(c) for c in keep]
    arrays += [pa.array(langs, pa.string()), pa.array(lang_scores), *heur.values(), pa.array(quality), pa.array(ppl),
               *(pa.array(blocked[s]) for s in blocklist.SIGNALS), pa.array(matches, pa.string()), *pii_counts]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([batch.schema.field(c) for c in keep] + SIGNAL_FIELDS))


# --- the job --------------------------------------------------------------------------

def _with_fields(df: "DataFrame", fields: list[pa.Field]):
    """df's Spark schema, minus then plus `fields` (as mapInArrow must be told)."""
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StructType

    names = {f.name for f in fields}
    kept = [f for f in df.schema.fields if f.name not in names]
    return StructType(kept + list(from_arrow_schema(pa.schema(fields)).fields))


def _signals(docs: "DataFrame", models: FilterModels, cfg: FilterConfig,
             lists: Blocklists | None) -> "DataFrame":
    log.info(f"models: {models}")
    redact = tuple(cfg.pii)
    return docs.mapInArrow(lambda it: (signal_batch(b, models, blocklists=lists, redact=redact) for b in it),
                           _with_fields(docs, SIGNAL_FIELDS))


def _load_models(models: FilterModels, lists: Blocklists | None, redact: tuple[str, ...]) -> None:
    """What a worker's first batch would load (models, blocklists, jieba's dictionary): one tiny batch."""
    signal_batch(pa.RecordBatch.from_pydict({"doc_id": ["a", "b"], "text": WARM_TEXTS}), models,
                 blocklists=lists, redact=redact)


def _previous_output(spark: "SparkSession", paths: list[str]) -> "DataFrame":
    from crawl2model.pipeline.tables import read_table

    both = read_table(spark, [posixpath.join(p.rstrip("/"), d) for p in paths for d in ("kept", "rejected")])
    missing = [c for c in ("lang", "lang_score", "quality_score", "perplexity") if c not in both.columns]
    if missing:
        raise ConfigError(f"filter --reapply: {', '.join(paths)} is not a filter output "
                          f"(no {', '.join(missing)} columns)")
    from pyspark.sql import functions as F

    both = both.drop(*[c for c in rules.DECISION_COLUMNS if c in both.columns])
    for f in LATER_FIELDS:
        if f.name not in both.columns:
            spark_type = {pa.float64(): "double", pa.string(): "string", pa.int32(): "int"}[f.type]
            value = F.lit(float("nan")) if f.type == pa.float64() else F.lit(None)
            both = both.withColumn(f.name, value.cast(spark_type))
    return both


def _stats(signals: "DataFrame") -> tuple[dict[str, list[float]], int]:
    """Per-language perplexity percentiles 1..99 of this run (CCNet buckets are relative), and the
    number of documents, in one aggregation."""
    from pyspark.sql import functions as F

    measured = F.when(F.col("perplexity").isNotNull() & ~F.isnan("perplexity"), F.col("perplexity"))
    percentiles = F.percentile_approx(measured, list(rules.QUANTILES), 10_000)
    rows = signals.groupBy("lang").agg(F.count("*").alias("n"), percentiles.alias("q")).collect()
    quantiles = {r["lang"]: [float(x) for x in r["q"]] for r in rows if r["q"] is not None}
    return quantiles, sum(r["n"] for r in rows)


def _summarize(decided: "DataFrame", rs: rules.RuleSet, fraction: float) -> tuple[dict, pa.Table]:
    """The report's counts and the histograms' sample (`fraction` of the documents): one job."""
    from pyspark.sql.pandas.types import from_arrow_schema

    plotted = tuple(s for s, _ in PLOTTED)
    cols = ["lang", "filter_rule", "filter_failed", "doc_id", *pii.COUNT_COLUMNS.values(), *plotted]
    parts = decided.select(*cols).mapInArrow(lambda it: summary.partition_summary(it, plotted, fraction),
                                             from_arrow_schema(summary.schema(plotted))).toArrow()
    return summary.merge(parts, rs)


def _plot(sample: pa.Table, rs: rules.RuleSet, out) -> list[str]:
    """One histogram per main signal (`core.charts.histogram_svg`), per kept language (up to
    three), with the thresholds drawn: hist_<signal>.svg."""
    from crawl2model.core.charts import COLORS, Series, histogram_svg

    langs = [lang for lang in rs.keep_langs if lang != "*"][:3] or ["en"]
    lang_col = np.array(sample.column("lang").to_pylist(), dtype=object)
    written = []
    for signal, log in PLOTTED:
        values = sample.column(signal).to_numpy(zero_copy_only=False).astype(np.float64)
        series, thresholds = [], []
        for lang, color in zip(langs, COLORS):
            v = values[(lang_col == lang) & np.isfinite(values)]
            if log:
                v = v[v > 0]
            if len(v):
                bins = np.logspace(np.log10(v.min()), np.log10(v.max()) + 1e-9, 40) if log else 40
                counts, edges = np.histogram(v, bins=bins)
                series.append(Series(f"{lang} ({len(v)})", counts, edges, color))
            thresholds += [(rule.threshold_for(lang), color) for rule in rs.active if rule.signal == signal]
        if signal == "lang_score":
            thresholds.append((rs.min_lang_score, "black"))
        name = f"hist_{signal}.svg"
        with out.fs.open_output_stream(out.path(name)) as f:
            f.write(histogram_svg(f"{signal} (dashed: thresholds)", series, thresholds, log).encode())
        written.append(name)
    return written


def run(spark: "SparkSession", cfg: FilterConfig, out: "StageOutput", models: FilterModels | None) -> dict:
    """The filter stage; `models` computes the model signals (None with --reapply, which needs none)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from crawl2model.pipeline.parquet_out import write_sides
    from crawl2model.pipeline.tables import read_table, require_columns

    timer = Timer()
    rs = cfg.ruleset()
    lists = None
    if cfg.reapply:
        signals = _previous_output(spark, cfg.input)
    elif models is None:
        raise ValueError("filter: computing signals needs the models (FilterModels)")
    else:
        lists = cfg.blocklist_spec()
        if lists is not None:
            log.info(f"blocklists: {lists.describe()}")
        prepare_workers(spark.sparkContext, functools.partial(_load_models, models, lists, tuple(cfg.pii)))
        docs = read_table(spark, cfg.input)
        require_columns(docs, ("doc_id", "dump", "text"), "filter", cfg.input)
        timer.mark("read")
        signals = _signals(docs, models, cfg, lists)
    signals = signals.persist(StorageLevel.MEMORY_AND_DISK)
    quantiles, n_docs = _stats(signals)
    timer.mark("signals")
    decided = signals.mapInArrow(lambda it: (rules.decide(b, rs, quantiles) for b in it),
                                 _with_fields(signals, rules.DECISION_FIELDS))
    decided = decided.persist(StorageLevel.MEMORY_AND_DISK)
    decision_only = [c for c in rules.DECISION_COLUMNS if c.startswith("filter_")]
    sides = decided.withColumn(SIDE, F.when(F.col("filter_rule").isNull(), "kept").otherwise("rejected"))
    # kept/ and rejected/ in one write job, which runs while this thread sums the report and
    # draws the histograms: on a small input the jobs' fixed costs overlap instead of adding up.
    with ThreadPoolExecutor(1, thread_name_prefix="filter-write") as pool:
        writing = pool.submit(write_sides, sides, out.tmp_uri, SIDE, drop={"kept": decision_only},
                              partition_by=["dump"], sort_by=["doc_id"], num_files=cfg.output_partitions)
        report, sample = _summarize(decided, rs, min(1.0, cfg.histogram_sample / max(n_docs, 1)))
        timer.mark("rules")
        report["plots"] = _plot(sample, rs, out)
        timer.mark("plots")
        files = writing.result()
        kept_files, rejected_files = files.get("kept", []), files.get("rejected", [])
    timer.mark("write")
    written = (sum(n for _, n in kept_files), sum(n for _, n in rejected_files))
    rejected = sum(report["removed_by_reason"].values())
    if written != (report["docs_out"], rejected) or report["docs_in"] != report["docs_out"] + rejected:
        raise RuntimeError(f"filter: counts disagree: report {report['docs_out']}+{rejected} "
                           f"of {report['docs_in']}, written {written}")
    signals.unpersist()
    decided.unpersist()
    compute_seconds = timer.laps.get("read", 0.0) + timer.laps["signals"] + timer.laps["rules"]
    report.update({"mode": "reapply" if cfg.reapply else "compute", "ruleset": rs.to_dict(),
                   "blocklists": None if cfg.reapply or lists is None else lists.describe(),
                   "perplexity_quantiles": {lang: {"p30": q[29], "p60": q[59]} for lang, q in quantiles.items()},
                   "timings": timer.report(),
                   "docs_per_second": round(report["docs_in"] / max(compute_seconds, 1e-9), 1)})
    log.info(f"{report['docs_in']} in, {report['docs_out']} kept, {rejected} rejected")
    return report
