"""The ingest job end to end in Spark local mode, on the bundled sample and on broken files."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from crawl2model.core.fs import read_json
from crawl2model.jobs.cli import main as cli
from crawl2model.pipeline.tables import arrow_dataset

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parent.parent


def _table(path: Path):
    """The document table sorted by doc_id (file order is not part of the contract)."""
    t = arrow_dataset(str(path)).to_table()
    return t.select(sorted(t.column_names)).sort_by("doc_id")


@pytest.fixture(scope="module")
def ingested(spark, sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "documents"
    assert cli(["ingest", "--input", str(sample_dir), "--output", str(out)]) == 0
    return out


def test_sample_becomes_document_table(ingested, sample_dir):
    report = read_json(str(ingested / "report.json"))
    dumps = sorted(p.name for p in sample_dir.iterdir() if p.is_dir())
    assert sorted(report["per_dump"]) == dumps and len(dumps) >= 3
    assert sorted(p.name for p in ingested.iterdir() if p.name.startswith("dump=")) == [f"dump={d}" for d in dumps]
    assert report["records_in"] == report["docs_in"] == report["docs_out"] + sum(report["removed_by_reason"].values())
    assert report["docs_out"] > 100
    # Common Crawl-style request/metadata records are counted, not silently dropped.
    assert report["removed_by_reason"].get("record_type_request", 0) > 0
    assert report["bytes_read"] == report["input_bytes"]
    t = _table(ingested)
    assert t.num_rows == report["docs_out"]
    assert len(set(t["doc_id"].to_pylist())) == t.num_rows
    assert all(n == len(x) and n > 0 for n, x in zip(t["n_chars"].to_pylist(), t["text"].to_pylist()))
    assert json.loads((ingested / "config.json").read_text())["ingest"]["extractor"] == "resiliparse"
    assert (ingested / "_SUCCESS").exists()
    skipped = ds.dataset(str(ingested / "_skipped"), format="parquet").to_table()
    assert skipped.num_rows == report["records_skipped"] == sum(report["removed_by_reason"].values())


def test_cjk_pages_decode_correctly(ingested, sample_dir):
    expected = json.loads((sample_dir / "expected.json").read_text())
    t = _table(ingested)
    by_url = {}
    for url, dump, text in zip(t["url"].to_pylist(), t["dump"].to_pylist(), t["text"].to_pylist()):
        by_url[(url, dump)] = text
    cases = [c for c in expected if c["encoding"].lower().replace("-", "") != "utf8"]
    assert {c["encoding"].lower() for c in cases} >= {"gb18030", "gbk", "big5", "shift_jis"}
    for case in cases:
        text = by_url.get((case["url"], case["dump"]))
        assert text is not None, case
        squash = lambda x: " ".join(x.split())  # noqa: E731  extraction may re-flow lines
        assert squash(case["sentence"]) in squash(text), (case["encoding"], case["url"])


def test_finished_output_is_skipped_and_other_settings_refused(ingested, sample_dir, capsys):
    before = sorted((p.name, p.stat().st_mtime_ns) for p in ingested.rglob("*.parquet"))
    assert cli(["ingest", "--input", str(sample_dir), "--output", str(ingested)]) == 0
    assert cli(["ingest", "--input", str(sample_dir), "--output", str(ingested), "--extractor", "trafilatura"]) == 2
    assert "extractor: 'resiliparse' -> 'trafilatura'" in capsys.readouterr().err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in ingested.rglob("*.parquet")) == before


def test_spark_submit_gives_the_same_table(ingested, sample_dir, tmp_path):
    out = tmp_path / "documents"
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    proc = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
         str(ROOT / "jobs" / "ingest.py"), "--input", str(sample_dir), "--output", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _table(out).equals(_table(ingested))
    assert read_json(str(out / "report.json"))["removed_by_reason"] == read_json(str(ingested / "report.json"))["removed_by_reason"]


def test_missing_input_is_a_clear_error(spark, tmp_path, capsys):
    assert cli(["ingest", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _members(path: Path) -> list[bytes]:
    """The gzip members of a member-per-record WARC, as raw compressed bytes."""
    import zlib

    data = path.read_bytes()
    members, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        members.append(data[pos:end])
        pos = end
    return members


def test_malformed_files_keep_every_good_record(spark, sample_dir, tmp_path):
    """Break files in several ways; the job completes and loses no good record."""
    from warcio.archiveiterator import ArchiveIterator

    source = sorted(sample_dir.rglob("*.warc.gz"))[0]
    members = _members(source)
    assert len(members) >= 9
    dump = tmp_path / "crawl" / "CC-MAIN-2099-01"
    dump.mkdir(parents=True)
    # 1: a corrupt member in the middle (bytes flipped inside the deflate stream)
    bad = bytearray(members[4])
    for i in range(20, min(len(bad) - 8, 60)):
        bad[i] ^= 0x5A
    (dump / "corrupt-middle.warc.gz").write_bytes(b"".join(members[:4]) + bytes(bad) + b"".join(members[5:]))
    # 2: truncated in the last member
    (dump / "truncated.warc.gz").write_bytes(b"".join(members[:-1]) + members[-1][: len(members[-1]) // 2])
    # 3: garbage between members
    (dump / "garbage.warc.gz").write_bytes(b"".join(members[:3]) + os.urandom(5000) + b"".join(members[3:]))
    # 4: empty file, binary noise, a plain WARC with a broken header and a missing status line
    (dump / "empty.warc.gz").write_bytes(b"")
    (dump / "noise.warc").write_bytes(os.urandom(20000))
    plain = gzip.decompress(b"".join(members[:6])).decode("utf-8", "replace")
    broken = plain.replace("WARC/1.0", "WARC/X.Y", 1).replace("HTTP/1.1 200 OK", "", 1)
    (dump / "broken-headers.warc").write_text(broken, encoding="utf-8")

    def good_urls(data: bytes) -> list[str]:
        import io

        urls = []
        for rec in ArchiveIterator(io.BytesIO(data)):
            if rec.rec_type == "response" and rec.http_headers and rec.http_headers.get_statuscode() == "200" \
                    and "html" in (rec.http_headers.get_header("Content-Type") or ""):
                urls.append(rec.rec_headers.get_header("WARC-Target-URI"))
        return urls

    expect = set(good_urls(b"".join(members[:4]) + b"".join(members[5:])))
    expect |= set(good_urls(b"".join(members[:-1])))
    out = tmp_path / "documents"
    assert cli(["ingest", "--input", str(tmp_path / "crawl"), "--output", str(out)]) == 0
    report = read_json(str(out / "report.json"))
    got = set(_table(out)["url"].to_pylist())
    assert expect and expect <= got
    reasons = report["removed_by_reason"]
    assert report["records_in"] == report["docs_out"] + sum(reasons.values())
    assert sum(v for k, v in reasons.items() if not k.startswith(("record_type_", "http_"))) >= 3, reasons
