"""Model and run configs: the presets' sizes, validation, and the run-file round trip."""
from __future__ import annotations

import dataclasses

import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.scaling.shapes import PRESETS, ModelConfig, get_preset, swiglu_width
from crawl2model.train.config import TrainConfig, dump_run_config, load_run_config


def test_deepseek_presets_match_the_paper_sizes():
    # The released checkpoints: 6.91e9 and 67.4e9 parameters (untied embeddings, vocab 102,400).
    assert get_preset("deepseek-7b").n_params() == pytest.approx(6.91e9, rel=0.01)
    assert get_preset("deepseek-67b").n_params() == pytest.approx(67e9, rel=0.02)


def test_param_count_is_exact_for_a_hand_counted_model():
    m = ModelConfig(n_layers=2, d_model=8, n_heads=4, n_kv_heads=2, ffn_dim=16, vocab_size=10)
    # per layer: norms 2*8, q+o 2*64, k+v 2*8*4 (kv_dim = 2 heads x 2), ffn 3*8*16; final norm 8
    body = 2 * (16 + 128 + 64 + 384) + 8
    assert m.n_params(non_embedding=True) == body
    assert m.n_params() == body + 2 * 10 * 8
    assert dataclasses.replace(m, tie_embeddings=True).n_params() == body + 10 * 8


def test_small_presets_are_small_and_valid():
    for model in PRESETS.values():
        model.validate()
    assert get_preset("tiny").n_params(non_embedding=True) < 200_000
    assert get_preset("small").n_params(non_embedding=True) == pytest.approx(85e6, rel=0.05)
    assert get_preset("1b").n_params() == pytest.approx(1.24e9, rel=0.05)
    assert get_preset("tiny").n_kv_heads < get_preset("tiny").n_heads  # tests exercise GQA


def test_swiglu_width_matches_llama_rounding():
    assert swiglu_width(4096) == 11008
    assert swiglu_width(768) == 2048


def test_get_preset_returns_a_copy_and_names_known_presets():
    get_preset("tiny").n_layers = 99
    assert PRESETS["tiny"].n_layers == 2
    with pytest.raises(ConfigError, match="deepseek-7b"):
        get_preset("deepseek-8b")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_kv_heads": 3}, "n_kv_heads"),
        ({"d_model": 66}, "divisible by n_heads"),
        ({"n_layers": 0}, "n_layers"),
        ({"d_model": 12, "n_heads": 4, "n_kv_heads": 4}, "even for RoPE"),
    ],
)
def test_model_validation_names_the_problem(change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(get_preset("tiny"), **change).validate()


def test_train_validation():
    with pytest.raises(ConfigError, match="exactly one"):
        TrainConfig().validate()
    with pytest.raises(ConfigError, match="exactly one"):
        TrainConfig(total_tokens=10, max_steps=3).validate()
    with pytest.raises(ConfigError, match="same length"):
        TrainConfig(max_steps=3, lr_decay_points=(0.8,)).validate()
    with pytest.raises(ConfigError, match="micro_batch_size"):
        TrainConfig(max_steps=3, batch_size=10, micro_batch_size=4).validate()
    with pytest.raises(ConfigError, match="activation_checkpointing must be true or false"):
        TrainConfig(max_steps=3, activation_checkpointing="yes").validate()
    TrainConfig(max_steps=3).validate()


def test_boolean_train_flags_are_x_and_no_x():
    from crawl2model.jobs.cli import build_parser

    parse = build_parser().parse_args
    base = ["train", "--preset", "tiny"]
    assert parse(base + ["--activation-checkpointing"]).activation_checkpointing is True
    assert parse(base + ["--no-activation-checkpointing"]).activation_checkpointing is False
    assert parse(base).activation_checkpointing is None  # unset: the run file decides
    assert parse(base + ["--data", "t"]).data == parse(base + ["--input", "t"]).data == "t"  # old flag kept
    assert parse(base + ["--total-tokens", "2T"]).total_tokens == 2e12


def test_run_config_round_trip(tmp_path):
    model = dataclasses.replace(get_preset("deepseek-67b"), seq_len=2048)
    train = TrainConfig(total_tokens=2 * 10**12, lr=3.2e-4, batch_size=4608, data="tokens/", seed=7)
    path = tmp_path / "run.toml"
    path.write_text(dump_run_config(model, train, header="provenance\nsecond line"))
    assert path.read_text().startswith("# provenance\n# second line\n")
    assert load_run_config(path) == (model, train)


def test_preset_with_overrides_and_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\npreset = "tiny"\nn_layers = 4\n\n[train]\nmax_steps = 50\n')
    model, train = load_run_config(path)
    assert model == dataclasses.replace(PRESETS["tiny"], n_layers=4)
    assert train.lr is None and train.batch_size is None and train.warmup_steps == 2000
    assert train.lr_decay_factors == (0.316, 0.1)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[model]\npreset = "tiny"\nlayers = 4\n[train]\nmax_steps = 1\n', "unknown key 'layers'"),
        ('[model]\npreset = "tiny"\n[train]\nmax_steps = 1\nlearning_rate = 1.0\n', "unknown key 'learning_rate'"),
        ('[model]\npreset = "tiny"\n[optim]\nlr = 1.0\n', r"unknown table \[optim\]"),
        ("[model]\nn_layers = 2\n[train]\nmax_steps = 1\n", "missing"),
        ("[train]\nmax_steps = 1\n", r"missing \[model\]"),
        ("[model\n", "invalid TOML"),
    ],
)
def test_bad_run_files_name_the_key_and_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_run_config(path)
    assert "bad.toml" in str(info.value)


def test_a_flow_run_file_without_model_table_takes_the_preset(tmp_path):
    """One run file serves the whole flow: other stages' tables are fine, [model] may come from --preset."""
    run = tmp_path / "run.toml"
    run.write_text('[dedup]\nthreshold = 0.7\n[train]\nmax_steps = 3\n')
    model, train = load_run_config(run, preset="tiny")
    assert model == get_preset("tiny") and train.max_steps == 3
    with pytest.raises(ConfigError, match=r"missing \[model\] table \(or give --preset\)"):
        load_run_config(run)


def test_a_run_folder_on_an_object_store_is_a_one_line_error(tmp_path, capsys):
    from crawl2model.jobs.cli import main

    assert main(["train", "--preset", "tiny", "--data", str(tmp_path), "--output", "s3://bucket/run"]) == 2
    err = capsys.readouterr().err
    assert "run folder must be a path on a local or shared filesystem" in err and err.count("\n") == 1
