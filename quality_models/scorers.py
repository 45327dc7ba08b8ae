"""The models as the pipeline calls them: small picklable objects that load their model lazily.

Spark ships a stage's functions to its workers by pickling them; these
objects carry only paths and load the model on first call through the
per-process caches (`load_classifier`, `load_lm`), so a worker pays the load
once and reuses the model for every batch after. They have the shapes
`crawl2model.pipeline.filters.models` asks for (a `Labeller`/`RankedLabeller`, a `Scorer`)
without importing it: quality_models does not depend on the pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crawl2model.quality_models.classifier import LABEL_PREFIX, label_probabilities, load_classifier, one_line, predict
from crawl2model.quality_models.featurize import model_text
from crawl2model.quality_models.kenlm_models import doc_perplexity, load_lm


@dataclass(frozen=True)
class Labeller:
    """The top label of a fastText classifier and its probability, per text (lid.176, domain topics)."""

    path: str

    def __call__(self, texts: list[str]) -> tuple[list[str], list[float]]:
        return predict(load_classifier(self.path), texts)

    def ranked(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        """Up to `k` (label, probability) per text, most probable first (lid.176's runners-up)."""
        if not texts:
            return []
        labels, probs = load_classifier(self.path).predict([one_line(t) for t in texts], k=k)
        return [[(lab[len(LABEL_PREFIX):], float(p)) for lab, p in zip(ls, ps)] for ls, ps in zip(labels, probs)]


@dataclass(frozen=True)
class QualityScorer:
    """P(`label`) of the quality classifier, on text prepared as in training (`model_text`)."""

    path: str
    label: str = "hq"
    # The classifier is bag-of-n-grams: the first 20k characters judge as well as all.
    max_chars: int = 20_000

    def __call__(self, texts: list[str], langs: list[str]) -> np.ndarray:
        prepared = [model_text((t or "")[:self.max_chars], lang) for t, lang in zip(texts, langs)]
        return np.asarray(label_probabilities(load_classifier(self.path), prepared, self.label), dtype=np.float64)


@dataclass(frozen=True)
class PerplexityScorer:
    """KenLM perplexity under the document's language model; NaN for languages without one."""

    models: dict[str, str] = field(default_factory=dict)   # lang -> model path

    def __call__(self, texts: list[str], langs: list[str]) -> np.ndarray:
        out = np.full(len(texts), np.nan)
        for i, (text, lang) in enumerate(zip(texts, langs)):
            path = self.models.get(lang)
            if path and text:
                out[i] = doc_perplexity(load_lm(path), text, lang)
        return out
