"""Deduplication across dumps: exact, then MinHash-LSH, then connected components.

Each document gets a node id: its position in (dump order, doc_id) order, so
the smallest node of any group is its copy from the oldest dump. Exact
duplicates (same normalized text) and LSH candidates (same band hash) become
star edges to the smallest node of their group, never all pairs, so a giant
boilerplate bucket costs linear work. Candidate edges can be verified by the
signatures' Jaccard estimate. Connected components of all edges are the
duplicate clusters; in each, the `--keep` policy picks the representative and
every other member is removed, with its reason and its estimated Jaccard to
the representative. Nothing is collected to the driver but counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from crawl2model.core.config import DEFAULT_SEED
from crawl2model.core.errors import ConfigError, InputError
from crawl2model.core.log import Timer, get_logger

log = get_logger("dedup")

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

KEEP_POLICIES = ("earliest", "latest", "longest")
MODES = ("global", "per-dump")


@dataclass
class DedupConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    # Optional; otherwise derived from threshold by minimising FP+FN probability mass.
    bands: int | None = None
    rows: int | None = None
    mode: str = "global"
    keep: str = "earliest"
    seed: int = DEFAULT_SEED
    scheme: str = "fast"
    # Verify LSH candidates by the signatures' Jaccard estimate before joining clusters.
    verify: bool = True
    url_dedup: bool = False
    max_shingles: int = 100_000
    # The removal-rate-by-number-of-dumps curve and per-dump removal (one union-find pass each).
    rate_by_dumps: bool = True
    # Files the outputs are hashed into; fixed, so reruns on any cluster write the same bytes.
    output_partitions: int = 4
    # Incremental mode: band-hash index of what was deduplicated before; only new dumps are processed.
    index: str | None = None
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input or not self.output:
            raise ConfigError("dedup: --input and --output are required")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"dedup: threshold must be in (0, 1], got {self.threshold}")
        if self.mode not in MODES:
            raise ConfigError(f"dedup: --mode must be one of {', '.join(MODES)}")
        if self.keep not in KEEP_POLICIES:
            raise ConfigError(f"dedup: --keep must be one of {', '.join(KEEP_POLICIES)}")
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("dedup: give both --bands and --rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ConfigError(f"dedup: bands*rows = {self.bands * self.rows} exceeds num_perm {self.num_perm}")
        if self.index and (self.keep != "earliest" or self.mode != "global"):
            raise ConfigError("dedup: --index (incremental) needs --keep earliest and --mode global: "
                              "otherwise a new copy could replace an old one and rewrite older outputs")
        if self.num_perm < 2 or self.ngram < 1 or self.output_partitions < 1:
            raise ConfigError("dedup: num_perm >= 2, ngram >= 1 and output_partitions >= 1 are required")

    def lsh(self) -> tuple[int, int]:
        from crawl2model.pipeline.minhash import optimal_bands

        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands(self.threshold, self.num_perm)

    def minhash_params(self):
        from crawl2model.pipeline.minhash import MinHashParams

        return MinHashParams(num_perm=self.num_perm, ngram=self.ngram, seed=self.seed,
                             scheme=self.scheme, max_shingles=self.max_shingles)



# --- per-batch work (pure, runs in mapInArrow) -------------------------------------------

SIG_SCHEMA = pa.schema([("node", pa.int64()), ("exact", pa.string()), ("sig", pa.binary()),
                        ("bands", pa.list_(pa.int64()))])


def _fixed_binary(rows: np.ndarray) -> pa.Array:
    """One binary value per row of a 2-D array, without copying row by row."""
    n, width = rows.shape[0], rows.shape[1] * rows.itemsize
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(rows).tobytes())])


def _rows_of(binary: pa.Array, dtype=np.uint32) -> np.ndarray:
    """Inverse of `_fixed_binary`: a (n, k) view of equal-width binary values."""
    if isinstance(binary, pa.ChunkedArray):
        binary = binary.combine_chunks()
    n = len(binary)
    if n == 0:
        return np.zeros((0, 0), dtype=dtype)
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int32)[binary.offset: binary.offset + n + 1]
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
    return data.view(dtype).reshape(n, -1)


def signature_batch(batch: pa.RecordBatch, params, bands: int, rows: int) -> pa.RecordBatch:
    """(node, text) -> (node, exact hash, signature, band hashes).

    Documents without a single shingle get no bands: their all-max signatures
    would otherwise all collide into one giant bucket. They still take part in
    exact deduplication.
    """
    from crawl2model.pipeline.minhash import band_hashes, exact_hash, normalize, signatures

    texts = batch.column("text")
    exact = exact_hash(normalize(texts))
    sigs = signatures(texts, params)
    bh = band_hashes(sigs, bands, rows).astype(np.uint64, copy=False).view(np.int64)
    has_shingles = ~(sigs == np.iinfo(sigs.dtype).max).all(axis=1)
    counts = np.where(has_shingles, bands, 0).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    band_list = pa.ListArray.from_arrays(pa.array(offsets), pa.array(bh[has_shingles].ravel()))
    return pa.RecordBatch.from_arrays(
        [batch.column("node"), exact, _fixed_binary(sigs), band_list], schema=SIG_SCHEMA)


def jaccard_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """(src, dst, sig_src, sig_dst, *other) -> (src, dst, *other, jaccard estimate).

    Other columns pass through, so a caller needs no join to get them back.
    """
    a, b = _rows_of(batch.column("sig_src")), _rows_of(batch.column("sig_dst"))
    j = (a == b).mean(axis=1) if len(a) else np.zeros(0)
    names = [n for n in batch.schema.names if n not in ("sig_src", "sig_dst")]
    return pa.RecordBatch.from_arrays([batch.column(n) for n in names] + [pa.array(j, pa.float64())],
                                      names=[*names, "jaccard"])


# --- graph building ---------------------------------------------------------------------

def star_edges(members: "DataFrame", key_cols: list[str]) -> tuple["DataFrame", "DataFrame"]:
    """Edges from every member of a group (rows sharing `key_cols`) to the group's smallest node.

    Returns (edges(src, dst), groups(key..., size)) for groups of two or more.
    """
    from pyspark.sql import functions as F

    groups = (members.groupBy(*key_cols)
                     .agg(F.min("node").alias("center"), F.count(F.lit(1)).alias("size"))
                     .where(F.col("size") > 1))
    edges = (members.join(groups.select(*key_cols, "center"), key_cols)
                    .where(F.col("node") != F.col("center"))
                    .select(F.col("node").alias("src"), F.col("center").alias("dst")))
    return edges, groups


def _size_histogram(sizes: "DataFrame", col: str = "size") -> dict[str, int]:
    """Counts of group sizes in power-of-two bins: {'2': n, '3-4': n, '5-8': n, ...}."""
    from pyspark.sql import functions as F

    rows = (sizes.select(F.ceil(F.log2(F.col(col).cast("double"))).cast("int").alias("b"))
                 .groupBy("b").count().orderBy("b").collect())
    out = {}
    for r in rows:
        hi = 2 ** r["b"]
        lo = hi // 2 + 1
        out[str(hi) if lo == hi else f"{lo}-{hi}"] = r["count"]
    return out


# --- the job ----------------------------------------------------------------------------

def _number_documents(docs: "DataFrame", old_dumps: list[str],
                      first_node: int = 0) -> tuple["DataFrame", list[str], list[int]]:
    """(doc_id, dump, dump_idx, node), the dumps found (name order) and their sizes.

    node = rank in (dump, doc_id) order: dump names sort chronologically, and
    indexed dumps are older than new ones, so this is (dump_idx, doc_id) order.
    A global sort, then row numbers within each sorted partition plus the sizes
    of the partitions before it: ranks without one-partition windows and without
    Python serialization, and the same whatever the partitioning. One job
    counts rows per (partition, dump), which gives both the offsets and the dumps.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ordered = docs.select("doc_id", "dump").orderBy("dump", "doc_id").withColumn("pid", F.spark_partition_id())
    local = ordered.withColumn(
        "r", F.row_number().over(Window.partitionBy("pid").orderBy("dump", "doc_id")) - 1).persist()
    counts = local.groupBy("pid", "dump").count().collect()
    dumps = sorted({r["dump"] for r in counts})
    per_pid: dict[int, int] = {}
    per_dump = dict.fromkeys(dumps, 0)
    for r in counts:
        per_pid[r["pid"]] = per_pid.get(r["pid"], 0) + r["count"]
        per_dump[r["dump"]] += r["count"]
    offsets, total = [], first_node
    for pid in sorted(per_pid):
        offsets += [F.lit(pid), F.lit(total)]
        total += per_pid[pid]
    dump_idx = F.create_map(*[x for i, d in enumerate(old_dumps + dumps) for x in (F.lit(d), F.lit(i))])
    nodes = local.select("doc_id", "dump", dump_idx[F.col("dump")].alias("dump_idx"),
                         (F.create_map(*offsets)[F.col("pid")] + F.col("r")).cast("long").alias("node"))
    return nodes, dumps, [per_dump[d] for d in dumps]


