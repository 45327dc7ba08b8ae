"""A training run's config and its run file; the model's shape is `scaling.shapes.ModelConfig`.

A run file is TOML with two tables:

```toml
[model]
preset = "deepseek-7b"   # optional; explicit fields below override the preset
seq_len = 2048

[train]
total_tokens = 2_000_000_000_000
# lr and batch_size left out: taken from the scaling laws (scaling.laws.resolve_hparams)
```

Defaults are the DeepSeek LLM paper's (arXiv 2401.02954, section 2.2): pre-norm
RMSNorm (eps 1e-6), SwiGLU, RoPE theta 1e4, untied embeddings, vocab 102,400,
init std 0.006, AdamW (0.9, 0.95, wd 0.1), clip 1.0, 2000 warm-up steps and the
multi-step schedule (x0.316 at 80% of the tokens, x0.1 at 90%).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from crawl2model.core.config import DEFAULT_SEED, check_keys, load_run_file
from crawl2model.core.errors import ConfigError
from crawl2model.scaling.runfile import run_file
from crawl2model.scaling.shapes import ModelConfig, get_preset

SCHEDULES = ("multi-step", "cosine")


@dataclass
class TrainConfig:
    """The `[train]` table of a run file.

    `lr` and `batch_size` (global, in sequences) may be left as None: the trainer
    then takes them from the paper's laws for this run's compute budget (see
    `scaling.laws.resolve_hparams`). The run length is `total_tokens` or
    `max_steps`; give one. `seq_len` None means the model's context length.
    """

    total_tokens: int | None = None
    max_steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    micro_batch_size: int | None = None
    seq_len: int | None = None
    warmup_steps: int = 2000
    lr_decay_points: tuple[float, ...] = (0.8, 0.9)
    lr_decay_factors: tuple[float, ...] = (0.316, 0.1)
    lr_schedule: str = "multi-step"  # the paper's pretraining schedule; "cosine": warm-up then cosine to 0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = DEFAULT_SEED
    data: str | None = None
    val_data: str | None = None
    output_dir: str | None = None
    log_every: int = 10
    eval_every: int = 1000
    save_every: int = 1000
    # Trainer settings (train/): how a run executes, not what it computes.
    engine: str = "deepspeed"  # "deepspeed" (ZeRO-1) or "torch" (DDP)
    deepspeed_config: str | None = None  # default infra/deepspeed/zero1.json
    dtype: str = "auto"  # "auto" = bf16 on GPU, fp32 on CPU; or "bf16", "fp32"
    attention: str = "auto"  # "auto" = flash-attn where usable, else SDPA; or "flash", "sdpa", "reference"
    activation_checkpointing: bool = False  # recompute each layer in backward: ~1/3 more compute, far less memory
    fused: bool = True  # train.fused's hand-written kernels (1.23x on CPU); false: the plain model of train.model
    eval_windows: int = 64  # held-out windows of seq_len scored at each evaluation
    tokenizer: str | None = None  # for bits-per-byte; default: the one named in the shards' manifest
    num_workers: int = 1  # DataLoader worker processes per rank
    keep_checkpoints: int = 2  # older step-* folders are deleted after a new one is complete
    peak_tflops: float | None = None  # accelerator peak for MFU; default: known GPUs' bf16 dense peak

    TABLE: ClassVar[str] = "train"  # the run file's table, named in error messages

    def check_length(self) -> None:
        if (self.total_tokens is None) == (self.max_steps is None):
            raise ConfigError(f"{self.TABLE}: give exactly one of total_tokens and max_steps")

    def validate(self) -> None:
        """Raise ConfigError on values no trainer could run with."""
        t = self.TABLE
        self.check_length()
        for name in ("total_tokens", "max_steps", "batch_size", "micro_batch_size", "seq_len"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ConfigError(f"{t}.{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"{t}.lr must be > 0, got {self.lr!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"{t}.warmup_steps must be >= 0, got {self.warmup_steps}")
        if len(self.lr_decay_points) != len(self.lr_decay_factors):
            raise ConfigError(f"{t}.lr_decay_points and lr_decay_factors must have the same length")
        if list(self.lr_decay_points) != sorted(self.lr_decay_points) or any(
            not 0 < p < 1 for p in self.lr_decay_points
        ):
            raise ConfigError(f"{t}.lr_decay_points must be increasing fractions in (0, 1), got {self.lr_decay_points}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"{t}.beta1 and beta2 must be in [0, 1)")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError(f"{t}.grad_clip and weight_decay must be >= 0")
        choices = {"engine": ("deepspeed", "torch"), "dtype": ("auto", "bf16", "fp32"),
                   "attention": ("auto", "flash", "sdpa", "reference"), "lr_schedule": SCHEDULES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{t}.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("log_every", "eval_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{t}.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.eval_windows < 0 or self.num_workers < 0:
            raise ConfigError(f"{t}.eval_windows and num_workers must be >= 0")
        for name in ("activation_checkpointing", "fused"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{t}.{name} must be true or false, got {getattr(self, name)!r}")
        if self.micro_batch_size and self.batch_size and self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"{t}.batch_size ({self.batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})"
            )


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """Dataclass from a TOML table; unknown keys name the key, the table and the file."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in check_keys(table, cls, where).items()}
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from e


def model_from_table(table: dict[str, Any], where: str = "[model]") -> ModelConfig:
    """`preset = "..."` gives the starting point; every other key overrides it."""
    table = dict(table)
    preset = table.pop("preset", None)
    if preset is not None:
        base = dataclasses.asdict(get_preset(preset))
        unknown = [k for k in table if k.replace("-", "_") not in base]
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: preset, {', '.join(sorted(base))})")
        table = {**base, **{k.replace("-", "_"): v for k, v in table.items()}}
    model = _build(ModelConfig, table, where)
    model.validate()
    return model


def load_run_config(path: str | Path, preset: str | None = None) -> tuple[ModelConfig, TrainConfig]:
    """Read a run file's `[model]` and `[train]` tables (the run file may hold every stage's table).

    `preset` stands in for a missing `[model]` table; explicit `[model]` fields override it.
    """
    p = Path(path)
    doc = load_run_file(p)
    if "model" not in doc and not preset:
        raise ConfigError(f"{p}: missing [model] table (or give --preset)")
    table = {**({"preset": preset} if preset else {}), **doc.get("model", {})}
    model = model_from_table(table, f"{p} [model]")
    train = _build(TrainConfig, doc.get("train", {}), f"{p} [train]")
    train.validate()
    return model, train


def dump_run_config(model: ModelConfig, train: TrainConfig, header: str = "") -> str:
    """A complete, explicit run file (no preset), so it still means the same after presets change.

    `header` is written as `#` comments at the top (provenance: which run, which budget).
    """
    return run_file(dataclasses.asdict(model), dataclasses.asdict(train), header)
