"""KenLM n-gram perplexity per language, CCNet-style.

Each non-empty line is a sentence (with <s> and </s>); a document's perplexity
is 10 ** (-sum of log10 probabilities / tokens) over its lines, so one long
line does not outweigh the rest. Documents in a language without a model get
NaN, which rules treat as "not measured" (they pass). Percentile buckets
(head/middle/tail) are decided later, from the stored column (`rules.py`).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from crawl2model.pipeline.filters.words import model_text

MAX_LINES = 200   # lines scored per document; a long page is judged on its first 200 lines


@functools.lru_cache(maxsize=8)
def load_lm(path: str) -> Any:
    """A KenLM model (ARPA or binary), loaded once per process."""
    import os

    import kenlm

    if not os.path.isfile(path):
        raise FileNotFoundError(f"KenLM model not found: {path}")
    return kenlm.Model(path)


def doc_perplexity(model: Any, text: str, lang: str) -> float:
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


def perplexities(texts: list[str], langs: list[str], models: dict[str, str]) -> np.ndarray:
    """Perplexity per document under its language's model; NaN where there is none."""
    out = np.full(len(texts), np.nan)
    for i, (text, lang) in enumerate(zip(texts, langs)):
        path = models.get(lang)
        if path and text:
            out[i] = doc_perplexity(load_lm(path), text, lang)
    return out
