"""Training KenLM n-gram models with lmplz and build_binary.

The training text goes through the same `model_text` as the filter's scoring
(one sentence a line, lower case, digits to 0, CJK segmented), or the
perplexities would measure the mismatch between the two. The binary is a
quantized trie: a fraction of the ARPA size, which is what makes shipping
models with the project possible.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile


def find_tool(name: str, bin_dir: str | None = None) -> str:
    """lmplz/build_binary from --bin-dir, $KENLM_BIN, PATH, or where build_kenlm.sh puts them."""
    candidates = [bin_dir, os.environ.get("KENLM_BIN"), os.path.expanduser("~/.cache/crawl2model/kenlm/bin")]
    for d in candidates:
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name} not found: build it with quality_models/build_kenlm.sh "
                            f"and pass --bin-dir (or set KENLM_BIN)")


def write_sentences(texts: list[str], lang: str, path: str) -> tuple[int, int]:
    """One normalized sentence a line, as `doc_perplexity` scores them; returns (sentences, tokens)."""
    from crawl2model.pipeline.filters.words import model_text

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
    """Train on the documents in `inputs` (or `texts`), write the model and MODEL.card.json; returns the card."""
    from crawl2model.quality_models.corpus import read_texts

    if texts is None:
        texts = [t for p in inputs for t in read_texts(p, text_field)]
    lmplz = find_tool("lmplz", bin_dir)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kenlm-") as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        sentences, tokens = write_sentences(texts, lang, corpus)
        if not sentences:
            raise ValueError("no text to train on")
        arpa = output if output.endswith(".arpa") else os.path.join(tmp, "model.arpa")
        prune_args = ["--prune", *prune.split()] if prune.strip() else []
        with open(corpus, "rb") as src, open(arpa, "wb") as dst:
            subprocess.run([lmplz, "-o", str(order), "-S", memory, "-T", tmp, "--discount_fallback",
                            *prune_args], stdin=src, stdout=dst, check=True, stderr=subprocess.DEVNULL)
        if arpa != output:
            subprocess.run([find_tool("build_binary", bin_dir), "-q", "8", "-b", "8", "trie", arpa, output],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    card = {"model": os.path.basename(output), "bytes": os.path.getsize(output), "kind": "kenlm", "lang": lang, "order": order,
            "prune": prune, "documents": len(texts), "sentences": sentences, "tokens": tokens,
            "sources": inputs}
    with open(os.path.splitext(output)[0] + ".card.json", "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return card
