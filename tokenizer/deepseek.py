"""The `deepseek-llm` preset: DeepSeek LLM's published pre-tokenizer, quirks included.

deepseek-ai/deepseek-llm-7b-base's tokenizer.json pre-tokenizes with a
`Sequence` of five isolating `Split`s, then `Digits(individual_digits=True)`
and `ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)`;
every step cuts every piece the earlier steps left:

    [\\r\\n]
    \\s?[A-Za-zµÀ-ÖØ-ö ... ＡＺａ-ｚ𐐀-𐑏 ... 𞤀-𞥃]+      (84 ranges: the cased letters Lu/Ll/Lt of a few dozen blocks)
    \\s?[!-/:-~！-／：-～‘-‟　-。]+
    \\s+$
    [一-龥ࠀ-一가-퟿]+

Reproduced here from code points (no pasted characters, see
`tokenizer.pretokenize`), in the same order, so tokenizer.json cuts exactly as
DeepSeek's does. Where it differs from the clean default, and why the default
does not copy it:

- `:-~` is U+003A-U+007E, which holds the ASCII letters, so step 3 runs again
  inside every word of step 2 and cuts accented words where ASCII ends:
  "café" -> "caf" "é", " Việt" -> " Vi" "ệ" "t".
- The "CJK" class spans U+0800-U+9FA5, i.e. Indic scripts, Georgian, Greek
  Extended, Latin Extended Additional (Vietnamese), General Punctuation,
  currency, arrows, maths and the CJK symbols, so step 5 isolates curly quotes,
  dashes, €, 。 from their neighbours (")。" -> ")" "。", ' “' -> ' ' '“') and
  Vietnamese letters from their words. Hangul is U+AC00-U+D7FF; kana and
  Bopomofo fall inside the first range; Han extensions B+ are not covered.
- The letter class is cased letters only: Arabic, Hebrew, Devanagari, Thai and
  other scripts without case are not "letters" (the last three fall into the
  CJK class instead), and combining marks are not letters, so "नमस्ते" or
  "naïve" written with U+0308 break apart.
- Digits are any numeric character (`char::is_numeric`: Nd, Nl, No), one each.

`fused_pattern` rewrites the sequence as one regex for rustbpe and tiktoken,
which take a single pattern. The nested splits do not reduce exactly to one
leftmost-first alternation in every corner (runs of several whitespace
characters that the CJK class also holds, U+2000-U+200A, U+2028, U+2029,
U+202F, U+205F, next to other whitespace); the tests measure its agreement
with the published sequence on held-out lines, and token ids for this preset
are always produced by tokenizer.json itself.
"""
from __future__ import annotations

from functools import lru_cache

from crawl2model.tokenizer.pretokenize import Ranges, char_class

