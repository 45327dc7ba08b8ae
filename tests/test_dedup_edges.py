"""The one-shuffle edge builder equals the two-step definition: exact groups first, then LSH
buckets over the documents that survive exact deduplication, for the global and per-dump graphs."""
from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from crawl2model.pipeline.components import components_of_edges
from crawl2model.pipeline.dedup_edges import EXACT_BAND, GLOBAL, PER_DUMP, bucket_edges, key_rows_batch


def _documents(seed: int, n: int = 300, n_dumps: int = 4, bands: int = 3):
    """Nodes ranked by dump, a few exact texts shared by many, band hashes from a small range
    (so buckets collide), and exact copies sharing their bands, as real signatures do."""
    rng = random.Random(seed)
    dumps = sorted(rng.randrange(n_dumps) for _ in range(n))
    texts = [rng.randrange(n // 3) for _ in range(n)]
    band_of_text = {t: [rng.randrange(40) for _ in range(bands)] for t in set(texts)}
    no_shingles = {t for t in set(texts) if rng.random() < 0.05}
    return [(node, dumps[node], f"{t:032x}", [] if t in no_shingles else band_of_text[t])
            for node, t in enumerate(texts)]


def _stars(groups: dict) -> set[tuple[int, int]]:
    return {(v, min(members)) for members in groups.values() if len(members) > 1
            for v in members if v != min(members)}


def _reference(docs, per_dump: bool) -> set[tuple[int, int, int]]:
    """(src, dst, band): exact star edges, then band star edges among exact survivors."""
    scope = (lambda d: d) if per_dump else (lambda d: 0)
    exact: dict = {}
    for node, dump, ex, _ in docs:
        exact.setdefault((ex, scope(dump)), []).append(node)
    out = {(s, d, EXACT_BAND) for s, d in _stars(exact)}
    survivors = {min(m) for m in exact.values()}
    buckets: dict = {}
    for node, dump, _, bands in docs:
        if node in survivors:
            for b, h in enumerate(bands):
                buckets.setdefault((b, h, scope(dump)), []).append(node)
    for (b, _, _), members in buckets.items():
        out |= {(s, d, b) for s, d in _stars({0: members})}
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_shuffle_edges_equal_exact_first_definition(seed):
    docs = _documents(seed)
    batch = pa.RecordBatch.from_pydict({
        "node": pa.array([d[0] for d in docs], pa.int64()), "dump_idx": pa.array([d[1] for d in docs], pa.int32()),
        "exact": [d[2] for d in docs], "bands": pa.array([d[3] for d in docs], pa.list_(pa.int64()))})
    keys = key_rows_batch(batch)
    rng = np.random.default_rng(seed)  # any row order within a task: the kernel sorts
    shuffled = keys.take(pa.array(rng.permutation(keys.num_rows)))
    edges = next(bucket_edges(iter([shuffled.slice(0, 100), shuffled.slice(100)]), GLOBAL | PER_DUMP))
    rows = list(zip(*(edges.column(c).to_pylist() for c in ("src", "dst", "band", "scope"))))
    for bit, per_dump in ((GLOBAL, False), (PER_DUMP, True)):
        got = [(s, d, b) for s, d, b, sc in rows if sc == bit]
        assert len(got) == len(set(got))
        assert set(got) == _reference(docs, per_dump)
    only_global = next(bucket_edges(iter([keys]), GLOBAL))
    assert set(only_global.column("scope").to_pylist()) <= {GLOBAL}


def test_exact_halves_keep_all_128_bits():
    """Two texts whose hashes share the first 64 bits are different exact groups."""
    docs = [(0, 0, "ab" * 8 + "00" * 8, []), (1, 0, "ab" * 8 + "01" * 8, []), (2, 0, "ab" * 8 + "01" * 8, [])]
    batch = pa.RecordBatch.from_pydict({
        "node": pa.array([0, 1, 2], pa.int64()), "dump_idx": pa.array([0, 0, 0], pa.int32()),
        "exact": [d[2] for d in docs], "bands": pa.array([[], [], []], pa.list_(pa.int64()))})
    edges = next(bucket_edges(iter([key_rows_batch(batch)]), GLOBAL))
    assert list(zip(edges.column("src").to_pylist(), edges.column("dst").to_pylist())) == [(2, 1)]


def test_components_of_edges_against_python_union_find():
    rng = np.random.default_rng(4)
    src, dst = rng.integers(0, 10**12, 400) // 10**9, rng.integers(0, 10**12, 400) // 10**9
    nodes, comps = components_of_edges(src, dst)
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(src.tolist(), dst.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    assert dict(zip(nodes.tolist(), comps.tolist())) == {v: find(v) for v in set(src.tolist()) | set(dst.tolist())}


@pytest.mark.spark
def test_one_task_components_equal_distributed_rounds(spark):
    from pyspark.sql import functions as F

    from crawl2model.pipeline.components import components_in_one_task, connected_components

    rng = random.Random(9)
    edges = [(rng.randrange(500), rng.randrange(500)) for _ in range(400)]
    df = spark.createDataFrame([(a, b) for a, b in edges if a != b], "src long, dst long").repartition(3)
    rounds, _ = connected_components(df)
    one = components_in_one_task(df)
    assert sorted(map(tuple, one.collect())) == sorted(map(tuple, rounds.select("node", "component").collect()))
    assert one.where(F.col("node") < F.col("component")).count() == 0


def test_a_missing_text_is_an_empty_one():
    """A null text hashes as "" (an exact duplicate of other empty documents) and makes key rows."""
    from crawl2model.pipeline.dedup import DedupConfig, signature_batch

    cfg = DedupConfig(input=["-"], output="-")
    batch = pa.record_batch([pa.array([0, 1, 2], pa.int64()), pa.array([0, 0, 0], pa.int32()),
                             pa.array([None, "", "some words here"], pa.string())], ["node", "dump_idx", "text"])
    sigs = signature_batch(batch, cfg.minhash_params(), *cfg.lsh())
    exact = sigs.column("exact").to_pylist()
    assert exact[0] == exact[1] and exact[0] is not None and exact[2] != exact[0]
    keys = key_rows_batch(sigs)
    assert keys.column("band").to_pylist().count(EXACT_BAND) == 3
