"""The paper's compute-optimal laws (arXiv 2401.02954, eqs. 1 and 4), used before every run.

With C = M·D (M non-embedding FLOPs per token, D training tokens) the paper
fits, on its own data, the hyper-parameters (eq. 1) and the model/data
allocation (eq. 4):

    η_opt = 0.3118·C^-0.1250        B_opt = 0.2920·C^0.3271   (B in tokens)
    M_opt = 0.1715·C^0.5243         D_opt = 5.8316·C^0.4757

The coefficients depend on the data (the paper's section 3.3 shows higher-quality
data shifts budget toward the model), so they are a `ScalingCoefficients` value
that a team refits with `scaling.fit.fit_runs` on its own IsoFLOP sweep and
passes back with `--coefficients`. The trainer calls `resolve_hparams` to fill
a run's missing learning rate and batch size.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from crawl2model.core.errors import ConfigError
from crawl2model.scaling.flops import flops_per_token
from crawl2model.scaling.shapes import ModelConfig


@dataclass(frozen=True)
class ScalingCoefficients:
    """Coefficient·C^exponent for each law; defaults are the paper's fits on its data."""

    lr_coef: float = 0.3118
    lr_exp: float = -0.1250
    batch_coef: float = 0.2920
    batch_exp: float = 0.3271
    model_coef: float = 0.1715
    model_exp: float = 0.5243
    data_coef: float = 5.8316
    data_exp: float = 0.4757


PAPER = ScalingCoefficients()


def load_coefficients(path: str | Path | None) -> ScalingCoefficients:
    """The paper's coefficients overridden by a JSON object (or `fit --json` output, which nests them)."""
    if not path:
        return PAPER
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"coefficients file not found: {p}")
    try:
        values = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: invalid JSON: {e}") from e
    if isinstance(values, dict) and isinstance(values.get("coefficients"), dict):
        values = values["coefficients"]
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: expected a JSON object of coefficients, got a {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(ScalingCoefficients)}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{p}: unknown coefficient '{key}' (known: {', '.join(sorted(known))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{p}: coefficient '{key}' must be a finite number, got {value!r}")
    return dataclasses.replace(PAPER, **{k: float(v) for k, v in values.items()})


def check_positive(value: float) -> float:
    """A compute budget or model scale as a float; zero, negative or infinite ones are the user's mistake."""
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(f"compute and model scale must be positive and finite, got {value!r}")
    return value


def compute_budget(m: float, tokens: float) -> float:
    """C = M·D: training FLOPs of a model of scale M on D tokens (embeddings excluded)."""
    return float(m) * float(tokens)


def optimal_lr(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """η_opt = 0.3118·C^-0.1250 (paper eq. 1): peak learning rate of the multi-step schedule."""
    return coef.lr_coef * check_positive(compute) ** coef.lr_exp


def optimal_batch_tokens(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """B_opt = 0.2920·C^0.3271 (paper eq. 1), in tokens per optimizer step."""
    return coef.batch_coef * check_positive(compute) ** coef.batch_exp


def optimal_model_scale(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """M_opt = 0.1715·C^0.5243 (paper eq. 4): compute-optimal non-embedding FLOPs/token."""
    return coef.model_coef * check_positive(compute) ** coef.model_exp


def optimal_tokens(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """D_opt = 5.8316·C^0.4757 (paper eq. 4): compute-optimal training tokens."""
    return coef.data_coef * check_positive(compute) ** coef.data_exp


def batch_sequences(batch_tokens: float, seq_len: int, multiple_of: int = 1) -> int:
    """Tokens per step -> whole sequences per step, rounded to a multiple (of the micro-batch x ranks)."""
    multiple_of = max(1, multiple_of)
    return max(multiple_of, multiple_of * round(batch_tokens / seq_len / multiple_of))


def hparams_for(compute: float, seq_len: int, coef: ScalingCoefficients = PAPER) -> dict[str, float]:
    """Learning rate and batch size (tokens and sequences) for a compute budget."""
    batch = optimal_batch_tokens(compute, coef)
    return {
        "compute": float(compute),
        "lr": optimal_lr(compute, coef),
        "batch_tokens": batch,
        "batch_sequences": batch_sequences(batch, seq_len),
        "seq_len": seq_len,
    }


class RunLength(Protocol):
    """What `resolve_hparams` reads of a run: the trainer's `TrainConfig`, without importing the trainer."""

    total_tokens: int | None
    max_steps: int | None
    lr: float | None
    batch_size: int | None
    micro_batch_size: int | None
    seq_len: int | None


T = TypeVar("T", bound=RunLength)


def resolve_hparams(model: ModelConfig, train: T, coef: ScalingCoefficients = PAPER) -> T:
    """A copy of the run (a dataclass) with missing lr and batch_size from the laws, our exact FLOPs/token as M.

    With `total_tokens`, C = M·D directly. With `max_steps` and no batch size the
    budget depends on the batch (D = steps·B) and B on the budget; B = k·(M·steps·B)^β
    solves in closed form: B = (k·(M·steps)^β)^(1/(1-β)).
    """
    seq_len = train.seq_len or model.seq_len
    m = flops_per_token(model, seq_len)
    multiple = train.micro_batch_size or 1
    batch = train.batch_size
    if train.total_tokens is not None:
        compute = m * train.total_tokens
    elif batch is not None:
        compute = m * train.max_steps * batch * seq_len
    else:
        b_tokens = (coef.batch_coef * (m * train.max_steps) ** coef.batch_exp) ** (1.0 / (1.0 - coef.batch_exp))
        compute = m * train.max_steps * b_tokens
    if batch is None:
        batch = batch_sequences(optimal_batch_tokens(compute, coef), seq_len, multiple)
    lr = train.lr if train.lr is not None else optimal_lr(compute, coef)
    return dataclasses.replace(train, lr=lr, batch_size=batch, seq_len=seq_len)
