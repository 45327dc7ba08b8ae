"""Documents -> token ids, the way the tokenize job encodes them.

tiktoken, built from the folder's `tokenizer.tiktoken` ranks and regex, when
tokenizer_config.json says that regex cuts exactly like tokenizer.json (a
rustbpe-trained `clean` folder): it encodes several times faster per core
than `tokenizers`, with the same ids (tests/test_tokenizer_encoder.py checks
them over real multilingual text). Otherwise, for older folders, HF-trained
ones and the `deepseek-llm` preset, `tokenizers` on tokenizer.json.

Either way special strings in the text are text: a page that contains
"<｜end▁of▁sentence｜>" cannot inject an EOS (tiktoken's `encode_ordinary`,
`tokenizers`' `encode_special_tokens`).

An `EncoderSpec` is what a Spark job broadcasts (plain strings); each process
builds its encoder once per spec.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from crawl2model.tokenizer.specials import BOS, EOS


@dataclass(frozen=True)
class EncoderSpec:
    tokenizer_json: str
    tiktoken_ranks: str | None = None  # tokenizer.tiktoken's text
    pattern: str | None = None         # the regex that goes with it

    @property
    def backend(self) -> str:
        return "tiktoken" if self.tiktoken_ranks is not None else "tokenizers"

    def key(self) -> str:
        h = hashlib.sha256(self.tokenizer_json.encode())
        if self.tiktoken_ranks is not None:
            h.update(self.tiktoken_ranks.encode())
            h.update((self.pattern or "").encode())
        return h.hexdigest()


def read_spec(folder: str, backend: str = "auto") -> EncoderSpec:
    """The spec of a tokenizer folder (local path or URI); `backend` auto, tiktoken or tokenizers."""
    from crawl2model.core.errors import InputError
    from crawl2model.tokenizer import files

    tokenizer_json = files.read_tokenizer_json(folder)
    if backend == "tokenizers":
        return EncoderSpec(tokenizer_json)
    config = files.read_text(folder, files.CONFIG_JSON)
    tk = json.loads(config).get("crawl2model", {}).get("tiktoken") if config else None
    ranks = files.read_text(folder, tk["file"]) if tk else None
    if ranks is None or not tk.get("matches_tokenizer_json"):
        if backend == "tiktoken":
            raise InputError(f"{folder} has no tokenizer.tiktoken whose regex matches tokenizer.json "
                             f"(train it with --trainer rustbpe --pretokenizer clean)")
        return EncoderSpec(tokenizer_json)
    return EncoderSpec(tokenizer_json, ranks, tk["pattern"])


class Encoder:
    """`encode_batch(texts)` -> one uint32 array of ids per text (no EOS)."""

    backend = ""

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        raise NotImplementedError


class TokenizersEncoder(Encoder):
    backend = "tokenizers"

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.encode_special_tokens = True

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(e.ids, dtype=np.uint32)
                for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


class TiktokenEncoder(Encoder):
    backend = "tiktoken"

    def __init__(self, ranks_text: str, pattern: str):
        import tiktoken

        from crawl2model.tokenizer import ranks

        mergeable = ranks.loads(ranks_text)
        n = ranks.n_ordinary(mergeable)
        self.encoding = tiktoken.Encoding("crawl2model", pat_str=pattern, mergeable_ranks=mergeable,
                                          special_tokens={BOS: n, EOS: n + 1})

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        # encode_to_numpy with no special allowed or disallowed is encode_ordinary, but hands
        # the ids over as one buffer instead of a list of Python ints.
        encode, none = self.encoding.encode_to_numpy, frozenset()
        return [encode(text, allowed_special=none, disallowed_special=()) for text in texts]


_ENCODERS: dict[str, Encoder] = {}


def get_encoder(spec: EncoderSpec | str) -> Encoder:
    """One encoder per process for a spec (a bare string is tokenizer.json's text)."""
    if isinstance(spec, str):
        spec = EncoderSpec(spec)
    key = spec.key()
    enc = _ENCODERS.get(key)
    if enc is None:
        enc = (TiktokenEncoder(spec.tiktoken_ranks, spec.pattern) if spec.tiktoken_ranks is not None
               else TokenizersEncoder(spec.tokenizer_json))
        _ENCODERS[key] = enc
    return enc
