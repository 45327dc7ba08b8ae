"""The `crawl2model` command: one subcommand per stage.

Each subcommand lives in its own module exposing `register(subparsers)`, which
adds its parser and sets `func`. Modules import their heavy dependencies
(Spark, torch) only when run, so `crawl2model --help` stays fast and a
data-only install can use every data command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.config import ConfigError

# Order is the order of the flow; a module not yet written is left out.
COMMAND_MODULES = [
    "jobs.ingest",
    "jobs.dedup",
    "jobs.filter",
    "jobs.remix",
    "quality_models.cli",
    "tokenizer.cli",
    "jobs.tokenize",
    "train.cli",
    "train.scaling_cli",
    "jobs.demo",
]


class UsageError(Exception):
    """An error in what the user asked for: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crawl2model",
        description="From raw Common Crawl to a pretrained language model (DeepSeek LLM recipe).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UsageError, FileNotFoundError, NotADirectoryError) as e:
        print(f"crawl2model {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