def _dump_of(node: np.ndarray, dump_ends: np.ndarray) -> np.ndarray:
    """Index of the dump a node belongs to: node ids are ranked by dump, dump k ends at dump_ends[k]."""
    return np.searchsorted(dump_ends, node, side="right").astype(np.int64)


def unions_by_dump(edges: "DataFrame", key: "Column", dump_sizes: list[int]) -> list[int]:
    """Per dump k: edges that join two clusters when edges are added by the later dump of their ends.

    `key` sends whole connected components to one partition (the global
    component, or the dump for per-dump edges); each partition runs one
    union-find over its edges in dump order (`forest_edges_by_order`), and
    only the per-dump counts come back. The cumulative sum up to dump k is
    what deduplicating dumps 1..k together removes: one pass over the edges
    instead of one components job per prefix.
    """
    from pyspark.sql import functions as F

    from crawl2model.pipeline.components import forest_edges_by_order

    n = len(dump_sizes)
    ends = np.cumsum(dump_sizes)

    def count(batches):
        parts = [(b.column("src").to_numpy(), b.column("dst").to_numpy()) for b in batches]
        src = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        dst = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        unions = forest_edges_by_order(src, dst, _dump_of(np.maximum(src, dst), ends), n)
        yield pa.RecordBatch.from_arrays([pa.array(np.arange(n, dtype=np.int32)), pa.array(unions)],
                                         names=["dump_idx", "unions"])

    rows = (edges.repartition(key).select("src", "dst")
                 .mapInArrow(count, "dump_idx int, unions long")
                 .groupBy("dump_idx").agg(F.sum("unions").alias("unions")).collect())
    out = [0] * n
    for r in rows:
        out[r["dump_idx"]] = int(r["unions"])
    return out


