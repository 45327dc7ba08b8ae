"""The bundled sample crawl is what every integration test reads: check its shape cheaply."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SAMPLE
from warcio.archiveiterator import ArchiveIterator

CRAWL_FILES = sorted(p for p in SAMPLE.rglob("*") if p.is_file() and re.search(r"\.(warc|arc|wet)(\.gz)?$", p.name))


def test_sample_has_at_least_three_dumps():
    dumps = [p.name for p in SAMPLE.iterdir() if p.is_dir()]
    assert len(dumps) >= 3
    assert all(re.fullmatch(r"CC-MAIN-\d{4}-\d{2}", d) for d in dumps)


def test_sample_fits_the_size_budget():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total <= 3 * 1024 * 1024


def test_sample_holds_warc_wet_and_arc_files():
    names = [p.name for p in CRAWL_FILES]
    assert any(n.endswith(".warc.wet.gz") for n in names)
    assert any(n.endswith(".arc.gz") for n in names)
    assert sum(n.endswith(".warc.gz") and not n.endswith(".wet.gz") for n in names) >= 6


@pytest.mark.parametrize("path", CRAWL_FILES, ids=lambda p: str(p.relative_to(SAMPLE)))
def test_warcio_reads_every_record(path: Path):
    """Reading each payload to the end is what catches a truncated gzip member."""
    records = 0
    with path.open("rb") as f:
        for rec in ArchiveIterator(f, arc2warc=True):
            rec.content_stream().read()
            records += 1
    assert records > 1


def test_expected_records_exist_in_their_dump():
    """expected.json is the contract the decoding tests rely on; it must point at real records."""
    expected = json.loads((SAMPLE / "expected.json").read_text("utf-8"))
    assert {e["encoding"] for e in expected} >= {"gb18030", "gbk", "big5", "shift_jis"}
    assert any(e["declared"] == "none" for e in expected)
    responses = set()
    for path in CRAWL_FILES:
        with path.open("rb") as f:
            for rec in ArchiveIterator(f, arc2warc=True):
                if rec.rec_type == "response":
                    responses.add((path.relative_to(SAMPLE).parts[0], rec.rec_headers.get_header("WARC-Target-URI")))
    for entry in expected:
        assert (entry["dump"], entry["url"]) in responses
