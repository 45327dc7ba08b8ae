"""The training loop: one process of a (possibly one-process) data-parallel run.

Everything a run needs is resolved up front, in this order: the laws fill a
missing lr or batch size (`train.scaling.resolve_hparams`), the batch is split
into micro-batches per rank, the run length becomes a step count, and the
resolved run file is written next to the output. Then, per optimizer step: set
the lr from the schedule, feed this rank's micro-batches to the engine, log;
evaluate and checkpoint on their intervals and at the end.

A checkpoint is also written, and never pruned, at the first LR decay: the end
of the first stage, from which a longer run can continue (paper section 2.3).

What the run learns from is a `Task`: `Pretraining` (token shards, next-token
loss, validation loss and bits-per-byte) here, SFT (`train.sft`) and DPO
(`train.dpo`) elsewhere. The loop, engines, checkpoints, resume and metrics are
the same for all of them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from crawl2model.core.errors import ConfigError
from crawl2model.core.log import get_logger
from crawl2model.scaling.laws import resolve_hparams
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.tokenizer.shards import shard_paths
from crawl2model.train import checkpoint
from crawl2model.train.config import TrainConfig, dump_run_config
from crawl2model.train.data import train_loader
from crawl2model.train.engine import (
    Dist,
    Objective,
    build_engine,
    init_distributed,
    lm_objective,
    mean_over_ranks,
    release,
    resolve_dtype,
)
from crawl2model.train.evaluate import evaluate, token_byte_lengths
from crawl2model.train.metrics import MetricsLogger, peak_flops, progress_line
from crawl2model.train.model import Transformer, train_flops_per_token
from crawl2model.train.optim import schedule_for

log = get_logger("train")


@dataclasses.dataclass
class Plan:
    """A run's derived shape: what every rank must agree on."""

    seq_len: int
    micro_batch: int
    accumulation: int
    total_steps: int


