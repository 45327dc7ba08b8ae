"""Build the bundled sample crawl under jobs/sample/ (the demo's package data) from real documents.

The tests need a crawl that behaves like Common Crawl without downloading
Common Crawl: several dumps, WARC files deep in `segments/`, request/response/
metadata triples, pages in legacy encodings, duplicates across dumps and
near-duplicates within them. Debian ships the LibreOffice help as generated
HTML in many locales (en-US and en-GB differ only in spelling, so they are
genuine near-duplicates) and the Debian Handbook as XHTML; pywb ships real
third-party WARC/ARC files. Everything is written deterministically: record ids
are hashes of (dump, url, record type), dates are derived from the url, and
gzip members carry no timestamp, so a rerun gives identical bytes.

    python scripts/build_sample.py            # -> jobs/sample/
    python scripts/build_sample.py --output /tmp/sample --cache build/debian-docs

`apt-get update` must have run once (the packages are fetched by
`corpora.debian`: downloaded and unpacked, never installed). The WARC
writing is `corpora.crawl`'s, shared with the benchmark crawl.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from crawl2model.core.log import get_logger
from crawl2model.core.resources import resource
from crawl2model.corpora import debian
from crawl2model.corpora.crawl import DUMPS, CrawlWriter, Dump, Fetch, stable_int, warcinfo, write_warc

DEFAULT_OUTPUT = resource("crawl2model.jobs", "sample")
MAX_SAMPLE_BYTES = 3 * 1024 * 1024

LO_ROOT = "usr/share/libreoffice/help"
HANDBOOK_ROOT = "usr/share/doc/debian-handbook/html"
PYDOC_ROOT = "usr/share/doc/python3.11/html"
PYWB_VERSION = "2.10.0"
# Real third-party files, kept byte for byte: a WARC with revisits and a 302,
# an old-style ARC, wget's WARC with `resource` records, one with JS/CSS.
PYWB_FILES = ("example.warc.gz", "example.arc.gz", "example-wget-1-14.warc.gz", "dupes.warc.gz")

SAMPLE_PACKAGES = (
    "libreoffice-help-en-us",
    "libreoffice-help-en-gb",
    "libreoffice-help-zh-cn",
    "libreoffice-help-zh-tw",
    "libreoffice-help-ja",
    "libreoffice-help-common",
    "debian-handbook",
    "python3.11-doc",
)

N_TOPICS = 84
N_HANDBOOK = 24

log = get_logger("sample")


# --------------------------------------------------------------------------- sources

def fetch_pywb_samples(cache: Path) -> dict[str, bytes]:
    """The sample WARC/ARC files inside the pywb wheel, byte for byte."""
    wheel_dir = cache / "pywb"
    wheels = sorted(wheel_dir.glob(f"pywb-{PYWB_VERSION}-*.whl"))
    if not wheels:
        log.info("pip download pywb==%s", PYWB_VERSION)
        subprocess.run([sys.executable, "-m", "pip", "download", f"pywb=={PYWB_VERSION}",
                        "--no-deps", "-q", "-d", str(wheel_dir)], check=True)
        wheels = sorted(wheel_dir.glob(f"pywb-{PYWB_VERSION}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = {Path(n).name: n for n in wheel.namelist() if "/sample_archive/warcs/" in n}
        return {name: wheel.read(names[name]) for name in PYWB_FILES}


def lo_base(root: Path) -> Path:
    """The locale folder of a libreoffice-help package (beside it: shared media)."""
    return next(p for p in sorted((root / LO_ROOT).iterdir()) if (p / "text").is_dir())


def lo_topics(roots: list[Path], min_bytes: int = 5000) -> list[str]:
    """Help topics present in every locale, in a stable pseudo-random order.

    Small pages are mostly the shared header and menus; skipping them keeps
    the sample's text dominated by real help content.
    """
    sets = []
    for root in roots:
        base = lo_base(root)
        sets.append({str(p.relative_to(base)) for p in base.rglob("*.html")
                     if p.stat().st_size >= min_bytes})
    common = set.intersection(*sets)
    return sorted(common, key=lambda t: (stable_int(t), t))


def lo_page(root: Path, topic: str) -> tuple[str, str]:
    """Return (url, html) of one LibreOffice help page in the package's locale."""
    base = lo_base(root)
    locale = base.name
    return f"https://help.libreoffice.org/7.4/{locale}/{topic}", (base / topic).read_text("utf-8")


