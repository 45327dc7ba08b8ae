"""Scaling laws of DeepSeek LLM (arXiv 2401.02954, section 3), as a tool used before every run.

The paper measures model scale by non-embedding FLOPs per token, M, rather than
by parameters, because at small scale attention's sequence-length term and the
vocabulary projection make parameter counts a poor proxy for compute:

    M    = 72·n_layer·d² + 12·n_layer·d·l_seq            (eq. 2)
    6N1  = 72·n_layer·d²                                  (non-embedding params x 6)
    6N2  = 72·n_layer·d² + 6·n_vocab·d                    (with the output projection)
    C    = M·D                                            (D training tokens)

and fits, on its own data, the compute-optimal hyper-parameters (eq. 1) and the
model/data allocation (eq. 4):

    η_opt = 0.3118·C^-0.1250        B_opt = 0.2920·C^0.3271   (B in tokens)
    M_opt = 0.1715·C^0.5243         D_opt = 5.8316·C^0.4757

The coefficients depend on the data (the paper's section 3.3 shows higher-quality
data shifts budget toward the model), so they are a `ScalingCoefficients` value
that a team refits with `fit_runs` on its own IsoFLOP sweep. Everything here is a
pure function; scipy is imported only where a fit needs it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crawl2model.core.errors import ConfigError
from crawl2model.train.config import DEFAULT_VOCAB, ModelConfig, TrainConfig, swiglu_width

NEAR_OPTIMAL_TOLERANCE = 0.0025  # the paper's near-optimal region: within 0.25% of the best loss


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


# --------------------------------------------------------------------------- model scale


def model_scale(n_layers: int, d_model: int, seq_len: int) -> float:
    """M = 72·n_layer·d² + 12·n_layer·d·l_seq (paper eq. 2).

    72·n·d² is 6 FLOPs (forward 2 + backward 4) per weight of 12·d² weights per
    layer (4d² attention projections, 8d² FFN); 12·n·d·l_seq is attention's
    QKᵀ and AV products over the full context (no causal discount), x3 for backward.
    """
    return 72.0 * n_layers * d_model**2 + 12.0 * n_layers * d_model * seq_len


def six_n1(n_layers: int, d_model: int) -> float:
    """6N1 = 72·n_layer·d²: the 6·(non-embedding params) estimate, blind to sequence length."""
    return 72.0 * n_layers * d_model**2


def six_n2(n_layers: int, d_model: int, vocab_size: int = DEFAULT_VOCAB) -> float:
    """6N2 = 72·n_layer·d² + 6·n_vocab·d: 6N1 plus the output (vocabulary) projection."""
    return six_n1(n_layers, d_model) + 6.0 * vocab_size * d_model


def flops_per_token(model: ModelConfig, seq_len: int | None = None) -> float:
    """Exact non-embedding training FLOPs per token of *our* architecture, on the paper's conventions.

    Per layer, 6 FLOPs per matmul weight plus 12·l_seq·(n_heads·head_dim) for the
    attention scores and their weighted sum (full context, no causal discount,
    like eq. 2):

        6·(2·d² + 2·d·kv_dim + 3·d·ffn) + 12·l_seq·d

    How this differs from M: grouped-query attention shrinks only the K and V
    projections, to kv_dim = d·n_kv_heads/n_heads each (the 67B's 8 of 64 heads
    cost 2·d²/8 instead of 2·d²); the score FLOPs are unchanged because every
    query head still attends over the full context. SwiGLU uses three d x ffn
    matrices, 3·ffn·d instead of 8·d², so it matches M exactly when ffn = 8d/3
    and deviates by the rounding (7B: 11008 vs 10923, +0.4% on M). RMSNorm,
    RoPE, softmax and residuals are elementwise and, as in the paper, left out.
    For the 67B this is 13% below M, mostly from GQA and the narrow FFN.
    """
    seq_len = seq_len or model.seq_len
    d = model.d_model
    weights = 2 * d * d + 2 * d * model.kv_dim + 3 * d * model.ffn_dim
    return float(model.n_layers * (6 * weights + 12 * seq_len * d))


def scale_report(model: ModelConfig, seq_len: int | None = None) -> dict[str, float]:
    """M, 6N1, 6N2 and our exact FLOPs/token of one config, each also as a ratio to M."""
    seq_len = seq_len or model.seq_len
    m = model_scale(model.n_layers, model.d_model, seq_len)
    n1 = six_n1(model.n_layers, model.d_model)
    n2 = six_n2(model.n_layers, model.d_model, model.vocab_size)
    exact = flops_per_token(model, seq_len)
    return {
        "M": m,
        "6N1": n1,
        "6N2": n2,
        "M_exact": exact,
        "6N1/M": n1 / m,
        "6N2/M": n2 / m,
        "M_exact/M": exact / m,
        "params": float(model.n_params()),
        "params_non_embedding": float(model.n_params(non_embedding=True)),
    }


# --------------------------------------------------------------------------- the laws


def compute_budget(m: float, tokens: float) -> float:
    """C = M·D: training FLOPs of a model of scale M on D tokens (embeddings excluded)."""
    return float(m) * float(tokens)


def optimal_lr(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """η_opt = 0.3118·C^-0.1250 (paper eq. 1): peak learning rate of the multi-step schedule."""
    return coef.lr_coef * _positive(compute) ** coef.lr_exp


def optimal_batch_tokens(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """B_opt = 0.2920·C^0.3271 (paper eq. 1), in tokens per optimizer step."""
    return coef.batch_coef * _positive(compute) ** coef.batch_exp


def optimal_model_scale(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """M_opt = 0.1715·C^0.5243 (paper eq. 4): compute-optimal non-embedding FLOPs/token."""
    return coef.model_coef * _positive(compute) ** coef.model_exp


def optimal_tokens(compute: float, coef: ScalingCoefficients = PAPER) -> float:
    """D_opt = 5.8316·C^0.4757 (paper eq. 4): compute-optimal training tokens."""
    return coef.data_coef * _positive(compute) ** coef.data_exp


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


def resolve_hparams(model: ModelConfig, train: TrainConfig, coef: ScalingCoefficients = PAPER) -> TrainConfig:
    """Fill a run's missing lr and batch_size from the laws, using our exact FLOPs/token as M.

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


