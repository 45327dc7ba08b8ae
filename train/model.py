"""The DeepSeek LLM / LLaMA decoder, in one file you can read in one sitting.

    tokens -> embedding -> n_layers x [x + Attn(RMSNorm(x)); x + SwiGLU(RMSNorm(x))] -> RMSNorm -> output

- Pre-norm RMSNorm (eps 1e-6), normalising in fp32 as LLaMA does.
- Attention: grouped-query (n_kv_heads divides n_heads), RoPE (θ 1e4) on Q and
  K, causal, through `train.attention.attend` (flash-attn on GPU, SDPA else).
- SwiGLU FFN: w2(silu(x·w1) * x·w3).
- Untied input embedding and output projection; every weight N(0, 0.006²),
  norm weights 1 (paper section 2.2). No biases anywhere.

Two fusions make it faster than a layer-per-matrix implementation without
changing the maths: Q, K and V come from one matmul (`wqkv`, rows q|k|v) and the
SwiGLU gate and up projections from another (`w13`, rows w1|w3). RoPE uses the
rotate-half pairing (dimension i with i + head_dim/2), which is the Hugging Face
Llama convention, so `train.export_hf` only splits and renames tensors.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from train.attention import attend
from train.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 statistics even under bf16: the variance of a 4096-wide row overflows bf16's precision.
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype) * self.weight


def rope_cache(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (seq_len, head_dim/2): dimension i pairs with i + head_dim/2 (rotate-half RoPE)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (x1·cos - x2·sin, x2·cos + x1·sin) on the two halves of the last dimension."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    # Laid out (B, heads, T, D) in memory, the layout SDPA computes in, and returned as a (B, T, heads, D) view.
    b, t, h, d = x.shape
    out = torch.empty(b, h, t, d, dtype=x.dtype, device=x.device).transpose(1, 2)
    torch.mul(x1, cos, out=out[..., :half]).addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=out[..., half:]).addcmul_(x1, sin)
    return out


class _Rope(torch.autograd.Function):
    """RoPE with a hand-written backward: the gradient of a rotation by θ is the rotation by -θ,
    so nothing is saved for backward and no negated/concatenated copies are made."""

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, -sin), None, None


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, heads, head_dim) by position."""
    t = x.shape[1]
    return _Rope.apply(x, cos[:t, None, :].to(x.dtype), sin[:t, None, :].to(x.dtype))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: str) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        self.backend = backend
        self.wqkv = nn.Linear(cfg.d_model, cfg.d_model + 2 * cfg.kv_dim, bias=False)
        self.wo = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        kv = self.n_kv_heads * self.head_dim
        qk, v = self.wqkv(x).split([d + kv, kv], dim=-1)
        # Q and K heads are rotated together, in one pass over the projection's output.
        qk = apply_rope(qk.view(b, t, self.n_heads + self.n_kv_heads, self.head_dim), cos, sin)
        q, k = qk.split([self.n_heads, self.n_kv_heads], dim=2)
        v = v.view(b, t, self.n_kv_heads, self.head_dim)
        return self.wo(attend(q, k, v, self.backend).reshape(b, t, d))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.w13 = nn.Linear(cfg.d_model, 2 * cfg.ffn_dim, bias=False)
        self.w2 = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


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
    vocabulary they are 1.6 GB in fp32 per sequence. Each chunk's softmax is turned
    into d(loss)/d(logits) at once (softmax - one_hot) and multiplied into the
    gradients of hidden and weight while it is hot in cache; backward only scales
    them. Same FLOPs as logits + F.cross_entropy, a fraction of the memory
    traffic (on CPU, log_softmax and its backward were 15% of a step).
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
            for start in range(0, n, chunk):
                h, t = hidden_c[start : start + chunk], targets[start : start + chunk]
                logp = torch.log_softmax((h @ weight_c.T).float(), dim=-1)
                total -= logp.gather(1, t[:, None]).sum()
                if need_grad:
                    grad = logp.exp_()  # softmax, in place
                    grad[torch.arange(len(t), device=t.device), t] -= 1.0
                    grad = grad.to(dtype)
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


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of the output projection, a chunk of rows at a time.

    Chunks of ~8 MB of fp32 logits stay in a CPU's cache between the matmul and
    the softmax (1.3x faster than unchunked there); a GPU wants big matmuls, ~1 GB."""
    budget = 1 << 21 if hidden.device.type == "cpu" else 1 << 28
    chunk = max(256, budget // weight.shape[0])
    return _LinearCrossEntropy.apply(hidden.flatten(0, 1), weight, targets.flatten(), chunk)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, attention: str = "auto") -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
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
    from train.scaling import flops_per_token

    return flops_per_token(cfg, seq_len) + 6.0 * cfg.d_model * cfg.vocab_size