def handbook_pages(root: Path, locale: str, n: int) -> list[tuple[str, str]]:
    """`n` Debian Handbook sections of moderate size, as (url, html)."""
    base = root / HANDBOOK_ROOT / locale
    files = [p for p in base.glob("sect.*.html") if 4000 <= p.stat().st_size <= 20000]
    files.sort(key=lambda p: (stable_int(p.name), p.name))
    return [(f"https://debian-handbook.info/browse/{locale}/stable/{p.name}", p.read_text("utf-8"))
            for p in files[:n]]


# --------------------------------------------------------------------------- encodings

META_HTTP_EQUIV = re.compile(r'<meta http-equiv="Content-Type" content="text/html; charset=utf-8"\s*/?>', re.I)


@dataclass(frozen=True)
class Encoding:
    """How a page is served: the codec of its bytes and where the charset is declared."""

    codec: str         # Python codec name
    label: str         # what the server/page calls it
    declared: str      # "http+meta" | "http" | "meta" | "none"
    meta_style: str = "http-equiv"   # or "charset" (<meta charset=...>)

    def content_type(self) -> str:
        return f"text/html; charset={self.label}" if "http" in self.declared else "text/html"

    def apply(self, page: str) -> bytes:
        """Re-encode a UTF-8 page, rewriting its <meta> declaration to match.

        Characters the legacy codec lacks become numeric character references,
        which is what real converters and browsers emit.
        """
        if "meta" not in self.declared:
            meta = ""
        elif self.meta_style == "charset":
            meta = f'<meta charset="{self.label}">'
        else:
            meta = f'<meta http-equiv="Content-Type" content="text/html; charset={self.label}">'
        page, count = META_HTTP_EQUIV.subn(meta, page, count=1)
        assert count == 1, "page without the expected UTF-8 <meta>"
        return page.encode(self.codec, errors="xmlcharrefreplace")


UTF8 = Encoding("utf-8", "utf-8", "http+meta")
# Decoders disagree on a few code points of these legacy codecs (WHATWG's
# Shift_JIS is cp932, its Big5 is Big5-HKSCS); expected sentences must decode
# the same under each reading.
SIBLING_CODECS = {"gb18030": ("gb18030",), "gbk": ("gbk", "gb18030"),
                  "big5": ("big5", "cp950", "big5hkscs"), "shift_jis": ("shift_jis", "cp932")}


def zh_cn_encoding(url: str, page: str) -> Encoding:
    """Spread zh-CN pages over GB18030/GBK with the charset in each possible place.

    Undeclared pages are only chosen when they carry enough Chinese text for
    statistical detection to have a fair chance, as on the real web.
    """
    cjk = sum(1 for ch in page if "\u4e00" <= ch <= "\u9fff")
    choice = stable_int("enc" + url) % 6
    if choice == 0:
        return Encoding("gb18030", "GB18030", "http")
    if choice == 1:
        return Encoding("gbk", "gbk", "meta", meta_style="charset")
    if choice == 2 and cjk >= 400:
        return Encoding("gb18030", "GB18030", "none")
    if choice == 3:
        return Encoding("gbk", "GBK", "http+meta")
    return UTF8


def locale_encoding(locale: str, url: str, page: str, position: int) -> Encoding:
    """Chinese and Japanese pages in their legacy codecs, the rest as shipped (UTF-8).

    Big5 and Shift_JIS pages alternate the declaration between the HTTP header
    and the page's <meta>; they are never undeclared, since telling Big5 from
    GBK by statistics alone is a coin toss on short pages.
    """
    if locale == "zh-cn":
        return zh_cn_encoding(url, page)
    if locale == "zh-tw":
        return Encoding("big5", "Big5", ("http", "meta")[position % 2])
    if locale == "ja":
        return Encoding("shift_jis", "Shift_JIS", ("http", "meta")[position % 2])
    return UTF8