def plan(model: ModelConfig, train: TrainConfig, world_size: int,
         steps: int | None = None) -> tuple[TrainConfig, Plan]:
    """Resolve lr/batch from the laws when missing, and the batch split and step count (`steps`, else
    max_steps or total_tokens); ConfigError if impossible."""
    if train.lr is None or train.batch_size is None:
        train = resolve_hparams(model, train)
    seq_len = train.seq_len or model.seq_len
    if seq_len > model.seq_len:
        raise ConfigError(f"train.seq_len {seq_len} exceeds the model's context length {model.seq_len}")
    batch = train.batch_size
    if batch % world_size:
        raise ConfigError(f"train.batch_size {batch} is not divisible by {world_size} data-parallel ranks")
    micro = train.micro_batch_size or batch // world_size
    if batch % (micro * world_size):
        raise ConfigError(f"train.batch_size {batch} must be a multiple of micro_batch_size {micro} x {world_size} ranks")
    steps = steps or train.max_steps or math.ceil(train.total_tokens / (batch * seq_len))
    return dataclasses.replace(train, seq_len=seq_len), Plan(seq_len, micro, batch // (micro * world_size), steps)


def _log(rank: int, message: str) -> None:
    """Rank 0 speaks for the run; the other ranks' lines would repeat it."""
    if rank == 0:
        log.info(message)


def _check_data(model: ModelConfig, train: TrainConfig) -> str | None:
    """The tokenizer folder for bits-per-byte; errors when the shards' ids do not fit the model."""
    if not train.data:
        raise ConfigError("train.data is required: a token shard folder from `crawl2model tokenize`")
    tokenizer = shard_paths(train.data)[2].get("tokenizer", {})
    if tokenizer.get("vocab_size", 0) > model.vocab_size:
        raise ConfigError(f"the token shards use {tokenizer['vocab_size']} ids but model.vocab_size is "
                          f"{model.vocab_size}: set it to the tokenizer's padded size "
                          f"({tokenizer.get('padded_vocab_size')})")
    path = train.tokenizer or tokenizer.get("path")
    return path if path and (Path(path) / "tokenizer.json").is_file() else None


# How the log line names held-out metrics ("step 100: val loss 3.2101, 1.0432 bits/byte").
HELD_OUT_LABELS = {"val_loss": "val loss {:.4f}", "val_bpb": "{:.4f} bits/byte"}


class Task(Protocol):
    """What a run learns from and how its loss is made; everything else is the loop's."""

    stage: str  # the report's stage name
    objective: Objective
    progress_keys: tuple[str, ...]  # metrics of the objective shown in the progress line

    def prepare(self, model: ModelConfig, train: TrainConfig, world_size: int) -> tuple[TrainConfig, Plan]:
        """Check the data, resolve the run's shape (before any engine exists)."""

    def init_weights(self, model: torch.nn.Module) -> None:
        """Set the starting weights of a fresh run (pretraining keeps the random init)."""

    def start(self, model: torch.nn.Module, out: Path, env: Dist, dtype: torch.dtype) -> None:
        """Work before the first step, with the starting weights (DPO's reference log-probs)."""

    def loader(self, train: TrainConfig, shape: Plan, consumed: int, rank: int, world_size: int) -> Iterator:
        """Endless micro-batches of this rank, after `consumed` samples of the whole run."""

    def tokens(self, batch: Any) -> int:
        """Input tokens in a micro-batch (for tokens/s and MFU)."""

    def evaluate(self, module: torch.nn.Module, train: TrainConfig, shape: Plan, device: torch.device,
                 dtype: torch.dtype) -> dict[str, float]:
        """Held-out metrics ({} without held-out data)."""

    def report(self) -> dict[str, Any]:
        """The stage's own report keys (documents in and out, ...)."""

    def run_file(self, model: ModelConfig, train: TrainConfig) -> str:
        """The resolved run file written as OUTPUT/run.toml."""


class Pretraining:
    """Next-token prediction on token shards; validation loss and bits-per-byte on held-out shards."""

    stage = "train"
    objective = staticmethod(lm_objective)
    progress_keys = ()

    def __init__(self) -> None:
        self.byte_lengths: torch.Tensor | None = None

    def prepare(self, model: ModelConfig, train: TrainConfig, world_size: int) -> tuple[TrainConfig, Plan]:
        tokenizer_dir = _check_data(model, train)
        self.byte_lengths = token_byte_lengths(tokenizer_dir, model.vocab_size) if tokenizer_dir else None
        return plan(model, train, world_size)

    def init_weights(self, model: torch.nn.Module) -> None:
        pass

    def start(self, model: torch.nn.Module, out: Path, env: Dist, dtype: torch.dtype) -> None:
        pass

    def loader(self, train: TrainConfig, shape: Plan, consumed: int, rank: int, world_size: int) -> Iterator:
        return iter(train_loader(train.data, shape.seq_len, train.batch_size, shape.micro_batch, seed=train.seed,
                                 consumed=consumed, rank=rank, world_size=world_size, num_workers=train.num_workers))

    def tokens(self, batch: torch.Tensor) -> int:
        return batch[:, :-1].numel()

    def evaluate(self, module: torch.nn.Module, train: TrainConfig, shape: Plan, device: torch.device,
                 dtype: torch.dtype) -> dict[str, float]:
        if not train.val_data:
            return {}
        return evaluate(module, train.val_data, shape.seq_len, train.eval_windows, shape.micro_batch,
                        self.byte_lengths, device, dtype)

    def report(self) -> dict[str, Any]:
        return {}

    def run_file(self, model: ModelConfig, train: TrainConfig) -> str:
        return dump_run_config(model, train, "resolved run config (crawl2model train)")


def _resume_folder(resume: str, checkpoints: Path) -> Path | None:
    if resume != "latest":
        return Path(resume)
    return checkpoint.latest(checkpoints)


def run(model_cfg: ModelConfig, train_cfg: TrainConfig, output_dir: str | Path,
        resume: str | None = None, task: Task | None = None) -> dict[str, Any]:
    """Train; returns the report that is also written to OUTPUT/report.json (rank 0), as every stage does.

    `resume`: "latest" continues from OUTPUT/checkpoints if there is one (a fresh
    start otherwise); a path continues from that checkpoint, possibly of another
    run with a longer schedule (continual training). `task` defaults to pretraining."""
    out = Path(output_dir)
    task = task or Pretraining()
    env = init_distributed(train_cfg.engine)
    try:
        return _train(model_cfg, train_cfg, out, resume, task, env)
    finally:
        release(env)


def _check_resumable(folder: Path, saved: dict[str, Any], model_cfg: ModelConfig, train_cfg: TrainConfig) -> None:
    """Refuse a checkpoint this run cannot continue, before any engine is built or anything loaded."""
    if saved["engine"] != train_cfg.engine:
        raise ConfigError(f"{folder} was written by the {saved['engine']} engine; resume it with that engine")
    if saved["model"] != dataclasses.asdict(model_cfg):
        raise ConfigError(f"{folder}: the checkpoint's model config differs from this run's [model]")
    if saved["samples"] != saved["step"] * train_cfg.batch_size:
        raise ConfigError(f"{folder}: batch size changed ({saved['samples'] // saved['step']} -> "
                          f"{train_cfg.batch_size}); the data cursor would not line up")


def _train(model_cfg: ModelConfig, train_cfg: TrainConfig, out: Path, resume: str | None, task: Task,
           env: Dist) -> dict[str, Any]:
    train_cfg, shape = task.prepare(model_cfg, train_cfg, env.world_size)
    rank, checkpoints = env.rank, out / "checkpoints"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.toml").write_text(task.run_file(model_cfg, train_cfg))
    schedule = schedule_for(train_cfg, shape.total_steps)
    first_stage_end = schedule.boundaries()[0] if schedule.boundaries() else None
    dtype = resolve_dtype(train_cfg.dtype, env.device)
    batch_tokens = train_cfg.batch_size * shape.seq_len
    flops_token = train_flops_per_token(model_cfg, shape.seq_len)
    peak = peak_flops(train_cfg.peak_tflops)

    folder = _resume_folder(resume, checkpoints) if resume else None
    saved = checkpoint.read_state(folder) if folder is not None else None
    if saved is not None:
        _check_resumable(folder, saved, model_cfg, train_cfg)
    reshard = saved is not None and train_cfg.engine == "deepspeed" and saved["world_size"] != env.world_size

    torch.manual_seed(train_cfg.seed)  # identical initial weights on every rank
    model = Transformer(model_cfg, attention=train_cfg.attention, recompute=train_cfg.activation_checkpointing,
                        fused=train_cfg.fused)
    task.init_weights(model)
    task.start(model.to(env.device), out, env, dtype)
    engine = build_engine(model, train_cfg, env, shape.micro_batch, reshard_dir=out / ".reshard" if reshard else None,
                          objective=task.objective)

    step, tokens = 0, 0
    if saved is not None:
        if reshard:
            _log(rank, f"re-partitioning {folder}'s ZeRO-1 optimizer shards: {saved['world_size']} -> "
                       f"{env.world_size} ranks (DeepSpeed universal checkpoint)")
        checkpoint.load(folder, saved, engine, rank, env.world_size)
        step, tokens = saved["step"], saved["tokens"]
        _log(rank, f"resumed from {folder} at step {step} ({saved['world_size']} -> {env.world_size} ranks)")
        if saved["total_steps"] != shape.total_steps:
            stage = "inside" if first_stage_end is None or step <= first_stage_end else "PAST"
            _log(rank, f"continual training: schedule {saved['total_steps']} -> {shape.total_steps} steps; "
                       f"step {step} is {stage} the new run's first LR stage")

    batches = task.loader(train_cfg, shape, step * train_cfg.batch_size, rank, env.world_size)
    metrics = MetricsLogger(out, enabled=rank == 0)
    _log(rank, f"training {model_cfg.n_params() / 1e6:.2f}M params ({train_cfg.engine}, {env.world_size} ranks, "
               f"{env.device.type}, {dtype}): {shape.total_steps} steps of {train_cfg.batch_size} x {shape.seq_len} "
               f"tokens ({shape.accumulation} x {shape.micro_batch} per rank), peak lr {train_cfg.lr:.3g}")

    def state_at(s: int) -> dict[str, Any]:
        return {"step": s, "samples": s * train_cfg.batch_size, "tokens": tokens,
                "total_steps": shape.total_steps, "world_size": env.world_size, "engine": train_cfg.engine,
                "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg)}

    started = time.perf_counter()
    summary: dict[str, Any] = {}
    window_start, window_steps, window_tokens = time.perf_counter(), 0, 0
    while step < shape.total_steps:
        lr = train_cfg.lr * schedule(step)
        engine.set_lr(lr)
        micro_batches = [next(batches) for _ in range(shape.accumulation)]
        values, grad_norm = engine.step(micro_batches)
        step_tokens = round(mean_over_ranks(sum(map(task.tokens, micro_batches)), env.device) * env.world_size)
        step, tokens, window_steps, window_tokens = step + 1, tokens + step_tokens, window_steps + 1, \
            window_tokens + step_tokens
        record = {**values, "lr": lr, "grad_norm": grad_norm, "tokens": tokens}
        if step % train_cfg.log_every == 0 or step == shape.total_steps:
            elapsed = time.perf_counter() - window_start
            tps = window_tokens / elapsed
            record.update(tokens_per_s=tps, step_s=elapsed / window_steps,
                          mfu=tps * flops_token / (env.world_size * peak) if peak else None)
            _log(rank, progress_line(step, shape.total_steps, record, task.progress_keys))
            window_start, window_steps, window_tokens = time.perf_counter(), 0, 0
        if step % train_cfg.eval_every == 0 or step == shape.total_steps:
            held_out = task.evaluate(engine.module, train_cfg, shape, env.device, dtype)
            if held_out:
                record.update(held_out)
                _log(rank, f"step {step}: " + ", ".join(HELD_OUT_LABELS.get(k, k + " {:.4f}").format(v)
                                                         for k, v in held_out.items() if isinstance(v, float)))
        metrics.log(step, record)
        summary.update(record)
        if step % train_cfg.save_every == 0 or step == shape.total_steps or step == first_stage_end:
            checkpoint.save(checkpoints, step, engine, state_at(step), rank, train_cfg.keep_checkpoints,
                            keep_forever=step == first_stage_end)
    metrics.close()
    summary.update(task.report())
    summary.update(stage=task.stage, steps=shape.total_steps, seq_len=shape.seq_len, batch_size=train_cfg.batch_size,
                   batch_tokens=batch_tokens, peak_lr=train_cfg.lr, flops_per_token=flops_token,
                   world_size=env.world_size, engine=train_cfg.engine,
                   seconds=round(time.perf_counter() - started, 3))
    if rank == 0:
        (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
