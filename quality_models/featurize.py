"""The text the quality models see, the same in training and in scoring.

A model scored on text prepared otherwise than its training text measures the
mismatch, not the quality; so the trainers (`classifier`, `kenlm_models`) and
the scorers (`scorers`) all call `model_text`.
"""
from __future__ import annotations

import re
import unicodedata

from crawl2model.core.text import CJK_LANGS, words

_DIGITS = re.compile(r"\d")
_LATIN_TOKENS = re.compile(r"\w+|[^\w\s]")


def model_text(text: str, lang: str) -> str:
    """CCNet-style normalization: NFKC, lower case, every digit 0, tokens separated by single spaces.

    Numbers are open-ended and say nothing of quality, so they collapse to 0s;
    punctuation is split off words and Chinese and Japanese are segmented,
    because fastText and KenLM only split on spaces.
    """
    norm = _DIGITS.sub("0", unicodedata.normalize("NFKC", text).lower())
    if lang in CJK_LANGS:
        return " ".join(t for w in words(norm, lang) for t in (_LATIN_TOKENS.findall(w) if w.isascii() else [w]))
    return " ".join(_LATIN_TOKENS.findall(norm))
