"""The whole dedup graph of an input that fits one worker, solved in one Python task.

The distributed plan (`dedup.run`) numbers documents with a global sort,
builds and verifies edges in shuffles, and derives each output and figure
with its own Spark job: some sixty jobs, whose fixed costs are most of the
time on inputs up to a few hundred thousand documents. Here the signature
rows of every document meet in one task, which takes the same steps with
numpy and the same kernels (`dedup_edges`, `components`): numbering, star
edges, verification, components, the keep policy, the curve and every
figure. It returns one row per document in a duplicate cluster, which the
job joins to the text to write kept/ and duplicates/, plus one row of
figures (counts only). A test holds both paths to the same bytes and
figures; the job takes this one up to `DedupConfig.one_task_docs` documents.

The figures' shapes (`edge_figures`, `size_histogram`, `curve_figures`) are
shared with the distributed plan, so both write one report.
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline.components import components_of_edges, forest_edges_by_order
from crawl2model.pipeline.dedup_edges import EXACT_BAND, GLOBAL, PER_DUMP, bucket_edges, key_rows_batch, pair_jaccard

if TYPE_CHECKING:
    from crawl2model.pipeline.dedup import DedupConfig

MEMBER_DDL = ("doc_id string, dump string, url string, cluster_id string, cluster_size long, removed boolean, "
              "representative string, representative_dump string, reason string, jaccard double, figures string")
EXACT, NEAR, URL = 0, 1, 2  # edge kinds


# --- figures, shared with the distributed plan ---------------------------------------------

def size_histogram(sizes: dict[int, int]) -> dict[str, int]:
    """{cluster size: clusters} -> counts in power-of-two bins {'2': n, '3-4': n, '5-8': n, ...}.

    Integer bins ((size - 1).bit_length() is ceil(log2(size))): a float log2 of 8 may land above 3.
    """
    bins: dict[int, int] = {}
    for size, count in sizes.items():
        b = (int(size) - 1).bit_length()
        bins[b] = bins.get(b, 0) + int(count)
    out = {}
    for b in sorted(bins):
        hi = 2 ** b
        lo = hi // 2 + 1
        out[str(hi) if lo == hi else f"{lo}-{hi}"] = bins[b]
    return out


def edge_figures(exact: tuple[int, int], buckets: tuple[int, int, int | None, int | None],
                 near: tuple[int, int], per_band: dict[int, int]) -> dict:
    """The report's graph figures: exact (groups, members), buckets (groups, members, max size,
    p99 size), near (candidates, verified) and star edges per LSH band before merging across bands."""
    return {
        "exact_groups": exact[0],
        "exact_duplicates": exact[1] - exact[0],
        "candidate_edges": near[0],
        "verified_edges": near[1],
        "buckets_with_collisions": buckets[0],
        "bucket_size_max": buckets[2],
        "bucket_size_p99": buckets[3],
        # Before merging across bands: an edge found by several bands counts in each.
        "candidate_edges_per_band": {str(b): per_band[b] for b in sorted(per_band)},
    }


def curve_figures(dump_sizes: list[int], unions: list[int], per_dump_removed: int) -> dict:
    """The paper's curve (removal for the first k dumps together) and per-dump removal, from the
    edges that join clusters per dump (`forest_edges_by_order`)."""
    removed, n_docs, curve = 0, 0, []
    for k, (size, u) in enumerate(zip(dump_sizes, unions), 1):
        removed += int(u)
        n_docs += size
        curve.append({"dumps": k, "docs": n_docs, "removed": removed,
                      "removed_fraction": round(removed / n_docs, 6) if n_docs else 0.0})
    docs_in = sum(dump_sizes)
    return {
        "rate_by_dumps": curve,
        "rate_by_dumps_method": (
            "for k = 1..N, the star edges (exact and LSH, verified) among documents of the first k dumps "
            "in chronological (name) order; removed = documents in duplicate clusters minus clusters; "
            "fraction of the documents in those k dumps"),
        "per_dump_mode_removed": per_dump_removed,
        "per_dump_mode_removed_fraction": round(per_dump_removed / docs_in, 6) if docs_in else 0.0,
    }


def dump_of(node: np.ndarray, dump_ends: np.ndarray) -> np.ndarray:
    """Index of the dump a node belongs to: node ids are ranked by dump, dump k ends at dump_ends[k]."""
    return np.searchsorted(dump_ends, node, side="right").astype(np.int64)


# --- the task ------------------------------------------------------------------------------

def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): `order` sorts `keys` stably, `starts` are where each run of equal keys begins."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]])) if len(k) else np.zeros(0, np.int64)
    return order, starts


def _stars(node: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges from every row to the smallest node of its key (`node` ascending, as `star_edges` builds)."""
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    center = node[first][inverse]
    keep = node != center
    return node[keep], center[keep]


