"""Common Crawl's shape, written from pages we have: dumps, segments, WARC records.

The sample crawl and the benchmark crawl are written by this one writer, so
both look to the ingest stage like Common Crawl: a dump's files spread over
its segments and named by crawl time, a warcinfo record first, then a
request/response/metadata triple per fetch. Everything is a function of its
input (ids are hashes, dates derive from the url, gzip members carry no
timestamp), so a rerun writes the same bytes.
"""
from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


@dataclass(frozen=True)
class Dump:
    """A Common Crawl dump: its name, when its crawl started, its segments."""

    name: str
    start: datetime
    segments: tuple[str, ...]

    def warc_path(self, number: int, kind: str = "warc") -> str:
        """Spell file `number` the way Common Crawl does: crawl start, end, file number.

        Files alternate between the dump's segments.
        """
        segment = number % len(self.segments)
        begin = self.start + timedelta(hours=number)
        end = begin + timedelta(hours=3)
        suffix = {"warc": "warc.gz", "wet": "warc.wet.gz"}[kind]
        name = f"CC-MAIN-{begin:%Y%m%d%H%M%S}-{end:%Y%m%d%H%M%S}-{number:05d}.{suffix}"
        return f"{self.name}/segments/{self.segments[segment]}/{kind}/{name}"

    def fetch_time(self, key: str) -> datetime:
        """A fixed fetch time inside the dump's twelve crawl days."""
        return self.start + timedelta(seconds=stable_int(key) % (12 * 86400))


DUMPS = (
    Dump("CC-MAIN-2024-10", datetime(2024, 2, 20, 21, 10, 55, tzinfo=timezone.utc),
         ("1707947473347.0", "1707947474671.63")),
    Dump("CC-MAIN-2024-18", datetime(2024, 4, 12, 10, 13, 54, tzinfo=timezone.utc),
         ("1712296815919.75", "1712296817081.52")),
    Dump("CC-MAIN-2024-26", datetime(2024, 6, 12, 14, 4, 24, tzinfo=timezone.utc),
         ("1718198861342.11", "1718198862420.30")),
)


@dataclass
class Fetch:
    """One crawled URL as it goes into a WARC: HTTP status, headers, body bytes."""

    url: str
    status: int
    content_type: str
    body: bytes
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    charset_detected: str | None = None


def stable_int(key: str) -> int:
    """A hash that is the same in every process (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def record_id(*parts: str) -> str:
    """A WARC-Record-ID that is a function of its parts, so reruns match byte for byte."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return f"<urn:uuid:{uuid.UUID(bytes=digest[:16], version=4)}>"


def warc_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class CrawlWriter:
    """Writes Common Crawl style WARC files: warcinfo, then request/response/metadata triples."""

    def __init__(self, out: io.BufferedIOBase, dump: Dump, filename: str, info: dict[str, str]):
        self.writer = WARCWriter(out, gzip=True, warc_version="1.0")
        self.dump = dump
        # Hashed by file name only, so the bytes do not depend on where the output folder is.
        self.warcinfo_id = record_id(dump.name, Path(filename).name, "warcinfo")
        payload = "".join(f"{k}: {v}\r\n" for k, v in info.items()).encode()
        self._write("", "warcinfo", payload, {
            "WARC-Record-ID": self.warcinfo_id,
            "WARC-Date": warc_date(dump.start),
            "WARC-Filename": Path(filename).name,
            "Content-Type": "application/warc-fields",
        })

    def _write(self, url: str, rec_type: str, payload: bytes, headers: dict[str, str],
               http_headers: StatusAndHeaders | None = None) -> None:
        record = self.writer.create_warc_record(
            url, rec_type, payload=io.BytesIO(payload), length=len(payload),
            warc_headers_dict=headers, http_headers=http_headers)
        self.writer.write_record(record)

    def write_fetch(self, fetch: Fetch) -> str:
        """Write one fetch as CC does and return the response's record id."""
        when = self.dump.fetch_time(fetch.url)
        parts = urlsplit(fetch.url)
        req_id = record_id(self.dump.name, fetch.url, "request")
        resp_id = record_id(self.dump.name, fetch.url, "response")
        common = {"WARC-Date": warc_date(when), "WARC-Warcinfo-ID": self.warcinfo_id}
        request = StatusAndHeaders(f"GET {parts.path or '/'} HTTP/1.1", [
            ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)"),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Accept-Language", "en-US,en;q=0.5"),
            ("Accept-Encoding", "br,gzip"),
            ("Host", parts.netloc),
            ("Connection", "Keep-Alive"),
        ], is_http_request=True)
        self._write(fetch.url, "request", b"", {**common, "WARC-Record-ID": req_id,
                                                "WARC-IP-Address": ip_of(parts.netloc)}, request)
        reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}[fetch.status]
        response = StatusAndHeaders(f"{fetch.status} {reason}", [
            ("Date", format_datetime(when, usegmt=True)),
            ("Server", "Apache"),
            *fetch.extra_headers,
            ("Content-Type", fetch.content_type),
            ("X-Crawler-Content-Encoding", "gzip"),
            ("Content-Length", str(len(fetch.body))),
        ], protocol="HTTP/1.1")
        self._write(fetch.url, "response", fetch.body, {
            **common, "WARC-Record-ID": resp_id, "WARC-Concurrent-To": req_id,
            "WARC-IP-Address": ip_of(parts.netloc),
            "WARC-Identified-Payload-Type": fetch.content_type.split(";")[0],
        }, response)
        metadata = f"fetchTimeMs: {40 + stable_int(fetch.url) % 400}\r\n"
        if fetch.charset_detected:
            metadata += f"charset-detected: {fetch.charset_detected}\r\n"
        self._write(fetch.url, "metadata", metadata.encode(), {
            **common, "WARC-Record-ID": record_id(self.dump.name, fetch.url, "metadata"),
            "WARC-Concurrent-To": resp_id, "Content-Type": "application/warc-fields",
        })
        return resp_id

    def write_conversion(self, url: str, text: str, refers_to: str) -> None:
        """A WET record: the page's plain text, pointing at the response it came from."""
        self._write(url, "conversion", text.encode("utf-8"), {
            "WARC-Date": warc_date(self.dump.fetch_time(url)),
            "WARC-Record-ID": record_id(self.dump.name, url, "conversion"),
            "WARC-Refers-To": refers_to,
            "WARC-Warcinfo-ID": self.warcinfo_id,
            "Content-Type": "text/plain",
        })


def ip_of(host: str) -> str:
    """A stable documentation-range address per host (TEST-NET-3)."""
    return f"203.0.113.{stable_int(host) % 254 + 1}"


def write_warc(path: Path, dump: Dump, fetches: list[Fetch], info: dict[str, str]) -> dict[str, str]:
    """Write fetches in fetch-time order, as a crawler would; return {url: response id}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = {}
    with path.open("wb") as out:
        writer = CrawlWriter(out, dump, str(path), info)
        for fetch in sorted(fetches, key=lambda f: (dump.fetch_time(f.url), f.url)):
            ids[fetch.url] = writer.write_fetch(fetch)
    return ids


def warcinfo(versions: dict[str, str]) -> dict[str, str]:
    """The warcinfo fields of every file; `versions` ({package: version}) tells rebuilds apart."""
    return {
        "software": "crawl2model scripts/build_sample.py (warcio)",
        "isPartOf": "crawl2model sample",
        "description": "Real pages from Debian documentation packages, served as a crawl",
        "source-packages": ", ".join(f"{n}={v}" for n, v in sorted(versions.items())),
        "format": "WARC File Format 1.0",
    }
