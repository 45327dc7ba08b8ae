"""Remix stage: domain labels, a target mixture by up/down-sampling, shuffled fixed-size shards.

1. Label: each document gets `domain` and `domain_source` (pipeline.domains)
   and its size in the run's unit (UTF-8 bytes, or tokens with EOS as the
   tokenize stage will count them).
2. Plan: sizes per domain and per doc_id hash bucket go to the driver
   (a few thousand numbers per domain), which computes the rates
   (pipeline.mixture). A rate k + f gives every document of the domain k
   copies, plus one for the documents in the first hash buckets that hold a
   fraction f of the domain's size: exact to within one bucket, and decided by
   hashing doc_id with the seed, so reruns pick the same documents.
3. Shuffle: each copy (doc_id, copy) gets a 64-bit key hashed with the seed;
   the output order is the key order. Raw sizes per key bucket and a
   calibration write of the first rows give each bucket its shard
   (pipeline.shards), so no global sort is needed: rows go to their shard's
   task and are sorted there.
4. Write: one Parquet file per shard, `manifest.json`, `dropped/` (every
   document that got no copy, with its reason), report.json and mix.png.
"""
from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from crawl2model.core.config import DEFAULT_SEED
from crawl2model.core.errors import ConfigError
from crawl2model.core.fs import write_json
from crawl2model.core.log import Timer, get_logger
from crawl2model.core.outputs import StageOutput
from crawl2model.core.sizes import parse_size
from crawl2model.pipeline import mixture, shards
from crawl2model.pipeline.domains import DEFAULT_RULES, DomainRules, label_batch
from crawl2model.pipeline.filters.models import Labeller
from crawl2model.pipeline.schema import REMIX_FIELDS

log = get_logger("remix")

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import Column, DataFrame, SparkSession

UNITS = ("bytes", "tokens")
UNIT_KEYS = {"bytes": "text_bytes", "tokens": "tokens"}  # manifest keys: "bytes" there are file bytes
U_BITS = 14       # doc_id hash buckets for the fractional rate: precision 1/16384 of a domain
K_BITS = 18       # shuffle key buckets for shard cuts: a boundary is off by at most 1/262144 of the output
CALIBRATION_BYTES = 32 * 2**20
DROPPED_FILES = 4
NEW_COLUMNS = tuple(f.name for f in REMIX_FIELDS)
ORDER = ("_k", "_key", "doc_id", "copy")   # the output order: shuffle key, ties by identity


@dataclass
class RemixConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    # TOML file with a [target] table (domain = share); none keeps the measured mixture.
    mixture: str | None = None
    domain_rules: str = DEFAULT_RULES
    # fastText model for documents no rule matches: a model file or a `quality-models
    # train-classifier` output folder, which jobs/remix.py turns into a Labeller for `run`.
    classifier: str | None = None
    # Classifier labels less probable than this become "other".
    min_classifier_prob: float = 0.0
    # What shares are measured in: UTF-8 bytes of text, or tokens (needs --tokenizer).
    unit: str = "bytes"
    tokenizer: str | None = None
    # At most this many copies of a document (the cap on up-sampling).
    max_copies: float = 4.0
    # Output size in the unit: "input" (same as the input), "max" (largest meeting every target), or a number.
    total: str | float = "input"
    shard_size: int | str = "256MB"
    seed: int = DEFAULT_SEED
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input or not self.output:
            raise ConfigError("remix: --input and --output are required")
        if self.unit not in UNITS:
            raise ConfigError(f"remix: --unit must be one of {', '.join(UNITS)}")
        if self.unit == "tokens" and not self.tokenizer:
            raise ConfigError("remix: --unit tokens needs --tokenizer DIR")
        if self.max_copies <= 0:
            raise ConfigError("remix: max_copies must be positive")
        self.shard_size = parse_size(self.shard_size)
        if self.shard_size <= 0:
            raise ConfigError("remix: shard_size must be positive")
        if self.total not in ("input", "max"):
            try:
                self.total = float(parse_size(self.total) if self.unit == "bytes" else float(self.total))
            except (ValueError, ConfigError):
                raise ConfigError(f"remix: --total must be input, max or a size, got {self.total!r}") from None
            if self.total <= 0:
                raise ConfigError("remix: --total must be positive")



# --- per-batch work (pure, runs in mapInArrow) -------------------------------------------

