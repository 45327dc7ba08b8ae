"""The one-pass rate-by-dumps curve equals one connected-components run per prefix of dumps."""
from __future__ import annotations

import random

import numpy as np
import pytest
from pyspark.sql import functions as F

from crawl2model.pipeline.components import connected_components, forest_edges_by_order
from crawl2model.pipeline.dedup import _dump_column, unions_by_dump


def _removed_by_prefix(edges, dump_sizes: list[int]) -> list[int]:
    """The reference (the job's former method): for each k, components of the edges inside dumps
    1..k; removed = nodes in clusters minus clusters."""
    out, bound = [], 0
    for size in dump_sizes:
        bound += size
        comps, _ = connected_components(edges.where((F.col("src") < bound) & (F.col("dst") < bound)))
        row = comps.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("component").alias("c")).first()
        out.append((row["n"] or 0) - (row["c"] or 0))
    return out


def _star_graph(seed: int, dump_sizes: list[int]) -> list[tuple[int, int]]:
    """Star edges to the smallest node of random groups (the shape the job builds), plus chains
    and stray edges that join groups across dumps."""
    rng = random.Random(seed)
    n = sum(dump_sizes)
    edges = []
    for _ in range(60):
        group = sorted(rng.sample(range(n), rng.randint(2, 6)))
        edges += [(v, group[0]) for v in group[1:]]
    chain = rng.sample(range(n), 40)
    edges += [(max(a, b), min(a, b)) for a, b in zip(chain, chain[1:])]
    edges += [(a, a) for a in range(5)]  # self-loops and repeats join nothing
    return edges + edges[:10]


def test_forest_counts_against_python_union_find():
    rng = np.random.default_rng(3)
    src, dst = rng.integers(0, 300, 500), rng.integers(0, 300, 500)
    order = rng.integers(0, 4, 500)
    parent = list(range(300))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    want = [0] * 4
    for e in np.argsort(order, kind="stable"):
        a, b = find(src[e]), find(dst[e])
        if a != b:
            parent[max(a, b)] = min(a, b)
            want[order[e]] += 1
    assert forest_edges_by_order(src, dst, order, 4).tolist() == want
    assert forest_edges_by_order(src[:0], dst[:0], order[:0], 4).tolist() == [0, 0, 0, 0]


@pytest.mark.spark
@pytest.mark.parametrize("seed,partitions", [(1, 1), (2, 5)])
def test_curve_equals_per_prefix_components(spark, seed, partitions):
    dump_sizes = [70, 50, 90, 40]
    edges = spark.createDataFrame(_star_graph(seed, dump_sizes), "src long, dst long").repartition(partitions)
    comps, _ = connected_components(edges)
    by_component = edges.join(comps.select(F.col("node").alias("src"), "component"), "src")
    unions = unions_by_dump(by_component, F.col("component"), dump_sizes)
    assert np.cumsum(unions).tolist() == _removed_by_prefix(edges, dump_sizes)


@pytest.mark.spark
def test_per_dump_removal_equals_components(spark):
    dump_sizes = [70, 50, 90]
    starts = np.concatenate([[0], np.cumsum(dump_sizes)])
    rng = random.Random(5)
    edges = []
    for k in range(len(dump_sizes)):  # per-dump edges never cross dumps
        for _ in range(25):
            group = sorted(rng.sample(range(starts[k], starts[k + 1]), rng.randint(2, 5)))
            edges += [(v, group[0]) for v in group[1:]]
    df = spark.createDataFrame([(int(a), int(b)) for a, b in edges], "src long, dst long")
    comps, _ = connected_components(df)
    row = comps.agg(F.count(F.lit(1)).alias("n"), F.countDistinct("component").alias("c")).first()
    per_dump = unions_by_dump(df, _dump_column(F.col("src"), dump_sizes), dump_sizes)
    assert sum(per_dump) == row["n"] - row["c"]
