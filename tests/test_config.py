"""Config layering: code defaults < run file < flags, and clear errors."""
import argparse
from dataclasses import dataclass

import pytest

from crawl2model.core.errors import ConfigError

from crawl2model.core.sizes import parse_size

from crawl2model.core.config import resolve


@dataclass
class Demo:
    input: str = ""
    threshold: float = 0.8
    size: int | str = "1MB"

    def validate(self):
        self.size = parse_size(self.size)


def test_flags_override_file_override_defaults(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text('[demo]\nthreshold = 0.7\nsize = "2MB"\n[other]\nx = 1\n')
    cfg = resolve(Demo, "demo", argparse.Namespace(config=str(run), threshold=None, input="a"))
    assert (cfg.input, cfg.threshold, cfg.size) == ("a", 0.7, 2 * 2**20)
    cfg = resolve(Demo, "demo", argparse.Namespace(config=str(run), threshold=0.9, input=None))
    assert cfg.threshold == 0.9 and cfg.input == ""


def test_unknown_key_is_named(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text("[demo]\nthreshhold = 0.7\n")
    with pytest.raises(ConfigError, match="threshhold"):
        resolve(Demo, "demo", {"config": str(run)})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve(Demo, "demo", {"config": str(tmp_path / "nope.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[demo\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        resolve(Demo, "demo", {"config": str(bad)})


@pytest.mark.parametrize("text,expected", [("256MB", 256 * 2**20), ("2gb", 2 * 2**30), ("1.5K", 1536), (7, 7)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage():
    with pytest.raises(ConfigError, match="not a size"):
        parse_size("lots")
