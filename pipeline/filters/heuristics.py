"""Heuristic (linguistic) signals: Gopher quality and repetition, C4, FineWeb.

Each signal is a number per document, stored as a column; the thresholds live
in the rule set (`rules.py`), not here, so they can change without
recomputing. What does depend on the language is how a signal is measured:
words come from `core.text.words` (jieba for Chinese, script runs for Japanese),
stop words are per language, and a "short line" is shorter in characters for
CJK, where one character carries about as much as a word elsewhere.

Documentation quotes code: shell sessions, directory trees, `ls -l` listings,
option tables. Gopher's and FineWeb's composition rules (words with letters,
lines ending in punctuation, short lines, bullets, `#` per word) were made for
prose and read such lines as junk, so a good page with a long listing would
be dropped. Those signals are measured on the document's prose lines (lines
that `is_code_line` does not call code) when the prose holds at least
`MIN_PROSE_WORDS` words; a document that is (nearly) all code is measured
whole, as before. Length and repetition are always measured on the whole
document, and `code_line_frac` tells how much of it was set aside.
"""
from __future__ import annotations

import re
from itertools import filterfalse

import numpy as np
import pyarrow as pa

from crawl2model.core.text import words

MAX_CHARS = 100_000  # signals of longer documents are measured on their first 100k characters

# Gopher's English stop words; for other languages the most frequent function words.
STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"the", "be", "to", "of", "and", "that", "have", "with"}),
    "zh": frozenset({"的", "了", "是", "在", "和", "有", "不", "这", "也", "就", "我们", "一个",
                     "上", "中", "与", "或"}),
    "ja": frozenset({"の", "に", "は", "を", "が", "で", "て", "と", "た", "も", "な", "から", "です", "ます"}),
    "de": frozenset({"der", "die", "und", "in", "den", "von", "zu", "das", "mit", "sich", "ist", "nicht"}),
    "fr": frozenset({"le", "la", "de", "et", "les", "des", "un", "une", "est", "en", "que", "pour"}),
    "es": frozenset({"de", "la", "que", "el", "en", "y", "los", "se", "del", "las", "un", "por"}),
    "it": frozenset({"di", "e", "il", "la", "che", "per", "un", "in", "del", "della", "non", "una"}),
    "ru": frozenset({"и", "в", "не", "на", "что", "с", "по", "как", "это", "для", "из", "к"}),
}
SHORT_LINE_CHARS = {"zh": 10, "ja": 12}   # FineWeb's short line: <= 30 characters elsewhere
DEFAULT_SHORT_LINE_CHARS = 30
C4_MIN_LINE_WORDS = 3                     # C4 drops lines with fewer words
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "–", "-", "*", "·", "‣", "⁃", "◦")
ELLIPSES = ("...", "…")
# FineWeb's line-ending punctuation, with the CJK full-width forms.
END_PUNCT = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？", "」", "』", "…", ":", ";", "：", "；", ")", "）")
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_LETTER = re.compile(r"[^\W\d_]")
_NOT_LETTER = re.compile(r"[\W\d_]")
_ALNUM = re.compile(r"[^\W_]")
# Code lines (see `code_lines`): a prompt, a directory tree, an `ls -l` line, a line ending like C or shell
# code, many tokens with code characters, or few letters among code symbols.
_PROMPT = re.compile(r"(?:[$#%>]|>>>|\.\.\.)\s")
_CODE_MARK = re.compile(r"[|`]--|[\u2500-\u257f]|^[-dlcbps][-rwxsStT]{9}[.+@]?\s|[{;\\]$|^}")
_CODE_CHARS = re.compile(r"[_/\\=<>{}\[\]|$^*~`();\u2500-\u257f]")
# A token with code characters or an option (-x, --name); numbers (-5) are not. A match runs from the
# first such mark to the token's end: one per token.
_TECH_TOKEN = re.compile(r"(?:[_/\\=<>{}\[\]|$^*~`]|::|(?<!\S)--?[^\W\d])\S*")
MIN_TECH_TOKEN_SHARE = 0.3    # of a line's tokens with code characters (numbers are not): a code line
MIN_CODE_LETTER_SHARE = 0.5   # fewer letters among a line's non-space characters, with code symbols: code
SHORT_CODE_WORDS = 3          # a line this short without end punctuation is code when next to code
MIN_PROSE_WORDS = 50          # prose lines with fewer words: the document is measured whole
TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)

