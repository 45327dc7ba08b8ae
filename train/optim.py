"""AdamW parameter groups, the paper's multi-step learning-rate schedule, and cosine for fine-tuning.

Multi-step rather than cosine (paper section 2.3): the rate warms up linearly to
its peak, stays there, and drops to x0.316 once 80% of the training tokens have
been consumed and to x0.1 at 90%. Its point is continual training: the first
stage (80% of a run) is the same for any longer run with the same peak rate and
batch, so a longer run can start from the first stage's last checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from crawl2model.train.config import TrainConfig


@dataclass
class MultiStepSchedule:
    """lr multiplier at optimizer step `step` (0-based: step 0 is the first update).

    Warm-up gives step s the factor (s+1)/warmup_steps, so the first update is
    not wasted at lr 0 and step warmup_steps-1 reaches the peak. A decay point p
    applies from the first step that starts with at least p·total_tokens already
    consumed: step ceil(p·total_steps) when every step consumes the same batch.
    A plain object (not a closure) so torch's LambdaLR saves it in checkpoints.
    """

    warmup_steps: int
    total_steps: int
    decay_points: tuple[float, ...]
    decay_factors: tuple[float, ...]

    def boundaries(self) -> list[int]:
        # round() guards against p·total_steps landing a hair above an integer (0.8·40 = 32.000000000000004).
        return [math.ceil(round(p * self.total_steps, 9)) for p in self.decay_points]

    def __call__(self, step: int) -> float:
        factor = 1.0
        for boundary, decay in zip(self.boundaries(), self.decay_factors):
            if step >= boundary:
                factor = decay
        if step < self.warmup_steps:
            factor *= (step + 1) / self.warmup_steps
        return factor


@dataclass
class CosineSchedule:
    """Linear warm-up as in `MultiStepSchedule`, then cosine from the peak to 0 at the last step:
    the paper's DPO schedule ("warm-up then cosine"). No stage boundary to continue from."""

    warmup_steps: int
    total_steps: int

    def boundaries(self) -> list[int]:
        return []

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


def schedule_for(train: TrainConfig, total_steps: int) -> MultiStepSchedule | CosineSchedule:
    if train.lr_schedule == "cosine":
        return CosineSchedule(train.warmup_steps, total_steps)
    return MultiStepSchedule(train.warmup_steps, total_steps, tuple(train.lr_decay_points),
                             tuple(train.lr_decay_factors))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices (projections and embeddings), none on norm weights.

    Decaying a norm's gain pulls it toward zero for no regularising benefit; the
    usual rule is "decay every tensor with two or more dimensions"."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: torch.nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """torch AdamW (the fused kernel: one pass over each tensor, CPU or CUDA) at the peak lr; the schedule scales it."""
    return torch.optim.AdamW(param_groups(model, train.weight_decay), lr=train.lr,
                             betas=(train.beta1, train.beta2), eps=train.eps, fused=True)