@functools.lru_cache(maxsize=2)
def _tokenizer(tokenizer_json: str):
    """The `tokenizers.Tokenizer` of a tokenizer.json text, built once per worker process."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json)


def sizes(texts: pa.Array, unit: str, tokenizer_json: str | None = None) -> pa.Array:
    """Size of each document in `unit`; tokens include the EOS the tokenize stage appends."""
    if unit == "bytes":
        return pc.fill_null(pc.binary_length(texts), 0).cast(pa.int64())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    values = texts.to_pylist()
    present = [t for t in values if t]
    encoded = iter(_tokenizer(tokenizer_json).encode_batch_fast(present, add_special_tokens=False))
    return pa.array([len(next(encoded).ids) + 1 if t else 0 for t in values], pa.int64())


def label_and_size(batches: Iterator[pa.RecordBatch], columns: list[str], rules: DomainRules,
                   classifier: Labeller | None, cfg: RemixConfig, given: str | None,
                   tokenizer_json: str | None) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        domain, source = label_batch(batch, rules, classifier, cfg.min_classifier_prob, given)
        size = sizes(batch.column("text"), cfg.unit, tokenizer_json)
        yield pa.RecordBatch.from_arrays([batch.column(c) for c in columns] + [domain, source, size],
                                         names=[*columns, "domain", "domain_source", "_size"])


# --- the Spark job ----------------------------------------------------------------------

def _bucket(key: "Column", bits: int) -> "Column":
    from pyspark.sql import functions as F

    return F.shiftrightunsigned(key, 64 - bits)


def _label(docs: "DataFrame", cfg: RemixConfig, rules: DomainRules, classifier: Labeller | None,
           tokenizer: "Broadcast | None") -> "DataFrame":
    """Documents + domain, domain_source, _size; a `domain` already in the input is kept as the label."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    base = docs.drop("domain", "domain_source")
    given = None
    if "domain" in docs.columns:
        base, given = base.withColumn("_given", docs["domain"].cast("string")), "_given"
    columns = [c for c in base.columns if c != "_given"]
    schema = StructType([base.schema[c] for c in columns] + [
        StructField("domain", StringType()), StructField("domain_source", StringType()),
        StructField("_size", LongType())])
    return base.mapInArrow(
        lambda it: label_and_size(it, columns, rules, classifier, cfg, given, tokenizer.value if tokenizer else None),
        schema)


def _fraction_bounds(hist: list, mix: mixture.MixturePlan) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    """Per domain: whole copies, the hash-bucket bound of the extra copy, and the planned output."""
    by_domain: dict[str, list[tuple[int, float]]] = {}
    for r in hist:
        by_domain.setdefault(r["domain"], []).append((r["u"], float(r["mass"])))
    whole, bound, planned = {}, {}, {}
    for d, rows in by_domain.items():
        rows.sort()
        rate = mix.rates.get(d, 0.0)
        k = math.floor(rate + 1e-9)
        f = max(rate - k, 0.0)
        measured = mix.measured[d]
        b, taken = mixture.prefix_cut([m for _, m in rows], f * measured)
        whole[d] = k
        bound[d] = rows[b][0] if b < len(rows) else 1 << U_BITS
        planned[d] = k * measured + taken
    return whole, bound, planned


def _lookup(mapping: dict, col: str, default) -> "Column":
    from pyspark.sql import functions as F

    if not mapping:
        return F.lit(default)
    m = F.create_map(*[x for k, v in sorted(mapping.items()) for x in (F.lit(k), F.lit(v))])
    return F.coalesce(m[F.col(col)], F.lit(default))


