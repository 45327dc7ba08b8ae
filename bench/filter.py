"""Filter benchmark (issue 4, "Must show"): docs/s/core with all signals, and the cost per signal.

Documents are real pages from Debian documentation packages (javadoc, LibreOffice
help in 8 languages, the Debian Handbook in 26, Python and PostgreSQL manuals),
turned into text by the ingest extractor and cached as Parquet under
bench/data/filter/. The signals run exactly as the Spark job runs them
(`filter_stage.signal_batch` on Arrow batches of 512), in this one process;
"per core" is this process's CPU time, since the machine is shared (wall time
is in the JSON too, with the load average).

    nice -n 10 python bench/filter.py              # 20,000 documents
    nice -n 10 python bench/filter.py --docs 2000  # quick
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.corpora.debian import fetch
from crawl2model.jobs.filter import filter_models
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--cache", default=str(ROOT / "build" / "quality-models"), help="unpacked Debian packages")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "filter.json"))
    args = ap.parse_args(argv)

    table = corpus(args.docs, args.cache, ROOT / "bench" / "data" / "filter")
    models = filter_models(FilterConfig(input="-", output="-"))
    signal_batch(table.slice(0, 8).to_batches()[0], models)  # load models and jieba once
    cpu: dict[str, float] = {}
    langs: dict[str, int] = {}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for batch in table.to_batches(max_chunksize=BATCH):
        laps: dict[str, float] = {}
        c = time.process_time()
        out = signal_batch(batch, models, timings=laps)
        # wall laps scaled to this batch's CPU time: the split per signal, in CPU seconds
        scale = (time.process_time() - c) / max(sum(laps.values()), 1e-9)
        for k, v in laps.items():
            cpu[k] = cpu.get(k, 0.0) + v * scale
        for lang in out.column("lang").to_pylist():
            langs[lang] = langs.get(lang, 0) + 1
    wall, total_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    n = table.num_rows
    result = {
        "documents": n, "chars": sum(len(t) for t in table.column("text").to_pylist()),
        "cpu_seconds": round(total_cpu, 2), "wall_seconds": round(wall, 2),
        "docs_per_second_per_core": round(n / total_cpu, 1),
        "per_signal": {k: {"cpu_seconds": round(v, 2), "share": round(v / total_cpu, 3),
                           "docs_per_second": round(n / v, 1)} for k, v in cpu.items()},
        "languages": dict(sorted(langs.items(), key=lambda kv: -kv[1])[:12]),
        "load_average_1min": os.getloadavg()[0],
    }
    print(f"{n} documents, {result['chars'] / n:.0f} chars on average: "
          f"{result['docs_per_second_per_core']} docs/s/core (all signals), {total_cpu:.1f} s CPU, {wall:.1f} s wall")
    print(f"{'signal':<12}{'CPU s':>9}{'share':>8}{'docs/s':>10}")
    for k, v in result["per_signal"].items():
        print(f"{k:<12}{v['cpu_seconds']:>9}{v['share']:>8.1%}{v['docs_per_second']:>10}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
