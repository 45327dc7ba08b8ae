"""Mergeable ranks (tiktoken's form of a byte-level BPE) and the HF tokenizer.json model made from them.

A compiled trainer (rustbpe) and tiktoken describe a BPE as raw token bytes ->
rank, where the rank is also the merge priority; `tokenizers` describes it as
a vocabulary of byte-level glyph strings (GPT-2's bytes -> unicode table,
`specials.byte_to_glyph`) plus an ordered list of merges. The two agree when
every token of rank r is the merge of exactly one pair of lower-ranked tokens
that BPE itself reaches on the token's own bytes using only ranks below r:
then the merge list in rank order replays what tiktoken does. `merges` checks
that for every token and refuses ranks where it fails.

Id layout (see `tokenizer.specials`): the 243 bytes valid UTF-8 can contain
get ids 0..242 in byte order, merges follow, then BOS, EOS and the 13 bytes
valid UTF-8 never contains. rustbpe starts from all 256 bytes; the 13 never
occur in training text, so its merge ids are shifted down by 13.
"""
from __future__ import annotations

import base64

from crawl2model.tokenizer.specials import INVALID_UTF8_BYTES, N_SPECIAL, byte_to_glyph

TIKTOKEN_FILE = "tokenizer.tiktoken"


def from_rustbpe(raw: list[tuple[bytes, int]]) -> dict[bytes, int]:
    """rustbpe's (bytes, rank) list -> ordinary ranks in the project's layout (0..n-1)."""
    invalid = set(INVALID_UTF8_BYTES)
    valid = [b for b in range(256) if b not in invalid]
    ranks = {bytes([b]): i for i, b in enumerate(valid)}
    shift = 256 - len(valid)
    for token, rank in sorted(raw, key=lambda kv: kv[1]):
        if rank < 256:
            continue
        if token in ranks:
            raise ValueError(f"the trainer produced token {token!r} twice (ranks {ranks[token] + shift} and {rank})")
        ranks[token] = rank - shift
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise ValueError("trainer ranks are not contiguous")
    return ranks


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's merge loop on `token` alone, using only ranks below `max_rank`."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, at = max_rank, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1], max_rank)
            if r < best:
                best, at = r, i
        if at < 0:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


def merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """The merge list, in rank order, derived from the ranks alone; raises if a token is not derivable."""
    out: list[tuple[bytes, bytes]] = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = _bpe(ranks, token, rank)
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not one merge of lower-ranked tokens: {parts}")
        out.append((parts[0], parts[1]))
    return out


def glyphs(token: bytes) -> str:
    table = byte_to_glyph()
    return "".join(table[b] for b in token)


def hf_model(ranks: dict[bytes, int]):
    """The ordinary vocabulary as a `tokenizers.models.BPE` (specials are added by `train.add_specials`)."""
    from tokenizers import models

    vocab = {glyphs(t): r for t, r in ranks.items()}
    return models.BPE(vocab, [(glyphs(a), glyphs(b)) for a, b in merges(ranks)])


def with_specials(ranks: dict[bytes, int]) -> dict[bytes, int]:
    """Ordinary ranks plus the 13 invalid-UTF-8 bytes at n+2.. (what tokenizer.tiktoken holds)."""
    n = len(ranks)
    return {**ranks, **{bytes([b]): n + 2 + i for i, b in enumerate(INVALID_UTF8_BYTES)}}


def dumps(ranks: dict[bytes, int]) -> str:
    """tiktoken's file format: `base64(token) rank` per line, in rank order."""
    return "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda kv: kv[1]))


def loads(text: str) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for line in text.splitlines():
        if line:
            token, rank = line.split()
            out[base64.b64decode(token)] = int(rank)
    return out


def n_ordinary(ranks_with_specials: dict[bytes, int]) -> int:
    return len(ranks_with_specials) - (N_SPECIAL - 2)
