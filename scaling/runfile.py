"""Writing run files: the `[model]` and `[train]` tables the trainer reads.

The planner writes a run file per IsoFLOP allocation without knowing the
trainer's config classes (`scaling` never imports `train`), so tables are plain
dicts here; `train.config.dump_run_config` writes its dataclasses through the
same writer, and `train.config.load_run_config` reads either back.
"""
from __future__ import annotations

import math
from typing import Any


def toml_value(value: Any) -> str:
    """One TOML value: bool, int, finite float, string, or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to write non-finite value {value} to a run file")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def toml_table(name: str, table: dict[str, Any]) -> list[str]:
    """`[name]` and its keys in order; None values are left out (TOML has no null: absent means the default)."""
    return [f"[{name}]"] + [f"{key} = {toml_value(value)}" for key, value in table.items() if value is not None]


def run_file(model: dict[str, Any], train: dict[str, Any], header: str = "") -> str:
    """A run file's text; `header` becomes `#` comments at the top (provenance: which plan, which budget)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += toml_table("model", model) + [""] + toml_table("train", train)
    return "\n".join(lines) + "\n"
