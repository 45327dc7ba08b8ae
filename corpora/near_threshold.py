"""The near-threshold dedup fixture: LibreOffice help pages whose en-US and en-GB (and zh-CN and
zh-TW) versions are near copies, chosen so most pairs sit at Jaccard 0.7-0.95, where a
128-permutation estimate is noisy. Two dumps: en-US and zh-CN pages in the first, their
en-GB and zh-TW versions in the second.

    python -m crawl2model.corpora.near_threshold    # writes tests/data/dedup/near_threshold.parquet
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from crawl2model.corpora.debian import DEFAULT_CACHE, fetch_packages
from crawl2model.corpora.sample import lo_base
from crawl2model.pipeline.extract import extract_text
from crawl2model.pipeline.minhash import normalize, shingle_hashes
from crawl2model.pipeline.schema import make_doc_id

DEFAULT_OUTPUT = Path("tests/data/dedup/near_threshold.parquet")
PAIRS = (("en-us", "en-gb", 260), ("zh-cn", "zh-tw", 60))  # (first dump, second dump, near pairs)
DUMPS = ("CC-MAIN-2024-10", "CC-MAIN-2024-18")
NEAR = (0.7, 0.95)
OTHER_PER_LANGUAGE = 40  # pairs outside NEAR (identical or unrelated), so both sides of it are tested


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    offsets, hashes = shingle_hashes(normalize(pa.array([a, b])), ngram, 100_000)
    x, y = set(hashes[offsets[0]:offsets[1]].tolist()), set(hashes[offsets[1]:offsets[2]].tolist())
    return len(x & y) / len(x | y) if x | y else 0.0


def _pages(root: Path) -> dict[str, str]:
    base = lo_base(root)
    return {p.relative_to(base).as_posix(): p.read_text("utf-8", "replace") for p in sorted(base.rglob("*.html"))}


def build(cache: Path = DEFAULT_CACHE) -> pa.Table:
    rows: dict[str, list] = {"doc_id": [], "dump": [], "url": [], "text": []}
    for first, second, n_near in PAIRS:
        pkgs = fetch_packages([f"libreoffice-help-{first}", f"libreoffice-help-{second}"], cache)
        a, b = _pages(pkgs[f"libreoffice-help-{first}"]), _pages(pkgs[f"libreoffice-help-{second}"])
        near, other = [], []
        for topic in sorted(a.keys() & b.keys()):
            ta, tb = extract_text(a[topic]), extract_text(b[topic])
            if ta and tb:
                (near if NEAR[0] <= jaccard(ta, tb) < NEAR[1] else other).append((topic, ta, tb))
        chosen = near[:: max(1, len(near) // n_near)][:n_near] + other[:: max(1, len(other) // OTHER_PER_LANGUAGE)][
            :OTHER_PER_LANGUAGE]
        for topic, ta, tb in chosen:
            for dump, loc, text in ((DUMPS[0], first, ta), (DUMPS[1], second, tb)):
                url = f"https://help.libreoffice.org/7.4/{loc}/{topic}"
                for col, value in zip(rows, (make_doc_id(dump, url), dump, url, text)):
                    rows[col].append(value)
    return pa.table(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Debian package cache")
    args = p.parse_args(argv)
    table = build(args.cache)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.output, compression="zstd", compression_level=19)
    print(f"{table.num_rows} documents -> {args.output} ({args.output.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