def _raw_bytes(df: "DataFrame", columns: list[str]) -> "Column":
    """Uncompressed size of a row as the shard sizing counts it: UTF-8 bytes of strings, 8 per other value."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    parts = [F.coalesce(F.octet_length(c), F.lit(0)) if isinstance(df.schema[c].dataType, StringType)
             else F.lit(8) for c in columns]
    return sum(parts[1:], parts[0]).cast("long")


def _plan_shards(rows: "DataFrame", out_cols: list[str], target: int) -> tuple[list[int], list[int], float, pa.Schema]:
    """(non-empty shuffle-key buckets in order, the shard of each, file bytes per raw byte, file schema).

    The calibration sample is the first CALIBRATION_BYTES of the output order:
    rows of the first key buckets, a uniform sample of the whole output.
    """
    from pyspark.sql import functions as F

    khist = rows.groupBy("_k").agg(F.sum("_raw").alias("raw")).orderBy("_k").collect()
    buckets, raws = [r["_k"] for r in khist], [float(r["raw"]) for r in khist]
    want, acc, first = min(sum(raws), CALIBRATION_BYTES), 0.0, 0
    while first < len(raws) and acc < want:
        acc, first = acc + raws[first], first + 1
    limit = buckets[first] if first < len(buckets) else 1 << K_BITS
    sample = rows.where(F.col("_k") < limit).select(*out_cols, "_k", "_key", "_raw").toArrow() \
        .sort_by([(c, "ascending") for c in ORDER])
    ratio = shards.calibrate(sample, out_cols, "_raw", target)
    return buckets, shards.cut(raws, target, ratio), ratio, shards.file_schema(sample.schema, out_cols)


def _not_in_mixture(mix: mixture.MixturePlan) -> list[str]:
    return sorted(d for d in mix.measured if mix.target.get(d, 0.0) == 0.0)


def run(spark: "SparkSession", cfg: RemixConfig, out: StageOutput, classifier: Labeller | None) -> dict:
    """The remix stage; `classifier` labels the documents no domain rule matches (cfg.classifier loaded)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from crawl2model.pipeline.parquet_out import write_parquet
    from crawl2model.pipeline.tables import read_table, require_columns

    timer = Timer()
    docs = read_table(spark, cfg.input)
    require_columns(docs, ("doc_id", "text"), "remix", cfg.input)
    if "copy" in docs.columns:
        raise ConfigError(f"remix: {', '.join(cfg.input)} already has a 'copy' column (a remix output?); remix its source")
    rules = DomainRules.load(cfg.domain_rules)
    target = mixture.load_target(cfg.mixture) if cfg.mixture else None
    tokenizer = None
    if cfg.unit == "tokens":
        # The tokenizer folder's tokenizer.json (the Hugging Face file name), read as text.
        with open(os.path.join(cfg.tokenizer, "tokenizer.json"), encoding="utf-8") as f:
            tokenizer = spark.sparkContext.broadcast(f.read())

    seed = F.lit(cfg.seed)
    labelled = (_label(docs, cfg, rules, classifier, tokenizer)
                .withColumn("_u", _bucket(F.xxhash64(seed, F.col("doc_id")), U_BITS))
                .persist(StorageLevel.MEMORY_AND_DISK))
    hist = labelled.groupBy("domain", F.col("_u").alias("u")).agg(F.sum("_size").alias("mass")).collect()
    timer.mark("label")

    measured: dict[str, float] = {}
    for r in hist:
        measured[r["domain"]] = measured.get(r["domain"], 0.0) + float(r["mass"])
    mix = mixture.plan(measured, target, cfg.max_copies, cfg.total, cfg.unit)
    whole, bound, planned = _fraction_bounds(hist, mix)
    copies = _lookup(whole, "domain", 0) + F.when(F.col("_u") < _lookup(bound, "domain", 0), 1).otherwise(0)
    labelled = labelled.withColumn("_copies", copies)
    counts = labelled.groupBy("domain", "domain_source", "_copies").count().collect()
    for d in sorted(mix.unreachable):
        log.info(f"target for {d!r} unreachable: {mix.unreachable[d]}")

    # Every document without a copy goes to dropped/ with its reason.
    keep_cols = [c for c in ("doc_id", "dump", "url", "domain", "domain_source") if c in labelled.columns]
    not_in_mix = _not_in_mixture(mix)
    reason = F.when(F.col("domain").isin(not_in_mix), "not_in_mixture").otherwise("downsampled") \
        if not_in_mix else F.lit("downsampled")
    dropped = labelled.where(F.col("_copies") == 0).select(*keep_cols, reason.alias("reason"),
                                                          F.col("_size").alias(cfg.unit))
    write_parquet(dropped, f"{out.tmp_uri}/dropped", sort_by=["doc_id"], num_files=DROPPED_FILES)
    timer.mark("dropped")

    out_cols = [c for c in labelled.columns if not c.startswith("_") and c not in NEW_COLUMNS] + list(NEW_COLUMNS)
    rows = labelled.where(F.col("_copies") > 0).withColumn(
        "copy", F.explode(F.sequence(F.lit(0), F.col("_copies") - 1)))
    rows = (rows.withColumn("_key", F.xxhash64(seed, F.lit("order"), F.col("doc_id"), F.col("copy")))
                .withColumn("_k", _bucket(F.col("_key"), K_BITS)))
    rows = rows.withColumn("_raw", _raw_bytes(rows, out_cols))
    buckets, shard_of, ratio, schema = _plan_shards(rows, out_cols, cfg.shard_size)
    timer.mark("plan_shards")

    results: list[dict] = []
    if buckets:
        mapping = spark.createDataFrame(pa.table({"_k": pa.array(buckets, pa.int64()),
                                                  "_shard": pa.array(shard_of, pa.int32())}))
        folder = out.tmp_path if isinstance(out.fs, pafs.LocalFileSystem) else out.tmp_uri
        ordered = (rows.join(F.broadcast(mapping), "_k").repartition(shard_of[-1] + 1, "_shard")
                       .sortWithinPartitions("_shard", *ORDER).select(*out_cols, "_shard", "_size"))
        results = sorted((r.asDict() for r in ordered.mapInArrow(
            lambda it: shards.write_shards(it, folder, out_cols, "_shard", "domain", "_size"),
            from_arrow_schema(shards.RESULT_SCHEMA)).collect()), key=lambda r: r["shard"])
    timer.mark("write_shards")
    labelled.unpersist()

    report = _report(cfg, mix, planned, counts, results, ratio)
    write_json(out.fs, out.path("manifest.json"),
               _manifest(cfg, mix, report, results, schema))
    _plot_mix(report, out)
    report["timings"] = timer.report()
    report["seconds"] = round(timer.total, 3)
    log.info(f"{report['docs_in']} documents in, {report['docs_out']} selected, {report['rows_out']} rows "
             f"(with copies) in {len(results)} shards; max |achieved - target| "
             f"{report['max_error_points']:.2f} points ({len(report['unreachable'])} unreachable); "
             f"{report['seconds']:.1f}s")
    return report


