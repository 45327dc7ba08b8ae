"""The tokenizer folder: tokenizer.json plus the two files transformers reads (and tokenizer.tiktoken).

The folder is written by hand rather than by `save_pretrained` so that its
content does not drift with the installed transformers version, and so that
transformers loads tokenizer.json unchanged: `tokenizer_class` is the generic
fast tokenizer, which (unlike `LlamaTokenizerFast`) rebuilds no pre-tokenizer
of its own. A folder trained with rustbpe also holds `tokenizer.tiktoken` (the
same BPE as mergeable ranks) and, in tokenizer_config.json, the regex that
goes with it and whether it cuts exactly like tokenizer.json's pre-tokenizer;
the tokenize job encodes with tiktoken only then.
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Any

from crawl2model.core.errors import InputError
from crawl2model.core.fs import exists, filesystem, read_json, sha256_file
from crawl2model.tokenizer.ranks import TIKTOKEN_FILE
from crawl2model.tokenizer.specials import BOS, EOS, N_SPECIAL

TOKENIZER_JSON = "tokenizer.json"
CONFIG_JSON = "tokenizer_config.json"
SPECIAL_MAP_JSON = "special_tokens_map.json"


def write_folder(tokenizer, folder: str, n_ordinary: int, padded_vocab_size: int,
                 model_max_length: int, extra: dict[str, Any] | None = None,
                 tiktoken: tuple[str, str, bool] | None = None) -> None:
    """Write the files into `folder` (which must exist); `tiktoken` is (ranks file text, regex, exact)."""
    tokenizer.save(os.path.join(folder, TOKENIZER_JSON))
    extra = dict(extra or {})
    if tiktoken is not None:
        text, pattern, exact = tiktoken
        with open(os.path.join(folder, TIKTOKEN_FILE), "w", encoding="ascii") as f:
            f.write(text)
        extra["tiktoken"] = {"file": TIKTOKEN_FILE, "pattern": pattern, "matches_tokenizer_json": exact}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": None,
        "unk_token": None,
        # Documents in token shards are `tokens + EOS`; encode() adds nothing, so a
        # model sees at inference what it saw in training.
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        # The model's embedding rows; ids n_ordinary+15 .. padded-1 are never produced.
        "padded_vocab_size": padded_vocab_size,
        "crawl2model": {"ordinary_tokens": n_ordinary, "special_tokens": N_SPECIAL,
                        "total_tokens": n_ordinary + N_SPECIAL, "bos_id": n_ordinary,
                        "eos_id": n_ordinary + 1, **extra},
    }
    _write_json(os.path.join(folder, CONFIG_JSON), config)
    _write_json(os.path.join(folder, SPECIAL_MAP_JSON), {"bos_token": BOS, "eos_token": EOS})


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def load(folder: str):
    """The `tokenizers.Tokenizer` saved in `folder`."""
    from tokenizers import Tokenizer

    path = os.path.join(folder, TOKENIZER_JSON)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {TOKENIZER_JSON} in {folder} (train one with `crawl2model tokenizer train`)")
    return Tokenizer.from_file(path)


def read_config(folder: str) -> dict[str, Any]:
    """tokenizer_config.json of a folder (local path or URI)."""
    return read_json(posixpath.join(folder, CONFIG_JSON))


def require_folder(folder: str) -> None:
    """Fail with one line when `folder` (local path or URI) holds no tokenizer.json."""
    fs, base = filesystem(folder)
    if not exists(fs, posixpath.join(base, TOKENIZER_JSON)):
        raise InputError(f"no {TOKENIZER_JSON} in {folder} (train one with `crawl2model tokenizer train`)")


def read_tokenizer_json(folder: str) -> str:
    """The text of tokenizer.json of a folder (local path or URI)."""
    require_folder(folder)
    return read_text(folder, TOKENIZER_JSON)


def read_text(folder: str, name: str) -> str | None:
    """The text of one file of a folder (local path or URI); None if it is not there."""
    fs, base = filesystem(folder)
    path = posixpath.join(base, name)
    if not exists(fs, path):
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode("utf-8")


def fingerprint(folder: str) -> str:
    """sha256 of tokenizer.json: names the exact tokenizer that made a token shard."""
    fs, base = filesystem(folder)
    return sha256_file(fs, posixpath.join(base, TOKENIZER_JSON))
