"""The crawl-file reader: formats, splits, and above all robustness to bad records."""

from __future__ import annotations

import gzip
import io
import random
import zlib
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawl2model.pipeline.warc import Record, Skip, detect_format, is_splittable, iter_records

DATA = Path(__file__).parent / "data" / "unit"


# --------------------------------------------------------------------------- fixture builders


def http_block(body: bytes, headers: list[tuple[str, str]] | None = None, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    hdrs = headers if headers is not None else [("Content-Type", "text/html; charset=utf-8")]
    lines = [status] + [f"{k}: {v}".encode() for k, v in hdrs]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def warc_record(block: bytes, *, rec_type: str = "response", url: str = "http://example.com/",
                content_type: str = "application/http; msgtype=response", n: int = 0,
                extra: list[str] | None = None, version: str = "WARC/1.0",
                length: str | None = None) -> bytes:
    """Hand-made WARC record bytes (header, block, CRLF CRLF), so malformed ones are easy to make."""
    fields = [f"WARC-Type: {rec_type}", f"WARC-Target-URI: {url}", "WARC-Date: 2024-02-21T10:11:12Z",
              f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012d}>", f"Content-Type: {content_type}"]
    fields += extra or []
    if length != "omit":
        fields.append(f"Content-Length: {len(block) if length is None else length}")
    return (version + "\r\n" + "\r\n".join(fields) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def page(i: int) -> bytes:
    return f"<html><body><p>page number {i} with some text</p></body></html>".encode()


def good(i: int) -> bytes:
    return warc_record(http_block(page(i)), url=f"http://example.com/{i}", n=i)


def write(path: Path, records: list[bytes], *, gz: bool) -> Path:
    """One gzip member per record (Common Crawl's layout) or plain concatenation."""
    path.write_bytes(b"".join(gzip.compress(r, 6) if gz else r for r in records))
    return path


def records_of(items: list[Record | Skip]) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


def skips_of(items: list[Record | Skip]) -> list[Skip]:
    return [i for i in items if isinstance(i, Skip)]


def urls(items: list[Record | Skip]) -> list[str | None]:
    return [r.url for r in records_of(items)]


def warcio_file(path: Path, n: int, *, gz: bool) -> Path:
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=gz)
        w.write_record(w.create_warcinfo_record(path.name, {"software": "test"}))
        for i in range(n):
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("X-Test", str(i))],
                                    protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"http://example.com/{i}", "response",
                                                payload=io.BytesIO(page(i)), http_headers=http))
            w.write_record(w.create_warc_record(f"http://example.com/{i}", "request",
                                                payload=io.BytesIO(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
                                                warc_content_type="application/http; msgtype=request"))
    return path


# --------------------------------------------------------------------------- valid files


@pytest.mark.parametrize("gz", [True, False])
def test_warcio_file_matches_warcio_reader(tmp_path: Path, gz: bool) -> None:
    path = warcio_file(tmp_path / ("a.warc.gz" if gz else "a.warc"), 5, gz=gz)
    items = list(iter_records(str(path)))
    assert not skips_of(items)
    with open(path, "rb") as f:
        it = ArchiveIterator(f)
        expected = [(it.get_record_offset(), r.rec_type) for r in it]
    assert [(r.offset, r.rec_type) for r in items] == expected
    resp = [r for r in items if r.rec_type == "response"]
    assert [r.url for r in resp] == [f"http://example.com/{i}" for i in range(5)]
    r = resp[2]
    assert r.format == "warc" and r.http_status == 200 and r.payload == page(2) and not r.truncated
    assert r.content_type == "text/html; charset=utf-8"
    assert r.http_headers["x-test"] == "2"
    assert r.record_id.startswith("<urn:uuid:")
    assert len(r.date) == 20 and r.date.endswith("Z") and r.date[10] == "T"
    req = [r for r in items if r.rec_type == "request"][0]
    assert req.http_status is None and req.payload.startswith(b"GET /")
    assert items[0].rec_type == "warcinfo" and b"software: test" in items[0].payload
    assert detect_format(str(path)) == "warc" and is_splittable(str(path))


def test_file_object_source_and_uri(tmp_path: Path) -> None:
    path = write(tmp_path / "a.warc.gz", [good(i) for i in range(3)], gz=True)
    with open(path, "rb") as f:
        assert urls(list(iter_records(f))) == urls(list(iter_records(path.as_uri())))
        assert not f.closed


def test_missing_file_raises_naming_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.warc.gz")
    with pytest.raises(FileNotFoundError, match="nope.warc.gz"):
        list(iter_records(missing))


def test_single_stream_gzip(tmp_path: Path) -> None:
    path = tmp_path / "s.warc.gz"
    path.write_bytes(gzip.compress(b"".join(good(i) for i in range(6))))
    items = list(iter_records(str(path)))
    assert urls(items) == [f"http://example.com/{i}" for i in range(6)]
    assert {r.offset for r in items} == {0}
    assert not is_splittable(str(path))
    assert list(iter_records(str(path), start=1)) == []
    assert urls(list(iter_records(str(path), start=0, end=10))) == urls(items)   # split 0 reads it whole


def test_header_variants(tmp_path: Path) -> None:
    """<>-wrapped URIs, fractional seconds, LF-only header lines, WARC/1.1 and WARC-Truncated."""
    rec = warc_record(http_block(b"x"), url="<http://example.com/a>", version="WARC/1.1",
                      extra=["WARC-Truncated: length"]).replace(b"2024-02-21T10:11:12Z", b"2024-02-21T10:11:12.123456Z")
    head, _, rest = rec.partition(b"\r\n\r\n")
    lf_only = head.replace(b"\r\n", b"\n") + b"\n\n" + rest
    for data in (rec, lf_only):
        [r] = list(iter_records(io.BytesIO(data)))
        assert r.url == "http://example.com/a" and r.date == "2024-02-21T10:11:12Z" and r.truncated


def test_wet_conversion_records(tmp_path: Path) -> None:
    info = warc_record(b"software: x\r\n", rec_type="warcinfo", url="", content_type="application/warc-fields")
    texts = ["Hello world.\nSecond line.", "Zweiter Text, äöü."]
    convs = [warc_record(t.encode(), rec_type="conversion", url=f"http://e.com/{i}", content_type="text/plain", n=i)
             for i, t in enumerate(texts)]
    path = write(tmp_path / "a.warc.wet.gz", [info] + convs, gz=True)
    items = list(iter_records(str(path)))
    assert [r.rec_type for r in items] == ["warcinfo", "conversion", "conversion"]
    assert [r.payload.decode() for r in items[1:]] == texts
    assert all(r.content_type == "text/plain" and r.http_status is None for r in items[1:])


def test_binary_empty_and_invalid_utf8_payloads() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    recs = [
        warc_record(http_block(png, [("Content-Type", "image/png")]), n=1),
        warc_record(http_block(b"", [("Content-Length", "0")], status=b"HTTP/1.1 204 No Content"), n=2),
        warc_record(http_block(b"caf\xe9 \xff\xfe ok"), n=3),
        warc_record(b"", rec_type="metadata", content_type="application/warc-fields", n=4),
        warc_record(http_block(b"", [], status=b"HTTP/1.1 304")[:-4], n=5),   # headers without blank line
    ]
    items = list(iter_records(io.BytesIO(b"".join(recs))))
    assert not skips_of(items)
    assert items[0].content_type == "image/png" and items[0].payload == png
    assert items[1].http_status == 204 and items[1].payload == b""
    assert items[2].payload == b"caf\xe9 \xff\xfe ok"
    assert items[3].payload == b"" and items[3].rec_type == "metadata"
    assert items[4].http_status == 304 and items[4].payload == b""


@pytest.mark.parametrize("gz", [True, False])
def test_payload_cap(tmp_path: Path, gz: bool) -> None:
    rng = random.Random(0)
    big = bytes(rng.getrandbits(8) for _ in range(4096)) * 1280   # 5 MiB, compresses well
    path = write(tmp_path / "big.warc", [good(0), warc_record(http_block(big), n=1), good(2)], gz=gz)
    items = list(iter_records(str(path), max_payload_bytes=1 << 20))
    assert urls(items) == ["http://example.com/0", "http://example.com/", "http://example.com/2"]
    assert items[1].truncated and items[1].payload == big[: 1 << 20]
    assert not items[0].truncated and not items[2].truncated


def test_chunked_and_content_encodings() -> None:
    rng = random.Random(7)
    html = b"<p>" + b" ".join(b"w%d" % rng.randrange(10**6) for _ in range(400)) + b"</p>"
    gz_body = gzip.compress(html)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (gz_body[:100], gz_body[100:])) + b"0\r\n\r\n"
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = raw_deflate.compress(html) + raw_deflate.flush()
    cases = [
        http_block(chunked, [("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")]),
        http_block(deflated, [("Content-Encoding", "deflate")]),
        http_block(zlib.compress(html), [("Content-Encoding", "deflate")]),
        http_block(html, [("Content-Encoding", "gzip")]),              # stored decoded, header kept
        http_block(html, [("Transfer-Encoding", "chunked")]),          # stored de-chunked, header kept
        http_block(chunked[:len(chunked) // 2], [("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")]),  # cut short
    ]
    items = list(iter_records(io.BytesIO(b"".join(warc_record(b, n=i) for i, b in enumerate(cases)))))
    assert not skips_of(items)
    assert [r.payload for r in items[:5]] == [html] * 5
    assert all(not r.truncated for r in items[:5])
    cut = items[5]
    assert cut.truncated and html.startswith(cut.payload) and len(cut.payload) < len(html)


def test_brotli_content_encoding() -> None:
    brotli = pytest.importorskip("brotli")
    block = http_block(brotli.compress(page(1)), [("Content-Encoding", "br")])
    [r] = list(iter_records(io.BytesIO(warc_record(block))))
    assert r.payload == page(1)


# --------------------------------------------------------------------------- robustness


def assert_neighbours_survive(items: list[Record | Skip], good_ids: list[int], reason: str) -> list[Skip]:
    assert urls(items) == [f"http://example.com/{i}" for i in good_ids]
    skips = skips_of(items)
    assert [s.reason for s in skips] == [reason], skips
    assert all(s.detail and "\n" not in s.detail for s in skips)
    return skips


BAD_HEADERS = {
    "bad_version": warc_record(http_block(b"x"), version="WARC/X"),
    "no_length": warc_record(http_block(b"x"), length="omit"),
    "text_length": warc_record(http_block(b"x"), length="12abc"),
}


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("bad", sorted(BAD_HEADERS))
def test_malformed_warc_header(tmp_path: Path, gz: bool, bad: str) -> None:
    path = write(tmp_path / "m.warc", [good(0), good(1), BAD_HEADERS[bad], good(3)], gz=gz)
    items = list(iter_records(str(path)))
    [skip] = assert_neighbours_survive(items, [0, 1, 3], "malformed_warc_header")
    assert skip.offset == (len(gzip.compress(good(0), 6)) + len(gzip.compress(good(1), 6)) if gz
                           else len(good(0)) + len(good(1)))


@pytest.mark.parametrize("gz", [True, False])
def test_content_length_too_long_does_not_swallow_next_records(tmp_path: Path, gz: bool) -> None:
    liar = warc_record(http_block(b"x"), length="5000")
    path = write(tmp_path / "l.warc", [good(0), liar, good(2), good(3)], gz=gz)
    items = list(iter_records(str(path)))
    assert urls(items) == ["http://example.com/0", "http://example.com/2", "http://example.com/3"]
    assert [s.reason for s in skips_of(items)] == ["truncated_record"]


def test_content_length_too_short_is_detected() -> None:
    block = http_block(b"y" * 200)
    liar = warc_record(block, length=str(len(block) - 150), n=1)
    items = list(iter_records(io.BytesIO(good(0) + liar + good(2))))
    assert_neighbours_survive(items, [0, 2], "content_length_mismatch")


@pytest.mark.parametrize("gz", [True, False])
def test_missing_http_status(tmp_path: Path, gz: bool) -> None:
    no_status = warc_record(b"Content-Type: text/html\r\n\r\n<html></html>", n=1)
    path = write(tmp_path / "h.warc", [good(0), no_status, good(2)], gz=gz)
    assert_neighbours_survive(list(iter_records(str(path))), [0, 2], "missing_http_status")


def test_bad_chunked_and_bad_content_encoding() -> None:
    broken_chunks = http_block(b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n", [("Transfer-Encoding", "chunked")])
    bad_gzip = http_block(b"\x1f\x8b\x08\x00" + b"\xff" * 40, [("Content-Encoding", "gzip")])
    data = good(0) + warc_record(broken_chunks, n=1) + good(2) + warc_record(bad_gzip, n=3) + good(4)
    items = list(iter_records(io.BytesIO(data)))
    assert urls(items) == [f"http://example.com/{i}" for i in (0, 2, 4)]
    assert [s.reason for s in skips_of(items)] == ["bad_chunked_encoding", "bad_content_encoding"]


def test_truncated_gzip_member_at_end(tmp_path: Path) -> None:
    data = b"".join(gzip.compress(good(i)) for i in range(4))
    cut = data[: len(data) - 30]
    (tmp_path / "t.warc.gz").write_bytes(cut)
    items = list(iter_records(str(tmp_path / "t.warc.gz")))
    [skip] = assert_neighbours_survive(items, [0, 1, 2], "truncated_record")
    assert skip.offset == len(data) - len(gzip.compress(good(3)))


def test_truncated_gzip_member_in_middle(tmp_path: Path) -> None:
    members = [gzip.compress(good(i)) for i in range(5)]
    members[2] = members[2][: len(members[2]) // 2]
    (tmp_path / "t.warc.gz").write_bytes(b"".join(members))
    items = list(iter_records(str(tmp_path / "t.warc.gz")))
    [skip] = assert_neighbours_survive(items, [0, 1, 3, 4], "corrupt_gzip")
    assert skip.offset == len(members[0]) + len(members[1])


def test_corrupt_gzip_member_and_garbage_between_members(tmp_path: Path) -> None:
    members = [gzip.compress(good(i)) for i in range(5)]
    m = bytearray(members[1])
    m[len(m) // 2] ^= 0xFF          # flipped deflate bits: bad data or a CRC mismatch
    members[1] = bytes(m)
    members[3] = b"this is not gzip at all" + members[3]
    (tmp_path / "c.warc.gz").write_bytes(b"".join(members))
    items = list(iter_records(str(tmp_path / "c.warc.gz")))
    assert urls(items) == [f"http://example.com/{i}" for i in (0, 2, 3, 4)]
    assert [s.reason for s in skips_of(items)] == ["corrupt_gzip", "corrupt_gzip"]


def test_garbage_between_plain_records() -> None:
    items = list(iter_records(io.BytesIO(good(0) + b"\r\nJUNK LINE\r\nmore junk\r\n" + good(1))))
    assert_neighbours_survive(items, [0, 1], "malformed_warc_header")


def test_non_crawl_file_yields_one_skip(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(bytes(range(256)) * 10)
    items = list(iter_records(str(tmp_path / "x.bin")))
    assert len(items) == 1 and isinstance(items[0], Skip)
    assert detect_format(str(tmp_path / "x.bin")) is None


# --------------------------------------------------------------------------- ARC


def test_arc_samples() -> None:
    for name in ("example.arc", "example.arc.gz"):
        items = list(iter_records(str(DATA / name)))
        assert [r.rec_type for r in items] == ["warcinfo", "response"], name
        info, resp = items
        assert info.url.startswith("filedesc://") and info.format == "arc" and info.record_id is None
        assert resp.url == "http://example.com/" and resp.date == "2014-02-16T05:02:21Z"
        assert resp.http_status == 200 and resp.content_type == "text/html"
        assert resp.payload.startswith(b"<!doctype html>") and len(resp.payload) == 1270
        assert detect_format(str(DATA / name)) == "arc"
    assert not is_splittable(str(DATA / "example.arc"))
    assert is_splittable(str(DATA / "example.arc.gz"))
    assert list(iter_records(str(DATA / "example.arc"), start=10)) == []
    assert len(list(iter_records(str(DATA / "example.arc"), start=0, end=10))) == 2


def test_bad_arc_keeps_good_record() -> None:
    items = list(iter_records(str(DATA / "bad.arc")))
    assert {s.reason for s in skips_of(items)} <= {"malformed_arc_header", "missing_http_status"}
    assert skips_of(items)


def arc_record(url: str, block: bytes, mime: str = "text/html") -> bytes:
    return f"{url} 1.2.3.4 20240221101112 {mime} {len(block)}\n".encode() + block + b"\n"


@pytest.mark.parametrize("gz", [True, False])
def test_handmade_arc_with_bad_record(tmp_path: Path, gz: bool) -> None:
    filedesc = arc_record("filedesc://x.arc", b"1 0 test\nURL IP-address Archive-date Content-type Archive-length\n",
                          "text/plain")
    recs = [filedesc] + [arc_record(f"http://example.com/{i}", http_block(page(i))) for i in range(4)]
    recs[2] = b"http://example.com/1 1.2.3.4 20240221101112 text/html notanumber\n" + http_block(page(1)) + b"\n"
    recs.append(arc_record("dns:example.com", b"20240221101112\nexample.com. 300 IN A 1.2.3.4\n", "text/dns"))
    path = write(tmp_path / "h.arc", recs, gz=gz)
    items = list(iter_records(str(path)))
    rs = records_of(items)
    assert [r.url for r in rs] == ["filedesc://x.arc", "http://example.com/0", "http://example.com/2",
                                   "http://example.com/3", "dns:example.com"]
    assert [s.reason for s in skips_of(items)] == ["malformed_arc_header"]
    assert rs[1].payload == page(0) and rs[1].date == "2024-02-21T10:11:12Z"
    assert rs[-1].http_status is None and rs[-1].content_type == "text/dns"


# --------------------------------------------------------------------------- splits


def split_items(path: str, cuts: list[int]) -> list[Record | Skip]:
    bounds = [0] + cuts + [None]
    out: list[Record | Skip] = []
    for s, e in zip(bounds, bounds[1:]):
        out += list(iter_records(path, start=s, end=e))
    return out


def key(item: Record | Skip) -> tuple:
    return (item.offset, type(item).__name__, getattr(item, "url", None), getattr(item, "reason", None))


@pytest.mark.parametrize("gz", [True, False])
def test_splits_yield_each_record_once(tmp_path: Path, gz: bool) -> None:
    recs = [good(i) for i in range(12)]
    recs[5] = BAD_HEADERS["no_length"]                    # a skip must also come out exactly once
    recs[8] = warc_record(http_block(b"WARC/1.0\r\n" * 50), n=8)   # record-like lines inside a block
    path = str(write(tmp_path / ("s.warc.gz" if gz else "s.warc"), recs, gz=gz))
    full = [key(i) for i in iter_records(path)]
    assert len(full) == 12
    size = Path(path).stat().st_size
    rng = random.Random(1)
    for n_cuts in (1, 2, 3, 7):
        for _ in range(12):
            cuts = sorted(rng.sample(range(1, size), n_cuts))
            assert [key(i) for i in split_items(path, cuts)] == full, cuts
    for c in range(1, size, max(1, size // 150)):      # every region of the file as a boundary
        assert [key(i) for i in split_items(path, [c])] == full, c


@pytest.mark.parametrize("damaged", [0, 3])
def test_split_of_corrupt_gzip_file(tmp_path: Path, damaged: int) -> None:
    """A damaged member whose start still decodes is reported once, whichever split it falls in;
    a damaged first member does not make the file unsplittable."""
    members = [gzip.compress(good(i)) for i in range(8)]
    members[damaged] = members[damaged][: len(members[damaged]) // 2]
    data = b"".join(members)
    (tmp_path / "c.warc.gz").write_bytes(data)
    path = str(tmp_path / "c.warc.gz")
    assert is_splittable(path)
    full = [key(i) for i in iter_records(path)]
    assert len(records_of(list(iter_records(path)))) == 7
    for c in range(1, len(data), 7):
        assert [key(i) for i in split_items(path, [c])] == full, c


@pytest.mark.parametrize("gz", [True, False])
def test_random_damage_never_raises_or_loses_untouched_records(gz: bool) -> None:
    """Flip, delete or insert a few bytes anywhere: only the records the damage touches may go."""
    rng = random.Random(11)
    parts = [gzip.compress(good(i)) if gz else good(i) for i in range(10)]
    bounds, o = [], 0
    for p in parts:
        bounds.append((o, o + len(p)))
        o += len(p)
    for _ in range(60):
        data = bytearray(b"".join(parts))
        pos, n, op = rng.randrange(len(data)), rng.randrange(1, 40), rng.randrange(3)
        if op == 0:
            data[pos:pos + n] = rng.randbytes(len(data[pos:pos + n]))
        elif op == 1:
            del data[pos:pos + n]
        else:
            data[pos:pos] = rng.randbytes(n)
        reach = pos + (0 if op == 2 else n)
        untouched = {f"http://example.com/{i}" for i, (a, b) in enumerate(bounds) if not (a <= reach and pos < b)}
        items = list(iter_records(io.BytesIO(bytes(data))))
        assert untouched <= set(urls(items)), (op, pos, n)