def _dump_column(node: "Column", dump_sizes: list[int]) -> "Column":
    """The dump index of a node id, as a Spark expression (the inverse of the numbering)."""
    from pyspark.sql import functions as F

    col = F.lit(len(dump_sizes) - 1)
    for k, end in reversed(list(enumerate(np.cumsum(dump_sizes)[:-1]))):
        col = F.when(node < int(end), k).otherwise(col)
    return col


def build_edges(sigs: "DataFrame", cfg: DedupConfig, per_dump: bool) -> tuple["DataFrame", "DataFrame"]:
    """Every candidate edge and the groups behind them, for one lazy plan and one stats job.

    Edges: (src, dst, kind, verified), kind exact|near|url; a near edge is an
    LSH candidate, verified when its estimated Jaccard reaches the threshold
    (always, with verify off). Groups: (kind exact|bucket, band, size) for
    groups of two or more. Keeping the failed candidates costs little and lets
    one pass over the checkpointed edges count candidates and verified ones.
    """
    from pyspark.sql import functions as F

    scope = ["dump_idx"] if per_dump else []
    exact_edges, exact_groups = star_edges(sigs.select("node", "exact", *scope), ["exact", *scope])
    survivors = sigs.join(exact_edges.select(F.col("src").alias("node")), "node", "left_anti")
    band_rows = survivors.select("node", *scope, F.posexplode("bands").alias("band", "bh"))
    by_band, buckets = star_edges(band_rows, ["band", "bh", *scope])
    cand = by_band.distinct()
    if cfg.verify:
        s = sigs.select("node", "sig")
        pairs = (cand.join(s.withColumnRenamed("node", "src").withColumnRenamed("sig", "sig_src"), "src")
                     .join(s.withColumnRenamed("node", "dst").withColumnRenamed("sig", "sig_dst"), "dst"))
        scored = pairs.select("src", "dst", "sig_src", "sig_dst").mapInArrow(
            lambda it: (jaccard_batch(b) for b in it), "src long, dst long, jaccard double")
        near = scored.select("src", "dst", F.lit("near").alias("kind"),
                             (F.col("jaccard") >= cfg.threshold).alias("verified"))
    else:
        near = cand.select("src", "dst", F.lit("near").alias("kind"), F.lit(True).alias("verified"))
    edges = exact_edges.select("src", "dst", F.lit("exact").alias("kind"), F.lit(True).alias("verified")) \
                       .unionByName(near)
    if cfg.url_dedup:
        url_edges, _ = star_edges(sigs.where(F.col("url").isNotNull()).select("node", "url", *scope), ["url", *scope])
        edges = edges.unionByName(url_edges.select("src", "dst", F.lit("url").alias("kind"),
                                                   F.lit(True).alias("verified")))
    groups = exact_groups.select(F.lit("exact").alias("kind"), F.lit(None).cast("int").alias("band"), "size") \
                         .unionByName(buckets.select(F.lit("bucket").alias("kind"), "band", "size"))
    return edges, groups


