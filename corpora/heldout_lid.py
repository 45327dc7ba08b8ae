"""A held-out language-ID set from Debian packages that nothing else in the project reads.

    python -m crawl2model.corpora.heldout_lid [--cache build/debian-docs] [--output build/heldout/lid.jsonl.gz]

The filter's LID code was developed on LibreOffice help in 8 languages
(`corpora/sources.py`, the fixtures in tests/data/filter/) and the shipped
models were trained on the Debian Handbook, the Debian Reference (en, zh-CN),
Python and PostgreSQL manuals; the demo sample reads LibreOffice help (en-US,
en-GB, zh-CN, zh-TW, ja). This set reads none of those packages: it takes
the Debian project history, the Developer's Reference, the Debian Reference
translations (de, fr, es, it, ja, pt, zh-TW), the New Maintainers' Guide, the
Debian FAQ translations, LibreOffice help in Korean and Brazilian Portuguese,
and classical Chinese poems and sayings from fortunes-zh (tang300, song100,
chinese): 10 languages.

Pages become text with the ingest extractor and are cut into documents of
varied length (a stable hash picks 300 to 4000 characters), so short and
long documents are both measured. Translations ship untranslated paragraphs
in English: a document is kept only when under 30% of its characters are in
lines that the English original also has. Each document is in the `dev` or
`test` split by a hash of its page: rules are tuned looking at `dev` only,
and `test` is the figure reported (`bench/lid.py`); the tests read a slice of
`test` (`--fixture`).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crawl2model.core.log import get_logger
from crawl2model.corpora import debian
from crawl2model.pipeline.extract import extract_text

log = get_logger("heldout-lid")

DEFAULT_OUTPUT = Path("build/heldout/lid.jsonl.gz")
CHUNK_TARGETS = (300, 600, 1000, 2000, 4000)   # characters per document, picked by a hash
MIN_CHARS = 150                                 # pieces shorter than this are dropped (page tails)
MAX_UNTRANSLATED = 0.3
MIN_POEM_HAN = 20
PER_SOURCE = 150                                # documents at most per source (a stable hash picks)
FIXTURE_PER_LANG, FIXTURE_MAX_CHARS = 30, 1500
MIN_VOCAB_WORDS = 5
ENGLISH_WORD_SHARE = 0.8
WORD = re.compile(r"[^\W\d_]+")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
HAN_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass(frozen=True)
class PageSource:
    name: str
    lang: str
    package: str
    pattern: str                       # glob of HTML pages under the unpacked package
    original: tuple[str, str] | None   # (package, glob) of the English original, for the untranslated check


HIST = "usr/share/doc/debian-history/docs"
DEVREF = "usr/share/developers-reference"
DEBREF = "usr/share/debian-reference"
FAQ = "usr/share/doc/debian/FAQ"
LO = "usr/share/libreoffice/help"
EN_HISTORY = ("debian-history", f"{HIST}/*.en.html")
EN_DEVREF = ("developers-reference", f"{DEVREF}/*.html")
EN_DEBREF = ("debian-reference-en", f"{DEBREF}/*.en.html")
EN_MAINT = ("maint-guide", "usr/share/doc/maint-guide/html/*.en.html")
EN_FAQ = ("debian-faq", f"{FAQ}/*.html")
EN_LO = ("libreoffice-help-en-us", f"{LO}/en-US/text/**/*.html")


def _translations() -> Iterator[PageSource]:
    for lang in ("de", "fr", "es", "it", "pt", "ru", "ja", "ko"):
        yield PageSource(f"history-{lang}", lang, "debian-history", f"{HIST}/*.{lang}.html", EN_HISTORY)
    for lang in ("de", "fr", "it", "ru", "ja"):
        yield PageSource(f"devref-{lang}", lang, f"developers-reference-{lang}", f"{DEVREF}/{lang}/*.html", EN_DEVREF)
    for lang, code in (("de", "de"), ("fr", "fr"), ("es", "es"), ("it", "it"), ("ja", "ja"), ("pt", "pt"),
                       ("zh", "zh-tw")):
        yield PageSource(f"debref-{code}", lang, f"debian-reference-{code}", f"{DEBREF}/*.{code}.html", EN_DEBREF)
    for lang, code in (("fr", "fr"), ("es", "es"), ("it", "it"), ("ru", "ru"), ("ja", "ja"), ("zh", "zh-tw")):
        yield PageSource(f"maint-guide-{code}", lang, f"maint-guide-{code}",
                         f"usr/share/doc/maint-guide-{code}/html/*.html", EN_MAINT)
    for lang in ("de", "fr", "it", "ru"):
        yield PageSource(f"faq-{lang}", lang, f"debian-faq-{lang}", f"{FAQ}/{lang}/*.html", EN_FAQ)
    for lang, code, folder in (("ko", "ko", "ko"), ("pt", "pt-br", "pt-BR")):
        yield PageSource(f"lo-help-{code}", lang, f"libreoffice-help-{code}", f"{LO}/{folder}/text/**/*.html", EN_LO)


PAGE_SOURCES: tuple[PageSource, ...] = (
    PageSource("history-en", "en", "debian-history", f"{HIST}/*.en.html", None),
    PageSource("devref-en", "en", "developers-reference", f"{DEVREF}/*.html", None),
    PageSource("maint-guide-en", "en", "maint-guide", "usr/share/doc/maint-guide/html/*.en.html", None),
    PageSource("faq-en", "en", "debian-faq", f"{FAQ}/*.html", None),
    *_translations(),
)
FORTUNES = ("tang300", "song100", "chinese")   # fortunes-zh collections: Tang and Song poems, sayings
FORTUNE_DIR = "usr/share/games/fortunes"


def _hash(key: str) -> int:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16)


def split_of(key: str) -> str:
    return "dev" if _hash("split:" + key) % 2 == 0 else "test"


def pieces(text: str, key: str, targets: tuple[int, ...] = CHUNK_TARGETS, min_chars: int = MIN_CHARS) -> list[str]:
    """Consecutive lines cut into documents of a length (one of `targets`) that the hash of
    `key` and the piece number pick; pieces shorter than `min_chars` are dropped."""
    out: list[str] = []
    cur: list[str] = []
    size = 0
    target = targets[_hash(f"{key}#0") % len(targets)]
    for line in text.split("\n"):
        cur.append(line)
        size += len(line) + 1
        if size >= target:
            out.append("\n".join(cur).strip())
            cur, size = [], 0
            target = targets[_hash(f"{key}#{len(out)}") % len(targets)]
    if cur:
        out.append("\n".join(cur).strip())
    return [p for p in out if len(p) >= min_chars]


def _words(line: str) -> list[str]:
    return WORD.findall(line.lower())


def untranslated(line: str, english: English) -> bool:
    """A line the English original has word for word, or whose words are nearly all English words
    (a paragraph left untranslated around a translated cross-reference)."""
    if line in english.lines:
        return True
    ws = _words(line)
    return len(ws) >= MIN_VOCAB_WORDS and sum(w in english.words for w in ws) >= ENGLISH_WORD_SHARE * len(ws)


def untranslated_share(text: str, english: English) -> float:
    """Share of the characters of `text` in untranslated lines."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    total = sum(map(len, lines))
    return sum(len(ln) for ln in lines if untranslated(ln, english)) / max(total, 1)


