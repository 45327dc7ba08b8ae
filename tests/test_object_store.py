"""Object storage: the flow from s3:// to s3:// against a real S3 server on 127.0.0.1 (moto).

No Hadoop connector is involved: crawl files, tables and token shards are read
and written through pyarrow's S3 filesystem, in the driver and in the tasks.
"""
from __future__ import annotations

import json
import posixpath
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from flow import committed_data, run_flow, success_marker

from crawl2model.core.fs import filesystem
from crawl2model.core.outputs import STARTED, SUCCESS
from crawl2model.jobs.cli import main as cli

pytestmark = [pytest.mark.spark, pytest.mark.slow]

@pytest.fixture(scope="module")
def runs(local_flow, s3_server):
    """The same flow twice: local folders, and an S3 bucket holding the crawl."""
    s3 = pafs.S3FileSystem(endpoint_override=s3_server, allow_bucket_creation=True)
    s3.create_dir("flow")
    pafs.copy_files(local_flow["crawl"], "flow/crawl", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=s3)
    remote = run_flow("s3a://flow/run", "s3://flow/crawl", local_flow["tok"])  # s3a:// as Spark users write it
    return local_flow, remote


def test_s3_round_trip_writes_the_same_bytes(runs):
    local, remote = runs
    for stage in ("docs", "dedup", "filter", "shards", "tokens"):
        ours, theirs = committed_data(local[stage]), committed_data(remote[stage])
        assert ours and sorted(ours) == sorted(theirs), stage
        assert ours == theirs, stage
        sums = [{e["path"]: e["sha256"] for e in success_marker(run[stage])["files"] if e["path"] in ours}
                for run in (local, remote)]
        assert sums[0] == sums[1] and len(sums[0]) == len(ours), stage  # taken while writing, equal on both
    assert cli(["verify", *remote.values()]) == 0  # the bucket's bytes are the ones each commit listed
    fs, base = filesystem(remote["docs"])
    left = [i.base_name for i in fs.get_file_info(pafs.FileSelector(posixpath.dirname(base)))]
    assert not [n for n in left if n.endswith(".lock")], left  # every claim released


def test_trainer_streams_token_shards_from_s3(runs):
    from crawl2model.train.data import TokenStream

    local, remote = runs
    a, b = TokenStream(local["tokens"]), TokenStream(remote["tokens"])
    assert len(a) == len(b) > 0
    assert (a.slice(0, len(a)) == b.slice(0, len(b))).all()


KILLED_WRITER = """
import os, sys
from crawl2model.core.fs import write_json
from crawl2model.core.outputs import StageOutput
out = StageOutput(sys.argv[1])
out.claim()
write_json(out.fs, out.path("dump=X", "part-00000.parquet"), "half a file")
os._exit(9)  # killed mid-write: no commit, no cleanup, its claim left behind
"""


def test_a_killed_write_is_refused_downstream_and_the_rerun_finishes(runs, sample_dir, s3_server, s3_bucket):
    docs = f"{s3_bucket}/docs"
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, docs])
    assert killed.returncode == 9
    fs, base = filesystem(docs)
    assert fs.get_file_info(posixpath.join(base, STARTED)).type == pafs.FileType.File
    assert cli(["dedup", "--input", docs, "--output", f"{s3_bucket}/dedup"]) == 2  # unfinished: refused
    first_dump = sorted(p for p in sample_dir.iterdir() if p.is_dir())[0]
    # dead claim and leftovers cleared; the endpoint given explicitly this time
    assert cli(["ingest", "--input", str(first_dump), "--output", docs, "--s3-endpoint", s3_server]) == 0
    files = {i.base_name for i in fs.get_file_info(pafs.FileSelector(base, recursive=True))}
    assert SUCCESS in files and STARTED not in files
    assert not any(i.path.endswith("dump=X/part-00000.parquet")
                   for i in fs.get_file_info(pafs.FileSelector(base, recursive=True)))


def test_tokenizer_trains_from_and_into_s3(runs, s3_bucket):
    """`tokenizer train` reads a remote table and writes its folder to the bucket; `tokenize` reads it there."""
    local, remote = runs
    out = f"{s3_bucket}/tok"
    argv = ["tokenizer", "train", "--input", remote["filter"] + "/kept", "--output", out,
            "--vocab-size", "2000", "--padded-vocab-size", "2048"]
    assert cli(argv) == 0
    fs, base = filesystem(out)
    with fs.open_input_stream(posixpath.join(base, "tokenizer.json")) as f:
        ours = f.read()
    assert ours == (Path(local["tok"]) / "tokenizer.json").read_bytes()  # same sample, same merges
    assert fs.get_file_info(posixpath.join(base, SUCCESS)).type == pafs.FileType.File
    assert cli(argv) == 0  # finished: skipped
    tokens = f"{s3_bucket}/tokens"  # and the tokenize job takes the tokenizer from the bucket
    assert cli(["tokenize", "--tokenizer", out, "--input", remote["shards"], "--output", tokens]) == 0
    assert committed_data(tokens) == committed_data(local["tokens"])


def test_quality_models_train_from_and_into_s3(s3_bucket, tmp_path):
    """fastText writes local files only: the model is trained aside and uploaded, listed with its checksum."""
    fs, bucket = filesystem(s3_bucket)
    names = [a + b for a in "abcdefgh" for b in "klmnopqrst"]
    pos = "".join(json.dumps({"text": f"The package manager resolves dependencies, section {n}."}) + "\n"
                  for n in names)
    with fs.open_output_stream(f"{bucket}/q/pos.jsonl") as f:
        f.write(pos.encode())
    with fs.open_output_stream(f"{bucket}/q/neg.txt") as f:
        f.write("".join(f"Home | Next | Prev | Index {n} | Up\n" for n in names).encode())
    out = f"{s3_bucket}/q/model"
    assert cli(["quality-models", "train-classifier", "--positive", f"{s3_bucket}/q/pos.jsonl",
                "--negative", f"{s3_bucket}/q/neg.txt", "--lang", "en", "--bucket", "20000", "--epoch", "3",
                "--output", out]) == 0
    listed = {e["path"] for e in success_marker(out)["files"]}
    assert {"model.bin", "model.card.json", "report.json", "config.json"} <= listed
    assert cli(["verify", out]) == 0


def test_gcs_round_trip_writes_the_same_bytes(runs, sample_dir, gcs_server):
    """gs:// through the same layer (pyarrow's GCS client, here against an emulator on 127.0.0.1)."""
    from crawl2model.core.fs import gcs_emulator

    gcs = gcs_emulator(gcs_server)
    gcs.create_dir("flow-gcs")
    pafs.copy_files(str(sample_dir), "flow-gcs/crawl", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=gcs)
    local, _ = runs
    docs, dedup = "gs://flow-gcs/run/docs", "gs://flow-gcs/run/dedup"
    assert cli(["ingest", "--input", "gs://flow-gcs/crawl", "--output", docs]) == 0
    assert cli(["dedup", "--input", docs, "--output", dedup]) == 0
    for ours, theirs in ((local["docs"], docs), (local["dedup"], dedup)):
        assert committed_data(ours) and committed_data(ours) == committed_data(theirs), theirs
    assert cli(["verify", docs, dedup]) == 0
