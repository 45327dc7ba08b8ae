"""The model's shape: what the scaling laws plan and the trainer builds.

A shape is plain numbers (depth, width, heads, FFN width, vocabulary, context),
so planning a sweep needs no torch; `train.model` turns one into a network.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from crawl2model.core.errors import ConfigError

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
