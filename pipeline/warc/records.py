"""Record framing on top of the byte sources: WARC/ARC records, skips, format sniffing, split planning.

Problems come out as `Skip` items with a reason, never as exceptions, and the
reader resynchronises at the next record it can recognise, so one bad record
does not take the good records around it down.

Offsets: a record's offset is the byte where it starts in a plain file, or the
start of the gzip member that holds it in a compressed one. A split [start, end)
yields exactly the items whose offset lies in it, which is what makes the
union of consecutive splits yield every record once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from crawl2model.pipeline.warc.headers import (
    BLANK_LINE,
    BadRecord,
    arc_date,
    looks_like_record,
    parse_arc_line,
    parse_warc_header,
    warc_date,
)
from crawl2model.pipeline.warc.http import MAX_HTTP_HEADER, PayloadError, http_payload
from crawl2model.pipeline.warc.members import (
    PROBE_CHUNK,
    PROBE_IN,
    GzipError,
    GzipSource,
    PlainSource,
    Source,
    open_crawl_file,
    probe_member,
    scan_members,
)

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


_MAX_HEADER = 64 << 10        # WARC header block / ARC header line
_SLACK = 64                   # bytes of stray tail tolerated after a WARC block
_WARC_TYPE_FIELD = re.compile(rb"\nWARC-Type:", re.I)


# --------------------------------------------------------------------------- records


def _header_end(src: Source, limit: int) -> int:
    """Length of the header block at the position (up to and including the blank line), or -1.

    Accepts LF and CRCRLF line ends next to the standard CRLF: some writers use them.
    """
    m = src.search(BLANK_LINE, limit)
    return m.end() - src.pos if m else -1


def _read_block(src: Source, length: int, want: int) -> bytes:
    """The first `want` bytes of a `length`-byte block; the rest is drained, not kept."""
    block = src.take(want)
    if len(block) < want or (length > want and src.skip(length - want) < length - want):
        raise BadRecord("truncated_record", f"record block ends before its declared length {length}")
    return block


def _check_next(src: Source, fmt: str, trailer: bytes) -> None:
    """Confirm the declared length: after the block comes the trailer, a record start, or the unit end.

    Peeking also finishes a gzip member, so its CRC is checked before the
    record is handed out.
    """
    trailer_ok = src.peek(len(trailer)) == trailer
    src.skip_ws()
    nxt = src.peek(512 if fmt == "warc" else 4096)
    if not nxt or trailer_ok or looks_like_record(nxt):
        return
    if fmt == "warc":
        # Content-Lengths a few bytes short are a known writer bug: tolerate a short tail
        k = src.find(b"\nWARC/", _SLACK)
        if k >= 0 or len(src.peek(_SLACK + 1)) <= _SLACK:
            src.skip(k + 1 if k >= 0 else _SLACK)
            return
    raise BadRecord("content_length_mismatch",
                    f"block is not followed by a record separator but by {nxt[:30]!r}")


def _read_warc(src: Source, off: int, cap: int) -> Record | Skip:
    n = _header_end(src, _MAX_HEADER)
    if n < 0:
        raise BadRecord("malformed_warc_header", f"no end of WARC header within {_MAX_HEADER} bytes")
    fields = parse_warc_header(src.take(n))
    length = int(fields["content-length"])
    rec_type = fields["warc-type"].lower()
    wct = fields.get("content-type")
    is_http = rec_type == "response" and (wct is None or wct.lower().startswith("application/http"))
    want = min(length, cap + (MAX_HTTP_HEADER if is_http else 0))
    block = _read_block(src, length, want)
    _check_next(src, "warc", b"\r\n\r\n")
    truncated = length > want or "warc-truncated" in fields
    url = fields.get("warc-target-uri")
    if url and url[0] == "<" and url[-1] == ">":
        url = url[1:-1]
    common = (off, "warc", rec_type, url, warc_date(fields.get("warc-date")), fields.get("warc-record-id"))
    if is_http and (wct is not None or block.startswith(b"HTTP/")):
        try:
            status, headers, body, cut = http_payload(block, cap)
        except PayloadError as e:
            return Skip(off, e.reason, e.detail)
        ctype = headers.get("content-type") or fields.get("warc-identified-payload-type")
        return Record(*common, ctype, status, headers, body, truncated or cut)
    if len(block) > cap:
        block, truncated = block[:cap], True
    return Record(*common, wct, None, None, block, truncated)


def _read_arc(src: Source, off: int, cap: int) -> Record | Skip:
    n = src.find(b"\n", _MAX_HEADER)
    line = src.peek(n + 1 if n >= 0 else 80)
    parsed = parse_arc_line(line) if n >= 0 else None
    if parsed is None:
        raise BadRecord("malformed_arc_header", f"bad ARC header line {line[:80]!r}")
    src.skip(n + 1)
    url, date, mime, length = parsed
    is_http = url.startswith(("http:", "https:"))
    want = min(length, cap + (MAX_HTTP_HEADER if is_http else 0))
    block = _read_block(src, length, want)
    _check_next(src, "arc", b"\n")
    truncated = length > want
    rec_type = "warcinfo" if url.startswith("filedesc:") else "response"
    common = (off, "arc", rec_type, url, arc_date(date), None)
    if is_http:
        try:
            status, headers, body, cut = http_payload(block, cap)
        except PayloadError as e:
            return Skip(off, e.reason, e.detail)
        return Record(*common, headers.get("content-type") or mime or None, status, headers, body, truncated or cut)
    if len(block) > cap:
        block, truncated = block[:cap], True
    return Record(*common, mime or None, None, None, block, truncated)


# --------------------------------------------------------------------------- iteration


def _resync(src: Source, fmt: str, off: int) -> None:
    """Position at the next plausible record start after the bad one at `off`.

    A plain file is re-read from just after the bad record's start, because a
    wrong Content-Length may have swallowed good records behind it; a gzip
    member cannot be rewound, and records never cross members anyway.
    """
    if isinstance(src, PlainSource):
        src.seek(off)
    if fmt == "warc":
        _next_warc_start(src)
        return
    while src.scan(b"\n"):
        src.skip(1)
        n = src.find(b"\n", _MAX_HEADER)
        if n >= 0 and parse_arc_line(src.peek(n + 1)) is not None:
            return


def _next_warc_start(src: Source) -> bool:
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


def _records(src: Source, fmt: str, end: int | None, cap: int) -> Iterator[Record | Skip]:
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
                    raise BadRecord("malformed_warc_header",
                                    f"expected 'WARC/' at record start, found {src.peek(20)!r}")
                yield _read_warc(src, off, cap)
            else:
                yield _read_arc(src, off, cap)
        except BadRecord as e:
            bad = off
            yield Skip(off, e.reason, e.detail)


def _iter_gzip(f: BinaryIO, chunk: int, fmt: str, start: int, end: int | None,
               cap: int) -> Iterator[Record | Skip]:
    src = GzipSource(f, chunk)
    if not (src.rescan(start, end) if start > 0 else src.start_member(0)):
        return
    while True:
        try:
            yield from _records(src, fmt, end, cap)
            return
        except GzipError as e:
            # a member that runs to EOF may have swallowed damaged neighbours: rescan either way
            yield Skip(e.member, "truncated_record" if e.at_eof else "corrupt_gzip", e.detail)
            if not src.rescan(e.member + 1, end):
                return


def _iter_plain(f: BinaryIO, chunk: int, fmt: str, start: int, end: int | None,
                cap: int) -> Iterator[Record | Skip]:
    if start > 0:
        src = PlainSource(f, chunk, start - 1)
        if not _next_warc_start(src):
            return
    else:
        src = PlainSource(f, chunk, 0)
    yield from _records(src, fmt, end, cap)


def _sniff(f: BinaryIO, chunk: int) -> tuple[bool, str | None]:
    """(gzip?, "warc"/"arc"/None) from the first record of the file.

    For gzip, a corrupt first member is passed over to the first good one.
    """
    f.seek(0)
    head = f.read(PROBE_IN)
    gz = head.startswith(b"\x1f\x8b")
    if gz:
        head = probe_member(head)
        if not looks_like_record(head):
            at = scan_members(f, 1, None, chunk)
            f.seek(at or 0)
            head = probe_member(f.read(PROBE_IN)) if at is not None else b""
    if head.startswith(b"WARC/"):
        return gz, "warc"
    if head.startswith(b"filedesc:"):
        return gz, "arc"
    return gz, "arc" if parse_arc_line(head.split(b"\n", 1)[0]) else None


def iter_records(source: str | BinaryIO, *, start: int = 0, end: int | None = None,
                 max_payload_bytes: int = 16 * 2**20) -> Iterator[Record | Skip]:
    """Records (and skips) of a crawl file whose offsets lie in [start, end).

    `source` is a path or URI (opened through pyarrow.fs) or a seekable binary
    file object, which is left open. For a file that is not splittable, the
    range starting at 0 yields the whole file and later ranges yield nothing,
    so consecutive ranges always cover every record once. Bad content never
    raises; an unreadable path does.
    """
    f, owned, chunk = open_crawl_file(source)
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
    chunk = min(chunk, PROBE_CHUNK)
    for _ in range(2):
        src = GzipSource(f, chunk)
        if at is None or not src.start_member(at):
            return False
        try:
            reader = _read_warc if src.peek(5) == b"WARC/" else _read_arc
            reader(src, at, 1 << 16)      # ends with _check_next: the member must end right after the record
            src.skip_ws()
            return not src.peek(1) and src.advance()
        except (BadRecord, GzipError):
            at = scan_members(f, at + 1, None, chunk)
    return False


def is_splittable(path: str | BinaryIO) -> bool:
    """Whether byte ranges of this file can be read by separate tasks (see iter_records)."""
    f, owned, chunk = open_crawl_file(path)
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
    f, owned, chunk = open_crawl_file(path)
    try:
        return _sniff(f, chunk)[1]
    finally:
        if owned:
            f.close()
