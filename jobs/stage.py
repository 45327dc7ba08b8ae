"""What every Spark stage's entry point shares: common flags, the session, the protocol.

`SparkStage.run` resolves the config (defaults < run file < flags) and hands
the stage's body to `core.stage.run_stage`, which skips or refuses a finished
output, claims the folder, and writes report.json, config.json and _SUCCESS.
The session starts only when there is work to do.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Any, Callable

from crawl2model.core.config import add_config_argument, resolve, to_dict
from crawl2model.core.fs import s3_settings
from crawl2model.core.outputs import StageOutput
from crawl2model.core.stage import run_stage
from crawl2model.pipeline.spark import add_spark_arguments, check_spark_arguments, spark_from_args

StageBody = Callable[[Any, Any, StageOutput], dict]


def add_io_arguments(parser: argparse.ArgumentParser, input_help: str, output_help: str) -> None:
    parser.add_argument("--input", nargs="+", metavar="PATH", help=f"{input_help}; one or more")
    parser.add_argument("--output", metavar="DIR", help=output_help)
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace OUTPUT even if it is finished (with the same or other settings)")
    add_config_argument(parser)
    add_spark_arguments(parser)
    g = parser.add_argument_group("Object storage (default: the standard AWS environment variables and files)")
    g.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint (sets AWS_ENDPOINT_URL)")
    g.add_argument("--s3-region", metavar="NAME", help="S3 region (sets AWS_REGION)")


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def run_spark_stage(args: argparse.Namespace, stage: str, config_cls: type, body: StageBody,
                    worker_preload: tuple[str, ...] = ()) -> int:
    cfg = resolve(config_cls, stage, args)
    check_spark_arguments(args)
    storage = s3_settings(args.s3_endpoint, args.s3_region)

    def work(out: StageOutput, timer) -> dict:
        spark = spark_from_args(args, f"crawl2model-{stage}",
                                extra={f"spark.executorEnv.{k}": v for k, v in storage.items()},
                                inputs=_as_list(cfg.input), worker_preload=worker_preload)
        report = body(spark, cfg, out)
        report["spark"] = {"master": spark.sparkContext.master, "version": spark.version,
                           "default_parallelism": spark.sparkContext.defaultParallelism}
        return report

    run_stage(stage, to_dict(cfg), work, output=cfg.output, inputs=_as_list(cfg.input),
              overwrite=bool(cfg.overwrite))
    return 0


@dataclass(frozen=True)
class SparkStage:
    """A Spark stage's command, the same for `crawl2model NAME` and `spark-submit jobs/NAME.py`.

    `config` and `body` name "module:attribute" and are imported only when the
    stage runs, so building the CLI's parser imports no stage code. `worker_preload`
    names what the stage's Python workers import (and call) before their first task
    (`pipeline.worker_daemon`): done once per executor, not once per core.
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    config: str
    body: str
    worker_preload: tuple[str, ...] = ()

    def run(self, args: argparse.Namespace) -> int:
        return run_spark_stage(args, self.name, _attribute(self.config), _attribute(self.body),
                               self.worker_preload)

    def register(self, subparsers) -> None:
        p = subparsers.add_parser(self.name, help=self.help, description=self.description)
        self.add_arguments(p)
        p.set_defaults(func=self.run)

    def main(self) -> int:
        """`spark-submit jobs/<stage>.py ...`: the same flags and error boundary as `crawl2model <stage>`."""
        from crawl2model.jobs.cli import Parser, run_command

        parser = Parser(prog=f"jobs/{self.name}.py", description=self.description)
        self.add_arguments(parser)
        parser.set_defaults(func=self.run, command=None)
        return run_command(parser, sys.argv[1:])


def _attribute(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)
