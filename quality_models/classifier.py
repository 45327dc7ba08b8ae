"""fastText supervised classifiers: the quality classifier here, domain labels in remix.

fastText reads training data from a file with one `__label__X text` line per
example, so texts are flattened to one line first (a newline would split an
example in two). Training runs on one thread with a fixed seed: the same data
gives the same model bytes. Models are loaded once per process and cached, so
a Spark worker that scores many batches pays the load once.

`quality-models train-classifier` (`ClassifierConfig`, `train_classifier_from_files`)
reads the examples, holds out a stable fraction for the accuracy, trains on
the rest and writes the model with a card saying what it was trained on.
"""
from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from crawl2model.core.config import DEFAULT_SEED
from crawl2model.core.errors import ConfigError, InputError

LABEL_PREFIX = "__label__"
_SPACES = re.compile(r"\s+")
QUANTIZE_CUTOFF = 50_000  # embedding rows kept by quantize(): ~1 MB at dim 64


def one_line(text: str) -> str:
    """fastText treats a newline as the end of an example: collapse all whitespace to spaces."""
    return _SPACES.sub(" ", text).strip()


def _fit_and_save(train_path: str, output: str, quantize: bool, params: dict) -> None:
    """Train, optionally quantize, and save, in whatever process runs it."""
    import fasttext

    model = fasttext.train_supervised(input=train_path, thread=1, verbose=0, **params)
    if quantize:
        model.quantize(input=train_path, retrain=True, qnorm=True, cutoff=QUANTIZE_CUTOFF, dsub=4,
                       thread=1, verbose=0)
    model.save_model(output)


