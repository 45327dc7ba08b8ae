"""Where training numbers go: metrics.jsonl (one object per record), TensorBoard, and progress lines.

Only rank 0 writes. JSONL is the record of truth (tests, the IsoFLOP sweep and
plots read it); TensorBoard is for people and is skipped, with one warning,
when the package is not installed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from crawl2model.core.log import get_logger

# Dense bf16 peak (no sparsity) of accelerators we know, for the MFU estimate.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "A800": 312e12,
                   "L40S": 362e12, "B200": 2250e12}


def peak_flops(override_tflops: float | None) -> float | None:
    """Per-device peak FLOP/s: the run's `peak_tflops`, a known GPU's bf16 peak, else None (no MFU)."""
    if override_tflops:
        return override_tflops * 1e12
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for key, value in PEAK_BF16_FLOPS.items():
            if key in name:
                return value
    return None


class MetricsLogger:
    def __init__(self, folder: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._writer = None
        if not enabled:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(folder / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115 (closed by close())
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            get_logger("train").warning("tensorboard not installed; writing metrics.jsonl only")
        else:
            self._writer = SummaryWriter(str(folder / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self._jsonl.write(json.dumps({"step": step, "time": round(time.time(), 3), **values}) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and value is not None:
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            if self._writer is not None:
                self._writer.close()


def progress_line(step: int, total: int, values: dict[str, Any], extra: tuple[str, ...] = ()) -> str:
    """One log line; `extra` names more of `values` to show (DPO's reward accuracy and margin)."""
    mfu = values.get("mfu")
    return (f"step {step}/{total} | loss {values['loss']:.4f} | "
            + "".join(f"{k} {values[k]:.4f} | " for k in extra)
            + f"lr {values['lr']:.3e} | gnorm {values['grad_norm']:.3f} | {values['tokens_per_s'] / 1e3:.1f}k tok/s | "
            f"MFU {'n/a' if mfu is None else f'{100 * mfu:.1f}%'} | {values['step_s']:.3f} s/step")
