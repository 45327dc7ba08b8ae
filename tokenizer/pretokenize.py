"""DeepSeek-style pre-tokenization: one regex for every engine, and the presets.

The rules (issue 5, part 2) are defined as DeepSeek defines them, as a sequence
of isolating splits: each rule cuts its matches out of every piece the earlier
rules left, so a later rule never sees across an earlier boundary. In order:

1. every `\\r` and `\\n` is its own piece;
2. a run of letters (every script, with the combining marks that spell words,
   except CJK) with at most one leading whitespace character;
3. a run of ASCII / general / CJK / full-width punctuation and symbols with at
   most one leading whitespace character;
4. whitespace at the end of a remaining piece (so a run of spaces that no rule
   above claimed stays one piece, and text-final spaces are one piece);
5. a run of CJK: Han, kana, Hangul, Bopomofo;
6. every decimal digit (any script) on its own;
7. byte-level mapping, without GPT-2's regex.

They are serialized as a `Sequence` of one `Split` (rules 1-6 fused into one
ordered alternation that yields the same pieces; see `fused_pattern`) and
`ByteLevel(add_prefix_space=False, use_regex=False)`. The same fused regex is
what the compiled trainer (rustbpe) and encoder (tiktoken) run: both keep only
the regex's matches, so the pattern ends in an alternative for the text
between the rules' matches, and no character is ever dropped.

Every character class is written as `\\x{HEX}` escapes generated from code
points, never as pasted characters: a pasted range endpoint can be silently
rewritten by Unicode normalization. DeepSeek's published letter class has the
range U+212A-U+212D (KELVIN SIGN to BLACK-LETTER CAPITAL C); a normalized copy
of the file turns U+212A into ASCII "K", and the range "K-ℭ" (U+004B-U+212D)
then swallows most of the BMP. The classes are computed from Python's
`unicodedata` once, at training time, and serialized into tokenizer.json, so
the saved tokenizer does not depend on any Unicode version at load time.

Presets (`--pretokenizer`): `clean` (the rules above, the default) and
`deepseek-llm` (DeepSeek LLM's published pipeline, quirks included; see
`tokenizer.deepseek`).
"""
from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache

Ranges = list[tuple[int, int]]

# Unicode White_Space (PropList.txt), without \r and \n, which rule 1 isolates.
WHITESPACE: Ranges = [(0x09, 0x09), (0x0B, 0x0C), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0),
                      (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F),
                      (0x205F, 0x205F), (0x3000, 0x3000)]

# CJK blocks: Han (unified, extensions A-H, compatibility, radicals, strokes,
# iteration marks and Hangzhou numerals), kana (incl. half-width and the kana
# supplements), Hangul (syllables, jamo, compatibility and half-width jamo), Bopomofo.
CJK: Ranges = [
    (0x1100, 0x11FF),    # Hangul Jamo
    (0x2E80, 0x2FDF),    # CJK Radicals Supplement, Kangxi Radicals
    (0x3005, 0x3007),    # ideographic iteration mark, closing mark, number zero
    (0x3021, 0x3029),    # Hangzhou numerals
    (0x3031, 0x3035),    # kana repeat marks
    (0x3038, 0x303C),
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x3100, 0x31FF),    # Bopomofo, Hangul Compatibility Jamo, Kanbun, CJK Strokes, Katakana ext.
    (0x3400, 0x4DBF),    # CJK Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xA960, 0xA97F),    # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),    # Hangul Syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0xFF66, 0xFFDC),    # half-width Katakana and Hangul
    (0x1B000, 0x1B16F),  # Kana Supplement, Kana Extended-A, Small Kana Extension
    (0x20000, 0x2FA1F),  # CJK Extensions B-F, Compatibility Ideographs Supplement
    (0x30000, 0x323AF),  # CJK Extensions G-H
]

# Marks that select a glyph (emoji presentation) rather than belong to a word.
VARIATION_SELECTORS: Ranges = [(0xFE00, 0xFE0F), (0xE0100, 0xE01EF)]

# Blocks whose punctuation and symbols form rule 3's class.
PUNCT_BLOCKS: Ranges = [
    (0x00, 0x7F),        # ASCII
    (0x2000, 0x206F),    # General Punctuation: curly quotes, dashes, ellipsis
    (0x3000, 0x303F),    # CJK Symbols and Punctuation: 、。「」
    (0xFF00, 0xFFEF),    # Halfwidth and Fullwidth Forms: ，！？（）
]


