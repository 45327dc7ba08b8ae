"""MinHash signatures and LSH banding math for near-duplicate detection.

Pure functions on Arrow arrays and numpy; the Spark dedup job calls them
inside ``mapInArrow``. Text -> signature is one pass: Arrow kernels for NFKC
and lowercasing, then one numba kernel per batch that walks the UTF-8 bytes,
tokenizes, hashes shingles and takes the minima, with no Python per
document or per shingle.

Two permutation schemes over the same 32-bit shingle hashes:

- ``"datasketch"``: datasketch's classic ("legacy") k-permutation MinHash,
  ``((a*h + b) mod 2^64) mod (2^61-1)``, masked to 32 bits, with a and b
  drawn exactly as datasketch draws them from ``RandomState(seed)``. Given
  our shingle hashes through an identity ``hashfunc``, datasketch produces
  the same signatures (tested).
- ``"fast"`` (default): k affine permutations ``a*h + b mod 2^32`` (a odd,
  so each is a bijection) of the MurmurHash3-finalized shingle hash. Pure
  32-bit multiply-add-min, which LLVM vectorizes 8 lanes wide; it is also
  datasketch >= 2.0's "affine32" scheme, so it too is checked against
  datasketch. Its Jaccard-estimate error is measured against the
  "datasketch" scheme in tests and ``bench/dedup.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from crawl2model.core.config import DEFAULT_SEED
from crawl2model.pipeline.textnorm import (  # noqa: F401  (normalize, shingle_hashes, exact_hash are this module's API too)
    char_tables,
    doc_shingles,
    exact_hash,
    fmix64,
    njit,
    normalize,
    prepare,
    shingle_hashes,
)

SCHEMES = ("fast", "datasketch")
MAX_HASH = np.uint32(0xFFFFFFFF)
_MERSENNE = (1 << 61) - 1


@dataclass(frozen=True)
class MinHashParams:
    num_perm: int = 128
    ngram: int = 5
    seed: int = DEFAULT_SEED
    scheme: str = "fast"
    max_shingles: int = 100_000

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {self.scheme!r}")
        if self.num_perm < 1 or self.ngram < 1 or self.max_shingles < 1:
            raise ValueError("num_perm, ngram and max_shingles must be positive")


@lru_cache(maxsize=16)
def permutations(scheme: str, num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) as datasketch draws them for this scheme, seed and num_perm.

    The draw order is part of the contract: changing it changes every
    signature, so it copies datasketch's ``_init_permutations`` call for call.
    """
    gen = np.random.RandomState(seed)
    if scheme == "datasketch":
        ab = np.array([(gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
                       for _ in range(num_perm)], dtype=np.uint64).T
        return np.ascontiguousarray(ab[0]), np.ascontiguousarray(ab[1])
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@njit(cache=True, nogil=True)
def _fmix32(h):
    h ^= h >> np.uint32(16)
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return h ^ (h >> np.uint32(16))


@njit(cache=True, nogil=True)
def _min_affine32(shingles, count, a, b, row):
    """row[j] = min over shingles of a[j]*fmix32(h) + b[j] mod 2^32."""
    acc = row.copy()  # contiguous and unaliased, so LLVM vectorizes the inner loop
    for s in range(count):
        h = _fmix32(shingles[s])
        for j in range(len(acc)):
            acc[j] = min(acc[j], np.uint32(a[j] * h + b[j]))
    row[:] = acc


@njit(cache=True, nogil=True)
def _min_mersenne(shingles, count, a, b, row):
    """row[j] = min over shingles of ((a[j]*h + b[j]) mod 2^64 mod (2^61-1)) & (2^32-1).

    The uint64 wrap-around before the modulo is datasketch's (numpy's)
    behaviour, kept on purpose; the modulo uses the Mersenne identity
    2^61 = 1 instead of a division.
    """
    p = np.uint64(_MERSENNE)
    acc = row.copy()
    for s in range(count):
        h = np.uint64(shingles[s])
        for j in range(len(acc)):
            x = a[j] * h + b[j]
            r = (x & p) + (x >> np.uint64(61))
            r = r - p if r >= p else r
            acc[j] = min(acc[j], np.uint32(r & np.uint64(0xFFFFFFFF)))
    row[:] = acc


@njit(cache=True, nogil=True)
def _signatures_kernel(data, offsets, docs, rows, apply_map, tables, ngram, max_shingles, a, b, mersenne, out):
    toks = np.empty(max_shingles + ngram, dtype=np.uint64)
    shingles = np.empty(max_shingles, dtype=np.uint32)
    for k in range(len(docs)):
        count = doc_shingles(data, offsets[docs[k]], offsets[docs[k] + 1], tables, apply_map,
                             ngram, max_shingles, toks, shingles)
        if mersenne:
            _min_mersenne(shingles, count, a, b, out[rows[k]])
        else:
            _min_affine32(shingles, count, a, b, out[rows[k]])


def signatures(texts: pa.Array | pa.ChunkedArray, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """uint32 [n_docs, num_perm] MinHash signatures of raw texts (normalized here).

    32 bits per value, because both schemes permute 32-bit shingle hashes:
    wider values would carry no extra information. An empty (or null)
    document has no shingles and keeps the all-0xFFFFFFFF signature.
    """
    a, b = permutations(params.scheme, params.num_perm, params.seed)
    out = np.full((len(texts), params.num_perm), MAX_HASH, dtype=np.uint32)
    for part in prepare(texts):
        _signatures_kernel(part.data, part.offsets, part.docs, part.rows, part.apply_map, char_tables(),
                           params.ngram, params.max_shingles, a, b, params.scheme == "datasketch", out)
    return out


def signatures_from_shingles(offsets: np.ndarray, hashes: np.ndarray, params: MinHashParams) -> np.ndarray:
    """Signatures of precomputed shingle sets (``shingle_hashes`` output), for checks and benchmarks."""
    a, b = permutations(params.scheme, params.num_perm, params.seed)
    out = np.full((len(offsets) - 1, params.num_perm), MAX_HASH, dtype=np.uint32)
    _sets_kernel(offsets, hashes, a, b, params.scheme == "datasketch", out)
    return out


@njit(cache=True, nogil=True)
def _sets_kernel(offsets, hashes, a, b, mersenne, out):
    for row in range(len(offsets) - 1):
        part = hashes[offsets[row]:offsets[row + 1]]
        if mersenne:
            _min_mersenne(part, len(part), a, b, out[row])
        else:
            _min_affine32(part, len(part), a, b, out[row])


def jaccard_from_signatures(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Fraction of equal positions: a float for two signatures, an array row by row for two matrices."""
    equal = np.asarray(a) == np.asarray(b)
    if equal.ndim == 1:
        return float(equal.mean())
    return equal.mean(axis=-1)


@njit(cache=True, nogil=True)
def _set_jaccard_kernel(a_off, a, b_off, b, out):
    for k in range(len(out)):
        i, ie, j, je = a_off[k], a_off[k + 1], b_off[k], b_off[k + 1]
        inter = 0
        while i < ie and j < je:
            if a[i] == b[j]:
                inter += 1
                i += 1
                j += 1
            elif a[i] < b[j]:
                i += 1
            else:
                j += 1
        union = (a_off[k + 1] - a_off[k]) + (b_off[k + 1] - b_off[k]) - inter
        out[k] = inter / union if union else 0.0


def set_jaccard(a_off: np.ndarray, a: np.ndarray, b_off: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact Jaccard of row k of two collections of sorted distinct shingle sets (offsets, values)."""
    out = np.zeros(len(a_off) - 1, dtype=np.float64)
    _set_jaccard_kernel(a_off, a, b_off, b, out)
    return out


@lru_cache(maxsize=64)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _integrate_candidate(lo: float, hi: float, bands: np.ndarray, rows: np.ndarray, degree: int) -> np.ndarray:
    """Integral of 1-(1-s^r)^b over [lo, hi] for each (b, r), exactly.

    The integrand is a polynomial of degree r*b <= num_perm, so Gauss-
    Legendre with degree//2+1 nodes is exact up to rounding: the same values
    scipy's quad (which datasketch uses) converges to, without scipy.
    """
    nodes, weights = _gauss_legendre(degree // 2 + 1)
    s = (hi - lo) / 2 * nodes + (hi + lo) / 2
    p = 1 - (1 - s[None, :] ** rows[:, None]) ** bands[:, None]
    return (hi - lo) / 2 * (p @ weights)


def fp_fn_mass(threshold: float, bands: int, rows: int) -> tuple[float, float]:
    """(false-positive mass below threshold, false-negative mass above it) of one banding."""
    b, r = np.array([bands], float), np.array([rows], float)
    fp = _integrate_candidate(0.0, threshold, b, r, bands * rows)[0]
    fn = (1.0 - threshold) - _integrate_candidate(threshold, 1.0, b, r, bands * rows)[0]
    return float(fp), float(fn)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5,
                  fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimising fp_weight*FP + fn_weight*FN mass.

    Same search order and strict "<" as datasketch's ``_optimal_param``, so
    near-ties resolve the same way.
    """
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([p[0] for p in pairs], float)
    rows = np.array([p[1] for p in pairs], float)
    fp = _integrate_candidate(0.0, threshold, bands, rows, num_perm)
    fn = (1.0 - threshold) - _integrate_candidate(threshold, 1.0, bands, rows, num_perm)
    error = fp * fp_weight + fn * fn_weight
    best = int(np.argmin(error))  # first minimum, as the strict "<" loop keeps
    return pairs[best]


def fp_fn_curve(bands: int, rows: int, points: int = 21) -> list[dict]:
    """The S-curve P(candidate | Jaccard s) = 1-(1-s^r)^b at evenly spaced s, for reports and plots."""
    return [{"jaccard": float(s), "p_candidate": float(1 - (1 - s ** rows) ** bands)}
            for s in np.linspace(0.0, 1.0, points)]


@njit(cache=True, nogil=True)
def _band_kernel(sigs, bands, rows, out):
    for d in range(sigs.shape[0]):
        for band in range(bands):
            h = fmix64(np.uint64(band + 1) * np.uint64(0x9E3779B97F4A7C15))
            for r in range(rows):
                h = fmix64(h ^ np.uint64(sigs[d, band * rows + r]))
            out[d, band] = h


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 [n_docs, bands]: one hash per band, seeded with the band index.

    The band index is in the hash so that equal rows in different bands land
    in different buckets even if the caller forgets to key buckets by band.
    """
    if bands * rows > sigs.shape[1]:
        raise ValueError(f"bands*rows = {bands * rows} exceeds num_perm = {sigs.shape[1]}")
    out = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    _band_kernel(np.ascontiguousarray(sigs), bands, rows, out)
    return out
