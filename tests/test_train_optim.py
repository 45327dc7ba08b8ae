"""AdamW groups, the multi-step schedule at its exact boundaries, and gradient clipping inside ZeRO-1."""
from __future__ import annotations

import copy
import socket

import pytest
import torch

from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train.config import TrainConfig
from crawl2model.train.model import Transformer
from crawl2model.train.optim import MultiStepSchedule, adamw, param_groups, schedule_for

CFG = ModelConfig(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, ffn_dim=64, vocab_size=96, seq_len=16)


def test_schedule_at_exact_step_boundaries():
    s = MultiStepSchedule(warmup_steps=4, total_steps=40, decay_points=(0.8, 0.9), decay_factors=(0.316, 0.1))
    assert s.boundaries() == [32, 36]  # 0.8 x 40 in floating point is 32.000000000000004
    assert [s(i) for i in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert s(31) == 1.0 and s(32) == 0.316 and s(35) == 0.316 and s(36) == 0.1 and s(39) == 0.1
    # an 80% point between steps applies from the first step that starts past it
    assert MultiStepSchedule(0, 7, (0.8,), (0.5,)).boundaries() == [6]  # 5.6 -> 6
    # the paper's: 2000 warm-up steps, 80%/90% of the tokens
    paper = schedule_for(TrainConfig(total_tokens=10**9), total_steps=10_000)
    assert paper(1999) == 1.0 and paper(999) == 0.5 and paper(8000) == 0.316 and paper(9000) == 0.1


def test_continual_training_shares_the_first_stage():
    """A longer run with the same peak lr has the same rates through the short run's first stage."""
    short, long = MultiStepSchedule(10, 100, (0.8, 0.9), (0.316, 0.1)), MultiStepSchedule(10, 300, (0.8, 0.9), (0.316, 0.1))
    end = short.boundaries()[0]
    assert [short(i) for i in range(end)] == [long(i) for i in range(end)]


def test_weight_decay_skips_norms():
    model = Transformer(CFG)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and len(no_decay["params"]) == 2 * CFG.n_layers + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deepspeed_zero1_really_clips(monkeypatch, tmp_path):
    """ZeRO-1 clips inside its optimizer wrapper: its updates must equal AdamW on clipped gradients."""
    pytest.importorskip("deepspeed")
    import torch.distributed as dist

    from crawl2model.train.checkpoint import check_deepspeed_files
    from crawl2model.train.engine import DeepSpeedEngine, init_distributed

    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train = TrainConfig(max_steps=3, lr=1e-2, batch_size=4, grad_clip=0.05, weight_decay=0.1)
    env = init_distributed("deepspeed")
    try:
        torch.manual_seed(0)
        model = Transformer(CFG)
        clipped, unclipped = copy.deepcopy(model), copy.deepcopy(model)
        engine = DeepSpeedEngine(model, train, env, torch.float32, micro_batch=4)
        opt_clipped, opt_unclipped = adamw(clipped, train), adamw(unclipped, train)
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            batch = torch.randint(0, CFG.vocab_size, (4, CFG.seq_len + 1), generator=g)
            _, norm = engine.step([batch])
            norms = []
            for ref, opt, clip in ((clipped, opt_clipped, 0.05), (unclipped, opt_unclipped, float("inf"))):
                ref(batch[:, :-1], batch[:, 1:]).backward()
                norms.append(torch.nn.utils.clip_grad_norm_(ref.parameters(), clip).item())
                opt.step()
                opt.zero_grad()
            assert norm == pytest.approx(norms[0], rel=1e-5) and norm > 0.05  # clipping is active
        ours = torch.cat([p.detach().flatten() for p in engine.module.parameters()])
        want = torch.cat([p.detach().flatten() for p in clipped.parameters()])
        other = torch.cat([p.detach().flatten() for p in unclipped.parameters()])
        assert (ours - want).abs().max() < 1e-6
        assert (ours - other).abs().max() > 1e-4
        engine.save(tmp_path)  # DeepSpeed's own files pass the check made before DeepSpeed unpickles them
        check_deepspeed_files(tmp_path / DeepSpeedEngine.TAG)
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(threads)
