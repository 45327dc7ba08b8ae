"""IsoFLOP planning (paper section 3.2): per compute budget, models log-spaced around M_opt.

A target scale M is snapped to a real shape on a grid of depths and widths
(`shape_for_scale`), so each planned run's D = C/M uses the shape's exact M and
its budget stays exact.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crawl2model.core.errors import ConfigError
from crawl2model.scaling.flops import flops_per_token
from crawl2model.scaling.laws import (
    PAPER,
    ScalingCoefficients,
    batch_sequences,
    check_positive,
    optimal_batch_tokens,
    optimal_lr,
    optimal_model_scale,
)
from crawl2model.scaling.shapes import DEFAULT_VOCAB, ModelConfig, swiglu_width

WIDTH_STEPS = (16, 32, 64)  # below d 1024; from there widths step by 128 (whole 128-wide heads)
WIDTH_STEP = 64
ASPECT_RATIO = 128.0  # d_model / n_layers: LLaMA-7B's, near DeepSeek-7B's 137
MIN_LAYERS = 2


def check_width_step(width_step: int) -> int:
    """The width step, if the grid has it (heads narrower than 16 or wider than 64 are not planned)."""
    if width_step not in WIDTH_STEPS:
        raise ConfigError(f"width step must be one of {', '.join(map(str, WIDTH_STEPS))}, got {width_step!r}")
    return width_step


def _head_dim(d_model: int, width_step: int = WIDTH_STEP) -> int:
    """128 from d 1024 (when it divides d), else the grid's width step: one head size across a grid's small widths.

    Tying the head width to the step keeps every width on the grid a whole
    number of equal heads (d 48 on a 16-step grid is 3 heads of 16), so
    neighbouring shapes of a sweep differ in width and depth only, not in head size.
    """
    return 128 if d_model >= 1024 and d_model % 128 == 0 else min(64, check_width_step(width_step))


def model_for_shape(
    n_layers: int, d_model: int, seq_len: int, vocab_size: int = DEFAULT_VOCAB, width_step: int = WIDTH_STEP
) -> ModelConfig:
    """Our model at a given depth and width: MHA with heads `_head_dim` wide, SwiGLU ~8d/3.

    The FFN width is rounded to the width step below d 1024 (to 64 by default, as
    `swiglu_width` does), so a 16-step grid's d 32 gets 96, not 128: rounding up
    to 64 would add half again to a tiny model's FFN and move M off the paper's 72·n·d².
    """
    head = _head_dim(d_model, width_step)
    if d_model % head:
        raise ConfigError(f"d_model {d_model} is not a whole number of {head}-wide heads (width step {width_step})")
    heads = d_model // head
    return ModelConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=heads,
        n_kv_heads=heads,
        ffn_dim=swiglu_width(d_model, None if d_model >= 1024 else width_step),
        vocab_size=vocab_size,
        seq_len=seq_len,
    )


def _grid_widths(d_real: float, width_step: int) -> set[int]:
    """The grid widths either side of a real-valued width: multiples of the step, 128 from d 1024."""
    step = 128 if d_real >= 1024 else width_step
    return {max(width_step, step * math.floor(d_real / step)), max(width_step, step * math.ceil(d_real / step))}


def shape_for_scale(
    target_m: float,
    seq_len: int,
    vocab_size: int = DEFAULT_VOCAB,
    aspect_ratio: float = ASPECT_RATIO,
    min_layers: int = MIN_LAYERS,
    max_layers: int = 256,
    width_step: int = WIDTH_STEP,
) -> ModelConfig:
    """The model shape whose exact FLOPs/token is nearest `target_m`, at a sensible aspect ratio.

    Rule: d_model a multiple of `width_step` (of 128, i.e. whole 128-wide heads,
    from d 1024), and among depths min..max_layers the
    shape minimising |ln(M/target)| + 0.25·|ln((d/L)/aspect_ratio)|. The default
    aspect d/L = 128 is LLaMA-7B's and near DeepSeek-7B's (4096/30 = 137); Kaplan
    et al. found loss flat over d/L of roughly 20-200, so matching M matters far
    more than the aspect (a 0.25 weight: 3% of M is worth a 13% aspect change).
    For DeepSeek-7B's M (4.23e10 at l_seq 4096) the rule gives 31 x 3968, a
    neighbour of the real 30 x 4096; for the `1b` preset's M it gives 16 x 2048.

    The default step of 64 starts the grid at 2 x 64 (M = 8.4e5 at l_seq 128),
    above the paper's M_opt for budgets under ~1e13 FLOPs; a step of 16 (heads
    16 wide) reaches 2 x 16 (M ~ 9e4), and min_layers 1 half that, which is
    what an IsoFLOP sweep on a CPU needs to bracket the optimum.
    """
    target_m = check_positive(target_m)
    if not 1 <= min_layers <= max_layers:
        raise ConfigError(f"need 1 <= min_layers <= max_layers, got {min_layers} and {max_layers}")
    best: tuple[float, ModelConfig] | None = None
    for layers in range(min_layers, max_layers + 1):
        # width solving 72·L·d² + 12·L·s·d = M, then the two neighbouring grid widths
        a, b = 72.0 * layers, 12.0 * layers * seq_len
        d_real = (-b + math.sqrt(b * b + 4 * a * target_m)) / (2 * a)
        for d in _grid_widths(d_real, width_step):
            model = model_for_shape(layers, d, seq_len, vocab_size, width_step)
            m = flops_per_token(model)
            cost = abs(math.log(m / target_m)) + 0.25 * abs(math.log(d / layers / aspect_ratio))
            if best is None or cost < best[0]:
                best = (cost, model)
    assert best is not None
    return best[1]


@dataclass
class PlannedRun:
    """One IsoFLOP allocation: a model, its token budget, and the laws' hyper-parameters."""

    name: str
    budget: float
    model: ModelConfig
    M: float
    tokens: int
    steps: int
    lr: float
    batch_size: int
    warmup_steps: int

    def train_table(self, **extra: Any) -> dict[str, Any]:
        """The run file's `[train]` table: what the plan decides, plus `extra` (data, seed); the rest is the trainer's default."""
        return {"total_tokens": self.tokens, "lr": self.lr, "batch_size": self.batch_size,
                "seq_len": self.model.seq_len, "warmup_steps": self.warmup_steps, **extra}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "budget": self.budget,
            "M": self.M,
            "D": self.tokens,
            "n_layers": self.model.n_layers,
            "d_model": self.model.d_model,
            "n_heads": self.model.n_heads,
            "ffn_dim": self.model.ffn_dim,
            "params": self.model.n_params(),
            "params_non_embedding": self.model.n_params(non_embedding=True),
            "steps": self.steps,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "batch_tokens": self.batch_size * self.model.seq_len,
            "warmup_steps": self.warmup_steps,
        }


