"""Distributed setup and the two engines that turn micro-batches into optimizer steps.

    DeepSpeedEngine  ZeRO stage 1 (the paper's setup): optimizer states sharded
                     across data-parallel ranks, bf16 on GPU, config from
                     infra/deepspeed/zero1.json with the run's values filled in
    TorchEngine      plain torch: DistributedDataParallel over >1 ranks, AdamW,
                     bf16 autocast on GPU; for debugging and small jobs

Both expose the same four calls (`step`, `set_lr`, `save`, `load`) so the
training loop never branches on the engine. The learning rate is set by the
loop before every step (multi-step schedule), never by an engine scheduler.
What a micro-batch's loss is comes from an `Objective`: next-token prediction
on token windows for pretraining (`lm_objective`), assistant tokens for SFT,
the DPO loss for preference pairs.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from crawl2model.core.resources import resource
from crawl2model.train.config import TrainConfig
from crawl2model.train.optim import adamw

DEFAULT_DEEPSPEED_CONFIG = resource("crawl2model.infra", "deepspeed", "zero1.json")
ENGINES = ("deepspeed", "torch")

# (the model's forward, a micro-batch on the device) -> {"loss": scalar to minimise, other metrics to log}.
# The forward is the engine's wrapper (DDP, DeepSpeed), so gradients are reduced across ranks.
Objective = Callable[[Callable[..., torch.Tensor], Any], dict[str, torch.Tensor]]


def lm_objective(forward: Callable[..., torch.Tensor], windows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pretraining: predict every next token of windows (B, seq_len + 1)."""
    return {"loss": forward(windows[:, :-1], windows[:, 1:])}


def to_device(batch: Any, device: torch.device) -> Any:
    """A micro-batch (a tensor or a dict of them) on the device."""
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


def _mean_metrics(sums: dict[str, float], n: int, device: torch.device) -> dict[str, float]:
    """Per-micro-batch sums -> means over micro-batches and ranks."""
    return {k: mean_over_ranks(v / n, device) for k, v in sums.items()}


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # this process created the process group, so it destroys it
    own_env: tuple[str, ...] = ()  # launcher variables this process set for itself, removed at the end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(engine: str) -> Dist:
    """Join (or, without a launcher, create a one-process) process group: NCCL on GPU, gloo on CPU.

    Launchers (torchrun, deepspeed) set RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/
    MASTER_PORT; a plain `crawl2model train` sets them for one process, since
    DeepSpeed otherwise falls back to asking for mpi4py. `release` removes them
    again, so a later command in the same process is not taken to run under a launcher.
    """
    own_env: dict[str, str] = {}
    if "RANK" not in os.environ:
        own_env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(_free_port())}
        os.environ.update(own_env)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    backend = "nccl" if cuda else "gloo"
    if engine == "deepspeed":
        import deepspeed
        import deepspeed.ops

        if not cuda:
            # The shared-memory all-reduce op only speeds up CPU collectives and costs a
            # ~40 s g++ build on first use; gloo is what CPU runs (tests) need. Recording
            # the op as incompatible before DeepSpeed probes anything also skips the probe's
            # compiler runs (comm/torch.py is the only reader of this table).
            vars(deepspeed.ops).setdefault("__compatible_ops__", {})["deepspeed_shm_comm"] = False
        deepspeed.init_distributed(dist_backend=backend)
    elif owns:
        dist.init_process_group(backend, device_id=device if cuda else None)
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, device, owns, tuple(own_env))


def release(env: Dist) -> None:
    """Undo `init_distributed`: destroy the group this process created, drop the variables it set."""
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()
    for key in env.own_env:
        os.environ.pop(key, None)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"bf16": torch.bfloat16, "fp32": torch.float32}[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r} (known: auto, bf16, fp32)") from None


def mean_over_ranks(value: float, device: torch.device) -> float:
    if dist.is_initialized() and dist.get_world_size() > 1:
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.item() / dist.get_world_size()
    return value


