"""Causal attention backends behind one function, `attend(q, k, v)`.

All tensors are (batch, seq, heads, head_dim), FlashAttention's layout, so the
model never transposes for the fast path. K and V may have fewer heads than Q
(grouped-query attention); no backend materialises the repeated K/V heads:

    flash      flash-attn 2 `flash_attn_func` (CUDA, bf16/fp16 only; GQA native)
    sdpa       torch `scaled_dot_product_attention(is_causal=True, enable_gqa=True)`
    reference  explicit softmax(QKᵀ/√d + causal mask)·V with repeated K/V heads:
               slow and memory-hungry, the ground truth the tests compare against

flash-attn is a GPU-only extra that cannot be installed without CUDA, so it is
imported on first use and its absence simply means "sdpa".
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "flash", "sdpa", "reference")


@functools.cache
def flash_attn_func():
    """flash-attn's kernel, or None when the package (or its CUDA build) is missing."""
    try:
        from flash_attn import flash_attn_func as fn
    except ImportError:
        return None
    return fn


def flash_usable(q: torch.Tensor) -> bool:
    return q.is_cuda and q.dtype in (torch.bfloat16, torch.float16) and flash_attn_func() is not None


def resolve_backend(backend: str, q: torch.Tensor) -> str:
    """'auto' -> 'flash' where it can run, else 'sdpa'; an explicit 'flash' that cannot run is an error."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "auto":
        return "flash" if flash_usable(q) else "sdpa"
    if backend == "flash" and not flash_usable(q):
        raise RuntimeError("attention backend 'flash' needs flash-attn installed, a CUDA tensor and bf16/fp16")
    return backend


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, enable_gqa=k.shape[2] != q.shape[2]
    )
    return out.transpose(1, 2)


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    group = q.shape[2] // k.shape[2]
    q, k, v = (t.transpose(1, 2).float() for t in (q, k.repeat_interleave(group, 2), v.repeat_interleave(group, 2)))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        t = q.shape[2]
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto",
           causal: bool = True) -> torch.Tensor:
    """Attention of q (B, T, H, D) over k, v (B, S, H_kv, D); returns (B, T, H, D) in q's dtype.

    Causal needs T == S; `causal=False` is a generation step, new queries over every cached key."""
    name = resolve_backend(backend, q)
    if name == "flash":
        return flash_attn_func()(q, k, v, causal=causal)
    if name == "sdpa":
        return sdpa(q, k, v, causal)
    return reference(q, k, v, causal).to(q.dtype)
