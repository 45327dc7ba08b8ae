"""The `plan-isoflop` stage: an IsoFLOP sweep written as run files for the trainer.

    crawl2model scaling plan-isoflop --budgets 1e17,3e17,1e18 --data tokens/train --output runs/plan

The output folder holds one run file per allocation (`[model]` and `[train]`,
what `crawl2model train --config` reads) and plan.json (which file is which
run); like every stage's output it has report.json, config.json and
`_SUCCESS`, so a rerun with the same settings is skipped and one with other
settings stops (exit code 2, naming the changed keys) unless `--overwrite`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from crawl2model.core.config import DEFAULT_SEED, to_dict
from crawl2model.core.errors import ConfigError
from crawl2model.core.fs import write_json
from crawl2model.core.log import Timer
from crawl2model.core.outputs import StageOutput
from crawl2model.core.sizes import parse_count
from crawl2model.core.stage import run_stage
from crawl2model.scaling.isoflop import ASPECT_RATIO, MIN_LAYERS, WIDTH_STEP, PlannedRun, check_width_step, plan_isoflop
from crawl2model.scaling.laws import ScalingCoefficients
from crawl2model.scaling.runfile import run_file
from crawl2model.scaling.shapes import DEFAULT_VOCAB

STAGE = "plan-isoflop"


@dataclass
class PlanConfig:
    """The `[plan-isoflop]` table of a run file; flags of the same names override it."""

    # Compute budgets C in FLOPs: a list of numbers or counts ("1e17", "300P"), or one comma-separated string.
    budgets: list[float] = field(default_factory=list)
    points: int = 10  # allocations per budget, before shapes that coincide
    span: float = 1.5  # decades of M covered around M_opt (the paper's profiles cover about 1.5)
    seq_len: int = 4096
    vocab: int = DEFAULT_VOCAB
    aspect_ratio: float = ASPECT_RATIO
    width_step: int = WIDTH_STEP
    min_layers: int = MIN_LAYERS
    warmup_steps: int = 2000  # capped at 10% of each run's steps
    # Written into each run file's [train] table.
    data: str | None = None
    val_data: str | None = None
    seed: int = DEFAULT_SEED
    coefficients: str | None = None  # JSON file of law coefficients; default the paper's
    output: str | None = None  # without one the plan is only printed
    overwrite: bool = False

    def validate(self) -> None:
        budgets = self.budgets.split(",") if isinstance(self.budgets, str) else self.budgets
        if not isinstance(budgets, (list, tuple)):
            raise ConfigError(f"{STAGE}: budgets must be a list of compute budgets, got {budgets!r}")
        try:
            self.budgets = sorted({parse_count(b.strip() if isinstance(b, str) else b)
                                   for b in budgets if not (isinstance(b, str) and not b.strip())})
        except ConfigError as e:
            raise ConfigError(f"{STAGE}: budgets: {e}") from None
        if not self.budgets:
            raise ConfigError(f"{STAGE}: --budgets needs at least one compute budget, e.g. 1e17,3e17,1e18")
        for name in ("points", "seq_len", "vocab", "width_step", "min_layers", "warmup_steps", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{STAGE}: {name} must be an integer, got {value!r}")
        for name in ("seq_len", "vocab", "span", "aspect_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{STAGE}: {name} must be positive, got {value!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"{STAGE}: warmup_steps must be >= 0, got {self.warmup_steps}")
        check_width_step(self.width_step)

    def plan(self, coef: ScalingCoefficients) -> tuple[list[PlannedRun], list[str]]:
        """The runs and the planner's warnings."""
        return plan_isoflop(self.budgets, n_points=self.points, span_decades=self.span, seq_len=self.seq_len,
                            vocab_size=self.vocab, aspect_ratio=self.aspect_ratio, warmup_steps=self.warmup_steps,
                            coef=coef, width_step=self.width_step, min_layers=self.min_layers)


def write_plan(cfg: PlanConfig, coef: ScalingCoefficients, runs: list[PlannedRun],
               warnings: list[str]) -> dict[str, Any]:
    """Write the plan to `cfg.output` under the stage protocol; the report (the earlier one when skipped).

    The fingerprint holds the coefficients' values, not the file's name: the
    same laws from another file plan the same runs.
    """
    config = {**to_dict(cfg), "coefficients": dataclasses.asdict(coef)}

    def body(out: StageOutput, timer: Timer) -> dict[str, Any]:
        index = []
        for run in runs:
            header = (f"IsoFLOP run {run.name}: budget C = {run.budget:.6g}, M = {run.M:.6g}, D = {run.tokens}\n"
                      "written by `crawl2model scaling plan-isoflop`")
            train = run.train_table(data=cfg.data, val_data=cfg.val_data, seed=cfg.seed)
            name = f"{run.name}.toml"
            with out.fs.open_output_stream(out.path(name)) as f:
                f.write(run_file(dataclasses.asdict(run.model), train, header).encode())
            index.append({**run.to_dict(), "config": name})
        write_json(out.fs, out.path("plan.json"), {
            "budgets": cfg.budgets, "points": cfg.points, "span_decades": cfg.span,
            "width_step": cfg.width_step, "min_layers": cfg.min_layers,
            "coefficients": config["coefficients"], "runs": index, "warnings": warnings,
        })
        return {"docs_in": None, "docs_out": None, "budgets": cfg.budgets, "runs": len(runs),
                "warnings": warnings}

    return run_stage(STAGE, config, body, output=cfg.output, inputs=[], overwrite=cfg.overwrite)
