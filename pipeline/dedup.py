"""Deduplication across dumps: exact, then MinHash-LSH, then connected components.

Each document gets a node id: its position in (dump order, doc_id) order, so
the smallest node of any group is its copy from the oldest dump. Exact
duplicates (same normalized text) and LSH candidates (same band hash) become
star edges to the smallest node of their group, never all pairs, so a giant
boilerplate bucket costs linear work; both come from one shuffle
(`dedup_edges`), which builds the per-dump graph too. Candidate edges are
verified by the signatures' Jaccard estimate or the shingle sets' exact
Jaccard. Connected components of all edges are the duplicate clusters; in
each, the `--keep` policy picks the representative and every other member is
removed, with its reason and its Jaccard to the representative. Nothing is
collected to the driver but counts.

That is the distributed plan. An input of up to `one_task_docs` documents
takes the same steps after its signatures in one Python task instead
(`dedup_graph`), with the same results: a handful of Spark jobs (9 on 50k
documents) where this plan takes about sixty, whose fixed costs dominate at
that size.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.core.config import DEFAULT_SEED
from crawl2model.core.errors import ConfigError
from crawl2model.core.log import Timer, get_logger

log = get_logger("dedup")

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

KEEP_POLICIES = ("earliest", "latest", "longest")
MODES = ("global", "per-dump")
VERIFY_BY = ("signature", "shingles")


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
    # Verify LSH candidates before joining clusters, by the signatures' Jaccard estimate
    # (verify_by "signature") or the exact Jaccard of the shingle sets ("shingles": slower,
    # exact near the threshold, with candidates from LSH tuned to candidate_threshold).
    verify: bool = True
    verify_by: str = "signature"
    # The similarity the LSH bands are tuned to; default: threshold, or threshold - 0.1 with shingles.
    candidate_threshold: float | None = None
    url_dedup: bool = False
    max_shingles: int = 100_000
    # The removal-rate-by-number-of-dumps curve and per-dump removal (one union-find pass each).
    rate_by_dumps: bool = True
    # Inputs of at most this many documents are deduplicated after their signatures in one Python
    # task (`dedup_graph`, a few KB of worker memory per document); larger ones by the distributed plan.
    one_task_docs: int = 250_000
    # In the distributed plan, graphs with at most this many edges get their components from one
    # union-find task (~100 bytes of worker memory per edge); larger ones from large-star/small-star rounds.
    one_task_edges: int = 10_000_000
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
        if self.verify_by not in VERIFY_BY:
            raise ConfigError(f"dedup: --verify-by must be one of {', '.join(VERIFY_BY)}")
        if self.candidate_threshold is not None and not 0.0 < self.candidate_threshold <= self.threshold:
            raise ConfigError(f"dedup: candidate threshold must be in (0, threshold {self.threshold}], "
                              f"got {self.candidate_threshold}")
        if self.index and self.verify_by == "shingles":
            raise ConfigError("dedup: --verify-by shingles is not supported with --index (the index keeps "
                              "signatures, not shingle sets)")
        if self.num_perm < 2 or self.ngram < 1 or self.output_partitions < 1:
            raise ConfigError("dedup: num_perm >= 2, ngram >= 1 and output_partitions >= 1 are required")

    def lsh(self) -> tuple[int, int]:
        from crawl2model.pipeline.minhash import optimal_bands

        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands(self.lsh_threshold, self.num_perm)

    @property
    def lsh_threshold(self) -> float:
        if self.candidate_threshold is not None:
            return self.candidate_threshold
        return round(max(0.05, self.threshold - 0.1), 6) if self.verify_by == "shingles" else self.threshold

    @property
    def verify_column(self) -> str:
        """What verification compares: signatures, or shingle sets for the exact Jaccard."""
        return "shingles" if self.verify_by == "shingles" else "sig"

    def minhash_params(self):
        from crawl2model.pipeline.minhash import MinHashParams

        return MinHashParams(num_perm=self.num_perm, ngram=self.ngram, seed=self.seed,
                             scheme=self.scheme, max_shingles=self.max_shingles)



# --- per-batch work (pure, runs in mapInArrow) -------------------------------------------

def _fixed_binary(rows: np.ndarray) -> pa.Array:
    """One binary value per row of a 2-D array, without copying row by row."""
    n, width = rows.shape[0], rows.shape[1] * rows.itemsize
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(rows).tobytes())])


SIG_DDL = "exact string, sig binary, bands array<long>"


def signature_batch(batch: pa.RecordBatch, params, bands: int, rows: int,
                    with_shingles: bool = False) -> pa.RecordBatch:
    """(text, *other) -> (*other, exact hash, signature, band hashes[, shingle set]).

    The other columns pass through, so the text is read once, where it lies,
    and never shuffled. Documents without a single shingle get no bands: their
    all-max signatures would otherwise all collide into one giant bucket. They
    still take part in exact deduplication.
    """
    from crawl2model.pipeline.minhash import band_hashes, exact_hash, normalize, shingle_hashes, signatures

    texts = pc.fill_null(batch.column("text"), "")  # a missing text is an empty one, exact hash and all
    normalized = normalize(texts)
    exact = exact_hash(normalized)
    sigs = signatures(texts, params)
    bh = band_hashes(sigs, bands, rows).astype(np.uint64, copy=False).view(np.int64)
    has_shingles = ~(sigs == np.iinfo(sigs.dtype).max).all(axis=1)
    counts = np.where(has_shingles, bands, 0).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    band_list = pa.ListArray.from_arrays(pa.array(offsets), pa.array(bh[has_shingles].ravel(), pa.int64()))
    other = [n for n in batch.schema.names if n != "text"]
    cols, names = [batch.column(n) for n in other] + [exact, _fixed_binary(sigs), band_list], \
        [*other, "exact", "sig", "bands"]
    if with_shingles:  # each document's sorted distinct shingle hashes, for exact verification
        offsets, values = shingle_hashes(normalized, params.ngram, params.max_shingles)
        cols.append(pa.Array.from_buffers(pa.binary(), len(offsets) - 1, [
            None, pa.py_buffer((offsets * 4).astype(np.int32).tobytes()), pa.py_buffer(values.tobytes())]))
        names.append("shingles")
    return pa.RecordBatch.from_arrays(cols, names=names)


def warm_kernels() -> None:
    """Load the numba kernels a dedup task calls (signatures, bucket edges, union-finds, Jaccard) by
    running them on three tiny documents: the stage's worker daemon calls this before it forks
    (`jobs/dedup.py`'s `worker_preload`), so each worker starts with them loaded from numba's cache
    (or compiled, the first time on a machine) instead of spending its first task on it (~1 s a
    worker on a 2-core host, on the stage's critical path). `scripts/pack_env.py` runs it to
    compile them into a cluster's packed environment."""
    from crawl2model.pipeline.dedup_edges import GLOBAL, PER_DUMP
    from crawl2model.pipeline.dedup_graph import solve

    cfg = DedupConfig(input=["-"], output="-")
    texts = ["Every worker loads the dedup kernels before its first task arrives. " * 3] * 2 + ["数据去重 " * 9]
    batch = pa.RecordBatch.from_pydict({"doc_id": ["a", "b", "c"], "dump": ["d0", "d1", "d1"],
                                        "n_chars": [len(t) for t in texts], "url": [None, None, None],
                                        "text": texts})
    sigs = signature_batch(batch, cfg.minhash_params(), *cfg.lsh())
    for _ in solve(iter([sigs]), cfg, GLOBAL | PER_DUMP, GLOBAL, curve=True):
        pass


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
    """Counts of group sizes in power-of-two bins (`dedup_graph.size_histogram`)."""
    from crawl2model.pipeline.dedup_graph import size_histogram

    return size_histogram({r[col]: r["count"] for r in sizes.groupBy(col).count().collect()})


# --- the job ----------------------------------------------------------------------------

def _number_documents(rows: "DataFrame", old_dumps: list[str],
                      first_node: int = 0) -> tuple["DataFrame", list[str], list[int], "DataFrame"]:
    """`rows` (one per document, with doc_id and dump) plus dump_idx and node, the dumps found
    (name order), their sizes, and the persisted frame behind the result (for the caller to
    release once it has persisted what it needs).

    node = rank in (dump, doc_id) order: dump names sort chronologically, and
    indexed dumps are older than new ones, so this is (dump_idx, doc_id) order.
    A global sort, then row numbers within each sorted partition plus the sizes
    of the partitions before it: ranks without one-partition windows and without
    Python serialization, and the same whatever the partitioning. One job
    counts rows per (partition, dump), which gives both the offsets and the dumps.
    The rows are the signature rows, so they are numbered where they are sorted,
    with no join to bring the numbers back.
    """
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ordered = rows.orderBy("dump", "doc_id").withColumn("pid", F.spark_partition_id())
    local = ordered.withColumn(
        "r", F.row_number().over(Window.partitionBy("pid").orderBy("dump", "doc_id")) - 1
    ).persist(StorageLevel.MEMORY_AND_DISK)
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
    numbered = local.select(*rows.columns, dump_idx[F.col("dump")].alias("dump_idx"),
                            (F.create_map(*offsets)[F.col("pid")] + F.col("r")).cast("long").alias("node"))
    return numbered, dumps, [per_dump[d] for d in dumps], local


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

    from crawl2model.pipeline.components import edge_arrays, forest_edges_by_order
    from crawl2model.pipeline.dedup_graph import dump_of

    n = len(dump_sizes)
    ends = np.cumsum(dump_sizes)

    def count(batches):
        src, dst = edge_arrays(batches)
        unions = forest_edges_by_order(src, dst, dump_of(np.maximum(src, dst), ends), n)
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


def build_edges(sigs: "DataFrame", cfg: DedupConfig, want: int) -> tuple["DataFrame", "DataFrame"]:
    """Every candidate edge and the star edges behind them, for one lazy plan.

    Edges: (src, dst, kind, scope, verified), kind exact|near|url; scope has
    the GLOBAL and PER_DUMP bits of the graphs the edge belongs to (`want`
    says which to build); a near edge is an LSH candidate, verified when its
    estimated Jaccard reaches the threshold (always, with verify off). Raw:
    (src, dst, band, scope) star edges before merging across bands, which
    count the groups. Keeping the failed candidates costs little and lets one
    pass over the checkpointed edges count candidates and verified ones.
    """
    from pyspark.sql import functions as F

    from crawl2model.pipeline.dedup_edges import EXACT_BAND, GLOBAL, PER_DUMP, jaccard_batch, raw_edges

    raw = raw_edges(sigs, want)
    merged = raw.groupBy("src", "dst").agg(F.bit_or("scope").alias("scope"),
                                           (F.min("band") == EXACT_BAND).alias("exact"))
    cand = merged.where(~F.col("exact")).select("src", "dst", "scope")
    if cfg.verify:
        s, exact = sigs.select("node", F.col(cfg.verify_column).alias("sig")), cfg.verify_by == "shingles"
        pairs = (cand.join(s.withColumnRenamed("node", "src").withColumnRenamed("sig", "sig_src"), "src")
                     .join(s.withColumnRenamed("node", "dst").withColumnRenamed("sig", "sig_dst"), "dst"))
        scored = pairs.select("src", "dst", "scope", "sig_src", "sig_dst").mapInArrow(
            lambda it: (jaccard_batch(b, exact) for b in it), "src long, dst long, scope byte, jaccard double")
        near = scored.select("src", "dst", F.lit("near").alias("kind"), "scope",
                             (F.col("jaccard") >= cfg.threshold).alias("verified"))
    else:
        near = cand.select("src", "dst", F.lit("near").alias("kind"), "scope", F.lit(True).alias("verified"))
    edges = merged.where("exact").select("src", "dst", F.lit("exact").alias("kind"), "scope",
                                         F.lit(True).alias("verified")).unionByName(near)
    if cfg.url_dedup:
        for bit, scope in ((GLOBAL, []), (PER_DUMP, ["dump_idx"])):
            if want & bit:
                url_edges, _ = star_edges(sigs.where(F.col("url").isNotNull()).select("node", "url", *scope),
                                          ["url", *scope])
                edges = edges.unionByName(url_edges.select("src", "dst", F.lit("url").alias("kind"),
                                                           F.lit(bit).cast("byte").alias("scope"),
                                                           F.lit(True).alias("verified")))
    return edges, raw


def in_scope(edges: "DataFrame", bit: int) -> "DataFrame":
    """The edges of one graph (GLOBAL or PER_DUMP)."""
    from pyspark.sql import functions as F

    return edges.where((F.col("scope").cast("int").bitwiseAND(bit)) != 0)


def edge_stats(edges: "DataFrame", raw: "DataFrame", bit: int) -> dict:
    """Exact groups, LSH buckets and candidate counts of one graph for the report, in two jobs.

    (band, dst) names one group (a node is the smallest member of at most one
    bucket per band), and a group of n documents has n-1 star edges, so the
    group sizes and the per-band candidate counts (before merging across
    bands) come from the raw star edges.
    """
    from pyspark.sql import functions as F

    from crawl2model.pipeline.dedup_edges import EXACT_BAND
    from crawl2model.pipeline.dedup_graph import edge_figures

    groups = (in_scope(raw, bit).groupBy("band", "dst").agg((F.count(F.lit(1)) + 1).alias("size"))
                                .select(F.when(F.col("band") == EXACT_BAND, "exact").otherwise("bucket").alias("kind"),
                                        "band", "size"))
    rows = (groups.rollup("kind", "band")
                  .agg(F.grouping_id().alias("g"), F.count(F.lit(1)).alias("n"), F.sum("size").alias("members"),
                       F.max("size").alias("max"), F.expr("percentile_approx(size, 0.99)").alias("p99"))
                  .collect())
    total = {r["kind"]: r for r in rows if r["g"] == 1}
    none = {"n": 0, "members": 0, "max": None, "p99": None}
    exact, bucket = total.get("exact", none), total.get("bucket", none)
    counts = {r["kind"]: r for r in in_scope(edges, bit).where(F.col("kind") == "near").groupBy("kind").agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col("verified").cast("long")).alias("verified")).collect()}
    near = counts.get("near", {"n": 0, "verified": 0})
    return edge_figures((exact["n"], exact["members"] or 0),
                        (bucket["n"], bucket["members"] or 0, bucket["max"], bucket["p99"]),
                        (near["n"], near["verified"] or 0),
                        {r["band"]: r["members"] - r["n"] for r in rows if r["g"] == 0 and r["kind"] == "bucket"})


