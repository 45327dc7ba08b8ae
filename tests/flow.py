"""The curation flow as the integration tests run it, and what its outputs hold.

Shared by the object-store and cluster tests, which compare their runs with
one local run byte for byte.
"""
from __future__ import annotations

import json
import posixpath

from crawl2model.core.fs import filesystem
from crawl2model.core.outputs import SUCCESS

STAGES = ("docs", "dedup", "filter", "shards", "tokens")
DATA_SUFFIXES = (".parquet", ".arrow")
TOKENIZER_ARGS = ["--vocab-size", "2000", "--padded-vocab-size", "2048"]


def flow_steps(root: str, crawl: str, tokenizer: str | None) -> tuple[dict[str, str], list[list[str]]]:
    """(the output of each stage under `root`, the commands of ingest -> dedup -> filter -> remix (-> tokenize))."""
    out = {s: f"{root}/{s}" for s in STAGES}
    steps = [["ingest", "--input", crawl, "--output", out["docs"]],
             ["dedup", "--input", out["docs"], "--output", out["dedup"]],
             ["filter", "--input", out["dedup"] + "/kept", "--output", out["filter"]],
             ["remix", "--input", out["filter"] + "/kept", "--output", out["shards"], "--shard-size", "64KB"]]
    if tokenizer:
        steps.append(["tokenize", "--tokenizer", tokenizer, "--input", out["shards"], "--output", out["tokens"]])
    return out, steps


def run_flow(root: str, crawl: str, tokenizer: str | None) -> dict[str, str]:
    """The flow in this process (the test session's Spark); the output of each stage."""
    from crawl2model.jobs.cli import main as cli

    out, steps = flow_steps(root, crawl, tokenizer)
    for argv in steps:
        assert cli(argv) == 0, argv
    return out


def success_marker(output: str) -> dict:
    fs, base = filesystem(output)
    with fs.open_input_stream(posixpath.join(base, SUCCESS)) as f:
        return json.loads(f.read())


def committed_data(output: str) -> dict[str, bytes]:
    """Every data file `_SUCCESS` lists, by relative path (`_skipped/` names each record's source
    file, which differs between two runs by design)."""
    fs, base = filesystem(output)
    files = {}
    for rel in (e["path"] for e in success_marker(output)["files"]):
        if rel.startswith("_skipped/"):
            continue
        if rel.endswith(DATA_SUFFIXES) or rel.endswith("manifest.json") and "shards" in output:
            with fs.open_input_stream(posixpath.join(base, rel)) as f:
                files[rel] = f.read()
    return files
