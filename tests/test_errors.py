"""The error boundary: each class of user mistake is one line on stderr, exit code 2, no traceback;
a bug keeps its traceback."""
from __future__ import annotations

import argparse
import json
import os
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.jobs.cli import main, run_command


def _user_error(capsys, argv: list[str], *expected: str) -> str:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture()
def text(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line {i} of some text with words, numbers {i * 7} and more words\n" for i in range(300)))
    return path


def test_bad_flag_value(capsys, tmp_path):
    _user_error(capsys, ["dedup", "--threshold", "high", "--input", "x", "--output", str(tmp_path / "o")],
                "--threshold", "invalid float value", "crawl2model dedup")


def test_unknown_flag(capsys):
    _user_error(capsys, ["remix", "--shard-sise", "1MB"], "unrecognized arguments: --shard-sise")


def test_bad_size_unit(capsys, text, tmp_path):
    _user_error(capsys, ["tokenizer", "train", "--input", str(text), "--output", str(tmp_path / "t"),
                         "--max-bytes", "2 gigs"], "not a size", "2 gigs")


def test_run_file_unknown_key_and_table(capsys, tmp_path):
    run = tmp_path / "run.toml"
    run.write_text("[dedup]\nthreshhold = 0.7\n")
    _user_error(capsys, ["dedup", "--config", str(run), "--input", "x", "--output", str(tmp_path / "o")],
                "run.toml", "threshhold")
    run.write_text("[dedupe]\nthreshold = 0.7\n")
    _user_error(capsys, ["dedup", "--config", str(run), "--input", "x", "--output", str(tmp_path / "o")],
                "unknown table [dedupe]")
    run.write_text("[dedup\n")
    _user_error(capsys, ["dedup", "--config", str(run), "--input", "x", "--output", str(tmp_path / "o")],
                "invalid TOML")


def test_missing_run_file(capsys, tmp_path):
    _user_error(capsys, ["remix", "--config", str(tmp_path / "nope.toml"), "--input", "x", "--output", "o"],
                "config file not found", "nope.toml")


def test_spark_conf_pair_and_profile_line(capsys, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    pq.write_table(pa.table({"doc_id": ["a"], "text": ["x"]}), docs / "part-0.parquet")
    args = ["dedup", "--input", str(docs), "--output", str(tmp_path / "o")]
    _user_error(capsys, args + ["--spark-conf", "novalue"], "--spark-conf expects key=value", "novalue")
    profile = tmp_path / "mine.conf"
    profile.write_text("spark.master local[1]\nspark.executor.memory\n")
    _user_error(capsys, args + ["--spark-profile", str(profile)], "mine.conf:2", "expected 'key value'")
    _user_error(capsys, args + ["--spark-profile", "nosuch"], "Spark profile not found: nosuch", "known: ")
    assert not (tmp_path / "o").exists()


def test_missing_input(capsys, tmp_path):
    _user_error(capsys, ["dedup", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")],
                "nowhere")
    assert not (tmp_path / "o").exists()


@pytest.mark.spark
def test_input_without_needed_columns(spark, capsys, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    pq.write_table(pa.table({"doc_id": ["a"], "body": ["no text column"]}), docs / "part-0.parquet")
    _user_error(capsys, ["dedup", "--input", str(docs), "--output", str(tmp_path / "o")],
                "lacks document columns", "text")
    assert not (tmp_path / "o").exists()


def test_output_made_with_other_settings(capsys, text, tmp_path):
    out = tmp_path / "tok"
    argv = ["tokenizer", "train", "--input", str(text), "--output", str(out), "--vocab-size", "300",
            "--padded-vocab-size", "384"]
    assert main(argv) == 0
    first = (out / "tokenizer.json").read_bytes()
    assert main(argv) == 0  # same settings: skipped
    assert "already finished" in capsys.readouterr().err
    _user_error(capsys, argv[:-4] + ["--vocab-size", "320", "--padded-vocab-size", "384"],
                "vocab_size: 300 -> 320", "--overwrite")
    assert (out / "tokenizer.json").read_bytes() == first
    assert main(argv[:-4] + ["--vocab-size", "320", "--padded-vocab-size", "384", "--overwrite"]) == 0


def test_output_claimed_by_a_live_run(capsys, text, tmp_path):
    out = tmp_path / "tok"
    lock = tmp_path / ".tok.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": "other",
                                "started": 0, "heartbeat": 0}))
    _user_error(capsys, ["tokenizer", "train", "--input", str(text), "--output", str(out), "--vocab-size", "300",
                         "--padded-vocab-size", "384"], "being written by another run", f"pid {os.getpid()}")
    assert lock.exists() and not out.exists()


def test_a_bug_keeps_its_traceback():
    parser = argparse.ArgumentParser(prog="crawl2model")

    def broken(args):
        raise RuntimeError("a bug, not a user error")

    parser.set_defaults(func=broken, command="x")
    with pytest.raises(RuntimeError, match="a bug"):
        run_command(parser, [])
