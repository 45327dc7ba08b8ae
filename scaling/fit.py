"""Fitting the laws to a finished IsoFLOP sweep (paper section 3, Figs. 3-5).

From runs.jsonl (one finished run a line) to the IsoFLOP parabolas, the
allocation laws M_opt(C) and D_opt(C), the loss curve L(C) and the
hyper-parameter laws η(C), B(C) of the near-optimal region; `ScalingFit.coefficients`
turns the result into `ScalingCoefficients` for planning the next run. scipy
is imported only for confidence intervals and the irreducible-loss fit.
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
from crawl2model.scaling.laws import PAPER, ScalingCoefficients

NEAR_OPTIMAL_TOLERANCE = 0.0025  # the paper's near-optimal region: within 0.25% of the best loss


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
        for k in ("budget", "M", "D", "loss", "lr", "batch_tokens"):
            value = getattr(run, k)
            if value is None and k in ("lr", "batch_tokens"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{where}: '{k}' must be a positive number, got {value!r}")
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

