"""Streaming reader for WARC/WET and ARC crawl files, plain or gzip-compressed.

The ingest stage runs this inside Spark tasks on files of a gigabyte or more,
so it streams (bounded memory per record), can start at any byte offset (one
file is split over several tasks), and never lets one bad record take the good
records around it down: problems come out as `Skip` items with a reason, and the
reader resynchronises at the next record it can recognise.

Offsets: a record's offset is the byte where it starts in a plain file, or the
start of the gzip member that holds it in a compressed one. A split [start, end)
yields exactly the items whose offset lies in it, which is what makes the
union of consecutive splits yield every record once.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

try:   # ISA-L inflates gzip members ~1.7x faster than zlib; same API
    from isal import isal_zlib as _inflate_lib
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (_inflate_lib.error, zlib.error)
except ImportError:
    _inflate_lib = zlib
    _INFLATE_ERRORS = (zlib.error,)
try:
    import brotli
    _BROTLI_ERRORS: tuple[type[Exception], ...] = (brotli.error,)
except ImportError:  # optional: br-encoded bodies are then reported as skips
    brotli = None
    _BROTLI_ERRORS = ()

__all__ = ["Record", "Skip", "iter_records", "is_splittable", "detect_format"]


@dataclass(slots=True)
class Record:
    """One crawl record. For HTTP responses `payload` is the entity body with
    transfer and content encodings removed and `content_type` the HTTP one;
    for other records they are the record block and its WARC/ARC type."""

    offset: int
    format: str
    rec_type: str
    url: str | None
    date: str | None
    record_id: str | None
    content_type: str | None
    http_status: int | None
    http_headers: dict[str, str] | None
    payload: bytes
    truncated: bool


@dataclass(slots=True)
class Skip:
    """Something at `offset` that could not be read as a record, with a snake_case reason."""

    offset: int
    reason: str
    detail: str


_GZIP_MAGIC = b"\x1f\x8b\x08"
_LOCAL_CHUNK = 1 << 20        # plain-file and compressed read size, local disk
_REMOTE_CHUNK = 8 << 20       # fewer, larger ranged GETs on object stores
_FEED = 32 << 10              # compressed bytes per decompress() call: keeps unused_data copies small
_OUT = 1 << 20                # decompressed bytes per call: bounds memory on gzip bombs
_PROBE_IN = 8 << 10           # compressed bytes tried when checking a candidate member
_PROBE_OUT = 4 << 10
_MAX_HEADER = 64 << 10        # WARC header block / ARC header line
_MAX_HTTP_HEADER = 256 << 10
_WS = b" \t\r\n"
_SLACK = 64                   # bytes of stray tail tolerated after a WARC block

_BLANK_LINE = re.compile(rb"\n\r*\n")
_WARC_TYPE_FIELD = re.compile(rb"\nWARC-Type:", re.I)
_WARC_VERSION = re.compile(r"WARC/\d+\.\d+")
_HTTP_STATUS = re.compile(rb"HTTP/\d+(?:\.\d+)?[ \t]+(\d{3})(?:[ \t\r\n]|$)")


class _BadRecord(Exception):
    """A framing problem: the stream position is unreliable, so the reader resynchronises."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class _GzipError(Exception):
    """The current gzip member cannot be decompressed (corrupt, or cut at end of file)."""

    def __init__(self, member: int, detail: str, at_eof: bool):
        super().__init__(detail)
        self.member, self.detail, self.at_eof = member, detail, at_eof


# --------------------------------------------------------------------------- sources


class _Source:
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


class _PlainSource(_Source):
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


class _GzipSource(_Source):
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
                raise _GzipError(self.member, f"gzip member at byte {self.member} does not end before end of file",
                                 at_eof=True)
            feed = self.cmv[self.ci:self.ci + _FEED]
            try:
                out = d.decompress(feed, _OUT)
            except _INFLATE_ERRORS as e:
                raise _GzipError(self.member, f"gzip member at byte {self.member}: {e}", at_eof=False) from None
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
        found = _scan_members(self.f, at, end, self.chunk)
        self._set_cbuf(b"", -1)   # the scan moved the file position: force start_member to seek
        return found is not None and self.start_member(found)


