"""Fidelity near the threshold: pairwise precision and recall against brute-force exact Jaccard on
LibreOffice pages whose en-US/en-GB (and zh-CN/zh-TW) versions mostly sit at J 0.7-0.95
(tests/data/dedup/near_threshold.parquet, built by `python -m crawl2model.corpora.near_threshold`)."""
from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.core.fs import read_json
from crawl2model.jobs.cli import main as cli
from crawl2model.pipeline.minhash import normalize, shingle_hashes
from crawl2model.pipeline.tables import arrow_dataset

FIXTURE = Path(__file__).parent / "data" / "dedup" / "near_threshold.parquet"
THRESHOLD = 0.8


def truth_pairs(texts: list[str], threshold: float) -> tuple[set[tuple[int, int]], list[float]]:
    """Every pair at exact Jaccard >= threshold, by brute force, and the pairs' Jaccard values
    at 0.6 or more (to show where the set sits)."""
    offsets, hashes = shingle_hashes(normalize(pa.array(texts)), 5, 100_000)
    sets = [frozenset(hashes[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(texts))]
    truth, near = set(), []
    for i, j in itertools.combinations(range(len(texts)), 2):
        if sets[i] and sets[j]:
            jac = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            if jac >= 0.6:
                near.append(jac)
            if jac >= threshold:
                truth.add((i, j))
    return truth, near


def predicted_pairs(out: Path, doc_ids: list[str]) -> set[tuple[int, int]]:
    """Pairs within each duplicate cluster (every removed document and its representative's cluster)."""
    index = {d: i for i, d in enumerate(doc_ids)}
    dups = arrow_dataset(str(out / "duplicates")).to_table(columns=["doc_id", "cluster_id"])
    kept = arrow_dataset(str(out / "kept")).to_table(columns=["doc_id", "cluster_id", "cluster_size"])
    clusters: dict[str, set[int]] = {}
    for table in (dups, kept):
        for d, c in zip(table["doc_id"].to_pylist(), table["cluster_id"].to_pylist()):
            clusters.setdefault(c, set()).add(index[d])
    return {tuple(sorted(p)) for c in clusters.values() for p in itertools.combinations(c, 2)}


@pytest.mark.spark
def test_shingle_verification_holds_near_the_threshold(spark, tmp_path):
    table = pq.read_table(FIXTURE)
    src = tmp_path / "docs"
    src.mkdir()
    pq.write_table(table, src / "docs.parquet")
    truth, near = truth_pairs(table["text"].to_pylist(), THRESHOLD)
    in_band = sum(0.7 <= j < 0.95 for j in near)
    assert len(truth) >= 200 and in_band >= 0.6 * len(near), "the set must be dominated by near-threshold pairs"
    out = tmp_path / "out"
    assert cli(["dedup", "--input", str(src), "--output", str(out), "--threshold", str(THRESHOLD),
                "--verify-by", "shingles", "--no-rate-by-dumps"]) == 0
    predicted = predicted_pairs(out, table["doc_id"].to_pylist())
    hit = len(predicted & truth)
    precision, recall = hit / len(predicted), hit / len(truth)
    report = read_json(str(out / "report.json"))
    print(f"near-threshold set: {len(near)} pairs at J >= 0.6 ({in_band} at 0.7-0.95), truth {len(truth)}, "
          f"predicted {len(predicted)}: precision {precision:.3f}, recall {recall:.3f}; "
          f"LSH tuned to {report['lsh']['candidate_threshold']}, {report['candidate_edges']} candidates")
    assert report["lsh"]["verify_by"] == "shingles" and report["lsh"]["candidate_threshold"] < THRESHOLD
    assert precision >= 0.97 and recall >= 0.97