def _html_text(path: Path) -> str:
    return extract_text(path.read_bytes().decode("utf-8", "replace"))


@dataclass(frozen=True)
class English:
    """The lines and words of an English original."""

    lines: frozenset[str]
    words: frozenset[str]


def _english(original: tuple[str, str], cache: str, memo: dict) -> English:
    if original not in memo:
        root = debian.fetch(original[0], cache)
        lines = frozenset(ln.strip() for p in debian.files(root, original[1]) for ln in _html_text(p).split("\n")
                          if ln.strip())
        memo[original] = English(lines, frozenset(w for ln in lines for w in _words(ln)))
    return memo[original]


def page_documents(source: PageSource, cache: str, memo: dict) -> list[dict]:
    root = debian.fetch(source.package, cache)
    english = _english(source.original, cache, memo) if source.original else None
    docs, dropped = [], 0
    for path in debian.files(root, source.pattern):
        rel = os.path.relpath(path, root)
        for k, text in enumerate(pieces(_html_text(path), f"{source.package}/{rel}")):
            if english and untranslated_share(text, english) >= MAX_UNTRANSLATED:
                dropped += 1
                continue
            docs.append({"id": f"{source.package}/{rel}#{k}", "lang": source.lang, "source": source.name,
                         "split": split_of(f"{source.package}/{rel}"), "text": text})
    log.info("%-18s %5d documents (%d untranslated dropped)", source.name, len(docs), dropped)
    return docs


