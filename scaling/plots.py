"""PNG figures of a scaling-law fit, in the style of the paper's Figs. 3-5.

matplotlib is imported on first use with the Agg backend, so importing this
module costs nothing and plotting works on headless machines.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crawl2model.scaling.fit import Run, ScalingFit
from crawl2model.scaling.laws import PAPER, ScalingCoefficients


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_isoflop(fit: ScalingFit, runs: Sequence[Run], path: str | Path) -> Path:
    """Loss vs M per budget with each fitted parabola and its vertex (paper Fig. 4a)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(fit.profiles))))
    for profile, color in zip(fit.profiles, colors):
        mine = [r for r in runs if float(r.budget) == profile.budget]
        ax.scatter([r.M for r in mine], [r.loss for r in mine], s=14, color=color, alpha=0.7)
        lo, hi = np.log10(min(r.M for r in mine)), np.log10(max(r.M for r in mine))
        x = np.linspace(lo - 0.1, hi + 0.1, 200)
        ax.plot(10**x, np.polyval(profile.poly, x), color=color, label=f"C = {profile.budget:.1e}")
        if profile.convex:
            ax.scatter([profile.M_opt], [profile.loss_min], marker="*", s=120, color=color, edgecolor="k", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding FLOPs/token M")
    ax.set_ylabel("validation loss")
    ax.set_title("IsoFLOP profiles (star: fitted optimum)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _law_line(ax: Any, law: Any, xs: np.ndarray, label: str) -> None:
    ax.plot(xs, law(xs), "--", color="C3", label=label)


def plot_scaling(fit: ScalingFit, path: str | Path, reference: ScalingCoefficients | None = PAPER) -> Path:
    """M_opt(C), D_opt(C) and L(C) on log axes with their fitted laws (paper Figs. 4b, 4c, 5).

    The `reference` laws (the paper's by default) are drawn dotted beside the fit:
    the gap between the lines is what a sweep on one's own data has to say.
    """
    plt = _pyplot()
    good = [p for p in fit.profiles if p.convex]
    budgets = np.array([p.budget for p in good])
    target = (fit.prediction or {}).get("compute")
    hi = max([*budgets, target or 0]) if len(budgets) else 1.0
    xs = np.logspace(np.log10(budgets.min()) - 0.3, np.log10(hi) + 0.3, 100) if len(budgets) else np.array([])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = (
        (axes[0], [p.M_opt for p in good], fit.m_opt, "M_opt (FLOPs/token)", "M_opt", "model"),
        (axes[1], [p.D_opt for p in good], fit.d_opt, "D_opt (tokens)", "D_opt", "data"),
    )
    for ax, ys, law, ylabel, name, prefix in panels:
        ax.scatter(budgets, ys, color="C0", zorder=3)
        if law is not None:
            ci = "" if law.exponent_ci is None else f" [{law.exponent_ci[0]:.3f}, {law.exponent_ci[1]:.3f}]"
            _law_line(ax, law, xs, f"{name} = {law.coef:.3g}·C^{law.exponent:.4f}{ci}")
        if reference is not None and len(xs):
            coef, exp = getattr(reference, f"{prefix}_coef"), getattr(reference, f"{prefix}_exp")
            source = "paper" if reference == PAPER else "reference"
            ax.plot(xs, coef * xs**exp, ":", color="0.4", label=f"{source}: {coef:.4g}·C^{exp:.4f}")
        ax.set_ylabel(ylabel)
    ax = axes[2]
    ax.scatter(budgets, [p.loss_min for p in good], color="C0", zorder=3)
    if fit.loss_curve is not None:
        c = fit.loss_curve
        label = f"L = {c.E:.3g} + {c.A:.3g}·C^-{c.gamma:.4f}" if c.E else f"L = {c.A:.3g}·C^-{c.gamma:.4f}"
        ax.plot(xs, c(xs), "--", color="C3", label=label)
        if fit.prediction and "loss" in fit.prediction:
            ax.scatter([target], [fit.prediction["loss"]], marker="*", s=150, color="C1", label="prediction", zorder=4)
    ax.set_ylabel("optimal validation loss")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("compute C (FLOPs)")
        if ax is not axes[2]:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_hparams(fit: ScalingFit, runs: Sequence[Run], path: str | Path) -> Path:
    """η and B of every run vs C, near-optimal runs highlighted, with the fitted laws (paper Fig. 3)."""
    plt = _pyplot()
    near = {id(r) for r in fit.near_optimal}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    budgets = [r.budget for r in runs]
    xs = np.logspace(np.log10(min(budgets)) - 0.3, np.log10(max(budgets)) + 0.3, 100)
    for ax, attr, law, ylabel in (
        (axes[0], "lr", fit.lr_law, "learning rate"),
        (axes[1], "batch_tokens", fit.batch_law, "batch size (tokens)"),
    ):
        pts = [(r.budget, getattr(r, attr), id(r) in near) for r in runs if getattr(r, attr) is not None]
        ax.scatter([c for c, _, n in pts if not n], [v for _, v, n in pts if not n], s=10, color="0.7", label="runs")
        ax.scatter([c for c, _, n in pts if n], [v for _, v, n in pts if n], s=14, color="C0", label="near-optimal")
        if law is not None:
            _law_line(ax, law, xs, f"{law.coef:.4g}·C^{law.exponent:.4f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C (FLOPs)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    return _save(fig, path)
