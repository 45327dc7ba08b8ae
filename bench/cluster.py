"""Local mode vs a standalone cluster on the same cores, per stage, on the bundled sample.

Starts a master and `--workers` 1-core workers on 127.0.0.1 (infra/spark/start-standalone.sh),
runs ingest -> dedup -> filter -> remix -> tokenize once with `--master local[N]` and once
on the cluster with the packed environment (`make dist`), each in one driver process, and
prints each stage's seconds (its report.json) and the ratio. Stops the cluster at the end.

    python bench/cluster.py [--workers 2] [--out bench/out/cluster.json]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "dedup", "filter", "remix", "tokenize")
FOLDERS = dict(zip(STAGES, ("docs", "dedup", "filter", "shards", "tokens")))
DRIVER = """
import json, sys
from crawl2model.jobs.cli import main
for argv in json.loads(sys.argv[1]):
    if main(argv + json.loads(sys.argv[2])):
        sys.exit(1)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps(root: Path, tokenizer: str) -> list[list[str]]:
    out = {s: str(root / f) for s, f in FOLDERS.items()}
    return [["ingest", "--input", str(ROOT / "jobs" / "sample"), "--output", out["ingest"]],
            ["dedup", "--input", out["ingest"], "--output", out["dedup"]],
            ["filter", "--input", out["dedup"] + "/kept", "--output", out["filter"]],
            ["remix", "--input", out["filter"] + "/kept", "--output", out["remix"], "--shard-size", "64KB"],
            ["tokenize", "--tokenizer", tokenizer, "--input", out["remix"], "--output", out["tokenize"]]]


def run(root: Path, tokenizer: str, flags: list[str]) -> dict[str, float]:
    subprocess.run([sys.executable, "-c", DRIVER, json.dumps(steps(root, tokenizer)), json.dumps(flags)], check=True)
    return {s: json.loads((root / f / "report.json").read_text())["seconds"] for s, f in FOLDERS.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--archive", default=str(ROOT / "dist" / "crawl2model-env.tar.gz"))
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "cluster.json"))
    args = p.parse_args(argv)
    if not os.path.isfile(args.archive):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "pack_env.py")], check=True)
    work = Path(tempfile.mkdtemp(prefix="crawl2model-cluster-bench-"))
    tokenizer = str(work / "tok")
    local = work / "local"
    # The tokenizer is trained once (not a Spark stage), from the local run's filter output.
    subprocess.run([sys.executable, "-c", DRIVER, json.dumps(steps(local, tokenizer)[:3]),
                    json.dumps(["--master", f"local[{args.workers}]"])], check=True)
    subprocess.run([sys.executable, "-m", "crawl2model", "tokenizer", "train", "--input", str(local / "filter/kept"),
                    "--output", tokenizer, "--vocab-size", "2000", "--padded-vocab-size", "2048"], check=True)
    ours = run(local, tokenizer, ["--master", f"local[{args.workers}]", "--overwrite"])
    port, ui = _port(), _port()
    import pyspark

    env = {**os.environ, "SPARK_HOME": os.path.dirname(pyspark.__file__)}
    script = ROOT / "infra" / "spark"
    subprocess.run(["bash", str(script / "start-standalone.sh"), "--dir", str(work / "spark"), "--workers",
                    str(args.workers), "--cores", "1", "--memory", "2g", "--host", "127.0.0.1", "--port", str(port),
                    "--webui-port", str(ui)], check=True, env=env)
    try:
        cluster = run(work / "cluster", tokenizer, ["--master", f"spark://127.0.0.1:{port}", "--ship", args.archive,
                                                    "--spark-conf", f"spark.master.ui.port={ui}"])
    finally:
        subprocess.run(["bash", str(script / "stop-standalone.sh"), str(work / "spark")], env=env)
    print(f"{'stage':10} {'local s':>8} {'cluster s':>10} {'ratio':>6}   ({args.workers} cores either way)")
    for s in STAGES:
        print(f"{s:10} {ours[s]:8.1f} {cluster[s]:10.1f} {cluster[s] / ours[s]:6.2f}")
    print(f"{'total':10} {sum(ours.values()):8.1f} {sum(cluster.values()):10.1f} "
          f"{sum(cluster.values()) / sum(ours.values()):6.2f}")
    print(f"archive {args.archive}: {os.path.getsize(args.archive) / 1e6:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"local": ours, "cluster": cluster, "workers": args.workers}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
