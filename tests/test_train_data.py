"""The streaming token-shard loader: windows, exactly-once epochs across ranks and workers, resume."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from crawl2model.core.errors import ConfigError, InputError
from crawl2model.tokenizer.shards import write_ids
from crawl2model.train.data import TokenStream, Windows, eval_batches, train_loader

SEQ = 8


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two shards (the second in two record batches) holding the stream 0, 1, 2, ..., 1000."""
    folder = tmp_path_factory.mktemp("tokens")
    docs = np.array_split(np.arange(1001, dtype=np.uint32), 23)  # documents of uneven length
    parts = [docs[:9], docs[9:16], docs[16:]]
    write_ids(str(folder), [parts[0], parts[1] + parts[2]], {"vocab_size": 1001}, batch_rows=len(parts[1]))
    return str(folder)


def test_stream_is_memory_mapped_and_spans_shards(shards):
    stream = TokenStream(shards)
    assert len(stream) == 1001
    assert stream.slice(0, 1001).tolist() == list(range(1001))
    assert stream.slice(430, 470).tolist() == list(range(430, 470))  # across chunk and shard boundaries
    assert all(not chunk.flags.owndata for chunk in stream._chunks)  # views into the mapped files


def test_windows_overlap_by_one_token(shards):
    windows = Windows(TokenStream(shards), SEQ)
    assert len(windows) == (1001 - 1) // SEQ
    assert windows[0].tolist() == list(range(9)) and windows[1][0] == 8


def _epoch(shards, world: int, workers: int, global_batch: int = 10, micro: int = 5) -> list[int]:
    """First tokens of every window all ranks see in one epoch, in global step order."""
    loaders = [iter(train_loader(shards, SEQ, global_batch, micro, seed=3, rank=r, world_size=world,
                                 num_workers=workers)) for r in range(world)]
    n_steps = 125 // global_batch
    seen = []
    for _ in range(n_steps):
        for loader in loaders:
            for _ in range(global_batch // (micro * world)):
                seen += next(loader)[:, 0].tolist()
    return seen


def test_each_window_once_per_epoch_across_ranks_and_workers(shards):
    one = _epoch(shards, world=1, workers=0)
    assert len(one) == len(set(one)) == 120  # 12 steps x 10 of the 125 windows, none twice
    assert _epoch(shards, world=2, workers=2, micro=5) == one  # same global order, any layout
    assert one != sorted(one)  # shuffled
    # a full epoch and the start of the next: all 125 windows once, then a new permutation
    windows = Windows(TokenStream(shards), SEQ, shuffle_seed=3)
    epoch0 = [windows.window(g) for g in range(125)]
    epoch1 = [windows.window(g) for g in range(125, 250)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(125)) and epoch0 != epoch1


def test_resume_from_cursor_under_a_different_world_size(shards):
    uninterrupted = _epoch(shards, world=1, workers=0)
    # 4 steps done with one rank; continue with 2 ranks from samples consumed = 4 x 10
    loaders = [iter(train_loader(shards, SEQ, 10, 5, seed=3, consumed=40, rank=r, world_size=2, num_workers=0))
               for r in range(2)]
    resumed = [t for _ in range(8) for loader in loaders for t in next(loader)[:, 0].tolist()]
    assert resumed == uninterrupted[40:]


def test_loader_errors_name_the_problem(shards, tmp_path):
    with pytest.raises(ConfigError, match="not divisible"):
        train_loader(shards, SEQ, 10, 5, seed=0, world_size=3)
    with pytest.raises(ConfigError, match="whole number of batches"):
        train_loader(shards, SEQ, 10, 5, seed=0, consumed=15)
    with pytest.raises(InputError, match="manifest.json"):
        TokenStream(str(tmp_path))
    with pytest.raises(ConfigError, match="do not fill one window"):
        Windows(TokenStream(shards), 4096)


def test_eval_windows_are_fixed_and_split_across_ranks(shards):
    whole = torch.cat(list(eval_batches(shards, SEQ, 20, 4)))
    halves = [torch.cat(list(eval_batches(shards, SEQ, 20, 4, rank=r, world_size=2))) for r in range(2)]
    assert whole[:, 0].tolist() == [8 * i for i in range(20)]
    assert Counter(torch.cat(halves)[:, 0].tolist()) == Counter(whole[:, 0].tolist())
