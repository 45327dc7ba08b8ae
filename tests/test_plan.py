"""The sizing model (pipeline/sizing.py) and `crawl2model plan`: pure, no Spark."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from crawl2model.jobs.cli import main
from crawl2model.pipeline import sizing

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUTS = sizing.load_throughputs(json.loads((ROOT / "infra" / "sizing" / "throughputs.json").read_text()), "test")
A = sizing.Assumptions()


def stages(n: float) -> dict[str, sizing.StageEstimate]:
    return {s.stage: s for s in sizing.plan_stages(n, A, THROUGHPUTS)}


def test_removal_rate_hits_the_paper_points_and_is_linear_in_log_n():
    assert sizing.removal_rate(1) == pytest.approx(0.222)
    assert sizing.removal_rate(91) == pytest.approx(0.898)
    middle = math.sqrt(91)  # halfway in log N
    assert sizing.removal_rate(middle) == pytest.approx((0.222 + 0.898) / 2)
    assert sizing.removal_rate(200) == pytest.approx(0.898)  # held beyond the paper's last point
    rates = [sizing.removal_rate(n) for n in (1, 2, 5, 10, 30, 91)]
    assert rates == sorted(rates)


def test_ingest_is_linear_in_dumps():
    one, ten = stages(1)["ingest"], stages(10)["ingest"]
    for field in ("docs_in", "core_hours", "shuffle_bytes", "output_bytes", "cost_usd"):
        assert getattr(ten, field) == pytest.approx(10 * getattr(one, field))


@pytest.mark.parametrize("stage", ["filter", "remix", "tokenize"])
def test_later_stages_are_linear_in_the_documents_that_survive_dedup(stage):
    for n in (1, 10, 91):
        survivors = sizing.documents(n, A) * (1 - sizing.removal_rate(n))
        per_doc = stages(n)[stage].core_hours / survivors
        assert per_doc == pytest.approx(stages(1)[stage].core_hours / (sizing.documents(1, A) * 0.778))


def test_dedup_shuffle_grows_with_the_total_across_dumps():
    one, many = (sizing.dedup_shuffle(sizing.documents(n, A), sizing.removal_rate(n), A) for n in (1, 91))
    # Signatures and band keys are shuffled once over all dumps: exactly linear in the total.
    for part in ("signatures", "band_keys"):
        assert many[part] == pytest.approx(91 * one[part])
    # Edges follow the duplicates, whose share rises with N: faster than linear.
    assert many["edges"] == pytest.approx(91 * one["edges"] * 0.898 / 0.222)
    assert stages(91)["dedup"].shuffle_bytes == pytest.approx(sum(many.values()))
    assert sizing.growth(10, A, THROUGHPUTS)["dedup"]["shuffle_bytes"] > 0.9


def test_total_sums_stages_and_keeps_every_output_on_disk():
    rows = sizing.plan_stages(10, A, THROUGHPUTS)
    t = sizing.total(rows)
    assert t.core_hours == pytest.approx(sum(s.core_hours for s in rows))
    assert t.cost_usd == pytest.approx(t.core_hours * A.core_hour_price)
    assert t.peak_disk_bytes == pytest.approx(t.output_bytes + max(s.shuffle_bytes for s in rows))


def test_estimated_speeds_are_marked():
    assert THROUGHPUTS["ingest_pages"].measured and not THROUGHPUTS["remix_docs"].measured
    assert not stages(1)["remix"].measured and stages(1)["filter"].measured


def test_plan_json_parses(capsys):
    assert main(["plan", "--dumps", "1,10,91", "--json", "--core-hour-price", "0.1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["dumps"] for p in out["plans"]] == [1, 10, 91]
    assert out["assumptions"]["core_hour_price"] == 0.1
    assert out["throughputs"]["remix_docs"]["source"].startswith("estimate")
    total = out["plans"][0]["stages"][-1]
    assert total["stage"] == "total" and total["cost_usd"] == pytest.approx(total["core_hours"] * 0.1)


def test_plan_table_has_a_growth_summary(capsys):
    assert main(["plan", "--dumps", "91,1", "--warc-tb-per-dump", "100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 dump: 100.0 TB of WARC; dedup removes 22.2%")
    assert "91 dumps: 9.10 PB of WARC; dedup removes 89.8%" in out
    assert "k 1->91" in out and "[ESTIMATE]" in out


@pytest.mark.parametrize("argv, says", [
    (["plan", "--dumps", "0"], "must be >= 1"),
    (["plan", "--dumps", "ten"], "not a list of whole numbers"),
    (["plan", "--dumps", "1", "--filter-keep", "1.5"], "--filter-keep must be in (0, 1]"),
    (["plan", "--dumps", "1", "--core-hour-price", "-1"], "not a count"),
    (["plan", "--dumps", "1", "--bands", "2.5"], "--bands must be a whole number"),
    (["plan", "--dumps", "1", "--throughputs", "/nonexistent.json"], "throughputs file not found"),
    (["plan"], "--dumps"),
])
def test_bad_flags_exit_2_with_one_line(argv, says, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and err.count("\n") == 1, err


def test_a_throughputs_file_without_a_source_is_refused(tmp_path, capsys):
    data = json.loads((ROOT / "infra" / "sizing" / "throughputs.json").read_text())
    del data["filter_docs"]["source"]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    assert main(["plan", "--dumps", "1", "--throughputs", str(path)]) == 2
    assert "'filter_docs' needs a 'unit' and a 'source'" in capsys.readouterr().err