def _scan_members(f: BinaryIO, at: int, end: int | None, chunk: int) -> int | None:
    """Offset of the first gzip magic at/after `at` that decompresses to a WARC/ARC record start.

    Checking the decompressed head, not just the three magic bytes, is what
    keeps random matches inside compressed data from being taken for members.
    """
    f.seek(at)
    data, base, i, eof = b"", at, 0, False
    while True:
        if not eof and len(data) - i < _PROBE_IN:
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
        if not eof and len(data) - j < _PROBE_IN:
            i = j
            continue
        if _looks_like_record(_probe_member(data[j:j + _PROBE_IN])):
            return base + j
        i = j + 1


def _probe_member(data: bytes) -> bytes:
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


# --------------------------------------------------------------------------- header parsing


def _looks_like_record(head: bytes) -> bool:
    if head.startswith(b"WARC/"):
        return True
    line = head.split(b"\n", 1)[0]
    return _parse_arc_line(line) is not None


def _is_date(s: str) -> bool:
    return len(s) >= 12 and s.isascii() and s.isdigit()


def _parse_arc_line(line: bytes) -> tuple[str, str, str, int] | None:
    """(url, 14-digit date, mime, length) of an ARC v1 or v2 header line, else None.

    Fields are counted from the right because old ARC writers left spaces in URLs.
    """
    parts = line.decode("utf-8", "replace").rstrip("\r\n").split(" ")
    if len(parts) < 5 or not (parts[-1].isascii() and parts[-1].isdigit()):
        return None
    if _is_date(parts[-3]):          # v1: url ip date mime length
        url, date, mime = " ".join(parts[:-4]), parts[-3], parts[-2]
    elif len(parts) >= 10 and _is_date(parts[-8]):   # v2: url ip date mime code digest location offset file length
        url, date, mime = " ".join(parts[:-9]), parts[-8], parts[-7]
    else:
        return None
    if ":" not in url or "\ufffd" in url[:12]:
        return None
    return url, date, mime, int(parts[-1])


def _parse_warc_header(raw: bytes) -> dict[str, str]:
    text = raw.decode("utf-8", "replace")
    lines = text.split("\n")
    version = lines[0].rstrip("\r")
    if not _WARC_VERSION.fullmatch(version):
        raise _BadRecord("malformed_warc_header", f"bad WARC version line {version[:40]!r}")
    fields: dict[str, str] = {}
    last = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name[:1] not in (" ", "\t"):
            last = name.strip().lower()
            fields[last] = value.strip()
        elif line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
        elif line.strip():
            raise _BadRecord("malformed_warc_header", f"WARC header line without ':': {line[:60]!r}")
    length = fields.get("content-length")
    if length is None:
        raise _BadRecord("malformed_warc_header", "WARC header has no Content-Length")
    if not (length.isascii() and length.isdigit()):
        raise _BadRecord("malformed_warc_header", f"non-numeric Content-Length {length[:30]!r}")
    if "warc-type" not in fields:
        raise _BadRecord("malformed_warc_header", "WARC header has no WARC-Type")
    return fields


def _header_end(src: _Source, limit: int) -> int:
    """Length of the header block at the position (up to and including the blank line), or -1.

    Accepts LF and CRCRLF line ends next to the standard CRLF: some writers use them.
    """
    m = src.search(_BLANK_LINE, limit)
    return m.end() - src.pos if m else -1


def _warc_date(value: str | None) -> str | None:
    """WARC-Date without fractional seconds, so every stage sees one format."""
    if value and len(value) >= 19 and value[10] == "T":
        return value[:19] + "Z"
    return value or None


def _arc_date(digits: str) -> str:
    d = (digits + "00000000000000")[:14]
    return f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}Z"


# --------------------------------------------------------------------------- HTTP payloads


