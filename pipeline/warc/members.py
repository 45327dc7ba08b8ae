"""Buffered bytes of crawl files: plain files, and gzip files member by member.

Crawl files of a gigabyte or more are read inside Spark tasks, so reading
streams in bounded pieces, and a gzip file is decompressed one member at a
time, knowing where each member starts: that start is a record's offset, and
after a corrupt member the reader scans forward to the next member that
really holds a record.
"""

from __future__ import annotations

import re
import zlib
from typing import BinaryIO, Iterator

from crawl2model.core.fs import filesystem
from crawl2model.pipeline.warc.headers import looks_like_record

try:   # ISA-L inflates gzip members ~1.7x faster than zlib; same API
    from isal import isal_zlib as _inflate_lib
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (_inflate_lib.error, zlib.error)
except ImportError:
    _inflate_lib = zlib
    _INFLATE_ERRORS = (zlib.error,)

_GZIP_MAGIC = b"\x1f\x8b\x08"
_LOCAL_CHUNK = 1 << 20        # plain-file and compressed read size, local disk
_REMOTE_CHUNK = 8 << 20       # fewer, larger ranged GETs on object stores
# Read size while looking for the next member or checking the first two: what is
# sought is near, and a remote chunk would fetch megabytes per split to find it.
PROBE_CHUNK = 64 << 10
_FEED = 32 << 10              # compressed bytes per decompress() call: keeps unused_data copies small
_OUT = 1 << 20                # decompressed bytes per call: bounds memory on gzip bombs
PROBE_IN = 8 << 10            # compressed bytes tried when checking a candidate member
_PROBE_OUT = 4 << 10
_WS = b" \t\r\n"


class GzipError(Exception):
    """The current gzip member cannot be decompressed (corrupt, or cut at end of file)."""

    def __init__(self, member: int, detail: str, at_eof: bool):
        super().__init__(detail)
        self.member, self.detail, self.at_eof = member, detail, at_eof


def open_crawl_file(source: str | BinaryIO) -> tuple[BinaryIO, bool, int]:
    """File object, whether we own it, and a read size suited to where it lives."""
    if not isinstance(source, str):
        return source, False, _LOCAL_CHUNK
    import pyarrow.fs as pafs

    try:
        if "://" in source and not source.startswith("file://"):
            fs, path = filesystem(source)
            return fs.open_input_file(path), True, _REMOTE_CHUNK
        return pafs.LocalFileSystem().open_input_file(source.removeprefix("file://")), True, _LOCAL_CHUNK
    except FileNotFoundError:
        raise FileNotFoundError(f"crawl file not found: {source}") from None
    except (OSError, ValueError) as e:   # pyarrow says ArrowInvalid (a ValueError) for unknown schemes
        raise OSError(f"cannot open crawl file {source}: {e}") from None


