"""Language ID of whole documents: fastText lid.176 on cleaned text, with the script as a second opinion.

lid.176 is trained on sentences; a page is one long "sentence" of prose mixed
with URLs, shell commands, file names and menu entries, all in Latin script
whatever the page's language. So the document is cleaned first (URLs and
e-mail addresses, code-like lines, tokens with digits or path characters and
very short lines removed; capped at `MAX_CHARS`, taken from evenly spaced
windows of a long text) and fastText predicts once on all of it.

Its top labels are then checked against the letters' scripts, where fastText
is known to be weak: Han without kana is Chinese (lid.176 calls classical
poems Japanese), kana is Japanese, Hangul is Korean, Cyrillic and the other
alphabets rule out languages written otherwise. The label is the best of the
top `TOP_K` that the dominant script allows, and `lang_score` is its
probability among the labels that script allows: the per-document confidence
the `language` rule thresholds. Without a dominant script (or no allowed label
in the top `TOP_K`) fastText's top label stands.
"""
from __future__ import annotations

import re

import numpy as np

from crawl2model.core.text import HAN, HIRAGANA, KATAKANA
from crawl2model.pipeline.filters.models import RankedLabeller

MAX_CHARS = 2000         # the cleaned text fastText sees; the rest adds time, not accuracy
WINDOWS = 4              # a longer cleaned text is sampled in this many evenly spaced windows
MIN_LINE_WEIGHT = 20     # shorter lines (menus, titles, numbers) are dropped; a CJK character weighs 3
MIN_LETTER_SHARE = 0.6   # a line with fewer letters among its non-space characters is code or a table
TOP_K = 10
MIN_SCRIPT_SHARE = 0.2   # share of the (weighted) letters a language's script needs for its label
DOMINANT = 0.5           # share a script needs to name the language when fastText names none it allows
MIN_KANA_SHARE = 0.05    # Han text with fewer kana than this is Chinese
CJK_WEIGHT = 3           # one CJK character carries about what three Latin letters do

_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|\S+@\S+\.\w+")
_PUNCT = re.compile(r"[^\w\s]")
_PROMPT = re.compile(r"(?:[$#%>]|>>>)\s")   # a shell or REPL prompt starts a command line


def _cls(*ranges: tuple[int, int]) -> str:
    return "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges)


_CJK = f"{HAN}{HIRAGANA}{KATAKANA}{_cls((0xAC00, 0xD7AF))}"
_CJK_CHAR = re.compile(f"[{_CJK}]")
# Tokens with digits, path or option characters (file names, versions, commands) are in no language;
# a token ends at a CJK character, since CJK text has no spaces to end it.
_TECH_TOKEN = re.compile(f"[^\\s{_CJK}]*(?:[\\d_/\\\\=<>{{}}\\[\\]|@#$%^*~`+]|\\.\\w|::|--)[^\\s{_CJK}]*")


SCRIPTS: dict[str, re.Pattern] = {
    "latin": re.compile(f"[A-Za-z{_cls((0xC0, 0x24F), (0x1E00, 0x1EFF))}]"),
    "cyrillic": re.compile(f"[{_cls((0x400, 0x52F))}]"),
    "greek": re.compile(f"[{_cls((0x370, 0x3FF))}]"),
    "arabic": re.compile(f"[{_cls((0x600, 0x6FF), (0x750, 0x77F))}]"),
    "hebrew": re.compile(f"[{_cls((0x590, 0x5FF))}]"),
    "han": re.compile(f"[{HAN}]"),
    "kana": re.compile(f"[{HIRAGANA}{KATAKANA}]"),
    "hangul": re.compile(f"[{_cls((0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3130, 0x318F))}]"),
}
_CJK_SCRIPTS = ("han", "kana", "hangul")

# lid.176's labels written in each script (the others are Latin, or in scripts not told apart here).
SCRIPT_LANGS: dict[str, frozenset[str]] = {
    "cyrillic": frozenset({
        "ru", "uk", "bg", "be", "sr", "mk", "kk", "ky", "tt", "ba", "mn", "ce", "tg", "cv", "mhr", "sah", "myv",
        "mrj", "bxr", "kv", "krc", "av", "rue", "xal", "lez", "os", "tyv"}),
    "greek": frozenset({"el"}),
    "arabic": frozenset({"ar", "fa", "ur", "ug", "ckb", "arz", "azb", "pnb", "ps", "sd", "mzn", "lrc"}),
    "hebrew": frozenset({"he", "yi"}),
    "chinese": frozenset({"zh", "wuu", "yue"}),
    "japanese": frozenset({"ja"}),
    "korean": frozenset({"ko"}),
}
SCRIPT_GROUP = {"chinese": "cjk", "japanese": "cjk", "korean": "hangul"}   # label group -> script group
# The language a script alone tells, when fastText's top labels hold none it allows.
SCRIPT_DEFAULT = {"chinese": "zh", "japanese": "ja", "korean": "ko", "greek": "el"}
# Labels in scripts not told apart here: allowed when letters outside the scripts above hold their share.
_OTHER_SCRIPT_LANGS = frozenset({
    "th", "lo", "km", "my", "bo", "ka", "xmf", "hy", "ta", "te", "kn", "ml", "gu", "pa", "or", "si", "dv", "am", "hi",
    "mr", "ne", "sa", "new", "bh", "mai", "gom", "dty", "bn", "as", "bpy"})