class _PayloadError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _parse_http(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and raw body of an HTTP response block."""
    if not block.startswith(b"HTTP/"):
        raise _PayloadError("missing_http_status", f"HTTP block starts with {block[:30]!r}, not a status line")
    status = _HTTP_STATUS.match(block)
    if not status:
        status_line = block.split(b"\n", 1)[0][:60]
        raise _PayloadError("malformed_http", f"bad HTTP status line {status_line!r}")
    m = _BLANK_LINE.search(block, 0, _MAX_HTTP_HEADER)
    if m:
        head, body = block[:m.start()], block[m.end():]
    elif len(block) < _MAX_HTTP_HEADER:
        head, body = block, b""      # headers only (HEAD, 304, ...), no blank line at the end
    else:
        raise _PayloadError("malformed_http", f"no end of HTTP headers within {_MAX_HTTP_HEADER} bytes")
    headers: dict[str, str] = {}
    last = None
    for line in head.decode("latin-1").split("\n")[1:]:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue  # servers send junk lines; the rest of the response is still usable
        last = name.strip().lower()
        value = value.strip()
        headers[last] = headers[last] + ", " + value if last in headers else value
    return int(status.group(1)), headers, body


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """Body without chunked framing, and whether it ended before the last chunk.

    A body whose first line is no chunk size was stored already de-chunked
    with the header left in place (common in archives) and passes unchanged.
    """
    out: list[bytes] = []
    i, n = 0, len(data)
    while i < n:
        j = data.find(b"\n", i, i + 1024)
        field = data[i:j].split(b";", 1)[0].strip() if j >= 0 else b""
        try:
            size = int(field, 16) if field.isalnum() else -1
        except ValueError:
            size = -1
        if size < 0:
            if i == 0:
                return data, False
            if j < 0 and n - i < 1024:
                break               # cut inside a chunk-size line
            raise _PayloadError("bad_chunked_encoding", f"bad chunk-size line {data[i:i + 30]!r} at body byte {i}")
        if size == 0:
            return b"".join(out), False
        start = j + 1
        out.append(data[start:start + size])
        i = start + size
        if data.startswith(b"\r\n", i):
            i += 2
        elif data.startswith(b"\n", i):
            i += 1
        elif i < n:
            raise _PayloadError("bad_chunked_encoding", f"chunk at body byte {start} not followed by CRLF")
    return b"".join(out), True


def _inflate(body: bytes, wbits: int, cap: int) -> tuple[bytes, bool]:
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, cap + 1)
    return out, not d.eof or len(out) > cap


def _decode_content(body: bytes, coding: str, cap: int) -> tuple[bytes, bool]:
    """Body with Content-Encoding removed, and whether it was cut (cap or truncated input)."""
    truncated = False
    for c in reversed([c.strip().lower() for c in coding.split(",")]):
        if c in ("", "identity", "none") or not body:
            continue
        try:
            if c in ("gzip", "x-gzip"):
                if not body.startswith(b"\x1f\x8b"):
                    continue  # stored already decoded, header left in place
                body, cut = _inflate(body, 31, cap)
            elif c == "deflate":
                try:
                    body, cut = _inflate(body, 15, cap)
                except zlib.error:
                    body, cut = _inflate(body, -15, cap)   # raw deflate, as many servers send it
            elif c == "br" and brotli is not None:
                d = brotli.Decompressor()
                body = d.process(body, output_buffer_limit=cap + 1)
                cut = len(body) > cap or not d.is_finished()
            else:
                raise _PayloadError("unsupported_content_encoding", f"Content-Encoding {c!r} is not supported")
        except zlib.error as e:
            raise _PayloadError("bad_content_encoding", f"{c} body does not decompress: {e}") from None
        except _BROTLI_ERRORS as e:
            raise _PayloadError("bad_content_encoding", f"br body does not decompress: {e}") from None
        truncated |= cut
    return body, truncated


def _http_payload(block: bytes, cap: int) -> tuple[int, dict[str, str], bytes, bool]:
    status, headers, body = _parse_http(block)
    truncated = False
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body, truncated = _dechunk(body)
    coding = headers.get("content-encoding")
    if coding:
        body, cut = _decode_content(body, coding, cap)
        truncated |= cut
    if len(body) > cap:
        body, truncated = body[:cap], True
    return status, headers, body, truncated


# --------------------------------------------------------------------------- records


def _read_block(src: _Source, length: int, want: int) -> bytes:
    """The first `want` bytes of a `length`-byte block; the rest is drained, not kept."""
    block = src.take(want)
    if len(block) < want or (length > want and src.skip(length - want) < length - want):
        raise _BadRecord("truncated_record", f"record block ends before its declared length {length}")
    return block


def _check_next(src: _Source, fmt: str, trailer: bytes) -> None:
    """Confirm the declared length: after the block comes the trailer, a record start, or the unit end.

    Peeking also finishes a gzip member, so its CRC is checked before the
    record is handed out.
    """
    trailer_ok = src.peek(len(trailer)) == trailer
    src.skip_ws()
    nxt = src.peek(512 if fmt == "warc" else 4096)
    if not nxt or trailer_ok or _looks_like_record(nxt):
        return
    if fmt == "warc":
        # Content-Lengths a few bytes short are a known writer bug: tolerate a short tail
        k = src.find(b"\nWARC/", _SLACK)
        if k >= 0 or len(src.peek(_SLACK + 1)) <= _SLACK:
            src.skip(k + 1 if k >= 0 else _SLACK)
            return
    raise _BadRecord("content_length_mismatch",
                         f"block is not followed by a record separator but by {nxt[:30]!r}")


def _read_warc(src: _Source, off: int, cap: int) -> Record | Skip:
    n = _header_end(src, _MAX_HEADER)
    if n < 0:
        raise _BadRecord("malformed_warc_header", f"no end of WARC header within {_MAX_HEADER} bytes")
    fields = _parse_warc_header(src.take(n))
    length = int(fields["content-length"])
    rec_type = fields["warc-type"].lower()
    wct = fields.get("content-type")
    is_http = rec_type == "response" and (wct is None or wct.lower().startswith("application/http"))
    want = min(length, cap + (_MAX_HTTP_HEADER if is_http else 0))
    block = _read_block(src, length, want)
    _check_next(src, "warc", b"\r\n\r\n")
    truncated = length > want or "warc-truncated" in fields
    url = fields.get("warc-target-uri")
    if url and url[0] == "<" and url[-1] == ">":
        url = url[1:-1]
    common = (off, "warc", rec_type, url, _warc_date(fields.get("warc-date")), fields.get("warc-record-id"))
    if is_http and (wct is not None or block.startswith(b"HTTP/")):
        try:
            status, headers, body, cut = _http_payload(block, cap)
        except _PayloadError as e:
            return Skip(off, e.reason, e.detail)
        ctype = headers.get("content-type") or fields.get("warc-identified-payload-type")
        return Record(*common, ctype, status, headers, body, truncated or cut)
    if len(block) > cap:
        block, truncated = block[:cap], True
    return Record(*common, wct, None, None, block, truncated)


def _read_arc(src: _Source, off: int, cap: int) -> Record | Skip:
    n = src.find(b"\n", _MAX_HEADER)
    line = src.peek(n + 1 if n >= 0 else 80)
    parsed = _parse_arc_line(line) if n >= 0 else None
    if parsed is None:
        raise _BadRecord("malformed_arc_header", f"bad ARC header line {line[:80]!r}")
    src.skip(n + 1)
    url, date, mime, length = parsed
    is_http = url.startswith(("http:", "https:"))
    want = min(length, cap + (_MAX_HTTP_HEADER if is_http else 0))
    block = _read_block(src, length, want)
    _check_next(src, "arc", b"\n")
    truncated = length > want
    rec_type = "warcinfo" if url.startswith("filedesc:") else "response"
    common = (off, "arc", rec_type, url, _arc_date(date), None)
    if is_http:
        try:
            status, headers, body, cut = _http_payload(block, cap)
        except _PayloadError as e:
            return Skip(off, e.reason, e.detail)
        return Record(*common, headers.get("content-type") or mime or None, status, headers, body, truncated or cut)
    if len(block) > cap:
        block, truncated = block[:cap], True
    return Record(*common, mime or None, None, None, block, truncated)


# --------------------------------------------------------------------------- iteration


def _resync(src: _Source, fmt: str, off: int) -> None:
    """Position at the next plausible record start after the bad one at `off`.

    A plain file is re-read from just after the bad record's start, because a
    wrong Content-Length may have swallowed good records behind it; a gzip
    member cannot be rewound, and records never cross members anyway.
    """
    if isinstance(src, _PlainSource):
        src.seek(off)
    if fmt == "warc":
        _next_warc_start(src)
        return
    while src.scan(b"\n"):
        src.skip(1)
        n = src.find(b"\n", _MAX_HEADER)
        if n >= 0 and _parse_arc_line(src.peek(n + 1)) is not None:
            return


def _next_warc_start(src: _Source) -> bool:
    """Move to the next line-initial "WARC/" whose header block has a WARC-Type field.

    Split starts and resynchronisation share this test so that both find the
    same record starts; the WARC-Type requirement keeps "WARC/1.0" lines in
    payload text from being taken for records, while a header that is broken
    in another way (say, no Content-Length) is still found and reported.
    """
    while src.scan(b"\nWARC/"):
        src.skip(1)
        n = _header_end(src, _MAX_HEADER)
        if n >= 0 and _WARC_TYPE_FIELD.search(src.peek(n)):
            return True
    return False


def _records(src: _Source, fmt: str, end: int | None, cap: int) -> Iterator[Record | Skip]:
    """Records and skips of one source until a record would start at or after `end`."""
    bad: int | None = None
    while True:
        if bad is not None:
            _resync(src, fmt, bad)
            bad = None
        src.skip_ws()
        if not src.peek(1):
            if not src.advance():
                return
            if end is not None and src.offset() >= end:
                return
            continue
        off = src.offset()
        if end is not None and off >= end:
            return
        try:
            if fmt == "warc":
                if src.peek(5) != b"WARC/":
                    raise _BadRecord("malformed_warc_header",
                                     f"expected 'WARC/' at record start, found {src.peek(20)!r}")
                yield _read_warc(src, off, cap)
            else:
                yield _read_arc(src, off, cap)
        except _BadRecord as e:
            bad = off
            yield Skip(off, e.reason, e.detail)


def _iter_gzip(f: BinaryIO, chunk: int, fmt: str, start: int, end: int | None,
               cap: int) -> Iterator[Record | Skip]:
    src = _GzipSource(f, chunk)
    if not (src.rescan(start, end) if start > 0 else src.start_member(0)):
        return
    while True:
        try:
            yield from _records(src, fmt, end, cap)
            return
        except _GzipError as e:
            # a member that runs to EOF may have swallowed damaged neighbours: rescan either way
            yield Skip(e.member, "truncated_record" if e.at_eof else "corrupt_gzip", e.detail)
            if not src.rescan(e.member + 1, end):
                return


def _iter_plain(f: BinaryIO, chunk: int, fmt: str, start: int, end: int | None,
                cap: int) -> Iterator[Record | Skip]:
    if start > 0:
        src = _PlainSource(f, chunk, start - 1)
        if not _next_warc_start(src):
            return
    else:
        src = _PlainSource(f, chunk, 0)
    yield from _records(src, fmt, end, cap)


def _open(source: str | BinaryIO) -> tuple[BinaryIO, bool, int]:
    """File object, whether we own it, and a read size suited to where it lives."""
    if not isinstance(source, str):
        return source, False, _LOCAL_CHUNK
    import pyarrow.fs as pafs

    try:
        if "://" in source and not source.startswith("file://"):
            fs, path = pafs.FileSystem.from_uri(source)
            return fs.open_input_file(path), True, _REMOTE_CHUNK
        return pafs.LocalFileSystem().open_input_file(source.removeprefix("file://")), True, _LOCAL_CHUNK
    except FileNotFoundError:
        raise FileNotFoundError(f"crawl file not found: {source}") from None
    except (OSError, ValueError) as e:   # pyarrow says ArrowInvalid (a ValueError) for unknown schemes
        raise OSError(f"cannot open crawl file {source}: {e}") from None


def _sniff(f: BinaryIO, chunk: int) -> tuple[bool, str | None]:
    """(gzip?, "warc"/"arc"/None) from the first record of the file.

    For gzip, a corrupt first member is passed over to the first good one.
    """
    f.seek(0)
    head = f.read(_PROBE_IN)
    gz = head.startswith(b"\x1f\x8b")
    if gz:
        head = _probe_member(head)
        if not _looks_like_record(head):
            at = _scan_members(f, 1, None, chunk)
            f.seek(at or 0)
            head = _probe_member(f.read(_PROBE_IN)) if at is not None else b""
    if head.startswith(b"WARC/"):
        return gz, "warc"
    if head.startswith(b"filedesc:"):
        return gz, "arc"
    return gz, "arc" if _parse_arc_line(head.split(b"\n", 1)[0]) else None


def iter_records(source: str | BinaryIO, *, start: int = 0, end: int | None = None,
                 max_payload_bytes: int = 16 * 2**20) -> Iterator[Record | Skip]:
    """Records (and skips) of a crawl file whose offsets lie in [start, end).

    `source` is a path or URI (opened through pyarrow.fs) or a seekable binary
    file object, which is left open. For a file that is not splittable, the
    range starting at 0 yields the whole file and later ranges yield nothing,
    so consecutive ranges always cover every record once. Bad content never
    raises; an unreadable path does.
    """
    f, owned, chunk = _open(source)
    try:
        gz, fmt = _sniff(f, chunk)
        fmt = fmt or "warc"
        if (start > 0 or end is not None) and not (_gzip_splittable(f, chunk) if gz else fmt == "warc"):
            if start > 0:
                return
            end = None      # the task that owns offset 0 reads an unsplittable file whole
        if gz:
            yield from _iter_gzip(f, chunk, fmt, start, end, max_payload_bytes)
        else:
            yield from _iter_plain(f, chunk, fmt, start, end, max_payload_bytes)
    finally:
        if owned:
            f.close()


def _gzip_splittable(f: BinaryIO, chunk: int) -> bool:
    """True when a member holds exactly one record and another member follows.

    That is the member-per-record layout; a single gzip stream (or members of
    several records) cannot be entered at an arbitrary member. The first
    member decides, or the first good one when it is damaged, so that one bad
    member does not send a whole file to a single task.
    """
    at: int | None = 0
    for _ in range(2):
        src = _GzipSource(f, chunk)
        if at is None or not src.start_member(at):
            return False
        try:
            reader = _read_warc if src.peek(5) == b"WARC/" else _read_arc
            reader(src, at, 1 << 16)      # ends with _check_next: the member must end right after the record
            src.skip_ws()
            return not src.peek(1) and src.advance()
        except (_BadRecord, _GzipError):
            at = _scan_members(f, at + 1, None, chunk)
    return False


def is_splittable(path: str | BinaryIO) -> bool:
    """Whether byte ranges of this file can be read by separate tasks (see iter_records)."""
    f, owned, chunk = _open(path)
    try:
        gz, fmt = _sniff(f, chunk)
        if gz:
            return _gzip_splittable(f, chunk)
        return fmt == "warc"
    finally:
        if owned:
            f.close()


def detect_format(path: str | BinaryIO) -> str | None:
    """ "warc" (WARC and WET) or "arc" from the file's first bytes, whatever its name; None otherwise."""
    f, owned, chunk = _open(path)
    try:
        return _sniff(f, chunk)[1]
    finally:
        if owned:
            f.close()
