"""Benchmark decontamination (issue 16, item 6): n-gram keys, exact and overlapping matches, the Spark job."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawl2model.core.errors import ConfigError
from crawl2model.core.fs import read_json
from crawl2model.jobs.cli import main as cli
from crawl2model.pipeline.filters.decontam import DecontaminateConfig, cut, ngram_keys, tokens
from crawl2model.pipeline.schema import make_doc_id
from crawl2model.pipeline.tables import arrow_dataset

QUESTION = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
            "How many clips did Natalia sell altogether in April and May?")
POEM = "白日依山尽黄河入海流欲穷千里目更上一层楼"
PROSE = ("The Debian project is an association of individuals who have made common cause to create a free "
         "operating system. This operating system is called Debian and it is developed in the open.")


def test_tokens_keys_and_cut():
    toks, spans = tokens("Hello, World! 中文")
    assert toks == ["hello", "world", "中", "文"] and spans[2] == (14, 15)
    a = ngram_keys(tokens("x " + QUESTION.upper() + " y")[0], 13)
    b = ngram_keys(tokens(QUESTION)[0], 13)
    assert set(b) <= set(a.tolist()) and len(ngram_keys(["a"] * 5, 13)) == 0
    text = f"Intro line. {QUESTION} Outro line."
    pos = [i for i, k in enumerate(ngram_keys(tokens(text)[0], 13)) if k in set(b.tolist())]
    out, removed = cut(text, pos, 13)
    assert out.startswith("Intro line. ") and out.endswith("? Outro line.") and "Natalia" not in out
    assert removed == len(QUESTION) - 1  # the question mark is no token


def test_bad_config_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="eval file not found"):
        DecontaminateConfig(input=["d"], output="o", eval=[str(tmp_path / "x.jsonl")]).validate()
    (tmp_path / "e.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match="mode must be"):
        DecontaminateConfig(input=["d"], output="o", eval=[str(tmp_path / "e.jsonl")], mode="drop").validate()


@pytest.mark.spark
def test_job_removes_and_cuts(spark, tmp_path):
    docs = {"exact": QUESTION, "inside": f"{PROSE}\nA quiz: {QUESTION}\n{PROSE}", "clean": PROSE,
            "poem": f"今天读一首诗：{POEM}。", "near": QUESTION.replace("April", "June").replace("May", "July")}
    root = tmp_path / "docs" / "dump=CC-MAIN-2024-10"
    root.mkdir(parents=True)
    pq.write_table(pa.table({"doc_id": [make_doc_id(k) for k in docs], "url": list(docs), "text": list(docs.values())}),
                   root / "part-0.parquet")
    (tmp_path / "gsm8k.jsonl").write_text(json.dumps({"id": "gsm-1", "question": QUESTION, "answer": "72"}) + "\n"
                                          + json.dumps({"id": "gsm-2", "question": "Too short."}) + "\n")
    pq.write_table(pa.table({"id": ["poem-1"], "text": [POEM]}), tmp_path / "cpoems.parquet")
    evals = [str(tmp_path / "gsm8k.jsonl"), str(tmp_path / "cpoems.parquet")]
    out = tmp_path / "removed"
    assert cli(["decontaminate", "--input", str(tmp_path / "docs"), "--eval", *evals, "--output", str(out)]) == 0
    report = read_json(str(out / "report.json"))
    removed = arrow_dataset(str(out / "removed")).to_table().to_pydict()
    assert sorted(removed["url"]) == ["exact", "inside", "poem"]  # "near" shares no 13 words in a row
    by_url = dict(zip(removed["url"], removed["decon_samples"]))
    assert by_url["exact"] == ["gsm-1"] and by_url["poem"] == ["poem-1"]
    assert report["docs_in"] == 5 == report["docs_out"] + report["removed_by_reason"]["contaminated"]
    assert report["per_benchmark"] == {"cpoems": 1, "gsm8k": 2} and report["eval"]["samples_shorter_than_ngram"] == 1

    out = tmp_path / "cut"
    assert cli(["decontaminate", "--input", str(tmp_path / "docs"), "--eval", *evals, "--output", str(out),
                "--mode", "cut"]) == 0
    kept = {r["url"]: r for r in arrow_dataset(str(out / "kept")).to_table().to_pylist()}
    gone = arrow_dataset(str(out / "removed")).to_table().column("url").to_pylist()
    assert gone == ["exact"]  # only "?" was left
    assert "Natalia" not in kept["inside"]["text"] and kept["inside"]["text"].count(PROSE) == 2
    assert kept["poem"]["text"] == "今天读一首诗：。" and kept["clean"]["decon_ngrams"] == 0
    assert read_json(str(out / "report.json"))["cut_documents"] == 2
