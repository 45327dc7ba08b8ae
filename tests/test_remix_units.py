"""Remix building blocks without Spark: domain rules, mixture math, shard sizing and writing."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.pipeline import mixture, shards
from crawl2model.pipeline.domains import DEFAULT_RULES, DomainRules, label_batch


def _rules(tmp_path, text: str) -> DomainRules:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return DomainRules.load(str(path))


def test_regex_first_then_longest_suffix(tmp_path):
    rules = _rules(tmp_path, """
[suffix]
"gov" = "government"
"nih.gov" = "health"
"ncbi.nlm.nih.gov" = "academic"
"example.org" = "web"
[[regex]]
pattern = '/forum/'
domain = "forum"
[[regex]]
pattern = '^https://example\\.org/'
domain = "first"
""")
    assert rules.match("https://www.ncbi.nlm.nih.gov/pmc/1", "www.ncbi.nlm.nih.gov") == "academic"
    assert rules.match("https://x.nih.gov/", "x.nih.gov") == "health"
    assert rules.match("https://nasa.gov/", "NASA.gov.") == "government"
    assert rules.match("https://nasa.gov/forum/t/1", "nasa.gov") == "forum"       # regex beats suffix
    assert rules.match("https://example.org/forum/", "example.org") == "forum"    # regexes in table order
    assert rules.match("https://sub.example.org/", "sub.example.org") == "web"
    assert rules.match("https://notgov.com/", "notgov.com") is None               # whole labels only
    assert rules.match(None, None) is None


def test_default_table_labels_familiar_sites():
    rules = DomainRules.load(DEFAULT_RULES)
    assert rules.domains >= {"encyclopedia", "code", "news", "forum", "academic", "books", "government"}
    cases = {
        "https://en.wikipedia.org/wiki/Zstandard": "encyclopedia",
        "https://github.com/apache/spark/blob/master/README.md": "code",
        "https://gitea.example.net/me/proj/src/branch/main/x.go": "code",
        "https://stackoverflow.com/questions/1": "forum",
        "https://news.ycombinator.com/item?id=1": "forum",
        "https://news.example.com/2024/story": "news",
        "https://www.reuters.com/world/": "news",
        "https://arxiv.org/abs/2401.02954": "academic",
        "https://www.ncbi.nlm.nih.gov/pmc/articles/1": "academic",
        "https://cs.stanford.edu/people/x": "academic",
        "https://www.gutenberg.org/ebooks/1342": "books",
        "https://www.nasa.gov/missions": "government",
        "https://www.gov.uk/browse": "government",
    }
    from crawl2model.pipeline.schema import host_of

    assert {u: rules.match(u, host_of(u)) for u in cases} == cases
    assert rules.match("https://help.libreoffice.org/7.4/en-US/text/scalc/main.html", "help.libreoffice.org") is None


def test_bad_rule_tables_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown table"):
        _rules(tmp_path, '[suffixes]\n"a.org" = "x"\n')
    with pytest.raises(ConfigError, match="bad pattern"):
        _rules(tmp_path, '[[regex]]\npattern = "(("\ndomain = "x"\n')
    with pytest.raises(ConfigError, match="exactly 'pattern' and 'domain'"):
        _rules(tmp_path, '[[regex]]\npattern = "a"\n')


def test_label_batch_sources(tmp_path):
    rules = _rules(tmp_path, '[suffix]\n"a.org" = "alpha"\n')
    batch = pa.record_batch({
        "url": ["https://a.org/1", "https://b.org/2", "https://b.org/3", None],
        "host": ["a.org", "b.org", "b.org", None],
        "text": ["x", "y", "z", "w"],
        "given": [None, None, "mine", None],
    })
    domains, sources = label_batch(batch, rules, given="given")
    assert domains.to_pylist() == ["alpha", "other", "mine", "other"]
    assert sources.to_pylist() == ["rule", "default", "input", "default"]


def test_plan_reachable_targets_are_met_exactly():
    measured = {"a": 600.0, "b": 300.0, "c": 100.0}
    plan = mixture.plan(measured, {"a": 2, "b": 1, "c": 1}, max_copies=4)   # shares normalized: .5 .25 .25
    assert plan.target == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert plan.rates == pytest.approx({"a": 500 / 600, "b": 250 / 300, "c": 2.5})
    assert sum(plan.planned.values()) == pytest.approx(1000) and not plan.unreachable
    natural = mixture.plan(measured, None, max_copies=4)
    assert natural.rates == pytest.approx({"a": 1, "b": 1, "c": 1})


def test_plan_caps_unreachable_and_shares_the_rest_by_target():
    measured = {"a": 900.0, "b": 50.0, "c": 50.0}
    plan = mixture.plan(measured, {"a": 0.4, "b": 0.3, "c": 0.3}, max_copies=4, total="input")
    # b and c would need rate 6 > 4: capped at 200 each; a gets the remaining 600 of 1000.
    assert set(plan.unreachable) == {"b", "c"} and "6.000" in plan.unreachable["b"]
    assert plan.planned == pytest.approx({"a": 600, "b": 200, "c": 200})
    plan = mixture.plan(measured, {"a": 0.4, "b": 0.3, "c": 0.3, "z": 0.1}, max_copies=4)
    assert "no documents" in plan.unreachable["z"] and plan.planned["z"] == 0
    # "max": the largest total meeting every reachable target exactly (b and c bind at 4 copies).
    plan = mixture.plan(measured, {"a": 0.4, "b": 0.3, "c": 0.3}, max_copies=4, total="max")
    assert plan.total == pytest.approx(200 / 0.3) and not plan.unreachable
    assert plan.rates["b"] == pytest.approx(4) and plan.planned["a"] / plan.total == pytest.approx(0.4)


def test_plan_drops_domains_missing_from_target():
    plan = mixture.plan({"a": 10.0, "b": 10.0}, {"a": 1.0}, max_copies=4)
    assert plan.rates == {"a": 2.0, "b": 0.0} and not plan.unreachable


def test_load_target(tmp_path):
    path = tmp_path / "mix.toml"
    path.write_text("[target]\ncode = 20\nweb = 80\n")
    assert mixture.load_target(str(path)) == {"code": 20.0, "web": 80.0}
    path.write_text("unit = 'bytes'\n[target]\ncode = 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        mixture.load_target(str(path))
    path.write_text("[target]\ncode = -1\n")
    with pytest.raises(ConfigError, match=">= 0"):
        mixture.load_target(str(path))


def test_prefix_cut_takes_the_closest_prefix():
    assert mixture.prefix_cut([3, 3, 3, 3], 7.0) == (2, 6)
    assert mixture.prefix_cut([3, 3, 3, 3], 8.0) == (3, 9)
    assert mixture.prefix_cut([3, 3], 0.0) == (0, 0)
    assert mixture.prefix_cut([3, 3], 100.0) == (2, 6)


def test_cut_closes_shards_nearest_the_target():
    assert shards.cut([4, 4, 4, 4, 4, 4, 1], target=8, ratio=1.0) == [0, 0, 1, 1, 2, 2, 3]
    assert shards.cut([4, 5, 4, 5, 1], target=13, ratio=1.0) == [0, 0, 0, 1, 1]
    assert shards.cut([4, 5, 4, 5, 1], target=26, ratio=2.0) == [0, 0, 0, 1, 1]
    assert shards.cut([], 10, 1.0) == []


def _docs(n: int, skip: int = 0) -> pa.Table:
    """Real text: the standard library's own source files, cut to 8 KB."""
    import os
    from pathlib import Path

    files = sorted(Path(os.__file__).parent.glob("*.py"))[skip: skip + n]
    texts = [f.read_text(encoding="utf-8", errors="replace")[:8192] for f in files]
    return pa.table({"doc_id": [f.name for f in files], "text": texts,
                     "_raw": [len(t.encode()) + len(f.name) for f, t in zip(files, texts)]})


