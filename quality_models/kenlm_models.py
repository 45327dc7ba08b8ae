"""KenLM n-gram models: training with lmplz and build_binary, and CCNet-style perplexity.

The training text goes through the same `featurize.model_text` as the
scoring (one sentence a line, lower case, digits to 0, CJK segmented), or the
perplexities would measure the mismatch between the two. The binary is a
quantized trie: a fraction of the ARPA size, which is what makes shipping
models with the project possible.

Scoring: each non-empty line is a sentence (with <s> and </s>); a document's
perplexity is 10 ** (-sum of log10 probabilities / tokens) over its lines, so
one long line does not outweigh the rest.
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from crawl2model.core.errors import ConfigError, InputError
from crawl2model.quality_models.featurize import model_text

MAX_LINES = 200   # lines scored per document; a long page is judged on its first 200 lines


@dataclass
class KenlmConfig:
    """`quality-models train-kenlm`: the `[quality-kenlm]` table of a run file."""

    # Text files (one document a line), JSON Lines or Parquet with a text field.
    input: list[str] = field(default_factory=list)
    output: str = ""
    text_field: str = "text"
    # Language of the text: decides the segmentation, and names the model kenlm_<lang>.binary.
    lang: str = "en"
    order: int = 5
    # lmplz --prune thresholds per order.
    prune: str = "0 0 1"
    # lmplz -S: memory for sorting.
    memory: str = "20%"
    # Folder with lmplz and build_binary (default: $KENLM_BIN, PATH, or where build_kenlm.sh puts them).
    bin_dir: str | None = None
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input or not self.output:
            raise ConfigError("quality-models train-kenlm: --input and --output are required")
        if self.order < 2:
            raise ConfigError(f"quality-models train-kenlm: order must be >= 2, got {self.order}")


def model_name(lang: str) -> str:
    """The file name of a language's model: a folder of them is what the filter's kenlm_dir reads."""
    return f"kenlm_{lang}.binary"


def find_tool(name: str, bin_dir: str | None = None) -> str:
    """lmplz/build_binary from --bin-dir, $KENLM_BIN, PATH, or where build_kenlm.sh puts them."""
    candidates = [bin_dir, os.environ.get("KENLM_BIN"), os.path.expanduser("~/.cache/crawl2model/kenlm/bin")]
    for d in candidates:
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if found:
        return found
    raise InputError(f"{name} not found: build it with quality_models/build_kenlm.sh "
                     f"and pass --bin-dir (or set KENLM_BIN)")


def write_sentences(texts: list[str], lang: str, path: str) -> tuple[int, int]:
    """One normalized sentence a line, as `doc_perplexity` scores them; returns (sentences, tokens)."""
    n = tokens = 0
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            for line in text.split("\n"):
                sentence = model_text(line, lang) if line.strip() else ""
                if sentence:
                    f.write(sentence + "\n")
                    n += 1
                    tokens += sentence.count(" ") + 1
    return n, tokens


def train_kenlm(inputs: list[str], output: str, *, lang: str = "en", order: int = 5, prune: str = "0 0 1",
                memory: str = "20%", text_field: str = "text", bin_dir: str | None = None,
                texts: list[str] | None = None) -> dict:
    """Train on the documents in `inputs` (or `texts`), write the model and MODEL.card.json; returns the card.

    The card counts every row read: `skipped_empty` + `documents` (trained on).
    """
    from crawl2model.quality_models.corpus import read_texts

    skipped = 0
    if texts is None:
        read = [read_texts(p, text_field) for p in inputs]
        texts = [t for ts, _ in read for t in ts]
        skipped = sum(n for _, n in read)
    lmplz = find_tool("lmplz", bin_dir)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kenlm-") as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        sentences, tokens = write_sentences(texts, lang, corpus)
        if not sentences:
            raise InputError(f"no text to train on in {', '.join(inputs)}")
        arpa = output if output.endswith(".arpa") else os.path.join(tmp, "model.arpa")
        prune_args = ["--prune", *prune.split()] if prune.strip() else []
        with open(corpus, "rb") as src, open(arpa, "wb") as dst:
            subprocess.run([lmplz, "-o", str(order), "-S", memory, "-T", tmp, "--discount_fallback",
                            *prune_args], stdin=src, stdout=dst, check=True, stderr=subprocess.DEVNULL)
        if arpa != output:
            subprocess.run([find_tool("build_binary", bin_dir), "-q", "8", "-b", "8", "trie", arpa, output],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    card = {"model": os.path.basename(output), "bytes": os.path.getsize(output), "kind": "kenlm", "lang": lang,
            "order": order, "prune": prune, "skipped_empty": skipped, "documents": len(texts),
            "sentences": sentences, "tokens": tokens, "sources": inputs}
    with open(os.path.splitext(output)[0] + ".card.json", "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return card


@functools.lru_cache(maxsize=8)
def load_lm(path: str) -> Any:
    """A KenLM model (ARPA or binary), loaded once per process."""
    import kenlm

    if not os.path.isfile(path):
        raise FileNotFoundError(f"KenLM model not found: {path}")
    return kenlm.Model(path)


def doc_perplexity(model: Any, text: str, lang: str) -> float:
    """The document's perplexity over its first MAX_LINES non-empty lines; NaN without any token."""
    log10 = 0.0
    tokens = 0
    n = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        sentence = model_text(line, lang)
        if not sentence:
            continue
        log10 += model.score(sentence, bos=True, eos=True)
        tokens += sentence.count(" ") + 2  # words + </s>
        n += 1
        if n >= MAX_LINES:
            break
    return 10.0 ** (-log10 / tokens) if tokens else math.nan
