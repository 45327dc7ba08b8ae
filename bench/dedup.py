"""Deduplication benchmark (issue 3, "Must show").

(a) text -> MinHash signature, docs/s per core, shingling included, on the
    same real documents: datasketch's ``update`` loop, datasketch's
    ``MinHash.bulk``, rensa's ``RMinHash`` (all three fed by Python
    normalization + shingling, the way pipelines use them), and our two
    schemes; plus both schemes' Jaccard-estimate error against the exact
    Jaccard of the same shingle sets.
(b) the Spark job end to end: see ``bench_spark_job``; with ``--peer PATH``
    (text-dedup's ``minhash_spark.py``, commit 6bb8e89, kept outside this
    repository) both jobs run on the same largest input, and the wall-time
    ratio is printed.
(c) the removal rate against the number of dumps: see ``bench_rate_by_dumps``.

Documents are ~500-word texts cut from real prose on disk (the Python
3.11 manual's reST sources, the Debian Handbook in 26 languages, LibreOffice
help in 10), cached under bench/out/. "Per core" is CPU time of this one
process: the machine is shared, and wall time would charge us for others'
work (both are in the JSON).

    nice -n 10 python bench/dedup.py              # 10,000 documents
    nice -n 10 python bench/dedup.py --quick      # 2,000 documents, fewer repeats
    nice -n 10 python bench/dedup.py --only-spark --peer /tmp/peer/minhash_spark.py   # ours vs the peer, 50k
    nice -n 10 python bench/dedup.py --only-spark --corpus scaling --output bench/out/dedup_scaling.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import sys
import time
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.pipeline import minhash as mh

ROOT = Path(__file__).resolve().parent.parent


OUT = ROOT / "bench" / "out"
DOCS_ROOT = ROOT / "build" / "debian-docs"
WORDS_PER_DOC = 500
CJK_CHARS_PER_DOC = 1000


# --------------------------------------------------------------------------- corpus

class _TextOfHtml(HTMLParser):
    """Paragraph texts of an HTML page: enough for benchmark prose, not an extractor."""

    BLOCKS = {"p", "div", "li", "h1", "h2", "h3", "h4", "td", "pre", "dd", "dt", "br", "tr", "section"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _paragraphs(text: str) -> list[str]:
    return [p for p in (re.sub(r"[ \t]+", " ", p).strip() for p in re.split(r"\n\s*\n", text)) if p]


def _html_paragraphs(path: Path) -> list[str]:
    parser = _TextOfHtml()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return _paragraphs("".join(parser.parts))


def _sources(root: Path) -> dict[str, list[Path]]:
    """Files per stream (one stream per manual and language), in a stable order."""
    streams: dict[str, list[Path]] = {}
    pydoc = root / "python3.11-doc/usr/share/doc/python3.11/html/_sources"
    streams["python-en"] = sorted(pydoc.rglob("*.txt"))
    for lang in sorted((root / "debian-handbook/usr/share/doc/debian-handbook/html").glob("*-*")):
        streams[f"handbook-{lang.name}"] = sorted(lang.glob("*.html"))
    for pkg in sorted(root.glob("libreoffice-help-*")):
        if pkg.is_dir() and pkg.name != "libreoffice-help-common":
            streams[pkg.name] = sorted((pkg / "usr/share/libreoffice/help").rglob("*.html"))
    return {name: files for name, files in streams.items() if files}


def _is_cjk_heavy(text: str) -> bool:
    return sum(1 for ch in text[:400] if "\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af") > 100


def _stream_docs(files: list[Path], limit: int) -> list[str]:
    """Consecutive paragraphs of one stream glued into ~500-word (or ~1000 CJK character) documents."""
    docs: list[str] = []
    current: list[str] = []
    size = 0
    for path in files:
        paragraphs = _paragraphs(path.read_text(encoding="utf-8", errors="replace")) \
            if path.suffix == ".txt" else _html_paragraphs(path)
        for paragraph in paragraphs:
            current.append(paragraph)
            size += len(paragraph.split())
            text = "\n\n".join(current)
            if size >= WORDS_PER_DOC or (len(text) >= CJK_CHARS_PER_DOC and _is_cjk_heavy(text)):
                docs.append(text)
                current, size = [], 0
                if len(docs) >= limit:
                    return docs
    return docs


def build_documents(n_docs: int, cache: Path = OUT / "dedup_docs.parquet") -> pa.Array:
    """n_docs real documents, round-robin over streams so every language is in any prefix."""
    if cache.exists():
        docs = pq.read_table(cache).column("text")
        if len(docs) >= n_docs:
            return docs.slice(0, n_docs).combine_chunks()
    streams = _sources(DOCS_ROOT)
    if not streams:
        raise SystemExit(f"no documentation under {DOCS_ROOT}: run scripts/build_sample.py "
                         "or bench/build_corpus.py first (they download the Debian packages)")
    per_stream = [_stream_docs(files, 2 * n_docs // len(streams) + 1) for files in streams.values()]
    mixed = [doc for group in zip_longest_drop(per_stream) for doc in group][:n_docs]
    if len(mixed) < n_docs:
        raise SystemExit(f"only {len(mixed)} documents could be built from {DOCS_ROOT}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": mixed}), cache)
    return pa.array(mixed, pa.string())


def zip_longest_drop(lists: list[list[str]]) -> list[list[str]]:
    """Round-robin rows of the lists, skipping exhausted ones."""
    return [[lst[i] for lst in lists if i < len(lst)] for i in range(max(map(len, lists)))]


# --------------------------------------------------------------------------- peers

_PY_DIGIT = re.compile(r"\d")
_PY_DROP = re.compile(r"[^\w\s]|_")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_PY_TOKEN = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def py_shingles(text: str, ngram: int) -> set[str]:
    """Python normalization and shingling as a pipeline without compiled text code does it."""
    text = _PY_DROP.sub("", _PY_DIGIT.sub("0", unicodedata.normalize("NFKC", text).lower()))
    tokens = _PY_TOKEN.findall(text)
    if not tokens:
        return set()
    return {" ".join(tokens[i:i + ngram]) for i in range(max(1, len(tokens) - ngram + 1))}


def _datasketch_update(texts: list[str], num_perm: int, ngram: int) -> None:
    from datasketch import MinHash
    from xxhash import xxh32_intdigest
    for text in texts:
        m = MinHash(num_perm=num_perm, seed=42, hashfunc=xxh32_intdigest)
        for shingle in py_shingles(text, ngram):
            m.update(shingle.encode())
        m.digest()


def _datasketch_bulk(texts: list[str], num_perm: int, ngram: int) -> None:
    from datasketch import MinHash
    from xxhash import xxh32_intdigest
    sets = [[s.encode() for s in py_shingles(text, ngram)] for text in texts]
    MinHash.bulk(sets, num_perm=num_perm, seed=42, hashfunc=xxh32_intdigest)


def _rensa(texts: list[str], num_perm: int, ngram: int) -> None:
    from rensa import RMinHash
    for text in texts:
        m = RMinHash(num_perm=num_perm, seed=42)
        m.update(list(py_shingles(text, ngram)))
        m.digest()


def _ours(scheme: str, batch: int) -> Callable[[pa.Array, int, int], None]:
    def run(texts: pa.Array, num_perm: int, ngram: int) -> None:
        params = mh.MinHashParams(num_perm=num_perm, ngram=ngram, scheme=scheme)
        for start in range(0, len(texts), batch):
            mh.signatures(texts.slice(start, batch), params)
    return run


def _timed(fn: Callable, texts, num_perm: int, ngram: int, repeats: int) -> dict:
    """Best of repeats, by this process's CPU time and by wall time."""
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn(texts, num_perm, ngram)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    n = len(texts)
    return {"docs": n, "cpu_s": min(cpu), "wall_s": min(wall),
            "docs_per_s_cpu": n / min(cpu), "docs_per_s_wall": n / min(wall)}


