"""The `crawl2model` command: one subcommand per stage, one error boundary for all.

Each subcommand lives in its own module exposing `register(subparsers)`, which
adds its parser and sets `func`. Modules import their heavy dependencies
(Spark, torch) only when run, so `crawl2model --help` stays fast and a
data-only install can use every data command.

A user's mistake (`core.errors.UsageError`, a missing file, a bad flag) is one
line on stderr and exit code 2; anything else is a bug and keeps its traceback
(exit code 1).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from crawl2model.core.errors import UsageError
from crawl2model.core.log import setup_logging

# Order is the order of the flow.
COMMAND_MODULES = [
    "crawl2model.jobs.ingest",
    "crawl2model.jobs.dedup",
    "crawl2model.jobs.filter",
    "crawl2model.jobs.decontaminate",
    "crawl2model.jobs.remix",
    "crawl2model.quality_models.cli",
    "crawl2model.tokenizer.cli",
    "crawl2model.jobs.tokenize_shards",
    "crawl2model.train.cli",
    "crawl2model.scaling.cli",
    "crawl2model.jobs.demo",
    "crawl2model.jobs.report",
    "crawl2model.jobs.plan",
    "crawl2model.jobs.verify",
]


class Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported like every other user error: one line, exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="crawl2model",
        description="From raw Common Crawl to a pretrained language model (DeepSeek LLM recipe).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # not written yet
                continue
            raise
        module.register(sub)
    return parser


def _user_error(e: BaseException) -> str | None:
    """The one-line message for a user's mistake, None for a bug."""
    if isinstance(e, UsageError):
        return str(e)
    if isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError)) and e.filename:
        return f"{e.strerror or 'not found'}: {e.filename}"
    if isinstance(e, PermissionError) and e.filename:
        return f"permission denied: {e.filename}"
    return None


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse and run one command inside the error boundary."""
    setup_logging()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        message = _user_error(e)
        if message is None:
            raise
        where = " ".join(filter(None, (parser.prog, getattr(args, "command", None))))
        print(f"{where}: error: {message}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
