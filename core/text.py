"""Words for languages with and without spaces between them.

The filter's heuristics count words and the quality models are trained and
scored on words, so both segment text the same way, here. Word-based rules
(Gopher, C4) assume whitespace separates words; in Chinese and Japanese it
does not, and a whole sentence would count as one 60-character "word" that
fails every length rule. Chinese is segmented with jieba (imported on first
use: it costs a second to build its dictionary); Japanese falls back to runs
of one script (kanji, hiragana, katakana), which is close to word-level for
the statistics the rules use. Character classes are built from code points (a
pasted range can be silently normalized to another character).
"""
from __future__ import annotations

import functools
import re
from typing import Any

CJK_LANGS = frozenset({"zh", "ja"})


def _cls(*ranges: tuple[int, int]) -> str:
    return "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges)


HAN = _cls((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x3005, 0x3007))
HIRAGANA = _cls((0x3041, 0x309F))
KATAKANA = _cls((0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))
CJK_PUNCT = _cls((0x3000, 0x303F), (0xFF00, 0xFF65))

_SCRIPT_RUNS = re.compile(f"[{HAN}]+|[{HIRAGANA}]+|[{KATAKANA}]+|[^\\s{HAN}{HIRAGANA}{KATAKANA}{CJK_PUNCT}]+|[{CJK_PUNCT}]")


@functools.lru_cache(maxsize=1)
def _jieba() -> Any:
    """jieba's default tokenizer, initialized once per process (it builds its prefix dict, ~1 s)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


def words(text: str, lang: str) -> list[str]:
    """The words of `text`, punctuation tokens included (as Gopher counts them)."""
    if lang == "zh":
        return [w for w in _jieba().lcut(text, HMM=False) if not w.isspace()]
    if lang == "ja":
        return _SCRIPT_RUNS.findall(text)
    return text.split()