def _in(ranges: Ranges, cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def ranges_where(pred: Callable[[int], bool], candidates: Iterable[int] | None = None) -> Ranges:
    """Maximal runs of code points satisfying `pred`."""
    out: Ranges = []
    for cp in candidates if candidates is not None else range(sys.maxunicode + 1):
        if pred(cp):
            if out and out[-1][1] == cp - 1:
                out[-1] = (out[-1][0], cp)
            else:
                out.append((cp, cp))
    return out


def char_class(ranges: Ranges) -> str:
    """A regex character class of `\\x{HEX}` escapes (Oniguruma and `regex` syntax)."""
    parts = [f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges]
    return "[" + "".join(parts) + "]"


@lru_cache(maxsize=1)
def character_ranges() -> dict[str, Ranges]:
    """The classes the rules use, keyed by name; computed once per process."""
    def cat(cp: int) -> str:
        return unicodedata.category(chr(cp))

    letters = ranges_where(lambda cp: (cat(cp)[0] == "L" or cat(cp) in ("Mn", "Mc"))
                           and not _in(CJK, cp) and not _in(VARIATION_SELECTORS, cp))
    punct_candidates = (cp for lo, hi in PUNCT_BLOCKS for cp in range(lo, hi + 1))
    punct = ranges_where(lambda cp: cat(cp)[0] in "PS" and not _in(CJK, cp), punct_candidates)
    digits = ranges_where(lambda cp: cat(cp) == "Nd")
    return {"whitespace": WHITESPACE, "letters": letters, "punct": punct, "cjk": CJK, "digits": digits}


@lru_cache(maxsize=1)
def split_patterns() -> list[tuple[str, str]]:
    """(rule name, regex) of the six rules, each as it would run as its own `Split`."""
    c = {name: char_class(r) for name, r in character_ranges().items()}
    ws = c["whitespace"]
    return [
        ("newline", r"[\r\n]"),
        ("letters", f"{ws}?{c['letters']}+"),
        ("punctuation", f"{ws}?{c['punct']}+"),
        ("trailing_whitespace", f"{ws}+\\z"),
        ("cjk", f"{c['cjk']}+"),
        ("digit", c["digits"]),
    ]


@lru_cache(maxsize=1)
def fused_pattern() -> str:
    """The six rules as one ordered alternation, which gives the same pieces in one scan.

    Six sequential `Split`s cost six passes, each re-allocating every piece;
    one pass is ~3x faster at both training and encoding. The alternation is
    exact because every match of rules 2, 3, 5 and 6 is final (their classes
    are disjoint and none of them ends in whitespace), so later rules only ever
    cut the gaps between earlier matches, and leftmost-first alternation cuts
    those gaps the same way. Rule 4 is the one that needs care: its `\\z` means
    the end of a gap, i.e. a newline, the end of the text, or the whitespace
    character that rule 2 or 3 takes as the leading space of its match.

    The last alternative matches what is left between the rules' matches (an
    emoji, a symbol outside the punctuation blocks, spaces before a digit):
    a `Split` keeps such gaps as pieces by itself, but rustbpe and tiktoken
    keep only matches. A character starts a gap piece when no rule can match
    there: it is none of the classes, or it is whitespace whose run does not
    end at a letter, punctuation, newline or the end. The test suite checks the
    pieces against an independent implementation of the sequential rules.
    """
    c = {name: char_class(r) for name, r in character_ranges().items()}
    ws, letters, punct = c["whitespace"], c["letters"], c["punct"]
    gap_end = f"(?={ws}(?:{letters}|{punct})|[\\r\\n]|\\z)"
    alternatives = [rx for name, rx in split_patterns() if name != "trailing_whitespace"]
    alternatives.insert(3, f"{ws}+{gap_end}")
    claimed = "".join(c[name][1:-1] for name in ("whitespace", "letters", "punct", "cjk", "digits"))
    alternatives.append(f"(?:[^{claimed}\\r\\n]|{ws}(?!{ws}*(?:{letters}|{punct}|[\\r\\n]|\\z)))+")
    return "|".join(alternatives)


PRESETS = ("clean", "deepseek-llm")


def build_pre_tokenizer(preset: str = "clean"):
    """The full pre-tokenizer of a preset, ready to assign to `Tokenizer.pre_tokenizer`."""
    from tokenizers import Regex, pre_tokenizers

    if preset == "deepseek-llm":
        from crawl2model.tokenizer import deepseek

        return deepseek.build_pre_tokenizer()
    _check_preset(preset)
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(fused_pattern()), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def encoding_pattern(preset: str = "clean") -> tuple[str, bool]:
    """(one regex whose matches are the pre-tokens, whether it cuts exactly like the saved pre-tokenizer).

    What rustbpe trains on and tiktoken encodes with. For `clean` it is the
    regex of tokenizer.json itself; for `deepseek-llm` a fused form of the
    published sequence of splits that agrees on nearly every line but not on
    all (see `tokenizer.deepseek.fused_pattern`), so text is encoded with
    tokenizer.json there.
    """
    if preset == "deepseek-llm":
        from crawl2model.tokenizer import deepseek

        return deepseek.fused_pattern(), False
    _check_preset(preset)
    return fused_pattern(), True


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown pre-tokenizer {preset!r} (choose from {', '.join(PRESETS)})")


def pieces(text: str, pre_tokenizer=None) -> list[str]:
    """The pre-tokens of `text`, in byte-level glyphs (Ġ for space, Ċ for newline)."""
    pre = pre_tokenizer or build_pre_tokenizer()
    return [p for p, _ in pre.pre_tokenize_str(text)]
