"""The real text the shipped models are trained on and the filter tests are measured on.

Everything comes from Debian documentation packages (fetched by
`corpora.debian`: downloaded and unpacked, never installed), and each HTML
page becomes text with the ingest stage's extractor, so models see text
shaped like the document table. Pages are split by a hash of their
path: `EVAL_PERCENT` of them are held out, never trained on, and become the
test fixtures.

- clean: prose (tutorials, handbooks, references written as sentences);
- junk: what a crawler also fetches and a pretraining set should not keep:
  index and navigation pages, javadoc boilerplate, redirect stubs, tiny pages;
- lid: the same help pages and handbook chapters in nine languages.

Honest limits: "junk" is junk found in documentation packages, not a random
sample of the web, so the classifier learns "documentation prose vs
generated/navigational pages" rather than the full variety of web text.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from crawl2model.core.log import progress
from crawl2model.corpora import debian
from crawl2model.pipeline.extract import extract_text

EVAL_PERCENT = 25
HB = "usr/share/doc/debian-handbook/html"
PY = "usr/share/doc/python3.11/html"
PG = "usr/share/doc/postgresql-doc-15/html"
JDK = "usr/share/doc/openjdk-17-jre-headless/api"
LO = "usr/share/libreoffice/help"


@dataclass(frozen=True)
class Source:
    name: str
    kind: str              # clean | junk | lid
    lang: str
    package: str
    pattern: str           # glob under the unpacked package
    path_regex: str = ""   # further selection by path inside the package
    html_regex: str = ""   # further selection by the page's HTML (redirect stubs)
    max_chars: int = 0     # keep only pages whose text is at most this long (tiny pages)
    limit: int = 0         # at most this many pages per split (javadoc would swamp the rest)
    eval_only: bool = False  # nothing to learn from (redirect stubs, tiny pages)


REFRESH = r'http-equiv="?refresh'
SOURCES: tuple[Source, ...] = (
    Source("python-prose", "clean", "en", "python3.11-doc", f"{PY}/*/*.html",
           r"/(tutorial|howto|faq|whatsnew|reference|extending|using|installing|distributing)/(?!index)"),
    Source("postgresql-prose", "clean", "en", "postgresql-doc-15", f"{PG}/*.html",
           r"/(tutorial-|intro-|history|notation|datatype-|ddl-|dml-|queries-|mvcc|indexes-|performance-tips|"
           r"backup-|high-availability|monitoring-|wal-|runtime-config-|auth-|client-authentication|"
           r"plpgsql-|textsearch-|functions-)"),
    Source("handbook-en", "clean", "en", "debian-handbook", f"{HB}/en-US/sect.*.html"),
    Source("reference-en", "clean", "en", "debian-reference-en", "usr/share/doc/debian-reference-en/docs/*.html"),
    Source("handbook-zh", "clean", "zh", "debian-handbook", f"{HB}/zh-CN/sect.*.html"),
    Source("reference-zh", "clean", "zh", "debian-reference-zh-cn",
           "usr/share/doc/debian-reference-zh-cn/docs/*.html"),
    Source("maint-guide-zh", "clean", "zh", "maint-guide-zh-cn", "usr/share/doc/maint-guide-zh-cn/html/*.html"),
    Source("install-guide-zh", "clean", "zh", "installation-guide-amd64",
           "usr/share/doc/installation-guide-amd64/zh_CN/*.html"),
    Source("faq-zh", "clean", "zh", "debian-faq-zh-cn", "usr/share/doc/debian/FAQ/zh-cn/*.html"),
    Source("python-index", "junk", "en", "python3.11-doc", f"{PY}/*.html",
           r"/(genindex.*|py-modindex|contents|search)\.html$"),
    Source("python-toc", "junk", "en", "python3.11-doc", f"{PY}/*/index.html"),
    Source("postgresql-index", "junk", "en", "postgresql-doc-15", f"{PG}/*.html",
           r"/(bookindex|reference|sql-commands|reference-client|reference-server|appendixes|internals|"
           r"server-programming|client-interfaces|admin|sql|index|tutorial|bki|catalogs|views)\.html$"),
    Source("handbook-toc-en", "junk", "en", "debian-handbook", f"{HB}/en-US/*.html", r"/[a-z-]+\.html$"),
    Source("handbook-toc-zh", "junk", "zh", "debian-handbook", f"{HB}/zh-CN/*.html", r"/[a-z-]+\.html$"),
    Source("javadoc", "junk", "en", "openjdk-17-doc", f"{JDK}/**/*.html",
           r"/(class-use/|package-summary|package-tree|package-use|module-summary|index-files/|"
           r"allclasses|allpackages|constant-values|deprecated-list|overview-tree|serialized-form)", limit=400),
    Source("redirects", "junk", "en", "openjdk-17-doc", "usr/share/doc/**/*.html", html_regex=REFRESH,
           eval_only=True),
    # Tiny pages are for evaluation only: as training negatives they teach the classifier that
    # LibreOffice's vocabulary is junk, and the word-count rule rejects them anyway.
    Source("tiny-en", "junk", "en", "libreoffice-help-en-us", f"{LO}/en-US/text/*/*/*.html", max_chars=250,
           eval_only=True, limit=40),
    Source("tiny-zh", "junk", "zh", "libreoffice-help-zh-cn", f"{LO}/zh-CN/text/*/*/*.html", max_chars=100,
           eval_only=True, limit=40),
    *(Source(f"lid-{lang}", "lid", lang, f"libreoffice-help-{pkg}", f"{LO}/{d}/text/*/*.html")
      for lang, pkg, d in (("en", "en-us", "en-US"), ("de", "de", "de"), ("fr", "fr", "fr"), ("es", "es", "es"),
                           ("it", "it", "it"), ("ru", "ru", "ru"), ("ja", "ja", "ja"), ("zh", "zh-cn", "zh-CN"))),
)


def is_eval(relpath: str) -> bool:
    """Held out for evaluation: a stable hash of the page's path inside its package."""
    return int(hashlib.sha1(relpath.encode()).hexdigest(), 16) % 100 < EVAL_PERCENT


def pages(source: Source, cache: Path | str, split: str) -> Iterator[tuple[str, str]]:
    """(path inside the package, extracted text) of the pages of one split ("train" or "eval").

    A limited source takes its pages in the order of a hash of their path inside
    the package, so the pick is the same whichever cache folder holds it."""
    root = debian.fetch(source.package, cache)
    rels = [os.path.relpath(p, root) for p in debian.files(root, source.pattern)]
    if source.limit:
        rels.sort(key=lambda rel: hashlib.sha1(rel.encode()).hexdigest())
    path_re = re.compile(source.path_regex) if source.path_regex else None
    html_re = re.compile(source.html_regex) if source.html_regex else None
    n = 0
    for rel in progress(rels, len(rels), source.name, "page"):
        in_eval = source.eval_only or is_eval(rel)
        if in_eval != (split == "eval") or (path_re and not path_re.search("/" + rel)):
            continue
        html = (root / rel).read_bytes().decode("utf-8", "replace")
        if html_re and not html_re.search(html):
            continue
        text = extract_text(html)
        if source.max_chars and len(text) > source.max_chars:
            continue
        yield rel, text
        n += 1
        if source.limit and n >= source.limit:
            return
