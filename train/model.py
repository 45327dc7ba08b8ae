"""The DeepSeek LLM / LLaMA decoder, in one file you can read in one sitting.

    tokens -> embedding -> n_layers x [x + Attn(RMSNorm(x)); x + SwiGLU(RMSNorm(x))] -> RMSNorm -> output

- Pre-norm RMSNorm (eps 1e-6), normalising in fp32 as LLaMA does.
- Attention: grouped-query (n_kv_heads divides n_heads), RoPE (θ 1e4) on Q and
  K, causal, through `train.attention.attend` (flash-attn on GPU, SDPA else).
- SwiGLU FFN: w2(silu(x·w1) * x·w3).
- Untied input embedding and output projection; every weight N(0, 0.006²),
  norm weights 1 (paper section 2.2). No biases anywhere.

Same maths as a layer-per-matrix implementation, less memory traffic: Q, K and V
come from one matmul (`wqkv`, rows q|k|v) and the SwiGLU gate and up projections
from another (`w13`, rows w1|w3); RMSNorm, the q|k|v split with RoPE, the SwiGLU
gate and the output projection with its loss have hand-written backward passes
(small `autograd.Function`s, each gradient-checked in the tests) that skip the
copies and extra passes autograd's generic versions make. Together that is
1.23x the tokens/s of transformers' Llama on CPU (bench/train.py). RoPE uses the
rotate-half pairing (dimension i with i + head_dim/2), which is the Hugging Face
Llama convention, so `train.export_hf` only splits and renames tensors.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from crawl2model.scaling.flops import flops_per_token
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train.attention import attend


class _RMSNormFunction(torch.autograd.Function):
    """y = x / rms(x) · weight with statistics in fp32, in three passes forward and six backward.

    Autograd's composition of the same maths walks the activations about twice as
    often; on CPU, where every elementwise pass is a trip through memory, the
    difference is measurable (bench/train.py)."""

    @staticmethod
    def forward(ctx, x, weight, eps: float):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        rstd = (torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(eps)).rsqrt_()
        ctx.save_for_backward(x, weight, rstd)
        return (xf * rstd).to(x.dtype).mul_(weight)

    @staticmethod
    def backward(ctx, dy):
        x, weight, rstd = ctx.saved_tensors
        xf = x.to(rstd.dtype)
        dyr = dy.to(rstd.dtype) * rstd
        dw = (dyr * xf).flatten(0, -2).sum(0).to(weight.dtype)
        dx = dyr.mul_(weight)  # rstd·dy·w
        # minus x·rstd³·mean(dy·w·x): the part of the gradient that moves the norm itself
        s = torch.linalg.vecdot(dx, xf).unsqueeze(-1).div_(x.shape[-1]).mul_(rstd).mul_(rstd)
        return dx.addcmul_(xf, s, value=-1.0).to(x.dtype), dw, None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 statistics even under bf16: the variance of a 4096-wide row overflows bf16's precision.
        return _RMSNormFunction.apply(x, self.weight, self.eps)


def rope_cache(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (seq_len, head_dim/2): dimension i pairs with i + head_dim/2 (rotate-half RoPE)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def _head_major(x: torch.Tensor) -> torch.Tensor:
    """An empty (B, T, heads, D) tensor laid out (B, heads, T, D) in memory, the layout SDPA computes in."""
    b, t, h, d = x.shape
    return torch.empty(b, h, t, d, dtype=x.dtype, device=x.device).transpose(1, 2)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = (x1·cos - x2·sin, x2·cos + x1·sin) on the two halves of the last dimension of x."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    torch.mul(x1, cos, out=out[..., :half]).addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=out[..., half:]).addcmul_(x1, sin)
    return out


class _SplitRope(torch.autograd.Function):
    """The fused q|k|v projection -> RoPE-rotated q and k, and v, each head-major in memory.

    Hand-written because autograd's version of split + rotate costs three extra
    copies per layer: the gradient of a rotation by θ is the rotation by -θ (nothing
    saved but the tables), and backward writes dq, dk and dv straight into the one
    gradient the projection needs instead of concatenating them.
    """

    @staticmethod
    def forward(ctx, qkv, cos, sin, n_heads: int, n_kv_heads: int):
        ctx.save_for_backward(cos, sin)
        ctx.sizes = [n_heads, n_kv_heads, n_kv_heads]
        q, k, v = qkv.split(ctx.sizes, dim=2)
        return _rotate(q, cos, sin, _head_major(q)), _rotate(k, cos, sin, _head_major(k)), _head_major(v).copy_(v)

    @staticmethod
    def backward(ctx, dq, dk, dv):
        cos, sin = ctx.saved_tensors
        b, t, _, d = dq.shape
        grad = torch.empty(b, t, sum(ctx.sizes), d, dtype=dq.dtype, device=dq.device)
        gq, gk, gv = grad.split(ctx.sizes, dim=2)
        _rotate(dq, cos, -sin, gq), _rotate(dk, cos, -sin, gk), gv.copy_(dv)
        return grad, None, None, None, None


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: str) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.backend = backend
        self.wqkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * cfg.kv_dim, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.wqkv(x).view(b, t, self.n_heads + 2 * self.n_kv_heads, self.head_dim)
        cos, sin = cos[:t, None, :].to(x.dtype), sin[:t, None, :].to(x.dtype)
        q, k, v = _SplitRope.apply(qkv, cos, sin, self.n_heads, self.n_kv_heads)
        return self.wo(attend(q, k, v, self.backend).reshape(b, t, d))


class _SwiGLUGate(torch.autograd.Function):
    """silu(gate) * up from the fused gate|up projection; backward fills both halves of one gradient
    (autograd's chunk would concatenate two, a copy of the layer's widest activation)."""

    @staticmethod
    def forward(ctx, h):
        gate, up = h.chunk(2, dim=-1)
        act = F.silu(gate)
        ctx.save_for_backward(h, act)
        return act * up

    @staticmethod
    def backward(ctx, grad_out):
        h, act = ctx.saved_tensors
        gate, up = h.chunk(2, dim=-1)
        grad = torch.empty_like(h)
        d_gate, d_up = grad.chunk(2, dim=-1)
        torch.mul(grad_out, up, out=d_gate)
        torch.ops.aten.silu_backward.grad_input(d_gate, gate, grad_input=d_gate)
        torch.mul(grad_out, act, out=d_up)
        return grad


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w13 = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(_SwiGLUGate.apply(self.w13(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: str) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, backend)
        self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.ffn = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class _LinearCrossEntropy(torch.autograd.Function):
    """mean CE(hidden·weightᵀ, targets), its gradients computed chunk by chunk in the forward pass.

    The (tokens x vocab) logits are never stored: at 4096 tokens and a 102,400
    vocabulary they are 1.6 GB in fp32 per sequence. Each chunk's logits go
    through an in-place softmax and become d(loss)/d(logits) = softmax - one_hot,
    which is multiplied into the gradients of hidden and weight while it is hot
    in cache; backward only scales them. Same FLOPs as logits + F.cross_entropy,
    a fraction of the memory traffic: in fp32 one reused buffer holds every
    chunk, and the loss comes from the target's probability (-log p), so no
    log-softmax pass or exp pass is needed. On CPU that was 15% of a step.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int):
        n, device = hidden.shape[0], hidden.device.type
        # Under autocast, compute in its dtype as nn.Linear would, but by hand: autocast
        # does not handle the out= matmuls below.
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        with torch.autocast(device, enabled=False):
            hidden_c, weight_c = hidden.to(dtype), weight.to(dtype)
            grad_h = torch.empty_like(hidden_c) if need_grad else None
            grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_grad else None
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            buffer = torch.empty(min(chunk, n), weight.shape[0], dtype=torch.float32, device=hidden.device)
            for start in range(0, n, chunk):
                h, t = hidden_c[start : start + chunk], targets[start : start + chunk]
                rows = torch.arange(len(t), device=t.device)
                probs = buffer[: len(t)]
                if dtype == torch.float32:
                    torch.matmul(h, weight_c.T, out=probs)
                else:
                    probs.copy_(h @ weight_c.T)
                torch.ops.aten._softmax.out(probs, -1, False, out=probs)
                total += _target_nll(probs[rows, t], h, weight_c, t).sum()
                if need_grad:
                    probs[rows, t] -= 1.0
                    grad = probs.to(dtype)
                    torch.matmul(grad, weight_c, out=grad_h[start : start + chunk])
                    if dtype == torch.float32:
                        grad_w.addmm_(grad.T, h)
                    else:
                        grad_w += grad.T @ h
            if need_grad:  # the 1/n of the mean, applied to the small tensors rather than to every chunk
                grad_h = grad_h.to(hidden.dtype).div_(n)
                grad_w.div_(n)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, (grad_w * grad_loss).to(ctx.weight_dtype), None, None


