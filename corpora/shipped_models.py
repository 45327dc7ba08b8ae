"""Rebuild the shipped models and the filter's test fixtures from Debian packages.

    python -m crawl2model.corpora.shipped_models [--cache build/debian-docs] [--fixtures tests/data/filter]

Needs lmplz/build_binary (quality_models/build_kenlm.sh) and `apt-get download`
access for the packages in `corpora.sources.SOURCES`. Writes, deterministically:
- quality_models/models/quality_en_zh.ftz: fastText, hq = clean prose train
  split (en + zh), lq = junk train split; examples are ~1500-character chunks;
- quality_models/models/kenlm_{en,zh}.binary: 3-gram, pruned, quantized trie
  on the clean prose train split of that language;
- tests/data/filter/eval.jsonl.gz: the held-out pages (clean, junk, lid).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys

from crawl2model.core.log import get_logger
from crawl2model.core.text import HAN, HIRAGANA, KATAKANA
from crawl2model.corpora import debian
from crawl2model.corpora.sources import SOURCES, pages
from crawl2model.pipeline.extract import extract_text
from crawl2model.quality_models.classifier import train_classifier_from_files
from crawl2model.quality_models.featurize import model_text
from crawl2model.quality_models.kenlm_models import train_kenlm
from crawl2model.quality_models.shipped import KENLM, QUALITY_CLASSIFIER

CHUNK_CHARS = 1500
FIXTURE_PER_SOURCE = {"clean": 40, "junk": 40, "lid": 30}
LID_MIN_CHARS = 200
LID_MAX_CHARS = 3000
# The zh-CN handbook keeps untranslated English paragraphs: a page is Chinese prose when at least
# half of its letters are CJK characters.
MIN_CJK_SHARE = 0.5
CJK = re.compile(f"[{HAN}{HIRAGANA}{KATAKANA}]")

log = get_logger("shipped-models")


def chunks(text: str) -> list[str]:
    """Consecutive lines grouped into pieces of about CHUNK_CHARS: more, and more varied, examples."""
    out, cur, size = [], [], 0
    for line in text.split("\n"):
        cur.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            out.append("\n".join(cur))
            cur, size = [], 0
    if cur and (size >= CHUNK_CHARS // 3 or not out):
        out.append("\n".join(cur))
    return [c for c in out if c.strip()]


def translated(text: str, original: str) -> bool:
    """A help page counts as written in its package's language when under 20% of its lines are the
    en-US page's lines: LibreOffice ships untranslated strings in English, mislabelled for LID."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    same = set(original.split("\n"))
    return bool(lines) and sum(ln in same for ln in lines) < 0.2 * len(lines)


def cjk_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(bool(CJK.match(c)) for c in letters) / max(len(letters), 1)


def collect(cache: str, split: str) -> list[dict]:
    rows = []
    for s in SOURCES:
        for rel, text in pages(s, cache, split):
            if s.kind == "lid" and s.lang != "en":
                en_root = debian.fetch("libreoffice-help-en-us", cache)
                en_path = os.path.join(en_root, re.sub(r"/help/[^/]+/", "/help/en-US/", rel))
                if os.path.isfile(en_path):
                    with open(en_path, "rb") as f:
                        if not translated(text, extract_text(f.read().decode("utf-8", "replace"))):
                            continue
            if s.kind == "clean" and s.lang == "zh" and cjk_share(text) < MIN_CJK_SHARE:
                continue
            rows.append({"source": s.name, "kind": s.kind, "lang": s.lang, "path": rel, "text": text})
        log.info("%s %s: %d pages", split, s.name, sum(r["source"] == s.name for r in rows))
    return rows


def write_fixtures(rows: list[dict], path: str) -> None:
    """A few pages per held-out source, enough for the must-show figures, small enough to commit."""
    taken: dict[str, int] = {}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with gzip.GzipFile(path, "wb", mtime=0) as gz:
        for r in rows:
            if r["kind"] == "lid":
                if len(r["text"]) < LID_MIN_CHARS:
                    continue
                r = {**r, "text": r["text"][:LID_MAX_CHARS]}
            if taken.get(r["source"], 0) >= FIXTURE_PER_SOURCE[r["kind"]]:
                continue
            taken[r["source"]] = taken.get(r["source"], 0) + 1
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode())
    log.info("fixtures: %s", taken)


def train_quality(rows: list[dict], output: str) -> dict:
    texts, labels = [], []
    for r in rows:
        if r["kind"] in ("clean", "junk"):
            for c in chunks(r["text"]):
                texts.append(model_text(c, r["lang"]))
                labels.append("hq" if r["kind"] == "clean" else "lq")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    tmp = output + ".train.jsonl"
    with open(tmp, "w", encoding="utf-8") as f:
        for t, y in zip(texts, labels):
            f.write(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n")
    try:
        card = train_classifier_from_files(output, labelled=tmp, epoch=15, lr=0.3, word_ngrams=2, dim=32,
                                           min_count=2, seed=0, quantize=True)
    finally:
        os.unlink(tmp)
    card["sources"] = {"hq": sorted({r["source"] for r in rows if r["kind"] == "clean"}),
                       "lq": sorted({r["source"] for r in rows if r["kind"] == "junk"}),
                       "packages": "see corpora/sources.py; pages split by path hash, eval pages held out"}
    with open(os.path.splitext(output)[0] + ".card.json", "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default=str(debian.DEFAULT_CACHE), help="downloaded and unpacked Debian packages")
    p.add_argument("--fixtures", default="tests/data/filter", help="where eval.jsonl.gz goes")
    p.add_argument("--bin-dir", help="folder with lmplz and build_binary")
    args = p.parse_args(argv)

    write_fixtures(collect(args.cache, "eval"), os.path.join(args.fixtures, "eval.jsonl.gz"))
    train = collect(args.cache, "train")
    card = train_quality(train, QUALITY_CLASSIFIER)
    log.info("quality classifier: %s bytes, held-out accuracy %s", card["bytes"], card["heldout_accuracy"])
    for lang, path in KENLM.items():
        texts = [r["text"] for r in train if r["kind"] == "clean" and r["lang"] == lang]
        sources = sorted({r["source"] for r in train if r["kind"] == "clean" and r["lang"] == lang})
        card = train_kenlm(sources, path, lang=lang, order=3, prune="0 1 1", bin_dir=args.bin_dir, texts=texts)
        log.info("kenlm %s: %s bytes, %s tokens", lang, card["bytes"], card["tokens"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
