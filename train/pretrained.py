"""A trained model to start from or talk to: a checkpoint of ours or a Hugging Face Llama folder.

    step-* folder            trainer.json + model.safetensors (a run or checkpoints folder: its latest)
    Hugging Face folder      config.json + *.safetensors (what `crawl2model export-hf` writes)

Either way the result is our shape, our weights and, where one is known, the
tokenizer folder (the HF folder itself, or the tokenizer the run trained with).
Only safetensors and JSON are read: nothing here unpickles.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from crawl2model.core.errors import InputError
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train import checkpoint


@dataclass
class Pretrained:
    cfg: ModelConfig
    weights: dict[str, torch.Tensor]
    tokenizer: Path | None  # a folder with tokenizer.json, when known
    source: Path  # the checkpoint or HF folder read

    def model(self, **options) -> torch.nn.Module:
        """A `train.model.Transformer` holding these weights; `options` go to its constructor."""
        from crawl2model.train.model import Transformer

        model = Transformer(self.cfg, **options)
        checkpoint.set_weights(model, self.weights, self.source)
        return model


def find_checkpoint(path: Path) -> Path | None:
    """A step-* folder as given, or the latest checkpoint of a checkpoints folder or run folder."""
    if (path / checkpoint.TRAINER_JSON).is_file():
        return path
    return checkpoint.latest(path) or checkpoint.latest(path / "checkpoints")


def checkpoint_folder(path: str | Path) -> Path:
    """`find_checkpoint`, or an error saying what was expected."""
    latest = find_checkpoint(Path(path))
    if latest is None:
        raise InputError(f"no checkpoint at {path} (give a step-* folder, a checkpoints folder, a run folder or "
                         f"a Hugging Face folder)")
    return latest


def load(path: str | Path, weights: bool = True) -> Pretrained:
    """The model at `path`; `weights=False` reads only its shape and tokenizer (weights stay {})."""
    from safetensors.torch import load_file

    from crawl2model.train.export_hf import from_hf, run_tokenizer

    path = Path(path)
    if not path.exists():
        raise InputError(f"model not found: {path}")
    folder = find_checkpoint(path)
    if folder is None and (path / "config.json").is_file():
        cfg, tensors = from_hf(path, weights)
        return Pretrained(cfg, tensors, path if (path / "tokenizer.json").is_file() else None, path)
    folder = checkpoint_folder(path)
    state = checkpoint.read_state(folder)
    tensors = load_file(str(folder / checkpoint.MODEL_FILE)) if weights else {}
    return Pretrained(ModelConfig(**state["model"]), tensors, run_tokenizer(state), folder)
