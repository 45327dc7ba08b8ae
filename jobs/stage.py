"""What every Spark stage's entry point shares: common flags and the run protocol.

`run_stage` resolves the config (defaults < run file < flags), skips a finished
output unless `--overwrite`, builds the session, runs the stage's body into a
temporary folder, writes `report.json` and `config.json` there, and commits.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.config import add_config_argument, resolve, to_dict
from pipeline.outputs import StageOutput, write_json
from pipeline.spark import add_spark_arguments, spark_from_args

StageBody = Callable[[Any, Any, StageOutput], dict]


def add_io_arguments(parser: argparse.ArgumentParser, input_help: str, output_help: str,
                     many_inputs: bool = False) -> None:
    parser.add_argument("--input", nargs="+" if many_inputs else None, metavar="PATH", help=input_help)
    parser.add_argument("--output", metavar="DIR", help=output_help)
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="recompute even if OUTPUT is already finished")
    add_config_argument(parser)
    add_spark_arguments(parser)


def run_stage(args: argparse.Namespace, stage: str, config_cls: type, body: StageBody) -> int:
    cfg = resolve(config_cls, stage, args)
    out = StageOutput(cfg.output, overwrite=bool(cfg.overwrite))
    if out.done:
        print(f"[{stage}] {cfg.output} is already finished (_SUCCESS); use --overwrite to recompute",
              file=sys.stderr)
        return 0
    out.begin()
    t0 = time.time()
    spark = spark_from_args(args, f"crawl2model-{stage}")
    try:
        report = body(spark, cfg, out)
        report.setdefault("seconds_total", round(time.time() - t0, 3))
        report["config"] = to_dict(cfg)
        report["spark"] = {"master": spark.sparkContext.master, "version": spark.version,
                           "default_parallelism": spark.sparkContext.defaultParallelism}
        write_json(out.fs, out.path("report.json"), report)
        write_json(out.fs, out.path("config.json"), {stage: to_dict(cfg)})
        out.commit(stage)
    except BaseException:
        out.abort()
        raise
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, (dict, list))}),
          file=sys.stderr)
    print(f"[{stage}] wrote {cfg.output}", file=sys.stderr)
    return 0


def standalone_main(prog: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                    run: Callable[[argparse.Namespace], int], description: str) -> int:
    """`spark-submit jobs/<stage>.py ...`: the same flags as `crawl2model <stage>`."""
    from pipeline.config import ConfigError

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args()
    try:
        return run(args)
    except (ConfigError, FileNotFoundError, NotADirectoryError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


@dataclass(frozen=True)
class SparkStage:
    """A Spark stage's command, the same for `crawl2model NAME` and `spark-submit jobs/NAME.py`.

    `config` and `body` name "module:attribute" and are imported only when the
    stage runs, so building the CLI's parser imports no stage code.
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    config: str
    body: str

    def run(self, args: argparse.Namespace) -> int:
        return run_stage(args, self.name, _attribute(self.config), _attribute(self.body))

    def register(self, subparsers) -> None:
        p = subparsers.add_parser(self.name, help=self.help, description=self.description)
        self.add_arguments(p)
        p.set_defaults(func=self.run)

    def main(self) -> int:
        return standalone_main(f"jobs/{self.name}.py", self.add_arguments, self.run, self.description)


def _attribute(spec: str) -> Any:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)
