"""What SFT and DPO share: a run-file table on top of `[train]`'s keys, a starting model, chat data in memory.

Both start from a pretrained model (`init`: a checkpoint of ours or a Hugging
Face folder, `train.pretrained`), read conversations with the chat template of
`train.chat`, and run through the same trainer, engines, checkpoints and
metrics as pretraining (`train.trainer.run` with a task). Their tables take
every `[train]` key plus `init`, `epochs` and `chat_template`; the run length
is `epochs` over the examples unless `max_steps` is given.

Examples are whole conversations, padded to the longest in a micro-batch
(right padding: under causal attention no real token sees a pad, and pads
carry no loss), so examples never attend to each other. One longer than the
context is left out and counted (`removed_by_reason`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from crawl2model.core.config import check_keys, load_run_file
from crawl2model.core.errors import ConfigError
from crawl2model.scaling.runfile import toml_value
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train.chat import ChatTokenizer, load_chat_tokenizer, write_tokenizer_folder
from crawl2model.train.checkpoint import set_weights
from crawl2model.train.config import TrainConfig
from crawl2model.train.data import EpochOrder, RankSampler
from crawl2model.train.engine import Dist
from crawl2model.train.model import IGNORE
from crawl2model.train.pretrained import Pretrained
from crawl2model.train.trainer import Plan, plan

TOKENIZER_DIR = "tokenizer"  # OUTPUT/tokenizer: the tokenizer with the chat template the model learnt


@dataclass
class FinetuneConfig(TrainConfig):
    """`[train]`'s keys with fine-tuning defaults, plus where to start and for how long."""

    init: str | None = None  # checkpoint (step-*, run or checkpoints folder) or Hugging Face folder
    epochs: float | None = 1.0  # passes over the examples; max_steps, when given, decides instead
    chat_template: str | None = None  # Jinja; default: the tokenizer's own, else DeepSeek's (train.chat)
    lr_schedule: str = "cosine"
    warmup_steps: int = 10
    lr: float | None = 1e-5
    batch_size: int | None = 64
    save_every: int = 500
    eval_every: int = 100

    TABLE: ClassVar[str] = "finetune"

    def check_length(self) -> None:
        if self.total_tokens is not None:
            raise ConfigError(f"{self.TABLE}: the run length is epochs (or max_steps), not total_tokens")
        if self.max_steps is None and not (self.epochs and self.epochs > 0):
            raise ConfigError(f"{self.TABLE}: give epochs > 0 or max_steps")

    def validate(self) -> None:
        super().validate()
        if not self.init:
            raise ConfigError(f"{self.TABLE}.init is required: the checkpoint or Hugging Face folder to start from")
        if not self.data:
            raise ConfigError(f"{self.TABLE}.data is required: a JSONL file of examples")
        if self.lr is None or self.batch_size is None:
            raise ConfigError(f"{self.TABLE}: lr and batch_size are required (the scaling laws are for pretraining)")


def load_config(cls: type[FinetuneConfig], path: str | Path | None, presets: dict[str, dict[str, Any]],
                changes: dict[str, Any]) -> FinetuneConfig:
    """The run file's `[TABLE]` (a `preset = "..."` key first), then the flags' `changes`."""
    table = dict(load_run_file(path).get(cls.TABLE, {})) if path else {}
    preset = table.pop("preset", None)
    if preset is not None and preset not in presets:
        raise ConfigError(f"{path} [{cls.TABLE}]: unknown preset {preset!r} (known: {', '.join(presets)})")
    where = f"{path} [{cls.TABLE}]"
    values = {**(presets[preset] if preset else {}), **check_keys(table, cls, where), **changes}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        cfg = cls(**values)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from e
    cfg.validate()
    return cfg


def run_file(cfg: FinetuneConfig, header: str) -> str:
    """The resolved table as a run file; strings are written as JSON strings, which TOML reads
    the same (a chat template may hold newlines)."""
    lines = [f"# {line}" for line in header.splitlines()] + [f"[{cfg.TABLE}]"]
    lines += [f"{k} = {json.dumps(v, ensure_ascii=False) if isinstance(v, str) else toml_value(v)}"
              for k, v in dataclasses.asdict(cfg).items() if v is not None]
    return "\n".join(lines) + "\n"