def test_shard_file_bytes_do_not_depend_on_batch_boundaries():
    table = _docs(50)
    schema = shards.file_schema(table.schema, ["doc_id", "text"])
    outs = []
    for cut_at in ([], [7], [3, 20, 21, 45]):
        sink = io.BytesIO()
        f = shards.ShardFile(sink, schema, row_group_rows=16)
        bounds = [0, *cut_at, table.num_rows]
        for a, b in zip(bounds, bounds[1:]):
            for batch in table.slice(a, b - a).to_batches():
                f.write(batch)
        assert f.close() == [16, 16, 16, 2]
        outs.append(sink.getvalue())
    assert outs[0] == outs[1] == outs[2]
    assert pq.ParquetFile(io.BytesIO(outs[0])).metadata.num_row_groups == 4


def test_calibration_predicts_file_sizes_at_the_shard_scale():
    sample, check = _docs(80), _docs(80, skip=80)
    schema = shards.file_schema(check.schema, ["doc_id", "text"])
    ratios = {}
    for target in (25_000, 60_000):
        ratios[target] = ratio = shards.calibrate(sample, ["doc_id", "text"], "_raw", target)
        raw = check.column("_raw").to_pylist()
        cuts = shards.cut(raw, target, ratio)
        sizes = [shards._file_size(check.filter(pa.array([c == k for c in cuts])), schema)
                 for k in range(cuts[-1] + 1)]
        assert len(sizes) >= 3 and all(abs(s / target - 1) < 0.15 for s in sizes[:-1]), sizes
    assert ratios[25_000] > ratios[60_000]   # short shards compress worse