# --------------------------------------------------------------------------- estimate error

def _edit(text: str, rate: float, rng: random.Random) -> str:
    """A near-duplicate: delete or replace about `rate` of the words (characters in CJK text)."""
    cjk = _is_cjk_heavy(text)
    units = list(text) if cjk else text.split(" ")
    out: list[str] = []
    for unit in units:
        roll = rng.random()
        if roll < rate / 2:
            continue
        out.append(rng.choice(units) if roll < rate else unit)
    return ("" if cjk else " ").join(out)


def near_duplicate_pairs(docs: pa.Array, n_pairs: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """Pairs (original, edited) spanning Jaccard ~0.3-1.0, a third of them short
    (20-60 words, 40-120 CJK characters)."""
    rng = random.Random(seed)
    texts = docs.to_pylist()
    left, right = [], []
    for i in range(n_pairs):
        text = texts[rng.randrange(len(texts))]
        if i % 3 == 0:
            cjk = _is_cjk_heavy(text)
            units = list(text) if cjk else text.split(" ")
            start = rng.randrange(max(1, len(units) - 120))
            text = ("" if cjk else " ").join(units[start:start + rng.randint(20, 60) * (2 if cjk else 1)])
        left.append(text)
        right.append(_edit(text, rng.choice([0.005, 0.01, 0.02, 0.04, 0.07, 0.1]), rng))
    return left, right


def estimate_errors(left: list[str], right: list[str], num_perm: int = 128, ngram: int = 5,
                    seeds: tuple[int, ...] = (42, 1, 2, 3, 4)) -> dict:
    """Each scheme's Jaccard-estimate error against the exact Jaccard of the same shingles.

    Averaged over several seeds: with one seed, the two schemes' MAEs differ
    by about their sampling noise. ``ideal_mae`` is what independent truly
    random permutations would give (a binomial over num_perm positions).
    """
    lo, lh = mh.shingle_hashes(mh.normalize(pa.array(left)), ngram, 100_000)
    ro, rh = mh.shingle_hashes(mh.normalize(pa.array(right)), ngram, 100_000)
    exact = np.array([_jaccard(lh[lo[i]:lo[i + 1]], rh[ro[i]:ro[i + 1]]) for i in range(len(left))])
    rng = np.random.default_rng(0)
    ideal = np.mean([np.abs(rng.binomial(num_perm, exact) / num_perm - exact).mean() for _ in range(20)])
    result: dict = {"pairs": len(left), "exact_jaccard_mean": float(exact.mean()),
                    "exact_jaccard_min": float(exact.min()), "near_pairs_0.5_1.0": int((exact >= 0.5).sum()),
                    "seeds": list(seeds), "ideal_mae": float(ideal), "schemes": {}}
    near = exact >= 0.5
    for scheme in mh.SCHEMES:
        errors = []
        for seed in seeds:
            params = mh.MinHashParams(num_perm=num_perm, ngram=ngram, scheme=scheme, seed=seed)
            errors.append(mh.jaccard_from_signatures(mh.signatures(pa.array(left), params),
                                                     mh.signatures(pa.array(right), params)) - exact)
        err = np.array(errors)
        result["schemes"][scheme] = {"mae": float(np.abs(err).mean()),
                                     "mae_near_0.5_1.0": float(np.abs(err[:, near]).mean()),
                                     "mae_per_seed": np.abs(err).mean(axis=1).round(5).tolist(),
                                     "bias": float(err.mean()), "max_abs_error": float(np.abs(err).max())}
    return result


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b, assume_unique=True)) / union if union else 1.0


