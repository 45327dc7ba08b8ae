"""core: config layering, units, and the stage protocol (fingerprints, claims, commits)."""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
from dataclasses import dataclass

import pytest

from crawl2model.core.config import resolve
from crawl2model.core.errors import ConfigError, InputError, OutputBusyError, OutputMismatchError
from crawl2model.core.fs import AtomicFile, read_json, write_json
from crawl2model.core.outputs import SUCCESS, StageOutput, committed_files
from crawl2model.core.sizes import parse_count, parse_size
from crawl2model.core.stage import run_stage
from crawl2model.jobs.cli import main as cli


@dataclass
class Demo:
    input: str = ""
    threshold: float = 0.8
    size: int | str = "1MB"

    def validate(self):
        self.size = parse_size(self.size)


# --------------------------------------------------------------------------- config


def test_flags_override_file_override_defaults(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text('[dedup]\nthreshold = 0.7\nsize = "2MB"\n[filter]\nx = 1\n')
    cfg = resolve(Demo, "dedup", argparse.Namespace(config=str(run), threshold=None, input="a"))
    assert (cfg.input, cfg.threshold, cfg.size) == ("a", 0.7, 2_000_000)
    cfg = resolve(Demo, "dedup", argparse.Namespace(config=str(run), threshold=0.9, input=None))
    assert cfg.threshold == 0.9 and cfg.input == ""


def test_unknown_key_and_unknown_table_are_named(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text("[dedup]\nthreshhold = 0.7\n")
    with pytest.raises(ConfigError, match="unknown key 'threshhold'"):
        resolve(Demo, "dedup", {"config": str(run)})
    run.write_text("[dedup]\nthreshold = 0.7\n[dedupe]\nthreshold = 0.5\n")
    with pytest.raises(ConfigError, match=r"unknown table \[dedupe\]"):
        resolve(Demo, "dedup", {"config": str(run)})
    run.write_text("dedup = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        resolve(Demo, "dedup", {"config": str(run)})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve(Demo, "dedup", {"config": str(tmp_path / "nope.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[dedup\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        resolve(Demo, "dedup", {"config": str(bad)})


@pytest.mark.parametrize("text,expected", [
    ("256MB", 256_000_000), ("2GB", 2 * 10**9), ("2GiB", 2**31), ("64KiB", 65536), ("1.5KB", 1500),
    ("512", 512), (7, 7), ("3 MiB", 3 * 2**20)])
def test_parse_size_units_are_explicit(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [("2T", 2e12), ("500B", 5e11), ("1e17", 1e17), ("20M", 2e7), (10, 10.0)])
def test_parse_count(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize("bad", ["lots", "2XB", "", "GB", True])
def test_parse_size_rejects_garbage(bad):
    with pytest.raises(ConfigError, match="not a size"):
        parse_size(bad)


def test_parse_count_rejects_garbage():
    with pytest.raises(ConfigError, match="not a count"):
        parse_count("2 trillion")
    with pytest.raises(ConfigError, match="positive"):
        parse_count("0")


# --------------------------------------------------------------------------- outputs


def test_commit_makes_output_appear_whole_with_its_file_list(tmp_path):
    final = tmp_path / "out"
    out = StageOutput(str(final))
    out.claim()
    write_json(out.fs, out.path("report.json"), {"n": 1})
    os.makedirs(out.path("data"))
    write_json(out.fs, out.path("data", "part-0.json"), [1])
    assert not final.exists()
    out.commit("demo", "fp", {"k": 1})
    marker = read_json(str(final / SUCCESS))
    assert marker["fingerprint"] == "fp" and marker["config"] == {"k": 1}
    assert committed_files(str(final)) == ["data/part-0.json", "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no tmp folder, no lock
    assert StageOutput(str(final)).done and not StageOutput(str(final), overwrite=True).done


def test_success_lists_each_file_with_the_sha256_of_its_bytes_and_verify_checks_them(tmp_path, capsys):
    final = tmp_path / "out"
    out = StageOutput(str(final))
    out.claim()
    write_json(out.fs, out.path("report.json"), {"n": 1})
    os.makedirs(out.path("data"))
    part = AtomicFile(out.fs, out.path("data", "part-0.bin"))  # hashed while written, like every task's file
    part.stream.write(b"x" * 1000)
    part.commit()
    out.commit("demo", "fp", {})
    listed = {f["path"]: f for f in read_json(str(final / SUCCESS))["files"]}
    assert sorted(listed) == ["data/part-0.bin", "report.json"]  # the checksum sidecar is folded in, not listed
    for rel, entry in listed.items():
        data = (final / rel).read_bytes()
        assert entry["size"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert not [p for p in final.rglob(".*")]
    assert cli(["verify", str(final)]) == 0
    (final / "data" / "part-0.bin").write_bytes(b"x" * 999 + b"y")  # same size, one byte flipped
    assert cli(["verify", str(final)]) == 2
    assert "data/part-0.bin: sha256 differs from _SUCCESS" in capsys.readouterr().err
    (final / "report.json").unlink()
    assert cli(["verify", str(final)]) == 2
    assert "report.json: missing" in capsys.readouterr().err
    assert cli(["verify", str(tmp_path)]) == 2  # not a stage output


def test_leftovers_of_a_killed_run_are_cleared(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "part-0.parquet").write_text("half")  # no _SUCCESS: a killed run
    (tmp_path / ".out.tmp-dead").mkdir()
    (tmp_path / ".out.lock").write_text(json.dumps({"host": os.uname().nodename, "pid": 2**22 + 12345}))
    out = StageOutput(str(final))
    assert not out.done
    out.claim()
    assert not final.exists() and not (tmp_path / ".out.tmp-dead").exists()
    out.commit("demo")
    assert (final / SUCCESS).exists() and not (final / "part-0.parquet").exists()
    assert not (tmp_path / ".out.lock").exists()


def _hold_claim(path: str, ready, release) -> None:
    out = StageOutput(path)
    out.claim()
    write_json(out.fs, out.path("mine.json"), 1)
    ready.set()
    release.wait(30)
    out.commit("demo")


def test_a_second_writer_stops_and_touches_nothing_of_the_first(tmp_path):
    final = str(tmp_path / "out")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    first = ctx.Process(target=_hold_claim, args=(final, ready, release))
    first.start()
    try:
        assert ready.wait(60)
        before = sorted(p.name for p in tmp_path.iterdir())
        with pytest.raises(OutputBusyError, match=f"pid {first.pid}"):
            StageOutput(final).claim()
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # its tmp folder and lock survive
    finally:
        release.set()
        first.join(60)
    assert first.exitcode == 0
    assert read_json(os.path.join(final, "mine.json")) == 1


# --------------------------------------------------------------------------- protocol


def _body(n_out: int, removed: dict):
    def body(out, timer):
        write_json(out.fs, out.path("data.json"), n_out)
        return {"docs_in": n_out + sum(removed.values()), "docs_out": n_out, "removed_by_reason": removed,
                "extra": "kept"}
    return body


def test_report_has_common_keys_first_and_counts_add_up(tmp_path):
    report = run_stage("demo", {"k": 1}, _body(3, {"short": 2}), output=str(tmp_path / "o"))
    assert list(report)[:5] == ["stage", "docs_in", "docs_out", "removed_by_reason", "seconds"]
    assert report["extra"] == "kept" and read_json(str(tmp_path / "o" / "config.json")) == {"demo": {"k": 1}}

    def lossy(out, timer):
        return {"docs_in": 5, "docs_out": 3, "removed_by_reason": {"short": 1}}
    with pytest.raises(AssertionError, match="went missing"):
        run_stage("demo", {}, lossy, output=str(tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()


def test_rerun_same_fingerprint_is_skipped_other_stops_naming_keys(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("x")
    out = str(tmp_path / "o")
    calls = []

    def body(o, timer):
        calls.append(1)
        return {"docs_in": 1, "docs_out": 1}

    run_stage("demo", {"shard_size": 1000, "overwrite": False}, body, output=out, inputs=[str(src)])
    run_stage("demo", {"shard_size": 1000, "overwrite": True}, body, output=out, inputs=[str(src)])
    assert len(calls) == 1  # `overwrite` is not fingerprinted, and nothing changed
    with pytest.raises(OutputMismatchError, match=r"shard_size: 1000 -> 2000.*--overwrite"):
        run_stage("demo", {"shard_size": 2000}, body, output=out, inputs=[str(src)])
    (src / "b.txt").write_text("new file")
    with pytest.raises(OutputMismatchError, match=r"input .*in changed"):
        run_stage("demo", {"shard_size": 1000}, body, output=out, inputs=[str(src)])
    run_stage("demo", {"shard_size": 2000}, body, output=out, inputs=[str(src)], overwrite=True)
    assert len(calls) == 2
    assert read_json(os.path.join(out, SUCCESS))["config"] == {"shard_size": 2000}


def test_a_stage_input_is_identified_by_its_fingerprint(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    run_stage("up", {"v": 1}, _body(1, {}), output=a)
    run_stage("down", {}, _body(1, {}), output=b, inputs=[a])
    run_stage("up", {"v": 2}, _body(1, {}), output=a, overwrite=True)
    with pytest.raises(OutputMismatchError, match="changed"):
        run_stage("down", {}, _body(1, {}), output=b, inputs=[a])


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nope"):
        run_stage("demo", {}, _body(1, {}), output=str(tmp_path / "o"), inputs=[str(tmp_path / "nope")])


def test_in_place_output_keeps_what_is_there_and_overwrite_starts_afresh(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint").write_text("step 10")
    run_stage("train", {"steps": 20}, _body(0, {}), output=str(out), in_place=True)
    assert (out / "checkpoint").exists() and (out / SUCCESS).exists()
    run_stage("train", {"steps": 30}, _body(0, {}), output=str(out), in_place=True, overwrite=True)
    assert not (out / "checkpoint").exists() and (out / "data.json").exists()


def test_an_output_inside_its_input_folder_does_not_change_the_input(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    out = str(tmp_path / "out")
    run_stage("demo", {}, _body(1, {}), output=out, inputs=[str(tmp_path)])
    run_stage("demo", {}, _body(1, {}), output=out, inputs=[str(tmp_path)])  # skipped, not refused
