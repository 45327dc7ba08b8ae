"""A held-out prose-vs-junk set from Debian packages that the shipped models and the rules never saw.

    python -m crawl2model.corpora.heldout_quality [--cache build/debian-docs] [--output build/heldout/quality.jsonl.gz]

The quality classifier and KenLM models were trained, and the rule thresholds
set, on the Python and PostgreSQL manuals, the Debian Handbook, the Debian
Reference (en, zh-CN), javadoc and LibreOffice help (`corpora/sources.py`).
This set reads other packages (the same ones as `heldout_lid`, plus three
books and handbooks: the Advanced Bash-Scripting Guide, the Debian Kernel
Handbook and the Securing Debian Manual):

- clean (good prose): chapters of the Debian project history, the
  Developer's Reference, the Debian FAQ, the New Maintainers' Guide, the
  three books (English; the Bash guide without its program listings, which
  are code, not prose); the Debian Reference zh-TW, the New Maintainers'
  Guide zh-TW and the Securing Debian Manual zh-CN (Chinese), cut into
  documents of 1000 to 4000 characters;
- junk, by kind: `navigation` (the packages' index and table-of-contents
  pages, the Sphinx search page), `links` (the links of a prose page as a
  list of anchor text and address, what a link farm or a sitemap page is),
  `oneliner` (English fortunes of at most two lines), `spam` (keyword spam,
  *generated*: terms of the Developer's Reference's search index repeated in
  the patterns of SEO pages; no package ships spam).

Each document is in the `dev` or `test` split by a hash of its page, as in
`heldout_lid`; `bench/quality.py` reports both; the tests read a slice of
`test` (`--fixture`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa

from crawl2model.core.log import get_logger
from crawl2model.corpora import debian
from crawl2model.corpora.heldout_lid import ANSI, _hash, pieces, split_of, write_jsonl_gz
from crawl2model.corpora.shipped_models import MIN_CJK_SHARE, cjk_share
from crawl2model.pipeline.extract import extract_text
from crawl2model.pipeline.filters import rules
from crawl2model.pipeline.filters.filter_stage import signal_batch
from crawl2model.pipeline.filters.models import FilterModels

log = get_logger("heldout-quality")

DEFAULT_OUTPUT = Path("build/heldout/quality.jsonl.gz")
PROSE_TARGETS = (1000, 2000, 4000)
MIN_PROSE_CHARS = 800
MIN_LINKS = 8
PER_SOURCE = 120
ONELINER_MAX_LINES, ONELINER_MAX_CHARS = 2, 200
N_SPAM = 80
FIXTURE_PER_SOURCE, FIXTURE_MAX_CHARS = 15, 6000
PRE = re.compile(r"<pre\b.*?</pre\s*>", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Pages:
    name: str
    lang: str
    package: str
    pattern: str
    navigation: str      # regex on the page's file name: its index / table-of-contents pages
    strip_code: bool = False   # a book of program listings: its prose is the text around them


DEVREF = "usr/share/developers-reference"
PAGES: tuple[Pages, ...] = (
    Pages("history-en", "en", "debian-history", "usr/share/doc/debian-history/docs/*.en.html", r"^index\."),
    Pages("devref-en", "en", "developers-reference", f"{DEVREF}/*.html", r"^(index|search)\.html$"),
    Pages("faq-en", "en", "debian-faq", "usr/share/doc/debian/FAQ/*.html", r"^index\."),
    Pages("maint-guide-en", "en", "maint-guide", "usr/share/doc/maint-guide/html/*.en.html", r"^index\."),
    Pages("abs-guide", "en", "abs-guide", "usr/share/doc/abs-guide/html/*.html",
          r"^(index|part\d|xrefindex|biblio|refcards|asciitable|revisionhistory|mirrorsites|todolist)\.html$",
          strip_code=True),
    Pages("kernel-handbook", "en", "debian-kernel-handbook",
          "usr/share/doc/debian-kernel-handbook/kernel-handbook.html/*.html", r"^index\.html$"),
    Pages("harden-doc-en", "en", "harden-doc", "usr/share/doc/harden-doc/html/en-US/*.html", r"^index\.html$"),
    Pages("debref-zh-tw", "zh", "debian-reference-zh-tw", "usr/share/debian-reference/*.zh-tw.html", r"^index\."),
    Pages("maint-guide-zh-tw", "zh", "maint-guide-zh-tw", "usr/share/doc/maint-guide-zh-tw/html/*.html",
          r"^index\."),
    Pages("harden-doc-zh", "zh", "harden-doc", "usr/share/doc/harden-doc/html/zh-CN/*.html", r"^index\.html$"),
)
FORTUNES = ("fortunes-min", "usr/share/games/fortunes", ("fortunes", "literature", "riddles"))
SPAM_PATTERNS = (
    "best {a} {b} cheap {a} online", "{a} {a} {a} free download", "buy {a} {b} now {a} {b} discount",
    "top {a} deals {b} {a} sale", "{b} {a} {b} {a} {b} {a}", "cheap {a} cheap {b} cheap {a} {b}",
    "{a} review {a} price {a} coupon", "free {b} free {a} free {a} {b} online",
)


class _Links(HTMLParser):
    """(anchor text, href) of the page's links with an address (not in-page anchors)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self._href, self._text = (href, []) if href and not href.startswith("#") else (None, [])

    def handle_data(self, data):
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            text = " ".join("".join(self._text).split())
            if text:
                self.links.append((text, self._href))
            self._href = None