# --------------------------------------------------------------------------- parts

def bench_signatures(docs: pa.Array, num_perm: int = 128, ngram: int = 5, batch: int = 10_000,
                     peer_docs: int | None = None, repeats: int = 3) -> dict:
    """Part (a): text -> signature throughput of peers and both schemes on the same documents.

    The slow peers run once on the first ``peer_docs`` documents (all by
    default); ours run ``repeats`` times on all of them, best kept, after
    one warm-up call that loads or compiles the numba kernels (timed too).
    """
    texts = docs.to_pylist()
    peer_texts = texts[:peer_docs] if peer_docs else texts
    t0 = time.perf_counter()
    for scheme in mh.SCHEMES:
        mh.signatures(docs.slice(0, 10), mh.MinHashParams(num_perm=num_perm, ngram=ngram, scheme=scheme))
    warmup_s = time.perf_counter() - t0
    rows = {
        "datasketch_update": _timed(_datasketch_update, peer_texts, num_perm, ngram, 1),
        "datasketch_bulk": _timed(_datasketch_bulk, peer_texts, num_perm, ngram, 1),
        "rensa": _timed(_rensa, peer_texts, num_perm, ngram, 1),
        "scheme_a_datasketch": _timed(_ours("datasketch", batch), docs, num_perm, ngram, repeats),
        "scheme_b_fast": _timed(_ours("fast", batch), docs, num_perm, ngram, repeats),
    }
    for row in rows.values():
        row["x_datasketch_bulk"] = row["docs_per_s_cpu"] / rows["datasketch_bulk"]["docs_per_s_cpu"]
        row["x_rensa"] = row["docs_per_s_cpu"] / rows["rensa"]["docs_per_s_cpu"]
    words = np.array([len(t.split()) for t in texts])
    return {"num_perm": num_perm, "ngram": ngram, "batch": batch, "warmup_s": warmup_s,
            "docs": len(texts), "mean_words": float(words.mean()), "mean_bytes": docs.nbytes / len(docs),
            "rows": rows}