# --------------------------------------------------------------------------- shapes and plans


WIDTH_STEPS = (16, 32, 64)  # below d 1024; from there widths step by 128 (whole 128-wide heads)


def _check_width_step(width_step: int) -> int:
    if width_step not in WIDTH_STEPS:
        raise ConfigError(f"width step must be one of {', '.join(map(str, WIDTH_STEPS))}, got {width_step!r}")
    return width_step


def _head_dim(d_model: int, width_step: int = 64) -> int:
    """128 from d 1024 (when it divides d), else the grid's width step: one head size across a grid's small widths.

    Tying the head width to the step keeps every width on the grid a whole
    number of equal heads (d 48 on a 16-step grid is 3 heads of 16), so
    neighbouring shapes of a sweep differ in width and depth only, not in head size.
    """
    return 128 if d_model >= 1024 and d_model % 128 == 0 else min(64, _check_width_step(width_step))


def model_for_shape(
    n_layers: int, d_model: int, seq_len: int, vocab_size: int = DEFAULT_VOCAB, width_step: int = 64
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
    aspect_ratio: float = 128.0,
    min_layers: int = 2,
    max_layers: int = 256,
    width_step: int = 64,
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
    target_m = _positive(target_m)
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

    def train_config(self, **overrides: Any) -> TrainConfig:
        return TrainConfig(
            total_tokens=self.tokens,
            lr=self.lr,
            batch_size=self.batch_size,
            seq_len=self.model.seq_len,
            warmup_steps=self.warmup_steps,
            **overrides,
        )

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
    aspect_ratio: float = 128.0,
    warmup_steps: int = 2000,
    coef: ScalingCoefficients = PAPER,
    width_step: int = 64,
    min_layers: int = 2,
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


# --------------------------------------------------------------------------- fitting


@dataclass
class Run:
    """One finished training run, as a line of runs.jsonl.

    `budget` is the planned C (groups runs into IsoFLOP profiles); `loss` the final
    validation loss; `lr` and `batch_tokens` are needed only for the
    hyper-parameter fits.
    """

    budget: float
    M: float
    D: float
    loss: float
    lr: float | None = None
    batch_tokens: float | None = None
    name: str | None = None


def load_runs(path: str | Path) -> list[Run]:
    """Read runs.jsonl; a bad line is an error naming the file, line and problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"runs file not found: {p}")
    known = {f.name for f in dataclasses.fields(Run)}
    runs = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: invalid JSON: {e}") from e
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: each line must be a JSON object")
        unknown = sorted(set(record) - known)
        missing = [k for k in ("budget", "M", "D", "loss") if k not in record]
        if unknown or missing:
            raise ConfigError(
                f"{where}: " + (f"unknown key '{unknown[0]}'" if unknown else f"missing key '{missing[0]}'")
                + f" (keys: {', '.join(sorted(known))})"
            )
        run = Run(**record)
        for k in ("budget", "M", "D", "loss"):
            if not isinstance(getattr(run, k), (int, float)) or not getattr(run, k) > 0:
                raise ConfigError(f"{where}: '{k}' must be a positive number, got {getattr(run, k)!r}")
        runs.append(run)
    if not runs:
        raise ConfigError(f"{p}: no runs")
    return runs


@dataclass
class PowerLaw:
    """y = coef·x^exponent fitted by least squares on log10 y vs log10 x.

    Confidence intervals are Student-t intervals from the OLS covariance (n-2
    degrees of freedom), so they are honest about few budgets: none with 2 points.
    """

    coef: float
    exponent: float
    n: int
    exponent_ci: tuple[float, float] | None = None
    coef_ci: tuple[float, float] | None = None
    r2: float | None = None

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        return self.coef * np.asarray(x, dtype=float) ** self.exponent

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_power_law(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> PowerLaw:
    lx, ly = np.log10(np.asarray(x, float)), np.log10(np.asarray(y, float))
    n = len(lx)
    if n < 2 or np.ptp(lx) == 0:
        raise ValueError("a power-law fit needs at least two distinct x values")
    design = np.column_stack([np.ones(n), lx])
    beta, *_ = np.linalg.lstsq(design, ly, rcond=None)
    resid = ly - design @ beta
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else None
    law = PowerLaw(coef=float(10 ** beta[0]), exponent=float(beta[1]), n=n, r2=r2)
    if n > 2:
        from scipy import stats

        cov = float(resid @ resid) / (n - 2) * np.linalg.inv(design.T @ design)
        t = float(stats.t.ppf(0.5 + confidence / 2, n - 2))
        se_a, se_b = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
        law.exponent_ci = (float(beta[1] - t * se_b), float(beta[1] + t * se_b))
        law.coef_ci = (float(10 ** (beta[0] - t * se_a)), float(10 ** (beta[0] + t * se_a)))
    return law


@dataclass
class IsoFLOPProfile:
    """Loss vs log10 M at one budget, fitted by a parabola; its vertex is the optimal allocation."""

    budget: float
    n_runs: int
    poly: tuple[float, float, float]  # a, b, c of a·x² + b·x + c, x = log10 M
    M_opt: float
    D_opt: float
    loss_min: float
    convex: bool
    inside: bool  # the vertex lies within the sampled M range (else it is an extrapolation)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_isoflop_parabola(budget: float, ms: Sequence[float], losses: Sequence[float]) -> IsoFLOPProfile:
    """Paper Fig. 4 / Chinchilla approach 2: a parabola in log M; M_opt at its vertex, D_opt = C/M_opt."""
    x = np.log10(np.asarray(ms, float))
    y = np.asarray(losses, float)
    if len(np.unique(x)) < 3:
        raise ValueError(f"budget {budget:.3g}: a parabola needs at least 3 distinct model scales")
    a, b, c = (float(v) for v in np.polyfit(x, y, 2))
    convex = a > 0
    x_opt = -b / (2 * a) if convex else float(x[np.argmin(y)])
    m_opt = 10**x_opt
    return IsoFLOPProfile(
        budget=float(budget),
        n_runs=len(x),
        poly=(a, b, c),
        M_opt=m_opt,
        D_opt=float(budget) / m_opt,
        loss_min=float(a * x_opt**2 + b * x_opt + c) if convex else float(y.min()),
        convex=convex,
        inside=bool(x.min() <= x_opt <= x.max()),
    )


@dataclass
class LossCurve:
    """L(C) = E + A·C^-gamma fitted on the profiles' minima (E = 0 without an irreducible term)."""

    A: float
    gamma: float
    E: float = 0.0
    gamma_ci: tuple[float, float] | None = None

    def __call__(self, compute: float | np.ndarray) -> float | np.ndarray:
        return self.E + self.A * np.asarray(compute, dtype=float) ** -self.gamma

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fit_loss_curve(compute: Sequence[float], losses: Sequence[float], irreducible: bool = False) -> LossCurve:
    """Pure power law by log-log least squares; with `irreducible`, a nonlinear fit of E too (needs 4+ budgets)."""
    law = fit_power_law(compute, losses)
    curve = LossCurve(
        A=law.coef,
        gamma=-law.exponent,
        gamma_ci=None if law.exponent_ci is None else (-law.exponent_ci[1], -law.exponent_ci[0]),
    )
    if not irreducible:
        return curve
    if len(compute) < 4:
        raise ValueError("a loss curve with an irreducible term has 3 parameters: it needs at least 4 budgets")
    from scipy.optimize import curve_fit

    lc, y = np.log10(np.asarray(compute, float)), np.asarray(losses, float)
    ref = float(lc.mean())  # fit A at the mean budget so the parameters are on similar scales

    def model(lx: np.ndarray, e: float, log_a: float, gamma: float) -> np.ndarray:
        return e + 10 ** (log_a - gamma * (lx - ref))

    p0 = (0.5 * float(y.min()), math.log10(0.5 * float(y.min())), curve.gamma * 2)
    params, cov = curve_fit(model, lc, y, p0=p0, bounds=([0, -10, 0], [float(y.min()), 10, 5]), maxfev=20000)
    e, log_a, gamma = (float(v) for v in params)
    se = math.sqrt(cov[2, 2]) if np.all(np.isfinite(cov)) else None
    return LossCurve(
        A=10 ** (log_a + gamma * ref),
        gamma=gamma,
        E=e,
        gamma_ci=None if se is None else (gamma - 1.96 * se, gamma + 1.96 * se),
    )


def near_optimal_runs(runs: Sequence[Run], tolerance: float = NEAR_OPTIMAL_TOLERANCE) -> list[Run]:
    """Runs whose loss is within `tolerance` (relative) of their budget's best loss (paper Fig. 3)."""
    best: dict[float, float] = {}
    for r in runs:
        best[r.budget] = min(best.get(r.budget, math.inf), r.loss)
    return [r for r in runs if r.loss <= best[r.budget] * (1 + tolerance)]


@dataclass
class ScalingFit:
    """Everything `fit_runs` learns from a sweep; `to_dict` is the `fit --json` output."""

    profiles: list[IsoFLOPProfile]
    m_opt: PowerLaw | None = None
    d_opt: PowerLaw | None = None
    loss_curve: LossCurve | None = None
    near_optimal: list[Run] = field(default_factory=list)
    lr_law: PowerLaw | None = None
    batch_law: PowerLaw | None = None
    prediction: dict[str, float] | None = None
    warnings: list[str] = field(default_factory=list)

    def coefficients(self, base: ScalingCoefficients = PAPER) -> ScalingCoefficients:
        """The fitted laws as coefficients for planning the next run (unfitted laws keep `base`)."""
        values = dataclasses.asdict(base)
        for law, prefix in ((self.lr_law, "lr"), (self.batch_law, "batch"), (self.m_opt, "model"), (self.d_opt, "data")):
            if law is not None:
                values[f"{prefix}_coef"], values[f"{prefix}_exp"] = law.coef, law.exponent
        return ScalingCoefficients(**values)

    def to_dict(self) -> dict[str, Any]:
        def d(x: Any) -> Any:
            return None if x is None else x.to_dict()

        region: dict[str, dict[str, Any]] = {}
        for r in self.near_optimal:
            entry = region.setdefault(repr(r.budget), {"budget": r.budget, "runs": 0, "lr": [], "batch_tokens": []})
            entry["runs"] += 1
            if r.lr is not None:
                entry["lr"].append(r.lr)
            if r.batch_tokens is not None:
                entry["batch_tokens"].append(r.batch_tokens)
        for entry in region.values():
            for key in ("lr", "batch_tokens"):
                values = entry.pop(key)
                entry[f"{key}_range"] = [min(values), max(values)] if values else None
        return {
            "profiles": [p.to_dict() for p in self.profiles],
            "M_opt": d(self.m_opt),
            "D_opt": d(self.d_opt),
            "loss_curve": d(self.loss_curve),
            "near_optimal_region": list(region.values()),
            "lr": d(self.lr_law),
            "batch_tokens": d(self.batch_law),
            "prediction": self.prediction,
            "warnings": self.warnings,
        }


def fit_runs(
    runs: Sequence[Run],
    target_compute: float | None = None,
    irreducible: bool = False,
    tolerance: float = NEAR_OPTIMAL_TOLERANCE,
) -> ScalingFit:
    """From finished runs to the allocation laws, the loss curve and the hyper-parameter laws.

    Runs that share a budget and a model scale but differ in lr/batch (a
    hyper-parameter grid) enter the IsoFLOP profile by their best loss. Budgets
    whose parabola opens downward or has too few scales are reported and left out
    of the power-law fits.
    """
    by_budget: dict[float, dict[float, float]] = {}
    for r in runs:
        scales = by_budget.setdefault(float(r.budget), {})
        scales[float(r.M)] = min(scales.get(float(r.M), math.inf), r.loss)
    fit = ScalingFit(profiles=[])
    for budget in sorted(by_budget):
        scales = by_budget[budget]
        try:
            profile = fit_isoflop_parabola(budget, list(scales), list(scales.values()))
        except ValueError as e:
            fit.warnings.append(str(e))
            continue
        if not profile.convex:
            fit.warnings.append(f"budget {budget:.3g}: loss vs log M is not convex; left out of the fits")
        elif not profile.inside:
            fit.warnings.append(f"budget {budget:.3g}: the optimum lies outside the sampled model scales (extrapolated)")
        fit.profiles.append(profile)
    good = [p for p in fit.profiles if p.convex]
    if len(good) >= 2:
        budgets = [p.budget for p in good]
        fit.m_opt = fit_power_law(budgets, [p.M_opt for p in good])
        fit.d_opt = fit_power_law(budgets, [p.D_opt for p in good])
        try:
            fit.loss_curve = fit_loss_curve(budgets, [p.loss_min for p in good], irreducible)
        except (ValueError, RuntimeError) as e:
            fit.warnings.append(f"loss curve: {e}")
    else:
        fit.warnings.append(f"{len(good)} usable IsoFLOP profile(s): the allocation laws need at least 2 budgets")
    fit.near_optimal = near_optimal_runs(runs, tolerance)
    fit.lr_law = _hparam_law(fit.near_optimal, "lr", fit.warnings)
    fit.batch_law = _hparam_law(fit.near_optimal, "batch_tokens", fit.warnings)
    if target_compute is not None:
        fit.prediction = _predict(fit, float(target_compute))
    return fit


def _hparam_law(runs: Sequence[Run], attr: str, warnings: list[str]) -> PowerLaw | None:
    """η(C) or B(C) fitted to every near-optimal run (the paper fits its Fig. 3 region, not one point per budget)."""
    points = [(r.budget, getattr(r, attr)) for r in runs if getattr(r, attr) is not None]
    if len({c for c, _ in points}) < 2:
        warnings.append(f"{attr}: near-optimal runs with {attr} at fewer than 2 budgets; no fit")
        return None
    return fit_power_law([c for c, _ in points], [v for _, v in points])


def _predict(fit: ScalingFit, compute: float) -> dict[str, float]:
    out: dict[str, float] = {"compute": compute}
    if fit.loss_curve is not None:
        out["loss"] = float(fit.loss_curve(compute))
    if fit.m_opt is not None and fit.d_opt is not None:
        out["M_opt"] = float(fit.m_opt(compute))
        out["D_opt"] = float(fit.d_opt(compute))
    if fit.lr_law is not None:
        out["lr"] = float(fit.lr_law(compute))
    if fit.batch_law is not None:
        out["batch_tokens"] = float(fit.batch_law(compute))
    return out


def _positive(value: float) -> float:
    value = float(value)
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(f"compute and model scale must be positive and finite, got {value!r}")
    return value
