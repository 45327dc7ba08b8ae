"""What the pipeline asks of its models, so that it never imports the code that trains and loads them.

Two shapes cover every model the pipeline calls:

- a `Labeller` names the top label of each text with its probability
  (remix's fastText topic classifier for domains); a `RankedLabeller` also
  gives the next ones (lid.176, whose runners-up the script check picks from);
- a `Scorer` gives each document, with its language, one number (the
  quality classifier's P(hq), a KenLM perplexity); NaN means "not measured"
  (no model for the language), which the rules let pass.

`crawl2model.quality_models.scorers` implements them with fastText and KenLM,
and `jobs/filter.py` / `jobs/remix.py` build them from the config. Spark
pickles them into every task, so an implementation should carry paths and
load its model on first call, once per worker process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Labeller(Protocol):
    def __call__(self, texts: list[str]) -> tuple[list[str], list[float]]:
        """(top label, its probability) per text; an unlabelled text gets ("", 0.0)."""


class RankedLabeller(Protocol):
    def ranked(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        """Up to `k` (label, probability) per text, most probable first."""


class Scorer(Protocol):
    def __call__(self, texts: list[str], langs: list[str]) -> np.ndarray:
        """One float64 per document; NaN where it is not measured."""


@dataclass(frozen=True)
class FilterModels:
    """The models behind the filter's model signals (lang/lang_score, quality_score, perplexity)."""

    language: RankedLabeller
    quality: Scorer
    perplexity: Scorer
