"""quality_models: the fastText classifier API and CLI, the KenLM CLI, the shipped models."""
from __future__ import annotations

import json
import random

import pytest

from crawl2model.jobs.cli import main as cli
from crawl2model.pipeline.filters.perplexity import doc_perplexity, load_lm
from crawl2model.quality_models.classifier import load_classifier, predict, train_classifier
from crawl2model.quality_models.kenlm_models import find_tool
from crawl2model.quality_models.shipped import KENLM, QUALITY_CLASSIFIER

EN = ("APT is the package manager of Debian. It downloads packages from the repositories listed in "
      "sources.list, resolves their dependencies and installs them in the right order.\n"
      "The configuration of each service is kept in its own file under /etc, so that an upgrade "
      "does not overwrite the changes made by the administrator.")


def shuffled(text: str) -> str:
    words = text.split()
    random.Random(0).shuffle(words)
    return " ".join(words)


def test_train_predict_roundtrip(tmp_path):
    texts = [f"the package manager installs software number {i}\nfrom the archive" for i in range(60)] + \
            [f"click here buy now offer {i} free shipping" for i in range(60)]
    labels = ["docs"] * 60 + ["spam"] * 60
    path = train_classifier(texts, labels, str(tmp_path / "m"), epoch=5, bucket=10_000)
    assert path.endswith(".bin")
    model = load_classifier(path)
    assert load_classifier(path) is model  # cached per process
    top, probs = predict(model, ["the package manager\ninstalls", "buy now, click here"])
    assert top == ["docs", "spam"] and all(0.5 < p <= 1.0 for p in probs)


def test_train_classifier_cli_writes_model_card(tmp_path):
    pos, neg = tmp_path / "pos.jsonl", tmp_path / "neg.txt"
    pos.write_text("".join(json.dumps({"text": f"{EN} Section {i}."}) + "\n" for i in range(80)))
    neg.write_text("".join(f"Home | Next | Prev | Index {i} | Up\n" for i in range(80)))
    out = tmp_path / "q.bin"
    assert cli(["quality-models", "train-classifier", "--positive", str(pos), "--negative", str(neg),
                "--output", str(out), "--epoch", "5", "--bucket", "20000"]) == 0
    card = json.loads((tmp_path / "q.card.json").read_text())
    assert card["labels"] == {"hq": 80, "lq": 80} and card["heldout_examples"] > 0
    assert card["heldout_accuracy"] >= 0.9 and out.is_file()


def test_shipped_models_rank_real_text_above_shuffled_words():
    assert doc_perplexity(load_lm(KENLM["en"]), EN, "en") < doc_perplexity(load_lm(KENLM["en"]), shuffled(EN), "en")
    zh = "软件包管理系统会自动解决依赖关系，并按照正确的顺序安装软件包。配置文件保存在 /etc 目录中。"
    zh_shuffled = "".join(random.Random(0).sample(zh, len(zh)))
    assert doc_perplexity(load_lm(KENLM["zh"]), zh, "zh") < doc_perplexity(load_lm(KENLM["zh"]), zh_shuffled, "zh")
    assert sorted(load_classifier(QUALITY_CLASSIFIER).get_labels()) == ["__label__hq", "__label__lq"]


def test_train_kenlm_cli_model_ranks_in_domain_below_shuffled(tmp_path):
    try:
        find_tool("lmplz")
    except FileNotFoundError:
        pytest.skip("lmplz not built (quality_models/build_kenlm.sh)")
    corpus = tmp_path / "corpus.txt"
    rng = random.Random(1)
    lines = EN.split("\n") * 3
    corpus.write_text("\n".join(" ".join(rng.sample(l.split(), len(l.split()) - 2)) for l in lines * 20) +
                      "\n" + "\n".join(lines * 20) + "\n")
    out = tmp_path / "en.binary"
    assert cli(["quality-models", "train-kenlm", "--input", str(corpus), "--order", "3", "--output", str(out)]) == 0
    model = load_lm(str(out))
    assert doc_perplexity(model, EN, "en") < doc_perplexity(model, shuffled(EN), "en")
    assert json.loads((tmp_path / "en.card.json").read_text())["order"] == 3