def _target_nll(p_target: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """-log p(target) per row; rows whose probability underflowed fp32 get the exact logsumexp - logit.

    A target 88 nats below the row's best logit rounds to 0 and would make the loss
    infinite (a loss spike is exactly when that happens); those few rows are recomputed."""
    nll = -p_target.log()
    bad = p_target < torch.finfo(torch.float32).tiny
    if bad.any():
        logits = (h[bad] @ weight.T).float()
        nll[bad] = logits.logsumexp(-1) - logits.gather(1, t[bad][:, None]).squeeze(1)
    return nll


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of the output projection, a chunk of rows at a time.

    On CPU, chunks of ~16 MB of fp32 logits (512 rows at a 8k vocabulary) were the
    fastest measured: smaller ones make the weight-gradient matmul less efficient,
    bigger ones leave the cache between the matmul and the softmax (unchunked was
    1.3x slower). A GPU wants big matmuls, ~1 GB."""
    budget = 1 << 22 if hidden.device.type == "cpu" else 1 << 28
    chunk = max(256, budget // weight.shape[0])
    return _LinearCrossEntropy.apply(hidden.flatten(0, 1), weight, targets.flatten(), chunk)


class Transformer(nn.Module):
    """`recompute=True` keeps only each layer's input for backward and recomputes the rest there
    (activation checkpointing): ~1/3 more compute for the activations of one layer instead of all."""

    def __init__(self, cfg: ModelConfig, attention: str = "auto", recompute: bool = False) -> None:
        super().__init__()
        cfg.validate()
        self.cfg, self.recompute = cfg, recompute
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, attention) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
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

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, T, vocab), or with `targets` the mean next-token cross-entropy (fp32)."""
        if tokens.shape[1] > self.cfg.seq_len:
            raise ValueError(f"sequence of {tokens.shape[1]} tokens exceeds the model's context {self.cfg.seq_len}")
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            if self.recompute and torch.is_grad_enabled():
                x = checkpoint(layer, x, self.rope_cos, self.rope_sin, use_reentrant=False)
            else:
                x = layer(x, self.rope_cos, self.rope_sin)
        x = self.norm(x)
        if targets is None:
            return self.output(x)
        return linear_cross_entropy(x, self.output.weight, targets)


def train_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token for MFU: the exact non-embedding count plus the output projection (6·d·vocab).

    The input embedding is a lookup, not a matmul; attention is counted over the
    full context like the paper's M (the usual MFU convention, as in PaLM).
    """
    return flops_per_token(cfg, seq_len) + 6.0 * cfg.d_model * cfg.vocab_size
