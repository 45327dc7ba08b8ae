"""Sampling rates that turn a measured domain distribution into a target mixture.

Everything is counted in one unit (UTF-8 bytes or tokens). With measured sizes
S_d, target shares p_d and an output total T, domain d needs rate
r_d = p_d·T / S_d: above 1 it is up-sampled by repetition, below 1 it is
down-sampled. Repetition is capped (at most `max_copies` copies of a
document), so a small domain with a large target may be unreachable. Then it
gets its cap and the rest of the budget is shared among the other domains in
proportion to their targets, again subject to the cap ("water filling"): the
proportional rescaling of the remaining targets is the mixture closest to the
target (in KL divergence) that the caps allow, and it keeps T. The domains
that fell short are listed with the rate they would have needed.

T is the input size by default (the same budget, redistributed), `max` (the
largest output in which every reachable target is met exactly), or a number.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

from crawl2model.core.config import load_toml
from crawl2model.core.errors import ConfigError


@dataclass
class MixturePlan:
    unit: str
    max_copies: float
    total: float                 # the output size asked for
    target: dict[str, float]     # normalized shares
    measured: dict[str, float]   # input units per domain
    planned: dict[str, float]    # output units per domain
    rates: dict[str, float]      # planned / measured
    unreachable: dict[str, str] = field(default_factory=dict)  # domain -> why

    def as_dict(self) -> dict:
        return asdict(self)


def load_target(path: str) -> dict[str, float]:
    """The `[target]` table of a mixture file: domain -> share (normalized later)."""
    table = load_toml(path)
    target = table.get("target")
    if not isinstance(target, dict) or not target:
        raise ConfigError(f"{path}: needs a [target] table of domain = share")
    unknown = set(table) - {"target"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; settings such as unit and "
                          "max_copies go in the run file's [remix] table or on the command line")
    for domain, share in target.items():
        if not isinstance(share, (int, float)) or isinstance(share, bool) or share < 0 or not math.isfinite(share):
            raise ConfigError(f"{path}: target for {domain!r} must be a number >= 0, got {share!r}")
    return {str(k): float(v) for k, v in target.items()}


def resolve_total(total: str | float, measured: dict[str, float], share: dict[str, float],
                  max_copies: float) -> float:
    if total == "input":
        return float(sum(measured.values()))
    if total == "max":
        limits = [max_copies * measured[d] / p for d, p in share.items() if p > 0 and measured.get(d, 0) > 0]
        return min(limits) if limits else 0.0
    return float(total)


def plan(measured: dict[str, float], target: dict[str, float] | None, max_copies: float,
         total: str | float = "input", unit: str = "bytes") -> MixturePlan:
    """Rates per domain; `target=None` keeps the measured mixture (every rate 1 with T = input)."""
    if max_copies <= 0:
        raise ConfigError(f"max_copies must be positive, got {max_copies}")
    if target is None:
        target = {d: s for d, s in measured.items() if s > 0}
    weight = sum(target.values())
    if weight <= 0:
        raise ConfigError("the target mixture gives no domain a positive share")
    domains = sorted(set(measured) | set(target))
    share = {d: target.get(d, 0.0) / weight for d in domains}
    size = {d: float(measured.get(d, 0.0)) for d in domains}
    T = resolve_total(total, size, share, max_copies)
    planned = {d: 0.0 for d in domains}
    unreachable: dict[str, str] = {}
    free = []
    for d in domains:
        if share[d] > 0 and size[d] <= 0:
            unreachable[d] = "no documents of this domain in the input"
        elif share[d] > 0:
            free.append(d)
    budget = T
    while free:
        weight = sum(share[d] for d in free)
        capped = [d for d in free if share[d] / weight * budget > max_copies * size[d] * (1 + 1e-12)]
        if not capped:
            for d in free:
                planned[d] = share[d] / weight * budget
            break
        for d in capped:
            planned[d] = max_copies * size[d]
            budget -= planned[d]
            free.remove(d)
            unreachable[d] = (f"needs rate {share[d] * T / size[d]:.3f} for its target share, "
                              f"above max_copies {max_copies:g}")
    rates = {d: planned[d] / size[d] if size[d] > 0 else 0.0 for d in domains}
    return MixturePlan(unit=unit, max_copies=max_copies, total=T, target=share, measured=size,
                       planned=planned, rates=rates, unreachable=unreachable)


def prefix_cut(masses: Sequence[float], need: float) -> tuple[int, float]:
    """How many leading buckets to take so their mass is closest to `need`: (count, mass taken).

    Buckets are hash ranges of doc_id, so taking a prefix of them is a uniform
    random subset that hits a fractional rate to within one bucket's mass,
    where independent coin flips would miss it by their standard deviation.
    """
    best, best_mass, acc = 0, 0.0, 0.0
    for i, m in enumerate(masses, 1):
        acc += m
        if abs(acc - need) < abs(best_mass - need):
            best, best_mass = i, acc
        if acc >= need:
            break
    return best, best_mass