def train_classifier(texts: list[str], labels: list[str], output: str, *, epoch: int = 10, lr: float = 0.5,
                     word_ngrams: int = 2, dim: int = 64, min_count: int = 1, seed: int = DEFAULT_SEED,
                     quantize: bool = False, bucket: int = 200_000) -> str:
    """Train on (text, label) pairs and save the model; returns the path written.

    Labels are plain names ("hq", "wiki"); the `__label__` prefix is added here.
    With `quantize` the model is compressed (product quantization, keeping the
    QUANTIZE_CUTOFF most important rows) and saved with the `.ftz` suffix, which
    is how the small shipped models are made. `bucket` (hashed n-gram rows) is
    10x under fastText's 2M default: at dim 64 the default makes a 512 MB model.
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError("no training examples")
    root, ext = os.path.splitext(output)
    if quantize:
        output = root + ".ftz" if ext in ("", ".bin") else output
    elif not ext:
        output = root + ".bin"
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    params = dict(epoch=epoch, lr=lr, wordNgrams=word_ngrams, dim=dim, minCount=min_count, seed=seed,
                  bucket=bucket)
    fd, train_path = tempfile.mkstemp(suffix=".txt", prefix="fasttext-train-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for text, label in zip(texts, labels):
                f.write(f"{LABEL_PREFIX}{_SPACES.sub('_', label.strip())} {one_line(text)}\n")
        # A fresh process: fastText's trainer was seen to diverge ("Encountered NaN") at any
        # learning rate inside a process that had run other native code (numba, Spark's
        # Arrow), and it holds its matrices outside Python's accounting anyway.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(_fit_and_save, (train_path, output, quantize, params))
    finally:
        os.unlink(train_path)
    return output


@functools.lru_cache(maxsize=8)
def load_classifier(path: str) -> Any:
    """The fastText model at `path`, loaded once per process."""
    import fasttext

    if not os.path.isfile(path):
        raise FileNotFoundError(f"fastText model not found: {path}")
    # fasttext.load_model prints a deprecation warning to stderr on every load; the
    # underlying FastText wrapper is the same object without the noise.
    return fasttext.FastText._FastText(model_path=path)


def predict(model: Any, texts: list[str], k: int = 1) -> tuple[list[str], list[float]]:
    """Top label (without `__label__`) and its probability for each text."""
    if not texts:
        return [], []
    labels, probs = model.predict([one_line(t) for t in texts], k=k)
    top = [ls[0][len(LABEL_PREFIX):] if ls else "" for ls in labels]
    return top, [float(p[0]) if len(p) else 0.0 for p in probs]


def label_probabilities(model: Any, texts: list[str], label: str) -> list[float]:
    """P(label | text) for each text: the quality score is P(hq), whatever the top label is."""
    if not texts:
        return []
    want = LABEL_PREFIX + label
    labels, probs = model.predict([one_line(t) for t in texts], k=-1)
    return [float(dict(zip(ls, ps)).get(want, 0.0)) for ls, ps in zip(labels, probs)]


def _heldout(text: str, fraction: float) -> bool:
    """A stable split: the same examples are held out on every run and machine."""
    h = int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
    return h / 2**64 < fraction


@dataclass
class ClassifierConfig:
    """`quality-models train-classifier`: the `[quality-classifier]` table of a run file."""

    # JSON Lines or Parquet with a text and a label field (any labels: domains, topics).
    input: str | None = None
    # Or reference-quality documents (label hq) and random web documents (label lq): a quality model.
    positive: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    output: str = ""
    text_field: str = "text"
    label_field: str = "label"
    # Prepare the text as the filter's quality scorer does (`featurize.model_text` for this language);
    # unset, the model reads text as it is, as remix's domain classifier is called.
    lang: str | None = None
    # Fraction of the examples held out (by a hash of the text) to measure the accuracy.
    heldout: float = 0.1
    epoch: int = 10
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 64
    min_count: int = 1
    seed: int = DEFAULT_SEED
    # Hashed word n-gram rows: 10x under fastText's 2M default, which makes a 512 MB model at dim 64.
    bucket: int = 200_000
    # Product-quantize to a small .ftz (how the shipped models are made).
    quantize: bool = False
    overwrite: bool = False

    def validate(self) -> None:
        for name in ("positive", "negative"):
            if isinstance(getattr(self, name), str):
                setattr(self, name, [getattr(self, name)])
        if not self.output:
            raise ConfigError("quality-models train-classifier: --output is required")
        if bool(self.input) == bool(self.positive or self.negative):
            raise ConfigError("quality-models train-classifier: give either --input, or --positive and --negative")
        if (self.positive or self.negative) and not (self.positive and self.negative):
            raise ConfigError("quality-models train-classifier: --positive and --negative go together")
        if not 0 <= self.heldout < 1:
            raise ConfigError(f"quality-models train-classifier: heldout must be in [0, 1), got {self.heldout}")

    @property
    def inputs(self) -> list[str]:
        return [self.input] if self.input else [*self.positive, *self.negative]

    def train_args(self) -> dict[str, Any]:
        """The fastText parameters, as `train_classifier` takes them."""
        return dict(epoch=self.epoch, lr=self.lr, word_ngrams=self.word_ngrams, dim=self.dim,
                    min_count=self.min_count, seed=self.seed, bucket=self.bucket, quantize=self.quantize)


def train_classifier_from_files(output: str, *, labelled: str | None = None, positive: list[str] | None = None,
                                negative: list[str] | None = None, text_field: str = "text",
                                label_field: str = "label", lang: str | None = None, heldout: float = 0.1,
                                **train_args: Any) -> dict:
    """Train from files, measure accuracy on a held-out split, write MODEL.card.json; returns the card.

    With positive/negative files the labels are `hq` (reference quality) and
    `lq` (random web), the ones the filter's quality_score reads. The card
    counts every row read: `skipped_empty` + `heldout_examples` + `train_examples`.
    """
    from crawl2model.quality_models.corpus import read_labelled, read_texts
    from crawl2model.quality_models.featurize import model_text

    if labelled:
        texts, labels, skipped = read_labelled(labelled, text_field, label_field)
        sources: dict[str, Any] = {"labelled": labelled}
    else:
        pos = [read_texts(p, text_field) for p in positive or []]
        neg = [read_texts(p, text_field) for p in negative or []]
        texts = [t for ts, _ in pos + neg for t in ts]
        labels = ["hq"] * sum(len(ts) for ts, _ in pos) + ["lq"] * sum(len(ts) for ts, _ in neg)
        skipped = sum(n for _, n in pos + neg)
        sources = {"positive": positive, "negative": negative}
    if not texts:
        raise InputError(f"no examples with text in {labelled or ', '.join([*(positive or []), *(negative or [])])}")
    if lang:
        texts = [model_text(t, lang) for t in texts]
    test = [_heldout(t, heldout) for t in texts]
    train_x = [t for t, h in zip(texts, test) if not h]
    train_y = [y for y, h in zip(labels, test) if not h]
    if not train_x:
        raise InputError(f"all {len(texts)} examples fell in the held-out split: give more, or a smaller heldout")
    path = train_classifier(train_x, train_y, output, **train_args)
    test_x = [t for t, h in zip(texts, test) if h]
    test_y = [y for y, h in zip(labels, test) if h]
    pred, _ = predict(load_classifier(path), test_x)
    accuracy = sum(p == y for p, y in zip(pred, test_y)) / len(test_y) if test_y else None
    counts: dict[str, int] = {}
    for y in labels:
        counts[y] = counts.get(y, 0) + 1
    card = {"model": os.path.basename(path), "bytes": os.path.getsize(path), "kind": "fasttext-supervised",
            "labels": counts, "lang": lang, "skipped_empty": skipped, "train_examples": len(train_x),
            "heldout_examples": len(test_x), "heldout_accuracy": None if accuracy is None else round(accuracy, 4),
            "params": train_args, "sources": sources}
    with open(os.path.splitext(path)[0] + ".card.json", "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return card