def fortune_documents(cache: str) -> list[dict]:
    """One poem or saying per document: the short classical Chinese text that lid.176 calls Japanese."""
    root = debian.fetch("fortunes-zh", cache)
    docs = []
    for name in FORTUNES:
        text = ANSI.sub("", (root / FORTUNE_DIR / name).read_text("utf-8"))
        n = 0
        for k, entry in enumerate(text.split("\n%\n")):
            entry = entry.strip()
            if len(HAN_CHAR.findall(entry)) >= MIN_POEM_HAN:
                key = f"fortunes-zh/{name}#{k}"
                docs.append({"id": key, "lang": "zh", "source": f"fortunes-{name}", "split": split_of(key),
                             "text": entry})
                n += 1
        log.info("%-18s %5d documents", f"fortunes-{name}", n)
    return docs


def cap(docs: list[dict], per_source: int) -> list[dict]:
    """At most `per_source` documents of each source, picked by a hash of their id, in id order."""
    by_source: dict[str, list[dict]] = {}
    for d in docs:
        by_source.setdefault(d["source"], []).append(d)
    out = []
    for group in by_source.values():
        picked = sorted(group, key=lambda d: _hash(d["id"]))[:per_source]
        out += sorted(picked, key=lambda d: d["id"])
    return out


def build(cache: str, per_source: int = PER_SOURCE) -> list[dict]:
    memo: dict = {}
    docs = [d for s in PAGE_SOURCES for d in page_documents(s, cache, memo)] + fortune_documents(cache)
    return cap(docs, per_source)


def write_jsonl_gz(rows: list[dict], path: str | Path) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode())


def read_jsonl_gz(path: str | Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def fixture(rows: list[dict], per_lang: int, max_chars: int) -> list[dict]:
    """A small committed slice for the tests: `per_lang` documents of each language from the test
    split, every source represented, each cut to `max_chars`."""
    out = []
    for lang in sorted({r["lang"] for r in rows}):
        mine = sorted((r for r in rows if r["lang"] == lang and r["split"] == "test"), key=lambda r: _hash(r["id"]))
        by_source: dict[str, list[dict]] = {}
        for r in mine:
            by_source.setdefault(r["source"], []).append(r)
        picked: list[dict] = []
        while len(picked) < per_lang and any(by_source.values()):
            for group in by_source.values():
                if group and len(picked) < per_lang:
                    picked.append(group.pop(0))
        out += [{**r, "text": r["text"][:max_chars]} for r in sorted(picked, key=lambda r: r["id"])]
    return out


def evaluate(rows: list[dict], predicted: list[str]) -> dict:
    """Accuracy overall, per language and per source, and the confusion counts (truth -> predicted)."""
    def acc(idx: list[int]) -> dict:
        ok = sum(rows[i]["lang"] == predicted[i] for i in idx)
        return {"documents": len(idx), "correct": ok, "accuracy": round(ok / max(len(idx), 1), 4)}

    langs = sorted({r["lang"] for r in rows})
    confusion: dict[str, dict[str, int]] = {lang: {} for lang in langs}
    for r, p in zip(rows, predicted):
        confusion[r["lang"]][p or "?"] = confusion[r["lang"]].get(p or "?", 0) + 1
    return {"overall": acc(list(range(len(rows)))),
            "per_language": {lang: acc([i for i, r in enumerate(rows) if r["lang"] == lang]) for lang in langs},
            "per_source": {s: acc([i for i, r in enumerate(rows) if r["source"] == s])
                           for s in sorted({r["source"] for r in rows})},
            "confusion": confusion}


def confusion_table(result: dict) -> str:
    """The confusion counts as a text table: a row per true language, a column per predicted one."""
    conf = result["confusion"]
    cols = sorted({p for row in conf.values() for p in row}, key=lambda p: (p not in conf, p))
    lines = ["truth\\got " + "".join(f"{c:>6}" for c in cols) + "   accuracy"]
    for lang, row in conf.items():
        lines.append(f"{lang:<10}" + "".join(f"{row.get(c, 0) or '.':>6}" for c in cols)
                     + f"   {result['per_language'][lang]['accuracy']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default=str(debian.DEFAULT_CACHE), help="downloaded and unpacked Debian packages")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT))
    p.add_argument("--per-source", type=int, default=PER_SOURCE)
    p.add_argument("--fixture", help="also write the tests' slice (tests/data/filter/lid_heldout.jsonl.gz) here")
    args = p.parse_args(argv)
    rows = build(args.cache, args.per_source)
    write_jsonl_gz(rows, args.output)
    if args.fixture:
        write_jsonl_gz(fixture(rows, FIXTURE_PER_LANG, FIXTURE_MAX_CHARS), args.fixture)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["lang"]] = counts.get(r["lang"], 0) + 1
    log.info("%d documents -> %s: %s", len(rows), args.output, dict(sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
