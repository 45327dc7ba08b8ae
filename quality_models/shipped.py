"""Where the models shipped with the project live, so a default run needs no training step.

`build_shipped.py` rebuilds them from Debian packages; each has a `.card.json`
beside it saying what it was trained on and how well it did on held-out text.
"""
from __future__ import annotations

import os

from crawl2model.core.resources import resource

MODELS_DIR = str(resource("crawl2model.quality_models", "models"))
QUALITY_CLASSIFIER = os.path.join(MODELS_DIR, "quality_en_zh.ftz")
KENLM = {lang: os.path.join(MODELS_DIR, f"kenlm_{lang}.binary") for lang in ("en", "zh")}
