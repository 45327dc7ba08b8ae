"""One definition of a model and a training run, shared by the scaling laws and the trainer.

A run file is TOML with two tables:

```toml
[model]
preset = "deepseek-7b"   # optional; explicit fields below override the preset
seq_len = 2048

[train]
total_tokens = 2_000_000_000_000
# lr and batch_size left out: taken from the scaling laws (train.scaling.resolve_hparams)
```

Defaults are the DeepSeek LLM paper's (arXiv 2401.02954, section 2.2): pre-norm
RMSNorm (eps 1e-6), SwiGLU, RoPE theta 1e4, untied embeddings, vocab 102,400,
init std 0.006, AdamW (0.9, 0.95, wd 0.1), clip 1.0, 2000 warm-up steps and the
multi-step schedule (x0.316 at 80% of the tokens, x0.1 at 90%).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawl2model.core.errors import ConfigError

from crawl2model.core.config import load_toml

DEFAULT_VOCAB = 102_400


@dataclass
class ModelConfig:
    """A decoder-only LLaMA-style transformer as DeepSeek LLM builds it.

    `n_kv_heads < n_heads` is grouped-query attention (the 67B model uses 8 KV
    heads for 64 query heads); equal counts are plain multi-head attention.
    `ffn_dim` is the SwiGLU hidden width (three matrices: gate, up, down).
    """

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    vocab_size: int = DEFAULT_VOCAB
    seq_len: int = 4096
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    init_std: float = 0.006
    tie_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_dim(self) -> int:
        """Width of the K (and of the V) projection output: smaller than d_model under GQA."""
        return self.n_kv_heads * self.head_dim

    def validate(self) -> None:
        """Raise ConfigError on shapes the model cannot build, naming the offending fields."""
        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size", "seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"model.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(
                f"model.n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads}) for grouped-query attention"
            )
        if self.head_dim % 2:
            raise ConfigError(f"model head_dim = d_model/n_heads = {self.head_dim} must be even for RoPE")
        for name in ("rope_theta", "norm_eps", "init_std"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"model.{name} must be > 0, got {getattr(self, name)!r}")

    def n_params(self, non_embedding: bool = False) -> int:
        """Exact trainable parameter count of our architecture (no biases anywhere).

        Per layer: two RMSNorm weights (2d), Q and O projections (2·d·d), K and V
        projections (2·d·kv_dim, smaller under GQA) and SwiGLU's three matrices
        (3·d·ffn). Plus the final RMSNorm (d). Embeddings are the input table and,
        unless tied, the output projection (vocab·d each); `non_embedding=True`
        leaves both out, as the scaling literature does.
        """
        d = self.d_model
        per_layer = 2 * d + 2 * d * d + 2 * d * self.kv_dim + 3 * d * self.ffn_dim
        body = self.n_layers * per_layer + d
        if non_embedding:
            return body
        embeddings = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return body + embeddings


def swiglu_width(d_model: int, multiple_of: int | None = None) -> int:
    """SwiGLU hidden width keeping the FFN's parameters at 8·d² (LLaMA's 2/3 of 4d, rounded up).

    With three matrices of d x 8d/3 the FFN costs what a 4d-wide two-matrix FFN
    costs, so the paper's M = 72·n·d² + ... stays exact up to the rounding. LLaMA
    and DeepSeek 7B round to 256 (d 4096 -> 11008); small models round to 64 so the
    rounding does not inflate them.
    """
    multiple_of = multiple_of or (256 if d_model >= 1024 else 64)
    return multiple_of * math.ceil(8 * d_model / 3 / multiple_of)


# Small presets are sized for CPU tests and benchmarks. With a 102,400 vocab the
# embeddings dominate small models, so each comment gives both counts.
PRESETS: dict[str, ModelConfig] = {
    # DeepSeek LLM 7B (paper Table 2): 6.91e9 parameters.
    "deepseek-7b": ModelConfig(n_layers=30, d_model=4096, n_heads=32, n_kv_heads=32, ffn_dim=11008),
    # DeepSeek LLM 67B: deeper than LLaMA-2 70B, GQA with 8 KV heads: 67.4e9 parameters.
    "deepseek-67b": ModelConfig(n_layers=95, d_model=8192, n_heads=64, n_kv_heads=8, ffn_dim=22016),
    # tiny: trains on a CPU in seconds. 0.1M non-embedding parameters, 13.2M in
    # total because the two 102,400 x 64 embedding tables are most of it. Uses
    # GQA (4 query heads, 2 KV heads) so tests exercise the grouped path.
    "tiny": ModelConfig(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, ffn_dim=192, seq_len=256),
    # small: GPT-2-small shape, 85M non-embedding, 242M total parameters.
    "small": ModelConfig(n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, ffn_dim=2048, seq_len=2048),
    # 1b: 0.82B non-embedding, 1.24B total; the single-GPU MFU benchmark model.
    "1b": ModelConfig(n_layers=16, d_model=2048, n_heads=16, n_kv_heads=16, ffn_dim=5632, seq_len=4096),
}


def get_preset(name: str) -> ModelConfig:
    """A fresh copy of a preset (callers may modify it)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset '{name}' (known: {', '.join(PRESETS)})")
    return dataclasses.replace(PRESETS[name])


