"""Text from a trained model: greedy or temperature / top-p (nucleus) sampling, with a KV cache.

The prompt is run once through the model (filling the cache); then each new
token is one step over the cached keys and values, until EOS, `max_new_tokens`
or the model's context. Greedy decoding picks the most likely token, as
transformers' `generate(do_sample=False)` does, so the two give the same ids
on an exported model (tests/test_generate.py).
"""
from __future__ import annotations

import torch

from crawl2model.train.model import KVCache, Transformer


def next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """argmax at temperature 0; else a draw from the smallest set of tokens holding `top_p` of the mass."""
    if temperature <= 0:
        return int(logits.argmax())
    probs = (logits.float() / temperature).softmax(-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # the mass before a token already covers top_p
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs.masked_fill(outside, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate(model: Transformer, prompt: list[int], max_new_tokens: int, *, eos_id: int | None = None,
             temperature: float = 0.0, top_p: float = 1.0, vocab_limit: int | None = None,
             seed: int = 0) -> list[int]:
    """The new token ids after `prompt` (EOS included when it ends them).

    `vocab_limit` masks the ids past the tokenizer's vocabulary (the padded rows of
    the embedding), which no text decodes to."""
    if not prompt:
        raise ValueError("the prompt is empty")
    device = model.output.weight.device
    max_len = min(model.cfg.seq_len, len(prompt) + max_new_tokens)
    cache = KVCache(model.cfg, 1, max_len, device, model.output.weight.dtype)
    generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    tokens, out = torch.tensor([prompt], device=device), []
    while len(out) < max_new_tokens and cache.length + tokens.shape[1] <= max_len:
        logits = model.output(model.hidden(tokens, cache)[0, -1])
        if vocab_limit is not None and vocab_limit < logits.shape[-1]:
            logits[vocab_limit:] = float("-inf")
        token = next_token(logits, temperature, top_p, generator)
        out.append(token)
        if token == eos_id:
            break
        tokens = torch.tensor([[token]], device=device)
    model.train(was_training)
    return out
