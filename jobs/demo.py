"""`crawl2model demo`: every stage that exists, end to end on the bundled sample.

Each stage runs through the same CLI a user would type, in one process (so one
SparkSession), into one run folder; the summary at the end reads the stages'
report.json files. Later stages append themselves to `STEPS`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "sample"


def steps(sample: str, run_dir: Path) -> list[tuple[str, list[str], Path]]:
    """(stage, argv, output folder) in flow order; each reads the previous stage's output."""
    docs, deduped, filtered = run_dir / "documents", run_dir / "deduped", run_dir / "filtered"
    shards, tok, tokens = run_dir / "shards", run_dir / "tokenizer", run_dir / "tokens"
    return [
        ("ingest", ["ingest", "--input", sample, "--output", str(docs)], docs),
        ("dedup", ["dedup", "--input", str(docs), "--output", str(deduped)], deduped),
        ("filter", ["filter", "--input", str(deduped / "kept"), "--output", str(filtered)], filtered),
        # Default domain rules, natural mix; small shards because the sample is small.
        ("remix", ["remix", "--input", str(filtered / "kept"), "--output", str(shards), "--shard-size", "64KB"],
         shards),
        # The sample is ~1 MB of text: a small vocabulary, not the 100k of a real run.
        ("tokenizer", ["tokenizer", "train", "--input", str(filtered / "kept"), "--output", str(tok),
                       "--vocab-size", "4000", "--padded-vocab-size", "4096"], tok),
        ("tokenize", ["tokenize", "--tokenizer", str(tok), "--input", str(shards), "--output", str(tokens)],
         tokens),
        # A few steps of the tiny model on CPU: the flow end to end, not a useful model.
        ("train", ["train", "--preset", "tiny", "--data", str(tokens), "--max-steps", "20",
                   "--warmup-steps", "2", "--seq-len", "128", "--batch-size", "8", "--engine", "torch",
                   "--output", str(run_dir / "train")], run_dir / "train"),
    ]


def _summary(stage: str, r: dict) -> str:
    if stage == "ingest":
        skipped = ", ".join(f"{k} {v}" for k, v in list(r["records_skipped"].items())[:6])
        dumps = ", ".join(f"{k}: {v}" for k, v in r["per_dump"].items())
        return f"{r['docs_out']} documents from {r['records_in']} records ({dumps}); skipped: {skipped}"
    if stage == "dedup":
        curve = ", ".join(f"{p['dumps']}: {p['removed_fraction']:.1%}" for p in r.get("rate_by_dumps", []))
        return (f"{r['docs_in']} in, {r['docs_removed']} removed ({r['removed_by_reason']['exact']} exact, "
                f"{r['removed_by_reason']['near']} near), {r['docs_kept']} kept; removed by dumps together: "
                f"{curve}; each dump alone: {r.get('per_dump_mode_removed_fraction', 0):.1%}")
    if stage == "remix":
        return (f"{r['docs_in']} docs -> {r['rows_out']} rows ({r['docs_selected']} docs) in "
                f"{r['shards']['count']} shards; max |achieved - target| {r['max_error_points']:.2f} points")
    if stage == "train":
        return (f"{r['steps']} steps of {r['batch_tokens']} tokens, loss {r['loss']:.3f}, "
                f"{r['tokens_per_s']:.0f} tokens/s, {r['seconds']:.1f}s")
    if stage == "filter":
        langs = ", ".join(f"{lang}: {v['docs_kept']}/{v['docs_in']}" for lang, v in r["per_language"].items())
        return f"{r['docs_in']} in, {r['docs_kept']} kept ({r['pass_rate']:.0%}); by language {langs}"
    return ", ".join(f"{k}={v}" for k, v in r.items() if isinstance(v, (int, float, str)) and k != "stage")


def run(args: argparse.Namespace) -> int:
    from jobs.cli import main as cli_main
    from pipeline.outputs import read_json

    run_dir = Path(args.output)
    sample = args.input or str(SAMPLE_DIR)
    if not Path(sample).exists() and "://" not in sample:
        raise FileNotFoundError(f"sample not found: {sample} (build it with: python scripts/build_sample.py)")
    extra = ["--overwrite"] if args.overwrite else []
    lines = []
    for stage, argv, out in steps(sample, run_dir):
        print(f"== {stage} ==", file=sys.stderr, flush=True)
        if stage == "train":  # a run folder is resumed, not overwritten: start it afresh
            if args.overwrite:
                shutil.rmtree(out, ignore_errors=True)
            rc = 0 if (out / "report.json").exists() else cli_main(argv)
        else:
            rc = cli_main(argv + extra)
        if rc:
            print(f"demo: stage {stage} failed (exit {rc})", file=sys.stderr)
            return rc
        lines.append(f"{stage:10s} {out}\n           {_summary(stage, read_json(str(out / 'report.json')))}")
    print(f"\ncrawl2model demo: run folder {run_dir}")
    print("\n".join(lines))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run every stage on the bundled sample",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--input", help="crawl root to use instead of the bundled sample")
    p.add_argument("--overwrite", action="store_true", help="recompute finished stages")
    p.set_defaults(func=run)
