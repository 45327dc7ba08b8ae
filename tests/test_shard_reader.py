"""The shard reader: exact resume, rank/worker splits, filesystems, checksums (no Spark)."""
from __future__ import annotations

import json
import posixpath

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from crawl2model.pipeline.shard_reader import ShardChecksumError, ShardReader
from crawl2model.pipeline.shards import ShardFile, file_schema, shard_name
from crawl2model.core.fs import sha256_file

SIZES = (23, 23, 23, 9, 16)   # documents per shard; row groups of 7


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """Shards in the layout remix writes: shard-NNNNN.parquet + manifest.json."""
    root = tmp_path_factory.mktemp("shards")
    fs = pafs.LocalFileSystem()
    entries, n = [], 0
    for s, size in enumerate(SIZES):
        table = pa.table({"doc_id": [f"doc{n + i:04d}" for i in range(size)],
                          "text": [f"text of document {n + i} " * (1 + i % 5) for i in range(size)]})
        n += size
        path = str(root / shard_name(s))
        with fs.open_output_stream(path) as sink:
            f = ShardFile(sink, file_schema(table.schema, table.column_names), row_group_rows=7)
            for batch in table.to_batches(max_chunksize=5):
                f.write(batch)
            groups = f.close()
        entries.append({"path": shard_name(s), "documents": size, "bytes": fs.get_file_info(path).size,
                        "row_groups": groups, "sha256": sha256_file(fs, path)})
    (root / "manifest.json").write_text(json.dumps({"format": "parquet", "documents": n, "shards": entries}))
    return root


def _ids(reader) -> list[str]:
    return [d["doc_id"] for d in reader]


def test_manifest_order_without_shuffle(shard_dir):
    ids = _ids(ShardReader(str(shard_dir), columns=["doc_id"]))
    assert ids == [f"doc{i:04d}" for i in range(sum(SIZES))]


@pytest.mark.parametrize("buffer", [0, 10])
@pytest.mark.parametrize("stop", [lambda n: 0, lambda n: 1, lambda n: 6, lambda n: 7, lambda n: n - 1,
                                  lambda n: n, lambda n: n + 1, lambda n: 2 * n + 5],
                         ids=["0", "1", "6", "7", "n-1", "n", "n+1", "2n+5"])
def test_resume_from_cursor_continues_exactly(shard_dir, buffer, stop):
    """Stops inside the first row group, at its end, at the end of an epoch and in a later epoch."""
    def reader(**kw):
        return ShardReader(str(shard_dir), columns=["doc_id"], rank=1, world_size=2, shuffle_buffer=buffer,
                           seed=3, epochs=3, **kw)

    full = _ids(reader())
    first = reader()
    stop = stop(first.documents_per_epoch)
    it = iter(first)
    head = [next(it)["doc_id"] for _ in range(stop)]
    cursor = json.loads(json.dumps(first.state_dict()))   # survives a checkpoint file
    rest = _ids(reader(cursor=cursor))
    assert head + rest == full


@pytest.mark.parametrize("buffer", [0, 16])
def test_ranks_and_workers_see_every_document_once_per_epoch(shard_dir, buffer):
    everything = sorted(f"doc{i:04d}" for i in range(sum(SIZES)))
    per_epoch: dict[int, list[str]] = {0: [], 1: []}
    counts = []
    for rank in range(2):
        for worker in range(2):
            r = ShardReader(str(shard_dir), columns=["doc_id"], rank=rank, world_size=2, worker=worker,
                            num_workers=2, shuffle_buffer=buffer, seed=1, epochs=2)
            ids = _ids(r)
            n = r.documents_per_epoch
            counts.append(n)
            per_epoch[0] += ids[:n]
            per_epoch[1] += ids[n:]
    assert sorted(per_epoch[0]) == everything and sorted(per_epoch[1]) == everything
    assert max(counts) - min(counts) <= 7   # one row group


def test_shuffle_buffer_is_deterministic_and_differs_by_epoch_and_seed(shard_dir):
    def ids(seed):
        return _ids(ShardReader(str(shard_dir), columns=["doc_id"], shuffle_buffer=20, seed=seed, epochs=2))

    a, b, c = ids(0), ids(0), ids(1)
    n = sum(SIZES)
    assert a == b and a != c
    assert a[:n] != a[n:] and sorted(a[:n]) == sorted(a[n:])


def test_same_code_on_local_path_pyarrow_and_fsspec_filesystems(shard_dir):
    import fsspec

    expected = _ids(ShardReader(str(shard_dir), shuffle_buffer=8, seed=5))
    sub = pafs.SubTreeFileSystem(str(shard_dir.parent), pafs.LocalFileSystem())
    assert _ids(ShardReader(shard_dir.name, filesystem=sub, shuffle_buffer=8, seed=5)) == expected
    assert _ids(ShardReader(f"file://{shard_dir}", shuffle_buffer=8, seed=5)) == expected
    mem = fsspec.filesystem("memory")
    for p in shard_dir.iterdir():
        mem.pipe(posixpath.join("/remix-test/shards", p.name), p.read_bytes())
    try:
        assert _ids(ShardReader("/remix-test/shards", filesystem=mem, shuffle_buffer=8, seed=5)) == expected
    finally:
        mem.rm("/remix-test", recursive=True)


def test_sha256_verified_on_request(shard_dir, tmp_path):
    copy = tmp_path / "shards"
    copy.mkdir()
    for p in shard_dir.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    assert len(_ids(ShardReader(str(copy), verify=True))) == sum(SIZES)
    victim = copy / shard_name(2)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    reader = iter(ShardReader(str(copy), verify=True))
    got = [next(reader) for _ in range(SIZES[0] + SIZES[1])]     # shards 0 and 1 are intact
    assert len(got) == SIZES[0] + SIZES[1]
    with pytest.raises(ShardChecksumError, match="shard-00002"):
        next(reader)


def test_cursor_from_another_setup_is_refused(shard_dir):
    r = ShardReader(str(shard_dir), rank=0, world_size=2)
    next(iter(r))
    with pytest.raises(ValueError, match="rank"):
        ShardReader(str(shard_dir), rank=1, world_size=2, cursor=r.state_dict())