CRAWL_DUMPS = ("CC-MAIN-2023-06", "CC-MAIN-2023-23", "CC-MAIN-2023-40", "CC-MAIN-2024-10")


def _crawl_table(cache: Path = OUT / "dedup_crawl") -> Path:
    """A document table shaped like repeated crawls: every real page of the Debian doc
    packages (LibreOffice help in 10 languages, Debian Handbook, Python manual) enters
    a first dump by URL hash and is recrawled into each later dump with probability
    0.6, half the time with a changed footer line (a near duplicate)."""
    from crawl2model.corpora.bench_crawl import PACKAGES, candidates
    from crawl2model.corpora.crawl import stable_int
    from crawl2model.corpora.debian import DEFAULT_CACHE, fetch_packages
    from crawl2model.pipeline.extract import extract_text

    if (cache / "_SUCCESS").exists():
        return cache
    pages = candidates(fetch_packages(PACKAGES, DEFAULT_CACHE))
    rows: list[tuple[str, str, str]] = []
    t0 = time.time()
    for n, (url, path) in enumerate(pages, 1):
        text = extract_text(path.read_text("utf-8", "replace"))
        if not text:
            continue
        first = stable_int("first" + url) % len(CRAWL_DUMPS)
        for k in range(first, len(CRAWL_DUMPS)):
            h = stable_int(f"{url}|{k}")
            if k > first and h % 10 >= 6:
                continue
            rows.append((CRAWL_DUMPS[k], url,
                         text + (f"\nPage generated for {CRAWL_DUMPS[k]}." if k > first and h % 2 else "")))
        if n % 5000 == 0:
            print(f"  corpus: {n}/{len(pages)} pages, {len(rows)} documents, {time.time() - t0:.0f}s", flush=True)
    return _write_docs(rows, cache)


LO_DUMP_LOCALES = ("ca", "cs", "da", "de", "en-gb", "en-us", "es", "fi", "fr", "hu", "it", "ja", "ko", "nl", "pl",
                   "pt-br", "ru", "sv", "zh-cn", "zh-tw")


def _lo_page(item: tuple[str, str, str]) -> tuple[str, str, str] | None:
    from crawl2model.pipeline.extract import extract_text

    dump, url, path = item
    text = extract_text(Path(path).read_text("utf-8", "replace"))
    return (dump, url, text) if text else None


def _write_docs(rows: list[tuple[str, str, str]], cache: Path) -> Path:
    from crawl2model.pipeline.schema import make_doc_id

    dumps, urls, texts = (list(c) for c in zip(*rows))
    table = pa.table({"doc_id": [make_doc_id(d, u) for d, u in zip(dumps, urls)], "dump": dumps, "url": urls,
                      "text": texts, "n_chars": [len(t) for t in texts]})
    pq.write_to_dataset(table, cache, partition_cols=["dump"], row_group_size=4096)
    (cache / "_SUCCESS").write_text("")
    return cache


def _libreoffice_table(cache: Path = OUT / "dedup_libreoffice") -> Path:
    """The issue's comparison set: every page of LibreOffice's help in 20 languages, one
    language package per dump (~2,560 pages each). Untranslated pages are near copies of
    the English ones, so duplicates cross dumps the way recrawled pages do."""
    from multiprocessing import Pool

    from crawl2model.corpora.debian import DEFAULT_CACHE, fetch_packages
    from crawl2model.corpora.sample import lo_base

    if (cache / "_SUCCESS").exists():
        return cache
    pkgs = fetch_packages([f"libreoffice-help-{loc}" for loc in LO_DUMP_LOCALES], DEFAULT_CACHE)
    items = []
    for loc in LO_DUMP_LOCALES:
        base = lo_base(pkgs[f"libreoffice-help-{loc}"])
        items += [(f"libreoffice-{loc}", f"https://help.libreoffice.org/7.4/{base.name}/{p.relative_to(base).as_posix()}",
                   str(p)) for p in sorted(base.rglob("*.html"))]
    with Pool(os.cpu_count()) as pool:
        rows = [r for r in pool.imap(_lo_page, items, chunksize=64) if r]
    return _write_docs(rows, cache)


