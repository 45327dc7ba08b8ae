"""Scaling laws: the paper's test vectors, fit recovery from synthetic sweeps, plots and the CLI."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.core.sizes import COUNT_HELP
from crawl2model.jobs.cli import main
from crawl2model.scaling.fit import Run, fit_loss_curve, fit_power_law, fit_runs, load_runs
from crawl2model.scaling.flops import flops_per_token, model_scale, scale_report
from crawl2model.scaling.isoflop import WIDTH_STEPS, model_for_shape, plan_isoflop, shape_for_scale
from crawl2model.scaling.laws import (
    PAPER,
    batch_sequences,
    compute_budget,
    optimal_batch_tokens,
    optimal_lr,
    optimal_model_scale,
    optimal_tokens,
    resolve_hparams,
)
from crawl2model.scaling.shapes import get_preset
from crawl2model.train.config import TrainConfig, load_run_config

# --------------------------------------------------------------------------- paper test vectors


def test_deepseek_7b_vectors():
    m = model_scale(30, 4096, 4096)
    assert m == pytest.approx(4.23e10, rel=0.005)
    c = compute_budget(m, 2e12)
    assert c == pytest.approx(8.5e22, rel=0.01)
    assert optimal_lr(c) == pytest.approx(4.2e-4, rel=0.02)
    assert optimal_batch_tokens(c) == pytest.approx(9.2e6, rel=0.01)
    assert batch_sequences(optimal_batch_tokens(c), 4096) == pytest.approx(2250, abs=5)  # paper used 2304


def test_deepseek_67b_vectors():
    model = get_preset("deepseek-67b")
    paper_c = model_scale(95, 8192, 4096) * 2e12
    exact_c = flops_per_token(model) * 2e12
    assert optimal_lr(paper_c) == pytest.approx(3.1e-4, rel=0.02)
    # our exact FLOPs (GQA, narrow FFN) is 13% below M, which lands on the paper's 3.2e-4
    assert optimal_lr(exact_c) == pytest.approx(3.2e-4, rel=0.02)


def test_older_estimates_relative_to_m():
    report = scale_report(get_preset("deepseek-7b"))
    assert report["6N1"] == 72 * 30 * 4096**2
    assert report["6N2"] == report["6N1"] + 6 * 102400 * 4096
    assert report["6N1/M"] == pytest.approx(1 / (1 + 4096 / (6 * 4096)))  # 1/(1 + l_seq/6d)
    assert report["M_exact/M"] == pytest.approx(1.0045, abs=1e-3)  # SwiGLU 11008 vs 8d/3


def test_exact_flops_equals_m_for_mha_with_8d_over_3_ffn_and_shrinks_with_gqa():
    mha = dataclasses.replace(get_preset("small"))  # d 768, ffn 2048 = 8d/3 exactly
    assert flops_per_token(mha) == model_scale(12, 768, 2048)
    gqa = dataclasses.replace(mha, n_kv_heads=3)  # 4 query heads share each KV head
    saved = 6 * 12 * 2 * 768 * (768 - 3 * 64)
    assert flops_per_token(mha) - flops_per_token(gqa) == saved


def test_coefficients_are_overridable():
    coef = dataclasses.replace(PAPER, lr_coef=1.0, lr_exp=-0.5)
    assert optimal_lr(1e4, coef) == pytest.approx(0.01)
    assert optimal_model_scale(1e20) * optimal_tokens(1e20) == pytest.approx(1e20, rel=0.01)
    with pytest.raises(ConfigError):
        optimal_lr(-1.0)


# --------------------------------------------------------------------------- shapes, runs, plans


def test_shape_rule_hits_the_target_scale():
    model = shape_for_scale(4.23e10, 4096)
    assert (model.n_layers, model.d_model) in {(30, 4096), (31, 3968)}
    for target in (1e8, 1e9, 1e11):
        model = shape_for_scale(target, 2048)
        model.validate()
        assert flops_per_token(model) == pytest.approx(target, rel=0.1)
        assert 64 <= model.d_model / model.n_layers <= 256
    one_b = get_preset("1b")
    assert shape_for_scale(flops_per_token(one_b), 4096) == one_b


def test_width_step_16_reaches_tiny_models_with_whole_heads():
    assert shape_for_scale(1e5, 128, 512) == model_for_shape(2, 64, 128, 512)  # the default grid's floor
    for target in (5e4, 1e5, 3e5, 1e6, 3e6):
        model = shape_for_scale(target, 128, 512, aspect_ratio=16, min_layers=1, width_step=16)
        model.validate()
        assert model.d_model % 16 == 0 and model.head_dim == 16 and model.n_heads == model.d_model // 16
        assert flops_per_token(model) == pytest.approx(target, rel=0.15)
    tiny = model_for_shape(2, 32, 128, 512, width_step=16)
    assert (tiny.n_heads, tiny.ffn_dim) == (2, 96)  # FFN 8d/3 rounded to 16, not to 64 (which gives 128)


def test_width_step_leaves_large_shapes_and_the_default_grid_unchanged():
    assert model_for_shape(2, 64, 128, 512) == model_for_shape(2, 64, 128, 512, width_step=64)
    assert (model_for_shape(2, 192, 128).n_heads, model_for_shape(2, 192, 128).ffn_dim) == (3, 512)
    for step in WIDTH_STEPS:  # from d 1024 widths step by 128 whatever the small-width step
        assert shape_for_scale(4.23e10, 4096, width_step=step) == shape_for_scale(4.23e10, 4096)
    assert model_for_shape(4, 2048, 4096, width_step=16).head_dim == 128


def test_bad_shape_grids_are_config_errors():
    with pytest.raises(ConfigError, match="width step"):
        shape_for_scale(1e5, 128, width_step=8)
    with pytest.raises(ConfigError, match="min_layers"):
        shape_for_scale(1e5, 128, min_layers=0)
    with pytest.raises(ConfigError, match="whole number"):
        model_for_shape(2, 40, 128, width_step=16)


def test_plan_isoflop_on_a_16_step_grid_straddles_the_papers_optimum_at_cpu_budgets():
    budgets = [1e11, 3e11, 1e12, 3e12]
    runs, warnings = plan_isoflop(budgets, n_points=5, span_decades=1.5, seq_len=128, vocab_size=512,
                                    aspect_ratio=16, warmup_steps=30, width_step=16, min_layers=1)
    assert not warnings
    for budget in budgets:
        mine = [r for r in runs if r.budget == budget]
        assert len(mine) >= 4
        ms = [r.M for r in mine]
        assert ms[0] < optimal_model_scale(budget) < ms[-1]
        assert all(r.M * r.tokens == pytest.approx(budget, rel=1e-5) for r in mine)  # D is whole tokens
    default, _ = plan_isoflop(budgets, n_points=5, span_decades=1.5, seq_len=128, vocab_size=512)
    assert min(r.M for r in default) > optimal_model_scale(1e12)  # what the 16-step grid fixes


def test_resolve_hparams_from_tokens_and_from_steps():
    model = get_preset("deepseek-7b")
    run = resolve_hparams(model, TrainConfig(total_tokens=2 * 10**12))
    assert run.lr == pytest.approx(4.24e-4, rel=0.01)
    assert run.batch_size == pytest.approx(2255, abs=2)
    # given only steps, the closed form makes B consistent with C = M·steps·B
    by_steps = resolve_hparams(model, TrainConfig(max_steps=2 * 10**12 // (2255 * 4096)))
    assert by_steps.batch_size == pytest.approx(2255, rel=0.01)
    assert by_steps.lr == pytest.approx(run.lr, rel=0.01)
    kept = resolve_hparams(model, TrainConfig(total_tokens=10**9, lr=1e-3, batch_size=8))
    assert (kept.lr, kept.batch_size) == (1e-3, 8)


def test_plan_isoflop_allocations_share_the_budget():
    runs, warnings = plan_isoflop([1e17, 1e18], seq_len=2048)
    assert not warnings
    for budget in (1e17, 1e18):
        mine = [r for r in runs if r.budget == budget]
        assert 8 <= len(mine) <= 10
        ms = [r.M for r in mine]
        assert ms == sorted(ms) and ms[-1] / ms[0] > 10**1.2
        assert all(r.M * r.tokens == pytest.approx(budget, rel=1e-6) for r in mine)
        assert {r.lr for r in mine} == {optimal_lr(budget)}
        center = optimal_model_scale(budget)
        assert ms[0] < center < ms[-1]


# --------------------------------------------------------------------------- fit recovery

TRUE_ALPHA, TRUE_LR_EXP, TRUE_BATCH_EXP = 0.58, -0.14, 0.30
BUDGETS = [1e17, 3e17, 1e18, 3e18, 1e19, 3e19]


def synthetic_isoflop_runs(seed: int = 0, noise: float = 0.002) -> list[Run]:
    """Chinchilla-form loss E + A·M^-a + B·D^-b whose optimum is M_opt ∝ C^(b/(a+b)) = C^0.58.

    The sweep is planned with the paper's exponent (0.5243), so the fit has to
    find a different slope than the one the plan was centred on.
    """
    a = 0.30
    b = TRUE_ALPHA * a / (1 - TRUE_ALPHA)
    g = 5e8 / 1e18**TRUE_ALPHA  # M_opt(1e18) = 5e8
    big_a = 400.0
    big_b = big_a * a / (b * g ** (a + b))
    rng = np.random.default_rng(seed)
    plan, _ = plan_isoflop(BUDGETS, seq_len=4096)
    return [
        Run(budget=r.budget, M=r.M, D=r.tokens,
              loss=1.8 + big_a * r.M**-a + big_b * r.tokens**-b + rng.normal(0, noise))
        for r in plan
    ]


def synthetic_hparam_runs(seed: int = 0) -> list[Run]:
    """A lr x batch grid per budget around known laws; loss is a bowl in log lr and log B."""
    rng = np.random.default_rng(seed)
    runs = []
    for c in BUDGETS:
        lr_opt, b_opt, floor = 0.5 * c**TRUE_LR_EXP, 0.2 * c**TRUE_BATCH_EXP, 20 * c**-0.05
        for i in np.arange(-4, 5) / 2:
            for j in np.arange(-4, 5) / 2:
                loss = floor * (1 + 0.004 * i**2 + 0.002 * j**2) + rng.normal(0, 1e-4)
                runs.append(Run(budget=c, M=1e8, D=c / 1e8, loss=loss, lr=lr_opt * 2**i, batch_tokens=b_opt * 2**j))
    return runs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isoflop_fit_recovers_the_allocation_exponents(seed):
    fit = fit_runs(synthetic_isoflop_runs(seed), target_compute=1e21)
    assert all(p.convex and p.inside for p in fit.profiles)
    assert fit.m_opt.exponent == pytest.approx(TRUE_ALPHA, abs=0.02)
    assert fit.d_opt.exponent == pytest.approx(1 - TRUE_ALPHA, abs=0.02)
    assert fit.m_opt.exponent_ci[0] < fit.m_opt.exponent < fit.m_opt.exponent_ci[1]
    assert fit.m_opt(1e18) == pytest.approx(5e8, rel=0.15)
    assert fit.loss_curve.gamma > 0
    assert fit.prediction["loss"] < min(p.loss_min for p in fit.profiles)


def test_hparam_fit_recovers_lr_and_batch_exponents():
    runs = synthetic_hparam_runs()
    fit = fit_runs(runs)
    near = fit.near_optimal
    assert 0 < len(near) < len(runs) / 4
    assert all(r.loss <= min(x.loss for x in runs if x.budget == r.budget) * 1.0025 for r in near)
    assert fit.lr_law.exponent == pytest.approx(TRUE_LR_EXP, abs=0.02)
    assert fit.batch_law.exponent == pytest.approx(TRUE_BATCH_EXP, abs=0.02)
    coef = fit.coefficients()
    assert coef.lr_exp == fit.lr_law.exponent and coef.model_exp == PAPER.model_exp  # one scale: no allocation fit


def test_loss_curve_with_irreducible_term():
    c = np.array(BUDGETS)
    fit = fit_loss_curve(c, 1.7 + 300 * c**-0.12, irreducible=True)
    assert fit.E == pytest.approx(1.7, abs=0.05)
    assert fit.gamma == pytest.approx(0.12, abs=0.01)
    assert fit(1e24) == pytest.approx(1.7 + 300 * 1e24**-0.12, rel=0.01)
    with pytest.raises(ValueError, match="4 budgets"):
        fit_loss_curve(c[:3], (1.7 + 300 * c**-0.12)[:3], irreducible=True)


def test_power_law_ci_needs_three_points():
    law = fit_power_law([1, 10], [2, 20])
    assert law.exponent == pytest.approx(1.0) and law.exponent_ci is None


def test_a_concave_profile_is_reported_not_fitted():
    runs = [Run(budget=1e18, M=m, D=1e18 / m, loss=3 - (np.log10(m) - 8) ** 2) for m in (1e7, 1e8, 1e9)]
    fit = fit_runs(runs)
    assert not fit.profiles[0].convex and fit.m_opt is None
    assert any("not convex" in w for w in fit.warnings)


# --------------------------------------------------------------------------- CLI


def run_json(capsys, *argv: str) -> dict:
    assert main(["scaling", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_model_scale(capsys):
    out = run_json(capsys, "model-scale", "--layers", "30", "--d-model", "4096", "--seq-len", "4096")
    assert out["M"] == pytest.approx(4.23e10, rel=0.005) and out["6N1/M"] == pytest.approx(6 / 7)
    out = run_json(capsys, "model-scale", "--preset", "deepseek-67b")
    assert out["M_exact/M"] == pytest.approx(0.870, abs=0.005)


def test_cli_hparams(capsys):
    out = run_json(capsys, "hparams", "--preset", "deepseek-7b", "--tokens", "2T", "--flops", "paper")
    assert out["compute"] == pytest.approx(8.46e22, rel=0.01)
    assert out["lr"] == pytest.approx(4.2e-4, rel=0.02) and out["batch_sequences"] == 2252
    out = run_json(capsys, "hparams", "--compute", "1e20", "--seq-len", "2048")
    assert out["batch_tokens"] == pytest.approx(optimal_batch_tokens(1e20))


def test_cli_allocate_and_coefficients_file(capsys, tmp_path):
    out = run_json(capsys, "allocate", "--compute", "1e20")
    assert out["M_opt"] == pytest.approx(optimal_model_scale(1e20))
    assert out["M"] * out["D"] == pytest.approx(1e20)
    coef = tmp_path / "coef.json"
    coef.write_text(json.dumps({"model_coef": 0.5}))
    out = run_json(capsys, "allocate", "--compute", "1e20", "--coefficients", str(coef))
    assert out["M_opt"] == pytest.approx(0.5 * 1e20**PAPER.model_exp)


def test_cli_plan_isoflop_writes_loadable_run_files(capsys, tmp_path):
    out = run_json(capsys, "plan-isoflop", "--budgets", "1e14,1e15", "--seq-len", "256", "--points", "5",
                   "--data", "tokens/", "--output", str(tmp_path))
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert len(plan["runs"]) == len(out["runs"]) >= 8
    for entry in plan["runs"]:
        model, train = load_run_config(tmp_path / entry["config"])
        assert flops_per_token(model) == pytest.approx(entry["M"])
        assert (train.total_tokens, train.lr, train.batch_size, train.data) == (
            entry["D"], entry["lr"], entry["batch_size"], "tokens/")


def test_cli_width_step_flag(capsys, tmp_path):
    out = run_json(capsys, "allocate", "--compute", "1e11", "--seq-len", "128", "--vocab", "512",
                   "--width-step", "16", "--min-layers", "1", "--aspect-ratio", "16")
    assert out["model"]["d_model"] < 64 and out["model"]["d_model"] % 16 == 0
    run_json(capsys, "plan-isoflop", "--budgets", "1e11,1e12", "--seq-len", "128", "--vocab", "512", "--points", "5",
             "--width-step", "16", "--min-layers", "1", "--output", str(tmp_path))
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert (plan["width_step"], plan["min_layers"]) == (16, 1)
    for entry in plan["runs"]:
        model, _ = load_run_config(tmp_path / entry["config"])
        assert model.head_dim == 16 and flops_per_token(model) == pytest.approx(entry["M"])


def test_cli_fit_with_plots(capsys, tmp_path):
    """Also the plot test: plotting costs seconds, so the three PNGs are checked here only."""
    runs = [dataclasses.replace(r, lr=optimal_lr(r.budget), batch_tokens=optimal_batch_tokens(r.budget))
            for r in synthetic_isoflop_runs()]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in runs))
    out = run_json(capsys, "fit", "--runs", str(path), "--target-compute", "1e21", "--plots", str(tmp_path / "p"))
    assert out["M_opt"]["exponent"] == pytest.approx(TRUE_ALPHA, abs=0.02)
    assert out["prediction"]["compute"] == 1e21 and "loss" in out["prediction"]
    assert sorted(p.rsplit("/", 1)[1] for p in out["plots"]) == ["hparams.png", "isoflop.png", "scaling.png"]
    for plot in out["plots"]:
        data = Path(plot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert out["lr"]["exponent"] == pytest.approx(PAPER.lr_exp, abs=1e-6)  # every run used the law
    assert main(["scaling", "fit", "--runs", str(path)]) == 0
    assert "M_opt =" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["hparams"], "--compute C"),
        (["hparams", "--preset", "nope", "--tokens", "1T"], "unknown model preset"),
        (["model-scale", "--layers", "3"], "--d-model"),
        (["plan-isoflop", "--budgets", "1e17", "--points", "2"], "at least 3"),
        (["fit", "--runs", "missing.jsonl"], "not found"),
    ],
)
def test_cli_user_errors_exit_2(capsys, argv, message):
    assert main(["scaling", *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_runs_file_names_the_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text('{"budget": 1e17, "M": 1e8, "D": 1e9, "loss": 3.0}\n{"budget": 1e17, "M": 1e8, "D": 1e9}\n')
    with pytest.raises(ConfigError, match=r"runs.jsonl:2: missing key 'loss'"):
        load_runs(path)


def test_bad_coefficients_files_exit_2(capsys, tmp_path):
    for text, message in (('{"model_coef": "big"}', "must be a finite number"), ('{"alpha": 1}', "unknown coefficient"),
                          ("[1, 2]", "expected a JSON object"), ("{", "invalid JSON")):
        path = tmp_path / "coef.json"
        path.write_text(text)
        assert main(["scaling", "allocate", "--compute", "1e20", "--coefficients", str(path)]) == 2
        assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- units and the stage protocol


def test_counts_take_units(capsys):
    lrs = {run_json(capsys, "hparams", "--preset", "deepseek-7b", "--tokens", tokens)["lr"]
           for tokens in ("2T", "2000B", "2e12", "2_000_000_000_000")}
    assert len(lrs) == 1
    with pytest.raises(SystemExit) as info:
        main(["scaling", "hparams", "--preset", "deepseek-7b", "--tokens", "2X"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --tokens: not a count: '2X'" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["scaling", "hparams", "--help"])
    assert " ".join(COUNT_HELP.split()) in " ".join(capsys.readouterr().out.split())


PLAN = ["plan-isoflop", "--seq-len", "128", "--vocab", "512", "--points", "4", "--width-step", "16",
        "--min-layers", "1"]


def test_plan_isoflop_follows_the_stage_protocol(capsys, tmp_path):
    out = tmp_path / "plan"
    run_json(capsys, *PLAN, "--budgets", "1e11,1e12", "--output", str(out))
    report = json.loads((out / "report.json").read_text())
    assert list(report)[:5] == ["stage", "docs_in", "docs_out", "removed_by_reason", "seconds"]
    assert (report["stage"], report["docs_in"], report["docs_out"]) == ("plan-isoflop", None, None)
    assert report["budgets"] == [1e11, 1e12] and (out / "_SUCCESS").is_file()
    (out / "sentinel").write_text("")  # a rerun that rewrote the folder would lose it

    run_json(capsys, *PLAN, "--budgets", "1e12,1e11", "--output", str(out))  # same settings: skipped
    assert (out / "sentinel").exists()

    assert main(["scaling", *PLAN, "--budgets", "1e11", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "budgets" in err and "--overwrite" in err and (out / "sentinel").exists()

    run_json(capsys, *PLAN, "--budgets", "1e11", "--output", str(out), "--overwrite")
    assert not (out / "sentinel").exists()
    assert json.loads((out / "plan.json").read_text())["budgets"] == [1e11]


def test_plan_isoflop_reads_its_run_file_table(capsys, tmp_path):
    run = tmp_path / "run.toml"
    run.write_text('[plan-isoflop]\nbudgets = ["1e11", 1e12]\npoints = 4\nseq-len = 128\nvocab = 512\n'
                   "width_step = 16\nmin_layers = 1\n")
    out = run_json(capsys, "plan-isoflop", "--config", str(run), "--budgets", "1e11")  # the flag wins
    assert {r["budget"] for r in out["runs"]} == {1e11} and all(r["n_heads"] * 16 == r["d_model"] for r in out["runs"])
    run.write_text("[plan-isoflop]\npoints = 4\nbudget = 1e11\n")
    assert main(["scaling", "plan-isoflop", "--config", str(run)]) == 2
    assert "unknown key 'budget'" in capsys.readouterr().err


def test_scaling_imports_without_torch():
    code = "import sys, crawl2model.scaling.laws, crawl2model.scaling.cli; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
