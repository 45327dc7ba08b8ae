"""Connected components of a large graph with DataFrame operations only.

GraphFrames needs a JAR from Maven, so this is large-star/small-star
(Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014):
each round is a few joins and aggregations, lineage is cut by checkpointing,
and the result does not depend on partitioning: every node ends pointing at
the smallest node id of its component. Nothing is collected to the driver
except one edge count per round.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from crawl2model.core.log import get_logger

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = get_logger("components")


def _large_star(edges: "DataFrame") -> "DataFrame":
    """Connect every larger neighbour of u to the smallest node of u's neighbourhood."""
    from pyspark.sql import functions as F

    both = edges.union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
    mins = both.groupBy("src").agg(F.least(F.min("dst"), F.col("src")).alias("m"))
    return (both.join(mins, "src")
                .where(F.col("dst") > F.col("src"))
                .select(F.col("dst").alias("src"), F.col("m").alias("dst"))
                .where(F.col("src") != F.col("dst"))
                .distinct())


def _small_star(edges: "DataFrame") -> "DataFrame":
    """Connect u and its smaller neighbours to the smallest of them."""
    from pyspark.sql import functions as F

    oriented = edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
    mins = oriented.groupBy("src").agg(F.min("dst").alias("m"))
    moved = (oriented.join(mins, "src")
                     .select(F.col("dst").alias("src"), F.col("m").alias("dst")))
    selves = mins.select("src", F.col("m").alias("dst"))
    return moved.union(selves).where(F.col("src") != F.col("dst")).distinct()


def _fingerprint(edges: "DataFrame") -> tuple[int, int]:
    """(count, sum of 64-bit edge hashes): equal for equal edge sets, in one cheap job."""
    from pyspark.sql import functions as F

    row = edges.agg(F.count(F.lit(1)).alias("n"),
                    F.sum(F.xxhash64("src", "dst").cast("decimal(38,0)")).alias("h")).first()
    return int(row["n"]), int(row["h"] or 0)


def connected_components(edges: "DataFrame", max_rounds: int = 50, reliable_checkpoint: bool = False,
                         label: str = "") -> tuple["DataFrame", int]:
    """(node, component) for every node that has an edge, and the rounds used.

    `edges` has long columns `src`, `dst` (direction ignored). The component id
    is the smallest node id in the component; nodes without edges are not listed.
    It has converged when a round leaves the edge set unchanged. Each round's
    edges are checkpointed so lineage stays short however many rounds it takes:
    locally by default, or to the SparkContext's checkpoint dir (fault tolerant
    on a cluster) with `reliable_checkpoint`.
    """
    from pyspark.sql import functions as F

    def cut(df: "DataFrame") -> "DataFrame":
        return df.persist().checkpoint() if reliable_checkpoint else df.localCheckpoint()

    current = cut(edges.select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
                       .where(F.col("src") != F.col("dst")).distinct())
    seen = _fingerprint(current)
    for rounds in range(1, max_rounds + 1):
        current = cut(_small_star(_large_star(current)))
        fingerprint = _fingerprint(current)
        log.info(f"{label + ': ' if label else ''}round {rounds}: {fingerprint[0]} edges")
        if fingerprint == seen:
            break
        seen = fingerprint
    else:
        raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
    # After convergence every edge is (node, component minimum); add the minima themselves.
    roots = current.select(F.col("dst").alias("node")).distinct().withColumn("component", F.col("node"))
    members = current.select(F.col("src").alias("node"), F.col("dst").alias("component"))
    return members.unionByName(roots), rounds


@njit(cache=True, nogil=True)
def _find(parent, a):
    """The root of `a`, halving the path on the way."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, nogil=True)
def _union(parent, a, b):
    """Join the trees of a and b under the smaller root; whether they were apart."""
    a, b = _find(parent, a), _find(parent, b)
    if a == b:
        return False
    parent[max(a, b)] = min(a, b)
    return True


@njit(cache=True, nogil=True)
def _forest_kernel(src, dst, order, counts):
    """Union-find over edges taken in the given order, counting the joining edges per order."""
    parent = np.arange(max(len(src), 1) * 2, dtype=np.int64)
    for e in range(len(src)):
        if _union(parent, src[e], dst[e]):
            counts[order[e]] += 1


def forest_edges_by_order(src: np.ndarray, dst: np.ndarray, order: np.ndarray, n_orders: int) -> np.ndarray:
    """int64 [n_orders]: how many edges join two components when edges are added by increasing `order`.

    The edges that join components are a spanning forest, and a forest has
    nodes - trees edges: so the cumulative sum up to order k is "documents in
    duplicate clusters minus clusters" (documents removed) for the graph of
    the edges with order <= k, for every k at once, in one pass. Exact for any
    edge set whose components all lie within the given edges (a partition
    holding whole components).
    """
    counts = np.zeros(n_orders, dtype=np.int64)
    if len(src):
        _, local = np.unique(np.concatenate([src, dst]), return_inverse=True)
        by = np.argsort(order, kind="stable")
        _forest_kernel(local[: len(src)][by], local[len(src):][by], np.asarray(order)[by], counts)
    return counts


@njit(cache=True, nogil=True)
def _roots_kernel(src, dst, parent):
    """Union-find over local node indices; then every node points at its root, its component's
    smallest index."""
    for e in range(len(src)):
        _union(parent, src[e], dst[e])
    for v in range(len(parent)):
        parent[v] = _find(parent, v)


def edge_arrays(batches) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) int64 arrays of one task's Arrow batches of edges."""
    parts = [(b.column("src").to_numpy(), b.column("dst").to_numpy()) for b in batches]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def components_of_edges(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node, component) arrays of an edge list: component = smallest node id, as in the rounds."""
    nodes, local = np.unique(np.concatenate([src, dst]), return_inverse=True)
    parent = np.arange(len(nodes), dtype=np.int64)
    _roots_kernel(local[: len(src)], local[len(src):], parent)
    return nodes, nodes[parent]


def components_in_one_task(edges: "DataFrame") -> "DataFrame":
    """(node, component), like `connected_components`, from one union-find task.

    A graph of a few million edges fits one Python worker many times over, and
    one pass beats any number of shuffled rounds; the job chooses this below a
    size limit and the distributed rounds above it.
    """
    import pyarrow as pa

    def solve(batches):
        nodes, comps = components_of_edges(*edge_arrays(batches))
        yield pa.RecordBatch.from_arrays([pa.array(nodes), pa.array(comps)], names=["node", "component"])

    return edges.select("src", "dst").repartition(1).mapInArrow(solve, "node long, component long")