SIGNALS: tuple[str, ...] = (
    # Gopher quality
    "n_words", "mean_word_len", "symbol_word_ratio", "bullet_line_frac", "ellipsis_line_frac",
    "alpha_word_frac", "stop_words",
    # Gopher repetition (dup_line_char_frac is also FineWeb's duplicated-line characters)
    "dup_line_frac", "dup_para_frac", "dup_line_char_frac", "dup_para_char_frac",
    *(f"top_{n}gram_frac" for n in TOP_NGRAMS), *(f"dup_{n}gram_frac" for n in DUP_NGRAMS),
    # C4
    "c4_javascript_lines", "c4_policy_lines", "c4_lorem_ipsum", "c4_curly_brace", "c4_short_line_frac",
    # FineWeb
    "line_punct_frac", "short_line_frac", "newline_word_ratio",
    # the share of lines set aside as code for the composition signals
    "code_line_frac",
)
# Signals added after filter outputs were first written (--reapply reads them as unmeasured there).
LATER_SIGNALS: tuple[str, ...] = ("code_line_frac",)


def letter_words(ws: list[str]) -> int:
    """How many words have an alphabetic character (Gopher's alpha words; CJK characters count:
    str.isalpha is True for them). Most words are all letters; only the rest need the search."""
    others = list(filterfalse(str.isalpha, ws))
    return len(ws) - len(others) + sum(map(bool, map(_LETTER.search, others)))


def is_code_line(line: str) -> bool:
    """Whether a (stripped, non-empty) line is, by itself, code or a listing rather than prose."""
    marked = _CODE_CHARS.search(line) is not None
    if not marked and "::" not in line and " -" not in line and line[0] not in "-$#%>.dlcbps":
        return False  # most prose lines: told by one scan for a character class
    if _PROMPT.match(line) or _CODE_MARK.search(line):
        return True
    if len(_TECH_TOKEN.findall(line)) >= MIN_TECH_TOKEN_SHARE * len(line.split()):
        return True
    chars = len(line) - line.count(" ") - line.count("\t")
    letters = len(line) - len(_NOT_LETTER.findall(line))  # prose has fewer non-letters to find than letters
    return marked and letters < MIN_CODE_LETTER_SHARE * chars


def code_lines(lines: list[str]) -> list[bool]:
    """Which lines are code: those `is_code_line` says, and the short lines without end punctuation
    (`then`, `fi`, an option's name, `...`) that stand next to code, through a run of such lines."""
    code = [is_code_line(ln) for ln in lines]
    if not any(code):
        return code
    weak = [not c and len(ln.split()) <= SHORT_CODE_WORDS
            and (not ln.endswith(END_PUNCT) or not _ALNUM.search(ln)) for ln, c in zip(lines, code)]
    for order in (range(len(lines)), range(len(lines) - 1, -1, -1)):
        prev = False
        for i in order:
            if weak[i] and prev:
                code[i] = True
            prev = code[i]
    return code


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(items seen before, their characters): a repeated item counts from its second occurrence."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


_P = np.uint64(0x100000001B3)  # FNV prime: n-gram keys as a polynomial of word ids, wrapping in 64 bits


