"""WARC header blocks and ARC header lines, parsed from bytes.

The lowest layer: it knows what a record start looks like, which the gzip
layer needs to tell real members from chance matches and the record layer
needs to frame and resynchronise, and it reads nothing from a stream itself.
"""

from __future__ import annotations

import re

# ends a header block, WARC or HTTP, also where writers end lines with LF or CRCRLF
BLANK_LINE = re.compile(rb"\n\r*\n")
_WARC_VERSION = re.compile(r"WARC/\d+\.\d+")


class BadRecord(Exception):
    """A framing problem: the stream position is unreliable, so the reader resynchronises."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def looks_like_record(head: bytes) -> bool:
    if head.startswith(b"WARC/"):
        return True
    line = head.split(b"\n", 1)[0]
    return parse_arc_line(line) is not None


def _is_date(s: str) -> bool:
    return len(s) >= 12 and s.isascii() and s.isdigit()


def parse_arc_line(line: bytes) -> tuple[str, str, str, int] | None:
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


def parse_warc_header(raw: bytes) -> dict[str, str]:
    text = raw.decode("utf-8", "replace")
    lines = text.split("\n")
    version = lines[0].rstrip("\r")
    if not _WARC_VERSION.fullmatch(version):
        raise BadRecord("malformed_warc_header", f"bad WARC version line {version[:40]!r}")
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
            raise BadRecord("malformed_warc_header", f"WARC header line without ':': {line[:60]!r}")
    length = fields.get("content-length")
    if length is None:
        raise BadRecord("malformed_warc_header", "WARC header has no Content-Length")
    if not (length.isascii() and length.isdigit()):
        raise BadRecord("malformed_warc_header", f"non-numeric Content-Length {length[:30]!r}")
    if "warc-type" not in fields:
        raise BadRecord("malformed_warc_header", "WARC header has no WARC-Type")
    return fields


def warc_date(value: str | None) -> str | None:
    """WARC-Date without fractional seconds, so every stage sees one format."""
    if value and len(value) >= 19 and value[10] == "T":
        return value[:19] + "Z"
    return value or None


def arc_date(digits: str) -> str:
    d = (digits + "00000000000000")[:14]
    return f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}Z"
