"""The filter job end to end in Spark local mode: accounting, outputs, plots, --reapply, spark-submit."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.core.fs import read_json
from crawl2model.jobs.cli import main as cli
from crawl2model.pipeline.schema import DOC_SCHEMA, make_doc_id
from crawl2model.pipeline.tables import arrow_dataset

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "tests" / "data" / "filter" / "eval.jsonl.gz"
BLOCKED_HOST = "blocked.example"
CONTACT = "Questions go to Jane Doe, jane@mail.example.org, or +44 20 7946 0958."


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """A document table of real held-out pages (clean, junk, 8 languages) in two dumps."""
    root = tmp_path_factory.mktemp("filter-in") / "documents"
    with gzip.open(EVAL, "rt", encoding="utf-8") as f:
        pages = [json.loads(line) for line in f]
    clean_en = [p for p in pages if p["kind"] == "clean" and p["lang"] == "en"]
    for k, dump in enumerate(["CC-MAIN-2024-10", "CC-MAIN-2024-18"]):
        part = pages[k::8]  # an eighth of the pages, half in each dump: every kind and language, fast
        urls = [f"https://docs.example/{p['path']}" for p in part]
        # Good prose at a blocklisted host (BLOCKLIST below), and with an address and a phone number in it.
        part = part + [clean_en[k], {**clean_en[2 + k], "text": clean_en[2 + k]["text"] + f"\n{CONTACT}"}]
        urls = urls + [f"https://www.{BLOCKED_HOST}/page{k}", f"https://docs.example/contact{k}"]
        table = pa.table({"doc_id": [make_doc_id(u) for u in urls], "dump": [dump] * len(part), "url": urls,
                          "host": ["docs.example"] * len(part), "warc_date": ["2024-03-01T00:00:00Z"] * len(part),
                          "content_type": ["text/html"] * len(part), "text": [p["text"] for p in part],
                          "n_chars": [len(p["text"]) for p in part]}, schema=DOC_SCHEMA)
        (root / f"dump={dump}").mkdir(parents=True)
        pq.write_table(table.drop(["dump"]), root / f"dump={dump}" / "part-0.parquet", row_group_size=64)
    return root


@pytest.fixture(scope="module")
def filtered(spark, documents, tmp_path_factory) -> Path:
    """The filter with a user's UT1-style blocklist folder (adult and gambling; only adult chosen)."""
    lists = tmp_path_factory.mktemp("ut1")
    for category, host in (("adult", BLOCKED_HOST), ("gambling", "docs.example")):
        (lists / category).mkdir()
        (lists / category / "domains").write_text(f"{host}\n")
    out = tmp_path_factory.mktemp("filter") / "filtered"
    assert cli(["filter", "--input", str(documents), "--output", str(out), "--blocklists", str(lists),
                "--blocklist-categories", "adult"]) == 0
    return out


def test_blocklist_rejections_and_pii_redaction(filtered):
    report = read_json(str(filtered / "report.json"))
    rejected = arrow_dataset(str(filtered / "rejected")).to_table().to_pydict()
    blocked = [i for i, u in enumerate(rejected["url"]) if BLOCKED_HOST in u]
    assert len(blocked) == 2 and report["removed_by_reason"]["url_blocklist"] == 2
    assert {rejected["filter_rule"][i] for i in blocked} == {"url_blocklist"}
    assert {rejected["blocklist_match"][i] for i in blocked} == {f"domain:adult:{BLOCKED_HOST}"}
    assert report["blocklists"]["domains"] == 1 and report["blocklists"]["categories"] == ["adult"]
    assert report["pii"]["emails"] >= 2 and report["pii"]["phones"] >= 2 and report["pii"]["documents"] >= 2
    both = arrow_dataset(str(filtered / "kept")).to_table().to_pylist() + arrow_dataset(
        str(filtered / "rejected")).to_table().to_pylist()
    contact = [r for r in both if r["url"].startswith("https://docs.example/contact")]
    assert len(contact) == 2 and all("<EMAIL>" in r["text"] and "jane@mail.example.org" not in r["text"]
                                     and r["pii_emails"] >= 1 and r["pii_phones"] >= 1 for r in contact)