def page_documents(src: Pages, cache: str) -> list[dict]:
    root = debian.fetch(src.package, cache)
    nav = re.compile(src.navigation)
    docs = []
    for path in debian.files(root, src.pattern):
        rel = os.path.relpath(path, root)
        key = f"{src.package}/{rel}"
        html = path.read_bytes().decode("utf-8", "replace")
        text = extract_text(PRE.sub("", html) if src.strip_code and not nav.search(path.name) else html)
        base = {"lang": src.lang, "split": split_of(key), "path": key}
        if nav.search(path.name):
            docs.append({**base, "id": key, "kind": "junk", "junk": "navigation", "source": f"{src.name}-nav",
                         "text": text})
            continue
        for k, piece in enumerate(pieces(text, key, PROSE_TARGETS, MIN_PROSE_CHARS)):
            if src.lang == "zh" and cjk_share(piece) < MIN_CJK_SHARE:
                continue   # an untranslated paragraph is not Chinese prose
            docs.append({**base, "id": f"{key}#{k}", "kind": "clean", "junk": None, "source": src.name,
                         "text": piece})
        if src.lang == "en":
            parser = _Links()
            parser.feed(html)
            if len(parser.links) >= MIN_LINKS:
                docs.append({**base, "id": f"{key}#links", "kind": "junk", "junk": "links", "source": "link-lists",
                             "text": "\n".join(f"{t} - {h}" for t, h in parser.links)})
    return docs


def oneliners(cache: str) -> list[dict]:
    package, folder, names = FORTUNES
    root = debian.fetch(package, cache)
    docs = []
    for name in names:
        for k, entry in enumerate(ANSI.sub("", (root / folder / name).read_text("utf-8", "replace")).split("\n%\n")):
            entry = entry.strip()
            if entry and entry.count("\n") < ONELINER_MAX_LINES and len(entry) <= ONELINER_MAX_CHARS:
                key = f"{package}/{name}#{k}"
                docs.append({"id": key, "lang": "en", "split": split_of(key), "path": key, "kind": "junk",
                             "junk": "oneliner", "source": "fortunes-oneliners", "text": entry})
    return docs


def keyword_spam(cache: str) -> list[dict]:
    """Generated SEO-style pages: real terms (the Developer's Reference's search index) in spam patterns."""
    root = debian.fetch("developers-reference", cache)
    index = (root / DEVREF / "searchindex.js").read_text("utf-8")
    terms = sorted(json.loads(index[index.index("(") + 1:index.rindex(")")])["terms"])
    terms = [t for t in terms if t.isalpha() and len(t) >= 4]
    docs = []
    for k in range(N_SPAM):
        h = _hash(f"spam#{k}")
        pick = [terms[(h >> (8 * j)) % len(terms)] for j in range(4)]
        lines = []
        for i in range(12 + h % 20):
            a, b = pick[i % 2], pick[2 + (i // 2) % 2]
            lines.append(SPAM_PATTERNS[(h + i) % len(SPAM_PATTERNS)].format(a=a, b=b))
        key = f"spam#{k}"
        docs.append({"id": key, "lang": "en", "split": split_of(key), "path": key, "kind": "junk", "junk": "spam",
                     "source": "keyword-spam", "text": "\n".join(lines)})
    return docs


def cap(docs: list[dict], per_source: int) -> list[dict]:
    by_source: dict[str, list[dict]] = {}
    for d in docs:
        by_source.setdefault(d["source"], []).append(d)
    return [d for group in by_source.values()
            for d in sorted(sorted(group, key=lambda d: _hash(d["id"]))[:per_source], key=lambda d: d["id"])]


def build(cache: str, per_source: int = PER_SOURCE) -> list[dict]:
    docs = [d for src in PAGES for d in page_documents(src, cache)] + oneliners(cache) + keyword_spam(cache)
    rows = cap(docs, per_source)
    for source in sorted({r["source"] for r in rows}):
        log.info("%-22s %4d", source, sum(r["source"] == source for r in rows))
    return rows


def fixture(rows: list[dict], per_source: int = FIXTURE_PER_SOURCE) -> list[dict]:
    """The tests' slice: up to `per_source` documents of each source from the test split, whole."""
    by_source: dict[str, list[dict]] = {}
    for r in sorted((r for r in rows if r["split"] == "test"), key=lambda r: _hash(r["id"])):
        if len(r["text"]) <= FIXTURE_MAX_CHARS:
            by_source.setdefault(r["source"], []).append(r)
    return [r for group in by_source.values() for r in sorted(group[:per_source], key=lambda r: r["id"])]


def judge(rows: list[dict], models: FilterModels) -> pa.RecordBatch:
    """Every signal and the default rule set's decision for `rows`, as the filter job makes them
    (perplexity percentiles from these documents, per detected language)."""
    batch = pa.RecordBatch.from_pydict({"text": [r["text"] for r in rows]})
    signals = signal_batch(batch, models)
    langs = np.array(signals.column("lang").to_pylist(), dtype=object)
    ppl = signals.column("perplexity").to_numpy(zero_copy_only=False)
    quantiles = {}
    for lang in set(langs):
        v = ppl[(langs == lang) & ~np.isnan(ppl)]
        if len(v):
            quantiles[lang] = list(np.quantile(v, rules.QUANTILES))
    return rules.decide(signals, rules.RuleSet(), quantiles)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default=str(debian.DEFAULT_CACHE), help="downloaded and unpacked Debian packages")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    p.add_argument("--per-source", type=int, default=PER_SOURCE)
    p.add_argument("--fixture", help="also write the tests' slice (tests/data/filter/quality_heldout.jsonl.gz) here")
    args = p.parse_args(argv)
    rows = build(args.cache, args.per_source)
    write_jsonl_gz(rows, args.output)
    if args.fixture:
        write_jsonl_gz(fixture(rows), args.fixture)
    log.info("%d documents -> %s", len(rows), args.output)
    return 0

if __name__ == "__main__":
    sys.exit(main())