def edge_stats(edges: "DataFrame", groups: "DataFrame") -> dict:
    """Exact groups, LSH buckets and candidate counts for the report, in two jobs.

    A bucket of n documents gives n-1 star edges, so the per-band candidate
    counts (before merging across bands) are sums over the buckets.
    """
    from pyspark.sql import functions as F

    rows = (groups.rollup("kind", "band")
                  .agg(F.grouping_id().alias("g"), F.count(F.lit(1)).alias("n"), F.sum("size").alias("members"),
                       F.max("size").alias("max"), F.expr("percentile_approx(size, 0.99)").alias("p99"))
                  .collect())
    total = {r["kind"]: r for r in rows if r["g"] == 1}
    none = {"n": 0, "members": 0, "max": None, "p99": None}
    exact, bucket = total.get("exact", none), total.get("bucket", none)
    counts = {r["kind"]: r for r in edges.where(F.col("kind") == "near").groupBy("kind").agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("verified").cast("long")).alias("verified")).collect()}
    near = counts.get("near", {"n": 0, "verified": 0})
    return {
        "exact_groups": exact["n"],
        "exact_duplicates": (exact["members"] or 0) - exact["n"],
        "candidate_edges": near["n"],
        "verified_edges": near["verified"] or 0,
        "buckets_with_collisions": bucket["n"],
        "bucket_size_max": bucket["max"],
        "bucket_size_p99": bucket["p99"],
        # Before merging across bands: an edge found by several bands counts in each.
        "candidate_edges_per_band": {str(r["band"]): r["members"] - r["n"] for r in
                                     sorted((r for r in rows if r["g"] == 0 and r["kind"] == "bucket"),
                                            key=lambda r: r["band"])},
    }


def _signatures(docs: "DataFrame", nodes: "DataFrame", cfg: DedupConfig, bands: int, rows: int) -> "DataFrame":
    """(node, exact, sig, bands, dump_idx[, url]) for the documents in `nodes`."""
    params = cfg.minhash_params()
    extra = ["url"] if cfg.url_dedup else []
    text = docs.select("doc_id", "text", *extra).join(nodes.select("doc_id", "node", "dump_idx"), "doc_id")
    sigs = (text.select("node", "text")
                .mapInArrow(lambda it: (signature_batch(b, params, bands, rows) for b in it), SIG_SCHEMA_DDL)
                .join(text.select("node", "dump_idx", *extra), "node"))
    return sigs


def _clusters(comps: "DataFrame", attrs: "DataFrame") -> "DataFrame":
    """(node, doc_id, cluster_id, cluster_size) for every document in a duplicate cluster.

    cluster_id is the doc_id of the cluster's earliest copy (its smallest node),
    so it names the cluster whichever copy the keep policy lets survive;
    cluster_size counts its copies (FineWeb2 re-weights kept documents by it).
    """
    from pyspark.sql import functions as F

    members = comps.join(attrs.select("node", "doc_id"), "node")
    sizes = members.groupBy("component").agg(F.count(F.lit(1)).alias("cluster_size"))
    ids = attrs.select(F.col("node").alias("component"), F.col("doc_id").alias("cluster_id"))
    return members.join(sizes.join(ids, "component"), "component").select(
        "node", "doc_id", "cluster_id", "cluster_size")


