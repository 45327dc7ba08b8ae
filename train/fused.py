"""Hand-written kernels for four pieces of `train.model`, swapped in with `[train] fused = true`.

Same maths as the plain model (tests/test_train_model.py holds the two equal on
the loss and on every parameter's gradient), less memory traffic: each piece
below has a backward pass that skips the copies and extra passes autograd's
generic version makes. On one CPU thread with the tiny model that was 1.23x
the tokens/s of transformers' Llama (bench/train.py); no GPU has measured them,
so on a GPU compare with the plain model (and `torch.compile`) before relying
on them.

    rms_norm               RMSNorm with fp32 statistics: three passes forward, six backward
    split_rope             fused q|k|v projection -> RoPE-rotated q, k and v, head-major in memory
    swiglu                 silu(gate) * up from the fused gate|up projection
    linear_cross_entropy   output projection + mean cross-entropy, a chunk of rows at a time,
                           gradients computed in forward; without grad mode, just the loss
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _RMSNormFunction.apply(x, weight, eps)


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


def split_rope(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, n_heads: int,
               n_kv_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _SplitRope.apply(qkv, cos, sin, n_heads, n_kv_heads)


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


def swiglu(h: torch.Tensor) -> torch.Tensor:
    return _SwiGLUGate.apply(h)


def _chunked_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
                  need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(summed NLL, d(sum)/d(hidden), d(sum)/d(weight)); the gradients only with `need_grad`.

    Each chunk's logits go through an in-place softmax and, with `need_grad`, become
    d(loss)/d(logits) = softmax - one_hot, which is multiplied into the gradients of
    hidden and weight while it is hot in cache. In fp32 one reused buffer holds every
    chunk, and the loss comes from the target's probability (-log p), so no
    log-softmax pass or exp pass is needed. On CPU that was 15% of a step."""
    n, device = hidden.shape[0], hidden.device.type
    # Under autocast, compute in its dtype as nn.Linear would, but by hand: autocast
    # does not handle the out= matmuls below.
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
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
    return total, grad_h, grad_w


class _LinearCrossEntropy(torch.autograd.Function):
    """mean CE(hidden·weightᵀ, targets), its gradients computed chunk by chunk in the forward pass.

    The (tokens x vocab) logits are never stored: at 4096 tokens and a 102,400
    vocabulary they are 1.6 GB in fp32 per sequence. Same FLOPs as logits +
    F.cross_entropy, a fraction of the memory traffic; backward only scales the
    gradients forward computed."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int):
        n = hidden.shape[0]
        total, grad_h, grad_w = _chunked_loss(hidden, weight, targets, chunk, need_grad=True)
        # the 1/n of the mean, applied to the small tensors rather than to every chunk
        ctx.save_for_backward(grad_h.to(hidden.dtype).div_(n), grad_w.div_(n))
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
    """Mean cross-entropy of hidden (N, d) · weightᵀ against targets (N,), a chunk of rows at a time.

    On CPU, chunks of ~16 MB of fp32 logits (512 rows at a 8k vocabulary) were the
    fastest measured: smaller ones make the weight-gradient matmul less efficient,
    bigger ones leave the cache between the matmul and the softmax (unchunked was
    1.3x slower). A GPU wants big matmuls, ~1 GB. Outside grad mode (evaluation)
    no gradient is computed and no gradient buffer allocated."""
    budget = 1 << 22 if hidden.device.type == "cpu" else 1 << 28
    chunk = max(256, budget // weight.shape[0])
    if not (torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)):
        return _chunked_loss(hidden, weight, targets, chunk, need_grad=False)[0] / hidden.shape[0]
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk)