class TorchEngine:
    def __init__(self, model: torch.nn.Module, train: TrainConfig, env: Dist, dtype: torch.dtype,
                 objective: Objective = lm_objective) -> None:
        self.module = model.to(env.device)
        self.env, self.dtype, self.grad_clip, self.objective = env, dtype, train.grad_clip, objective
        self.wrapped = (torch.nn.parallel.DistributedDataParallel(self.module) if env.world_size > 1
                        else self.module)
        self.optimizer = adamw(self.module, train)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, micro_batches: list[Any]) -> tuple[dict[str, float], float]:
        """One optimizer step over this rank's micro-batches: (the objective's metrics, "loss" among
        them, averaged over micro-batches and ranks; the grad norm before clipping)."""
        sums: dict[str, float] = {}
        for i, batch in enumerate(micro_batches):
            batch = to_device(batch, self.env.device)
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or self.wrapped is self.module else self.wrapped.no_sync()
            autocast = torch.autocast(self.env.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
            with sync, autocast:
                metrics = self.objective(self.wrapped, batch)
            (metrics["loss"] / len(micro_batches)).backward()
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v.item()
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip or float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return _mean_metrics(sums, len(micro_batches), self.env.device), float(norm)

    def save(self, folder: Path) -> None:
        if self.env.rank == 0:
            torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")

    def load(self, folder: Path) -> None:
        from crawl2model.train.checkpoint import MODEL_FILE, load_tensors, load_weights

        state = load_tensors(folder / "optimizer.pt", map_location=self.env.device)
        load_weights(self.module, folder / MODEL_FILE)
        self.optimizer.load_state_dict(state)


def deepspeed_config(train: TrainConfig, micro_batch: int, world_size: int, dtype: torch.dtype,
                     load_universal: bool = False) -> dict:
    """infra/deepspeed/zero1.json (or the run's own file) with every run-dependent key filled in."""
    path = Path(train.deepspeed_config) if train.deepspeed_config else DEFAULT_DEEPSPEED_CONFIG
    config = json.loads(path.read_text())
    config.update(
        train_batch_size=train.batch_size,
        train_micro_batch_size_per_gpu=micro_batch,
        gradient_accumulation_steps=train.batch_size // (micro_batch * world_size),
        gradient_clipping=train.grad_clip,
        bf16={"enabled": dtype == torch.bfloat16},
    )
    if load_universal:
        config.setdefault("checkpoint", {})["load_universal"] = True
    optimizer = config.setdefault("optimizer", {"type": "AdamW", "params": {"torch_adam": True}})
    optimizer["params"].update(lr=train.lr, betas=[train.beta1, train.beta2], eps=train.eps,
                               weight_decay=train.weight_decay)
    return config


class DeepSpeedEngine:
    """ZeRO-1 through DeepSpeed.

    Its optimizer shards are saved one per rank, so a checkpoint from N ranks
    cannot be loaded by M directly. With `reshard_dir` set, `load` first converts
    the checkpoint to DeepSpeed's universal format there (rank 0, DeepSpeed's own
    `ds_to_universal`: full fp32 weights and Adam moments per parameter) and loads
    that, which re-partitions it over the current ranks; the run's checkpoints
    stay in the normal per-rank format."""

    TAG = "deepspeed"

    def __init__(self, model: torch.nn.Module, train: TrainConfig, env: Dist, dtype: torch.dtype,
                 micro_batch: int, reshard_dir: Path | None = None, objective: Objective = lm_objective) -> None:
        import deepspeed

        from crawl2model.train.optim import param_groups

        self.env, self.reshard_dir, self.objective = env, reshard_dir, objective
        config = deepspeed_config(train, micro_batch, env.world_size, dtype, load_universal=reshard_dir is not None)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model.to(env.device), model_parameters=param_groups(model, train.weight_decay), config=config)
        self.module = self.engine.module

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, micro_batches: list[Any]) -> tuple[dict[str, float], float]:
        sums: dict[str, float] = {}
        for batch in micro_batches:
            metrics = self.objective(self.engine, to_device(batch, self.env.device))
            self.engine.backward(metrics["loss"])  # scaled by 1/accumulation steps inside
            self.engine.step()  # the optimizer (and ZeRO's clipping) runs at the accumulation boundary
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v.item()
        return _mean_metrics(sums, len(micro_batches), self.env.device), float(self.engine.get_global_grad_norm())

    def save(self, folder: Path) -> None:
        self.engine.save_checkpoint(str(folder), tag=self.TAG, save_latest=False)

    def load(self, folder: Path) -> None:
        from crawl2model.train.checkpoint import check_deepspeed_files

        check_deepspeed_files(folder / self.TAG)  # DeepSpeed itself unpickles with weights_only=False
        source = folder
        if self.reshard_dir is not None:
            if self.env.rank == 0:
                to_universal(folder / self.TAG, self.reshard_dir / self.TAG)
            if dist.is_initialized():
                dist.barrier()
            source = self.reshard_dir
            check_deepspeed_files(source / self.TAG)  # what DeepSpeed's converter wrote from them
        path, _ = self.engine.load_checkpoint(str(source), tag=self.TAG, load_lr_scheduler_states=False)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint in {source}/{self.TAG}")
        if self.reshard_dir is not None:
            if dist.is_initialized():
                dist.barrier()
            if self.env.rank == 0:
                shutil.rmtree(self.reshard_dir, ignore_errors=True)


def to_universal(source: Path, target: Path) -> None:
    """DeepSpeed's checkpoint converter (ds_to_universal), in a child process: it prints a lot and
    starts worker pools (up to 4 extracting shards; merging, the memory-hungry part, in one).
    `--inject_missing_state` adds the version record that Megatron-style clients write and ours
    does not need."""
    shutil.rmtree(target, ignore_errors=True)
    workers = str(max(1, min(4, (os.cpu_count() or 1) // 2)))
    cmd = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", str(source),
           "--output_folder", str(target), "--inject_missing_state",
           "--num_extract_workers", workers, "--num_merge_workers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"converting {source} to DeepSpeed's universal checkpoint failed:\n{proc.stderr[-3000:]}")


def build_engine(model: torch.nn.Module, train: TrainConfig, env: Dist, micro_batch: int,
                 reshard_dir: Path | None = None, objective: Objective = lm_objective):
    """The configured engine; `reshard_dir` (DeepSpeed only) makes its `load` accept a checkpoint
    written by a different number of ranks."""
    dtype = resolve_dtype(train.dtype, env.device)
    if train.engine == "deepspeed":
        return DeepSpeedEngine(model, train, env, dtype, micro_batch, reshard_dir, objective)
    return TorchEngine(model, train, env, dtype, objective)
