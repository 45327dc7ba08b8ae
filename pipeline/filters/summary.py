"""The filter report's counts and the histograms' sample, from one pass over the decided documents.

Each Spark task sums its own documents (`partition_summary`, a pure function
on Arrow batches run by mapInArrow): documents per (language, first failed
rule), failures per (language, rule), PII totals, and the rows drawn for the
histograms. Its output is a few hundred rows per task, so the driver merges
them (`merge`) after one job without a shuffle, where Spark's group-bys took
a job per aggregation stage (five for the counts, one more for the sample):
on a small input each job is a fixed cost a user waits for.
"""
from __future__ import annotations

import collections
import zlib
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.pipeline.filters import pii, rules

PII_DOCUMENTS = "pii_documents"


def schema(plotted: tuple[str, ...]) -> pa.Schema:
    """Rows of kind first/failed/pii carry a count; "sample" rows carry the plotted signals."""
    return pa.schema([pa.field("kind", pa.string()), pa.field("lang", pa.string()), pa.field("rule", pa.string()),
                      pa.field("count", pa.int64()), *(pa.field(s, pa.float64()) for s in plotted)])


def drawn(doc_ids: list, fraction: float) -> np.ndarray:
    """Whether each document is in the histograms' sample: a hash of its id below `fraction`, so the
    sample is the same whatever the partitioning."""
    if fraction >= 1:
        return np.ones(len(doc_ids), bool)
    limit = fraction * 2**32
    return np.array([zlib.crc32(str(d).encode()) < limit for d in doc_ids], dtype=bool)


def partition_summary(batches: Iterator[pa.RecordBatch], plotted: tuple[str, ...],
                      fraction: float) -> Iterator[pa.RecordBatch]:
    """One task's counts (one batch at the end) and its sampled rows (one batch per input batch)."""
    out_schema = schema(plotted)
    first: collections.Counter = collections.Counter()
    failed: collections.Counter = collections.Counter()
    pii_totals = dict.fromkeys([*pii.COUNT_COLUMNS.values(), PII_DOCUMENTS], 0)
    for batch in batches:
        langs = batch.column("lang").to_pylist()
        first.update(zip(langs, batch.column("filter_rule").to_pylist()))
        for lang, names in zip(langs, batch.column("filter_failed").to_pylist()):
            failed.update((lang, name) for name in names or ())
        any_pii = np.zeros(batch.num_rows, bool)
        for col in pii.COUNT_COLUMNS.values():
            counts = pc.fill_null(batch.column(col), 0).to_numpy(zero_copy_only=False)
            pii_totals[col] += int(counts.sum())
            any_pii |= counts > 0
        pii_totals[PII_DOCUMENTS] += int(any_pii.sum())
        take = np.flatnonzero(drawn(batch.column("doc_id").to_pylist(), fraction))
        if len(take):
            rows = batch.take(pa.array(take))
            m = len(take)
            yield pa.RecordBatch.from_arrays(
                [pa.array(["sample"] * m), rows.column("lang"), pa.nulls(m, pa.string()), pa.nulls(m, pa.int64()),
                 *(rows.column(s).cast(pa.float64()) for s in plotted)], schema=out_schema)
    keyed = [("first", lang, rule, n) for (lang, rule), n in first.items()]
    keyed += [("failed", lang, rule, n) for (lang, rule), n in failed.items()]
    keyed += [("pii", None, col, n) for col, n in pii_totals.items()]
    columns = list(zip(*keyed)) if keyed else [[], [], [], []]
    m = len(keyed)
    yield pa.RecordBatch.from_arrays(
        [pa.array(columns[0], pa.string()), pa.array(columns[1], pa.string()), pa.array(columns[2], pa.string()),
         pa.array(columns[3], pa.int64()), *(pa.nulls(m, pa.float64()) for _ in plotted)], schema=out_schema)


def merge(parts: pa.Table, rs: rules.RuleSet) -> tuple[dict, pa.Table]:
    """The report's counts (docs_in/out, removed_by_reason, per-rule and per-language pass rates, PII
    totals) and the histograms' sample, from the tasks' `partition_summary` rows."""
    d = parts.select(["kind", "lang", "rule", "count"]).to_pydict()
    names = [rules.LANGUAGE_RULE] + [r.name for r in rs.active]
    first_by_rule = {n: 0 for n in names}
    failed_by_rule = {n: 0 for n in names}
    per_lang: dict[str, dict] = {}
    lang_fails: dict[str, collections.Counter] = {}
    pii_totals: collections.Counter = collections.Counter()
    for kind, lang, rule, n in zip(d["kind"], d["lang"], d["rule"], d["count"]):
        if kind == "first":
            entry = per_lang.setdefault(lang or "?", {"docs_in": 0, "docs_out": 0, "removed_by_reason": {}})
            entry["docs_in"] += n
            if rule is None:
                entry["docs_out"] += n
            else:
                entry["removed_by_reason"][rule] = entry["removed_by_reason"].get(rule, 0) + n
                first_by_rule[rule] += n
        elif kind == "failed":
            failed_by_rule[rule] += n
            lang_fails.setdefault(lang or "?", collections.Counter())[rule] += n
        elif kind == "pii":
            pii_totals[rule] += n
    docs_in = sum(e["docs_in"] for e in per_lang.values())
    kept = sum(e["docs_out"] for e in per_lang.values())
    for lang, entry in per_lang.items():
        entry["pass_rate"] = round(entry["docs_out"] / entry["docs_in"], 4)
        entry["rule_pass_rate"] = {n: round(1 - lang_fails.get(lang, {}).get(n, 0) / entry["docs_in"], 4)
                                   for n in names}
    report = {
        # PII replaced by placeholders (kept and rejected documents alike)
        "pii": {c.removeprefix("pii_"): int(pii_totals[c]) for c in [*pii.COUNT_COLUMNS.values(), PII_DOCUMENTS]},
        # removed_by_reason: the first rule each rejected document failed
        "docs_in": docs_in, "docs_out": kept,
        "removed_by_reason": {n: c for n, c in first_by_rule.items() if c},
        "pass_rate": round(kept / docs_in, 4) if docs_in else None,
        # each rule alone, over all documents; and how many documents it was the first to reject
        "rules": {n: {"pass_rate": round(1 - failed_by_rule[n] / docs_in, 4) if docs_in else None,
                      "first_failed": first_by_rule[n]} for n in names},
        "per_language": dict(sorted(per_lang.items(), key=lambda kv: -kv[1]["docs_in"])),
    }
    sample = parts.filter(pc.equal(parts.column("kind"), "sample")).drop_columns(["kind", "rule", "count"])
    return report, sample
