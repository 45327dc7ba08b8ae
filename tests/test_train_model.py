"""The model and its attention backends: the fused kernels against the plain model, causality, GQA, init,
the chunked per-token loss and the KV cache."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from crawl2model.scaling.flops import flops_per_token
from crawl2model.scaling.shapes import ModelConfig, get_preset
from crawl2model.train.attention import attend, flash_attn_func, reference, resolve_backend
from crawl2model.train.fused import _RMSNormFunction, _SplitRope, _SwiGLUGate, linear_cross_entropy
from crawl2model.train.model import IGNORE, KVCache, Transformer, rope_cache, train_flops_per_token

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CFG = ModelConfig(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, ffn_dim=96, vocab_size=128, seq_len=32)


@pytest.mark.parametrize("kv_heads", [8, 2, 1])  # MHA, GQA, MQA
def test_sdpa_matches_reference(kv_heads):
    g = torch.Generator().manual_seed(kv_heads)
    q = torch.randn(2, 16, 8, 32, generator=g)
    k, v = (torch.randn(2, 16, kv_heads, 32, generator=g) for _ in range(2))
    assert torch.allclose(attend(q, k, v, "sdpa"), reference(q, k, v), atol=1e-5)


def test_auto_backend_is_sdpa_without_flash_and_flash_demands_it():
    q = torch.randn(1, 4, 2, 8)
    assert resolve_backend("auto", q) == "sdpa"
    with pytest.raises(RuntimeError, match="flash-attn"):
        resolve_backend("flash", q)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or flash_attn_func() is None, reason="needs CUDA and flash-attn")
def test_flash_matches_reference_on_gpu():
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(2, 256, 16, 128, device="cuda", dtype=torch.bfloat16, generator=g)
    k, v = (torch.randn(2, 256, 4, 128, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(2))
    ref = reference(q, k, v)
    assert (attend(q, k, v, "flash").float() - ref).abs().max() < 2e-2
    assert (attend(q, k, v, "sdpa").float() - ref).abs().max() < 2e-2


def test_model_backends_agree_and_are_causal():
    torch.manual_seed(0)
    model = Transformer(CFG, attention="sdpa")
    ref = Transformer(CFG, attention="reference")
    ref.load_state_dict(model.state_dict())
    tokens = torch.randint(0, 128, (2, 32))
    logits = model(tokens)
    assert logits.shape == (2, 32, 128)
    assert torch.allclose(logits, ref(tokens), atol=1e-5)
    changed = tokens.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 128
    assert torch.allclose(model(changed)[:, :20], logits[:, :20], atol=1e-6)  # no peeking ahead
    assert not torch.allclose(model(changed)[:, 20:], logits[:, 20:])


def test_parameter_count_init_and_loss():
    torch.manual_seed(0)
    model = Transformer(dataclasses.replace(get_preset("tiny"), vocab_size=512))
    assert sum(p.numel() for p in model.parameters()) == model.cfg.n_params()
    out = model.output.weight
    assert abs(out.std().item() - 0.006) < 3e-4 and torch.equal(model.norm.weight, torch.ones(64))
    tokens = torch.randint(0, 512, (2, 17))
    loss = model(tokens[:, :-1], tokens[:, 1:])
    assert abs(loss.item() - torch.log(torch.tensor(512.0)).item()) < 0.05  # near-uniform at init
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.zeros(1, 257, dtype=torch.long))


def test_tied_embeddings_share_one_matrix():
    model = Transformer(dataclasses.replace(CFG, tie_embeddings=True))
    assert model.output.weight is model.tok_embeddings.weight
    assert sum(p.numel() for p in model.parameters()) == model.cfg.n_params()


def test_mfu_flops_add_the_output_projection():
    cfg = get_preset("1b")
    assert train_flops_per_token(cfg) == flops_per_token(cfg) + 6 * 2048 * 102_400


def _pair(cfg=CFG):
    torch.manual_seed(0)
    plain, fused = Transformer(cfg), Transformer(cfg, fused=True)
    fused.load_state_dict(plain.state_dict())
    return plain, fused


@pytest.mark.parametrize("masked", [False, True])
def test_fused_and_plain_agree_on_loss_and_every_gradient(masked):
    plain, fused = _pair()
    tokens = torch.randint(0, 128, (3, 33))
    targets = tokens[:, 1:].clone()
    if masked:  # SFT: prompt positions carry no loss
        targets[:, :10] = IGNORE
    losses = [m(tokens[:, :-1], targets) for m in (plain, fused)]
    for loss in losses:
        (2 * loss).backward()
    assert losses[1].item() == pytest.approx(losses[0].item(), abs=1e-6)
    for (name, p), q in zip(plain.named_parameters(), fused.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    if masked:
        want = torch.nn.functional.cross_entropy(plain(tokens[:, :-1]).flatten(0, 1), targets.flatten())
        assert losses[0].item() == pytest.approx(want.item(), abs=1e-6)


def test_fused_loss_computes_no_gradient_outside_grad_mode():
    """Evaluation: one matmul per chunk (the logits) and a loss without a graph, not the 3x of training."""
    from torch.utils.flop_counter import FlopCounterMode

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(600, 16, generator=g, requires_grad=True)
    weight = torch.randn(1000, 16, generator=g, requires_grad=True)
    targets = torch.randint(0, 1000, (600,), generator=g)
    counters = []
    for grad in (True, False):
        with torch.set_grad_enabled(grad), FlopCounterMode(display=False) as counter:
            loss = linear_cross_entropy(hidden, weight, targets)
        counters.append(counter.get_total_flops())
        assert loss.requires_grad == grad
    assert counters[1] == 2 * 600 * 16 * 1000 and counters[0] >= 2 * counters[1]  # logits only, vs + gradients
    want = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_per_token_loss_is_chunked_cross_entropy_with_its_gradient(fused):
    plain, model = _pair()
    model = model if fused else plain
    tokens = torch.randint(0, 128, (2, 33))
    targets = tokens[:, 1:].clone()
    targets[0, :5] = IGNORE
    nll = model(tokens[:, :-1], targets, reduction="none")
    logits = model(tokens[:, :-1])
    want = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    assert nll.shape == (2, 32) and torch.allclose(nll.flatten(), want, atol=1e-6) and (nll[0, :5] == 0).all()
    weights = torch.rand(2, 32)
    (grad,) = torch.autograd.grad((nll * weights).sum(), model.output.weight)
    (want_grad,) = torch.autograd.grad((want * weights.flatten()).sum(), model.output.weight)
    assert torch.allclose(grad, want_grad, atol=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_kv_cache_gives_the_full_forward_logits(fused):
    model = _pair()[1 if fused else 0].eval()
    tokens = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache(CFG, 2, CFG.seq_len, tokens.device, torch.float32)
        steps = [model.output(model.hidden(tokens[:, :8], cache))]
        steps += [model.output(model.hidden(tokens[:, i : i + 1], cache)) for i in range(8, 12)]
    assert cache.length == 12 and torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


def test_fused_loss_under_bf16_autocast():
    """The torch engine's mixed precision: autocast must not break the hand-written out= matmuls."""
    torch.manual_seed(0)
    model = Transformer(CFG, fused=True)
    tokens = torch.randint(0, 128, (2, 33))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(tokens[:, :-1], tokens[:, 1:])
        want = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).float().flatten(0, 1), tokens[:, 1:].flatten())
    loss.backward()
    assert loss.item() == pytest.approx(want.item(), abs=2e-2)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_hand_written_gradients_pass_gradcheck():
    """The layer pieces with hand-written backward passes, against finite differences in float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _RMSNormFunction.apply(x, w, 1e-6), (x, w))
    assert torch.allclose(_RMSNormFunction.apply(x, w, 1e-6), torch.nn.functional.rms_norm(x, (8,), w, 1e-6))

    h = torch.randn(2, 3, 10, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(_SwiGLUGate.apply, (h,))

    cos, sin = (t[:, None, :].double() for t in rope_cache(8, 5, 10_000.0))
    qkv = torch.randn(2, 5, 4 + 2 * 2, 8, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _SplitRope.apply(t, cos, sin, 4, 2), (qkv,))


def test_fused_loss_is_exact_when_the_target_probability_underflows():
    """A target 200 nats below the best logit has probability 0 in fp32: the loss must stay finite and exact."""
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    weight = torch.tensor([[200.0, 0.0], [0.0, 0.0], [0.0, 3.0]], requires_grad=True)
    targets = torch.tensor([1, 2])  # row 0: logits (200, 0, 0), target logit 0
    loss = linear_cross_entropy(hidden, weight, targets)
    want = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(want.item(), rel=1e-6)


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain, recomputed = Transformer(CFG, fused=True), Transformer(CFG, fused=True, recompute=True)
    recomputed.load_state_dict(plain.state_dict())
    tokens = torch.randint(0, 128, (2, 33))
    losses = [m(tokens[:, :-1], tokens[:, 1:]) for m in (plain, recomputed)]
    for loss in losses:
        loss.backward()
    assert losses[0].item() == losses[1].item()
    for (name, p), q in zip(plain.named_parameters(), recomputed.parameters()):
        assert torch.equal(p.grad, q.grad), name
