"""Candidate edges of the dedup graph in one shuffle: exact groups and LSH buckets alike.

Every document becomes key rows: one per LSH band (band >= 0, the band's hash)
and one for its exact text hash (band -1). One repartition by key brings each
bucket whole into one task, where a numba pass sorts the rows and emits star
edges to the bucket's smallest node, both across all dumps and within each
dump, so the per-dump figure never needs a second graph build.

Within an LSH bucket only one member per exact text takes part (its smallest
node), as if exact duplicates had been removed first: exact copies have equal
signatures, so they share every bucket with that member, and their exact
edges already join them to it. A node is the smallest member of at most one
bucket per band, so (band, dst) names a bucket and its edges count its size.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np
import pyarrow as pa
from numba import njit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

EXACT_BAND = -1
GLOBAL, PER_DUMP = 1, 2  # scope bits: which graph an edge belongs to

KEY_DDL = "band int, bh long, node long, dump_idx int, ex_hi long, ex_lo long"
RAW_EDGE_DDL = "src long, dst long, band int, scope byte"


def _exact_halves(exact: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The 128-bit exact hash (32 hex characters) as two int64 columns."""
    raw = np.frombuffer(bytes.fromhex("".join(exact.to_pylist())), dtype=">u8").astype(np.uint64)
    halves = raw.view(np.int64).reshape(-1, 2)
    return halves[:, 0], halves[:, 1]


def key_rows_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """(node, dump_idx, exact, bands) -> one key row per band plus one exact row per document."""
    n = batch.num_rows
    node = batch.column("node").to_numpy()
    dump = batch.column("dump_idx").to_numpy()
    hi, lo = _exact_halves(batch.column("exact")) if n else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    bands = batch.column("bands")
    lengths = bands.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = bands.flatten().to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(n), lengths)
    band_idx = (np.arange(len(values)) - np.repeat(starts, lengths)).astype(np.int32)
    cols = {
        "band": np.concatenate([np.full(n, EXACT_BAND, np.int32), band_idx]),
        "bh": np.concatenate([hi, values]),
        "node": np.concatenate([node, node[owner]]),
        "dump_idx": np.concatenate([dump, dump[owner]]).astype(np.int32),
        "ex_hi": np.concatenate([hi, hi[owner]]),
        "ex_lo": np.concatenate([lo, lo[owner]]),
    }
    return pa.RecordBatch.from_arrays([pa.array(v) for v in cols.values()], names=list(cols))


@njit(cache=True, nogil=True)
def _emit(out, k, src, dst, band, scope):
    out[k, 0], out[k, 1], out[k, 2], out[k, 3] = src, dst, band, scope
    return k + 1


@njit(cache=True, nogil=True)
def _star(nodes, band, scope, out, k):
    """Edges from every node to the smallest (nodes sorted ascending)."""
    for q in range(1, len(nodes)):
        k = _emit(out, k, nodes[q], nodes[0], band, scope)
    return k


@njit(cache=True, nogil=True)
def _per_dump_stars(nodes, dumps, band, out, k):
    """Stars within each dump; nodes sorted ascending, so each dump's nodes are contiguous."""
    s = 0
    while s < len(nodes):
        t = s + 1
        while t < len(nodes) and dumps[t] == dumps[s]:
            t += 1
        k = _star(nodes[s:t], band, PER_DUMP, out, k)
        s = t
    return k


@njit(cache=True, nogil=True)
def _bucket_edges_kernel(band, bh, node, dump, ex_hi, ex_lo, want, out):
    """Star edges of every bucket of key rows sorted by (band, bh, ex_hi, ex_lo, node); returns
    the number of rows written to `out`.

    Exact buckets (band -1) are split by the full 128-bit hash; LSH buckets
    keep one member per exact text (per dump, for the per-dump graph).
    """
    n, k, i = len(node), 0, 0
    members = np.empty(n, np.int64)      # globally surviving members of a bucket
    per_dump = np.empty(n, np.int64)     # per-dump survivors and their dumps
    per_dump_dumps = np.empty(n, np.int64)
    while i < n:
        j = i + 1
        while j < n and band[j] == band[i] and bh[j] == bh[i]:
            j += 1
        g = 0   # globally surviving members: first (smallest) node of each exact run
        p = 0   # per-dump survivors: first node of each dump within each exact run
        s = i
        while s < j:
            t = s + 1
            while t < j and ex_hi[t] == ex_hi[s] and ex_lo[t] == ex_lo[s]:
                t += 1
            if band[i] == EXACT_BAND:
                if want & GLOBAL:
                    k = _star(node[s:t], band[i], GLOBAL, out, k)
                if want & PER_DUMP:
                    k = _per_dump_stars(node[s:t], dump[s:t], band[i], out, k)
            else:
                members[g] = node[s]
                g += 1
                for q in range(s, t):
                    if q == s or dump[q] != dump[q - 1]:
                        per_dump[p], per_dump_dumps[p] = node[q], dump[q]
                        p += 1
            s = t
        if band[i] != EXACT_BAND:
            if want & GLOBAL and g > 1:
                k = _star(np.sort(members[:g]), band[i], GLOBAL, out, k)
            if want & PER_DUMP and p > 1:
                by = np.argsort(per_dump[:p], kind="mergesort")
                k = _per_dump_stars(per_dump[:p][by], per_dump_dumps[:p][by], band[i], out, k)
        i = j
    return k