def _weight(line: str) -> int:
    return len(line) + (CJK_WEIGHT - 1) * len(_CJK_CHAR.findall(line))


def _is_prose(line: str) -> bool:
    if _PROMPT.match(line):
        return False
    chars = [c for c in line if not c.isspace()]
    return bool(chars) and sum(c.isalpha() for c in chars) / len(chars) >= MIN_LETTER_SHARE


def clean_text(text: str) -> str:
    """The text lid.176 should see: prose lines without URLs, code or technical tokens, capped."""
    kept = []
    for line in _URL.sub(" ", text).split("\n"):
        line = line.strip()
        if not _is_prose(line):
            continue
        line = " ".join(_PUNCT.sub(" ", _TECH_TOKEN.sub(" ", line)).split())
        if _weight(line) >= MIN_LINE_WEIGHT:
            kept.append(line)
    flat = " ".join(kept) or " ".join(_PUNCT.sub(" ", _URL.sub(" ", text)).split())
    if len(flat) <= MAX_CHARS:
        return flat
    width = MAX_CHARS // WINDOWS
    starts = np.linspace(0, len(flat) - width, WINDOWS).astype(int)
    return " ".join(flat[s:s + width] for s in starts)


def script_shares(text: str) -> dict[str, float]:
    """Share of the letters (a CJK character weighing CJK_WEIGHT) in each script group; "cjk" is
    Han and kana together, and "kana" is the kana share of those."""
    found = {name: len(rx.findall(text)) for name, rx in SCRIPTS.items()}
    counts = {name: n * (CJK_WEIGHT if name in _CJK_SCRIPTS else 1) for name, n in found.items()}
    counts["other"] = max(sum(c.isalpha() for c in text) - sum(found.values()), 0)
    cjk = counts.pop("han") + counts["kana"]
    kana = counts.pop("kana")
    counts["cjk"] = cjk
    total = sum(counts.values())
    shares = {k: v / total for k, v in counts.items()} if total else {}
    shares["kana"] = kana / cjk if cjk else 0.0
    return shares


def _group(label: str) -> str:
    for group, langs in SCRIPT_LANGS.items():
        if label in langs:
            return group
    return "other" if label in _OTHER_SCRIPT_LANGS else "latin"


def allowed(shares: dict[str, float], label: str) -> bool:
    """Whether a document with these script shares may be in language `label`: its script must hold
    MIN_SCRIPT_SHARE of the letters, and Han text is Japanese only with kana, Chinese only without."""
    group = _group(label)
    if not shares:
        return True
    if group in ("chinese", "japanese"):
        has_kana = shares["kana"] >= MIN_KANA_SHARE
        return shares["cjk"] >= MIN_SCRIPT_SHARE and has_kana == (group == "japanese")
    return shares[SCRIPT_GROUP.get(group, group)] >= MIN_SCRIPT_SHARE


def decide(ranked: list[tuple[str, float]], shares: dict[str, float]) -> tuple[str, float]:
    """(language, confidence) from fastText's ranked labels and the document's script shares.

    The first label the scripts allow wins, with its probability among the allowed labels. When
    none is allowed and one script holds DOMINANT of the letters, that script's language
    (Han without kana: zh) wins with that share as its confidence; else fastText's top label."""
    fits = [(lab, p) for lab, p in ranked if allowed(shares, lab)]
    if fits:
        lab, p = fits[0]
        return lab, min(p / max(sum(q for _, q in fits), 1e-12), 1.0)
    for group, lang in SCRIPT_DEFAULT.items():
        share = shares.get(SCRIPT_GROUP.get(group, group), 0.0)
        if share >= DOMINANT and allowed(shares, lang):
            return lang, share
    if not ranked:
        return "", 0.0
    return ranked[0][0], min(ranked[0][1], 1.0)


def identify(texts: list[str], model: RankedLabeller) -> tuple[list[str], np.ndarray]:
    """(lang, lang_score) per text, one model call per batch; an empty text gets ("", 0.0)."""
    cleaned = [clean_text(t or "") for t in texts]
    present = [i for i, s in enumerate(cleaned) if s]
    langs, scores = [""] * len(texts), np.zeros(len(texts), dtype=np.float64)
    if present:
        for i, ranked in zip(present, model.ranked([cleaned[i] for i in present], TOP_K)):
            langs[i], scores[i] = decide(ranked, script_shares(cleaned[i]))
    return langs, scores
