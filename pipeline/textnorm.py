"""Text normalization and shingling for deduplication, on Arrow string buffers.

Normalization is NFKC, lowercase, every decimal digit -> "0", punctuation,
symbols and invisible format characters removed, whitespace collapsed to one
space, stripped.

Why not one Arrow kernel per step: measured on 500-word pages, the RE2
``replace_substring_regex`` kernels for the class steps run at 13-23k
docs/s each and ``utf8_normalize`` at 50-300 MB/s, each slower than the
whole signature budget. So Arrow's own kernels define the behaviour, and
numba replays it: once per process, RE2 (``\\p{..}`` classes) classifies
every code point and ``utf8_lower(utf8_normalize(c, NFKC))`` maps every
code point; one numba pass over the UTF-8 bytes of the Arrow buffer then
maps, classifies, tokenizes and hashes. The per-character replay equals the
whole-string kernels whenever NFKC is context-free on the row (no combining
marks, conjoining jamo or unassigned code points: UAX #15's quick check
made strict); the few rows where it is not go through the Arrow kernels
first. Tests check both paths against the plain Arrow pipeline.

Tokens are space-separated words, except that every Han, kana and Hangul
character is a token of its own: Chinese and Japanese have no spaces, and
word shingles would make each such page one giant shingle.
"""
from __future__ import annotations

import hashlib
import inspect
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crawl2model.core.resources import publish_folder, user_cache

try:
    from numba import njit
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pipeline.textnorm and pipeline.minhash need numba (tested with numba 0.68.1): "
        "install the data extra, `pip install 'crawl2model[data]'`") from exc

# Character classes of the lookup table.
KEEP, SPACE, DIGIT, CJK, DROP = 0, 1, 2, 3, 4

# RE2 classes per character class (later entries win). Code points are
# written as \x{..} escapes: pasted characters could be silently rewritten
# by an editor's Unicode normalization.
_CLASS_PATTERNS = (
    (CJK, r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\x{30FC}]"),  # U+30FC: the kana length mark (Common)
    (DROP, r"[\p{P}\p{S}\p{Cc}\p{Cf}\x{FE00}-\x{FE0F}\x{E0100}-\x{E01EF}]"),  # symbols win: CJK radicals are So
    (DIGIT, r"\p{Nd}"),
    (SPACE, r"[\p{Z}\t\n\v\f\r\x{85}]"),
)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class CharTables(NamedTuple):
    """Per-code-point tables the kernels read (a NamedTuple so numba takes it as one argument)."""

    classes: np.ndarray      # uint8[0x110000], KEEP..DROP, of the code point itself
    context_free: np.ndarray  # bool[0x110000]: NFKC of a row made of such code points is per character
    map_offsets: np.ndarray  # int64[0x110001] into map_data
    map_data: np.ndarray     # UTF-8 of utf8_lower(utf8_normalize(chr(cp), NFKC)) for every cp


@lru_cache(maxsize=1)
def _all_chars() -> tuple[np.ndarray, pa.Array]:
    """Every code point that valid UTF-8 can hold, and the same as a one-character-per-row string array."""
    cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)])
    data = "".join(map(chr, cps.tolist())).encode("utf-8")
    lengths = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return cps, pa.StringArray.from_buffers(len(cps), pa.py_buffer(offsets), pa.py_buffer(data))


def _matching(pattern: str) -> np.ndarray:
    """bool[0x110000]: code points that the RE2 class pattern matches as a whole."""
    cps, chars = _all_chars()
    hit = np.zeros(0x110000, dtype=bool)
    hit[cps[pc.match_substring_regex(chars, f"^{pattern}$").to_numpy(zero_copy_only=False)]] = True
    return hit


@lru_cache(maxsize=1)
def char_tables() -> CharTables:
    """The tables: built once per machine (~1.3 s of RE2 and NFKC over every code point) and
    kept under the user's cache, so a fresh Python worker, of which dedup starts one per core,
    loads 15 MB in milliseconds instead. Keyed by pyarrow's version (its RE2 and utf8proc
    define the classes and the mapping) and by the code that builds them."""
    folder = _tables_folder()
    try:
        tables = CharTables(*(np.load(folder / f"{name}.npy") for name in CharTables._fields))
        if len(tables.classes) == len(tables.context_free) == len(tables.map_offsets) - 1 == 0x110000:
            return tables
    except (OSError, ValueError):
        pass
    tables = _build_char_tables()
    _save_tables(tables, folder)
    return tables


def _tables_folder() -> Path:
    source = inspect.getsource(_build_char_tables) + repr(_CLASS_PATTERNS) + repr((KEEP, SPACE, DIGIT, CJK, DROP))
    key = hashlib.sha1(f"{pa.__version__}|{source}".encode()).hexdigest()[:16]
    return user_cache("textnorm", f"char-tables-{key}")