def write_tokenizer(cfg: FinetuneConfig, out: Path) -> Path:
    """OUTPUT/tokenizer: the source tokenizer with the chat template the run trains with (rank 0, before training)."""
    return write_tokenizer_folder(cfg.tokenizer, out / TOKENIZER_DIR,
                                  load_chat_tokenizer(cfg.tokenizer, cfg.chat_template).template)


def encode(tok: ChatTokenizer, messages: list[dict[str, str]], max_tokens: int,
           last_only: bool = False) -> tuple[list[int], list[int]] | None:
    """(ids, labels) of a conversation, labels IGNORE except the assistant's tokens; None if too long."""
    ids, learnt = tok.encode_chat(messages, last_only=last_only)
    if len(ids) > max_tokens:
        return None
    return ids, [i if keep else IGNORE for i, keep in zip(ids, learnt)]


def pad(sequences: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids and labels (n, longest), right-padded: pads are never attended to and carry no loss."""
    width = max(len(ids) for ids, _ in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    for row, (i, lab) in enumerate(sequences):
        ids[row, : len(i)], labels[row, : len(lab)] = torch.tensor(i), torch.tensor(lab)
    return {"input_ids": ids, "labels": labels}


class _Indices(Dataset):
    """Global sample number -> example index, every example once per epoch (shuffled per epoch)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.order = n, EpochOrder(n, seed)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, sample: int) -> int:
        return self.order(sample)


def loader(n: int, collate: Callable[[list[int]], Any], train: TrainConfig, shape: Plan, consumed: int, rank: int,
           world_size: int) -> Iterator:
    """Endless micro-batches of this rank (`collate` turns example indices into tensors); the state is
    the samples consumed, as for pretraining, so a resume continues exactly."""
    sampler = RankSampler(consumed, train.batch_size, rank, world_size)
    return iter(DataLoader(_Indices(n, train.seed), batch_size=shape.micro_batch, sampler=sampler,
                           collate_fn=collate, num_workers=0))


class FinetuneTask:
    """The part of `train.trainer.Task` SFT and DPO share: the starting weights, the chat tokenizer,
    the step count from epochs."""

    stage = "finetune"
    progress_keys: tuple[str, ...] = ()

    def __init__(self, cfg: FinetuneConfig, source: Pretrained, out: Path) -> None:
        self.cfg, self.source, self.out = cfg, source, out
        self.tok = load_chat_tokenizer(cfg.tokenizer, cfg.chat_template)
        self.removed: dict[str, int] = {}
        self.docs_in = 0

    def n_examples(self) -> int:
        raise NotImplementedError

    def read(self, max_tokens: int) -> None:
        """Read and encode the data (examples of at most `max_tokens` tokens)."""
        raise NotImplementedError

    def prepare(self, model: ModelConfig, train: TrainConfig, world_size: int) -> tuple[TrainConfig, Plan]:
        train, shape = plan(model, train, world_size, steps=self.cfg.max_steps or 1)
        self.read(shape.seq_len + 1)
        if not self.n_examples():
            raise ConfigError(f"{self.cfg.data}: no example fits the context of {shape.seq_len} tokens")
        steps = self.cfg.max_steps or math.ceil(self.cfg.epochs * self.n_examples() / train.batch_size)
        # Checkpoints name the tokenizer with the chat template, so export-hf and generate find it.
        train = dataclasses.replace(train, tokenizer=str(self.out / TOKENIZER_DIR))
        return train, dataclasses.replace(shape, total_steps=steps)

    def start(self, model: torch.nn.Module, out: Path, env: Dist, dtype: torch.dtype) -> None:
        pass

    def init_weights(self, model: torch.nn.Module) -> None:
        set_weights(model, self.source.weights, self.source.source)
        self.source.weights = {}  # the model holds them now

    def run_file(self, model: ModelConfig, train: TrainConfig) -> str:
        return run_file(train, f"resolved run config (crawl2model {self.stage}); model {self.source.source}")

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["input_ids"][:, :-1].numel()

    def report(self) -> dict[str, Any]:
        return {"docs_in": self.docs_in, "docs_out": self.n_examples(), "removed_by_reason": self.removed,
                "init": str(self.source.source), "tokenizer": str(self.out / TOKENIZER_DIR)}