def _duplicates(comps: "DataFrame", attrs: "DataFrame", sigs: "DataFrame", clusters: "DataFrame", keep: str,
                removable: "Column | None" = None) -> "DataFrame":
    """Pick each cluster's representative by the keep policy; every other member is a duplicate.

    Rows: doc_id, dump, url, representative, representative_dump, reason (exact when the
    normalized texts are equal), jaccard (estimated, to the representative), cluster_id.
    `removable` limits which members may be removed (incremental mode: new dumps only).
    """
    from pyspark.sql import functions as F

    key = {"longest": F.struct(-F.col("n_chars"), F.col("node")),
           "latest": F.struct(-F.col("dump_idx"), F.col("doc_id")),
           "earliest": F.struct(F.col("node"))}[keep]
    members = comps.join(attrs, "node").withColumn("key", key)
    reps = members.groupBy("component").agg(F.min(F.struct("key", "node")).alias("best")) \
                  .select("component", F.col("best.node").alias("rep"))
    dup_nodes = members.join(reps, "component").where(F.col("node") != F.col("rep"))
    if removable is not None:
        dup_nodes = dup_nodes.where(removable)
    s = sigs.select("node", "exact", "sig")
    pairs = (dup_nodes.select("node", "rep").join(s, "node")
                      .join(s.select(F.col("node").alias("rep"), F.col("exact").alias("rep_exact"),
                                     F.col("sig").alias("rep_sig")), "rep"))
    scored = pairs.select(F.col("node").alias("src"), F.col("rep").alias("dst"),
                          F.col("sig").alias("sig_src"), F.col("rep_sig").alias("sig_dst"),
                          F.when(F.col("exact") == F.col("rep_exact"), "exact").otherwise("near").alias("reason"))
    j = scored.mapInArrow(lambda it: (jaccard_batch(b) for b in it),
                          "src long, dst long, reason string, jaccard double")
    rep_attrs = attrs.select(F.col("node").alias("dst"), F.col("doc_id").alias("representative"),
                             F.col("dump").alias("representative_dump"))
    return (j.join(attrs.select(F.col("node").alias("src"), "doc_id", "dump", "url"), "src")
                  .join(rep_attrs, "dst")
                  .join(clusters.select(F.col("node").alias("src"), "cluster_id"), "src")
                  .withColumn("jaccard", F.when(F.col("reason") == "exact", F.lit(1.0)).otherwise(F.col("jaccard")))
                  .select("doc_id", "dump", "url", "representative", "representative_dump", "reason", "jaccard",
                          "cluster_id"))


def _rate_by_dumps(sigs: "DataFrame", edges: "DataFrame", comps: "DataFrame", cfg: DedupConfig,
                   dump_sizes: list[int], report: dict, out) -> None:
    """The paper's curve (removal for the first k dumps together) and per-dump removal, into `report`.

    Star edges point to the smallest node of their group, which lies in the
    group's oldest dump, so the edges whose later end is in dumps 1..k are
    exactly the graph that deduplicating those dumps alone builds. The curve
    is one union-find pass over the edges grouped by global component; the
    per-dump figure builds the per-dump edges and runs the same pass grouped
    by dump (per-dump edges never cross dumps), with no components job.
    """
    from pyspark.sql import functions as F

    docs_in = sum(dump_sizes)
    by_component = edges.join(comps.select(F.col("node").alias("src"), "component"), "src")
    removed, n_docs, curve = 0, 0, []
    for k, (size, unions) in enumerate(zip(dump_sizes, unions_by_dump(by_component, F.col("component"),
                                                                      dump_sizes)), 1):
        removed += unions
        n_docs += size
        curve.append({"dumps": k, "docs": n_docs, "removed": removed,
                      "removed_fraction": round(removed / n_docs, 6) if n_docs else 0.0})
    report["rate_by_dumps"] = curve
    report["rate_by_dumps_method"] = (
        "for k = 1..N, the star edges (exact and LSH, verified) among documents of the first k dumps "
        "in chronological (name) order; removed = documents in duplicate clusters minus clusters; "
        "fraction of the documents in those k dumps")
    per_dump = build_edges(sigs, cfg, per_dump=True)[0].where("verified").select("src", "dst")
    removed = sum(unions_by_dump(per_dump, _dump_column(F.col("src"), dump_sizes), dump_sizes))
    report["per_dump_mode_removed"] = removed
    report["per_dump_mode_removed_fraction"] = round(removed / docs_in, 6) if docs_in else 0.0
    _plot_rate(report, out)


