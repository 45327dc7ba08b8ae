"""Logging, progress and timing, the same for every command.

Messages go through `logging` as `[stage] message` on stderr, so a Spark
driver log, a CI log and a terminal all read alike; `CRAWL2MODEL_LOG_LEVEL`
(default INFO) sets the level. Progress bars appear only when stderr is a
terminal: in a log file they would be noise. `Timer` is the one stopwatch:
named laps that end up in report.json under `timings`.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_ROOT = "crawl2model"
_configured = False


class _StageFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        name = record.name.split(".", 1)[1] if "." in record.name else record.name
        prefix = f"[{name}] " if name != _ROOT else ""
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{prefix}{level}{record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (tests and tools swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str | int | None = None) -> None:
    """Send the project's messages to stderr (idempotent; leaves other loggers alone)."""
    global _configured
    root = logging.getLogger(_ROOT)
    root.setLevel(level or os.environ.get("CRAWL2MODEL_LOG_LEVEL", "INFO").upper())
    if not _configured:
        handler = _StderrHandler()
        handler.setFormatter(_StageFormatter())
        root.addHandler(handler)
        root.propagate = False
        _configured = True


def get_logger(stage: str) -> logging.Logger:
    """The logger of one stage or component: its messages read `[stage] ...`."""
    setup_logging()
    return logging.getLogger(f"{_ROOT}.{stage}")


def interactive() -> bool:
    return sys.stderr.isatty()


def progress(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """`items`, with a progress bar on a terminal and nothing extra elsewhere."""
    if not interactive():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)


class Timer:
    """Named laps of one run: `with timer.lap("read"): ...` or `timer.mark("read")`."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def mark(self, name: str) -> float:
        """Close the lap that began at the previous mark (or at start) under `name`."""
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now
        return self.laps[name]

    def lap(self, name: str) -> "_Lap":
        return _Lap(self, name)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start

    def report(self) -> dict[str, float]:
        """Seconds per lap, rounded: report.json's `timings`."""
        return {k: round(v, 3) for k, v in self.laps.items()}


class _Lap:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> None:
        t = self.timer
        t.laps[self.name] = t.laps.get(self.name, 0.0) + time.perf_counter() - self.t0
        t._last = time.perf_counter()