@dataclass
class TrainConfig:
    """The `[train]` table of a run file.

    `lr` and `batch_size` (global, in sequences) may be left as None: the trainer
    then takes them from the paper's laws for this run's compute budget (see
    `train.scaling.resolve_hparams`). The run length is `total_tokens` or
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
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
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
    eval_windows: int = 64  # held-out windows of seq_len scored at each evaluation
    tokenizer: str | None = None  # for bits-per-byte; default: the one named in the shards' manifest
    num_workers: int = 1  # DataLoader worker processes per rank
    keep_checkpoints: int = 2  # older step-* folders are deleted after a new one is complete
    peak_tflops: float | None = None  # accelerator peak for MFU; default: known GPUs' bf16 dense peak

    def validate(self) -> None:
        """Raise ConfigError on values no trainer could run with."""
        if (self.total_tokens is None) == (self.max_steps is None):
            raise ConfigError("train: give exactly one of total_tokens and max_steps")
        for name in ("total_tokens", "max_steps", "batch_size", "micro_batch_size", "seq_len"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ConfigError(f"train.{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if len(self.lr_decay_points) != len(self.lr_decay_factors):
            raise ConfigError("train.lr_decay_points and lr_decay_factors must have the same length")
        if list(self.lr_decay_points) != sorted(self.lr_decay_points) or any(
            not 0 < p < 1 for p in self.lr_decay_points
        ):
            raise ConfigError(f"train.lr_decay_points must be increasing fractions in (0, 1), got {self.lr_decay_points}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError("train.beta1 and beta2 must be in [0, 1)")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError("train.grad_clip and weight_decay must be >= 0")
        choices = {"engine": ("deepspeed", "torch"), "dtype": ("auto", "bf16", "fp32"),
                   "attention": ("auto", "flash", "sdpa", "reference")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("log_every", "eval_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.eval_windows < 0 or self.num_workers < 0:
            raise ConfigError("train.eval_windows and num_workers must be >= 0")
        if not isinstance(self.activation_checkpointing, bool):
            raise ConfigError(f"train.activation_checkpointing must be true or false, got {self.activation_checkpointing!r}")
        if self.micro_batch_size and self.batch_size and self.batch_size % self.micro_batch_size:
            raise ConfigError(
                f"train.batch_size ({self.batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})"
            )


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """Dataclass from a TOML table; unknown keys name the key, the table and the file."""
    known = _fields(cls)
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
        values[name] = tuple(value) if isinstance(value, list) else value
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


def load_run_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """Read a run file's `[model]` and `[train]` tables; anything else in it is an error."""
    p = Path(path)
    doc = load_toml(p)
    unknown = sorted(set(doc) - {"model", "train"})
    if unknown:
        raise ConfigError(f"{p}: unknown table '[{unknown[0]}]' (known: [model], [train])")
    if "model" not in doc:
        raise ConfigError(f"{p}: missing [model] table")
    model = model_from_table(doc["model"], f"{p} [model]")
    train = _build(TrainConfig, doc.get("train", {}), f"{p} [train]")
    train.validate()
    return model, train


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write non-finite value {value} to a run file")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_table(name: str, obj: Any) -> list[str]:
    lines = [f"[{name}]"]
    for key in _fields(type(obj)):
        value = getattr(obj, key)
        if value is not None:  # TOML has no null: an absent key means "default / from the laws"
            lines.append(f"{key} = {_toml_value(value)}")
    return lines


def dump_run_config(model: ModelConfig, train: TrainConfig, header: str = "") -> str:
    """A complete, explicit run file (no preset), so it still means the same after presets change.

    `header` is written as `#` comments at the top (provenance: which plan, which budget).
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += _toml_table("model", model) + [""] + _toml_table("train", train)
    return "\n".join(lines) + "\n"