RECRAWLS = ("recrawl-1", "recrawl-2", "recrawl-3")


def recrawl_variant(text: str, key: str) -> str:
    """A deterministic later copy of a page: unchanged, a few words edited, two paragraphs
    swapped, or boilerplate added, chosen by a hash of `key`."""
    from crawl2model.corpora.crawl import stable_int

    h = stable_int(key)
    kind = h % 4
    if kind == 1:
        words = text.split(" ")
        for i in range(h % 29, len(words), 29):
            words[i] = f"w{stable_int(key + str(i)) % 9973}"
        return " ".join(words)
    if kind == 2:
        paras = text.split("\n")
        if len(paras) > 2:
            i = 1 + h % (len(paras) - 2)
            paras[i - 1], paras[i] = paras[i], paras[i - 1]
        return "\n".join(paras)
    if kind == 3:
        return (f"Skip to content. Home | Help | Downloads | Donate ({h % 97})\n{text}\n"
                "Privacy policy. Impressum. Cookies settings. All rights reserved.")
    return text


def _scaling_table(cache: Path = OUT / "dedup_scaling") -> Path:
    """~205,000 documents for the scaling run: the LibreOffice pages (20 dumps) plus three
    later recrawl dumps with a variant (`recrawl_variant`) of every page."""
    import pyarrow.dataset as ds

    if (cache / "_SUCCESS").exists():
        return cache
    t = ds.dataset(_libreoffice_table(), format="parquet", partitioning="hive").to_table(
        columns=["dump", "url", "text"])
    rows = list(zip(t["dump"].to_pylist(), t["url"].to_pylist(), t["text"].to_pylist()))
    rows += [(dump, url, recrawl_variant(text, f"{dump}|{url}")) for dump in RECRAWLS for _, url, text in rows[:]]
    return _write_docs(rows, cache)


CORPORA = {"libreoffice": _libreoffice_table, "crawl": _crawl_table, "scaling": _scaling_table}


def _subset(table_dir: Path, n_docs: int, out: Path) -> Path:
    """The first n documents by a hash of doc_id, so smaller sets are nested in larger ones.

    An int64 `idx` column (the rank) is added: the peer's script needs an integer index column.
    """
    import pyarrow.dataset as ds

    t = ds.dataset(table_dir, format="parquet", partitioning="hive").to_table()
    order = np.argsort(np.array([int(d[:12], 16) for d in t["doc_id"].to_pylist()]), kind="stable")
    sub = t.take(order[:n_docs])
    sub = sub.append_column("idx", pa.array(np.arange(sub.num_rows, dtype=np.int64)))
    pq.write_to_dataset(sub, out, partition_cols=["dump"], row_group_size=4096)
    return out


def _run_measured(argv: list[str], env: dict[str, str] | None = None,
                  timeout: float | None = None) -> tuple[float, float, float] | None:
    """(wall seconds, peak memory in MiB, CPU seconds) of the process tree (driver, JVM and
    Python workers), or None when it ran past `timeout` (the tree is killed). CPU seconds
    are what the shared machine's other work disturbs least: the figure for core-hours.
    They are sampled with the memory, each process's last reading of its own time counted
    once, so up to one interval of each process is missed.

    Memory is PSS (proportional set size): Spark forks its Python workers from
    one daemon, and summing RSS would count their shared pages once per fork.
    """
    import subprocess
    import tempfile

    import psutil

    t0 = time.time()
    # stderr to a file, not a pipe: a chatty job (spark-submit logs at INFO) would fill the pipe
    # and block in its logger until someone reads it.
    log_file = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log_file, text=True, env=env)
    peak, cpu = 0, {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        if timeout and time.time() - t0 > timeout:
            for p in reversed(tree):
                with contextlib.suppress(psutil.Error):
                    p.kill()
            proc.wait()
            return None
        pss = 0
        for p in tree:  # one process ending mid-sample must not void the others' readings
            with contextlib.suppress(psutil.Error):
                pss += p.memory_full_info().pss
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
        peak = max(peak, pss)
        time.sleep(0.5)
    log_file.seek(0)
    err = log_file.read()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{err[-3000:]}")
    return time.time() - t0, peak / 2**20, sum(cpu.values())


def _run_peer(script: Path, docs: Path, out: Path, n_docs: int, args: argparse.Namespace) -> dict:
    """text-dedup's Spark script on the same input, threshold, permutations and n-gram size."""
    measured = _run_measured([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]",
                              str(script), "--input", str(docs), "--output", str(out), "--threshold",
                              str(args.threshold), "--num_perm", str(args.num_perm), "--ngram_size",
                              str(args.ngram), "--column", "text", "--index_column", "idx"],
                             env=dict(os.environ, PYSPARK_PYTHON=sys.executable), timeout=args.peer_timeout)
    if measured is None:
        return {"docs": n_docs, "wall_seconds": None, "timed_out_after_seconds": args.peer_timeout}
    wall, peak, cpu = measured
    kept = sum(pq.ParquetFile(f).metadata.num_rows for f in out.rglob("*.parquet"))
    return {"docs": n_docs, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "peak_pss_mib": round(peak),
            "removed": n_docs - kept}


