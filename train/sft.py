"""Supervised fine-tuning on conversations: `crawl2model sft --config run.toml`.

```toml
[sft]
preset = "deepseek-7b"       # the paper's: 4 epochs at lr 1e-5 (deepseek-67b: 2 epochs at 5e-6)
init = "runs/base/checkpoints"   # or an exported Hugging Face folder
data = "chat.jsonl"          # {"messages": [{"role": ..., "content": ...}, ...]} per line
```

The loss is the mean cross-entropy of the assistant's tokens only (the
template's `Assistant: ... <eos>` spans, `train.chat`); the user's and system
turns are context. The paper (section 4) gives the SFT epochs and learning
rates; its batch size and schedule for SFT are not stated, so the defaults
(64 conversations, warm-up then cosine) are ours.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist

from crawl2model.train.chat import read_conversations
from crawl2model.train.config import TrainConfig
from crawl2model.train.engine import mean_over_ranks
from crawl2model.train.finetune import FinetuneConfig, FinetuneTask, encode, loader, pad
from crawl2model.train.model import IGNORE
from crawl2model.train.trainer import Plan

PRESETS = {"deepseek-7b": {"epochs": 4.0, "lr": 1e-5}, "deepseek-67b": {"epochs": 2.0, "lr": 5e-6}}


@dataclass
class SFTConfig(FinetuneConfig):
    epochs: float | None = 4.0
    lr: float | None = 1e-5

    TABLE: ClassVar[str] = "sft"


def sft_objective(forward: Callable[..., torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean next-token loss over the targets the assistant said (the rest are IGNORE), weighted so
    that the step's loss is the mean over all of its assistant tokens (`weigh`)."""
    return {"loss": forward(batch["input_ids"][:, :-1], batch["labels"][:, 1:]) * batch["weight"]}


def weigh(step: list[dict[str, torch.Tensor]], world_size: int) -> None:
    """Give each micro-batch of an optimizer step the weight that turns the engines' average of
    micro-batch means (over micro-batches and ranks) into the mean over the step's assistant tokens.

    Conversations differ in length, so micro-batches (and ranks) hold different numbers of
    learnt tokens; unweighted, a token's say would depend on how the batch was split."""
    counts = [int((b["labels"][:, 1:] != IGNORE).sum()) for b in step]
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    total = mean_over_ranks(float(sum(counts)), device) * world_size
    for batch, count in zip(step, counts):
        batch["weight"] = torch.tensor(count * len(step) * world_size / total)


CONFIG = SFTConfig


class SFTTask(FinetuneTask):
    stage = "sft"
    objective = staticmethod(sft_objective)

    def read(self, max_tokens: int) -> None:
        conversations = read_conversations(self.cfg.data)
        self.docs_in = len(conversations)
        self.examples = self._encode(conversations, max_tokens)
        self.val = self._encode(read_conversations(self.cfg.val_data), max_tokens) if self.cfg.val_data else []
        if len(self.examples) < self.docs_in:
            self.removed = {"longer_than_context": self.docs_in - len(self.examples)}

    def _encode(self, conversations: list, max_tokens: int) -> list[tuple[list[int], list[int]]]:
        return [e for e in (encode(self.tok, c, max_tokens) for c in conversations) if e is not None]

    def n_examples(self) -> int:
        return len(self.examples)

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return pad([self.examples[i] for i in indices], self.tok.eos_id)

    def loader(self, train: TrainConfig, shape: Plan, consumed: int, rank: int, world_size: int) -> Iterator:
        batches = loader(len(self.examples), self.collate, train, shape, consumed, rank, world_size)
        while True:  # the trainer takes `accumulation` micro-batches per step: weigh them together
            step = [next(batches) for _ in range(shape.accumulation)]
            weigh(step, world_size)
            yield from step

    @torch.no_grad()
    def evaluate(self, module: torch.nn.Module, train: TrainConfig, shape: Plan, device: torch.device,
                 dtype: torch.dtype) -> dict[str, Any]:
        """Mean loss of the assistant's tokens of the held-out conversations (all ranks together)."""
        if not self.val:
            return {}
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        mine = self.val[rank::world]
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # nll, tokens
        was_training = module.training
        module.eval()
        for i in range(0, len(mine), shape.micro_batch):
            batch = pad(mine[i : i + shape.micro_batch], self.tok.eos_id)
            ids, labels = batch["input_ids"].to(device), batch["labels"][:, 1:].to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                sums[0] += module(ids[:, :-1], labels, reduction="none").double().sum()
            sums[1] += (labels != IGNORE).sum()
        module.train(was_training)
        if world > 1:
            dist.all_reduce(sums)
        return {"val_loss": (sums[0] / sums[1]).item(), "val_tokens": int(sums[1])}


TASK = SFTTask
