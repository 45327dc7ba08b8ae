"""`crawl2model demo`: every stage that exists, end to end on the bundled sample.

Each stage runs through the same CLI a user would type, in one process (so one
SparkSession), into one run folder; the summary at the end reads the stages'
report.json files, and `crawl2model report` turns them into runs/demo/report.html.
After pretraining, a few SFT and DPO steps on the bundled chat sample
(jobs/chat_sample: conversations and preference pairs written for the project)
and `crawl2model generate` answering one question.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from crawl2model.core.log import get_logger
from crawl2model.core.resources import resource

log = get_logger("demo")

SAMPLE_DIR = resource("crawl2model.jobs", "sample")
CHAT_DIR = resource("crawl2model.jobs", "chat_sample")
QUESTION = "How do I install a package on Debian?"


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
        ("train", ["train", "--preset", "tiny", "--input", str(tokens), "--max-steps", "20",
                   "--warmup-steps", "2", "--seq-len", "128", "--batch-size", "8", "--engine", "torch",
                   "--output", str(run_dir / "train")], run_dir / "train"),
        # Fine-tuning the 20-step model: a chat format learnt, not knowledge.
        ("sft", ["sft", "--init", str(run_dir / "train"), "--data", str(CHAT_DIR / "sft.jsonl"), "--epochs", "4",
                 "--lr", "3e-3", "--batch-size", "8", "--warmup-steps", "2", "--engine", "torch",
                 "--output", str(run_dir / "sft")], run_dir / "sft"),
        ("dpo", ["dpo", "--init", str(run_dir / "sft"), "--data", str(CHAT_DIR / "dpo.jsonl"), "--epochs", "2",
                 "--lr", "1e-3", "--batch-size", "8", "--warmup-steps", "1", "--engine", "torch",
                 "--output", str(run_dir / "dpo")], run_dir / "dpo"),
    ]


def generate_argv(run_dir: Path) -> list[str]:
    """The demo's last command: the fine-tuned model answers QUESTION."""
    return ["generate", "--model", str(run_dir / "dpo"), "--prompt", QUESTION, "--max-new-tokens", "40"]


def summary(report: dict) -> str:
    """One line from the common report keys, the same for every stage."""
    parts = []
    if report.get("docs_in") is not None:
        parts.append(f"{report['docs_in']:,} in -> {report['docs_out']:,} out")
    removed = report.get("removed_by_reason") or {}
    if removed:
        top = sorted(removed.items(), key=lambda kv: -kv[1])
        parts.append("removed: " + ", ".join(f"{k} {v:,}" for k, v in top[:5])
                     + (f", {len(top) - 5} more reasons" if len(top) > 5 else ""))
    parts.append(f"{report.get('seconds', 0):.1f}s")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    from crawl2model.core.errors import InputError
    from crawl2model.core.fs import read_json
    from crawl2model.jobs.cli import main as cli_main

    run_dir = Path(args.output)
    sample = args.input or str(SAMPLE_DIR)
    if not Path(sample).exists() and "://" not in sample:
        raise InputError(f"sample not found: {sample} (build it with: python scripts/build_sample.py)")
    extra = ["--overwrite"] if args.overwrite else []
    lines = []
    for stage, argv, out in steps(sample, run_dir):
        log.info(f"== {stage} ==")
        rc = cli_main(argv + extra)
        if rc:
            log.error(f"stage {stage} failed (exit {rc})")
            return rc
        lines.append(f"{stage:10s} {out}\n           {summary(read_json(str(out / 'report.json')))}")
    log.info("== generate ==")
    print(f"\nQ: {QUESTION}\nA: ", end="", flush=True)
    rc = cli_main(generate_argv(run_dir))
    if rc:
        return rc
    rc = cli_main(["report", str(run_dir)])
    print(f"\ncrawl2model demo: run folder {run_dir}")
    print("\n".join(lines))
    print(f"report page: {run_dir / 'report.html'}")
    return rc


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run every stage on the bundled sample",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="runs/demo", help="run folder (default runs/demo)")
    p.add_argument("--input", help="crawl root to use instead of the bundled sample")
    p.add_argument("--overwrite", action="store_true", help="recompute finished stages")
    p.set_defaults(func=run)
