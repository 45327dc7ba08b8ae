"""The DeepSeek LLM / LLaMA decoder, in one file you can read in one sitting.

    tokens -> embedding -> n_layers x [x + Attn(RMSNorm(x)); x + SwiGLU(RMSNorm(x))] -> RMSNorm -> output

- Pre-norm RMSNorm (eps 1e-6), normalising in fp32 as LLaMA does.
- Attention: grouped-query (n_kv_heads divides n_heads), RoPE (θ 1e4) on Q and
  K, causal, through `train.attention.attend` (flash-attn on GPU, SDPA else).
  RoPE pairs dimension i with i + head_dim/2 (rotate-half), the Hugging Face
  Llama convention, so `train.export_hf` only splits and renames tensors.
- SwiGLU FFN: w2(silu(x·w1) * x·w3).
- Untied input embedding and output projection; every weight N(0, 0.006²),
  norm weights 1 (paper section 2.2). No biases anywhere.
- Q, K and V come from one matmul (`wqkv`, rows q|k|v), the SwiGLU gate and up
  projections from another (`w13`, rows w1|w3).

The functions below are the definition. `fused=True` swaps four of them for the
hand-written kernels of `train.fused` (same results, less memory traffic; the
tests hold the two equal on the loss and on every parameter's gradient).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from crawl2model.scaling.flops import flops_per_token
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train import fused as fused_kernels
from crawl2model.train.attention import attend

IGNORE = -100  # a target that adds no loss: SFT's prompt tokens, padding (F.cross_entropy's ignore_index)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # fp32 statistics even under bf16: the variance of a 4096-wide row overflows bf16's precision.
    return F.rms_norm(x.float(), weight.shape, weight.float(), eps).to(x.dtype)


def rope_cache(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (seq_len, head_dim/2): dimension i pairs with i + head_dim/2 (rotate-half RoPE)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Each pair (x1, x2) of the two halves of the last dimension rotated by its position's angle."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def split_rope(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int,
               n_kv_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, T, heads q|k|v, D) -> q and k rotated, and v."""
    q, k, v = qkv.split([n_heads, n_kv_heads, n_kv_heads], dim=2)
    return rotate(q, cos, sin), rotate(k, cos, sin), v


def swiglu(h: torch.Tensor) -> torch.Tensor:
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


def cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of hidden (N, d): logits, then cross-entropy in fp32."""
    return F.cross_entropy(F.linear(hidden, weight).float(), targets)


@dataclass(frozen=True)
class Kernels:
    rms_norm: Callable
    split_rope: Callable
    swiglu: Callable
    loss: Callable  # (hidden (N, d), output weight, targets (N,)) -> mean cross-entropy


PLAIN = Kernels(rms_norm, split_rope, swiglu, cross_entropy)
FUSED = Kernels(fused_kernels.rms_norm, fused_kernels.split_rope, fused_kernels.swiglu,
                fused_kernels.linear_cross_entropy)


def token_nll(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:
    """-log p(target) of each row of hidden (N, d), `rows` at a time; 0 where the target is IGNORE.

    The full (N, vocab) logits never exist. With grad mode on, each chunk is
    recomputed in backward (activation checkpointing) rather than kept."""
    def chunk_nll(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(F.linear(h, weight).float(), t, ignore_index=IGNORE, reduction="none")

    grad = torch.is_grad_enabled()
    return torch.cat([checkpoint(chunk_nll, hidden[s : s + rows], targets[s : s + rows], use_reentrant=False)
                      if grad else chunk_nll(hidden[s : s + rows], targets[s : s + rows])
                      for s in range(0, hidden.shape[0], rows)])


class KVCache:
    """Keys and values of the positions seen so far, every layer, for generation."""

    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (cfg.n_layers, batch, max_len, cfg.n_kv_heads, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions already stored; the next token's position

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's k, v (B, t, H_kv, D) to `layer`; returns every position's."""
        end = self.length + k.shape[1]
        self.k[layer, :, self.length : end] = k
        self.v[layer, :, self.length : end] = v
        return self.k[layer, :, :end], self.v[layer, :, :end]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float, kernels: Kernels) -> None:
        super().__init__()
        self.eps, self.kernels = eps, kernels
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kernels.rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: str, layer: int, kernels: Kernels) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.backend, self.layer, self.kernels = backend, layer, kernels
        self.wqkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * cfg.kv_dim, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        """`cos`/`sin` are the tables of x's positions (T, 1, D/2)."""
        b, t, d = x.shape
        qkv = self.wqkv(x).view(b, t, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        q, k, v = self.kernels.split_rope(qkv, cos.to(qkv.dtype), sin.to(qkv.dtype), self.n_heads, self.n_kv_heads)
        causal = cache is None or cache.length == 0
        if cache is not None:
            if not causal and t > 1:
                raise ValueError("after the prompt, generation feeds one token at a time")
            k, v = cache.update(self.layer, k, v)
        return self.wo(attend(q, k, v, self.backend, causal=causal).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig, kernels: Kernels) -> None:
        super().__init__()
        self.kernels = kernels
        self.w13 = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.kernels.swiglu(self.w13(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: str, layer: int, kernels: Kernels) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps, kernels)
        self.attn = Attention(cfg, backend, layer, kernels)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps, kernels)
        self.ffn = SwiGLU(cfg, kernels)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, cache)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """`recompute=True` keeps only each layer's input for backward and recomputes the rest there
    (activation checkpointing): ~1/3 more compute for the activations of one layer instead of all.
    `fused=True` uses the kernels of `train.fused`."""

    def __init__(self, cfg: ModelConfig, attention: str = "auto", recompute: bool = False,
                 fused: bool = False) -> None:
        super().__init__()
        cfg.validate()
        self.cfg, self.recompute = cfg, recompute
        self.kernels = FUSED if fused else PLAIN
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, attention, i, self.kernels) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps, self.kernels)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        cos, sin = rope_cache(cfg.head_dim, cfg.seq_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=self.cfg.init_std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def hidden(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final normed hidden states (B, T, d); with `cache`, of positions cache.length onwards."""
        start = cache.length if cache is not None else 0
        if start + tokens.shape[1] > self.cfg.seq_len:
            raise ValueError(f"sequence of {start + tokens.shape[1]} tokens exceeds the model's context "
                             f"{self.cfg.seq_len}")
        positions = slice(start, start + tokens.shape[1])
        cos, sin = self.rope_cos[positions, None, :], self.rope_sin[positions, None, :]
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            if self.recompute and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, use_reentrant=False)
            else:
                x = layer(x, cos, sin, cache)
        if cache is not None:
            cache.length += tokens.shape[1]
        return self.norm(x)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None,
                reduction: str = "mean") -> torch.Tensor:
        """Logits (B, T, vocab); with `targets` (B, T) the mean next-token cross-entropy (fp32) over
        the targets that are not IGNORE, or with reduction="none" each position's -log p(target)
        (B, T; 0 at IGNORE), computed a chunk at a time: what evaluation and log-probs use."""
        x = self.hidden(tokens)
        if targets is None:
            return self.output(x)
        weight = self.output.weight
        if reduction == "none":
            rows = max(256, (1 << 24) // self.cfg.vocab_size)  # ~64 MB of fp32 logits at a time
            return token_nll(x.flatten(0, 1), weight, targets.flatten(), rows).view(targets.shape)
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        x, targets = x.flatten(0, 1), targets.flatten()
        keep = targets != IGNORE
        if not keep.all():
            x, targets = x[keep], targets[keep]
        return self.kernels.loss(x, weight, targets)


def train_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token for MFU: the exact non-embedding count plus the output projection (6·d·vocab).

    The input embedding is a lookup, not a matmul; attention is counted over the
    full context like the paper's M (the usual MFU convention, as in PaLM).
    """
    return flops_per_token(cfg, seq_len) + 6.0 * cfg.d_model * cfg.vocab_size