def _bucket_figures(band: np.ndarray, dst: np.ndarray) -> tuple[tuple, tuple, dict[int, int]]:
    """(exact groups, members), (buckets, members, max, p99) and edges per band, from raw star edges:
    (band, dst) names one group, and a group of n documents has n-1 edges."""
    if not len(dst):
        return (0, 0), (0, 0, None, None), {}
    order, starts = _groups(band.astype(np.int64) << 40 | dst)
    sizes = np.diff(np.append(starts, len(order))) + 1
    group_band = band[order][starts]
    ex, bu = sizes[group_band == EXACT_BAND], np.sort(sizes[group_band != EXACT_BAND])
    # The value at rank ceil(p * n), as Spark's percentile_approx returns it while its summary holds
    # every value (its default accuracy keeps rank errors below 1 in 10,000 beyond that).
    p99 = int(bu[max(math.ceil(0.99 * len(bu)) - 1, 0)]) if len(bu) else None
    per_band = {int(b): int(n) for b, n in zip(*np.unique(band[band != EXACT_BAND], return_counts=True))}
    return ((len(ex), int(ex.sum())), (len(bu), int(bu.sum()), int(bu.max()) if len(bu) else None, p99), per_band)


def _representatives(nodes: np.ndarray, comp: np.ndarray, keep: str, n_chars: np.ndarray,
                     dump_idx: np.ndarray) -> np.ndarray:
    """Each member's representative under the keep policy, as `dedup._cluster_members` picks it.

    Nodes rank by (dump, doc_id), so within a dump node order is doc_id order:
    "latest" is the newest dump's smallest node.
    """
    if keep == "earliest":
        return comp
    second = -n_chars[nodes] if keep == "longest" else -dump_idx[nodes].astype(np.int64)
    order = np.lexsort((nodes, second, comp))
    _, starts = _groups(comp[order])
    best = nodes[order][starts]
    return best[np.searchsorted(comp[order][starts], comp)]


def _number(docs: pa.Table) -> tuple[dict[str, pa.Array], np.ndarray, list[str], np.ndarray, np.ndarray]:
    """The small columns in node order (dump, then doc_id, byte-wise as Spark sorts), each node's
    row in `docs` (signatures and bands stay where they arrived: no copy of the large columns),
    the dumps, their sizes and each node's dump index."""
    row = pc.sort_indices(docs, sort_keys=[("dump", "ascending"), ("doc_id", "ascending")])
    col = {name: docs.column(name).take(row).combine_chunks() for name in ("doc_id", "dump", "n_chars", "url", "exact")}
    counted = pc.value_counts(col["dump"])  # in order of appearance: sorted
    dumps, sizes = counted.field("values").to_pylist(), counted.field("counts").to_numpy().astype(np.int64)
    return col, row.to_numpy(), dumps, sizes, np.repeat(np.arange(len(dumps), dtype=np.int32), sizes)


def _edges(docs: pa.Table, row: np.ndarray, dump_idx: np.ndarray, url: pa.Array, n_dumps: int,
           cfg: "DedupConfig", want: int) -> dict:
    """Raw star edges (r_src, r_dst, r_band, r_scope: one per band that found them, for the figures)
    and the graph's edges (src, dst, scope, kind, verified) as `dedup.build_edges` makes them."""
    n = len(row)
    node = np.empty(n, np.int64)
    node[row] = np.arange(n)
    keys = key_rows_batch(pa.RecordBatch.from_arrays(
        [pa.array(node), pa.array(dump_idx[node]), docs.column("exact").combine_chunks(),
         docs.column("bands").combine_chunks()], names=["node", "dump_idx", "exact", "bands"]))
    raw = next(bucket_edges(iter([keys]), want))
    del keys
    e = {f"r_{c}": raw.column(c).to_numpy() for c in ("src", "dst", "band", "scope")}
    # Merged across bands: one edge per (src, dst), exact when an exact group made it.
    order, starts = _groups(e["r_src"] * n + e["r_dst"])
    e["src"], e["dst"] = e["r_src"][order][starts], e["r_dst"][order][starts]
    e["scope"] = np.bitwise_or.reduceat(e["r_scope"][order], starts) if len(starts) else e["r_scope"][:0]
    exact = (np.minimum.reduceat(e["r_band"][order], starts) == EXACT_BAND if len(starts)
             else np.zeros(0, bool))
    e["kind"], e["verified"] = np.where(exact, EXACT, NEAR), np.ones(len(exact), bool)
    if cfg.verify:
        cand = np.flatnonzero(~exact)
        e["verified"][cand] = _jaccard(docs, row, e["src"][cand], e["dst"][cand], cfg) >= cfg.threshold
    if cfg.url_dedup:
        has_url = np.flatnonzero(url.is_valid().to_numpy(zero_copy_only=False))
        code = pc.dictionary_encode(url.take(has_url)).indices.to_numpy().astype(np.int64)
        for bit, key in ((GLOBAL, code), (PER_DUMP, code * n_dumps + dump_idx[has_url])):
            if want & bit:
                u_src, u_dst = _stars(has_url.astype(np.int64), key)
                for name, add in (("src", u_src), ("dst", u_dst), ("scope", np.full(len(u_src), bit, np.int8)),
                                  ("kind", np.full(len(u_src), URL)), ("verified", np.ones(len(u_src), bool))):
                    e[name] = np.concatenate([e[name], add])
    return e