def bucket_edges(batches: Iterator[pa.RecordBatch], want: int) -> Iterator[pa.RecordBatch]:
    """One task's key rows (whole buckets) -> (src, dst, band, scope) star edges."""
    table = pa.Table.from_batches(list(batches), schema=pa.schema(
        [("band", pa.int32()), ("bh", pa.int64()), ("node", pa.int64()), ("dump_idx", pa.int32()),
         ("ex_hi", pa.int64()), ("ex_lo", pa.int64())]))
    cols = {c: table.column(c).to_numpy() for c in table.column_names}
    order = np.lexsort((cols["node"], cols["ex_lo"], cols["ex_hi"], cols["bh"], cols["band"]))
    out = np.empty((2 * len(order), 4), np.int64)
    k = _bucket_edges_kernel(*(cols[c][order] for c in ("band", "bh", "node")),
                             cols["dump_idx"][order].astype(np.int64),
                             *(cols[c][order] for c in ("ex_hi", "ex_lo")), want, out)
    out = out[:k]
    yield pa.RecordBatch.from_arrays(
        [pa.array(out[:, 0]), pa.array(out[:, 1]), pa.array(out[:, 2].astype(np.int32)),
         pa.array(out[:, 3].astype(np.int8))], names=["src", "dst", "band", "scope"])


def raw_edges(sigs: "DataFrame", want: int) -> "DataFrame":
    """Star edges of every exact group and LSH bucket, before merging across bands: one shuffle."""
    keys = sigs.select("node", "dump_idx", "exact", "bands").mapInArrow(
        lambda it: (key_rows_batch(b) for b in it), KEY_DDL)
    return keys.repartition("band", "bh").mapInArrow(lambda it: bucket_edges(it, want), RAW_EDGE_DDL)


# --- verification: the Jaccard of an edge's two ends -------------------------------------

def _rows_of(binary: pa.Array, dtype=np.uint32) -> np.ndarray:
    """A (n, k) view of equal-width binary values (signatures), the inverse of `dedup._fixed_binary`."""
    if isinstance(binary, pa.ChunkedArray):
        binary = binary.combine_chunks()
    n = len(binary)
    if n == 0:
        return np.zeros((0, 0), dtype=dtype)
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int32)[binary.offset: binary.offset + n + 1]
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
    return data.view(dtype).reshape(n, -1)


def _sets_of(binary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, uint32 values) of binary values that each hold a sorted shingle set."""
    if isinstance(binary, pa.ChunkedArray):
        binary = binary.combine_chunks()
    offsets = np.frombuffer(binary.buffers()[1], dtype=np.int32)[binary.offset: binary.offset + len(binary) + 1]
    end = int(offsets[-1]) if len(binary) else 0
    data = np.frombuffer(binary.buffers()[2], dtype=np.uint8)[:end].view(np.uint32) if end else np.zeros(0, np.uint32)
    return (offsets // 4).astype(np.int64), data


def pair_jaccard(a: pa.Array, b: pa.Array, exact: bool = False) -> np.ndarray:
    """Jaccard of row k of `a` and `b`: the signatures' share of equal positions (the estimate) or,
    with `exact`, the shingle sets' exact Jaccard."""
    if exact:
        from crawl2model.pipeline.minhash import set_jaccard

        return set_jaccard(*_sets_of(a), *_sets_of(b))
    a, b = _rows_of(a), _rows_of(b)
    return (a == b).mean(axis=1) if len(a) else np.zeros(0)


def jaccard_batch(batch: pa.RecordBatch, exact: bool = False) -> pa.RecordBatch:
    """(src, dst, sig_src, sig_dst, *other) -> (src, dst, *other, jaccard), by `pair_jaccard`.

    Other columns pass through, so a caller needs no join to get them back.
    """
    j = pair_jaccard(batch.column("sig_src"), batch.column("sig_dst"), exact)
    names = [n for n in batch.schema.names if n not in ("sig_src", "sig_dst")]
    return pa.RecordBatch.from_arrays([batch.column(n) for n in names] + [pa.array(j, pa.float64())],
                                      names=[*names, "jaccard"])
