"""Distributed connected components against a plain union-find, on random graphs."""
import random

import pytest

from crawl2model.pipeline.components import connected_components

pytestmark = pytest.mark.spark


def _union_find(n_nodes, edges):
    parent = list(range(n_nodes))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    nodes = {a for e in edges for a in e}
    return {v: min(u for u in nodes if find(u) == find(v)) for v in nodes}


@pytest.mark.parametrize("seed,partitions,reliable", [(1, 1, False), (2, 7, True)])
def test_matches_union_find(spark, seed, partitions, reliable, tmp_path):
    spark.sparkContext.setCheckpointDir(str(tmp_path / "ckpt"))
    rng = random.Random(seed)
    n = 400
    # Long chains (worst case for label propagation) plus random edges and a star.
    perm = list(range(n))
    rng.shuffle(perm)
    edges = [(perm[i], perm[i + 1]) for i in range(0, 120)]
    edges += [(rng.randrange(n), rng.randrange(n)) for _ in range(150)]
    edges += [(300, k) for k in range(301, 340)]
    df = spark.createDataFrame(edges, "src long, dst long").repartition(partitions)
    result, rounds = connected_components(df, reliable_checkpoint=reliable)
    got = {r["node"]: r["component"] for r in result.collect()}
    assert got == _union_find(n, [(a, b) for a, b in edges if a != b])
    assert rounds < 20