def _ngram_tables(ids: np.ndarray, lens: np.ndarray):
    """(n, keys, characters) of the n-grams of the word ids for n = 2, 3, ...: a tuple of n words as one
    64-bit number (a polynomial of the ids, wrapping), so that counting and "seen before" work on
    integers (collisions at 2^-64 change no signal). Each n's keys extend the previous n's by one word."""
    csum = np.concatenate(([0], np.cumsum(lens)))
    keys = ids
    with np.errstate(over="ignore"):
        for n in range(2, len(ids) + 1):
            keys = keys[:-1] * _P + ids[n - 1:]
            yield n, keys, csum[n:] - csum[:len(keys)]


def _top_ngram_frac(keys: np.ndarray, chars: np.ndarray, total_chars: int) -> float:
    """Characters of the most frequent n-gram times its count, over all word characters (ties: the first)."""
    ordered = np.sort(keys)   # an unstable sort: an n-gram's characters are the same wherever it occurs
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, len(ordered)))
    top = counts.max()
    if top < 2:
        return 0.0
    tied = ordered[starts[counts == top]]
    first = int(np.argmax(keys == tied[0])) if len(tied) == 1 else int(np.flatnonzero(np.isin(keys, tied))[0])
    return float(chars[first]) * int(top) / total_chars


def _dup_ngram_frac(keys: np.ndarray, chars: np.ndarray, n: int, total_chars: int) -> float | None:
    """Characters in n-grams already seen (non-overlapping once counted), over all word characters.

    Gopher's walk: at each position, an n-gram seen at a visited position counts and the walk jumps
    n ahead, any other is remembered and the walk steps one. Only repeats (an n-gram that occurred
    earlier) can count, so the walk visits those one by one and remembers the runs of first
    occurrences between them in one set update. None: no n-gram occurs twice."""
    order = np.argsort(keys, kind="stable")   # equal keys in the order they occur
    same = keys[order[1:]] == keys[order[:-1]]
    if not same.any():
        return None
    repeats = np.sort(order[1:][same]).tolist()
    keys_l, chars_l = keys.tolist(), chars.tolist()
    seen: set[int] = set()
    pos = repeated = 0
    for j in repeats:
        if j < pos:
            continue  # jumped over
        seen.update(keys_l[pos:j])
        if keys_l[j] in seen:
            repeated += chars_l[j]
            pos = j + n
        else:
            seen.add(keys_l[j])
            pos = j + 1
    return repeated / total_chars


def _repetition(ids: np.ndarray, lens: np.ndarray, total_chars: int) -> list[float]:
    """The top n-gram shares for TOP_NGRAMS, then the duplicated n-gram shares for DUP_NGRAMS (both
    ascending and contiguous: one table per n serves both). Once no n-gram repeats, no longer one can
    (it would repeat its first n words), so the rest are 0 without a look."""
    top: list[float] = []
    dup: list[float] = []
    if total_chars:
        for n, keys, chars in _ngram_tables(ids, lens):
            if n in TOP_NGRAMS:
                top.append(_top_ngram_frac(keys, chars, total_chars))
            if n in DUP_NGRAMS:
                frac = _dup_ngram_frac(keys, chars, n, total_chars)
                if frac is None:
                    break
                dup.append(frac)
            if n >= DUP_NGRAMS[-1]:
                break
    return top + [0.0] * (len(TOP_NGRAMS) - len(top)) + dup + [0.0] * (len(DUP_NGRAMS) - len(dup))


def _composition(lines: list[str], line_words: list[list[str]], ws: list[str], text: str,
                 lang: str) -> list[float]:
    """The signals read from how the lines and words are made (Gopher quality, C4 and FineWeb lines)."""
    n_words = len(ws)
    n_lines = max(len(lines), 1)
    short_chars = SHORT_LINE_CHARS.get(lang, DEFAULT_SHORT_LINE_CHARS)
    c4_short = sum(len(lw) < C4_MIN_LINE_WORDS for lw in line_words)
    n_symbols = text.count("#") + sum(text.count(e) for e in ELLIPSES)
    return [
        sum(map(len, ws)) / n_words if n_words else 0.0,
        n_symbols / n_words if n_words else 0.0,
        sum(ln.startswith(BULLETS) for ln in lines) / n_lines,
        sum(ln.endswith(ELLIPSES) for ln in lines) / n_lines,
        letter_words(ws) / n_words if n_words else 0.0,
        c4_short / n_lines,
        sum(ln.endswith(END_PUNCT) for ln in lines) / n_lines,
        sum(len(ln) <= short_chars for ln in lines) / n_lines,
        text.count("\n") / n_words if n_words else 0.0,
    ]


