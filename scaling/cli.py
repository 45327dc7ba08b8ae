"""`crawl2model scaling ...`: the paper's scaling laws as commands, each with `--json`.

    model-scale   M, 6N1, 6N2 (and our exact FLOPs/token) of a model shape
    hparams       learning rate and batch size for a compute budget
    allocate      compute-optimal model scale, data and a concrete model shape
    plan-isoflop  IsoFLOP sweep: run files the trainer accepts, plus plan.json
    fit           fit the laws to finished runs; PNG plots

Only numpy is imported here at parse time; scipy and matplotlib load when a
fit or a plot needs them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawl2model.core.errors import ConfigError
from crawl2model.train import scaling
from crawl2model.train.config import DEFAULT_VOCAB, PRESETS, ModelConfig, dump_run_config, get_preset

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_quantity(text: str) -> float:
    """'1e17', '2T', '500B', '3.5e9' -> float; token counts read naturally with a suffix."""
    match = re.fullmatch(r"\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (examples: 1e17, 2T, 500B)")
    value = float(match.group(1)) * _SUFFIXES.get(match.group(2).lower(), 1.0)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _budgets(text: str) -> list[float]:
    return [parse_quantity(part) for part in text.split(",") if part.strip()]


def _coefficients(args: argparse.Namespace) -> scaling.ScalingCoefficients:
    """Paper defaults, overridden by `--coefficients FILE.json` (e.g. the `fit` output's `coefficients`)."""
    path = getattr(args, "coefficients", None)
    if not path:
        return scaling.PAPER
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"coefficients file not found: {p}")
    try:
        values = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: invalid JSON: {e}") from e
    values = values.get("coefficients", values)
    known = {f.name for f in dataclasses.fields(scaling.ScalingCoefficients)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown coefficient '{unknown[0]}' (known: {', '.join(sorted(known))})")
    return scaling.ScalingCoefficients(**{**dataclasses.asdict(scaling.PAPER), **values})


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
        result = {"preset": args.preset, "seq_len": model.seq_len, **scaling.scale_report(model)}
    else:
        seq, vocab = args.seq_len or 4096, args.vocab or DEFAULT_VOCAB
        m = scaling.model_scale(args.layers, args.d_model, seq)
        n1, n2 = scaling.six_n1(args.layers, args.d_model), scaling.six_n2(args.layers, args.d_model, vocab)
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
    coef = _coefficients(args)
    if args.compute is not None:
        if args.preset or args.tokens:
            raise ConfigError("give either --compute C, or --preset P with --tokens D")
        seq = args.seq_len or 4096
        result = {"M": None, "tokens": None, **scaling.hparams_for(args.compute, seq, coef)}
    else:
        if not (args.preset and args.tokens):
            raise ConfigError("give --compute C, or --preset P with --tokens D")
        model = get_preset(args.preset)
        seq = args.seq_len or model.seq_len
        m = (scaling.flops_per_token(model, seq) if args.flops == "exact"
             else scaling.model_scale(model.n_layers, model.d_model, seq))
        result = {"preset": args.preset, "M": m, "M_formula": args.flops, "tokens": args.tokens,
                  **scaling.hparams_for(scaling.compute_budget(m, args.tokens), seq, coef)}

    def text(r: dict[str, Any]) -> str:
        head = f"M = {r['M']:.4g} ({r['M_formula']}), D = {r['tokens']:.4g} tokens\n" if r["M"] else ""
        return (head + f"C = {r['compute']:.4g} FLOPs\n"
                f"lr    = {r['lr']:.4g}\n"
                f"batch = {r['batch_tokens']:.4g} tokens = {r['batch_sequences']} sequences of {r['seq_len']}")

    return _emit(args, result, text)


# --------------------------------------------------------------------------- allocate


def cmd_allocate(args: argparse.Namespace) -> int:
    coef = _coefficients(args)
    m_opt, d_opt = scaling.optimal_model_scale(args.compute, coef), scaling.optimal_tokens(args.compute, coef)
    model = scaling.shape_for_scale(m_opt, args.seq_len, args.vocab, args.aspect_ratio, args.min_layers,
                                    width_step=args.width_step)
    m = scaling.flops_per_token(model)
    result = {
        "compute": args.compute, "M_opt": m_opt, "D_opt": d_opt,
        "model": _model_summary(model), "M": m, "D": args.compute / m,
        **{k: v for k, v in scaling.hparams_for(args.compute, args.seq_len, coef).items() if k != "compute"},
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
    if not args.budgets:
        raise ConfigError("--budgets needs at least one compute budget, e.g. 1e17,3e17,1e18")
    runs, warnings = scaling.plan_isoflop(
        args.budgets, n_points=args.points, span_decades=args.span, seq_len=args.seq_len,
        vocab_size=args.vocab, aspect_ratio=args.aspect_ratio, warmup_steps=args.warmup_steps,
        coef=_coefficients(args), width_step=args.width_step, min_layers=args.min_layers,
    )
    result: dict[str, Any] = {"runs": [r.to_dict() for r in runs], "warnings": warnings}
    if args.output:
        result["output"] = str(_write_plan(Path(args.output), runs, warnings, args))

    def text(r: dict[str, Any]) -> str:
        lines = [f"{'run':<24} {'M':>10} {'D':>10} {'params':>9} {'steps':>7} {'batch':>6} {'lr':>9}"]
        for run in r["runs"]:
            lines.append(f"{run['name']:<24} {run['M']:>10.3g} {run['D']:>10.3g} {run['params']:>9.3g} "
                         f"{run['steps']:>7} {run['batch_size']:>6} {run['lr']:>9.3g}")
        lines += [f"warning: {w}" for w in r["warnings"]]
        if "output" in r:
            lines.append(f"wrote {len(r['runs'])} run files and plan.json to {r['output']}")
        return "\n".join(lines)

    return _emit(args, result, text)


def _write_plan(out: Path, runs: list[scaling.PlannedRun], warnings: list[str], args: argparse.Namespace) -> Path:
    """One run file per allocation plus plan.json; the index records which file is which run."""
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for run in runs:
        train = run.train_config(data=args.data, val_data=args.val_data, seed=args.seed)
        header = (f"IsoFLOP run {run.name}: budget C = {run.budget:.6g}, M = {run.M:.6g}, D = {run.tokens}\n"
                  "written by `crawl2model scaling plan-isoflop`")
        path = out / f"{run.name}.toml"
        path.write_text(dump_run_config(run.model, train, header))
        index.append({**run.to_dict(), "config": path.name})
    plan = {"budgets": sorted(set(args.budgets)), "points": args.points, "span_decades": args.span,
            "width_step": args.width_step, "min_layers": args.min_layers,
            "coefficients": dataclasses.asdict(_coefficients(args)), "runs": index, "warnings": warnings}
    (out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    return out


# --------------------------------------------------------------------------- fit


def cmd_fit(args: argparse.Namespace) -> int:
    runs = scaling.load_runs(args.runs)
    try:
        fit = scaling.fit_runs(runs, target_compute=args.target_compute, irreducible=args.irreducible,
                               tolerance=args.tolerance)
    except ValueError as e:
        raise ConfigError(f"{args.runs}: {e}") from e
    result = fit.to_dict()
    result["coefficients"] = dataclasses.asdict(fit.coefficients())
    if args.plots:
        from crawl2model.train import plots

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
    """The shape rule's grid: widths step by 64 (heads 64 wide) unless told; 16 reaches CPU-sized models."""
    p.add_argument("--aspect-ratio", type=float, default=128.0, help="target d_model/n_layers (default 128)")
    p.add_argument("--width-step", type=int, choices=scaling.WIDTH_STEPS, default=64,
                   help="d_model is a multiple of this below 1024, and heads are this wide (at most 64); "
                        "16 reaches tiny CPU models (2 x 16 is M ~ 9e4 at l_seq 128) (default 64)")
    p.add_argument("--min-layers", type=int, default=2, help="shallowest shape considered (default 2)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scaling", help="scaling laws: model scale, hyper-parameters, allocation, IsoFLOP plans and fits",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="scaling_command", required=True, metavar="SUBCOMMAND")
    presets = ", ".join(PRESETS)
    q = parse_quantity

    p = sub.add_parser("model-scale", help="M, 6N1, 6N2 of a model (paper eq. 2)")
    p.add_argument("--preset", help=f"a model preset ({presets}); also gives our exact FLOPs/token")
    p.add_argument("--layers", type=int, help="number of layers")
    p.add_argument("--d-model", type=int, help="model width")
    p.add_argument("--seq-len", type=int, help="context length (default 4096, or the preset's)")
    p.add_argument("--vocab", type=int, help=f"vocabulary size (default {DEFAULT_VOCAB})")
    _common(p, coefficients=False)
    p.set_defaults(func=cmd_model_scale)

    p = sub.add_parser("hparams", help="lr and batch size from the compute budget (paper eq. 1)")
    p.add_argument("--compute", type=q, help="compute budget C in FLOPs, e.g. 1e20")
    p.add_argument("--preset", help=f"model preset ({presets}), with --tokens")
    p.add_argument("--tokens", type=q, help="training tokens D, e.g. 2T")
    p.add_argument("--seq-len", type=int, help="sequence length for the batch in sequences (default: preset's or 4096)")
    p.add_argument("--flops", choices=("exact", "paper"), default="exact",
                   help="M of a preset: our exact FLOPs/token (default) or the paper's formula")
    _common(p)
    p.set_defaults(func=cmd_hparams)

    p = sub.add_parser("allocate", help="compute-optimal M and D (paper eq. 4) and the nearest model shape")
    p.add_argument("--compute", type=q, required=True, help="compute budget C in FLOPs")
    p.add_argument("--seq-len", type=int, default=4096, help="context length (default 4096)")
    p.add_argument("--vocab", type=int, default=DEFAULT_VOCAB, help=f"vocabulary size (default {DEFAULT_VOCAB})")
    _shape_grid(p)
    _common(p)
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("plan-isoflop", help="plan an IsoFLOP sweep and write run files for the trainer")
    p.add_argument("--budgets", type=_budgets, required=True, help="comma-separated budgets, e.g. 1e17,3e17,1e18")
    p.add_argument("--points", type=int, default=10, help="allocations per budget (default 10)")
    p.add_argument("--span", type=float, default=1.5, help="decades of M covered around M_opt (default 1.5)")
    p.add_argument("--seq-len", type=int, default=4096, help="context length of every run (default 4096)")
    p.add_argument("--vocab", type=int, default=DEFAULT_VOCAB, help=f"vocabulary size (default {DEFAULT_VOCAB})")
    _shape_grid(p)
    p.add_argument("--warmup-steps", type=int, default=2000, help="warm-up steps, capped at 10%% of each run")
    p.add_argument("--data", help="token shards directory, written into each run file")
    p.add_argument("--val-data", help="held-out token shards directory, written into each run file")
    p.add_argument("--seed", type=int, default=0, help="seed written into each run file")
    p.add_argument("--output", metavar="DIR", help="write one TOML run file per run and plan.json here")
    _common(p)
    p.set_defaults(func=cmd_plan_isoflop)

    p = sub.add_parser("fit", help="fit IsoFLOP profiles, allocation, loss and hyper-parameter laws to runs")
    p.add_argument("--runs", required=True, metavar="RUNS.jsonl",
                   help='one JSON object a line: {"budget", "M", "D", "loss", optional "lr", "batch_tokens", "name"}')
    p.add_argument("--target-compute", type=q, help="predict loss, M_opt, D_opt, lr, batch at this budget")
    p.add_argument("--irreducible", action="store_true", help="fit L(C) = E + A·C^-gamma (needs 4+ budgets)")
    p.add_argument("--tolerance", type=float, default=scaling.NEAR_OPTIMAL_TOLERANCE,
                   help="near-optimal region: relative loss above the best (default 0.0025, the paper's 0.25%%)")
    p.add_argument("--plots", metavar="DIR", help="write isoflop.png, scaling.png, hparams.png here")
    _common(p, coefficients=False)
    p.set_defaults(func=cmd_fit)