def plan_isoflop(
    budgets: Sequence[float],
    n_points: int = 10,
    span_decades: float = 1.5,
    seq_len: int = 4096,
    vocab_size: int = DEFAULT_VOCAB,
    aspect_ratio: float = ASPECT_RATIO,
    warmup_steps: int = 2000,
    coef: ScalingCoefficients = PAPER,
    width_step: int = WIDTH_STEP,
    min_layers: int = MIN_LAYERS,
) -> tuple[list[PlannedRun], list[str]]:
    """IsoFLOP profiles (paper section 3.2): per budget, models log-spaced around M_opt, each trained on D = C/M.

    Targets span `span_decades` of M centred on the laws' M_opt (the paper's
    profiles cover about 1.5 decades); each target is snapped to a real shape, so
    D is computed from the shape's actual M and C stays exact. Shapes that snap
    to the same model are planned once. All runs of a budget share η_opt(C) and
    B_opt(C), as in the paper. Warm-up is capped at 10% of a run's steps, since
    the paper's 2000 steps would be most of a small run. `width_step` and
    `min_layers` set the shape grid (`shape_for_scale`). Returns the runs and
    warnings (too few distinct shapes, runs of very few steps).
    """
    if n_points < 3:
        raise ConfigError("an IsoFLOP profile needs at least 3 allocations per budget (a parabola has 3 parameters)")
    runs: list[PlannedRun] = []
    warnings: list[str] = []
    for budget in sorted(float(b) for b in budgets):
        center = optimal_model_scale(budget, coef)
        lr = optimal_lr(budget, coef)
        batch = batch_sequences(optimal_batch_tokens(budget, coef), seq_len)
        seen: set[tuple[int, int]] = set()
        for offset in np.linspace(-span_decades / 2, span_decades / 2, n_points):
            model = shape_for_scale(center * 10**offset, seq_len, vocab_size, aspect_ratio, min_layers,
                                    width_step=width_step)
            if (model.n_layers, model.d_model) in seen:
                continue
            seen.add((model.n_layers, model.d_model))
            m = flops_per_token(model)
            tokens = round(budget / m)
            steps = max(1, math.ceil(tokens / (batch * seq_len)))
            runs.append(
                PlannedRun(
                    name=f"C{budget:.3g}-L{model.n_layers}-d{model.d_model}".replace("+", ""),
                    budget=budget,
                    model=model,
                    M=m,
                    tokens=tokens,
                    steps=steps,
                    lr=lr,
                    batch_size=batch,
                    warmup_steps=min(warmup_steps, steps // 10),
                )
            )
            if steps < 20:
                warnings.append(f"budget {budget:.3g}: {runs[-1].name} has only {steps} steps of {batch} sequences")
        if len(seen) < 3:
            warnings.append(
                f"budget {budget:.3g}: only {len(seen)} distinct shapes (the budget is too small for the shape grid); "
                "its parabola cannot be fitted"
            )
    return runs, warnings
