"""Filter benchmark (issues 4 and 16): ours vs datatrove 0.10.1's heuristic stack, docs/s per core, same run.

Documents are real pages from Debian documentation packages (javadoc, LibreOffice
help in 8 languages, the Debian Handbook in 26, Python and PostgreSQL manuals),
turned into text by the ingest extractor and cached as Parquet under
bench/data/filter/. On the same documents, in this one process:

- datatrove: GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and
  FineWebQualityFilter (defaults, English word tokenizer: spaCy), each run on
  every document, so that all four verdicts exist for each as all our signals
  do (a datatrove pipeline stops at the first filter that drops a document:
  its cost per document is lower when much is dropped early);
- ours, the same heuristics: `heuristics.signals_table` (Gopher quality and
  repetition, C4, FineWeb: every signal as a number) with the languages LID
  gave, as the job calls it;
- ours, everything the job computes per document (`filter_stage.signal_batch`
  on Arrow batches of 512: PII redaction, URL blocklist and banned words,
  LID, heuristics, fastText quality, KenLM perplexity), with the cost per signal.

"Per core" is this process's CPU time, since the machine is shared (wall time
is in the JSON too, with the load average). `--job N` also times the filter
job end to end (`crawl2model filter`, a fresh process: Spark's start, model
loading, the rules, writing, plots) on N documents, with where the time went:
the process before the stage, the Spark session, and the job's laps (read,
signals, rules: the report's counts; plots; write: what the concurrent writes
took beyond those).

    nice -n 10 python bench/filter.py --docs 3000 --job 400
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.core.text import words
from crawl2model.corpora.debian import DEFAULT_CACHE, fetch
from crawl2model.jobs.filter import filter_models
from crawl2model.pipeline.filters import heuristics
from crawl2model.pipeline.filters.filter_stage import FilterConfig, signal_batch

ROOT = Path(__file__).resolve().parent.parent


# (package, glob under it): broad, so that 20,000 pages mix prose, boilerplate and languages.
PAGES = [
    ("openjdk-17-doc", "usr/share/doc/openjdk-17-jre-headless/api/**/*.html"),
    ("debian-handbook", "usr/share/doc/debian-handbook/html/*/*.html"),
    ("python3.11-doc", "usr/share/doc/python3.11/html/**/*.html"),
    ("postgresql-doc-15", "usr/share/doc/postgresql-doc-15/html/*.html"),
    *((f"libreoffice-help-{p}", f"usr/share/libreoffice/help/{d}/text/**/*.html")
      for p, d in (("en-us", "en-US"), ("de", "de"), ("fr", "fr"), ("es", "es"), ("it", "it"), ("ru", "ru"),
                   ("ja", "ja"), ("zh-cn", "zh-CN"))),
]
BATCH = 512


def corpus(n: int, cache: str, out: Path) -> pa.Table:
    """n pages, drawn evenly from PAGES by a stable hash of their paths, extracted once and cached."""
    path = out / f"docs-{n}.parquet"
    if path.is_file():
        return pq.read_table(path)
    from crawl2model.pipeline.extract import extract_text

    per_source = []
    for package, pattern in PAGES:
        root = fetch(package, cache)
        files = sorted(glob.glob(os.path.join(root, pattern), recursive=True),
                       key=lambda p: hashlib.sha1(p.encode()).hexdigest())
        per_source.append(files)
    picked: list[str] = []
    while len(picked) < n and any(per_source):
        for files in per_source:
            if files and len(picked) < n:
                picked.append(files.pop())
    texts = []
    for p in picked:
        with open(p, "rb") as f:
            texts.append(extract_text(f.read().decode("utf-8", "replace")))
    table = pa.table({"doc_id": [hashlib.sha1(p.encode()).hexdigest() for p in picked], "text": texts})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return table


def datatrove_stack():
    """datatrove 0.10.1's heuristic filters with their defaults (None if datatrove, or spaCy, which its
    English word tokenizer loads on the first document, is not installed)."""
    try:
        import spacy  # noqa: F401
        from datatrove.data import Document
        from datatrove.pipeline.filters import (
            C4QualityFilter,
            FineWebQualityFilter,
            GopherQualityFilter,
            GopherRepetitionFilter,
        )
    except ImportError as e:
        print(f"datatrove's filters not available ({e}): make setup EXTRAS=bench (pip install -e '.[bench]')")
        return None
    return Document, [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]


def run_datatrove(texts: list[str], stack) -> tuple[float, dict[str, int]]:
    """CPU seconds for all four filters on every document, and how many each filter drops."""
    document, filters = stack
    docs = [document(text=t, id=str(i)) for i, t in enumerate(texts)]
    for f in filters:  # load the tokenizer once, outside the timing
        f.filter(document(text="Warm up the word tokenizer with one sentence.", id="w"))
    dropped = {type(f).__name__: 0 for f in filters}
    c = time.process_time()
    for d in docs:
        for f in filters:
            verdict = f.filter(d)
            if verdict is not True and not (isinstance(verdict, tuple) and verdict[0]):
                dropped[type(f).__name__] += 1
    return time.process_time() - c, dropped


def run_ours(table: pa.Table, models, cfg: FilterConfig) -> dict:
    lists, redact = cfg.blocklist_spec(), tuple(cfg.pii)
    signal_batch(table.slice(0, 8).to_batches()[0], models, blocklists=lists, redact=redact)  # load once
    words("预热", "zh")  # and jieba's dictionary
    cpu: dict[str, float] = {}
    langs: list[str] = []
    cpu0 = time.process_time()
    for batch in table.to_batches(max_chunksize=BATCH):
        laps: dict[str, float] = {}
        c = time.process_time()
        out = signal_batch(batch, models, timings=laps, blocklists=lists, redact=redact)
        # wall laps scaled to this batch's CPU time: the split per signal, in CPU seconds
        scale = (time.process_time() - c) / max(sum(laps.values()), 1e-9)
        for k, v in laps.items():
            cpu[k] = cpu.get(k, 0.0) + v * scale
        langs += out.column("lang").to_pylist()
    total = time.process_time() - cpu0
    texts = table.column("text").to_pylist()
    c = time.process_time()
    for i in range(0, len(texts), BATCH):
        heuristics.signals_table(texts[i:i + BATCH], langs[i:i + BATCH])
    return {"all_cpu": total, "heuristics_cpu": time.process_time() - c, "per_signal": cpu, "langs": langs}


def run_job(table: pa.Table, n: int) -> dict:
    """`crawl2model filter` end to end on n documents (a document table in two dumps), wall seconds."""
    from crawl2model.core.fs import read_json
    from crawl2model.pipeline.schema import DOC_SCHEMA, make_doc_id

    texts = table.column("text").to_pylist()[:n]
    work = Path(tempfile.mkdtemp(prefix="filter-bench-"))
    urls = [f"https://docs.example/page{i}.html" for i in range(len(texts))]
    for k, dump in enumerate(("CC-MAIN-2024-10", "CC-MAIN-2024-18")):
        idx = list(range(k, len(texts), 2))
        part = pa.table({"doc_id": [make_doc_id(urls[i]) for i in idx], "dump": [dump] * len(idx),
                         "url": [urls[i] for i in idx], "host": ["docs.example"] * len(idx),
                         "warc_date": ["2024-03-01T00:00:00Z"] * len(idx), "content_type": ["text/html"] * len(idx),
                         "text": [texts[i] for i in idx], "n_chars": [len(texts[i]) for i in idx]}, schema=DOC_SCHEMA)
        (work / "docs" / f"dump={dump}").mkdir(parents=True)
        pq.write_table(part.drop(["dump"]), work / "docs" / f"dump={dump}" / "part-0.parquet")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crawl2model", "filter", "--input", str(work / "docs"),
                           "--output", str(work / "out")], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    report = read_json(str(work / "out" / "report.json"))
    laps = report["timings"]
    # Where the wall time went: the process before the stage began (interpreter, imports, CLI), the
    # stage before the filter's first lap (the Spark session), then the filter's own laps.
    breakdown = {"process_and_imports": round(wall - report["seconds"], 2),
                 "spark_session": round(report["seconds"] - sum(laps.values()), 2), **laps}
    return {"documents": report["docs_in"], "wall_seconds": round(wall, 2), "stage_seconds": report["seconds"],
            "breakdown": breakdown, "docs_out": report["docs_out"], "load_average_1min": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--job", type=int, default=400, help="documents for the end-to-end job timing (0: skip)")
    ap.add_argument("--cache", default=str(ROOT / DEFAULT_CACHE), help="unpacked Debian packages")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "filter.json"))
    args = ap.parse_args(argv)

    table = corpus(args.docs, args.cache, ROOT / "bench" / "data" / "filter")
    texts = table.column("text").to_pylist()
    n, chars = table.num_rows, sum(map(len, texts))
    cfg = FilterConfig(input="-", output="-")
    ours = run_ours(table, filter_models(cfg), cfg)
    stack = datatrove_stack()
    dt_cpu, dt_dropped = run_datatrove(texts, stack) if stack else (None, {})
    rate = {"ours_heuristics": n / ours["heuristics_cpu"], "ours_all_signals": n / ours["all_cpu"]}
    if dt_cpu:
        rate["datatrove_heuristics"] = n / dt_cpu
    langs: dict[str, int] = {}
    for lang in ours["langs"]:
        langs[lang] = langs.get(lang, 0) + 1
    result = {
        "documents": n, "chars": chars, "docs_per_second_per_core": {k: round(v, 1) for k, v in rate.items()},
        "cpu_seconds": {"ours_heuristics": round(ours["heuristics_cpu"], 2),
                        "ours_all_signals": round(ours["all_cpu"], 2),
                        "datatrove_heuristics": round(dt_cpu, 2) if dt_cpu else None},
        "ratio_vs_datatrove": ({"ours_heuristics": round(rate["ours_heuristics"] / rate["datatrove_heuristics"], 2),
                                "ours_all_signals": round(rate["ours_all_signals"] / rate["datatrove_heuristics"], 2)}
                               if dt_cpu else None),
        "datatrove_dropped": dt_dropped,
        "per_signal": {k: {"cpu_seconds": round(v, 2), "share": round(v / ours["all_cpu"], 3),
                           "docs_per_second": round(n / v, 1)} for k, v in ours["per_signal"].items()},
        "languages": dict(sorted(langs.items(), key=lambda kv: -kv[1])[:12]),
        "load_average_1min": os.getloadavg()[0],
    }
    print(f"{n} documents, {chars / n:.0f} chars on average (this process's CPU time)")
    print(f"{'':<34}{'CPU s':>8}{'docs/s/core':>13}{'vs datatrove':>14}")
    base = rate.get("datatrove_heuristics")
    for k, label in (("datatrove_heuristics", "datatrove 0.10.1 heuristic stack"),
                     ("ours_heuristics", "ours, the same heuristics"), ("ours_all_signals", "ours, every signal")):
        if k in rate:
            print(f"{label:<34}{n / rate[k]:>8.1f}{rate[k]:>13.1f}{(rate[k] / base if base else float('nan')):>13.2f}x")
    print(f"\n{'our signal':<12}{'CPU s':>9}{'share':>8}{'docs/s':>10}")
    for k, v in result["per_signal"].items():
        print(f"{k:<12}{v['cpu_seconds']:>9}{v['share']:>8.1%}{v['docs_per_second']:>10}")
    if args.job:
        result["job"] = run_job(table, args.job)
        j = result["job"]
        print(f"\ncrawl2model filter end to end, {j['documents']} documents: {j['wall_seconds']} s wall "
              f"(load average {j['load_average_1min']:.1f} on {os.cpu_count()} cores)")
        for k, v in j["breakdown"].items():
            print(f"  {k:<22}{v:>8.2f} s")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
