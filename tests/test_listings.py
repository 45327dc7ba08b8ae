"""Common Crawl listings (`warc.paths.gz`) as ingest input, and streaming reads of remote crawl files."""
from __future__ import annotations

import functools
import gzip
import http.server
import io
import os
import threading
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from crawl2model.core.errors import ConfigError, InputError
from crawl2model.core.fs import filesystem
from crawl2model.pipeline.ingest import IngestConfig
from crawl2model.pipeline.inputs import (
    CRAWL_SUFFIXES,
    ListingSelection,
    discover_inputs,
    path_fraction,
    select_listed,
)


def _listed(sample_dir: Path) -> list[str]:
    """The sample's crawl files as a Common Crawl listing spells them."""
    return sorted(f"crawl-data/{p.relative_to(sample_dir).as_posix()}" for p in sample_dir.rglob("*")
                  if p.name.endswith(CRAWL_SUFFIXES))


def _write_listing(path: Path, lines: list[str]) -> str:
    data = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return str(path)


@pytest.fixture()
def base(tmp_path, sample_dir) -> Path:
    """A local folder laid out like the bucket: crawl-data/<dump>/segments/..."""
    root = tmp_path / "base"
    (root / "crawl-data").mkdir(parents=True)
    for dump in sample_dir.glob("CC-MAIN-*"):
        (root / "crawl-data" / dump.name).symlink_to(dump, target_is_directory=True)
    return root


def test_listing_resolves_against_base_with_dumps(tmp_path, sample_dir, base):
    lines = _listed(sample_dir)
    listing = _write_listing(tmp_path / "warc.paths.gz", lines)
    found = discover_inputs([listing], listing=ListingSelection(str(base)))
    assert sorted(f.path for f in found.files) == sorted(str(base / line) for line in lines)
    assert all(f.dump == Path(f.path).relative_to(base).parts[1] and f.kind == "crawl" for f in found.files)
    assert {f.dump for f in found.files} == {p.name for p in sample_dir.glob("CC-MAIN-*")}
    assert all(f.size == Path(f.path).stat().st_size for f in found.files)
    assert found.missing == [] and found.ignored == []
    # A plain `.paths` listing, found by a glob, lists the same files.
    _write_listing(tmp_path / "plain.paths", lines)
    plain = discover_inputs([str(tmp_path / "*.paths")], listing=ListingSelection(str(base)))
    assert plain.files == found.files


def test_limit_and_sample_are_deterministic(tmp_path, sample_dir, base):
    lines = _listed(sample_dir)
    by_dump = {}
    for line in lines:
        by_dump.setdefault(line.split("/")[1], []).append(line)
    listings = [_write_listing(tmp_path / f"{dump}.warc.paths.gz", list(reversed(group)))
                for dump, group in sorted(by_dump.items())]
    # --limit-files: the first N of each listing in sorted order, whatever the listing's order.
    limited = discover_inputs(listings, listing=ListingSelection(str(base), limit=1))
    assert sorted(f.path for f in limited.files) == sorted(str(base / group[0]) for group in by_dump.values())
    # --sample-files: by a hash of the listed path; the same selection on every run.
    half = discover_inputs(listings, listing=ListingSelection(str(base), fraction=0.5))
    assert sorted(f.path for f in half.files) == sorted(str(base / line) for line in lines
                                                        if path_fraction(line) < 0.5)
    assert half.files == discover_inputs(listings, listing=ListingSelection(str(base), fraction=0.5)).files
    # The hash spreads: about the fraction of many paths, a smaller fraction a subset of a larger one.
    many = [f"crawl-data/CC-MAIN-2024-10/segments/1.{i}/warc/f-{i:05d}.warc.gz" for i in range(2000)]
    tenth, fifth = select_listed(many, None, 0.1), select_listed(many, None, 0.2)
    assert 150 <= len(tenth) <= 250 and 320 <= len(fifth) <= 480 and set(tenth) < set(fifth)
    assert select_listed(many, 5, 0.1) == tenth[:5] and select_listed(many, None, 1.0) == sorted(many)


