"""Good prose kept and junk dropped on pages of packages the models and thresholds never saw (issue 16, item 2).

tests/data/filter/quality_heldout.jsonl.gz is a slice of the test split of
`crawl2model.corpora.heldout_quality` (`bench/quality.py` gives the whole
split's figures and every lost or surviving document).
"""
from __future__ import annotations

from pathlib import Path

from crawl2model.corpora.heldout_lid import read_jsonl_gz
from crawl2model.corpora.heldout_quality import judge
from crawl2model.jobs.filter import filter_models
from crawl2model.pipeline.filters.filter_stage import FilterConfig

HELDOUT = Path(__file__).resolve().parent / "data" / "filter" / "quality_heldout.jsonl.gz"


def test_prose_kept_and_junk_dropped_on_unseen_pages():
    rows = read_jsonl_gz(HELDOUT)
    why = judge(rows, filter_models(FilterConfig(input="-", output="-"))).column("filter_rule").to_pylist()
    clean = [w for r, w in zip(rows, why) if r["kind"] == "clean"]
    junk = {r["junk"]: [] for r in rows if r["kind"] == "junk"}
    for r, w in zip(rows, why):
        if r["kind"] == "junk":
            junk[r["junk"]].append(w)
    assert len(clean) >= 100 and set(junk) == {"navigation", "links", "oneliner", "spam"}
    lost = [w for w in clean if w]
    assert 1 - len(lost) / len(clean) >= 0.95, lost
    kept_junk = sum(w is None for ws in junk.values() for w in ws)
    assert 1 - kept_junk / sum(map(len, junk.values())) >= 0.95
