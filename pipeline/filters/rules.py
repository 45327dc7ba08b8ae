"""The rule set: thresholds on stored signal columns, per language, in order.

A rule reads one column and a bound (`min` or `max`), with overrides per
language. Rules are applied to stored signals only, so `--reapply` with a new
rule set needs no model. A document is rejected by the first rule it fails
(recorded with the value and the threshold) and all failed rules are listed.
A NaN signal (e.g. perplexity without a model for the language) passes.

Perplexity thresholds are either absolute (`perplexity` rule) or by CCNet
bucket: `perplexity_pct` is the document's percentile among documents of its
language in this run, and `perplexity_bucket` names head/middle/tail at the
`buckets` cutoffs (default 30% and 60%, as CCNet).

TOML (`--rules rules.toml`, or inline as the [filter.rules] table of a run
file, with the tables below as [filter.rules.language], [filter.rules.rules.NAME]):

    [language]
    keep = ["en", "zh"]      # "*" keeps every language
    min_score = 0.65
    [perplexity]
    buckets = [0.3, 0.6]
    [rules.gopher_min_words]
    signal = "n_words"
    min = 50
    lang = { zh = 80 }       # per-language thresholds
    [rules.ccnet_tail]
    enabled = true           # a default rule switched on or off
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.core.config import load_toml
from crawl2model.core.errors import ConfigError

LANGUAGE_RULE = "language"
BUCKET_NAMES = ("head", "middle", "tail")
QUANTILES = tuple(i / 100 for i in range(1, 100))   # per-language perplexity percentiles, for ranks

DECISION_FIELDS = [
    pa.field("perplexity_pct", pa.float64()),
    pa.field("perplexity_bucket", pa.string()),
    pa.field("filter_rule", pa.string()),          # null when kept
    pa.field("filter_value", pa.float64()),
    pa.field("filter_threshold", pa.float64()),
    pa.field("filter_failed", pa.list_(pa.string())),
]
DECISION_COLUMNS = [f.name for f in DECISION_FIELDS]


@dataclass(frozen=True)
class Rule:
    name: str
    signal: str
    op: str                      # "min": value >= threshold passes; "max": value <= threshold passes
    threshold: float
    lang: dict[str, float] = field(default_factory=dict)
    enabled: bool = True

    def threshold_for(self, lang: str) -> float:
        return self.lang.get(lang, self.threshold)


def _r(name: str, signal: str, op: str, threshold: float, enabled: bool = True, **lang: float) -> Rule:
    return Rule(name, signal, op, threshold, dict(lang), enabled)


# Defaults: Gopher (Rae et al. 2021), C4 (Raffel et al. 2020), FineWeb (Penedo et al. 2024), with the
# changes our measurements on held-out real pages asked for (tests/test_filter_quality.py):
# - CJK words are jieba words / script runs: shorter, and punctuation tokens lower the letter share;
# - FineWeb's duplicated-line characters 0.01 -> 0.1 and C4's curly brace rule off: documentation
#   repeats navigation lines and quotes code, and would lose a third of its clean prose;
# - quality_score and perplexity bounds sit between clean prose and junk of the held-out pages;
# - measured on pages of other packages (corpora/heldout_quality.py, dev split; bench/quality.py), the
#   classifier's P(hq) of unseen good prose spreads lower, to 0.1 (0.25 lost 3% of it, no junk gained), as
#   does zh perplexity (2000 -> 3000), and documentation repeats phrases: Gopher's duplicated n-gram
#   fractions + 0.05 (0.15..0.10 -> 0.20..0.15); the composition signals (letters per word, line endings,
#   short lines, bullets) read the prose lines of a page that quotes code (heuristics.code_lines), which
#   kept 96.2% of that dev split's prose instead of 95.4% with no junk gained.
# - URL rules first, as in datatrove/FineWeb (blocklist.py: the UT1 lists; soft words need two in a URL);
#   C4's bad-words test on the text wants two distinct banned words (one alone is mostly "xxx", a
#   placeholder in documentation: 19 of 4,200 held-out documentation pages had it) or three soft ones.
DEFAULT_RULES: tuple[Rule, ...] = (
    _r("url_blocklist", "url_blocked", "max", 0),
    _r("url_banned_words", "url_banned_words", "max", 0),
    _r("url_soft_banned_words", "url_soft_banned_words", "max", 1),
    _r("url_banned_subwords", "url_banned_subwords", "max", 0),
    _r("c4_banned_words", "text_banned_words", "max", 1),
    _r("c4_soft_banned_words", "text_soft_banned_words", "max", 2),
    _r("gopher_min_words", "n_words", "min", 50),
    _r("gopher_max_words", "n_words", "max", 100_000),
    _r("gopher_min_mean_word_len", "mean_word_len", "min", 3, zh=1, ja=1),
    _r("gopher_max_mean_word_len", "mean_word_len", "max", 10, zh=12, ja=12),
    _r("gopher_symbol_word_ratio", "symbol_word_ratio", "max", 0.1),
    _r("gopher_bullet_lines", "bullet_line_frac", "max", 0.9),
    _r("gopher_ellipsis_lines", "ellipsis_line_frac", "max", 0.3),
    _r("gopher_alpha_words", "alpha_word_frac", "min", 0.8, zh=0.5, ja=0.5),
    _r("gopher_stop_words", "stop_words", "min", 2),
    _r("gopher_dup_lines", "dup_line_frac", "max", 0.3),
    _r("gopher_dup_paras", "dup_para_frac", "max", 0.3),
    _r("gopher_dup_line_chars", "dup_line_char_frac", "max", 0.2),
    _r("gopher_dup_para_chars", "dup_para_char_frac", "max", 0.2),
    _r("gopher_top_2gram", "top_2gram_frac", "max", 0.2),
    _r("gopher_top_3gram", "top_3gram_frac", "max", 0.18),
    _r("gopher_top_4gram", "top_4gram_frac", "max", 0.16),
    *(_r(f"gopher_dup_{n}gram", f"dup_{n}gram_frac", "max", t)
      for n, t in ((5, 0.20), (6, 0.19), (7, 0.18), (8, 0.17), (9, 0.16), (10, 0.15))),
    _r("c4_lorem_ipsum", "c4_lorem_ipsum", "max", 0),
    _r("c4_javascript_lines", "c4_javascript_lines", "max", 0.1),
    _r("c4_policy_lines", "c4_policy_lines", "max", 0.1),
    _r("c4_curly_brace", "c4_curly_brace", "max", 0, enabled=False),
    _r("c4_short_lines", "c4_short_line_frac", "max", 0.9),
    _r("fineweb_line_punct", "line_punct_frac", "min", 0.12),
    _r("fineweb_short_lines", "short_line_frac", "max", 0.67),
    _r("fineweb_dup_line_chars", "dup_line_char_frac", "max", 0.1),
    _r("fineweb_newline_ratio", "newline_word_ratio", "max", 0.3),
    _r("quality_score", "quality_score", "min", 0.1),
    _r("perplexity", "perplexity", "max", 1500, zh=3000),
    _r("ccnet_tail", "perplexity_pct", "max", 0.6, enabled=False),
)


@dataclass(frozen=True)
class RuleSet:
    keep_langs: tuple[str, ...] = ("en", "zh")
    min_lang_score: float = 0.65
    buckets: tuple[float, float] = (0.3, 0.6)
    rules: tuple[Rule, ...] = DEFAULT_RULES

    @property
    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def to_dict(self) -> dict[str, Any]:
        return {"language": {"keep": list(self.keep_langs), "min_score": self.min_lang_score},
                "perplexity": {"buckets": list(self.buckets)},
                "rules": {r.name: {"signal": r.signal, r.op: r.threshold, "lang": r.lang, "enabled": r.enabled}
                          for r in self.rules}}


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _rule_from(name: str, table: dict, base: Rule | None, where: str) -> Rule:
    at = f"{where}: rule {name}"
    table = _table(table, at)
    unknown = set(table) - {"signal", "min", "max", "lang", "enabled"}
    if unknown:
        raise ConfigError(f"{at}: unknown keys {sorted(unknown)}")
    if "min" in table and "max" in table:
        raise ConfigError(f"{at}: give min or max, not both (make two rules)")
    rule = base or Rule(name, "", "min", math.nan)
    if "signal" in table:
        rule = replace(rule, signal=str(table["signal"]))
    for op in ("min", "max"):
        if op in table:
            rule = replace(rule, op=op, threshold=_number(table[op], f"{at}: {op}"))
    if "lang" in table:
        if not isinstance(table["lang"], dict):
            raise ConfigError(f"{at}: lang must be a table like {{ zh = 0.3 }}")
        rule = replace(rule, lang={**rule.lang, **{k: _number(v, f"{at}: lang.{k}") for k, v in table["lang"].items()}})
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise ConfigError(f"{at}: enabled must be true or false, got {table['enabled']!r}")
        rule = replace(rule, enabled=table["enabled"])
    if not rule.signal or math.isnan(rule.threshold):
        raise ConfigError(f"{where}: new rule {name} needs a signal and a min or max")
    return rule


def ruleset_from_dict(doc: dict, where: str = "rules") -> RuleSet:
    """Defaults updated by a TOML document: rules named like a default change it, others are added."""
    doc = _table(doc, where)
    unknown = set(doc) - {"language", "perplexity", "rules"}
    if unknown:
        raise ConfigError(f"{where}: unknown tables {sorted(unknown)} (known: language, perplexity, rules)")
    rs = RuleSet()
    lang = _table(doc.get("language", {}), f"{where}: language")
    unknown = set(lang) - {"keep", "min_score"}
    if unknown:
        raise ConfigError(f"{where}: language: unknown keys {sorted(unknown)} (known: keep, min_score)")
    if "keep" in lang:
        if not isinstance(lang["keep"], list) or not all(isinstance(x, str) for x in lang["keep"]):
            raise ConfigError(f"{where}: language.keep must be a list of language codes, got {lang['keep']!r}")
        rs = replace(rs, keep_langs=tuple(lang["keep"]))
    if "min_score" in lang:
        rs = replace(rs, min_lang_score=_number(lang["min_score"], f"{where}: language.min_score"))
    perplexity = _table(doc.get("perplexity", {}), f"{where}: perplexity")
    if set(perplexity) - {"buckets"}:
        raise ConfigError(f"{where}: perplexity: unknown keys {sorted(set(perplexity) - {'buckets'})} (known: buckets)")
    buckets = perplexity.get("buckets")
    if buckets is not None:
        if (not isinstance(buckets, list) or len(buckets) != 2
                or not 0 < _number(buckets[0], where) < _number(buckets[1], where) < 1):
            raise ConfigError(f"{where}: perplexity.buckets must be two cutoffs 0 < a < b < 1")
        rs = replace(rs, buckets=(float(buckets[0]), float(buckets[1])))
    rules = {r.name: r for r in rs.rules}
    for name, table in _table(doc.get("rules", {}), f"{where}: rules").items():
        rules[name] = _rule_from(name, table, rules.get(name), where)
    return replace(rs, rules=tuple(rules.values()))


def load_ruleset(source: str | dict | None) -> RuleSet:
    """The rule set of a TOML file, of an inline table (a run file's [filter.rules]), or the defaults."""
    if source is None:
        return RuleSet()
    if isinstance(source, dict):
        return ruleset_from_dict(source, "[filter.rules]")
    return ruleset_from_dict(load_toml(source), str(source))


# --- applying (pure, on Arrow batches) ----------------------------------------------------

def percentile_ranks(values: np.ndarray, langs: list[str], quantiles: dict[str, list[float]]) -> np.ndarray:
    """Each value's percentile among its language's values (from the run's quantiles); NaN if unknown."""
    out = np.full(len(values), np.nan)
    for lang, qs in quantiles.items():
        idx = np.array([i for i, x in enumerate(langs) if x == lang], dtype=np.int64)
        if len(idx) and qs:
            v = values[idx]
            ranks = np.searchsorted(np.asarray(qs), v, side="left") / (len(qs) + 1)
            out[idx] = np.where(np.isnan(v), np.nan, ranks)
    return out


def decide(batch: pa.RecordBatch, rs: RuleSet, quantiles: dict[str, list[float]]) -> pa.RecordBatch:
    """`batch` (with signal columns) plus DECISION_COLUMNS."""
    n = batch.num_rows
    langs = batch.column("lang").to_pylist()
    lang_arr = np.array(langs, dtype=object)
    cols: dict[str, np.ndarray] = {}

    def column(name: str) -> np.ndarray:
        if name not in cols:
            if name not in batch.schema.names:
                raise ConfigError(f"rule signal {name!r} is not a column of the table")
            cols[name] = pc.fill_null(batch.column(name), math.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        return cols[name]

    pct = percentile_ranks(column("perplexity"), langs, quantiles)
    cols["perplexity_pct"] = pct
    low, high = rs.buckets
    # Bounds included below, as a `max` rule on perplexity_pct passes them.
    bucket = np.where(np.isnan(pct), None, np.where(pct <= low, BUCKET_NAMES[0],
                                                    np.where(pct <= high, BUCKET_NAMES[1], BUCKET_NAMES[2])))
    first = np.full(n, None, dtype=object)
    value = np.full(n, np.nan)
    threshold = np.full(n, np.nan)
    failed: list[list[str]] = [[] for _ in range(n)]

    def record(fails: np.ndarray, name: str, vals: np.ndarray, thr: np.ndarray) -> None:
        new = fails & (first == None)  # noqa: E711 (element-wise)
        first[new], value[new], threshold[new] = name, vals[new], thr[new]
        for i in np.flatnonzero(fails):
            failed[i].append(name)

    scores = column("lang_score")
    in_scope = np.ones(n, bool) if "*" in rs.keep_langs else np.isin(lang_arr, list(rs.keep_langs))
    record(~in_scope | (scores < rs.min_lang_score), LANGUAGE_RULE, scores, np.full(n, rs.min_lang_score))
    for rule in rs.active:
        vals = column(rule.signal)
        thr = np.array([rule.threshold_for(x) for x in langs], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            fails = (vals < thr) if rule.op == "min" else (vals > thr)
        record(fails & ~np.isnan(vals), rule.name, vals, thr)
    extra = [pa.array(pct), pa.array(bucket.tolist(), pa.string()), pa.array(first.tolist(), pa.string()),
             pa.array(value), pa.array(threshold), pa.array(failed, pa.list_(pa.string()))]
    keep = [c for c in batch.schema.names if c not in DECISION_COLUMNS]
    return pa.RecordBatch.from_arrays([batch.column(c) for c in keep] + extra,
                                      schema=pa.schema([batch.schema.field(c) for c in keep] + DECISION_FIELDS))