def _save_tables(tables: CharTables, folder: Path) -> None:
    def write(tmp: Path) -> None:
        for name, array in zip(CharTables._fields, tables):
            np.save(tmp / f"{name}.npy", array)

    try:
        publish_folder(folder, write)
    except OSError:  # a read-only cache: this process keeps its own copy
        pass


def _build_char_tables() -> CharTables:
    """Context-free code points: assigned (as RE2 knows them: a newer
    Unicode in utf8proc might map what RE2 calls unassigned), not a mark
    (covers combining class > 0 and the vowel signs that compose with what
    precedes them), not a conjoining Hangul jamo (composed algorithmically),
    and mapping under NFKC to something that starts with such a code point
    (so nothing composes or reorders across the boundary). Variation
    selectors count as context-free: marks, but combining class 0 and in no
    composition.
    """
    cps, chars = _all_chars()
    classes = np.full(0x110000, KEEP, dtype=np.uint8)
    for cls, pattern in _CLASS_PATTERNS:
        classes[_matching(pattern)] = cls
    classes[0xD800:0xE000] = DROP  # lone surrogates cannot be valid UTF-8; drop rather than guess

    starter = _matching(r"[\p{L}\p{N}\p{P}\p{S}\p{Z}\p{C}]") & ~_matching(r"\p{M}")
    starter[0x1100:0x1200] = starter[0xA960:0xA980] = starter[0xD7B0:0xD800] = False
    # Variation selectors are marks of combining class 0 that no composition uses, and the web
    # is full of them ("❤️" is U+2764 U+FE0F): without this, every emoji page takes the slow path.
    starter[0xFE00:0xFE10] = starter[0xE0100:0xE01F0] = True
    starter[:0x80] = True
    nfkc = pc.utf8_normalize(chars, "NFKC")
    first = pc.utf8_slice_codeunits(nfkc, 0, 1)
    first_cp = np.zeros(len(cps), dtype=np.int64)
    nonempty = pc.greater(pc.binary_length(first), 0).to_numpy(zero_copy_only=False)
    first_cp[nonempty] = [ord(c) for c in first.filter(pa.array(nonempty)).to_pylist()]
    context_free = np.zeros(0x110000, dtype=bool)
    context_free[cps] = starter[cps] & nonempty & starter[first_cp]

    mapped = pc.utf8_lower(nfkc)
    _, offsets_buf, data_buf = mapped.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[:len(cps) + 1].astype(np.int64)
    lengths = np.zeros(0x110000, dtype=np.int64)
    lengths[cps] = np.diff(offsets)
    map_offsets = np.concatenate([[0], np.cumsum(lengths)])  # surrogates map to nothing
    map_data = np.frombuffer(data_buf, dtype=np.uint8)[:offsets[-1]].copy()  # writable, as loaded ones are
    return CharTables(classes, context_free, map_offsets, map_data)