# --- what a run says about itself ---------------------------------------------------------

def _report(cfg: RemixConfig, mix: mixture.MixturePlan, planned: dict[str, float], counts: list, results: list[dict],
            ratio: float) -> dict:
    not_in_mix = _not_in_mixture(mix)
    labels: dict[str, dict[str, int]] = {}
    copies: dict[int, int] = {}
    dropped: dict[str, int] = {}
    for r in counts:
        d, n, c = r["domain"], r["count"], r["_copies"]
        labels.setdefault(d, {})
        labels[d][r["domain_source"]] = labels[d].get(r["domain_source"], 0) + n
        copies[c] = copies.get(c, 0) + n
        if c == 0:
            why = "not_in_mixture" if d in not_in_mix else "downsampled"
            dropped[why] = dropped.get(why, 0) + n
    achieved: dict[str, float] = {}
    for r in results:
        for d, v in json.loads(r["domains"]).items():
            achieved[d] = achieved.get(d, 0.0) + v["units"]
    total_in, total_out = sum(mix.measured.values()), sum(achieved.values())
    total_planned = sum(mix.planned.values())
    table = {}
    for d in sorted(set(mix.measured) | set(mix.target)):
        share = achieved.get(d, 0.0) / total_out if total_out else 0.0
        table[d] = {
            "input_units": mix.measured.get(d, 0.0),
            "input_share": round(mix.measured.get(d, 0.0) / total_in, 6) if total_in else 0.0,
            "target_share": round(mix.target.get(d, 0.0), 6),
            "rate": round(mix.rates.get(d, 0.0), 6),
            "planned_units": planned.get(d, 0.0),
            "output_units": achieved.get(d, 0.0),
            "achieved_share": round(share, 6),
            "error_points": round(100 * (share - mix.target.get(d, 0.0)), 4),
            "reachable": d not in mix.unreachable,
            # The closest mixture the cap allows (the target itself when every target is reachable).
            "plan_share": round(mix.planned.get(d, 0.0) / total_planned, 6) if total_planned else 0.0,
        }
    sizes = [r["bytes"] for r in results]
    body = sizes[:-1]
    docs_in = sum(copies.values())
    report = {
        "stage": "remix",
        "docs_in": docs_in,
        # docs_out: the distinct documents written (rows_out counts copies too)
        "docs_out": docs_in - copies.get(0, 0),
        "removed_by_reason": dict(sorted(dropped.items())),
        "rows_out": sum(c * n for c, n in copies.items()),
        "copies_histogram": {str(c): copies[c] for c in sorted(copies)},
        "unit": cfg.unit,
        "input_units": total_in,
        "output_units": total_out,
        "requested_output_units": mix.total,
        "labels": {d: dict(sorted(v.items())) for d, v in sorted(labels.items())},
        "mix": table,
        "max_error_points": max((abs(v["error_points"]) for v in table.values()), default=0.0),
        "max_error_vs_plan_points": round(max((100 * abs(v["achieved_share"] - v["plan_share"])
                                               for v in table.values()), default=0.0), 4),
        "unreachable": [{"domain": d, "target_share": table[d]["target_share"],
                         "achieved_share": table[d]["achieved_share"], "why": why}
                        for d, why in sorted(mix.unreachable.items())],
        "shards": {
            "count": len(results),
            "target_bytes": cfg.shard_size,
            "file_bytes_per_raw_byte": round(ratio, 6),
            "min_bytes": min(sizes, default=0),
            "max_bytes": max(sizes, default=0),
            "last_bytes": sizes[-1] if sizes else 0,
            "max_deviation_except_last": round(max((abs(s / cfg.shard_size - 1) for s in body), default=0.0), 4),
        },
    }
    assert report["docs_in"] == report["docs_out"] + sum(dropped.values())
    assert report["rows_out"] == sum(r["documents"] for r in results)
    return report


