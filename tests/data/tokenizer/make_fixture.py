"""Rebuild the tokenizer tests' real-text fixture (run from the repository root, after
`python bench/build_text_corpus.py --out bench/data/text`, which also unpacks debian-handbook).

    python tests/data/tokenizer/make_fixture.py

train.txt.gz: ~1.9 MB from the corpus's train part (English, Chinese, code) and
the Debian Handbook in other scripts; heldout.jsonl.gz: {"lang", "text"} documents
from the held-out part, other Handbook chapters, and number-heavy lines.
"""
import gzip
import json
import random
import re
from pathlib import Path

from crawl2model.corpora.bench_text import html_text

CORPUS = Path("bench/data/text")
HANDBOOK = Path("build/debian-docs/debian-handbook/usr/share/doc/debian-handbook/html")
OUT = Path(__file__).parent
LANGS = {"ar": "ar-MA", "el": "el-GR", "ja": "ja-JP", "ko": "ko-KR", "ru": "ru-RU", "vi": "vi-VN", "fa": "fa-IR"}


def head(path: Path, n: int, skip: int = 0) -> str:
    text = path.read_text(encoding="utf-8")[skip:skip + n]
    return text[:text.rfind("\n\n")]


def handbook(lang: str, pages: list[str]) -> str:
    return "\n\n".join(html_text((HANDBOOK / LANGS[lang] / p).read_text(encoding="utf-8")) for p in pages)


def main() -> None:
    train = [head(CORPUS / "train" / f"{lang}.txt", n) for lang, n in (("en", 600_000), ("zh", 450_000),
                                                                      ("code", 450_000))]
    train += [handbook(lang, ["sect.apt-get.html", "sect.debian-internals.html"])[:40_000] for lang in LANGS]
    with gzip.open(OUT / "train.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n\n".join(train))
    docs = [{"lang": lang, "text": d} for lang in ("en", "zh", "code")
            for d in head(CORPUS / "heldout" / f"{lang}.txt", 120_000).split("\n\n") if d.strip()]
    docs += [{"lang": lang, "text": d} for lang in LANGS
             for d in handbook(lang, ["sect.installation-steps.html"])[:30_000].split("\n\n") if d.strip()]
    numeric = [line for lang in ("en", "code") for line in
               (CORPUS / "heldout" / f"{lang}.txt").read_text(encoding="utf-8").split("\n")
               if len(line) > 20 and len(re.findall(r"\d", line)) > 0.3 * len(line)]
    random.Random(0).shuffle(numeric)
    docs += [{"lang": "digits", "text": line} for line in numeric[:800]]
    with gzip.open(OUT / "heldout.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)


if __name__ == "__main__":
    main()