def utf8_view(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8, offsets int64[n+1]) of a string array, without copying the text.

    Nulls become empty strings (a null slot may still own bytes in Arrow), and
    string and large_string (Spark's default for Arrow batches) read alike.
    """
    arr = _string_array(arr)
    if arr.null_count:
        arr = arr.fill_null("")
    _, offsets_buf, data_buf = arr.buffers()
    width = np.int32 if pa.types.is_string(arr.type) else np.int64
    offsets = np.frombuffer(offsets_buf, dtype=width)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return data, offsets.astype(np.int64)


def _string_array(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    return arr


class Part(NamedTuple):
    """Rows of a batch ready for a kernel: doc k is data[offsets[docs[k]]:offsets[docs[k]+1]], result row rows[k]."""

    data: np.ndarray
    offsets: np.ndarray
    docs: np.ndarray
    rows: np.ndarray
    apply_map: bool


def prepare(texts: pa.Array | pa.ChunkedArray) -> list[Part]:
    """Split a batch into rows the kernels map themselves and rows Arrow must NFKC first."""
    texts = _string_array(texts)
    tables = char_tables()
    data, offsets = utf8_view(texts)
    free = np.empty(len(texts), dtype=np.bool_)
    _context_free_rows(data, offsets, tables.context_free, free)
    rows = np.flatnonzero(free)
    parts = [Part(data, offsets, rows, rows, True)]
    if len(rows) < len(texts):
        rows = np.flatnonzero(~free)
        hard = pc.utf8_lower(pc.utf8_normalize(texts.take(pa.array(rows)), "NFKC"))
        hard_data, hard_offsets = utf8_view(hard)
        parts.append(Part(hard_data, hard_offsets, np.arange(len(rows)), rows, False))
    return parts


@njit(cache=True, nogil=True, inline="always")
def _decode(data: np.ndarray, i: int, end: int) -> tuple[int, int]:
    """(code point, byte length) at i; a malformed or cut sequence reads as one dropped byte."""
    b0 = np.int64(data[i])
    if b0 < 0x80:
        return b0, 1
    if b0 >= 0xF0:
        n, cp = 4, b0 & 0x07
    elif b0 >= 0xE0:
        n, cp = 3, b0 & 0x0F
    elif b0 >= 0xC0:
        n, cp = 2, b0 & 0x1F
    else:
        return 0xD800, 1
    if i + n > end:
        return 0xD800, 1
    for k in range(1, n):
        cp = (cp << 6) | (np.int64(data[i + k]) & 0x3F)
    if cp >= 0x110000:
        return 0xD800, 1
    return cp, n


@njit(cache=True, nogil=True)
def _context_free_rows(data, offsets, context_free, out):
    for row in range(len(offsets) - 1):
        ok = True
        i, end = offsets[row], offsets[row + 1]
        while i < end:
            if data[i] < 0x80:
                i += 1
                continue
            cp, n = _decode(data, i, end)
            if not context_free[cp]:
                ok = False
                break
            i += n
        out[row] = ok


@njit(cache=True, nogil=True)
def fmix64(h: np.uint64) -> np.uint64:
    """MurmurHash3's 64-bit finalizer: FNV's low bits are weak, shingles need all 64 mixed."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True, inline="always")
def _source(data, i, end, tables, apply_map):
    """Where the normalized bytes of the character at i are: (array, start, stop, input width)."""
    cp, width = _decode(data, i, end)
    if apply_map:
        return tables.map_data, tables.map_offsets[cp], tables.map_offsets[cp + 1], width
    return data[i:i + width], 0, width, width


@njit(cache=True, nogil=True, inline="always")
def _ascii(b, apply_map):
    return b + 32 if apply_map and 65 <= b <= 90 else b


@njit(cache=True, nogil=True)
def _doc_tokens(data, start, end, tables, apply_map, toks, limit) -> int:
    """Hash the tokens of one document into toks (at most limit); return how many.

    A token's hash is FNV-1a over its normalized bytes (digits hashed as "0",
    dropped characters skipped), so raw and pre-normalized text give the same
    tokens: signatures() never has to materialize the normalized string.
    """
    classes = tables.classes
    n = 0
    h = _FNV_OFFSET
    in_token = False
    i = start
    while i < end and n < limit:
        b = data[i]
        if b < 0x80:  # the common case, kept free of the mapping indirection
            b = _ascii(b, apply_map)
            cls = classes[b]
            if cls == KEEP:
                h = (h ^ np.uint64(b)) * _FNV_PRIME
                in_token = True
            elif cls == DIGIT:
                h = (h ^ np.uint64(48)) * _FNV_PRIME
                in_token = True
            elif cls == SPACE and in_token:
                toks[n] = fmix64(h)
                n += 1
                h = _FNV_OFFSET
                in_token = False
            i += 1
            continue
        src, s, stop, width = _source(data, i, end, tables, apply_map)
        while s < stop and n < limit:
            cp, w = _decode(src, s, stop)
            cls = classes[cp]
            if cls == KEEP:
                for k in range(w):
                    h = (h ^ np.uint64(src[s + k])) * _FNV_PRIME
                in_token = True
            elif cls == DIGIT:
                h = (h ^ np.uint64(48)) * _FNV_PRIME
                in_token = True
            elif cls == SPACE or cls == CJK:
                if in_token:
                    toks[n] = fmix64(h)
                    n += 1
                    h = _FNV_OFFSET
                    in_token = False
                if cls == CJK and n < limit:
                    c = _FNV_OFFSET
                    for k in range(w):
                        c = (c ^ np.uint64(src[s + k])) * _FNV_PRIME
                    toks[n] = fmix64(c)
                    n += 1
            s += w
        i += width
    if in_token and n < limit:
        toks[n] = fmix64(h)
        n += 1
    return n


@njit(cache=True, nogil=True)
def doc_shingles(data, start, end, tables, apply_map, ngram, max_shingles, toks, out) -> int:
    """Write the positional shingle hashes (uint32, repeats kept) of one document to out.

    The token scan stops once max_shingles shingles exist, so an 8 MB page
    costs no more than its first max_shingles words. A document with fewer
    than ngram tokens is one shingle of all of them.
    """
    n_tok = _doc_tokens(data, start, end, tables, apply_map, toks, max_shingles + ngram - 1)
    if n_tok == 0:
        return 0
    width = min(ngram, n_tok)
    count = n_tok - width + 1
    for s in range(count):
        # Independent multiply-adds by distinct odd constants per position (order matters), then one
        # finalizer: the tokens are already mixed, so no chained mixing per token is needed.
        h = np.uint64(width)
        mult = _GOLDEN
        for k in range(width):
            h += toks[s + k] * mult
            mult += _GOLDEN + _GOLDEN
        out[s] = np.uint32(fmix64(h) >> np.uint64(32))
    return count


@njit(cache=True, nogil=True)
def _normalize_kernel(data, offsets, docs, tables, apply_map, out, starts, ends, w):
    """Append each doc's normalized bytes to out from w; -1 when out is too small."""
    classes = tables.classes
    for k in range(len(docs)):
        i, end = offsets[docs[k]], offsets[docs[k] + 1]
        starts[k] = w
        pending_space = False
        while i < end:
            src, s, stop, width = _source(data, i, end, tables, apply_map)
            while s < stop:
                cp, n = _decode(src, s, stop)
                cls = classes[cp]
                if cls == SPACE:
                    pending_space = w > starts[k]
                elif cls != DROP:
                    if w + n + 1 > len(out):
                        return -1  # caller grows out and retries
                    if pending_space:
                        out[w] = 32
                        w += 1
                        pending_space = False
                    if cls == DIGIT:
                        out[w] = 48
                        w += 1
                    else:
                        for j in range(n):
                            out[w] = src[s + j]
                            w += 1
                s += n
            i += width
        ends[k] = w
    return w


@njit(cache=True, nogil=True)
def _shingle_sets_kernel(data, offsets, tables, ngram, max_shingles):
    """Distinct sorted shingle hashes of every row, concatenated, with row offsets."""
    n_rows = len(offsets) - 1
    row_offsets = np.zeros(n_rows + 1, dtype=np.int64)
    toks = np.empty(max_shingles + ngram, dtype=np.uint64)
    buf = np.empty(max_shingles, dtype=np.uint32)
    out = np.empty(max(16, (len(data) // 4)), dtype=np.uint32)
    w = 0
    for row in range(n_rows):
        count = doc_shingles(data, offsets[row], offsets[row + 1], tables, False, ngram, max_shingles, toks, buf)
        if w + count > len(out):
            grown = np.empty(max(2 * len(out), w + count), dtype=np.uint32)
            grown[:w] = out[:w]
            out = grown
        if count:
            ordered = np.sort(buf[:count])
            out[w] = ordered[0]
            w += 1
            for k in range(1, count):
                if ordered[k] != ordered[k - 1]:
                    out[w] = ordered[k]
                    w += 1
        row_offsets[row + 1] = w
    return row_offsets, out[:w].copy()


def normalize(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Normalized text per row (large_string); null rows stay null."""
    texts = _string_array(texts)
    tables = char_tables()
    chunks, order = [], []
    for part in prepare(texts):
        size = int(part.offsets[-1] - part.offsets[0]) + 16
        while True:
            out = np.empty(size, dtype=np.uint8)
            starts = np.empty(len(part.docs), dtype=np.int64)
            ends = np.empty(len(part.docs), dtype=np.int64)
            if _normalize_kernel(part.data, part.offsets, part.docs, tables, part.apply_map,
                                 out, starts, ends, 0) >= 0:
                break
            size *= 2  # NFKC can lengthen text (a ligature or a "㍿" becomes several characters)
        lengths = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        compact = np.concatenate([out[s:e] for s, e in zip(starts, ends)]) if len(starts) else out[:0]
        chunks.append(pa.LargeStringArray.from_buffers(len(part.docs), pa.py_buffer(offsets),
                                                       pa.py_buffer(compact)))
        order.append(part.rows)
    merged = pa.concat_arrays(chunks).take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
    return _keep_nulls(texts, merged)


def _keep_nulls(source: pa.Array, result: pa.Array) -> pa.Array:
    """result with source's null rows set back to null (the kernels read nulls as empty)."""
    if not source.null_count:
        return result
    return pc.if_else(source.is_valid(), result, pa.scalar(None, result.type))


def shingle_hashes(normalized: pa.Array | pa.ChunkedArray, ngram: int,
                   max_shingles: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64[n+1], uint32 hashes): each row's set of distinct shingle hashes, sorted."""
    data, offsets = utf8_view(normalized)
    return _shingle_sets_kernel(data, offsets, char_tables(), ngram, max_shingles)


def exact_hash(normalized: pa.Array | pa.ChunkedArray) -> pa.Array:
    """128-bit BLAKE2b of each row's bytes, as 32 hex characters.

    128 bits, not 64: across billions of pages a 64-bit hash expects a few
    false "exact duplicates", each a unique page deleted without a trace.
    """
    normalized = _string_array(normalized)
    data, offsets = utf8_view(normalized)
    view = memoryview(data)
    hashes = pa.array([hashlib.blake2b(view[offsets[i]:offsets[i + 1]], digest_size=16).hexdigest()
                       for i in range(len(offsets) - 1)], type=pa.string())
    return _keep_nulls(normalized, hashes)