class Source:
    """Buffered bytes of one unit: a gzip member, or a whole plain file.

    Record parsing only sees the current unit, so a record can never swallow
    the next gzip member: a member-per-record file keeps its framing even when
    a record inside lies about its length.
    """

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0

    def _produce(self) -> bytes:
        """Next bytes of the current unit; b"" at its end."""
        raise NotImplementedError

    def offset(self) -> int:
        raise NotImplementedError

    def _more(self) -> bool:
        data = self._produce()
        if not data:
            return False
        self.buf = self.buf[self.pos:] + data if self.pos < len(self.buf) else data
        self.pos = 0
        return True

    def peek(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n and self._more():
            pass
        return self.buf[self.pos:self.pos + n]

    def find(self, sub: bytes, limit: int) -> int:
        """Index of `sub` relative to the position, searching at most `limit` bytes; -1 if absent."""
        while True:
            i = self.buf.find(sub, self.pos, self.pos + limit)
            if i >= 0:
                return i - self.pos
            if len(self.buf) - self.pos >= limit or not self._more():
                return -1

    def take(self, n: int) -> bytes:
        """Up to n bytes; fewer only at the end of the unit."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:  # the common case, without the generator
            self.pos = pos + n
            return buf[pos:pos + n]
        return b"".join(self._pieces(n))

    def _pieces(self, n: int) -> Iterator[bytes | memoryview]:
        """Consume up to n bytes (fewer only at the end of the unit), yielded as consecutive pieces
        without copying; `take` joins them, `skip` only counts them."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos >= n:
            self.pos = pos + n
            yield memoryview(buf)[pos:pos + n]
            return
        got = len(buf) - pos
        yield memoryview(buf)[pos:]
        self.buf, self.pos = b"", 0
        while got < n:
            data = self._produce()
            if not data:
                return
            need = n - got
            if len(data) > need:
                self.buf, self.pos = data, need
                yield memoryview(data)[:need]
                return
            yield data
            got += len(data)

    def search(self, pattern: re.Pattern[bytes], limit: int) -> re.Match[bytes] | None:
        """First match of `pattern` within `limit` bytes from the position (match indices are into self.buf)."""
        while True:
            m = pattern.search(self.buf, self.pos, self.pos + limit)
            if m or len(self.buf) - self.pos >= limit or not self._more():
                return m

    def skip(self, n: int) -> int:
        """Discard up to n bytes without keeping them (drains oversized blocks)."""
        return sum(len(piece) for piece in self._pieces(n))

    def skip_ws(self) -> None:
        while True:
            buf, pos = self.buf, self.pos
            n = len(buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < n or not self._more():
                return

    def scan(self, sub: bytes) -> bool:
        """Move to the next occurrence of `sub` in this unit; False (at unit end) if none."""
        keep = len(sub) - 1
        while True:
            i = self.buf.find(sub, self.pos)
            if i >= 0:
                self.pos = i
                return True
            self.pos = max(self.pos, len(self.buf) - keep)
            if not self._more():
                self.pos = len(self.buf)
                return False

    def advance(self) -> bool:
        """Move to the next unit once this one is exhausted; False at end of file."""
        return False


class PlainSource(Source):
    def __init__(self, f: BinaryIO, chunk: int, at: int):
        super().__init__()
        self.f, self.chunk = f, chunk
        self.seek(at)

    def seek(self, at: int) -> None:
        self.f.seek(at)
        self.end = at  # file offset just past self.buf
        self.buf, self.pos = b"", 0

    def _produce(self) -> bytes:
        data = self.f.read(self.chunk)
        self.end += len(data)
        return data

    def offset(self) -> int:
        return self.end - (len(self.buf) - self.pos)


class GzipSource(Source):
    """Decompresses member by member, knowing where in the file each member starts."""

    def __init__(self, f: BinaryIO, chunk: int):
        super().__init__()
        self.f, self.chunk = f, chunk
        self.cbuf = b""   # compressed bytes read from the file; file position == cpos + len(cbuf)
        self.cmv = memoryview(self.cbuf)
        self.cpos = -1    # file offset of cbuf[0]; -1: nothing read yet, so start_member seeks
        self.ci = 0       # next unread index in cbuf
        self.member = 0
        self.d = _inflate_lib.decompressobj(31)
        self.ended = True

    def offset(self) -> int:
        return self.member

    def start_member(self, at: int) -> bool:
        """Begin decompressing at file offset `at`; False at end of file."""
        if self.cpos <= at <= self.cpos + len(self.cbuf):
            self.ci = at - self.cpos
        else:
            self.f.seek(at)
            self._set_cbuf(b"", at)
        if self.ci >= len(self.cbuf) and not self._read_compressed():
            return False
        self.member = at
        self.d = _inflate_lib.decompressobj(31)
        self.ended = False
        self.buf, self.pos = b"", 0
        return True

    def _set_cbuf(self, data: bytes, cpos: int) -> None:
        self.cbuf, self.cmv, self.cpos, self.ci = data, memoryview(data), cpos, 0

    def _read_compressed(self) -> bool:
        data = self.f.read(self.chunk)
        if not data:
            return False
        self._set_cbuf(data, self.cpos + len(self.cbuf))
        return True

    def _produce(self) -> bytes:
        d = self.d
        while not self.ended:
            if self.ci >= len(self.cbuf) and not self._read_compressed():
                raise GzipError(self.member, f"gzip member at byte {self.member} does not end before end of file",
                                at_eof=True)
            feed = self.cmv[self.ci:self.ci + _FEED]
            try:
                out = d.decompress(feed, _OUT)
            except _INFLATE_ERRORS as e:
                raise GzipError(self.member, f"gzip member at byte {self.member}: {e}", at_eof=False) from None
            self.ended = d.eof
            rest = d.unused_data if d.eof else d.unconsumed_tail
            self.ci += len(feed) - len(rest)
            if out:
                return out
        return b""

    def advance(self) -> bool:
        return self.start_member(self.cpos + self.ci)

    def rescan(self, at: int, end: int | None) -> bool:
        """Start at the first member at or after `at` (and before `end`) that holds a record start."""
        found = scan_members(self.f, at, end, min(self.chunk, PROBE_CHUNK))
        self._set_cbuf(b"", -1)   # the scan moved the file position: force start_member to seek
        return found is not None and self.start_member(found)


def scan_members(f: BinaryIO, at: int, end: int | None, chunk: int) -> int | None:
    """Offset of the first gzip magic at/after `at` that decompresses to a WARC/ARC record start.

    Checking the decompressed head, not just the three magic bytes, is what
    keeps random matches inside compressed data from being taken for members.
    """
    f.seek(at)
    data, base, i, eof = b"", at, 0, False
    while True:
        if not eof and len(data) - i < PROBE_IN:
            more = f.read(chunk)
            eof = not more
            data, base, i = data[i:] + more, base + i, 0
        j = data.find(_GZIP_MAGIC, i)
        if j < 0:
            if eof:
                return None
            i = max(i, len(data) - 2)
            continue
        if end is not None and base + j >= end:
            return None
        if not eof and len(data) - j < PROBE_IN:
            i = j
            continue
        if looks_like_record(probe_member(data[j:j + PROBE_IN])):
            return base + j
        i = j + 1


def probe_member(data: bytes) -> bytes:
    """Decompressed head of the member starting data, as far as it decodes.

    Fed in small pieces so that a member cut short still shows its first
    bytes: a scan must find a damaged member where sequential reading would
    arrive at it, or the two would report it differently.
    """
    d = zlib.decompressobj(31)
    out = b""
    try:
        for i in range(0, len(data), 64):
            out += d.decompress(data[i:i + 64], _PROBE_OUT - len(out))
            if len(out) >= _PROBE_OUT or d.eof:
                break
    except zlib.error:
        pass
    return out