# Step 2's class, as published (U+212A-U+212D is the real KELVIN SIGN range).
LETTERS: Ranges = [
    (0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA), (0x1BC, 0x1BF),
    (0x1C4, 0x293), (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x377), (0x37B, 0x37D), (0x37F, 0x37F),
    (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481),
    (0x48A, 0x52F), (0x531, 0x556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15), (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D),
    (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC),
    (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102),
    (0x2107, 0x2107), (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
    (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149),
    (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3),
    (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF),
    (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F),
    (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
]
# Step 3: "!-/:-~！-／：-～‘-‟　-。".
PUNCT: Ranges = [(0x21, 0x2F), (0x3A, 0x7E), (0xFF01, 0xFF0F), (0xFF1A, 0xFF5E), (0x2018, 0x201F), (0x3000, 0x3002)]
# Step 5: "一-龥ࠀ-一가-퟿".
CJK: Ranges = [(0x4E00, 0x9FA5), (0x0800, 0x4E00), (0xAC00, 0xD7FF)]
# What the published `\s` (Oniguruma, Unicode) matches: White_Space.
WHITESPACE: Ranges = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                      (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]


def split_patterns() -> list[str]:
    """The five published `Split` regexes, in order, as code-point escapes."""
    return ["[\\r\\n]", f"\\s?{char_class(LETTERS)}+", f"\\s?{char_class(PUNCT)}+", "\\s+$", f"{char_class(CJK)}+"]


def build_pre_tokenizer():
    """The published sequence as `tokenizers` components."""
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence([
        *(pre_tokenizers.Split(Regex(rx), behavior="isolated", invert=False) for rx in split_patterns()),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def _minus(a: Ranges, *others: Ranges) -> Ranges:
    """Code points of `a` in none of `others`, as ranges."""
    from crawl2model.tokenizer.pretokenize import ranges_where

    def inside(r: Ranges, cp: int) -> bool:
        return any(lo <= cp <= hi for lo, hi in r)

    return ranges_where(lambda cp: not any(inside(o, cp) for o in others),
                        sorted({cp for lo, hi in a for cp in range(lo, hi + 1) if not 0xD800 <= cp <= 0xDFFF}))


def _both(a: Ranges, b: Ranges) -> Ranges:
    from crawl2model.tokenizer.pretokenize import ranges_where

    return ranges_where(lambda cp: any(lo <= cp <= hi for lo, hi in b),
                        sorted({cp for lo, hi in a for cp in range(lo, hi + 1)}))


@lru_cache(maxsize=1)
def numeric() -> Ranges:
    """`char::is_numeric` (what `Digits` isolates): general categories Nd, Nl, No."""
    import unicodedata

    from crawl2model.tokenizer.pretokenize import ranges_where

    return ranges_where(lambda cp: unicodedata.category(chr(cp)) in ("Nd", "Nl", "No"))


@lru_cache(maxsize=1)
def fused_pattern() -> str:
    """The published sequence as one leftmost-first alternation (for rustbpe and tiktoken).

    The final pieces, by what made them: inside a step-2 word, runs of ASCII /
    full-width letters (which step 3 also claims, with the word's leading
    space), runs of the other letters (keeping the leading space), runs of the
    letters the CJK class holds (cut out by step 5, leaving a leading space
    alone); outside words, step 3's punctuation runs with step 5's CJK-class
    punctuation (curly quotes, 、。, U+3000) cut out, trailing whitespace (step
    4, where a gap ends before a newline, the end, or the next word's or
    punctuation run's leading space), CJK-class runs, single numerics, and
    the rest as runs.
    """
    nl: Ranges = [(0x0A, 0x0A), (0x0D, 0x0D)]
    ws = _minus(WHITESPACE, nl)
    word_p = _both(LETTERS, PUNCT)                       # A-Z a-z Ａ-Ｚ ａ-ｚ
    word_x = _minus(LETTERS, PUNCT, CJK)                 # é, Cyrillic, Greek
    word_c = _both(LETTERS, CJK)                         # Greek Extended, Vietnamese ệ, Georgian ...
    punct_c = _both(PUNCT, CJK)                          # ‘-‟, U+3000-U+3002
    punct_x = _minus(PUNCT, LETTERS, CJK)
    cjk = _minus(CJK, LETTERS, PUNCT, numeric(), WHITESPACE)
    word_or_punct = char_class(sorted(LETTERS + PUNCT))
    s, wc, sc = char_class(ws), char_class(_minus(ws, CJK)), char_class(_minus(_both(ws, CJK), PUNCT))
    # Step 4 cuts trailing U+3000 (whitespace and punctuation at once) off a punctuation run,
    # unless more (non-CJK-class) punctuation follows in the same run.
    pc, px = char_class(punct_c), char_class(_minus(PUNCT, CJK))
    punct_run = f"(?:{pc}+(?={px})|{pc}*{char_class(_minus(punct_c, WHITESPACE))}|\\x{{3000}}+)"
    # Step 4's trailing whitespace, which step 5 then splits into CJK-class and other whitespace.
    trailing = f"(?={s}*(?:{s}{word_or_punct}|[\\r\\n]|\\z))"
    ends_gap = f"{s}*(?:{word_or_punct}|[\\r\\n]|\\z)"  # a whitespace run that step 4 or a next match takes
    claimed = "".join(char_class(r)[1:-1] for r in (WHITESPACE, LETTERS, PUNCT, CJK, numeric()))
    return "|".join([
        "[\\r\\n]",
        f"{sc}?{punct_run}",
        f"{wc}?{char_class(word_p)}+",
        f"{wc}?{char_class(word_x)}+",
        f"{sc}?{char_class(word_c)}+",
        f"{wc}?{char_class(punct_x)}+",
        f"{wc}(?={char_class(word_c)}|{char_class(punct_c)})",
        f"{sc}(?={char_class(word_p)}|{char_class(word_x)}|{char_class(punct_x)})",
        f"{wc}+{trailing}|{sc}+{trailing}",
        f"(?:{char_class(cjk)}|{sc}(?!{ends_gap}))+",
        char_class(numeric()),
        f"(?:[^{claimed}]|{wc}(?!{ends_gap}))+",
        "[\\s\\S]",
    ])
