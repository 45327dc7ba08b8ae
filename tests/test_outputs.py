"""Atomic outputs: finished or absent, never half-written and mistaken for done."""
from crawl2model.core.outputs import SUCCESS, StageOutput
from crawl2model.core.fs import read_json, write_json


def test_commit_makes_output_appear_whole(tmp_path):
    final = tmp_path / "out"
    out = StageOutput(str(final))
    out.begin()
    write_json(out.fs, out.path("report.json"), {"n": 1})
    assert not final.exists()
    out.commit("demo")
    assert (final / SUCCESS).exists()
    assert read_json(str(final / "report.json")) == {"n": 1}
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert StageOutput(str(final)).done
    assert not StageOutput(str(final), overwrite=True).done


def test_killed_run_leftovers_are_cleared(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "part-0.parquet").write_text("half")  # no _SUCCESS: a killed run
    stale = tmp_path / ".out.tmp-dead"
    stale.mkdir()
    out = StageOutput(str(final))
    assert not out.done
    out.begin()
    assert not final.exists() and not stale.exists()
    out.commit("demo")
    assert (final / SUCCESS).exists() and not (final / "part-0.parquet").exists()


def test_overwrite_replaces_finished_output(tmp_path):
    final = tmp_path / "out"
    for value in (1, 2):
        out = StageOutput(str(final), overwrite=True)
        out.begin()
        write_json(out.fs, out.path("v.json"), value)
        out.commit("demo")
    assert read_json(str(final / "v.json")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