def _jaccard(docs: pa.Table, row: np.ndarray, a: np.ndarray, b: np.ndarray, cfg: "DedupConfig") -> np.ndarray:
    """Jaccard of nodes a[k] and b[k], as the job verifies: signatures' estimate, or shingle sets'."""
    column = docs.column(cfg.verify_column)
    return pair_jaccard(column.take(row[a]), column.take(row[b]), cfg.verify_by == "shingles")


def solve(batches: Iterable[pa.RecordBatch], cfg: "DedupConfig", want: int, main: int,
          curve: bool) -> Iterator[pa.RecordBatch]:
    """Signature rows of every document (`dedup._signature_rows`) -> MEMBER_DDL rows: each member
    of a duplicate cluster, then one row whose `figures` holds the report's counts as JSON."""
    parts = [b for b in batches if b.num_rows]
    if not parts:
        yield _figures_row({"dumps": [], "dump_sizes": [], "removed_per_dump": {}, "removed_by_reason":
                            {"exact": 0, "near": 0}, **edge_figures((0, 0), (0, 0, None, None), (0, 0), {}),
                            "component_size_histogram": {}, **(curve_figures([], [], 0) if curve else {})})
        return
    docs = pa.Table.from_batches(parts)
    del parts
    col, row, dumps, dump_sizes, dump_idx = _number(docs)
    e = _edges(docs, row, dump_idx, col["url"], len(dumps), cfg, want)
    in_main = (e["scope"] & main) != 0
    nodes, comp = components_of_edges(e["src"][in_main & e["verified"]], e["dst"][in_main & e["verified"]])
    rep = _representatives(nodes, comp, cfg.keep, col["n_chars"].to_numpy(), dump_idx)
    removed = nodes != rep
    _, inverse, counts = np.unique(comp, return_inverse=True, return_counts=True)

    # The removed: exact when the normalized texts are equal, else near with the Jaccard to the representative.
    gone, gone_rep = nodes[removed], rep[removed]
    same_text = pc.equal(col["exact"].take(gone), col["exact"].take(gone_rep)).to_numpy(zero_copy_only=False)
    jaccard = np.full(len(nodes), np.nan)
    if len(gone):
        jaccard[removed] = np.where(same_text, 1.0, _jaccard(docs, row, gone, gone_rep, cfg))
    reason = np.full(len(nodes), None, object)
    reason[removed] = np.where(same_text, "exact", "near")

    near_main = in_main & (e["kind"] == NEAR)
    raw_main = (e["r_scope"] & main) != 0
    exact_groups, buckets, per_band = _bucket_figures(e["r_band"][raw_main], e["r_dst"][raw_main])
    figures = {
        "dumps": dumps, "dump_sizes": dump_sizes.tolist(),
        "removed_per_dump": dict(zip(dumps, np.bincount(dump_idx[gone], minlength=len(dumps)).tolist())),
        "removed_by_reason": {"exact": int(same_text.sum()), "near": int(len(gone) - same_text.sum())},
        **edge_figures(exact_groups, buckets, (int(near_main.sum()), int((near_main & e["verified"]).sum())),
                       per_band),
        "component_size_histogram": size_histogram(dict(zip(*np.unique(counts, return_counts=True)))),
    }
    if curve:  # joining edges per dump, edges added by the later dump of their ends
        ends = np.cumsum(dump_sizes)
        unions, per_dump = (
            forest_edges_by_order(e["src"][k], e["dst"][k], dump_of(np.maximum(e["src"][k], e["dst"][k]), ends),
                                  len(dumps))
            for k in (e["verified"] & ((e["scope"] & GLOBAL) != 0), e["verified"] & ((e["scope"] & PER_DUMP) != 0)))
        figures.update(curve_figures(dump_sizes.tolist(), unions.tolist(), int(per_dump.sum())))

    doc_id, dump = col["doc_id"], col["dump"]
    yield pa.RecordBatch.from_arrays([a.cast(f.type) for a, f in zip([
        doc_id.take(nodes), dump.take(nodes), col["url"].take(nodes), doc_id.take(comp),
        pa.array(counts[inverse], pa.int64()), pa.array(removed), doc_id.take(rep), dump.take(rep),
        pa.array(reason, pa.string()), pa.array(jaccard, pa.float64(), mask=~removed),
        pa.nulls(len(nodes), pa.string())], _SCHEMA)], schema=_SCHEMA)
    yield _figures_row(figures)


_SCHEMA = pa.schema([(f.split()[0], {"string": pa.string(), "long": pa.int64(), "boolean": pa.bool_(),
                                     "double": pa.float64()}[f.split()[1]]) for f in MEMBER_DDL.split(", ")])


def _figures_row(figures: dict) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.nulls(1, f.type) for f in _SCHEMA if f.name != "figures"] + [pa.array([json.dumps(figures)])],
        schema=_SCHEMA)