def _signature_rows(docs: "DataFrame", cfg: DedupConfig, bands: int, rows: int) -> "DataFrame":
    """(doc_id, dump, n_chars, url, exact, sig, bands[, shingles]) of every document, computed where
    the text is read: the text is never shuffled, only these rows."""
    from pyspark.sql import functions as F

    params, with_shingles = cfg.minhash_params(), cfg.verify_by == "shingles"
    url = F.col("url") if "url" in docs.columns else F.lit(None).cast("string").alias("url")
    ddl = f"doc_id string, dump string, n_chars long, url string, {SIG_DDL}"
    return docs.select("doc_id", "dump", F.col("n_chars").cast("long").alias("n_chars"), url, "text").mapInArrow(
        lambda it: (signature_batch(b, params, bands, rows, with_shingles) for b in it),
        ddl + (", shingles binary" if with_shingles else ""))


def _cluster_members(comps: "DataFrame", attrs: "DataFrame", keep: str,
                     removable: "Column | None" = None) -> "DataFrame":
    """Every document in a duplicate cluster, with its cluster and the cluster's representative.

    Rows: node, doc_id, dump, url, cluster_id, cluster_size, rep (node),
    representative, representative_dump, removed. cluster_id is the doc_id of
    the cluster's earliest copy (its smallest node), so it names the cluster
    whichever copy the `keep` policy lets survive; cluster_size counts its
    copies (FineWeb2 re-weights kept documents by it). One join and one
    shuffle by component: every figure is a window over the cluster.
    `removable` limits which members may be removed (incremental mode: new dumps only).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = {"longest": F.struct(-F.col("n_chars"), F.col("node")),
           "latest": F.struct(-F.col("dump_idx"), F.col("doc_id")),
           "earliest": F.struct(F.col("node"))}[keep]
    cluster = Window.partitionBy("component")
    best = F.min(F.struct(key.alias("key"), "node", "doc_id", "dump")).over(cluster)
    members = comps.join(attrs, "node").select(
        "node", "doc_id", "dump", "url", F.min(F.struct("node", "doc_id")).over(cluster)["doc_id"].alias("cluster_id"),
        F.count(F.lit(1)).over(cluster).alias("cluster_size"), best["node"].alias("rep"),
        best["doc_id"].alias("representative"), best["dump"].alias("representative_dump"))
    removed = F.col("node") != F.col("rep")
    return members.withColumn("removed", removed if removable is None else removed & removable)


def _duplicates(members: "DataFrame", sigs: "DataFrame", cfg: DedupConfig) -> "DataFrame":
    """The removed members: doc_id, dump, url, representative, representative_dump, reason
    (exact when the normalized texts are equal), jaccard (to the representative: estimated, or
    exact with shingle verification), cluster_id."""
    from pyspark.sql import functions as F

    from crawl2model.pipeline.dedup_edges import jaccard_batch

    s, exact = sigs.select("node", "exact", F.col(cfg.verify_column).alias("sig")), cfg.verify_by == "shingles"
    pairs = (members.where("removed").join(s, "node")
                    .join(s.select(F.col("node").alias("rep"), F.col("exact").alias("rep_exact"),
                                   F.col("sig").alias("rep_sig")), "rep"))
    scored = pairs.select(F.col("node").alias("src"), F.col("rep").alias("dst"),
                          F.col("sig").alias("sig_src"), F.col("rep_sig").alias("sig_dst"),
                          F.when(F.col("exact") == F.col("rep_exact"), "exact").otherwise("near").alias("reason"),
                          "doc_id", "dump", "url", "representative", "representative_dump", "cluster_id")
    j = scored.mapInArrow(lambda it: (jaccard_batch(b, exact) for b in it),
                          "src long, dst long, reason string, doc_id string, dump string, url string, "
                          "representative string, representative_dump string, cluster_id string, jaccard double")
    return j.select("doc_id", "dump", "url", "representative", "representative_dump", "reason",
                    F.when(F.col("reason") == "exact", F.lit(1.0)).otherwise(F.col("jaccard")).alias("jaccard"),
                    "cluster_id")


def _rate_by_dumps(edges: "DataFrame", comps: "DataFrame | None", dump_sizes: list[int]) -> dict:
    """The paper's curve (removal for the first k dumps together) and per-dump removal: the report's part.

    Star edges point to the smallest node of their group, which lies in the
    group's oldest dump, so the edges whose later end is in dumps 1..k are
    exactly the graph that deduplicating those dumps alone builds. The curve
    is one union-find pass over the global edges grouped by component (all in
    one task when `comps` is None: the graph was small enough to solve in one);
    the per-dump figure is the same pass over the per-dump edges, built in the
    same shuffle, grouped by dump (per-dump edges never cross dumps).
    """
    from pyspark.sql import functions as F

    from crawl2model.pipeline.dedup_edges import GLOBAL, PER_DUMP
    from crawl2model.pipeline.dedup_graph import curve_figures

    verified = edges.where("verified").select("src", "dst", "scope")
    global_edges = in_scope(verified, GLOBAL).select("src", "dst")
    if comps is None:
        unions = unions_by_dump(global_edges, F.lit(0), dump_sizes)
    else:
        by_component = global_edges.join(comps.select(F.col("node").alias("src"), "component"), "src")
        unions = unions_by_dump(by_component, F.col("component"), dump_sizes)
    per_dump = in_scope(verified, PER_DUMP).select("src", "dst")
    per_dump_removed = sum(unions_by_dump(per_dump, _dump_column(F.col("src"), dump_sizes), dump_sizes))
    return curve_figures(dump_sizes, unions, per_dump_removed)


@dataclass
class _Graph:
    """What either graph path hands the outputs: the members of duplicate clusters (doc_id,
    cluster_id, cluster_size, removed), the removed ones' rows for duplicates/, the dumps, and the
    report's figures: known already, or Spark jobs to run alongside the writes."""

    members: "DataFrame"
    duplicates: "DataFrame"
    dumps: list[str]
    dump_sizes: list[int]
    figures: dict = field(default_factory=dict)
    figure_jobs: list = field(default_factory=list)
    persisted: list = field(default_factory=list)


