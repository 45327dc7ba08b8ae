"""End to end on the bundled sample: two-process DeepSpeed ZeRO-1 on CPU (torchrun + gloo), resume, HF export.

The token shards are real: the sample's crawl records through ingest's record
policy, a 512-token byte-level BPE, and the tokenize job's shard writer
(`corpora.token_sample`, no Spark). The tiny model trains 30 steps.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crawl2model.corpora.token_sample import build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
STEPS, RESUME_AT = 30, 20


@pytest.fixture(scope="module")
def sample_tokens(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample_tokens")
    return out, build(out, vocab_size=512)


def _run_file(folder: Path, sample: Path, vocab: int) -> Path:
    path = folder / "run.toml"
    path.write_text(f"""
[model]
preset = "tiny"
vocab_size = {vocab}
seq_len = 64

[train]
max_steps = {STEPS}
lr = 3e-3
batch_size = 8
warmup_steps = 5
data = "{sample / 'train'}"
val_data = "{sample / 'val'}"
log_every = 5
eval_every = 15
save_every = 10
eval_windows = 32
engine = "deepspeed"
""")
    return path


def _train(*argv: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "crawl2model", "train", *argv, "--nproc-per-node", str(nproc)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def trained(sample_tokens, tmp_path_factory):
    sample, info = sample_tokens
    folder = tmp_path_factory.mktemp("run")
    config = _run_file(folder, sample, info["vocab_size"])
    proc = _train("--config", str(config), "--output", str(folder / "out"))
    return config, folder / "out", proc.stderr


def test_zero1_two_processes_loss_decreases(trained):
    _, out, log = trained
    assert "deepspeed, 2 ranks, cpu" in log and "MFU n/a" in log and "bits/byte" in log
    losses = _losses(out)
    assert sorted(losses) == list(range(1, STEPS + 1))
    first, last = sum(losses[s] for s in range(1, 6)) / 5, sum(losses[s] for s in range(STEPS - 4, STEPS + 1)) / 5
    assert last < first - 0.4, (first, last)
    summary = json.loads((out / "report.json").read_text())
    assert summary["world_size"] == 2 and 0 < summary["val_bpb"] < 8 and summary["val_loss"] < losses[1]
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["latest", "step-00000020", "step-00000024", "step-00000030"]
    assert (ckpts / "step-00000024" / "KEEP").exists()  # end of the first LR stage (80% of 30 steps)
    assert len(list((ckpts / "step-00000030" / "deepspeed").glob("zero_pp_rank_*_optim_states.pt"))) == 2
    assert (out / "tensorboard").is_dir() and (out / "run.toml").is_file()


@pytest.mark.parametrize("nproc", [2, 1])
def test_resume_continues_the_same_trajectory(trained, tmp_path, nproc):
    """Same ranks: the same losses; 2 -> 1 ranks: ZeRO-1's optimizer shards re-partitioned through
    DeepSpeed's universal checkpoint, the same losses up to the reduction order."""
    config, out, _ = trained
    resumed = tmp_path / "resumed"
    proc = _train("--config", str(config), "--output", str(resumed),
                  "--resume", str(out / "checkpoints" / f"step-{RESUME_AT:08d}"), nproc=nproc)
    assert f"at step {RESUME_AT} (2 -> {nproc} ranks)" in proc.stderr
    assert ("re-partitioning" in proc.stderr) == (nproc != 2) and not (resumed / ".reshard").exists()
    want, got = _losses(out), _losses(resumed)
    assert sorted(got) == list(range(RESUME_AT + 1, STEPS + 1))
    for step, loss in got.items():
        assert loss == pytest.approx(want[step], abs=1e-5 if nproc == 2 else 1e-4), step


def test_hf_export_matches_our_logits(trained, sample_tokens, tmp_path):
    transformers = pytest.importorskip("transformers")
    from crawl2model.jobs.cli import main
    from crawl2model.scaling.shapes import ModelConfig
    from crawl2model.tokenizer import files
    from crawl2model.tokenizer.specials import EOS
    from crawl2model.train.checkpoint import load_weights
    from crawl2model.train.model import Transformer

    _, out, _ = trained
    hf_dir = tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", str(out), "--output", str(hf_dir)]) == 0
    ckpt = out / "checkpoints" / f"step-{STEPS:08d}"
    ours = Transformer(ModelConfig(**json.loads((ckpt / "trainer.json").read_text())["model"]))
    load_weights(ours, ckpt / "model.safetensors")
    hf = transformers.LlamaForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval()
    text = "The Debian package manager installs software.\n"
    tok = files.load(str(sample_tokens[0] / "tokenizer"))
    ids = tok.encode(text).ids
    assert transformers.AutoTokenizer.from_pretrained(hf_dir)(text)["input_ids"] == ids
    tokens = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(hf(tokens).logits, ours(tokens), atol=1e-4)
    assert hf.config.num_key_value_heads == 2 and hf.config.eos_token_id == tok.token_to_id(EOS)


def test_two_nodes_under_torchrun_train_like_one_node_with_two_ranks(trained, tmp_path):
    """`torchrun --nnodes 2 --nproc-per-node 1` with c10d rendezvous on loopback: two node agents,
    ZeRO-1 over gloo, the losses of the one-node two-rank run."""
    import socket

    config, out, _ = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    two = tmp_path / "two-nodes"
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "crawl2model-test",
            "-m", "crawl2model", "train", "--config", str(config), "--output", str(two)]
    nodes = [subprocess.Popen(node, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    logs = [p.communicate(timeout=400)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert json.loads((two / "report.json").read_text())["world_size"] == 2
    assert (two / "_SUCCESS").is_file()
    want, got = _losses(out), _losses(two)
    assert sorted(got) == sorted(want)
    for step, loss in got.items():
        assert loss == pytest.approx(want[step], abs=1e-5), step