def test_accounting_outputs_and_plots(documents, filtered):
    report = read_json(str(filtered / "report.json"))
    kept, rejected = arrow_dataset(str(filtered / "kept")).to_table(), arrow_dataset(str(filtered / "rejected")).to_table()
    n_in = arrow_dataset(str(documents)).count_rows()
    n_rejected = sum(report["removed_by_reason"].values())
    assert report["docs_in"] == n_in == report["docs_out"] + n_rejected
    assert (kept.num_rows, rejected.num_rows) == (report["docs_out"], n_rejected)
    assert set(kept.column("doc_id").to_pylist()).isdisjoint(rejected.column("doc_id").to_pylist())
    for col in ("lang", "lang_score", "n_words", "dup_5gram_frac", "quality_score", "perplexity", "perplexity_bucket"):
        assert col in kept.column_names
    assert "filter_rule" not in kept.column_names
    assert set(kept.column("lang").to_pylist()) <= {"en", "zh"}
    r = rejected.to_pydict()
    assert all(r["filter_rule"]) and all(r["filter_rule"][i] in r["filter_failed"][i] for i in range(len(r["doc_id"])))
    by_lang = report["per_language"]
    assert {"en", "zh", "de", "ja"} <= set(by_lang) and by_lang["de"]["docs_out"] == 0
    assert report["rules"]["language"]["pass_rate"] < 1 and "gopher_min_words" in by_lang["en"]["rule_pass_rate"]
    assert sum(v["first_failed"] for v in report["rules"].values()) == n_rejected
    for name in report["plots"]:
        svg = ElementTree.parse(filtered / name).getroot()
        assert svg.tag == "{http://www.w3.org/2000/svg}svg" and name.endswith(".svg")
        assert len(svg.findall("{http://www.w3.org/2000/svg}polygon")) >= 1  # a language's histogram


def test_reapply_uses_stored_signals_only(filtered, tmp_path):
    # The rule set inline, as the [filter.rules] table of a run file (rules.py's docstring).
    run = tmp_path / "run.toml"
    run.write_text('[filter]\nreapply = true\n[filter.rules.language]\nkeep = ["en"]\n'
                   '[filter.rules.rules.gopher_min_words]\nmin = 400\n[filter.rules.rules.ccnet_tail]\nenabled = true\n')
    out = tmp_path / "again"
    # A missing model proves nothing is recomputed.
    assert cli(["filter", "--config", str(run), "--input", str(filtered), "--output", str(out),
                "--quality-model", str(tmp_path / "none.ftz")]) == 0
    assert read_json(str(out / "config.json"))["filter"]["rules"]["rules"]["gopher_min_words"] == {"min": 400}
    before, after = read_json(str(filtered / "report.json")), read_json(str(out / "report.json"))
    assert after["mode"] == "reapply" and after["docs_in"] == before["docs_in"]
    assert after["docs_out"] < before["docs_out"] and after["per_language"]["zh"]["docs_out"] == 0
    kept = arrow_dataset(str(out / "kept")).to_table(columns=["n_words", "perplexity_bucket"]).to_pydict()
    assert min(kept["n_words"]) >= 400 and set(kept["perplexity_bucket"]) <= {"head", "middle"}


def test_spark_submit_entry_point_runs(documents, tmp_path):
    out = tmp_path / "via-script"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "filter.py"), "--help"], capture_output=True,
                          text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and "--reapply" in proc.stdout
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "filter.py"), "--input", str(documents),
                           "--output", str(out), "--rules", str(tmp_path / "missing.toml")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2 and "config file not found" in proc.stderr


def test_a_single_file_without_dump_is_one_clear_error(spark, tmp_path, capsys):
    """A lone Parquet file is read as a table (no basePath), and a missing column is named, exit 2."""
    pq.write_table(pa.table({"doc_id": ["a"], "text": ["Some prose."]}), tmp_path / "docs.parquet")
    assert cli(["filter", "--input", str(tmp_path / "docs.parquet"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("lacks document columns: dump") and "Traceback" not in "\n".join(err)
