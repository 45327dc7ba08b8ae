"""quality_models: the fastText classifier API and CLI, the KenLM CLI, the scorers, the shipped models."""
from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest

from crawl2model.jobs.cli import main as cli
from crawl2model.quality_models.classifier import load_classifier, predict, train_classifier
from crawl2model.quality_models.kenlm_models import doc_perplexity, find_tool, load_lm
from crawl2model.quality_models.scorers import PerplexityScorer, QualityScorer
from crawl2model.quality_models.shipped import KENLM, QUALITY_CLASSIFIER, classifier_file, kenlm_files

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


@pytest.fixture
def quality_data(tmp_path):
    pos, neg = tmp_path / "pos.jsonl", tmp_path / "neg.txt"
    # model_text maps every digit to 0: examples differ by letters, or they would be one example
    names = [a + b for a in "abcdefgh" for b in "klmnopqrst"]
    pos.write_text("".join(json.dumps({"text": f"{EN} Section {n}."}) + "\n" for n in names) + '{"text": ""}\n')
    neg.write_text("".join(f"Home | Next | Prev | Index {n} | Up\n" for n in names))
    return ["--positive", str(pos), "--negative", str(neg), "--lang", "en", "--bucket", "20000"]


def test_train_classifier_cli_writes_stage_output_the_filter_reads(tmp_path, quality_data):
    out = tmp_path / "quality"
    assert cli(["quality-models", "train-classifier", *quality_data, "--output", str(out), "--epoch", "5"]) == 0
    card = json.loads((out / "model.card.json").read_text())
    assert card["labels"] == {"hq": 80, "lq": 80} and card["heldout_examples"] > 0
    assert card["heldout_accuracy"] >= 0.9
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "quality-classifier" and report["docs_in"] == 161
    assert report["removed_by_reason"] == {"empty": 1, "heldout": card["heldout_examples"]}
    assert report["docs_out"] == card["train_examples"] == 160 - card["heldout_examples"]
    assert json.loads((out / "config.json").read_text())["quality-classifier"]["epoch"] == 5
    assert classifier_file(str(out)) == str(out / "model.bin")
    score = QualityScorer(classifier_file(str(out)))
    assert list(np.argsort(score([EN, "Home | Next | Prev | Up"], ["en", "en"]))) == [1, 0]


def test_train_classifier_follows_the_stage_protocol(tmp_path, quality_data, capsys):
    run = tmp_path / "run.toml"
    run.write_text("[quality-classifier]\nepoch = 3\ndim = 16\n")
    argv = ["quality-models", "train-classifier", *quality_data, "--output", str(tmp_path / "q"), "--config", str(run)]
    assert cli(argv) == 0
    assert json.loads((tmp_path / "q" / "config.json").read_text())["quality-classifier"]["dim"] == 16
    model = (tmp_path / "q" / "model.bin").stat().st_mtime_ns
    assert cli(argv) == 0 and (tmp_path / "q" / "model.bin").stat().st_mtime_ns == model  # skipped
    capsys.readouterr()
    assert cli([*argv, "--epoch", "4"]) == 2
    assert "epoch: 3 -> 4" in capsys.readouterr().err
    assert cli([*argv, "--epoch", "4", "--overwrite"]) == 0
    run.write_text("[quality-classifier]\nepochs = 3\n")
    assert cli(argv) == 2 and "unknown key 'epochs'" in capsys.readouterr().err


def test_scorers_pickle_without_their_models():
    scorer = PerplexityScorer(kenlm_files(None))
    assert set(scorer.models) == {"en", "zh"}
    again = pickle.loads(pickle.dumps(scorer))  # as Spark ships it to a worker
    ppl = again([EN, shuffled(EN), "texte sans modèle"], ["en", "en", "fr"])
    assert ppl[0] < ppl[1] and np.isnan(ppl[2])


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
    out = tmp_path / "kenlm-en"
    assert cli(["quality-models", "train-kenlm", "--input", str(corpus), "--order", "3", "--output", str(out)]) == 0
    model = load_lm(kenlm_files(str(out))["en"])
    assert doc_perplexity(model, EN, "en") < doc_perplexity(model, shuffled(EN), "en")
    assert json.loads((out / "kenlm_en.card.json").read_text())["order"] == 3
    assert json.loads((out / "report.json").read_text())["docs_out"] == len(lines) * 40
