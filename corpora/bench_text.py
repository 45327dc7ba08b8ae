"""Build the tokenizer benchmark corpus: real English, Chinese and code from Debian packages.

    python bench/build_text_corpus.py --out runs/bench/text --cache build/debian-docs

Fetches the packages with `corpora.debian` (downloaded and unpacked, never
installed), turns HTML/XML/man pages into plain text and concatenates
each language into one file. Every source file goes wholly to train or to
held-out (2%, by a hash of its path), so held-out bytes/token measures text the
tokenizers never saw. Output: OUT/{train,heldout}/{en,zh,code}.txt and
OUT/manifest.json (bytes per part and source package).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import json
import re
import sys
from pathlib import Path
from typing import Iterator

from crawl2model.core.log import get_logger, progress
from crawl2model.corpora import debian

# (language, package, path prefixes inside the package to read)
SOURCES: list[tuple[str, str, tuple[str, ...]]] = [
    ("en", "python3.11-doc", ("usr/share/doc/python3.11/html",)),
    ("en", "debian-reference-en", ("usr/share/doc/debian-reference-en/docs",)),
    ("en", "linux-doc-6.1", ("usr/share/doc/linux-doc-6.1",)),
    ("en", "perl-doc", ("usr/share/perl",)),
    ("en", "postgresql-doc-15", ("usr/share/doc/postgresql-doc-15",)),
    ("en", "libreoffice-help-en-us", ("usr/share/libreoffice/help/en-US",)),
    ("en", "debian-handbook", ("usr/share/doc/debian-handbook/html/en-US",)),
    ("en", "gnome-user-docs", ("usr/share/help/C",)),
    ("en", "manpages", ("usr/share/man",)),
    ("en", "manpages-dev", ("usr/share/man",)),
    ("en", "gimp-help-en", ("usr/share/gimp/2.0/help/en",)),
    ("zh", "libreoffice-help-zh-cn", ("usr/share/libreoffice/help/zh-CN",)),
    ("zh", "libreoffice-help-zh-tw", ("usr/share/libreoffice/help/zh-TW",)),
    ("zh", "manpages-zh", ("usr/share/man/zh_CN", "usr/share/man/zh_TW")),
    ("zh", "debian-reference-zh-cn", ("usr/share/doc/debian-reference-zh-cn/docs",)),
    ("zh", "debian-reference-zh-tw", ("usr/share/doc/debian-reference-zh-tw/docs",)),
    ("zh", "debian-handbook", ("usr/share/doc/debian-handbook/html/zh-CN", "usr/share/doc/debian-handbook/html/zh-TW")),
    ("zh", "gnome-user-docs", ("usr/share/help/zh_CN", "usr/share/help/zh_TW", "usr/share/help/zh_HK")),
    ("zh", "fortunes-zh", ("usr/share/games/fortunes",)),
    ("zh", "installation-guide-amd64", ("usr/share/doc/installation-guide-amd64/zh_CN",
                                        "usr/share/doc/installation-guide-amd64/zh_TW")),
    ("zh", "debian-faq-zh-cn", ("usr/share/doc/debian",)),
    ("zh", "maint-guide-zh-cn", ("usr/share/doc/maint-guide-zh-cn",)),
    ("zh", "maint-guide-zh-tw", ("usr/share/doc/maint-guide-zh-tw",)),
    ("zh", "debmake-doc", ("usr/share/doc/debmake-doc",)),
    ("zh", "texlive-lang-chinese", ("usr/share/texlive/texmf-dist/doc", "usr/share/doc/texlive-doc")),
    ("zh", "gimp-help-zh-cn", ("usr/share/gimp/2.0/help/zh_CN",)),
    ("code", "libpython3.11-stdlib", ("usr/lib/python3.11",)),
    ("code", "golang-1.19-src", ("usr/share/go-1.19/src",)),
    ("code", "rust-src", ("usr/lib/rustlib/src/rust/library",)),
]
CODE_SUFFIXES = (".py", ".go", ".rs", ".c", ".h", ".s", ".sh", ".toml", ".md")
DOC_SUFFIXES = (".html", ".htm", ".xhtml", ".page", ".xml", ".txt")
HELDOUT_PERCENT = 2
MIN_CHARS = 200
# Chinese packages fall back to English for untranslated pages; those are not Chinese text.
MIN_CJK_SHARE = 0.2

log = get_logger("bench-text")


def cjk_share(text: str) -> float:
    letters = [c for c in text if not c.isspace()]
    return sum("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in letters) / max(len(letters), 1)


class _TextExtractor(html.parser.HTMLParser):
    """Visible text of an HTML/XML page, one line per block."""

    SKIP = {"script", "style", "head", "nav"}
    BLOCK = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "pre", "br", "title", "section", "td", "dt", "dd"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = (re.sub(r"[ \t]+", " ", line).strip() for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if line)


def html_text(raw: str) -> str:
    p = _TextExtractor()
    p.feed(raw)
    p.close()
    return p.text()


def man_text(raw: str) -> str:
    """troff source -> text: macro names and font escapes dropped, their words kept."""
    out = []
    for line in raw.splitlines():
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith((".", "'")):
            line = line[1:].split(None, 1)[1] if len(line[1:].split(None, 1)) > 1 else ""
        line = re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&|^]|\\s[-+]?\d", "", line).replace("\\-", "-").replace("\\e", "\\")
        if line.strip():
            out.append(line)
    return "\n".join(out)


def read_source(path: Path, lang: str) -> str | None:
    name = path.name.lower()
    raw_bytes = path.read_bytes()
    if name.endswith(".gz"):
        try:
            raw_bytes = gzip.decompress(raw_bytes)
        except OSError:
            return None
        name = name[:-3]
    raw = raw_bytes.decode("utf-8", "replace")
    if "/man" in str(path) and re.search(r"\.\d\w*$", name):
        return man_text(raw)
    if lang == "code":
        return raw if name.endswith(CODE_SUFFIXES) else None
    if name.endswith((".html", ".htm", ".xhtml", ".page", ".xml")):
        return html_text(raw)
    if name.endswith((".txt", ".pod", ".rst", ".tex")) or ("/fortunes/" in str(path) and "." not in name):
        return raw
    return None


def documents(root: Path, prefixes: tuple[str, ...], lang: str) -> Iterator[tuple[str, str]]:
    for prefix in prefixes:
        base = root / prefix
        if not base.exists():
            log.warning("missing %s", base)
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
            text = read_source(path, lang)
            if text and len(text) >= MIN_CHARS and (lang != "zh" or cjk_share(text) >= MIN_CJK_SHARE):
                yield str(path.relative_to(root)), text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench/text")
    ap.add_argument("--cache", default=str(debian.DEFAULT_CACHE), help="downloaded and unpacked Debian packages")
    args = ap.parse_args(argv)
    out, cache = Path(args.out), Path(args.cache)
    for part in ("train", "heldout"):
        (out / part).mkdir(parents=True, exist_ok=True)
    handles = {(part, lang): open(out / part / f"{lang}.txt", "w", encoding="utf-8")
               for part in ("train", "heldout") for lang in ("en", "zh", "code")}
    manifest: dict[str, dict] = {}
    seen: set[str] = set()
    for lang, package, prefixes in progress(SOURCES, len(SOURCES), "packages", "pkg"):
        root = debian.fetch(package, cache)
        n_docs = n_bytes = 0
        for rel, text in documents(root, prefixes, lang):
            digest = hashlib.sha1(text.encode()).hexdigest()
            if digest in seen:  # the same page shipped twice (e.g. zh-CN fallback copies)
                continue
            seen.add(digest)
            part = "heldout" if int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 100 < HELDOUT_PERCENT else "train"
            handles[(part, lang)].write(text.rstrip("\n") + "\n\n")
            n_docs += 1
            n_bytes += len(text.encode())
        manifest[f"{lang}:{package}"] = {"documents": n_docs, "bytes": n_bytes}
        log.info("%4s %-28s %7d docs %8.1f MB", lang, package, n_docs, n_bytes / 1e6)
    for h in handles.values():
        h.close()
    sizes = {f"{part}/{lang}": (out / part / f"{lang}.txt").stat().st_size for part, lang in handles}
    (out / "manifest.json").write_text(json.dumps({"sources": manifest, "bytes": sizes}, indent=2))
    log.info("bytes per part: %s", json.dumps(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
