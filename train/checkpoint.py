"""Atomic, exactly resumable checkpoints.

    CHECKPOINTS/step-00000100/
        trainer.json         step, samples consumed (the loader's whole state), model and run config
        model.safetensors    full model weights in the training dtype (what export-hf reads)
        rng-00000.pt ...     each rank's torch/CUDA/numpy/python RNG states
        deepspeed/           DeepSpeed's files (ZeRO-1: one optimizer shard per rank; another
                             number of ranks loads them re-partitioned, see train.engine), or
        optimizer.pt         the torch engine's AdamW state
        KEEP                 (only at the end of the first LR stage) never pruned
    CHECKPOINTS/latest       name of the newest complete checkpoint

Atomicity: every rank writes into `.tmp-step-N/`; after a barrier rank 0
fsyncs it, renames it to `step-N/` (atomic on POSIX) and then replaces `latest`
(write + os.replace). A crash at any point leaves `latest` naming a complete
checkpoint; a stale `.tmp-*` folder is simply removed by the next save. Ranks
must share the checkpoint filesystem, as DeepSpeed's own checkpoints assume.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

LATEST = "latest"
KEEP = "KEEP"
TRAINER_JSON = "trainer.json"
MODEL_FILE = "model.safetensors"


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        if path.is_file() or path == folder:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    with open(tmp) as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(root: Path, step: int, engine, state: dict[str, Any], rank: int, keep_last: int,
         keep_forever: bool = False) -> Path:
    """Write checkpoint `step` with every rank; returns its folder. `state` goes into trainer.json."""
    from safetensors.torch import save_file

    tmp, final = root / f".tmp-step-{step:08d}", root / f"step-{step:08d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    engine.save(tmp)
    torch.save(_rng_state(), tmp / f"rng-{rank:05d}.pt")
    if rank == 0:
        save_file(model_weights(engine.module), str(tmp / MODEL_FILE), metadata={"format": "pt"})
        (tmp / TRAINER_JSON).write_text(json.dumps(state, indent=2) + "\n")
        if keep_forever:
            (tmp / KEEP).touch()
    _barrier()
    if rank == 0:
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)  # a rerun of the same step replaces it
        os.rename(tmp, final)
        _write_atomic(root / LATEST, final.name + "\n")
        _prune(root, keep_last)
    _barrier()
    return final


def model_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as standalone tensors: ZeRO keeps parameters as views into one flat buffer,
    which safetensors refuses to write; a tied output projection is stored once (as the embedding)."""
    out, seen = {}, set()
    for name, tensor in module.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            out[name] = tensor.detach().cpu().clone()
    return out


def load_weights(module: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(path))
    missing, unexpected = module.load_state_dict(weights, strict=False)
    untied = [m for m in missing if not (m == "output.weight" and module.cfg.tie_embeddings)]
    if untied or unexpected:
        raise RuntimeError(f"{path}: missing {untied}, unexpected {unexpected}")


def _prune(root: Path, keep_last: int) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and not (p / KEEP).exists())
    for old in done[:-keep_last]:
        shutil.rmtree(old)


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None."""
    marker = root / LATEST
    if not marker.is_file():
        return None
    folder = root / marker.read_text().strip()
    return folder if (folder / TRAINER_JSON).is_file() else None


def read_state(folder: Path) -> dict[str, Any]:
    path = folder / TRAINER_JSON
    if not path.is_file():
        raise FileNotFoundError(f"not a checkpoint (no {TRAINER_JSON}): {folder}")
    return json.loads(path.read_text())


def load(folder: Path, state: dict[str, Any], engine, rank: int, world_size: int) -> None:
    """Restore weights, optimizer and (same world size only) RNG states; `state` is the folder's
    trainer.json (`read_state`), which the caller has already checked against its run.

    With a different number of ranks the RNG streams cannot be matched one to one;
    training draws no random numbers after initialisation (no dropout), so only the
    data order matters, and that is the samples-consumed cursor."""
    engine.load(folder)
    rng = folder / f"rng-{rank:05d}.pt"
    if state["world_size"] == world_size and rng.is_file():
        _set_rng_state(torch.load(rng, weights_only=False))
