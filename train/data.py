"""Streaming, exactly resumable training windows from memory-mapped token shards.

The shards of a folder (in manifest order) are read as one token stream,
documents already separated by EOS. Window i is the seq_len + 1 tokens starting
at i·seq_len (inputs are its first seq_len tokens, targets its last seq_len), so
consecutive windows share one token and no token is wasted.

Order: training consumes a *global sample sequence* g = 0, 1, 2, ... that does
not depend on how many processes read it. Sample g is window perm_e[g mod n] of
epoch e = g div n, where perm_e is a permutation seeded by (seed, e). Optimizer
step s consumes samples [s·B, (s+1)·B) (B the global batch in sequences); data
rank r of W takes the r-th contiguous slice of B/W of them, and DataLoader
workers split those by micro-batch. So every window is seen exactly once per
epoch, and the loader's whole state is one integer, the number of samples
consumed, which restores exactly under any W that divides B (Megatron-LM's
consumed-samples resume).

Shards are opened with `pyarrow.memory_map` and the token column is viewed as a
numpy array without copying; only a window that is returned is copied (to
int64, what embedding lookups take). Each process maps the files itself, so the
dataset pickles to DataLoader workers as just its paths. On object stores
(s3://, gs://, ... through pyarrow filesystems) there is nothing to map and each
shard is read into memory once per process.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from crawl2model.core.errors import ConfigError
from crawl2model.core.fs import filesystem
from crawl2model.tokenizer.shards import open_shard, shard_paths


class TokenStream:
    """The token shards of a folder as one lazily mapped uint32 stream."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        _, self.paths, self.manifest = shard_paths(folder)
        self._chunks: list[np.ndarray] | None = None
        self._starts: np.ndarray | None = None

    def __getstate__(self) -> dict:
        # Memory maps do not pickle; each DataLoader worker maps the files again.
        return {**self.__dict__, "_chunks": None, "_starts": None}

    def _open(self) -> None:
        fs, _ = filesystem(self.folder)
        chunks = []
        for path in self.paths:
            table = open_shard(fs, path)
            for column in table.column("input_ids").chunks:
                values = column.values
                if len(values):
                    chunks.append(values.to_numpy(zero_copy_only=True))
        self._chunks = chunks
        self._starts = np.cumsum([0] + [len(c) for c in chunks])

    def __len__(self) -> int:
        if self._starts is None:
            self._open()
        return int(self._starts[-1])

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Tokens [start, stop) as int64 (a copy of just these tokens)."""
        if self._starts is None:
            self._open()
        out = np.empty(stop - start, dtype=np.int64)
        i = int(np.searchsorted(self._starts, start, side="right")) - 1
        filled = 0
        while filled < len(out):
            chunk, offset = self._chunks[i], start + filled - int(self._starts[i])
            n = min(len(chunk) - offset, len(out) - filled)
            out[filled : filled + n] = chunk[offset : offset + n]
            filled += n
            i += 1
        return out


class EpochOrder:
    """Global sample number -> item: every one of `n` items once per epoch, in a permutation seeded
    by (seed, epoch); in order when `seed` is None."""

    def __init__(self, n: int, seed: int | None) -> None:
        self.n, self.seed = n, seed
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def __call__(self, sample: int) -> int:
        if self.seed is None:
            return sample % self.n
        epoch, position = divmod(sample, self.n)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return int(self._perm[position])


class Windows(Dataset):
    """Window i of seq_len + 1 tokens; indexed by *global sample number* when `shuffle_seed` is set."""

    def __init__(self, stream: TokenStream, seq_len: int, shuffle_seed: int | None = None) -> None:
        self.stream, self.seq_len = stream, seq_len
        self.n_windows = (len(stream) - 1) // seq_len
        if self.n_windows < 1:
            raise ConfigError(f"{stream.folder}: {len(stream)} tokens do not fill one window of {seq_len + 1}")
        self.window = EpochOrder(self.n_windows, shuffle_seed)  # which window a global sample number is

    def __len__(self) -> int:
        return self.n_windows

    def __getitem__(self, sample: int) -> torch.Tensor:
        start = self.window(sample) * self.seq_len
        return torch.from_numpy(self.stream.slice(start, start + self.seq_len + 1))


@dataclass
class RankSampler(Sampler[int]):
    """This data rank's global sample numbers, step after step, from `start` (samples already consumed)."""

    start: int
    global_batch: int
    rank: int
    world_size: int

    def __post_init__(self) -> None:
        if self.global_batch % self.world_size:
            raise ConfigError(f"global batch {self.global_batch} is not divisible by {self.world_size} data ranks")
        if self.start % self.global_batch:
            raise ConfigError(f"resume cursor {self.start} is not a whole number of batches of {self.global_batch}")

    def __iter__(self) -> Iterator[int]:
        per_rank = self.global_batch // self.world_size
        step_start = self.start
        while True:
            first = step_start + self.rank * per_rank
            yield from range(first, first + per_rank)
            step_start += self.global_batch


def train_loader(folder: str, seq_len: int, global_batch: int, micro_batch: int, *, seed: int,
                 consumed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int = 1) -> DataLoader:
    """Endless micro-batches (micro_batch, seq_len + 1) for one data rank, resuming after `consumed` samples."""
    windows = Windows(TokenStream(folder), seq_len, shuffle_seed=seed)
    sampler = RankSampler(consumed, global_batch, rank, world_size)
    return DataLoader(windows, batch_size=micro_batch, sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)


def eval_batches(folder: str, seq_len: int, n_windows: int, batch: int, rank: int = 0,
                 world_size: int = 1) -> Iterator[torch.Tensor]:
    """The first `n_windows` windows of a held-out folder in order, this rank's share, in batches.

    A fixed, unshuffled set so that validation losses of different steps, runs
    and world sizes are comparable."""
    windows = Windows(TokenStream(folder), seq_len)
    mine = list(range(rank, min(n_windows, len(windows)), world_size))
    for i in range(0, len(mine), batch):
        yield torch.stack([windows[j] for j in mine[i : i + batch]])