def distinctive_sentence(page: str, codec: str) -> str | None:
    """The longest run of paragraph text that must survive decoding and extraction verbatim.

    In legacy-codec pages it must be mostly non-ASCII (translations leave some
    English behind, which would prove nothing about decoding). Taken from between tags (so it is contiguous in the HTML), without
    entities, line breaks or doubled spaces (extractors may collapse those),
    and made only of characters the codec encodes and every common decoder of
    that codec reads back the same way.
    """
    best = None
    for inner in re.findall(r'<(?:p|div class="para")(?:\s[^>]*)?>(.*?)</(?:p|div)>', page, re.S):
        for run in re.split(r"<[^>]+>", inner):
            run = run.strip(" \t\u3000「」『』。，、：:;,.-([")
            native = sum(ch.isalpha() and (codec == "utf-8" or not ch.isascii()) for ch in run)
            if len(run) < 15 or native < 10:
                continue
            if "&" in run or "\n" in run or "  " in run or "\t" in run:
                continue
            try:
                encoded = run.encode(codec)
            except UnicodeEncodeError:
                continue
            if all(encoded.decode(c, errors="replace") == run for c in SIBLING_CODECS.get(codec, (codec,))):
                if best is None or len(run) > len(best):
                    best = run
    return best


# --------------------------------------------------------------------------- writing

# --------------------------------------------------------------------------- the plan

@dataclass
class Plan:
    """What goes into each dump, and the records tests will check after decoding."""

    fetches: dict[str, list[Fetch]] = field(default_factory=lambda: {d.name: [] for d in DUMPS})
    expected: list[dict] = field(default_factory=list)
    encodings: dict[str, int] = field(default_factory=dict)

    def add(self, dump: Dump, url: str, page: str, enc: Encoding) -> None:
        self.fetches[dump.name].append(Fetch(url, 200, enc.content_type(), enc.apply(page),
                                             charset_detected=enc.label.upper()))
        key = f"{enc.codec}/{enc.declared}"
        self.encodings[key] = self.encodings.get(key, 0) + 1

    def expect(self, dump: Dump, url: str, page: str, enc: Encoding, per_kind: int = 2) -> None:
        """Record a check for the first few pages of each encoding/declaration pair."""
        kind = (enc.codec, enc.declared)
        if sum((e["encoding"], e["declared"]) == kind for e in self.expected) >= per_kind:
            return
        if any(e["url"] == url for e in self.expected):
            return
        sentence = distinctive_sentence(page, enc.codec)
        if sentence:
            self.expected.append({"url": url, "dump": dump.name, "encoding": enc.codec,
                                  "declared": enc.declared, "sentence": sentence})


