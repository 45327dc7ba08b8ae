"""Atomic, exactly resumable checkpoints.

    CHECKPOINTS/step-00000100/
        trainer.json         step, samples consumed (the loader's whole state), model and run config
        model.safetensors    full model weights in the training dtype (what export-hf reads)
        rng-00000.safetensors ...  each rank's torch/CUDA/numpy/python RNG states (tensors + JSON metadata)
        deepspeed/           DeepSpeed's files (ZeRO-1: one optimizer shard per rank; another
                             number of ranks loads them re-partitioned, see train.engine), or
        optimizer.pt         the torch engine's AdamW state (tensors and plain values only)
        KEEP                 (only at the end of the first LR stage) never pruned
    CHECKPOINTS/latest       name of the newest complete checkpoint

Atomicity: every rank writes into `.tmp-step-N/`; after a barrier rank 0
fsyncs it, renames it to `step-N/` (atomic on POSIX) and then replaces `latest`
(write + os.replace). A crash at any point leaves `latest` naming a complete
checkpoint; a stale `.tmp-*` folder is simply removed by the next save. Ranks
must share the checkpoint filesystem, as DeepSpeed's own checkpoints assume.

No pickle runs code on load: what we write is JSON, safetensors, or a `.pt`
of tensors and plain values, and every `.pt` we read goes through
`torch.load(weights_only=True)`; anything else is refused with one line
(`UnsafeCheckpointError`, exit code 2). DeepSpeed reads its own files with
`weights_only=False` (its checkpoint engine and `ds_to_universal`), which we
cannot change; before it does, `check_deepspeed_files` reads the list of
Python objects each of its files would build (without building them) and
refuses any outside the few DeepSpeed classes its checkpoints hold (also the
universal checkpoint its converter writes when the number of ranks changes).
"""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from crawl2model.core.errors import InputError

LATEST = "latest"
KEEP = "KEEP"
TRAINER_JSON = "trainer.json"
MODEL_FILE = "model.safetensors"


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


class UnsafeCheckpointError(InputError):
    """A checkpoint file that would build Python objects other than tensors and plain values."""


# What DeepSpeed's ZeRO-1 checkpoints pickle besides tensors and plain containers (DeepSpeed 0.19,
# seen in its optimizer shards; the model-states file holds none).
DEEPSPEED_GLOBALS = frozenset({
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.utils.tensor_fragment.fragment_address",
})


def _refuse(path: Path, unsafe: list[str]) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"{path}: refused to load: it would build Python objects that are not tensors "
                                 f"or plain values ({', '.join(unsafe[:3])}); a checkpoint can run code this "
                                 f"way, so only a file of tensors is accepted")


def load_tensors(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True: tensors and plain containers, never an arbitrary object."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise _refuse(path, torch.serialization.get_unsafe_globals_in_checkpoint(path) or ["unknown"]) from None


def check_deepspeed_files(folder: Path) -> None:
    """Refuse DeepSpeed files that would build anything but the classes its checkpoints hold.

    DeepSpeed loads them with weights_only=False; the pickles are inspected here first,
    without building any object (torch's `get_unsafe_globals_in_checkpoint`)."""
    for path in sorted(folder.rglob("*.pt")):
        unsafe = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)) - DEEPSPEED_GLOBALS)
        if unsafe:
            raise _refuse(path, unsafe)


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """This process's RNG states as tensors and JSON strings: what safetensors stores."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    meta = {"numpy": json.dumps([name, pos, has_gauss, cached]), "python": json.dumps([version, internal, gauss])}
    return tensors, meta


def _set_rng_state(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118 (not a dict)
    torch.set_rng_state(tensors["torch"])
    name, pos, has_gauss, cached = json.loads(meta["numpy"])
    np.random.set_state((name, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = json.loads(meta["python"])
    random.setstate((version, tuple(internal), gauss))
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


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
    rng, rng_meta = _rng_state()
    save_file(rng, str(tmp / f"rng-{rank:05d}.safetensors"), metadata=rng_meta)
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

    set_weights(module, load_file(str(path)), path)


def set_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], where: Path) -> None:
    """Load a full state dict; a tied output projection may be absent (it is the embedding)."""
    missing, unexpected = module.load_state_dict(weights, strict=False)
    untied = [m for m in missing if not (m == "output.weight" and module.cfg.tie_embeddings)]
    if untied or unexpected:
        raise InputError(f"{where}: weights do not fit the model (missing {untied[:3]}, unexpected {unexpected[:3]})")


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
    data order matters, and that is the samples-consumed cursor (so a checkpoint of an
    older version, with pickled RNG states, resumes without them)."""
    engine.load(folder)
    rng = folder / f"rng-{rank:05d}.safetensors"
    if state["world_size"] == world_size and rng.is_file():
        _set_rng_state(rng)
