"""The filter report's counts and histogram sample from per-task summaries (pipeline/filters/summary.py)."""
from __future__ import annotations

import collections

import pyarrow as pa

from crawl2model.pipeline.filters import rules, summary

PLOTTED = ("n_words",)


def decided(n: int) -> pa.Table:
    rule_of = [None, "gopher_min_words", "language", None, "fineweb_line_punct"]
    return pa.table({
        "doc_id": [f"d{i:04d}" for i in range(n)], "lang": ["en" if i % 3 else "zh" for i in range(n)],
        "filter_rule": [rule_of[i % 5] for i in range(n)],
        "filter_failed": [[r, "fineweb_short_lines"] if r else [] for r in (rule_of[i % 5] for i in range(n))],
        "pii_emails": pa.array([int(i % 7 == 0) for i in range(n)], pa.int32()),
        "pii_ip_addresses": pa.array([2 * int(i % 11 == 0) for i in range(n)], pa.int32()),
        "pii_phones": pa.array([None] * n, pa.int32()),   # an older output's unmeasured column
        "n_words": [float(i) for i in range(n)]})


def summarize(table: pa.Table, cuts: list[int], fraction: float) -> tuple[dict, pa.Table]:
    parts = []
    for a, b in zip([0, *cuts], [*cuts, table.num_rows]):
        parts += summary.partition_summary(iter(table.slice(a, b - a).to_batches(max_chunksize=64)), PLOTTED,
                                           fraction)
    return summary.merge(pa.Table.from_batches(parts, schema=summary.schema(PLOTTED)), rules.RuleSet())


def test_counts_match_the_documents_whatever_the_partitioning():
    t = decided(1000)
    report, sample = summarize(t, [130, 700], 1.0)
    d = t.to_pydict()
    first = collections.Counter(r for r in d["filter_rule"] if r)
    assert report["docs_in"] == 1000 and report["docs_out"] == 1000 - sum(first.values())
    assert report["removed_by_reason"] == dict(first)
    assert report["rules"]["fineweb_short_lines"]["first_failed"] == 0
    assert report["rules"]["fineweb_short_lines"]["pass_rate"] == round(1 - sum(first.values()) / 1000, 4)
    zh = [i for i, lang in enumerate(d["lang"]) if lang == "zh"]
    assert report["per_language"]["zh"]["docs_in"] == len(zh)
    assert report["pii"] == {"emails": sum(i % 7 == 0 for i in range(1000)),
                             "ip_addresses": 2 * sum(i % 11 == 0 for i in range(1000)), "phones": 0,
                             "documents": sum(i % 7 == 0 or i % 11 == 0 for i in range(1000))}
    assert sample.num_rows == 1000 and sample.column_names == ["lang", "n_words"]
    assert summarize(t, [500], 1.0)[0] == report


def test_the_histogram_sample_is_drawn_by_document_not_by_task():
    t = decided(4000)
    _, one = summarize(t, [], 0.25)
    _, three = summarize(t, [999, 2500], 0.25)
    assert sorted(one.column("n_words").to_pylist()) == sorted(three.column("n_words").to_pylist())
    assert 800 < one.num_rows < 1200
