"""Benchmark the ingest stage's HTML extractors: quality against a gold set, and speed.

Quality: newspaper4k's source distribution ships real news pages with the
article text its maintainers expect; we score each extractor's output against
it with token precision/recall/F1 (bag of lowercased whitespace tokens; in
scripts written without spaces -- Chinese, Japanese, Thai, Burmese -- each
character is a token, otherwise a whole paragraph would be one token and any
difference would zero it). Scores are macro-averaged over pages.

Speed: the ingest hot path exactly as the Spark job runs it per record
(pipeline.warc.iter_records -> pipeline.decode.decode_payload ->
pipeline.extract.extract_text), single process, over the corpus that
bench/build_corpus.py writes, with reading+decoding timed apart from extraction
so the extractor's share is visible.

    python bench/build_corpus.py          # once: >= 5000 pages into bench/data/corpus
    python bench/ingest.py                # full run -> table + bench/out/ingest.json
    python bench/ingest.py --quick        # 300 pages (falls back to the bundled sample)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from crawl2model.pipeline.decode import decode_payload
from crawl2model.pipeline.extract import EXTRACTORS, content_kind, extract_text
from crawl2model.pipeline.warc import Skip, iter_records

REPO = Path(__file__).resolve().parent.parent


DATA = REPO / "bench" / "data"
DEFAULT_CORPUS = DATA / "corpus"
SAMPLE = REPO / "jobs" / "sample"
DEFAULT_JSON = REPO / "bench" / "out" / "ingest.json"
NEWSPAPER = "newspaper4k==0.9.6"
MIN_FULL_PAGES = 5000
QUICK_PAGES = 300

# Scripts written without spaces between words, as code point ranges (built
# from numbers so no editor or normalizer can silently change an endpoint).
UNSPACED = ((0x0E00, 0x0EFF),   # Thai, Lao
            (0x1000, 0x109F),   # Myanmar
            (0x1780, 0x17FF),   # Khmer
            (0x3040, 0x30FF),   # Hiragana, Katakana
            (0x3400, 0x4DBF),   # CJK extension A
            (0x4E00, 0x9FFF),   # CJK unified ideographs
            (0xF900, 0xFAFF))   # CJK compatibility ideographs
_CLASS = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in UNSPACED)
TOKEN = re.compile(f"[{_CLASS}]|[^\\s{_CLASS}]+")


# --------------------------------------------------------------------------- quality

@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float


def tokens(text: str) -> Counter:
    return Counter(TOKEN.findall(text.lower()))


def score(predicted: str, gold: str) -> Score:
    """Token-bag overlap: precision punishes boilerplate kept, recall punishes text lost."""
    pred, ref = tokens(predicted), tokens(gold)
    overlap = sum((pred & ref).values())
    p = overlap / sum(pred.values()) if pred else 0.0
    r = overlap / sum(ref.values()) if ref else 0.0
    return Score(p, r, 2 * p * r / (p + r) if p + r else 0.0)


def gold_pages(cache: Path) -> list[tuple[str, bytes, str]]:
    """(name, html bytes, expected text) for every page newspaper4k ships both files for.

    The sdist is fetched with pip once and only its tests/data/{html,txt}
    folders are unpacked under `cache`.
    """
    root = cache / "newspaper4k"
    if not (root / "html").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        sdists = sorted(root.glob("newspaper4k-*.tar.gz"))
        if not sdists:
            subprocess.run([sys.executable, "-m", "pip", "download", NEWSPAPER, "--no-deps",
                            "--no-binary", ":all:", "-q", "-d", str(root)], check=True)
            sdists = sorted(root.glob("newspaper4k-*.tar.gz"))
        unpack_test_data(sdists[-1], root)
    pages = []
    for html_path in sorted((root / "html").glob("*.html")):
        txt_path = root / "txt" / f"{html_path.stem}.txt"
        if txt_path.exists():
            pages.append((html_path.stem, html_path.read_bytes(), txt_path.read_text("utf-8")))
    return pages


def unpack_test_data(sdist: Path, root: Path) -> None:
    """Extract tests/data/html/*.html and tests/data/txt/*.txt, flattened into root/html, root/txt."""
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and len(parts) == 5 and parts[1:3] == ("tests", "data") \
                    and parts[3] in ("html", "txt"):
                (root / parts[3]).mkdir(exist_ok=True)
                (root / parts[3] / parts[4]).write_bytes(tar.extractfile(member).read())


def quality(pages: list[tuple[str, bytes, str]]) -> dict:
    """Per page and mean P/R/F1 for each extractor, plus its mean extraction time."""
    result = {}
    for extractor in EXTRACTORS:
        per_page, seconds = {}, 0.0
        for name, raw, gold in pages:
            html = decode_payload(raw, None, is_html=True).text
            started = time.perf_counter()
            text = extract_text(html, extractor)
            seconds += time.perf_counter() - started
            per_page[name] = asdict(score(text, gold))
        mean = {k: sum(s[k] for s in per_page.values()) / len(per_page) for k in ("precision", "recall", "f1")}
        result[extractor] = {**mean, "ms_per_page": 1000 * seconds / len(pages), "pages": per_page}
    return result


# --------------------------------------------------------------------------- speed

def crawl_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*.warc.gz") if p.is_file())


def speed(files: list[Path], extractor: str, limit: int | None) -> dict:
    """Run read -> decode -> extract over HTML 200 responses, timing each side.

    Reading includes the request/metadata records a real crawl interleaves,
    because the ingest job has to step over them too.
    """
    read_s = decode_s = extract_s = 0.0
    pages = payload_bytes = text_chars = 0
    for path in files:
        records = iter_records(str(path))
        while limit is None or pages < limit:
            t0 = time.perf_counter()
            rec = next(records, None)
            t1 = time.perf_counter()
            read_s += t1 - t0
            if rec is None:
                break
            if isinstance(rec, Skip) or rec.rec_type != "response" or rec.http_status != 200:
                continue
            if content_kind(rec.content_type, rec.payload[:1024]) != "html":
                continue
            decoded = decode_payload(rec.payload, rec.content_type, is_html=True)
            t2 = time.perf_counter()
            decode_s += t2 - t1
            text_chars += len(extract_text(decoded.text, extractor))
            extract_s += time.perf_counter() - t2
            pages += 1
            payload_bytes += len(rec.payload)
    total = read_s + decode_s + extract_s
    return {"pages": pages, "payload_mib": payload_bytes / 2**20, "text_chars": text_chars,
            "read_s": read_s, "decode_s": decode_s, "extract_s": extract_s, "total_s": total,
            "pages_per_s": pages / total if total else 0.0,
            "extract_pages_per_s": pages / extract_s if extract_s else 0.0}


# --------------------------------------------------------------------------- report

def print_quality(q: dict, n_pages: int) -> None:
    names = list(q)
    print(f"\nExtraction quality: {n_pages} newspaper4k gold pages, token P / R / F1 (macro mean)")
    print(f"{'':24s}" + "".join(f"{n:>24s}" for n in names))
    print(f"{'page':24s}" + "".join(f"{'P':>8s}{'R':>8s}{'F1':>8s}" for _ in names))
    for page in q[names[0]]["pages"]:
        row = "".join("{precision:8.3f}{recall:8.3f}{f1:8.3f}".format(**q[n]["pages"][page]) for n in names)
        print(f"{page[:24]:24s}{row}")
    print(f"{'MEAN':24s}" + "".join("{precision:8.3f}{recall:8.3f}{f1:8.3f}".format(**q[n]) for n in names))
    print(f"{'ms/page':24s}" + "".join(f"{q[n]['ms_per_page']:24.1f}" for n in names))


def print_speed(s: dict, corpus: Path) -> None:
    print(f"\nSpeed: read WARC -> decode -> extract, one process, corpus {corpus}")
    print(f"{'extractor':12s}{'pages':>7s}{'pages/s':>9s}{'read s':>8s}{'decode s':>9s}"
          f"{'extract s':>10s}{'extract %':>10s}{'extract-only p/s':>17s}")
    for name, r in s.items():
        share = 100 * r["extract_s"] / r["total_s"] if r["total_s"] else 0.0
        print(f"{name:12s}{r['pages']:7d}{r['pages_per_s']:9.1f}{r['read_s']:8.2f}{r['decode_s']:9.2f}"
              f"{r['extract_s']:10.2f}{share:9.1f}%{r['extract_pages_per_s']:17.1f}")


def ratios(q: dict, s: dict) -> dict:
    """Trafilatura relative to resiliparse: what its quality costs in time."""
    base, other = "resiliparse", "trafilatura"
    return {"extract_time_ratio": s[other]["extract_s"] / s[base]["extract_s"],
            "total_time_ratio": s[other]["total_s"] / s[base]["total_s"],
            "f1_difference": q[other]["f1"] - q[base]["f1"],
            "precision_difference": q[other]["precision"] - q[base]["precision"],
            "recall_difference": q[other]["recall"] - q[base]["recall"]}


def environment() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
            **{pkg: version(pkg) for pkg in ("resiliparse", "trafilatura", "warcio")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=None,
                        help=f"WARC corpus from bench/build_corpus.py (default {DEFAULT_CORPUS})")
    parser.add_argument("--quick", action="store_true",
                        help=f"time only {QUICK_PAGES} pages; use the bundled sample if no corpus was built")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    corpus = args.corpus or (SAMPLE if args.quick and not DEFAULT_CORPUS.exists() else DEFAULT_CORPUS)
    files = crawl_files(corpus)
    if not files:
        parser.error(f"no .warc.gz under {corpus}: run `python bench/build_corpus.py` first")
    limit = QUICK_PAGES if args.quick else None

    pages = gold_pages(DATA)
    q = quality(pages)
    print_quality(q, len(pages))
    s = {name: speed(files, name, limit) for name in EXTRACTORS}
    print_speed(s, corpus)
    if not args.quick and min(r["pages"] for r in s.values()) < MIN_FULL_PAGES:
        print(f"warning: fewer than {MIN_FULL_PAGES} pages timed; build a larger corpus", file=sys.stderr)
    r = ratios(q, s)
    print(f"\ntrafilatura / resiliparse: extract time x{r['extract_time_ratio']:.1f}, "
          f"end-to-end time x{r['total_time_ratio']:.1f}, F1 {r['f1_difference']:+.3f} "
          f"(P {r['precision_difference']:+.3f}, R {r['recall_difference']:+.3f})")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"quality": q, "speed": s, "ratios": r, "corpus": str(corpus), "quick": args.quick,
              "gold_source": NEWSPAPER, "environment": environment()}
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
