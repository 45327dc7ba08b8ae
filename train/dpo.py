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
chosen reward is higher); with `val_data`, the loss, accuracy and margin of
held-out pairs at each evaluation. The paper's preset: lr 5e-6, batch 512, one epoch,
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
        self.pairs = self._encode(pairs, max_tokens)
        if len(self.pairs) < self.docs_in:
            self.removed = {"longer_than_context": self.docs_in - len(self.pairs)}
        self.val = self._encode(read_preferences(self.cfg.val_data), max_tokens) if self.cfg.val_data else []
        self.reference, self.val_reference = torch.zeros(len(self.pairs), 2), torch.zeros(len(self.val), 2)

    def _encode(self, pairs: list, max_tokens: int) -> list:
        """[(chosen ids, labels), (rejected ids, labels)] of each pair whose two sequences fit."""
        out = []
        for prompt, chosen, rejected in pairs:
            both = [encode(self.tok, [*prompt, {"role": "assistant", "content": answer}], max_tokens, last_only=True)
                    for answer in (chosen, rejected)]
            if None not in both:
                out.append(both)
        return out

    def n_examples(self) -> int:
        return len(self.pairs)

    def collate(self, indices: list[int], held_out: bool = False) -> dict[str, torch.Tensor]:
        """The chosen answers of the pairs, then their rejected answers; with the reference log-probs."""
        pairs, reference = (self.val, self.val_reference) if held_out else (self.pairs, self.reference)
        batch = pad([pairs[i][0] for i in indices] + [pairs[i][1] for i in indices], self.tok.eos_id)
        batch["reference"] = reference[indices].T.flatten()
        return batch

    def _batches(self, n: int, held_out: bool, micro_batch: int, device: torch.device) -> Iterator:
        """(indices, batch on the device) of this rank's share of n pairs; ranks take turns by micro-batch."""
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        for first in range(rank * micro_batch, n, world * micro_batch):
            indices = list(range(first, min(first + micro_batch, n)))
            yield indices, {k: v.to(device) for k, v in self.collate(indices, held_out).items()}

    @torch.no_grad()
    def start(self, model: torch.nn.Module, out: Path, env: Dist, dtype: torch.dtype) -> None:
        """The reference log-probs of every pair (and held-out pair): this rank's share, summed over ranks."""
        started = model.training
        model.eval()
        for held_out, reference in ((False, self.reference), (True, self.val_reference)):
            for indices, batch in self._batches(len(reference), held_out, self._micro_batch, env.device):
                with torch.autocast(env.device.type, dtype=dtype, enabled=dtype != torch.float32):
                    reference[indices] = sequence_logps(model, batch).float().cpu().view(2, -1).T
            if env.world_size > 1:
                summed = reference.to(env.device)
                dist.all_reduce(summed)
                reference.copy_(summed.cpu())
        model.train(started)

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

    @torch.no_grad()
    def evaluate(self, module: torch.nn.Module, train: TrainConfig, shape: Plan, device: torch.device,
                 dtype: torch.dtype) -> dict[str, Any]:
        """DPO loss, reward accuracy and margin on the held-out pairs (all ranks together)."""
        if not self.val:
            return {}
        keys = ("loss", "reward_accuracy", "reward_margin")
        sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=device)  # per-pair sums, pairs
        was_training = module.training
        module.eval()
        for indices, batch in self._batches(len(self.val), True, shape.micro_batch, device):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                policy = sequence_logps(module, batch).float()
            metrics = dpo_loss(*policy.chunk(2), *batch["reference"].chunk(2), self.cfg.beta)
            sums += torch.tensor([metrics[k].item() * len(indices) for k in keys] + [len(indices)],
                                 dtype=torch.float64, device=device)
        module.train(was_training)
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums)
        return {f"val_{k}": (sums[i] / sums[-1]).item() for i, k in enumerate(keys)}


TASK = DPOTask
