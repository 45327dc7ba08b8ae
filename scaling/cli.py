"""`crawl2model scaling ...`: the paper's scaling laws as commands, each with `--json`.

    model-scale   M, 6N1, 6N2 (and our exact FLOPs/token) of a model shape
    hparams       learning rate and batch size for a compute budget
    allocate      compute-optimal model scale, data and a concrete model shape
    plan-isoflop  IsoFLOP sweep: run files the trainer accepts, plus plan.json (a stage output)
    fit           fit the laws to finished runs; PNG plots

Counts (budgets, tokens) take units: 1e17, 500B, 2T. Only numpy is imported
here at parse time; scipy and matplotlib load when a fit or a plot needs them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawl2model.core.config import add_config_argument, resolve
from crawl2model.core.errors import ConfigError
from crawl2model.core.sizes import COUNT_HELP, parse_count
from crawl2model.scaling import fit as fitting
from crawl2model.scaling import plots
from crawl2model.scaling.flops import flops_per_token, model_scale, scale_report, six_n1, six_n2
from crawl2model.scaling.isoflop import ASPECT_RATIO, MIN_LAYERS, WIDTH_STEP, WIDTH_STEPS, shape_for_scale
from crawl2model.scaling.laws import compute_budget, hparams_for, load_coefficients, optimal_model_scale, optimal_tokens
from crawl2model.scaling.plan import PlanConfig, write_plan
from crawl2model.scaling.shapes import DEFAULT_VOCAB, PRESETS, ModelConfig, get_preset


def count(text: str) -> float:
    """argparse type for a count with units; argparse turns the error into its one-line usage message (exit 2)."""
    try:
        return parse_count(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _budgets(text: str) -> list[float]:
    return [count(part) for part in text.split(",") if part.strip()]


def _emit(args: argparse.Namespace, result: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> int:
    print(json.dumps(result, indent=2) if args.json else text(result))
    return 0


def _model_summary(model: ModelConfig) -> dict[str, Any]:
    return {**dataclasses.asdict(model), "params": model.n_params(), "params_non_embedding": model.n_params(True)}


# --------------------------------------------------------------------------- model-scale


def _model_from_args(args: argparse.Namespace) -> ModelConfig | None:
    """The preset, or None when the shape is given by --layers/--d-model (no heads or FFN known)."""
    if args.preset:
        if args.layers or args.d_model:
            raise ConfigError("give either --preset or --layers/--d-model, not both")
        model = get_preset(args.preset)
        if args.seq_len:
            model.seq_len = args.seq_len
        if args.vocab:
            model.vocab_size = args.vocab
        return model
    if not (args.layers and args.d_model):
        raise ConfigError("give --preset P, or --layers L and --d-model D (with --seq-len S)")
    return None


def cmd_model_scale(args: argparse.Namespace) -> int:
    model = _model_from_args(args)
    if model is not None:
        result = {"preset": args.preset, "seq_len": model.seq_len, **scale_report(model)}
    else:
        seq, vocab = args.seq_len or 4096, args.vocab or DEFAULT_VOCAB
        m = model_scale(args.layers, args.d_model, seq)
        n1, n2 = six_n1(args.layers, args.d_model), six_n2(args.layers, args.d_model, vocab)
        result = {
            "n_layers": args.layers, "d_model": args.d_model, "seq_len": seq, "vocab_size": vocab,
            "M": m, "6N1": n1, "6N2": n2, "6N1/M": n1 / m, "6N2/M": n2 / m,
        }

    def text(r: dict[str, Any]) -> str:
        lines = [f"M   = {r['M']:.4g} FLOPs/token (72·n·d² + 12·n·d·l_seq, l_seq {r['seq_len']})",
                 f"6N1 = {r['6N1']:.4g}  ({r['6N1/M']:.3f} x M)",
                 f"6N2 = {r['6N2']:.4g}  ({r['6N2/M']:.3f} x M)"]
        if "M_exact" in r:
            lines.append(f"our exact FLOPs/token = {r['M_exact']:.4g}  ({r['M_exact/M']:.3f} x M; GQA and SwiGLU width)")
            lines.append(f"params = {r['params']:.4g} ({r['params_non_embedding']:.4g} non-embedding)")
        return "\n".join(lines)

    return _emit(args, result, text)


# --------------------------------------------------------------------------- hparams


def cmd_hparams(args: argparse.Namespace) -> int:
    coef = load_coefficients(args.coefficients)
    if args.compute is not None:
        if args.preset or args.tokens:
            raise ConfigError("give either --compute C, or --preset P with --tokens D")
        seq = args.seq_len or 4096
        result = {"M": None, "tokens": None, **hparams_for(args.compute, seq, coef)}
    else:
        if not (args.preset and args.tokens):
            raise ConfigError("give --compute C, or --preset P with --tokens D")
        model = get_preset(args.preset)
        seq = args.seq_len or model.seq_len
        m = flops_per_token(model, seq) if args.flops == "exact" else model_scale(model.n_layers, model.d_model, seq)
        result = {"preset": args.preset, "M": m, "M_formula": args.flops, "tokens": args.tokens,
                  **hparams_for(compute_budget(m, args.tokens), seq, coef)}

    def text(r: dict[str, Any]) -> str:
        head = f"M = {r['M']:.4g} ({r['M_formula']}), D = {r['tokens']:.4g} tokens\n" if r["M"] else ""
        return (head + f"C = {r['compute']:.4g} FLOPs\n"
                f"lr    = {r['lr']:.4g}\n"
                f"batch = {r['batch_tokens']:.4g} tokens = {r['batch_sequences']} sequences of {r['seq_len']}")

    return _emit(args, result, text)


# --------------------------------------------------------------------------- allocate


def cmd_allocate(args: argparse.Namespace) -> int:
    coef = load_coefficients(args.coefficients)
    m_opt, d_opt = optimal_model_scale(args.compute, coef), optimal_tokens(args.compute, coef)
    model = shape_for_scale(m_opt, args.seq_len, args.vocab, args.aspect_ratio, args.min_layers,
                            width_step=args.width_step)
    m = flops_per_token(model)
    result = {
        "compute": args.compute, "M_opt": m_opt, "D_opt": d_opt,
        "model": _model_summary(model), "M": m, "D": args.compute / m,
        **{k: v for k, v in hparams_for(args.compute, args.seq_len, coef).items() if k != "compute"},
    }

    def text(r: dict[str, Any]) -> str:
        mod = r["model"]
        return (f"C = {r['compute']:.4g}: M_opt = {r['M_opt']:.4g} FLOPs/token, D_opt = {r['D_opt']:.4g} tokens\n"
                f"nearest shape: {mod['n_layers']} layers x d {mod['d_model']} ({mod['n_heads']} heads, FFN {mod['ffn_dim']}), "
                f"M = {r['M']:.4g}, D = C/M = {r['D']:.4g}, {mod['params']:.4g} params\n"
                f"lr = {r['lr']:.4g}, batch = {r['batch_sequences']} x {r['seq_len']} tokens")

    return _emit(args, result, text)


# --------------------------------------------------------------------------- plan-isoflop


def cmd_plan_isoflop(args: argparse.Namespace) -> int:
    cfg = resolve(PlanConfig, "plan-isoflop", args)
    coef = load_coefficients(cfg.coefficients)
    runs, warnings = cfg.plan(coef)
    result: dict[str, Any] = {"runs": [r.to_dict() for r in runs], "warnings": warnings}
    if cfg.output:
        write_plan(cfg, coef, runs, warnings)
        result["output"] = cfg.output

    def text(r: dict[str, Any]) -> str:
        lines = [f"{'run':<24} {'M':>10} {'D':>10} {'params':>9} {'steps':>7} {'batch':>6} {'lr':>9}"]
        for run in r["runs"]:
            lines.append(f"{run['name']:<24} {run['M']:>10.3g} {run['D']:>10.3g} {run['params']:>9.3g} "
                         f"{run['steps']:>7} {run['batch_size']:>6} {run['lr']:>9.3g}")
        lines += [f"warning: {w}" for w in r["warnings"]]
        if "output" in r:
            lines.append(f"{len(r['runs'])} run files and plan.json in {r['output']}")
        return "\n".join(lines)

    return _emit(args, result, text)


# --------------------------------------------------------------------------- fit


def cmd_fit(args: argparse.Namespace) -> int:
    runs = fitting.load_runs(args.runs)
    try:
        fit = fitting.fit_runs(runs, target_compute=args.target_compute, irreducible=args.irreducible,
                               tolerance=args.tolerance)
    except ValueError as e:
        raise ConfigError(f"{args.runs}: {e}") from e
    result = fit.to_dict()
    result["coefficients"] = dataclasses.asdict(fit.coefficients())
    if args.plots:
        out = Path(args.plots)
        written = [plots.plot_isoflop(fit, runs, out / "isoflop.png")]
        if fit.m_opt is not None:
            written.append(plots.plot_scaling(fit, out / "scaling.png"))
        if any(r.lr is not None or r.batch_tokens is not None for r in runs):
            written.append(plots.plot_hparams(fit, runs, out / "hparams.png"))
        result["plots"] = [str(p) for p in written]
    return _emit(args, result, _fit_text)


def _fmt_law(name: str, law: dict[str, Any] | None) -> str:
    if law is None:
        return f"{name}: not fitted"
    ci = law["exponent_ci"]
    ci_text = f", 95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else " (no CI with 2 points)"
    return f"{name} = {law['coef']:.4g}·C^{law['exponent']:.4f}{ci_text}"


def _fit_text(r: dict[str, Any]) -> str:
    lines = [f"{'budget':>10} {'runs':>5} {'M_opt':>10} {'D_opt':>10} {'loss_min':>9}"]
    for p in r["profiles"]:
        flag = "" if p["convex"] and p["inside"] else ("  (not convex)" if not p["convex"] else "  (extrapolated)")
        lines.append(f"{p['budget']:>10.3g} {p['n_runs']:>5} {p['M_opt']:>10.4g} {p['D_opt']:>10.4g} "
                     f"{p['loss_min']:>9.4f}{flag}")
    lines += [_fmt_law("M_opt", r["M_opt"]), _fmt_law("D_opt", r["D_opt"]),
              _fmt_law("lr", r["lr"]), _fmt_law("batch_tokens", r["batch_tokens"])]
    c = r["loss_curve"]
    if c:
        lines.append(f"L(C) = {c['E']:.4g} + {c['A']:.4g}·C^-{c['gamma']:.4f}" if c["E"]
                     else f"L(C) = {c['A']:.4g}·C^-{c['gamma']:.4f}")
    if r["prediction"]:
        lines.append("prediction: " + ", ".join(f"{k} = {v:.4g}" for k, v in r["prediction"].items()))
    lines.append(f"near-optimal region: {sum(e['runs'] for e in r['near_optimal_region'])} runs "
                 f"in {len(r['near_optimal_region'])} budgets")
    lines += [f"warning: {w}" for w in r["warnings"]]
    lines += [f"wrote {p}" for p in r.get("plots", [])]
    return "\n".join(lines)


# --------------------------------------------------------------------------- wiring


def _common(p: argparse.ArgumentParser, coefficients: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    if coefficients:
        p.add_argument("--coefficients", metavar="FILE.json",
                       help="law coefficients overriding the paper's (a JSON object, or `fit --json` output)")


def _shape_grid(p: argparse.ArgumentParser) -> None:
    """The shape rule's grid flags, unset by default (each command sets its defaults).

    Widths step by 64 (heads 64 wide) unless told; 16 reaches CPU-sized models.
    """
    p.add_argument("--aspect-ratio", type=float, help=f"target d_model/n_layers (default {ASPECT_RATIO:g})")
    p.add_argument("--width-step", type=int, choices=WIDTH_STEPS,
                   help="d_model is a multiple of this below 1024, and heads are this wide (at most 64); "
                        f"16 reaches tiny CPU models (2 x 16 is M ~ 9e4 at l_seq 128) (default {WIDTH_STEP})")
    p.add_argument("--min-layers", type=positive_int, help=f"shallowest shape considered (default {MIN_LAYERS})")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scaling", help="scaling laws: model scale, hyper-parameters, allocation, IsoFLOP plans and fits",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scaling_command", required=True, metavar="SUBCOMMAND")
    presets = ", ".join(PRESETS)

    p = sub.add_parser("model-scale", help="M, 6N1, 6N2 of a model (paper eq. 2)")
    p.add_argument("--preset", help=f"a model preset ({presets}); also gives our exact FLOPs/token")
    p.add_argument("--layers", type=positive_int, help="number of layers")
    p.add_argument("--d-model", type=positive_int, help="model width")
    p.add_argument("--seq-len", type=positive_int, help="context length (default 4096, or the preset's)")
    p.add_argument("--vocab", type=positive_int, help=f"vocabulary size (default {DEFAULT_VOCAB})")
    _common(p, coefficients=False)
    p.set_defaults(func=cmd_model_scale)

    p = sub.add_parser("hparams", help="lr and batch size from the compute budget (paper eq. 1)",
                       epilog=f"Counts: {COUNT_HELP}.")
    p.add_argument("--compute", type=count, help="compute budget C in FLOPs, e.g. 1e20")
    p.add_argument("--preset", help=f"model preset ({presets}), with --tokens")
    p.add_argument("--tokens", type=count, help="training tokens D, e.g. 2T or 500B")
    p.add_argument("--seq-len", type=positive_int,
                   help="sequence length for the batch in sequences (default: preset's or 4096)")
    p.add_argument("--flops", choices=("exact", "paper"), default="exact",
                   help="M of a preset: our exact FLOPs/token (default) or the paper's formula")
    _common(p)
    p.set_defaults(func=cmd_hparams)

    p = sub.add_parser("allocate", help="compute-optimal M and D (paper eq. 4) and the nearest model shape",
                       epilog=f"Counts: {COUNT_HELP}.")
    p.add_argument("--compute", type=count, required=True, help="compute budget C in FLOPs, e.g. 1e20")
    p.add_argument("--seq-len", type=positive_int, default=4096, help="context length (default 4096)")
    p.add_argument("--vocab", type=positive_int, default=DEFAULT_VOCAB,
                   help=f"vocabulary size (default {DEFAULT_VOCAB})")
    _shape_grid(p)
    p.set_defaults(aspect_ratio=ASPECT_RATIO, width_step=WIDTH_STEP, min_layers=MIN_LAYERS)
    _common(p)
    p.set_defaults(func=cmd_allocate)

    # Defaults live in PlanConfig: a flag left unset leaves the run file's [plan-isoflop] value alone.
    p = sub.add_parser("plan-isoflop", help="plan an IsoFLOP sweep and write run files for the trainer",
                       epilog=f"Counts: {COUNT_HELP}.")
    p.add_argument("--budgets", type=_budgets, help="comma-separated compute budgets in FLOPs, e.g. 1e17,3e17,1e18")
    p.add_argument("--points", type=int, help=f"allocations per budget (default {PlanConfig.points})")
    p.add_argument("--span", type=float, help=f"decades of M covered around M_opt (default {PlanConfig.span})")
    p.add_argument("--seq-len", type=positive_int, help=f"context length of every run (default {PlanConfig.seq_len})")
    p.add_argument("--vocab", type=positive_int, help=f"vocabulary size (default {PlanConfig.vocab})")
    _shape_grid(p)
    p.add_argument("--warmup-steps", type=int,
                   help=f"warm-up steps, capped at 10%% of each run (default {PlanConfig.warmup_steps})")
    p.add_argument("--data", help="token shards directory, written into each run file")
    p.add_argument("--val-data", help="held-out token shards directory, written into each run file")
    p.add_argument("--seed", type=int, help=f"seed written into each run file (default {PlanConfig.seed})")
    p.add_argument("--output", metavar="DIR",
                   help="write one TOML run file per run, plan.json, report.json and _SUCCESS here")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace OUTPUT even if it is finished (with the same or other settings)")
    add_config_argument(p)
    _common(p)
    p.set_defaults(func=cmd_plan_isoflop)

    p = sub.add_parser("fit", help="fit IsoFLOP profiles, allocation, loss and hyper-parameter laws to runs",
                       epilog=f"Counts: {COUNT_HELP}.")
    p.add_argument("--runs", required=True, metavar="RUNS.jsonl",
                   help='one JSON object a line: {"budget", "M", "D", "loss", optional "lr", "batch_tokens", "name"}')
    p.add_argument("--target-compute", type=count, help="predict loss, M_opt, D_opt, lr, batch at this budget")
    p.add_argument("--irreducible", action="store_true", help="fit L(C) = E + A·C^-gamma (needs 4+ budgets)")
    p.add_argument("--tolerance", type=float, default=fitting.NEAR_OPTIMAL_TOLERANCE,
                   help="near-optimal region: relative loss above the best (default 0.0025, the paper's 0.25%%)")
    p.add_argument("--plots", metavar="DIR", help="write isoflop.png, scaling.png, hparams.png here")
    _common(p, coefficients=False)
    p.set_defaults(func=cmd_fit)
