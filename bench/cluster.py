"""Local mode vs a standalone cluster on the same cores, per stage, on the bundled sample.

Starts a master and `--workers` 1-core workers on 127.0.0.1 (infra/spark/start-standalone.sh),
runs ingest -> dedup -> filter -> remix -> tokenize once in local mode on N cores with the
`local` profile (what `crawl2model <stage>` runs without --master: 8 shuffle partitions, not
Spark's 200) and once on the cluster with the packed environment (`make dist`), each in one
driver process, and prints each stage's seconds (its report.json) and the ratio. The session is started first
and timed on its own ("session start": the JVM, and on the cluster the executors registering,
unpacking the archive and starting their Python workers, as every stage command does it
before its own timer starts). Stops the cluster at the end.

    python bench/cluster.py [--workers 2] [--out bench/out/cluster.json]
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "dedup", "filter", "remix", "tokenize")
FOLDERS = dict(zip(STAGES, ("docs", "dedup", "filter", "shards", "tokens")))
DRIVER = """
import json, sys, time
from crawl2model.jobs.cli import main
from crawl2model.pipeline.spark import get_spark
session, steps, flags = (json.loads(a) for a in sys.argv[1:4])
t0 = time.perf_counter()
get_spark(**session)  # what the first stage's command builds; the later ones reuse it
print("SESSION_SECONDS", time.perf_counter() - t0, flush=True)
for argv in steps:
    if main(argv + flags):
        sys.exit(1)
"""
SAMPLE = ROOT / "jobs" / "sample"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def steps(root: Path, tokenizer: str) -> list[list[str]]:
    out = {s: str(root / f) for s, f in FOLDERS.items()}
    return [["ingest", "--input", str(SAMPLE), "--output", out["ingest"]],
            ["dedup", "--input", out["ingest"], "--output", out["dedup"]],
            ["filter", "--input", out["dedup"] + "/kept", "--output", out["filter"]],
            ["remix", "--input", out["filter"] + "/kept", "--output", out["remix"], "--shard-size", "64KB"],
            ["tokenize", "--tokenizer", tokenizer, "--input", out["remix"], "--output", out["tokenize"]]]


def drive(session: dict, todo: list[list[str]], flags: list[str]) -> float:
    """Run `todo` in one driver process whose session is built from `session` (get_spark's
    arguments); the seconds the session took to start."""
    out = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(session), json.dumps(todo), json.dumps(flags)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return float(out.split("SESSION_SECONDS ", 1)[1].split()[0])


def run(root: Path, tokenizer: str, session: dict, flags: list[str]) -> tuple[dict[str, float], dict[str, dict]]:
    """({"session start": s, stage: its report's seconds, ...}, {stage: its report's laps})."""
    started = drive(session, steps(root, tokenizer), flags)
    reports = {s: json.loads((root / f / "report.json").read_text()) for s, f in FOLDERS.items()}
    return ({"session start": started, **{s: r["seconds"] for s, r in reports.items()}},
            {s: r.get("timings", {}) for s, r in reports.items()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--archive", default=str(ROOT / "dist" / "crawl2model-env.tar.gz"))
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "cluster.json"))
    p.add_argument("--spark-conf", action="append", default=[], metavar="K=V",
                   help="extra conf for both runs, e.g. spark.eventLog.enabled=true")
    p.add_argument("--keep", action="store_true", help="keep the work folder (outputs, cluster logs) for a look")
    args = p.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.spark_conf)
    extra_flags = [x for kv in args.spark_conf for x in ("--spark-conf", kv)]
    if not os.path.isfile(args.archive):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "pack_env.py")], check=True)
    work = Path(tempfile.mkdtemp(prefix="crawl2model-cluster-bench-"))
    if not args.keep:  # ~1.3 GB: both flows' outputs and the cluster's work folders (unpacked archives)
        atexit.register(shutil.rmtree, work, True)
    tokenizer = str(work / "tok")
    local = work / "local"
    # The tokenizer is trained once (not a Spark stage), from the local run's filter output.
    master = f"local[{args.workers}]"
    session = {"app_name": "crawl2model-ingest", "master": master, "profile": "local",
               "conf": {"spark.master": master, **extra}, "inputs": [str(SAMPLE)]}
    drive(session, steps(local, tokenizer)[:3], ["--master", master])
    subprocess.run([sys.executable, "-m", "crawl2model", "tokenizer", "train", "--input", str(local / "filter/kept"),
                    "--output", tokenizer, "--vocab-size", "2000", "--padded-vocab-size", "2048"], check=True)
    ours, ours_laps = run(local, tokenizer, session, ["--master", master, "--overwrite", *extra_flags])
    port, ui = _port(), _port()
    import pyspark

    env = {**os.environ, "SPARK_HOME": os.path.dirname(pyspark.__file__)}
    script = ROOT / "infra" / "spark"
    subprocess.run(["bash", str(script / "start-standalone.sh"), "--dir", str(work / "spark"), "--workers",
                    str(args.workers), "--cores", "1", "--memory", "2g", "--host", "127.0.0.1", "--port", str(port),
                    "--webui-port", str(ui)], check=True, env=env)
    try:
        url = f"spark://127.0.0.1:{port}"
        cluster, cluster_laps = run(work / "cluster", tokenizer,
                                    {"app_name": "crawl2model-ingest", "master": url, "ship": args.archive,
                                     "conf": {"spark.master.ui.port": str(ui), **extra}, "inputs": [str(SAMPLE)]},
                                    ["--master", url, "--ship", args.archive, "--spark-conf",
                                     f"spark.master.ui.port={ui}", *extra_flags])
    finally:
        subprocess.run(["bash", str(script / "stop-standalone.sh"), str(work / "spark")], env=env)
    print(f"{'stage':14} {'local s':>8} {'cluster s':>10} {'ratio':>6}   ({args.workers} cores either way)")
    for s in STAGES:
        print(f"{s:14} {ours[s]:8.1f} {cluster[s]:10.1f} {cluster[s] / ours[s]:6.2f}")
    staged = [sum(r[s] for s in STAGES) for r in (ours, cluster)]
    print(f"{'stages total':14} {staged[0]:8.1f} {staged[1]:10.1f} {staged[1] / staged[0]:6.2f}")
    print(f"{'session start':14} {ours['session start']:8.1f} {cluster['session start']:10.1f} "
          f"{cluster['session start'] / ours['session start']:6.2f}   (once per command; reused by later stages here)")
    print(f"archive {args.archive}: {os.path.getsize(args.archive) / 1e6:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"local": ours, "cluster": cluster, "workers": args.workers,
                                          "laps": {"local": ours_laps, "cluster": cluster_laps}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