def doc_signals(text: str, lang: str) -> list[float]:
    """All SIGNALS of one document, in order."""
    text = text[:MAX_CHARS]
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    # Words never span a line, so a line's words are the text's words there: each line is cut once (jieba
    # was a third of the heuristics' time when it cut the text, its lines and its prose apart). Japanese
    # script runs keep an ideographic space (U+3000) that stripping takes off a line's ends: cut whole.
    line_words = [words(ln, lang) for ln in lines]
    ws = words(text, lang) if lang == "ja" else [w for lw in line_words for w in lw]
    n_words = len(ws)
    n_lines = max(len(lines), 1)
    code = code_lines(lines)
    n_code = sum(code)
    composition = None
    if n_code:
        prose_lines = [ln for ln, c in zip(lines, code) if not c]
        prose_line_words = [lw for lw, c in zip(line_words, code) if not c]
        prose_words = [w for lw in prose_line_words for w in lw]
        if len(prose_words) >= MIN_PROSE_WORDS:
            composition = _composition(prose_lines, prose_line_words, prose_words, "\n".join(prose_lines), lang)
    if composition is None:
        composition = _composition(lines, line_words, ws, text, lang)
    (mean_word_len, symbol_ratio, bullets, ellipses, alpha, c4_short, line_punct, short_lines,
     newline_ratio) = composition
    lower = " ".join(ws).lower().split(" ") if ws else []   # no word holds a space; one call, not one a word
    content = [w for w in lower if w.isalnum() or _ALNUM.search(w)]  # repetition ignores punctuation tokens
    content_chars = sum(map(len, content))
    # A word's id is its string hash (64 bits, equal words equal): n-grams compare by id, and no signal
    # depends on an id's value, only on which are equal, so the per-process hash seed changes nothing.
    ids = np.fromiter(map(hash, content), np.int64, len(content)).view(np.uint64)
    lens = np.fromiter(map(len, content), np.int64, len(content))
    stop = STOP_WORDS.get(lang, frozenset())
    dup_lines, dup_line_chars = _duplicates(lines)
    dup_paras, dup_para_chars = _duplicates(paras)
    text_chars = max(len(text), 1)
    low_text = text.lower()
    return [
        float(n_words),
        mean_word_len,
        symbol_ratio,
        bullets,
        ellipses,
        alpha,
        float(sum(text.count(w) for w in stop) if lang == "ja" else sum(map(stop.__contains__, lower))),
        dup_lines / n_lines,
        dup_paras / max(len(paras), 1),
        dup_line_chars / text_chars,
        dup_para_chars / text_chars,
        *_repetition(ids, lens, content_chars),
        sum("javascript" in ln.lower() for ln in lines) / n_lines if "javascript" in low_text else 0.0,
        sum(any(p in ln.lower() for p in POLICY) for ln in lines) / n_lines
        if any(p in low_text for p in POLICY) else 0.0,
        float("lorem ipsum" in low_text),
        float("{" in text),
        c4_short,
        line_punct,
        short_lines,
        newline_ratio,
        n_code / n_lines,
    ]


def signals_table(texts: list[str], langs: list[str]) -> dict[str, pa.Array]:
    """SIGNALS as float64 columns for a batch of documents."""
    values = np.array([doc_signals(t or "", lang) for t, lang in zip(texts, langs)], dtype=np.float64)
    values = values.reshape(len(texts), len(SIGNALS))
    return {name: pa.array(values[:, i]) for i, name in enumerate(SIGNALS)}