def topic_dumps(topic: str) -> list[Dump]:
    """One dump for most topics, two for about a third (exact cross-dump duplicates)."""
    h = stable_int(topic)
    first, second = h % 3, (h // 3) % 3
    chosen = [first] if second == first or (h // 9) % 2 else [first, second]
    return [DUMPS[i] for i in sorted(chosen)]


def plan_libreoffice(plan: Plan, pkgs: dict[str, Path]) -> None:
    """en-US everywhere, en-GB (near-dup) and zh-CN for most topics, a few zh-TW/ja."""
    roots = {loc: pkgs[f"libreoffice-help-{loc}"] for loc in ("en-us", "en-gb", "zh-cn", "zh-tw", "ja")}
    topics = lo_topics(list(roots.values()))[:N_TOPICS]
    for i, topic in enumerate(topics):
        h = stable_int("locales" + topic)
        locales = ["en-us"] + (["en-gb"] if h % 2 == 0 else []) + (["zh-cn"] if h % 3 != 2 else [])
        if i < 8:
            locales.append("zh-tw")
        elif i < 16:
            locales.append("ja")
        for dump in topic_dumps(topic):
            for loc in locales:
                url, page = lo_page(roots[loc], topic)
                enc = locale_encoding(loc, url, page, i)
                plan.add(dump, url, page, enc)
                if enc is not UTF8:
                    plan.expect(dump, url, page, enc)


def plan_handbook(plan: Plan, root: Path) -> None:
    """English handbook sections, some in two dumps, a few also in French and German."""
    english = handbook_pages(root, "en-US", N_HANDBOOK)
    for i, (url, page) in enumerate(english):
        dumps = topic_dumps(url)
        for dump in dumps:
            plan.add(dump, url, page, UTF8)
        if i < 4:
            for locale in ("fr-FR", "de-DE"):
                name = url.rsplit("/", 1)[1]
                path = root / HANDBOOK_ROOT / locale / name
                if path.exists():
                    plan.add(dumps[0], f"https://debian-handbook.info/browse/{locale}/stable/{name}",
                             path.read_text("utf-8"), UTF8)
    first_url, first_page = english[0]
    plan.expect(topic_dumps(first_url)[0], first_url, first_page, UTF8, per_kind=1)


def plan_other_records(plan: Plan, pkgs: dict[str, Path]) -> None:
    """Per dump: a plain-text document, a 404, an image and a redirect (skip counts)."""
    pydoc = pkgs["python3.11-doc"] / PYDOC_ROOT / "_sources" / "library"
    common = pkgs["libreoffice-help-common"] / LO_ROOT / "media"
    pngs = sorted(p for p in common.rglob("*.png") if 1000 <= p.stat().st_size <= 6000)
    for i, dump in enumerate(DUMPS):
        module = ("json", "csv", "uuid")[i]
        text = (pydoc / f"{module}.rst.txt").read_bytes()
        png = pngs[stable_int(dump.name) % len(pngs)]
        target = f"https://help.libreoffice.org/7.4/en-US/text/swriter/main000{i}.html"
        plan.fetches[dump.name] += [
            Fetch(f"https://docs.python.org/3.11/_sources/library/{module}.rst.txt", 200,
                  "text/plain; charset=utf-8", text),
            Fetch(f"https://help.libreoffice.org/7.4/en-US/text/missing/page{i}.html", 404,
                  "text/html; charset=utf-8", not_found_page(f"/7.4/en-US/text/missing/page{i}.html")),
            Fetch(f"https://help.libreoffice.org/7.4/media/{png.relative_to(common.parent).as_posix()}",
                  200, "image/png", png.read_bytes()),
            Fetch(f"https://help.libreoffice.org/latest/en-US/text/swriter/main000{i}.html", 301,
                  "text/html; charset=iso-8859-1", moved_page(target), [("Location", target)]),
        ]


def not_found_page(path: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>\n"
            f"<h1>Not Found</h1>\n<p>The requested URL {path} was not found on this server.</p>\n"
            f"</body></html>\n").encode()


def moved_page(target: str) -> bytes:
    return (f'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
            f"<title>301 Moved Permanently</title>\n</head><body>\n<h1>Moved Permanently</h1>\n"
            f'<p>The document has moved <a href="{target}">here</a>.</p>\n</body></html>\n').encode()


# --------------------------------------------------------------------------- main

def write_dump(out: Path, dump: Dump, fetches: list[Fetch], info: dict[str, str],
               with_wet: bool) -> None:
    """Two WARC files per dump (one per segment), and optionally a WET beside the first."""
    by_segment: list[list[Fetch]] = [[] for _ in dump.segments]
    for fetch in fetches:
        by_segment[stable_int("segment" + fetch.url) % len(dump.segments)].append(fetch)
    for seg, seg_fetches in enumerate(by_segment):
        ids = write_warc(out / dump.warc_path(seg), dump, seg_fetches, info)
        if with_wet and seg == 0:
            write_wet(out / dump.warc_path(seg, "wet"), dump, seg_fetches, ids, info)


def write_wet(path: Path, dump: Dump, fetches: list[Fetch], ids: dict[str, str],
              info: dict[str, str], limit: int = 30) -> None:
    """A WET file with the plain text of the first `limit` UTF-8 HTML pages."""
    from resiliparse.extract.html2text import extract_plain_text

    pages = [f for f in fetches if f.status == 200 and f.content_type == "text/html; charset=utf-8"]
    pages.sort(key=lambda f: (dump.fetch_time(f.url), f.url))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        writer = CrawlWriter(out, dump, str(path), {**info, "description": "Plain text of pages"})
        for fetch in pages[:limit]:
            text = extract_plain_text(fetch.body.decode("utf-8"), main_content=False)
            writer.write_conversion(fetch.url, text, ids[fetch.url])


def write_readme(out: Path, versions: dict[str, str], plan: Plan) -> None:
    lines = [
        "# Sample crawl (generated by scripts/build_sample.py; do not edit by hand)",
        "",
        "Real pages from Debian documentation packages, written as Common Crawl style WARC",
        "files (warcinfo, then request/response/metadata per fetch), plus pywb's sample",
        f"WARC/ARC files (pywb {PYWB_VERSION}, byte for byte) in CC-MAIN-2024-18 and a WET",
        "file in CC-MAIN-2024-26.",
        "",
        "`expected.json` lists records whose decoded text must contain `sentence`;",
        "`encoding` is the codec of the bytes, `declared` where the charset is declared",
        "(`http` header, `meta` tag, both, or `none`).",
        "",
        "Source packages:",
        "",
        *[f"- {name} {version}" for name, version in sorted(versions.items())],
        f"- pywb {PYWB_VERSION} (PyPI wheel)",
        "",
        "Pages per encoding/declaration: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(plan.encodings.items())),
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def summarize(out: Path) -> int:
    """Log records per dump and bytes; return the total size."""
    from warcio.archiveiterator import ArchiveIterator

    total = 0
    for dump_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        counts: dict[str, int] = {}
        size = 0
        for path in sorted(dump_dir.rglob("*")):
            if not path.is_file():
                continue
            size += path.stat().st_size
            with path.open("rb") as f:
                for rec in ArchiveIterator(f, arc2warc=True):
                    counts[rec.rec_type] = counts.get(rec.rec_type, 0) + 1
        total += size
        detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        log.info("%s: %7.1f KiB  %s", dump_dir.name, size / 1024, detail)
    total += sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    log.info("total: %.1f KiB", total / 1024)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--cache", type=Path, default=debian.DEFAULT_CACHE,
                        help="where .deb files and the pywb wheel are downloaded and unpacked")
    args = parser.parse_args(argv)

    pkgs = debian.fetch_packages(SAMPLE_PACKAGES, args.cache)
    versions = {name: debian.version(name, args.cache) for name in SAMPLE_PACKAGES}
    plan = Plan()
    plan_libreoffice(plan, pkgs)
    plan_handbook(plan, pkgs["debian-handbook"])
    plan_other_records(plan, pkgs)
    info = warcinfo(versions)

    if args.output.exists():
        shutil.rmtree(args.output)
    args.output.mkdir(parents=True)
    for dump in DUMPS:
        write_dump(args.output, dump, plan.fetches[dump.name], info, with_wet=dump is DUMPS[2])
    pywb_dir = args.output / DUMPS[1].name / "segments" / DUMPS[1].segments[1] / "warc"
    for name, data in fetch_pywb_samples(args.cache).items():
        (pywb_dir / name).write_bytes(data)
    (args.output / "expected.json").write_text(
        json.dumps(plan.expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_readme(args.output, versions, plan)

    total = summarize(args.output)
    log.info("pages per encoding: %s", dict(sorted(plan.encodings.items())))
    if total > MAX_SAMPLE_BYTES:
        log.error("sample is %d bytes, over the %d budget", total, MAX_SAMPLE_BYTES)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
