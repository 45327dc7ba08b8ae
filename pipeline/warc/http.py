"""HTTP response blocks: status, headers, and the entity body with its encodings removed.

Problems here are the record's, not the stream's: the block was framed
correctly, so the reader reports a skip and carries on without resynchronising.
"""

from __future__ import annotations

import re
import zlib

from crawl2model.pipeline.warc.headers import BLANK_LINE

try:
    import brotli
    _BROTLI_ERRORS: tuple[type[Exception], ...] = (brotli.error,)
except ImportError:  # optional: br-encoded bodies are then reported as skips
    brotli = None
    _BROTLI_ERRORS = ()

MAX_HTTP_HEADER = 256 << 10
_HTTP_STATUS = re.compile(rb"HTTP/\d+(?:\.\d+)?[ \t]+(\d{3})(?:[ \t\r\n]|$)")


class PayloadError(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _parse_http(block: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and raw body of an HTTP response block."""
    if not block.startswith(b"HTTP/"):
        raise PayloadError("missing_http_status", f"HTTP block starts with {block[:30]!r}, not a status line")
    status = _HTTP_STATUS.match(block)
    if not status:
        status_line = block.split(b"\n", 1)[0][:60]
        raise PayloadError("malformed_http", f"bad HTTP status line {status_line!r}")
    m = BLANK_LINE.search(block, 0, MAX_HTTP_HEADER)
    if m:
        head, body = block[:m.start()], block[m.end():]
    elif len(block) < MAX_HTTP_HEADER:
        head, body = block, b""      # headers only (HEAD, 304, ...), no blank line at the end
    else:
        raise PayloadError("malformed_http", f"no end of HTTP headers within {MAX_HTTP_HEADER} bytes")
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
            raise PayloadError("bad_chunked_encoding", f"bad chunk-size line {data[i:i + 30]!r} at body byte {i}")
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
            raise PayloadError("bad_chunked_encoding", f"chunk at body byte {start} not followed by CRLF")
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
                raise PayloadError("unsupported_content_encoding", f"Content-Encoding {c!r} is not supported")
        except zlib.error as e:
            raise PayloadError("bad_content_encoding", f"{c} body does not decompress: {e}") from None
        except _BROTLI_ERRORS as e:
            raise PayloadError("bad_content_encoding", f"br body does not decompress: {e}") from None
        truncated |= cut
    return body, truncated


def http_payload(block: bytes, cap: int) -> tuple[int, dict[str, str], bytes, bool]:
    """Status, headers, body cut to `cap` bytes, and whether it was cut, of an HTTP response block."""
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
