"""The dedup job end to end in Spark local mode: accounting, quality against brute force, determinism."""
from __future__ import annotations

import hashlib
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.core.fs import read_json
from crawl2model.jobs.cli import main as cli
from crawl2model.pipeline.tables import arrow_dataset

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def documents(spark, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dedup-in") / "documents"
    assert cli(["ingest", "--input", str(sample_dir), "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def deduped(documents, tmp_path_factory):
    out = tmp_path_factory.mktemp("dedup") / "deduped"
    assert cli(["dedup", "--input", str(documents), "--output", str(out)]) == 0
    return out


def test_accounting_and_outputs(documents, deduped):
    report = read_json(str(deduped / "report.json"))
    docs = arrow_dataset(str(documents)).to_table()
    kept = arrow_dataset(str(deduped / "kept")).to_table()
    dups = arrow_dataset(str(deduped / "duplicates")).to_table()
    removed = sum(report["removed_by_reason"].values())
    assert report["docs_in"] == docs.num_rows == report["docs_out"] + removed
    assert kept.num_rows == report["docs_out"] and dups.num_rows == removed
    assert set(kept["doc_id"].to_pylist()).isdisjoint(dups["doc_id"].to_pylist())
    assert set(kept["doc_id"].to_pylist()) | set(dups["doc_id"].to_pylist()) == set(docs["doc_id"].to_pylist())
    # Every representative survives; with keep=earliest it is never from a later dump.
    assert set(dups["representative"].to_pylist()) <= set(kept["doc_id"].to_pylist())
    assert all(r <= d for r, d in zip(dups["representative_dump"].to_pylist(), dups["dump"].to_pylist()))
    assert set(dups["reason"].to_pylist()) == {"exact", "near"}
    near = [j for j, r in zip(dups["jaccard"].to_pylist(), dups["reason"].to_pylist()) if r == "near"]
    assert near and min(near) > 0.5
    # The sample repeats pages across dumps: deduplicating across them removes more than within each.
    curve = report["rate_by_dumps"]
    assert [p["dumps"] for p in curve] == [1, 2, 3]
    assert curve[-1]["removed_fraction"] == report["removed_fraction"]
    assert curve[0]["removed_fraction"] < curve[-1]["removed_fraction"]
    assert report["per_dump_mode_removed_fraction"] < report["removed_fraction"]
    svg = ElementTree.parse(deduped / "rate_by_dumps.svg").getroot()   # the curve's three points, drawn
    assert len(svg.findall("{http://www.w3.org/2000/svg}circle")) == 3
    lsh = report["lsh"]
    assert lsh["bands"] * lsh["rows"] <= lsh["num_perm"] and lsh["false_negative_mass"] < 0.05


def test_pinned_counts_on_the_sample(deduped):
    """The bundled sample's exact figures: a change to normalization, shingling, banding or the
    curve shows up here as a diff, not as a silent drift."""
    report = read_json(str(deduped / "report.json"))
    assert report["docs_in"] == 350 and report["docs_out"] == 216
    assert report["removed_by_reason"] == {"exact": 86, "near": 48}
    assert report["docs_per_dump"] == {"CC-MAIN-2024-10": 110, "CC-MAIN-2024-18": 109, "CC-MAIN-2024-26": 131}
    assert [(p["docs"], p["removed"]) for p in report["rate_by_dumps"]] == [(110, 22), (219, 67), (350, 134)]
    assert report["per_dump_mode_removed"] == 75
    assert report["component_size_histogram"] == {"2": 72, "3-4": 19, "5-8": 3}
    assert (report["candidate_edges"], report["verified_edges"]) == (44, 40)


def test_clusters_trace_every_removal_to_a_kept_copy(documents, deduped):
    """duplicates/ names each removed document's URL and cluster; kept/ its cluster and size: every
    representative is kept, in the same cluster, and cluster sizes count kept plus removed copies."""
    docs = arrow_dataset(str(documents)).to_table()
    kept = arrow_dataset(str(deduped / "kept")).to_table()
    dups = arrow_dataset(str(deduped / "duplicates")).to_table()
    assert [c for c in kept.column_names if c not in ("cluster_id", "cluster_size")] == docs.column_names
    assert kept.schema.field("cluster_size").type == "int64"
    url = dict(zip(docs["doc_id"].to_pylist(), docs["url"].to_pylist()))
    assert dups["url"].to_pylist() == [url[d] for d in dups["doc_id"].to_pylist()]
    kept_cluster = dict(zip(kept["doc_id"].to_pylist(), kept["cluster_id"].to_pylist()))
    size = dict(zip(kept["cluster_id"].to_pylist(), kept["cluster_size"].to_pylist()))
    removed_per_cluster: dict[str, int] = {}
    for rep, cluster in zip(dups["representative"].to_pylist(), dups["cluster_id"].to_pylist()):
        assert kept_cluster[rep] == cluster
        removed_per_cluster[cluster] = removed_per_cluster.get(cluster, 0) + 1
    # One kept copy per cluster, so its size is 1 + the copies removed; singletons name themselves.
    assert len(set(kept["cluster_id"].to_pylist())) == kept.num_rows
    assert all(size[c] == 1 + removed_per_cluster.get(c, 0) for c in size)
    assert all(c == d for d, c in kept_cluster.items() if c not in removed_per_cluster)
    # With keep=earliest, the cluster's name is its earliest copy: the representative itself.
    assert set(dups["cluster_id"].to_pylist()) == set(dups["representative"].to_pylist())


def _edit(tokens: list[str], fraction: float, rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(tokens)
    for i in rng.sample(range(len(out)), max(1, int(len(out) * fraction))):
        out[i] = rng.choice(vocab)
    return out


def _labelled_set(documents: Path) -> pa.Table:
    """Real pages (English and Chinese) plus edited copies at several distances, in two dumps."""
    rng = random.Random(7)
    t = arrow_dataset(str(documents)).to_table()
    texts = _distinct([x for x in t["text"].to_pylist() if len(x) > 1500])
    english = [x for x in texts if x.isascii()][:25]
    chinese = [x for x in texts if sum("\u4e00" <= c <= "\u9fff" for c in x) > 300][:12]
    assert len(english) >= 15 and len(chinese) >= 6
    rows = []
    for k, base in enumerate(english + chinese):
        is_zh = k >= len(english)
        tokens = list(base) if is_zh else base.split()
        vocab = list("的是在了不和有大这主中人上为们地个用工时要") if is_zh else ["alpha", "beta", "gamma", "delta"]
        join = "".join if is_zh else " ".join
        rows.append(base)
        # 1-3 in 500 words edited: duplicates of the page and of each other (J >= ~0.86);
        # 6% and 20% edited: clearly different (J <= ~0.6). Nothing sits on the threshold,
        # so a miss or a false merge is the method's fault, not the estimate's noise.
        for fraction in (0.002, 0.005, 0.01, 0.06, 0.2):
            rows.append(join(_edit(tokens, fraction, rng, vocab)))
    table = pa.table({
        "doc_id": [hashlib.sha1(f"{i}".encode()).hexdigest() for i in range(len(rows))],
        "dump": [("CC-MAIN-2020-05", "CC-MAIN-2021-10")[i % 2] for i in range(len(rows))],
        "text": rows,
        "n_chars": [len(r) for r in rows],
    })
    return table


def _shingle_sets(texts: list[str]) -> list[set[int]]:
    from crawl2model.pipeline.minhash import normalize, shingle_hashes

    offsets, hashes = shingle_hashes(normalize(pa.array(texts)), 5, 100_000)
    return [set(hashes[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(texts))]


def _distinct(texts: list[str]) -> list[str]:
    """Pages unrelated to each other (J < 0.3), so that the labels come from our edits:
    the sample's own en-US/en-GB variants sit right on the threshold."""
    sets = _shingle_sets(texts)
    chosen: list[int] = []
    for i, s in enumerate(sets):
        if all(len(s & sets[j]) / len(s | sets[j]) < 0.3 for j in chosen):
            chosen.append(i)
    return [texts[i] for i in chosen]


def _truth_pairs(texts: list[str], threshold: float) -> set[tuple[int, int]]:
    sets = _shingle_sets(texts)
    truth = set()
    for i, j in itertools.combinations(range(len(texts)), 2):
        if sets[i] and sets[j] and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= threshold:
            truth.add((i, j))
    return truth


def test_precision_and_recall_against_brute_force(documents, tmp_path):
    table = _labelled_set(documents)
    src = tmp_path / "labelled"
    src.mkdir()
    pq.write_table(table, src / "docs.parquet")
    out = tmp_path / "deduped"
    assert cli(["dedup", "--input", str(src), "--output", str(out), "--no-rate-by-dumps"]) == 0
    dups = arrow_dataset(str(out / "duplicates")).to_table()
    index = {d: i for i, d in enumerate(table["doc_id"].to_pylist())}
    clusters: dict[str, set[int]] = {}
    for d, r in zip(dups["doc_id"].to_pylist(), dups["representative"].to_pylist()):
        clusters.setdefault(r, {index[r]}).add(index[d])
    predicted = {tuple(sorted(p)) for c in clusters.values() for p in itertools.combinations(c, 2)}
    truth = _truth_pairs(table["text"].to_pylist(), 0.8)
    hit = len(predicted & truth)
    precision, recall = hit / len(predicted), hit / len(truth)
    print(f"pairs: truth {len(truth)}, predicted {len(predicted)}, precision {precision:.3f}, recall {recall:.3f}")
    assert len(truth) > 50
    assert precision >= 0.95 and recall >= 0.95


def test_byte_identical_on_rerun_with_other_parallelism(documents, deduped, tmp_path):
    """local[1] in a separate spark-submit run writes the same bytes as the local[2] run."""
    out = tmp_path / "deduped"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
         "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=3",
         str(ROOT / "jobs" / "dedup.py"), "--input", str(documents), "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    assert _parquet_digests(out) == _parquet_digests(deduped)
    a, b = read_json(str(out / "report.json")), read_json(str(deduped / "report.json"))
    assert a["rate_by_dumps"] == b["rate_by_dumps"] and a["removed_by_reason"] == b["removed_by_reason"]


def _parquet_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("kept", "duplicates") for p in sorted((root / sub).rglob("*.parquet"))}


@pytest.mark.parametrize("flags", [[], ["--keep", "longest", "--url-dedup", "--verify-by", "shingles"],
                                   ["--keep", "latest", "--mode", "per-dump", "--no-verify"]],
                         ids=["defaults", "longest-url-shingles", "latest-per-dump-unverified"])
def test_one_task_graph_equals_the_distributed_plan(documents, deduped, tmp_path, flags):
    """Small inputs skip the distributed plan (numbering sort, edge shuffles, a job per figure) for
    one task after the signatures: the same bytes and every figure the same, whatever the options.
    With the defaults the distributed plan also takes the large-star/small-star rounds (checkpointed)."""
    runs = {}
    rounds = [] if flags else ["--one-task-edges", "0"]
    for plan, limit in (("one task", "1000000"), ("distributed", "0")):
        if plan == "one task" and not flags:
            runs[plan] = deduped
            continue
        runs[plan] = tmp_path / plan.replace(" ", "-")
        assert cli(["dedup", "--input", str(documents), "--output", str(runs[plan]),
                    "--one-task-docs", limit, *flags, *(rounds if plan == "distributed" else [])]) == 0
    one, dist = (read_json(str(runs[p] / "report.json")) for p in ("one task", "distributed"))
    assert (one["graph"], dist["graph"]) == ("one task", "distributed")
    assert one["removed_by_reason"]["near"] > 0
    assert (dist["components_rounds"] > 0) == bool(rounds)
    skip = {"graph", "timings", "seconds", "components_rounds"}
    assert {k: v for k, v in one.items() if k not in skip} == {k: v for k, v in dist.items() if k not in skip}
    assert _parquet_digests(runs["one task"]) == _parquet_digests(runs["distributed"])
    for run in runs.values():  # the stage's checkpoints are deleted, not committed with its output
        assert not (run / "_checkpoints").exists()


def test_incremental_index_matches_global_run(documents, deduped, tmp_path):
    """Dumps 1-2, then dump 3 against the index: dump 3 loses what the global run removes from it."""
    import shutil

    dumps = sorted(p.name for p in documents.iterdir() if p.name.startswith("dump="))
    old, new = tmp_path / "old", tmp_path / "new"
    for d in dumps[:-1]:
        shutil.copytree(documents / d, old / d)
    shutil.copytree(documents / dumps[-1], new / dumps[-1])
    index = tmp_path / "index"
    assert cli(["dedup", "--input", str(old), "--output", str(tmp_path / "o1"), "--index", str(index)]) == 0
    first = read_json(str(index / "index.json"))
    # The whole table as input: dumps already in the index are not processed again.
    assert cli(["dedup", "--input", str(documents), "--output", str(tmp_path / "o2"), "--index", str(index)]) == 0
    report = read_json(str(tmp_path / "o2" / "report.json"))
    last = dumps[-1].split("=", 1)[1]
    assert list(report["docs_per_dump"]) == [last]
    got = set(arrow_dataset(str(tmp_path / "o2" / "duplicates")).to_table()["doc_id"].to_pylist())
    full = arrow_dataset(str(deduped / "duplicates")).to_table()
    want = {d for d, dump in zip(full["doc_id"].to_pylist(), full["dump"].to_pylist()) if dump == last}
    assert got == want
    meta = read_json(str(index / "index.json"))
    assert meta["dumps"] == first["dumps"] + [last]
    assert meta["entries"] == first["entries"] + report["docs_out"]
    # Dumps already in the index are never processed again.
    assert cli(["dedup", "--input", str(old), "--output", str(tmp_path / "o3"), "--index", str(index)]) == 0
    assert read_json(str(tmp_path / "o3" / "report.json"))["docs_in"] == 0
