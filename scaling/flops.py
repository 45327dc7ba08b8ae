"""Model scale: training FLOPs per token, the paper's M and the older 6N estimates.

The paper measures model scale by non-embedding FLOPs per token, M, rather than
by parameters, because at small scale attention's sequence-length term and the
vocabulary projection make parameter counts a poor proxy for compute:

    M    = 72·n_layer·d² + 12·n_layer·d·l_seq            (eq. 2)
    6N1  = 72·n_layer·d²                                  (non-embedding params x 6)
    6N2  = 72·n_layer·d² + 6·n_vocab·d                    (with the output projection)
"""
from __future__ import annotations

from crawl2model.scaling.shapes import DEFAULT_VOCAB, ModelConfig


def model_scale(n_layers: int, d_model: int, seq_len: int) -> float:
    """M = 72·n_layer·d² + 12·n_layer·d·l_seq (paper eq. 2).

    72·n·d² is 6 FLOPs (forward 2 + backward 4) per weight of 12·d² weights per
    layer (4d² attention projections, 8d² FFN); 12·n·d·l_seq is attention's
    QKᵀ and AV products over the full context (no causal discount), x3 for backward.
    """
    return 72.0 * n_layers * d_model**2 + 12.0 * n_layers * d_model * seq_len


def six_n1(n_layers: int, d_model: int) -> float:
    """6N1 = 72·n_layer·d²: the 6·(non-embedding params) estimate, blind to sequence length."""
    return 72.0 * n_layers * d_model**2


def six_n2(n_layers: int, d_model: int, vocab_size: int = DEFAULT_VOCAB) -> float:
    """6N2 = 72·n_layer·d² + 6·n_vocab·d: 6N1 plus the output (vocabulary) projection."""
    return six_n1(n_layers, d_model) + 6.0 * vocab_size * d_model


def flops_per_token(model: ModelConfig, seq_len: int | None = None) -> float:
    """Exact non-embedding training FLOPs per token of *our* architecture, on the paper's conventions.

    Per layer, 6 FLOPs per matmul weight plus 12·l_seq·(n_heads·head_dim) for the
    attention scores and their weighted sum (full context, no causal discount,
    like eq. 2):

        6·(2·d² + 2·d·kv_dim + 3·d·ffn) + 12·l_seq·d

    How this differs from M: grouped-query attention shrinks only the K and V
    projections, to kv_dim = d·n_kv_heads/n_heads each (the 67B's 8 of 64 heads
    cost 2·d²/8 instead of 2·d²); the score FLOPs are unchanged because every
    query head still attends over the full context. SwiGLU uses three d x ffn
    matrices, 3·ffn·d instead of 8·d², so it matches M exactly when ffn = 8d/3
    and deviates by the rounding (7B: 11008 vs 10923, +0.4% on M). RMSNorm,
    RoPE, softmax and residuals are elementwise and, as in the paper, left out.
    For the 67B this is 13% below M, mostly from GQA and the narrow FFN.
    """
    seq_len = seq_len or model.seq_len
    d = model.d_model
    weights = 2 * d * d + 2 * d * model.kv_dim + 3 * d * model.ffn_dim
    return float(model.n_layers * (6 * weights + 12 * seq_len * d))


def scale_report(model: ModelConfig, seq_len: int | None = None) -> dict[str, float]:
    """M, 6N1, 6N2 and our exact FLOPs/token of one config, each also as a ratio to M."""
    seq_len = seq_len or model.seq_len
    m = model_scale(model.n_layers, model.d_model, seq_len)
    n1 = six_n1(model.n_layers, model.d_model)
    n2 = six_n2(model.n_layers, model.d_model, model.vocab_size)
    exact = flops_per_token(model, seq_len)
    return {
        "M": m,
        "6N1": n1,
        "6N2": n2,
        "M_exact": exact,
        "6N1/M": n1 / m,
        "6N2/M": n2 / m,
        "M_exact/M": exact / m,
        "params": float(model.n_params()),
        "params_non_embedding": float(model.n_params(non_embedding=True)),
    }
