"""Semantic quality: P(reference quality) from a fastText classifier, as DCLM and the paper use.

The classifier sees `model_text`, the same tokens it was trained on: Chinese
and Japanese are segmented first (fastText splits only on spaces, so an
unsegmented Chinese sentence would be one unseen token), which is what makes
one model usable across languages; thresholds are set per language in the
rule set.
"""
from __future__ import annotations

import numpy as np

from crawl2model.pipeline.filters.words import model_text

HQ_LABEL = "hq"
MAX_CHARS = 20_000  # the classifier is bag-of-n-grams: the first 20k characters judge as well as all


def quality_scores(texts: list[str], langs: list[str], model_path: str) -> np.ndarray:
    """P(hq) per document, one fastText call for the whole batch."""
    from crawl2model.quality_models.classifier import label_probabilities, load_classifier

    model = load_classifier(model_path)
    prepared = [model_text((t or "")[:MAX_CHARS], lang) for t, lang in zip(texts, langs)]
    return np.asarray(label_probabilities(model, prepared, HQ_LABEL), dtype=np.float64)