def run(spark: "SparkSession", cfg: DedupConfig, out) -> dict:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from crawl2model.pipeline.components import connected_components
    from crawl2model.pipeline.dedup_index import DedupIndex
    from crawl2model.pipeline.minhash import fp_fn_curve, fp_fn_mass
    from crawl2model.pipeline.parquet_out import write_parquet
    from crawl2model.pipeline.spark import use_checkpoint_dir
    from crawl2model.pipeline.tables import read_table

    timer = Timer()
    use_checkpoint_dir(spark, out)
    docs = read_table(spark, cfg.input)
    missing = {"doc_id", "dump", "text"} - set(docs.columns)
    if missing:
        raise InputError(f"dedup: {', '.join(cfg.input)} lacks document columns: {', '.join(sorted(missing))}")
    if "n_chars" not in docs.columns:
        docs = docs.withColumn("n_chars", F.length("text"))
    bands, rows = cfg.lsh()
    index = DedupIndex.open(spark, cfg, bands, rows) if cfg.index else None
    first_node, old_dumps = (index.next_node, index.dumps) if index else (0, [])
    if index:
        input_dumps = sorted(r["dump"] for r in docs.select("dump").distinct().collect())
        new_dumps = [d for d in input_dumps if d not in old_dumps]
        index.check_newer(new_dumps)
        if not new_dumps:
            log.info(f"every input dump is already in the index {cfg.index}: nothing to do")
            return {"stage": "dedup", "docs_in": 0, "docs_out": 0, "removed_by_reason": {},
                    "already_indexed_dumps": input_dumps}
        docs = docs.where(F.col("dump").isin(new_dumps))
    nodes, dumps, dump_sizes = _number_documents(docs, old_dumps, first_node)
    nodes = nodes.persist(StorageLevel.MEMORY_AND_DISK)
    docs_in = sum(dump_sizes)
    log.info(f"{len(dumps)} dumps ({len(old_dumps)} more in the index); LSH {bands} bands x {rows} rows over "
             f"{cfg.num_perm} permutations ({cfg.scheme}), threshold {cfg.threshold}, mode {cfg.mode}, keep {cfg.keep}")
    timer.mark("number_documents")

    sigs = _signatures(docs, nodes, cfg, bands, rows)
    url = F.col("url") if "url" in docs.columns else F.lit(None).cast("string").alias("url")
    attrs = nodes.join(docs.select("doc_id", "n_chars", url), "doc_id").select(
        "node", "doc_id", "dump", "dump_idx", "n_chars", "url")
    if index:  # removed documents are new ones only: the old ones' URLs are never needed
        sigs = sigs.unionByName(index.signatures())
        attrs = attrs.unionByName(index.attributes().withColumn("url", F.lit(None).cast("string")))
    sigs = sigs.persist(StorageLevel.MEMORY_AND_DISK)
    sigs.count()
    timer.mark("signatures")

    all_edges, groups = build_edges(sigs, cfg, per_dump=cfg.mode == "per-dump")
    all_edges = all_edges.localCheckpoint()
    stats = edge_stats(all_edges, groups)
    edges = all_edges.where("verified").select("src", "dst")
    new_only = None
    if index:  # old documents were deduplicated already: only edges that touch a new one matter
        edges = edges.where((F.col("src") >= first_node) | (F.col("dst") >= first_node))
        new_only = F.col("node") >= first_node
    timer.mark("edges")
    comps, rounds = connected_components(edges, reliable_checkpoint=True, label="components")
    comps = comps.persist(StorageLevel.MEMORY_AND_DISK)
    timer.mark("components")

    clusters = _clusters(comps, attrs).persist(StorageLevel.MEMORY_AND_DISK)
    duplicates = _duplicates(comps, attrs, sigs, clusters, cfg.keep, new_only).persist(StorageLevel.MEMORY_AND_DISK)
    parts = cfg.output_partitions
    write_parquet(duplicates, f"{out.tmp_uri}/duplicates", sort_by=["doc_id"], num_files=parts)
    # A document in no cluster is a cluster of one, named by itself.
    doc_cols = [c for c in docs.columns if c not in ("cluster_id", "cluster_size")]
    kept = (docs.join(duplicates.select("doc_id"), "doc_id", "left_anti")
                .join(clusters.select("doc_id", "cluster_id", "cluster_size"), "doc_id", "left")
                .select(*doc_cols, F.coalesce("cluster_id", "doc_id").alias("cluster_id"),
                        F.coalesce("cluster_size", F.lit(1)).cast("long").alias("cluster_size")))
    kept_rows = sum(n for _, n in write_parquet(kept, f"{out.tmp_uri}/kept", partition_by=["dump"],
                                                 sort_by=["doc_id"], num_files=parts))
    timer.mark("write")

    removed_per_dump = {d: 0 for d in dumps}
    by_reason = {"exact": 0, "near": 0}
    for r in duplicates.groupBy("dump", "reason").count().collect():
        removed_per_dump[r["dump"]] += r["count"]
        by_reason[r["reason"]] += r["count"]
    docs_removed = sum(removed_per_dump.values())
    if kept_rows != docs_in - docs_removed:
        raise RuntimeError(f"dedup: wrote {kept_rows} kept documents, expected {docs_in - docs_removed}")
    fp, fn = fp_fn_mass(cfg.threshold, bands, rows)
    report = {
        "stage": "dedup",
        "docs_in": docs_in,
        "docs_out": kept_rows,
        "removed_fraction": round(docs_removed / docs_in, 6) if docs_in else 0.0,
        "removed_by_reason": by_reason,
        "docs_per_dump": dict(zip(dumps, dump_sizes)),
        "removed_per_dump": removed_per_dump,
        "component_size_histogram": _size_histogram(clusters.select("cluster_id", "cluster_size").distinct(),
                                                     "cluster_size"),
        "components_rounds": rounds,
        "lsh": {"bands": bands, "rows": rows, "num_perm": cfg.num_perm, "threshold": cfg.threshold,
                "false_positive_mass": round(fp, 6), "false_negative_mass": round(fn, 6),
                "candidate_curve": fp_fn_curve(bands, rows)},
        **stats,
    }
    if cfg.rate_by_dumps and cfg.mode == "global" and not index:
        _rate_by_dumps(sigs, edges, comps, cfg, dump_sizes, report, out)
        timer.mark("rate_by_dumps")
    if index:
        kept_nodes = sigs.where(F.col("node") >= first_node).join(
            nodes.join(duplicates.select("doc_id"), "doc_id", "left_anti").select("node", "doc_id", "dump"), "node")
        report["index"] = index.append(kept_nodes.join(attrs.select("node", "n_chars"), "node"),
                                       old_dumps + dumps, first_node + docs_in)
        timer.mark("index")

    for df in (duplicates, clusters, comps, sigs, nodes):
        df.unpersist()
    report["timings"] = timer.report()
    report["seconds"] = round(timer.total, 3)
    assert report["docs_in"] == report["docs_out"] + docs_removed
    log.info(f"{docs_in} documents in, {docs_removed} removed ({report['removed_fraction']:.1%}: "
             f"{by_reason['exact']} exact, {by_reason['near']} near), {report['docs_out']} kept, "
             f"{report['seconds']:.1f}s")
    return report


SIG_SCHEMA_DDL = "node long, exact string, sig binary, bands array<long>"


def _plot_rate(report: dict, out) -> None:
    """rate_by_dumps.png: removal rate against the number of dumps deduplicated together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = report["rate_by_dumps"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["dumps"] for p in pts], [100 * p["removed_fraction"] for p in pts], "o-", label="dumps 1..k together")
    ax.axhline(100 * report["per_dump_mode_removed_fraction"], color="gray", ls="--", label="each dump alone")
    ax.set_xlabel("dumps deduplicated together (k, oldest first)")
    ax.set_ylabel("documents removed (%)")
    ax.set_title("Deduplication rate vs. number of dumps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with out.fs.open_output_stream(out.path("rate_by_dumps.png")) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
