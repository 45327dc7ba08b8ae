"""Validation loss and bits-per-byte on held-out token shards.

Loss per token depends on the tokenizer; bits per byte does not, so it compares
runs with different vocabularies: bpb = Σ NLL (nats) / ln 2 / Σ bytes of the
target tokens. A token's bytes come from the tokenizer's byte-level vocabulary
(one glyph per byte); BOS, EOS and padding ids contribute none.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.distributed as dist

from crawl2model.train.data import eval_batches


def token_byte_lengths(tokenizer_dir: str, vocab_size: int) -> torch.Tensor:
    """bytes[id] for every model id (ids past the tokenizer's vocabulary have 0)."""
    from crawl2model.tokenizer.specials import BOS, EOS

    vocab = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    lengths = torch.zeros(vocab_size, dtype=torch.float64)
    for token, i in vocab.items():
        if i < vocab_size and token not in (BOS, EOS):
            lengths[i] = len(token)  # byte-level: one glyph per byte
    return lengths


@torch.no_grad()
def evaluate(module: torch.nn.Module, folder: str, seq_len: int, n_windows: int, batch: int,
             byte_lengths: torch.Tensor | None, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Mean loss (and bpb when byte lengths are known) over the first `n_windows` windows, all ranks together."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # nll, tokens, bytes
    was_training = module.training
    module.eval()
    for windows in eval_batches(folder, seq_len, n_windows, batch, rank, world):
        windows = windows.to(device)
        targets = windows[:, 1:]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            nll = module(windows[:, :-1], targets, reduction="none")  # chunked: no full logits
        sums[0] += nll.double().sum()
        sums[1] += targets.numel()
        if byte_lengths is not None:
            sums[2] += byte_lengths.to(device)[targets].sum()
    module.train(was_training)
    if world > 1:
        dist.all_reduce(sums)
    nll, tokens, nbytes = sums.tolist()
    result = {"val_loss": nll / tokens, "val_tokens": int(tokens)}
    if byte_lengths is not None and nbytes:
        result["val_bpb"] = nll / math.log(2) / nbytes
    return result
