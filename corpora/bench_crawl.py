"""Build the benchmark corpus: thousands of real HTML pages as Common Crawl style WARC files.

The bundled sample (jobs/sample) is too small to time anything, and Common
Crawl is out of reach here, so the benchmark reads Debian's documentation
packages (LibreOffice help in ten languages, the Debian Handbook in 26, the
Python 3.11 manual) served as a crawl: same dump/segment layout, same
request/response/metadata records, written by the same code as the sample
(`corpora.crawl`). Pages are picked by a stable hash, so a given --pages gives the same corpus
on every machine with the same package versions.

    python bench/build_corpus.py                      # 6000 pages -> bench/data/corpus/
    python bench/build_corpus.py --pages 20000 --output /data/corpus

Paths are relative to the working directory (the repository root, for the benches).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from crawl2model.core.log import Timer, get_logger, progress
from crawl2model.corpora import debian
from crawl2model.corpora.crawl import DUMPS, CrawlWriter, Dump, Fetch, stable_int, warcinfo
from crawl2model.corpora.sample import HANDBOOK_ROOT, PYDOC_ROOT, lo_base

LO_LOCALES = ("en-us", "en-gb", "de", "fr", "es", "it", "ru", "zh-cn", "zh-tw", "ja")
PACKAGES = (*(f"libreoffice-help-{loc}" for loc in LO_LOCALES), "debian-handbook", "python3.11-doc")
DEFAULT_OUTPUT = Path("bench/data/corpus")
PAGES_PER_FILE = 1000

log = get_logger("bench-crawl")


def candidates(pkgs: dict[str, Path]) -> list[tuple[str, Path]]:
    """Every HTML page the packages ship, as (url, file), in a stable shuffled order."""
    pages = []
    for loc in LO_LOCALES:
        base = lo_base(pkgs[f"libreoffice-help-{loc}"])
        pages += [(f"https://help.libreoffice.org/7.4/{base.name}/{p.relative_to(base).as_posix()}", p)
                  for p in base.rglob("*.html")]
    handbook = pkgs["debian-handbook"] / HANDBOOK_ROOT
    pages += [(f"https://debian-handbook.info/browse/{p.parent.name}/stable/{p.name}", p)
              for p in handbook.glob("*/*.html")]
    pydoc = pkgs["python3.11-doc"] / PYDOC_ROOT
    pages += [(f"https://docs.python.org/3.11/{p.relative_to(pydoc).as_posix()}", p)
              for p in pydoc.rglob("*.html")]
    return sorted(pages, key=lambda page: (stable_int(page[0]), page[0]))


def write_corpus(pages: list[tuple[str, Path]], output: Path, info: dict[str, str]) -> int:
    """Deal pages to dumps by URL hash and write files of PAGES_PER_FILE pages; return bytes."""
    by_dump: dict[str, list[tuple[str, Path]]] = {d.name: [] for d in DUMPS}
    for url, path in pages:
        by_dump[DUMPS[stable_int("dump" + url) % len(DUMPS)].name].append((url, path))
    files = [(dump, first) for dump in DUMPS for first in range(0, len(by_dump[dump.name]), PAGES_PER_FILE)]
    total = 0
    for dump, first in progress(files, len(files), "warc files", "file"):
        path = output / dump.warc_path(first // PAGES_PER_FILE)
        total += write_file(path, dump, by_dump[dump.name][first:first + PAGES_PER_FILE], info)
    return total


def write_file(path: Path, dump: Dump, pages: list[tuple[str, Path]], info: dict[str, str]) -> int:
    """Serve each page as shipped (UTF-8, charset in header and <meta>), like the sample's defaults."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        writer = CrawlWriter(out, dump, str(path), info)
        for url, page in sorted(pages, key=lambda p: (dump.fetch_time(p[0]), p[0])):
            writer.write_fetch(Fetch(url, 200, "text/html; charset=utf-8", page.read_bytes(),
                                     charset_detected="UTF-8"))
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=6000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--cache", type=Path, default=debian.DEFAULT_CACHE,
                        help="where .deb files are downloaded and unpacked")
    args = parser.parse_args(argv)

    log.info("fetching %d Debian packages into %s", len(PACKAGES), args.cache)
    pkgs = debian.fetch_packages(PACKAGES, args.cache)
    pool = candidates(pkgs)
    if args.pages > len(pool):
        parser.error(f"--pages {args.pages}: the packages hold only {len(pool)} pages")
    if args.output.exists():
        shutil.rmtree(args.output)
    log.info("writing %d of %d pages to %s", args.pages, len(pool), args.output)
    timer = Timer()
    versions = {name: debian.version(name, args.cache) for name in PACKAGES}
    total = write_corpus(pool[:args.pages], args.output, warcinfo(versions))
    log.info("done: %d pages, %.1f MiB in %s, %.1fs", args.pages, total / 2**20, args.output, timer.total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
