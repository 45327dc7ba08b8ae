"""One config, many overrides: code defaults < `--config run.toml` < command-line flags.

Each command declares its settings as a dataclass whose defaults live next to
the code they configure. One run file serves the whole flow: a table per stage
(`[ingest]`, `[dedup]`, ..., `[train]` with `[model]`), so a typo in a table
name is as much an error as a typo in a key. Flags left unset on the command
line are `None` and override nothing. The resolved config is written next to
the command's output.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from crawl2model.core.errors import ConfigError

T = TypeVar("T")

# The one default seed of every command that samples, shuffles or hashes with a seed.
DEFAULT_SEED = 0

# The tables a run file may hold: one per command that produces an output.
# `[filter.rules]` and the like are keys of their stage's table (TOML nesting).
RUN_TABLES = (
    "ingest", "dedup", "filter", "decontaminate", "remix", "tokenizer", "tokenize", "model", "train",
    "quality-classifier", "quality-kenlm", "plan-isoflop", "sft", "dpo",
)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="RUN.toml",
        help="TOML run file; its table for this command overrides the defaults, flags override it",
    )


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from e


def load_run_file(path: str | Path) -> dict[str, Any]:
    """The run file's tables, after checking that each is a known table."""
    data = load_toml(path)
    for name, value in data.items():
        if name not in RUN_TABLES:
            raise ConfigError(f"{path}: unknown table [{name}] (known: {', '.join(RUN_TABLES)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{name}' must be a table ([{name}]), got a {type(value).__name__}")
    return data


def run_table(path: str | Path | None, section: str) -> dict[str, Any]:
    """The `[section]` table of a run file, `{}` without a file or table."""
    return dict(load_run_file(path).get(section, {})) if path else {}


def check_keys(table: dict[str, Any], cls: type, where: str) -> dict[str, Any]:
    """`table` with dashes turned into underscores; an unknown key is an error naming it."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(fields))})")
        values[name] = value
    return values


def resolve(cls: type[T], section: str, args: argparse.Namespace | dict | None = None,
            config_path: str | Path | None = None) -> T:
    """Build `cls` from its defaults, the `[section]` table of the run file, then flags.

    Unknown keys and tables in the run file are errors (a typo must not
    silently fall back to a default); flag names map to fields with dashes
    turned into underscores.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    flags = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    config_path = config_path or flags.get("config")
    values = check_keys(run_table(config_path, section), cls, f"{config_path}: [{section}]")
    for name, value in flags.items():
        if name in fields and value is not None:
            values[name] = value
    try:
        cfg = cls(**values)
    except TypeError as e:
        raise ConfigError(f"[{section}]: {e}") from e
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON values (what config.json and fingerprints hold)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))