def _manifest(cfg: RemixConfig, mix: mixture.MixturePlan, report: dict, results: list[dict],
              schema: pa.Schema) -> dict:
    """What a reader needs, and nothing that changes between identical runs (no times, no paths).

    `bytes` are file bytes; the mixture's unit is counted under `text_bytes` or `tokens`."""
    unit = UNIT_KEYS[cfg.unit]
    domains: dict[str, dict[str, int]] = {}
    shard_rows = []
    for r in results:
        per = {d: {"documents": v["documents"], unit: v["units"]} for d, v in json.loads(r["domains"]).items()}
        for d, v in per.items():
            acc = domains.setdefault(d, {"documents": 0, unit: 0})
            acc["documents"] += v["documents"]
            acc[unit] += v[unit]
        shard_rows.append({"path": r["path"], "documents": r["documents"], "bytes": r["bytes"],
                           "row_groups": json.loads(r["row_groups"]), "domains": per, "sha256": r["sha256"]})
    return {
        "format": "parquet",
        "compression": shards.COMPRESSION,
        "columns": {f.name: str(f.type) for f in schema},
        "seed": cfg.seed,
        "unit": cfg.unit,
        "shard_size": cfg.shard_size,
        "documents": report["rows_out"],
        "unique_documents": report["docs_out"],
        "bytes": sum(r["bytes"] for r in results),
        unit: sum(v[unit] for v in domains.values()),
        "domains": dict(sorted(domains.items())),
        "mixture": {**mix.as_dict(), "achieved": {d: v["achieved_share"] for d, v in report["mix"].items()}},
        "shards": shard_rows,
    }


def _plot_mix(report: dict, out: StageOutput) -> None:
    """mix.png: input, target and achieved share per domain; unreachable targets hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(report["mix"])
    rows = [report["mix"][d] for d in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 4))
    ax.bar(x - 0.27, [100 * r["input_share"] for r in rows], 0.27, label="input", color="#bbbbbb")
    ax.bar(x, [100 * r["target_share"] for r in rows], 0.27, label="target", color="#4c72b0")
    bars = ax.bar(x + 0.27, [100 * r["achieved_share"] for r in rows], 0.27, label="achieved", color="#dd8452")
    if report["unreachable"]:
        ax.scatter(x + 0.27, [100 * r["plan_share"] for r in rows], marker="_", s=300, color="black", zorder=3,
                   label="closest reachable")
    ax.legend()   # before the hatching, which is per bar, not per series
    for bar, r in zip(bars, rows):
        if not r["reachable"]:
            bar.set_hatch("//")
            ax.annotate("unreachable", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, color="#aa0000", rotation=90)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(f"share of {report['unit']} (%)")
    ax.set_title(f"Domain mixture: max |achieved - target| {report['max_error_points']:.2f} points"
                 + (f", {len(report['unreachable'])} unreachable" if report["unreachable"] else ""))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with out.fs.open_output_stream(out.path("mix.png")) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
