"""The torch engine in-process: a crash mid-checkpoint, resume, continual training, run-file handling."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crawl2model.core.errors import ConfigError
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.tokenizer.shards import shard_paths, write_ids
from crawl2model.train import checkpoint, trainer
from crawl2model.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODEL = ModelConfig(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, ffn_dim=64, vocab_size=64, seq_len=32)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> str:
    """Documents from a fixed Markov chain, so there is something to learn."""
    folder = tmp_path_factory.mktemp("tokens")
    rng = np.random.default_rng(0)
    nxt = rng.integers(0, 64, size=(64, 2))
    docs, t = [], 0
    for _ in range(200):
        doc = []
        for _ in range(int(rng.integers(20, 80))):
            t = int(nxt[t, rng.integers(0, 2)])
            doc.append(t)
        docs.append(doc)
    write_ids(str(folder), [docs])
    return str(folder)


def _train(shards: str, out: Path, steps: int, resume: str | None = None, **changes) -> dict:
    cfg = TrainConfig(max_steps=steps, lr=1e-2, batch_size=4, warmup_steps=2, data=shards, val_data=shards,
                      eval_windows=8, eval_every=1000, save_every=4, log_every=100, engine="torch", num_workers=0)
    return trainer.run(MODEL, dataclasses.replace(cfg, **changes), out, resume=resume)


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


def test_crash_mid_checkpoint_leaves_the_previous_one_and_resume_is_exact(shards, tmp_path, monkeypatch):
    straight = _train(shards, tmp_path / "straight", 10)
    assert _losses(tmp_path / "straight")[10] < _losses(tmp_path / "straight")[1] - 0.5

    real_fsync = checkpoint._fsync_tree

    def crash_at_step_8(folder: Path) -> None:
        if folder.name.endswith("00000008"):
            raise OSError("disk full")
        real_fsync(folder)

    monkeypatch.setattr(checkpoint, "_fsync_tree", crash_at_step_8)
    out = tmp_path / "crashed"
    with pytest.raises(OSError, match="disk full"):
        _train(shards, out, 10)
    ckpts = out / "checkpoints"
    assert checkpoint.latest(ckpts).name == "step-00000004" and (ckpts / ".tmp-step-00000008").is_dir()
    monkeypatch.undo()
    resumed = _train(shards, out, 10, resume="latest")
    assert not (ckpts / ".tmp-step-00000008").exists() and checkpoint.latest(ckpts).name == "step-00000010"
    want, got = _losses(tmp_path / "straight"), _losses(out)  # steps 5.. are logged twice: keep the last
    assert all(got[s] == pytest.approx(want[s], abs=1e-6) for s in range(1, 11))
    assert resumed["val_loss"] == pytest.approx(straight["val_loss"], abs=1e-6)


def test_continual_training_from_the_end_of_the_first_stage(shards, tmp_path):
    """The paper's reason for the multi-step schedule: a longer run reuses a shorter run's first stage."""
    _train(shards, tmp_path / "short", 10)
    first_stage = tmp_path / "short" / "checkpoints" / "step-00000008"  # 80% of 10 steps, kept for good
    assert (first_stage / checkpoint.KEEP).exists()
    _train(shards, tmp_path / "long", 20)
    _train(shards, tmp_path / "continued", 20, resume=str(first_stage))
    want, got = _losses(tmp_path / "long"), _losses(tmp_path / "continued")
    assert sorted(got) == list(range(9, 21))
    assert all(got[s] == pytest.approx(want[s], abs=1e-6) for s in got)


def test_run_file_errors(shards, tmp_path):
    with pytest.raises(ConfigError, match="vocab_size"):
        trainer.run(dataclasses.replace(MODEL, vocab_size=32), TrainConfig(max_steps=1, data=_with_vocab(shards, tmp_path)),
                    tmp_path / "x")
    with pytest.raises(ConfigError, match="multiple of micro_batch_size"):
        trainer.plan(MODEL, TrainConfig(max_steps=1, lr=1e-3, batch_size=6, micro_batch_size=2), world_size=2)
    with pytest.raises(ConfigError, match="context length"):
        trainer.plan(MODEL, TrainConfig(max_steps=1, lr=1e-3, batch_size=2, seq_len=64), world_size=1)


def _with_vocab(shards: str, tmp_path: Path) -> str:
    folder = tmp_path / "vocab"
    folder.mkdir()
    (folder / "part-00000.arrow").symlink_to(Path(shards) / "part-00000.arrow")
    listing = {**shard_paths(shards)[2], "tokenizer": {"vocab_size": 64, "padded_vocab_size": 128}}
    (folder / "manifest.json").write_text(json.dumps(listing))
    return str(folder)


def test_missing_lr_and_batch_come_from_the_scaling_laws():
    train, shape = trainer.plan(MODEL, TrainConfig(total_tokens=10**6), world_size=1)
    from crawl2model.scaling.laws import resolve_hparams

    want = resolve_hparams(MODEL, TrainConfig(total_tokens=10**6))
    assert (train.lr, train.batch_size) == (want.lr, want.batch_size)
    assert shape.total_steps == -(-10**6 // (want.batch_size * MODEL.seq_len))


def test_cli_trains_a_preset_without_a_run_file(shards, tmp_path):
    """What `crawl2model demo` runs: a few steps of the tiny preset, vocab taken from the shards' tokenizer."""
    from crawl2model.jobs.cli import main

    out = tmp_path / "demo"
    argv = ["train", "--preset", "tiny", "--input", _with_vocab(shards, tmp_path), "--max-steps", "3",
            "--warmup-steps", "1", "--seq-len", "32", "--batch-size", "4", "--engine", "torch",
            "--num-workers", "0", "--output", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "train" and report["steps"] == 3 and report["seq_len"] == 32
    assert "vocab_size = 128" in (out / "run.toml").read_text()
    assert main(["train", "--max-steps", "3"]) == 2  # neither --config nor --preset: a usage error
    # The stage protocol: the same run again is skipped, another one is refused, --resume continues.
    assert main(argv) == 0 and json.loads((out / "report.json").read_text()) == report
    assert main([*argv, "--max-steps", "4"]) == 2
    assert main([*argv, "--max-steps", "4", "--resume"]) == 0
    assert json.loads((out / "report.json").read_text())["steps"] == 4
    marker = json.loads((out / "_SUCCESS").read_text())
    assert marker["config"]["train.max_steps"] == 4 and "checkpoints/latest" in [f["path"] for f in marker["files"]]


class _Payload:
    """What a hostile checkpoint pickles: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_checkpoints_hold_no_pickled_code_and_a_malicious_one_is_refused(shards, tmp_path, capsys):
    from crawl2model.jobs.cli import main

    out = tmp_path / "run"
    _train(shards, out, 4)
    ckpt = out / "checkpoints" / "step-00000004"
    assert sorted(p.name for p in ckpt.iterdir()) == ["KEEP", "model.safetensors", "optimizer.pt", "rng-00000.safetensors",
                                                      "trainer.json"]
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt / "optimizer.pt") == []
    checkpoint.load_tensors(ckpt / "optimizer.pt")  # weights_only=True reads what we write

    marker = tmp_path / "pwned"
    torch.save({"state": {}, "param_groups": _Payload(marker)}, ckpt / "optimizer.pt")
    with pytest.raises(checkpoint.UnsafeCheckpointError, match="refused to load.*posix.system"):
        checkpoint.load_tensors(ckpt / "optimizer.pt")
    run_file = tmp_path / "run.toml"
    run_file.write_text((out / "run.toml").read_text())
    argv = ["train", "--config", str(run_file), "--max-steps", "5", "--output", str(tmp_path / "resumed"),
            "--resume", str(ckpt)]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "refused to load" in err[-1] and "Traceback" not in "\n".join(err)
    assert not marker.exists()

    deepspeed_dir = tmp_path / "ds"
    deepspeed_dir.mkdir()
    torch.save({"optimizer_state_dict": _Payload(marker)}, deepspeed_dir / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    with pytest.raises(checkpoint.UnsafeCheckpointError, match="posix.system"):
        checkpoint.check_deepspeed_files(deepspeed_dir)
    assert not marker.exists()
