"""Direct preference optimisation (Rafailov et al., 2023): `crawl2model dpo --config run.toml`.

```toml
[dpo]
init = "runs/sft"            # the SFT model: the policy's start and the frozen reference
data = "pairs.jsonl"         # {"prompt" | "messages", "chosen", "rejected"} per line
beta = 0.1
```

For each pair the log-probability of each answer given the prompt (a sum over
the answer's tokens: the template's `Assistant: ... <eos>` span) is taken
under the policy and under the reference, and

    loss = -log σ(β · [(log π(chosen) - log π_ref(chosen)) - (log π(rejected) - log π_ref(rejected))])

The reference is the starting model, so its log-probs are computed once,
under no_grad, before the first step (with the starting weights, also when a
run resumes) and travel with the pairs; no second model is held. Logged per
step: the implicit rewards β·(log π - log π_ref) of chosen and rejected
answers, their margin, and the reward accuracy (the share of pairs whose
chosen reward is higher). The paper's preset: lr 5e-6, batch 512, one epoch,
warm-up then cosine; it does not state β, so β is TRL's and the DPO paper's
0.1.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F

from crawl2model.core.errors import ConfigError
from crawl2model.train.chat import read_preferences
from crawl2model.train.config import TrainConfig
from crawl2model.train.engine import Dist
from crawl2model.train.finetune import FinetuneConfig, FinetuneTask, encode, loader, pad
from crawl2model.train.trainer import Plan

PRESETS = {"deepseek": {"lr": 5e-6, "batch_size": 512, "epochs": 1.0}}


@dataclass
class DPOConfig(FinetuneConfig):
    beta: float = 0.1
    lr: float | None = 5e-6
    batch_size: int | None = 512
    epochs: float | None = 1.0

    TABLE: ClassVar[str] = "dpo"

    def validate(self) -> None:
        super().validate()
        if not self.beta > 0:
            raise ConfigError(f"dpo.beta must be > 0, got {self.beta!r}")
        if self.val_data:
            raise ConfigError("dpo.val_data: held-out preference pairs are not evaluated yet; leave it out")


CONFIG = DPOConfig


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """The DPO loss of sequence log-probs (pairs,), with the rewards and their accuracy and margin."""
    chosen, rejected = beta * (policy_chosen - ref_chosen), beta * (policy_rejected - ref_rejected)
    margin = chosen - rejected
    return {"loss": -F.logsigmoid(margin).mean(),
            "reward_accuracy": (margin > 0).float().mean(), "reward_margin": margin.detach().mean(),
            "reward_chosen": chosen.detach().mean(), "reward_rejected": rejected.detach().mean(),
            "logp_chosen": policy_chosen.detach().mean(), "logp_rejected": policy_rejected.detach().mean()}


def sequence_logps(forward: Callable[..., torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ log p(answer token) per sequence (the labels that are not IGNORE), a chunk of rows at a time."""
    return -forward(batch["input_ids"][:, :-1], batch["labels"][:, 1:], reduction="none").sum(-1)


class DPOTask(FinetuneTask):
    stage = "dpo"
    progress_keys = ("reward_accuracy", "reward_margin")

    def read(self, max_tokens: int) -> None:
        pairs = read_preferences(self.cfg.data)
        self.docs_in = len(pairs)
        self.pairs = []
        for prompt, chosen, rejected in pairs:
            both = [encode(self.tok, [*prompt, {"role": "assistant", "content": answer}], max_tokens, last_only=True)
                    for answer in (chosen, rejected)]
            if None not in both:
                self.pairs.append(both)
        if len(self.pairs) < self.docs_in:
            self.removed = {"longer_than_context": self.docs_in - len(self.pairs)}
        self.reference = torch.zeros(len(self.pairs), 2)

    def n_examples(self) -> int:
        return len(self.pairs)

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The chosen answers of the pairs, then their rejected answers; with the reference log-probs."""
        batch = pad([self.pairs[i][0] for i in indices] + [self.pairs[i][1] for i in indices], self.tok.eos_id)
        batch["reference"] = self.reference[indices].T.flatten()
        return batch

    @torch.no_grad()
    def start(self, model: torch.nn.Module, out: Path, env: Dist, dtype: torch.dtype) -> None:
        """The reference log-probs of every pair: this rank's share, then summed over ranks."""
        started = model.training
        model.eval()
        step = max(1, self._micro_batch)
        for first in range(env.rank * step, len(self.pairs), env.world_size * step):
            indices = list(range(first, min(first + step, len(self.pairs))))
            batch = {k: v.to(env.device) for k, v in self.collate(indices).items() if k != "reference"}
            with torch.autocast(env.device.type, dtype=dtype, enabled=dtype != torch.float32):
                logps = sequence_logps(model, batch).float().cpu()
            self.reference[indices] = logps.view(2, -1).T
        model.train(started)
        if env.world_size > 1:
            reference = self.reference.to(env.device)
            dist.all_reduce(reference)
            self.reference = reference.cpu()

    def prepare(self, model, train: TrainConfig, world_size: int) -> tuple[TrainConfig, Plan]:
        train, shape = super().prepare(model, train, world_size)
        self._micro_batch = shape.micro_batch
        return train, shape

    def objective(self, forward: Callable[..., torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        policy = sequence_logps(forward, batch)
        (pc, pr), (rc, rr) = policy.chunk(2), batch["reference"].chunk(2)
        return dpo_loss(pc, pr, rc, rr, self.cfg.beta)

    def loader(self, train: TrainConfig, shape: Plan, consumed: int, rank: int, world_size: int) -> Iterator:
        return loader(len(self.pairs), self.collate, train, shape, consumed, rank, world_size)

    def evaluate(self, module: torch.nn.Module, train: TrainConfig, shape: Plan, device: torch.device,
                 dtype: torch.dtype) -> dict[str, Any]:
        return {}


TASK = DPOTask
