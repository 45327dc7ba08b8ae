"""Language ID on held-out pages (issue 16, item 1) and the script second opinion.

tests/data/filter/lid_heldout.jsonl.gz is a slice of the test split of
`crawl2model.corpora.heldout_lid`: 10 languages from Debian packages that
neither the shipped models, the other fixtures nor the LID rules' tuning read
(`bench/lid.py` gives the figures on the whole split).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crawl2model.corpora.heldout_lid import evaluate, read_jsonl_gz
from crawl2model.pipeline.filters import langid
from crawl2model.quality_models import shipped
from crawl2model.quality_models.scorers import Labeller

HELDOUT = Path(__file__).resolve().parent / "data" / "filter" / "lid_heldout.jsonl.gz"
POEM = "《风雨》\n作者：李商隐\n凄凉宝剑篇，羁泊欲穷年。\n黄叶仍风雨，青楼自管弦。\n新知遭薄俗，旧好隔良缘。\n心断新丰酒，销愁又几千。"


@pytest.fixture(scope="module")
def model() -> Labeller:
    return Labeller(shipped.lid_model_path())


def test_heldout_accuracy_per_language(model):
    rows = read_jsonl_gz(HELDOUT)
    langs, scores = langid.identify([r["text"] for r in rows], model)
    result = evaluate(rows, langs)
    per_lang = {k: v["accuracy"] for k, v in result["per_language"].items()}
    assert len(per_lang) == 10 and min(v["documents"] for v in result["per_language"].values()) >= 25
    assert result["overall"]["accuracy"] >= 0.99 and per_lang["zh"] >= 0.98, result["confusion"]
    assert min(per_lang.values()) >= 0.95, per_lang
    right = np.array([r["lang"] == g for r, g in zip(rows, langs)])
    assert np.mean(scores[right] >= 0.65) >= 0.95  # the default language rule keeps what is right


def test_classical_chinese_is_chinese_not_japanese(model):
    cleaned = langid.clean_text(POEM)
    assert model.ranked([cleaned], 1)[0][0][0] != "zh"  # lid.176 alone gets it wrong
    lang, score = langid.identify([POEM], model)
    assert lang == ["zh"] and score[0] >= 0.65
    japanese = "日本語の文章には、ひらがなとカタカナと漢字が混ざっています。"
    korean = "한국어 문서는 한글로 씁니다. 이 문장은 한국어입니다."
    assert langid.identify([japanese, korean], model)[0] == ["ja", "ko"]


def test_script_decides_between_labels():
    han = langid.script_shares("白日依山尽黄河入海流欲穷千里目更上一层楼")
    assert langid.decide([("ja", 0.9), ("zh", 0.05), ("wuu", 0.05)], han) == ("zh", 0.5)
    assert langid.decide([("lt", 0.9), ("ar", 0.1)], han) == ("zh", 1.0)  # no allowed label: the script's own
    cyr = langid.script_shares("Это русский текст с несколькими словами")
    assert langid.decide([("en", 0.6), ("ru", 0.3), ("bg", 0.1)], cyr)[0] == "ru"
    mixed = langid.script_shares("表格 著名的 TrueType OpenType 字型列表 fonts noto Noto fonts Google 有 CJK 的多語言")
    assert langid.decide([("zh", 0.93), ("ja", 0.06)], mixed)[0] == "zh"  # enough Han for Chinese
    latin = langid.script_shares("a plain English sentence")
    assert langid.decide([("en", 0.7), ("zh", 0.3)], latin) == ("en", 1.0)
    assert langid.decide([], {}) == ("", 0.0)


def test_clean_text_drops_urls_code_and_short_lines():
    text = ("Menu\nHome\n$ sudo apt-get install --yes foo=1.2\nx = f(a[0], b_c) + 3;\n"
            "See https://example.org/docs/a.html or mail admin@example.org for the manual pages.\n"
            "The package /usr/bin/foo version 2.3.1 is described here in plain words.")
    cleaned = langid.clean_text(text)
    for gone in ("Menu", "Home", "sudo", "https", "example", "admin", "/usr", "2.3.1", "f(a"):
        assert gone not in cleaned
    assert "for the manual pages" in cleaned and "is described here in plain words" in cleaned
    long = "\n".join(f"Line number {i} of a long document written in plain English words." for i in range(2000))
    assert len(langid.clean_text(long)) <= langid.MAX_CHARS + langid.WINDOWS