def bench_spark_job(args: argparse.Namespace) -> dict | None:
    """Part (b): the Spark dedup job end to end in local mode: docs/s and peak memory at
    12.5k, 25k and 50k documents (each size nested in the next), all four dumps; the
    peer on the largest size when given."""
    import shutil
    import tempfile

    from crawl2model.core.fs import read_json

    sizes = args.spark_docs or ([50_000, 100_000, 200_000] if args.corpus == "scaling" else
                                [2_000] if args.quick else [50_000])
    peer = None
    corpus = CORPORA[args.corpus]()
    runs = []
    work = Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    try:
        for n in sizes:
            docs = _subset(corpus, n, work / f"docs-{n}")
            out = work / f"out-{n}"
            wall, peak, cpu = _run_measured([sys.executable, "-m", "crawl2model", "dedup", "--input", str(docs),
                                        "--output", str(out), "--threshold", str(args.threshold),
                                        "--num-perm", str(args.num_perm), "--ngram", str(args.ngram),
                                        *args.dedup_args])
            report = read_json(str(out / "report.json"))
            runs.append({"docs": report["docs_in"], "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                         "removed": report["docs_in"] - report["docs_out"],
                         "job_seconds": report["seconds"], "docs_per_second": round(report["docs_in"] / wall, 1),
                         "peak_pss_mib": round(peak), "removed_fraction": report["removed_fraction"],
                         "timings": report["timings"], "rate_by_dumps": report.get("rate_by_dumps"),
                         "per_dump_mode_removed_fraction": report.get("per_dump_mode_removed_fraction")})
            print(f"  spark dedup {n:>6} docs: {wall:6.1f}s wall, {cpu:6.1f}s CPU, "
                  f"{report['docs_in'] / wall:7.1f} docs/s, "
                  f"peak {peak:6.0f} MiB, removed {report['removed_fraction']:.1%}; phases (s) "
                  + ", ".join(f"{k} {v:.1f}" for k, v in report["timings"].items()), flush=True)
        if args.peer:
            peer = _run_peer(args.peer, docs, work / "peer-out", runs[-1]["docs"], args)
            if peer["wall_seconds"] is None:
                peer["x_wall_ours_faster_at_least"] = round(args.peer_timeout / runs[-1]["wall_seconds"], 2)
                print(f"  peer {args.peer.name} {peer['docs']:>6} docs: did not finish in {args.peer_timeout:.0f}s",
                      flush=True)
            else:
                peer["x_wall_ours_faster"] = round(peer["wall_seconds"] / runs[-1]["wall_seconds"], 2)
                peer["x_cpu_ours_cheaper"] = round(peer["cpu_seconds"] / runs[-1]["cpu_seconds"], 2)
                print(f"  peer {args.peer.name} {peer['docs']:>6} docs: {peer['wall_seconds']:6.1f}s wall, "
                      f"peak {peer['peak_pss_mib']:6.0f} MiB, removed {peer['removed']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base, cores = runs[0], os.cpu_count()
    for prev, r in zip([None, *runs], runs):
        r["time_ratio_vs_smallest"] = round(r["cpu_seconds"] / base["cpu_seconds"], 2)
        r["size_ratio_vs_smallest"] = round(r["docs"] / base["docs"], 2)
        # Per core = per CPU-second of the whole process tree: the machine is shared, and wall
        # time would charge this job for others' work.
        r["docs_per_cpu_second"] = round(r["docs"] / r["cpu_seconds"], 1)
        if prev:  # what each further 1,000 documents cost, CPU seconds
            r["marginal_cpu_seconds_per_1000_docs"] = round(
                1000 * (r["cpu_seconds"] - prev["cpu_seconds"]) / (r["docs"] - prev["docs"]), 3)
    return {"master": "local[*]", "cores": cores, "corpus": args.corpus, "runs": runs, "peer": peer,
            "threshold": args.threshold, "num_perm": args.num_perm, "ngram": args.ngram}


def bench_rate_by_dumps(args: argparse.Namespace, spark_job: dict | None = None) -> dict | None:
    """Part (c): the removal rate for the first k dumps together, from the largest run."""
    if not spark_job:
        return None
    last = spark_job["runs"][-1]
    return {"docs": last["docs"], "curve": last["rate_by_dumps"],
            "each_dump_alone": last["per_dump_mode_removed_fraction"]}


# --------------------------------------------------------------------------- report

def print_signatures(part: dict) -> None:
    print(f"\n(a) text -> signature, {part['docs']:,} documents (~{part['mean_words']:.0f} words, "
          f"{part['mean_bytes']:,.0f} bytes), num_perm={part['num_perm']}, ngram={part['ngram']}; "
          f"numba warm-up {part['warmup_s']:.2f} s")
    print(f"{'method':<22}{'docs':>8}{'docs/s/core':>13}{'docs/s wall':>13}{'x ds bulk':>11}{'x rensa':>9}")
    for name, row in part["rows"].items():
        print(f"{name:<22}{row['docs']:>8,}{row['docs_per_s_cpu']:>13,.0f}{row['docs_per_s_wall']:>13,.0f}"
              f"{row['x_datasketch_bulk']:>11.2f}{row['x_rensa']:>9.2f}")


def print_errors(part: dict) -> None:
    print(f"\nJaccard-estimate error, {part['pairs']} near-duplicate pairs ({part['near_pairs_0.5_1.0']} with "
          f"Jaccard >= 0.5; mean {part['exact_jaccard_mean']:.3f}), mean over seeds {part['seeds']}; "
          f"ideal (random permutations) MAE {part['ideal_mae']:.4f}")
    print(f"{'scheme':<14}{'MAE':>8}{'MAE J>=0.5':>12}{'bias':>9}{'max':>8}  MAE per seed")
    for name, row in part["schemes"].items():
        print(f"{name:<14}{row['mae']:>8.4f}{row['mae_near_0.5_1.0']:>12.4f}{row['bias']:>9.4f}"
              f"{row['max_abs_error']:>8.3f}  {row['mae_per_seed']}")


def print_spark(report: dict) -> None:
    job = report["spark_job"]
    print(f"\ncorpus {job['corpus']}")
    print(f"{'docs':>8} {'wall s':>8} {'CPU s':>8} {'docs/s':>8} {'docs/CPU s':>11} {'CPU s/1k more':>14} "
          f"{'peak MiB':>9} {'CPU x':>7} {'size x':>7}")
    for r in job["runs"]:
        marginal = r.get("marginal_cpu_seconds_per_1000_docs")
        print(f"{r['docs']:>8} {r['wall_seconds']:>8.1f} {r['cpu_seconds']:>8.1f} {r['docs_per_second']:>8.1f} "
              f"{r['docs_per_cpu_second']:>11.1f} {'' if marginal is None else marginal:>14} "
              f"{r['peak_pss_mib']:>9} {r['time_ratio_vs_smallest']:>7} {r['size_ratio_vs_smallest']:>7}")
    peer, ours = job.get("peer"), job["runs"][-1]
    if peer:
        print(f"\nside by side, {ours['docs']:,} documents, threshold {job['threshold']}, "
              f"{job['num_perm']} permutations, {job['ngram']}-grams, {job['master']} ({job['cores']} cores)")
        print(f"{'job':<28}{'wall s':>8}{'CPU s':>8}{'peak PSS MiB':>14}{'removed':>9}")
        print(f"{'crawl2model dedup':<28}{ours['wall_seconds']:>8.1f}{ours['cpu_seconds']:>8.1f}"
              f"{ours['peak_pss_mib']:>14}{ours['removed']:>9}")
        if peer["wall_seconds"] is None:
            print(f"{'text-dedup minhash_spark':<28} did not finish in {peer['timed_out_after_seconds']:.0f}s")
            print(f"ours is at least {peer['x_wall_ours_faster_at_least']:.2f}x faster (wall, curve included)")
        else:
            print(f"{'text-dedup minhash_spark':<28}{peer['wall_seconds']:>8.1f}{peer['cpu_seconds']:>8.1f}"
                  f"{peer['peak_pss_mib']:>14}{peer['removed']:>9}")
            print(f"ours is {peer['x_wall_ours_faster']:.2f}x faster (wall, rate-by-dumps curve included), "
                  f"{peer['x_cpu_ours_cheaper']:.2f}x less CPU")
    curve = report["rate_by_dumps"]
    print(f"\n(c) removed when the first k dumps are deduplicated together ({curve['docs']} docs): "
          + ", ".join(f"k={p['dumps']}: {p['removed_fraction']:.1%}" for p in curve["curve"])
          + f"; each dump alone: {curve['each_dump_alone']:.1%}")


def write_throughputs(job: dict, path: Path) -> None:
    """The sizing model's throughputs file (`crawl2model plan --throughputs PATH`) with dedup's
    speed replaced by this run's marginal whole-job rate: the CPU seconds each further
    document costs between the two largest runs, so fixed start-up costs drop out. The model
    adds the shuffle on top, so with this file its dedup core-hours are an upper bound."""
    from crawl2model.core.resources import resource

    shipped = json.loads(resource("crawl2model.infra", "sizing", "throughputs.json").read_text())
    small, large = job["runs"][-2], job["runs"][-1]
    rate = (large["docs"] - small["docs"]) / (large["cpu_seconds"] - small["cpu_seconds"])
    shipped["dedup_signature_docs"] = {
        "value": round(rate, 1), "unit": "docs/s per core",
        "source": f"bench/dedup.py --corpus {job['corpus']}: whole dedup job in local[{job['cores']}], marginal "
                  f"rate between {small['docs']:,} and {large['docs']:,} documents (CPU seconds of the JVM and "
                  f"Python workers, shuffles included)"}
    path.write_text(json.dumps(shipped, indent=2) + "\n")
    print(f"wrote {path} (crawl2model plan --throughputs {path}): dedup {rate:,.1f} docs/s per core")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000, help="documents for part (a)")
    parser.add_argument("--quick", action="store_true", help="2,000 documents, one repeat")
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--ngram", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3000, help="near-duplicate pairs for the error comparison")
    parser.add_argument("--output", type=Path, default=OUT / "dedup.json")
    parser.add_argument("--skip-spark", action="store_true", help="only part (a)")
    parser.add_argument("--only-spark", action="store_true", help="only parts (b) and (c)")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="libreoffice",
                        help="part (b) input: libreoffice (20 help languages as 20 dumps, ~51k pages), crawl "
                             "(Debian docs recrawled into 4 dumps, ~55k), scaling (libreoffice + 3 recrawl "
                             "dumps of variants, ~205k; sizes 50k/100k/200k)")
    parser.add_argument("--spark-docs", type=lambda v: [int(x) for x in v.split(",")],
                        help="comma-separated sizes for part (b) (default 50000; scaling: 50000,100000,200000)")
    parser.add_argument("--peer-timeout", type=float, default=900, help="seconds before the peer is stopped")
    parser.add_argument("--dedup-args", default="", type=str.split, help="extra flags for crawl2model dedup")
    parser.add_argument("--threshold", type=float, default=0.8, help="Jaccard threshold of both Spark jobs")
    parser.add_argument("--peer", type=Path, help="text-dedup's minhash_spark.py (6bb8e89), run on the largest size")
    args = parser.parse_args(argv)
    if args.quick:
        args.docs, args.pairs = min(args.docs, 2000), min(args.pairs, 600)
    report: dict = {}
    if not args.only_spark:
        docs = build_documents(args.docs)
        report["signatures"] = bench_signatures(docs, args.num_perm, args.ngram, repeats=1 if args.quick else 3)
        print_signatures(report["signatures"])
        report["estimate_error"] = estimate_errors(*near_duplicate_pairs(docs, args.pairs), args.num_perm,
                                                   args.ngram)
        print_errors(report["estimate_error"])
    if not args.skip_spark:
        print("\n(b) Spark dedup job, local mode")
        report["spark_job"] = bench_spark_job(args)
        report["rate_by_dumps"] = bench_rate_by_dumps(args, report["spark_job"])
        print_spark(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    if report.get("spark_job") and len(report["spark_job"]["runs"]) > 1:
        write_throughputs(report["spark_job"], args.output.with_name(args.output.stem + "_throughputs.json"))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
