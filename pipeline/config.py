"""One config, many overrides: code defaults < `--config run.toml` < command-line flags.

Each stage declares its settings as a dataclass whose defaults live next to the
code they configure. The run file holds one table per stage (`[ingest]`,
`[dedup]`, ...); flags left unset on the command line are `None` and do not
override anything. The resolved config is written next to the stage's output.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config file or value; the message names the file and the key."""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="RUN.toml",
        help="TOML run file; its [<stage>] table overrides defaults, flags override it",
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


def resolve(cls: type[T], section: str, args: argparse.Namespace | dict | None = None,
            config_path: str | Path | None = None) -> T:
    """Build `cls` from its defaults, the `[section]` table of the run file, then flags.

    Unknown keys in the run file are an error (a typo must not silently fall back
    to a default); flag names map to fields with dashes turned into underscores.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    flags = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    config_path = config_path or flags.get("config")
    if config_path:
        table = load_toml(config_path).get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{config_path}: [{section}] must be a table")
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise ConfigError(f"{config_path}: unknown key '{key}' in [{section}] (known: {known})")
            values[name] = value
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
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2,
               "MIB": 1024**2, "G": 1024**3, "GB": 1024**3, "GIB": 1024**3, "T": 1024**4, "TB": 1024**4,
               "TIB": 1024**4}


def parse_size(value: str | int) -> int:
    """'256MB' -> 268435456. Sizes are binary (1 KB = 1024 B), as in Spark's conf."""
    if isinstance(value, int):
        return value
    text = str(value).strip().upper().replace("_", "")
    num = text.rstrip("KMGTIB")
    unit = text[len(num):]
    try:
        if unit not in _SIZE_UNITS:
            raise ValueError
        return int(float(num) * _SIZE_UNITS[unit])
    except ValueError:
        raise ConfigError(f"not a size: {value!r} (examples: 512KB, 256MB, 2GB)") from None
