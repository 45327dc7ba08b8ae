"""DPO: our loss, gradients and reward metrics equal TRL's for the same per-token log-probs, and
`crawl2model dpo` on a tiny synthetic preference set raises the reward margin and the chosen answer's
likelihood; the reference is the starting model, also after a resume."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from test_generate import CHAT, chat_tokenizer, hf_folder

from crawl2model.jobs.cli import main
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train.chat import read_conversations
from crawl2model.train.dpo import dpo_loss
from crawl2model.train.model import Transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = ModelConfig(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, ffn_dim=128, vocab_size=512, seq_len=128)


def _trl_loss(per_token: torch.Tensor, mask: torch.Tensor, ref: torch.Tensor, beta: float):
    """TRL's own DPO loss (DPOTrainer._compute_loss, sigmoid loss) on given per-token log-probs: the
    trainer object is reduced to the attributes that method reads, the model to its per-token output."""
    from trl.trainer.dpo_trainer import DPOTrainer

    zeros = torch.zeros_like(per_token)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), beta=beta, loss_types=["sigmoid"], loss_weights=[1.0],
        f_divergence_type="reverse_kl", precompute_ref_logps=True, ld_alpha=None, use_weighting=False,
        label_smoothing=0.0, aux_loss_enabled=False, _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0, _tp_size=1,
        accelerator=SimpleNamespace(device=per_token.device, gather=lambda x: x, gather_for_metrics=lambda x: x))
    outputs = SimpleNamespace(log_probs=per_token * mask[:, 1:], entropy=zeros, mean_logits=zeros,
                              is_top1=zeros.bool())
    n = len(ref) // 2
    inputs = {"input_ids": torch.zeros_like(mask), "attention_mask": torch.ones_like(mask), "completion_mask": mask,
              "ref_chosen_logps": ref[:n], "ref_rejected_logps": ref[n:]}
    loss = DPOTrainer._compute_loss(trainer, lambda **kwargs: outputs, inputs, return_outputs=False)
    return loss, {k: v[-1] for k, v in trainer._metrics["train"].items()}


def test_loss_gradients_and_rewards_equal_trls():
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(0)
    pairs, width, beta = 4, 12, 0.1
    mask = torch.zeros(2 * pairs, width + 1, dtype=torch.long)
    for row, start in enumerate(torch.randint(2, 8, (2 * pairs,), generator=g).tolist()):
        mask[row, start:] = 1  # the answer's tokens after a prompt of `start` tokens
    per_token = (-torch.rand(2 * pairs, width, generator=g) * 3).requires_grad_()
    ref = -torch.rand(2 * pairs, generator=g) * 20
    theirs, metrics = _trl_loss(per_token, mask, ref, beta)
    (want,) = torch.autograd.grad(theirs, per_token)

    sequences = (per_token * mask[:, 1:]).sum(-1)  # what train.dpo.sequence_logps sums
    ours = dpo_loss(*sequences.chunk(2), *ref.chunk(2), beta)
    (got,) = torch.autograd.grad(ours["loss"], per_token)
    assert ours["loss"].item() == pytest.approx(theirs.item(), rel=1e-6)
    assert torch.allclose(got, want, atol=1e-7)
    for key, trl_key in (("reward_accuracy", "rewards/accuracies"), ("reward_margin", "rewards/margins"),
                         ("reward_chosen", "rewards/chosen"), ("reward_rejected", "rewards/rejected"),
                         ("logp_chosen", "logps/chosen")):
        assert ours[key].item() == pytest.approx(metrics[trl_key], rel=1e-5, abs=1e-7), key


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("base")
    torch.manual_seed(0)
    return hf_folder(Transformer(CFG), chat_tokenizer(folder / "tok"), folder / "hf")


def _metrics(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def test_dpo_raises_the_margin_and_the_chosen_likelihood(base, tmp_path):
    """Synthetic preferences: the same short, polite answer is always preferred to a curt one."""
    pairs = tmp_path / "pairs.jsonl"
    questions = [c[0]["content"] for c in read_conversations(CHAT / "sft.jsonl")][:16]
    pairs.write_text("".join(json.dumps({"prompt": q, "chosen": "Gladly: see the manual.", "rejected": "No."}) + "\n"
                             for q in questions))
    table = {"init": str(base), "data": str(pairs), "val_data": str(pairs), "epochs": 6, "lr": 3e-3, "batch_size": 8,
             "warmup_steps": 1, "beta": 0.1, "engine": "torch", "log_every": 4, "save_every": 6, "eval_every": 6,
             "num_workers": 0}
    run_file = tmp_path / "dpo.toml"
    run_file.write_text("[dpo]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    out = tmp_path / "dpo"
    assert main(["dpo", "--config", str(run_file), "--output", str(out)]) == 0
    m = _metrics(out)
    assert sorted(m) == list(range(1, 13))
    assert abs(m[1]["reward_margin"]) < 1e-4  # the reference is the starting policy
    assert m[12]["reward_margin"] > m[4]["reward_margin"] > m[2]["reward_margin"] > 0.1
    assert m[12]["reward_accuracy"] == 1.0 and m[12]["loss"] < m[1]["loss"] - 0.3
    assert m[12]["reward_chosen"] > 0  # the chosen answer became more likely than under the reference
    assert m[12]["val_reward_accuracy"] == 1.0 and m[12]["val_reward_margin"] > m[6]["val_reward_margin"] > 0
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "dpo" and report["docs_out"] == 16

    resumed = tmp_path / "resumed"
    assert main(["dpo", "--config", str(run_file), "--output", str(resumed),
                 "--resume", str(out / "checkpoints" / "step-00000006")]) == 0
    got = _metrics(resumed)
    assert all(got[s]["loss"] == pytest.approx(m[s]["loss"], abs=1e-6) for s in range(7, 13))


def test_the_demos_fine_tuning_steps(base, tmp_path, capsys):
    """`crawl2model demo` after pretraining: its sft, dpo and generate commands, from a base model in
    the place of the demo's 20-step one."""
    import shutil

    from crawl2model.jobs import demo

    run_dir = tmp_path / "demo"
    shutil.copytree(base, run_dir / "train")
    for stage, argv, out in demo.steps("unused", run_dir):
        if stage in ("sft", "dpo"):
            assert main(argv) == 0 and json.loads((out / "report.json").read_text())["stage"] == stage
    capsys.readouterr()
    assert main(demo.generate_argv(run_dir)) == 0 and capsys.readouterr().out.endswith("\n")


@pytest.mark.slow
def test_deepspeed_zero1_on_two_ranks_follows_the_torch_engine(base, tmp_path, monkeypatch):
    """The reference log-probs are computed in shares and summed over ranks; the DPO losses of two
    ZeRO-1 ranks are those of one torch process."""
    pytest.importorskip("deepspeed")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pairs = CHAT / "dpo.jsonl"
    table = {"init": str(base), "data": str(pairs), "max_steps": 4, "lr": 1e-3, "batch_size": 8, "warmup_steps": 1,
             "log_every": 1, "num_workers": 0}
    losses = {}
    for engine, nproc in (("torch", 1), ("deepspeed", 2)):
        run_file = tmp_path / f"{engine}.toml"
        run_file.write_text("[dpo]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                for k, v in {**table, "engine": engine}.items()))
        out = tmp_path / engine
        assert main(["dpo", "--config", str(run_file), "--output", str(out), "--nproc-per-node", str(nproc)]) == 0
        losses[engine] = [r["loss"] for r in _metrics(out).values()]
        assert json.loads((out / "report.json").read_text())["world_size"] == nproc
    assert losses["deepspeed"] == pytest.approx(losses["torch"], abs=1e-5)