def _graph_in_one_task(sig_rows: "DataFrame", cfg: DedupConfig, want: int, main: int, curve: bool) -> _Graph:
    """Every step after the signatures in one Python task (`dedup_graph`): one job, one shuffle."""
    import json

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from crawl2model.pipeline.dedup_graph import MEMBER_DDL, solve

    graph = (sig_rows.repartition(1).mapInArrow(lambda it: solve(it, cfg, want, main, curve), MEMBER_DDL)
                     .persist(StorageLevel.MEMORY_AND_DISK))
    figures = json.loads(graph.where(F.col("figures").isNotNull()).select("figures").collect()[0][0])
    members = graph.where(F.col("figures").isNull())
    duplicates = members.where("removed").select("doc_id", "dump", "url", "representative", "representative_dump",
                                                 "reason", "jaccard", "cluster_id")
    return _Graph(members, duplicates, figures.pop("dumps"), figures.pop("dump_sizes"), figures,
                  persisted=[graph])


def _graph_distributed(sig_rows: "DataFrame", cfg: DedupConfig, want: int, main: int, curve: bool,
                       index, timer: Timer) -> tuple[_Graph, "DataFrame"]:
    """The graph in Spark jobs that scale with the cluster; also returns the numbered signature
    rows (the incremental index appends the kept ones)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from crawl2model.pipeline.components import components_in_one_task, connected_components

    first_node, old_dumps = (index.next_node, index.dumps) if index else (0, [])
    # Signatures first, persisted: the numbering's sort samples its keys and then sorts, and must
    # not run the Python pass twice.
    sig_rows = sig_rows.persist(StorageLevel.MEMORY_AND_DISK)
    sig_rows.count()
    timer.mark("signatures")
    sigs, dumps, dump_sizes, numbered = _number_documents(sig_rows, old_dumps, first_node)
    if index:  # removed documents are new ones only: the old ones' URLs are never needed
        sigs = sigs.unionByName(index.entries().withColumn("url", F.lit(None).cast("string")))
    sigs = sigs.persist(StorageLevel.MEMORY_AND_DISK)
    sigs.count()
    numbered.unpersist()
    sig_rows.unpersist()
    timer.mark("number_documents")
    attrs = sigs.select("node", "doc_id", "dump", "dump_idx", "n_chars", "url")

    all_edges, raw = build_edges(sigs, cfg, want)
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    all_edges = all_edges.localCheckpoint()
    edges = in_scope(all_edges, main).where("verified").select("src", "dst")
    new_only = None
    if index:  # old documents were deduplicated already: only edges that touch a new one matter
        edges = edges.where((F.col("src") >= first_node) | (F.col("dst") >= first_node))
        new_only = F.col("node") >= first_node
    timer.mark("edges")
    if edges.count() <= cfg.one_task_edges:
        comps, rounds = components_in_one_task(edges), 0
    else:
        comps, rounds = connected_components(edges, reliable_checkpoint=True, label="components")
    comps = comps.persist(StorageLevel.MEMORY_AND_DISK)
    timer.mark("components")

    members = _cluster_members(comps, attrs, cfg.keep, new_only).persist(StorageLevel.MEMORY_AND_DISK)
    duplicates = _duplicates(members, sigs, cfg).persist(StorageLevel.MEMORY_AND_DISK)

    def removals() -> dict:
        per_dump, by_reason = dict.fromkeys(dumps, 0), {"exact": 0, "near": 0}
        for r in duplicates.groupBy("dump", "reason").count().collect():
            per_dump[r["dump"]] += r["count"]
            by_reason[r["reason"]] += r["count"]
        return {"removed_per_dump": per_dump, "removed_by_reason": by_reason}

    jobs = [removals, lambda: edge_stats(all_edges, raw, main),
            lambda: {"component_size_histogram": _size_histogram(
                members.select("cluster_id", "cluster_size").distinct(), "cluster_size")}]
    if curve:
        jobs.append(lambda: _rate_by_dumps(all_edges, None if rounds == 0 else comps, dump_sizes))
    return _Graph(members, duplicates, dumps, dump_sizes, {"components_rounds": rounds}, jobs,
                  [raw, duplicates, members, comps]), sigs


def _rows(docs: "DataFrame", paths: list[str]) -> int:
    """The input's documents: from local Parquet footers, else a Spark count (footers too, in parallel)."""
    from crawl2model.pipeline.tables import local_rows

    rows = local_rows(paths)
    return docs.count() if rows is None else rows


