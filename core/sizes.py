"""Sizes in bytes and counts of things, each with explicit units.

Bytes: decimal units are powers of 1000 (`2GB` = 2e9), binary units powers of
1024 (`2GiB` = 2^31), as on disks and in object stores; a bare number is bytes.
Counts (tokens, FLOPs): `2T` = 2e12, `500B` = 5e11, `1e17`.
"""
from __future__ import annotations

import re

from crawl2model.core.errors import ConfigError

SIZE_HELP = "bytes: 512KB, 256MB, 2GB (powers of 1000) or 256MiB, 2GiB (powers of 1024)"
COUNT_HELP = "a number with an optional suffix: 1e17, 20M, 500B, 2T (k=1e3, M=1e6, B/G=1e9, T=1e12)"

_BYTE_UNITS = {"": 1, "B": 1,
               "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9,
               "T": 10**12, "TB": 10**12, "P": 10**15, "PB": 10**15,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50}
_COUNT_UNITS = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*"


def parse_size(value: str | int | float) -> int:
    """'256MB' -> 256_000_000, '256MiB' -> 268_435_456, 1024 -> 1024."""
    if isinstance(value, bool):
        raise ConfigError(f"not a size: {value!r} ({SIZE_HELP})")
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(_NUMBER, str(value).replace("_", ""))
    unit = match.group(2).upper() if match else None
    if unit not in _BYTE_UNITS:
        raise ConfigError(f"not a size: {value!r} ({SIZE_HELP})")
    return int(float(match.group(1)) * _BYTE_UNITS[unit])


def parse_count(value: str | int | float) -> float:
    """'2T' -> 2e12, '1e17' -> 1e17: token, parameter and FLOP counts."""
    if isinstance(value, bool):
        raise ConfigError(f"not a count: {value!r} ({COUNT_HELP})")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = re.fullmatch(_NUMBER, str(value).replace("_", ""))
        unit = match.group(2).upper() if match else None
        if unit not in _COUNT_UNITS:
            raise ConfigError(f"not a count: {value!r} ({COUNT_HELP})")
        number = float(match.group(1)) * _COUNT_UNITS[unit]
    if not number > 0:
        raise ConfigError(f"must be positive: {value!r}")
    return number


def format_bytes(n: float) -> str:
    """1_500_000 -> '1.5 MB', 1.9e15 -> '1.90 PB' (decimal units, as parse_size reads them)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.2f} PB"