def test_missing_listed_file_is_counted_not_fatal(tmp_path, sample_dir, base):
    gone = "crawl-data/CC-MAIN-2024-10/segments/1707947473347.0/warc/gone.warc.gz"
    listing = _write_listing(tmp_path / "warc.paths.gz", _listed(sample_dir) + [gone, "crawl-data/notes.txt"])
    found = discover_inputs([listing], listing=ListingSelection(str(base)))
    assert found.missing == [str(base / gone)]
    assert found.ignored == [str(base / "crawl-data/notes.txt")]
    assert len(found.files) == len(_listed(sample_dir))


def test_unreadable_listing_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="listing not found: .*nope.paths.gz"):
        discover_inputs([str(tmp_path / "nope.paths.gz")])
    (tmp_path / "bad.paths.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputError, match="cannot read listing .*bad.paths.gz"):
        discover_inputs([str(tmp_path / "bad.paths.gz")])
    (tmp_path / "latin1.paths").write_bytes(b"crawl-data/\xe9.warc.gz\n")
    with pytest.raises(InputError, match="cannot read listing"):
        discover_inputs([str(tmp_path / "latin1.paths")])


@pytest.mark.parametrize("key, value", [("limit_files", 0), ("limit_files", 2.5), ("sample_files", 0),
                                        ("sample_files", 1.5), ("input_base", "")])
def test_bad_listing_settings_name_the_field(tmp_path, key, value):
    cfg = IngestConfig(input=[str(tmp_path / "warc.paths.gz")], output=str(tmp_path / "out"), **{key: value})
    with pytest.raises(ConfigError, match=key):
        cfg.validate()


def test_trial_settings_need_a_listing(tmp_path):
    cfg = IngestConfig(input=[str(tmp_path)], output=str(tmp_path / "out"), sample_files=0.1)
    with pytest.raises(ConfigError, match="sample_files selects from listings"):
        cfg.validate()


class _RecordingFile:
    """A file that remembers each read as (offset, length)."""

    def __init__(self, f, reads: list[tuple[int, int]]):
        self.f, self.reads = f, reads

    def seek(self, at: int, whence: int = 0) -> int:
        return self.f.seek(at, whence)

    def tell(self) -> int:
        return self.f.tell()

    def read(self, n: int = -1) -> bytes:
        at = self.f.tell()
        data = self.f.read(n)
        self.reads.append((at, len(data)))
        return data

    def close(self) -> None:
        self.f.close()


def test_remote_split_seeks_to_its_start(sample_dir, monkeypatch):
    """A task reading a later split of a remote file reads a small head probe, then from its start on."""
    from crawl2model.pipeline.warc import is_splittable, iter_records, members

    path = next(sample_dir.glob("CC-MAIN-2024-10/segments/*/warc/*.warc.gz"))
    reads: list[tuple[int, int]] = []

    class RecordingFs:
        def open_input_file(self, p):
            return _RecordingFile(pafs.LocalFileSystem().open_input_file(p), reads)

    monkeypatch.setattr(members, "filesystem", lambda uri: (RecordingFs(), uri.split("://", 1)[1]))
    uri, size = f"s3://{path}", path.stat().st_size
    head = members.PROBE_IN + members.PROBE_CHUNK
    assert is_splittable(uri) and sum(n for _, n in reads) <= head
    start = size * 3 // 4
    assert start > head
    reads.clear()
    later = [r.offset for r in iter_records(uri, start=start)]
    assert later and all(o >= start for o in later)
    assert all(at + n <= head for at, n in reads if at < start)   # nothing between the head and the split
    assert sum(n for at, n in reads if at < start) <= head


@pytest.mark.spark
def test_listing_on_s3_ingests_like_local_files(spark, sample_dir, s3_bucket, tmp_path):
    from crawl2model.core.fs import read_json
    from crawl2model.jobs.cli import main as cli
    from crawl2model.pipeline.tables import arrow_dataset

    picked = [p for p in _listed(sample_dir) if "/CC-MAIN-2024-10/" in p or "/wet/" in p]
    assert len({p.split("/")[1] for p in picked}) == 2
    fs, bucket = filesystem(s3_bucket)
    for line in picked:
        with fs.open_output_stream(f"{bucket}/{line}", compression=None) as out:
            out.write((sample_dir / line.removeprefix("crawl-data/")).read_bytes())
    gone = "crawl-data/CC-MAIN-2024-10/segments/1707947473347.0/warc/gone.warc.gz"
    with fs.open_output_stream(f"{bucket}/crawl-data/CC-MAIN-2024-10/warc.paths.gz",
                                 compression=None) as out:
        out.write(gzip.compress("".join(f"{p}\n" for p in picked + [gone]).encode()))

    remote, local = tmp_path / "remote", tmp_path / "local"
    # s3a:// is what Spark users write: the same bucket. Small splits: tasks enter remote files mid-way.
    assert cli(["ingest", "--input", f"{s3_bucket}/crawl-data/CC-MAIN-2024-10/warc.paths.gz",
                "--input-base", f"s3a://{bucket}/", "--split-size", "64KB", "--output", str(remote)]) == 0
    assert cli(["ingest", "--input", *[str(sample_dir / p.removeprefix("crawl-data/")) for p in picked],
                "--output", str(local)]) == 0

    report = read_json(str(remote / "report.json"))
    assert report["files"] == len(picked) and report["missing_listed"] == 1
    assert report["missing_listed_examples"] == [f"s3a://{bucket}/{gone}"]
    assert report["splits"] > len(picked)

    def docs(path: Path) -> list[tuple[str, str, str]]:
        t = arrow_dataset(str(path)).to_table(columns=["doc_id", "dump", "text"]).sort_by("doc_id")
        return list(zip(*(t[c].to_pylist() for c in ("doc_id", "dump", "text"))))

    expected = docs(local)
    assert len(expected) > 50 and docs(remote) == expected


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static server that answers Range requests (as data.commoncrawl.org does) and logs them."""

    requests: list[tuple[str, str, str | None]] = []

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        self.requests.append((self.command, self.path, self.headers.get("Range")))
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        start, end = 0, size - 1
        ranged = self.headers.get("Range", "").startswith("bytes=")
        if ranged:
            first, _, last = self.headers["Range"][len("bytes="):].partition("-")
            start, end = int(first or 0), min(int(last) if last else size - 1, size - 1)
        f = open(path, "rb")  # noqa: SIM115 - closed by copyfile's caller
        f.seek(start)
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        return io.BytesIO(f.read(end - start + 1)) if self.command == "GET" else f


@pytest.fixture()
def http_base(base):
    """`base` served over HTTP on 127.0.0.1, like https://data.commoncrawl.org/."""
    handler = functools.partial(_RangeHandler, directory=str(base))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _RangeHandler.requests.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.spark
def test_listing_over_https_base_reads_ranges_and_ingests_like_local(spark, sample_dir, http_base, base, tmp_path):
    """`--input-base https://data.commoncrawl.org/` works: files are stat'ed with HEAD and read by ranges."""
    from crawl2model.core.fs import read_json
    from crawl2model.jobs.cli import main as cli
    from crawl2model.pipeline.tables import arrow_dataset

    lines = [p for p in _listed(sample_dir) if "/CC-MAIN-2024-18/" in p]
    gone = "crawl-data/CC-MAIN-2024-18/segments/x/warc/gone.warc.gz"
    listing = Path(_write_listing(base / "warc.paths.gz", [*lines, gone]))
    remote, local = tmp_path / "remote", tmp_path / "local"
    assert cli(["ingest", "--input", http_base + listing.name, "--input-base", http_base,
                "--split-size", "64KB", "--output", str(remote)]) == 0
    assert cli(["ingest", "--input", str(listing), "--input-base", str(base), "--output", str(local)]) == 0

    def docs(path: Path) -> list[tuple[str, str, str]]:
        t = arrow_dataset(str(path)).to_table(columns=["doc_id", "dump", "text"]).sort_by("doc_id")
        return list(zip(*(t[c].to_pylist() for c in ("doc_id", "dump", "text"))))

    assert len(docs(local)) > 20 and docs(remote) == docs(local)
    report = read_json(str(remote / "report.json"))
    assert report["missing_listed"] == 1 and report["splits"] > len(lines)
    crawl_gets = [r for r in _RangeHandler.requests if r[0] == "GET" and r[1].startswith("/crawl-data/")]
    whole = [r for r in crawl_gets if not r[2] and not r[1].endswith("/" + gone)]  # fsspec GETs a 404'd HEAD once
    assert crawl_gets and not whole  # ranged reads only, never a whole download
    assert ("HEAD", "/" + gone, None) in _RangeHandler.requests


def test_http_is_read_only(tmp_path, capsys):
    from crawl2model.core.outputs import StageOutput

    with pytest.raises(ConfigError, match="http\\(s\\):// is read-only"):
        StageOutput("https://example.org/out")