def run(spark: "SparkSession", cfg: DedupConfig, out) -> dict:
    """The dedup stage: `_dedup` with a checkpoint folder that goes when it ends."""
    from crawl2model.pipeline.spark import checkpoint_dir

    with checkpoint_dir(spark, out):
        return _dedup(spark, cfg, out)


def _dedup(spark: "SparkSession", cfg: DedupConfig, out) -> dict:
    from pyspark.sql import functions as F

    from crawl2model.pipeline.dedup_edges import GLOBAL, PER_DUMP
    from crawl2model.pipeline.dedup_index import DedupIndex
    from crawl2model.pipeline.minhash import fp_fn_curve, fp_fn_mass
    from crawl2model.pipeline.parquet_out import write_parquet
    from crawl2model.pipeline.tables import read_table, require_columns

    timer = Timer()
    docs = read_table(spark, cfg.input)
    require_columns(docs, ("doc_id", "dump", "text"), "dedup", cfg.input)
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
    curve = cfg.rate_by_dumps and cfg.mode == "global" and not index
    main = PER_DUMP if cfg.mode == "per-dump" else GLOBAL
    want = main | (PER_DUMP if curve else 0)
    sig_rows = _signature_rows(docs, cfg, bands, rows)
    log.info(f"LSH {bands} bands x {rows} rows over {cfg.num_perm} permutations ({cfg.scheme}), "
             f"threshold {cfg.threshold}, mode {cfg.mode}, keep {cfg.keep}")
    # The incremental index is always solved by the distributed plan.
    one_task = not index and _rows(docs, cfg.input) <= cfg.one_task_docs
    sigs = None
    if one_task:
        graph = _graph_in_one_task(sig_rows, cfg, want, main, curve)
        timer.mark("graph")
    else:
        graph, sigs = _graph_distributed(sig_rows, cfg, want, main, curve, index, timer)
    dumps, dump_sizes, docs_in = graph.dumps, graph.dump_sizes, sum(graph.dump_sizes)
    log.info(f"{len(dumps)} dumps ({len(old_dumps)} more in the index), {docs_in} documents; graph "
             + ("in one task" if one_task else "distributed"))

    parts = cfg.output_partitions
    # A document in no cluster is a cluster of one, named by itself.
    doc_cols = [c for c in docs.columns if c not in ("cluster_id", "cluster_size")]
    kept = (docs.join(graph.members.select("doc_id", "cluster_id", "cluster_size", "removed"), "doc_id", "left")
                .where(~F.coalesce("removed", F.lit(False)))
                .select(*doc_cols, F.coalesce("cluster_id", "doc_id").alias("cluster_id"),
                        F.coalesce("cluster_size", F.lit(1)).cast("long").alias("cluster_size")))
    # The outputs and the figures are independent Spark jobs, run at once: on all but huge
    # inputs each is a chain of short stages, and one's gaps are the others' cores.
    with ThreadPoolExecutor(6, thread_name_prefix="dedup-outputs") as pool:
        figure_jobs = [pool.submit(job) for job in graph.figure_jobs]
        wrote = [pool.submit(write_parquet, graph.duplicates, f"{out.tmp_uri}/duplicates", sort_by=["doc_id"],
                             num_files=parts),
                 pool.submit(write_parquet, kept, f"{out.tmp_uri}/kept", partition_by=["dump"], sort_by=["doc_id"],
                             num_files=parts)]
        kept_rows = sum(n for _, n in wrote[1].result())
        wrote[0].result()
        figures = dict(graph.figures)
        for job in figure_jobs:
            figures.update(job.result())
    timer.mark("outputs")
    removed_per_dump, by_reason = figures.pop("removed_per_dump"), figures.pop("removed_by_reason")
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
        "graph": "one task" if one_task else "distributed",
        "components_rounds": figures.pop("components_rounds", 0),
        "lsh": {"bands": bands, "rows": rows, "num_perm": cfg.num_perm, "threshold": cfg.threshold,
                "candidate_threshold": cfg.lsh_threshold, "verify_by": cfg.verify_by if cfg.verify else None,
                "false_positive_mass": round(fp, 6), "false_negative_mass": round(fn, 6),
                "candidate_curve": fp_fn_curve(bands, rows)},
        **figures,
    }
    if curve:
        _plot_rate(report, out)
    if index:
        kept_nodes = sigs.where(F.col("node") >= first_node).join(graph.duplicates.select("doc_id"), "doc_id",
                                                                  "left_anti")
        report["index"] = index.append(kept_nodes, old_dumps + dumps, first_node + docs_in)
        timer.mark("index")

    for df in graph.persisted + ([sigs] if sigs is not None else []):
        df.unpersist()
    report["timings"] = timer.report()
    report["seconds"] = round(timer.total, 3)
    assert report["docs_in"] == report["docs_out"] + docs_removed
    log.info(f"{docs_in} documents in, {docs_removed} removed ({report['removed_fraction']:.1%}: "
             f"{by_reason['exact']} exact, {by_reason['near']} near), {report['docs_out']} kept, "
             f"{report['seconds']:.1f}s")
    return report


def _plot_rate(report: dict, out) -> None:
    """rate_by_dumps.svg: removal rate against the number of dumps deduplicated together."""
    from crawl2model.core.charts import COLORS, Line, line_svg

    pts = report["rate_by_dumps"]
    svg = line_svg("Deduplication rate vs. number of dumps",
                   [Line("dumps 1..k together", [p["dumps"] for p in pts],
                         [100 * p["removed_fraction"] for p in pts], COLORS[0])],
                   [(100 * report["per_dump_mode_removed_fraction"], "gray", "each dump alone")],
                   "dumps deduplicated together (k, oldest first)", "documents removed (%)")
    with out.fs.open_output_stream(out.path("rate_by_dumps.svg")) as f:
        f.write(svg.encode())
