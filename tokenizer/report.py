"""What a trained tokenizer does to real text, and whether its vocabulary is shaped as intended.

Compression (bytes and characters per token) is the number that decides how
many training tokens a corpus becomes; the vocabulary checks catch a broken
pre-tokenizer, which otherwise only shows up as a worse model much later:
multi-digit tokens mean digits were not split, and no CJK tokens mean CJK
runs were not kept together.
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

from crawl2model.tokenizer.pretokenize import CJK
from crawl2model.tokenizer.specials import N_SPECIAL, decode_bytes

ENCODE_BATCH_CHARS = 1 << 20


@dataclass
class FileStats:
    path: str
    bytes: int
    chars: int
    tokens: int

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / max(self.tokens, 1)

    @property
    def chars_per_token(self) -> float:
        return self.chars / max(self.tokens, 1)


def file_stats(tokenizer, path: str) -> FileStats:
    """Encode one file (text, JSONL or Parquet, streamed) and count."""
    from crawl2model.tokenizer import corpus

    kind = corpus.file_kind(path) or "text"
    f = corpus.CorpusFile(path, os.path.basename(path), kind, 0)
    stats = FileStats(path, 0, 0, 0)
    for batch in corpus.batches_by_chars(corpus.iter_documents(f), ENCODE_BATCH_CHARS):
        for doc, enc in zip(batch, tokenizer.encode_batch_fast(batch, add_special_tokens=False)):
            stats.bytes += len(doc.encode("utf-8", "surrogatepass"))
            stats.chars += len(doc)
            stats.tokens += len(enc.ids)
    return stats


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK)


def vocab_stats(tokenizer) -> dict:
    """CJK share and digit tokens among the ordinary tokens."""
    n_ordinary = tokenizer.get_vocab_size() - N_SPECIAL
    cjk = 0
    ascii_digit_tokens: list[str] = []
    multi_digit_tokens: list[str] = []
    for i in range(n_ordinary):
        text = decode_bytes(tokenizer, [i]).decode("utf-8", "ignore")
        if any(_is_cjk(ch) for ch in text):
            cjk += 1
        if any("0" <= ch <= "9" for ch in text):
            ascii_digit_tokens.append(text)
        if sum(unicodedata.category(ch) == "Nd" for ch in text) > 1:
            multi_digit_tokens.append(text)
    digits_ok = sorted(ascii_digit_tokens) == [str(d) for d in range(10)] and not multi_digit_tokens
    return {
        "ordinary_tokens": n_ordinary,
        "cjk_tokens": cjk,
        "cjk_share": cjk / max(n_ordinary, 1),
        "ascii_digit_tokens": sorted(ascii_digit_tokens)[:20],
        "multi_digit_tokens": multi_digit_tokens[:20],
        "digits_ok": digits_ok,
    }


def format_report(files: list[FileStats], vocab: dict) -> str:
    lines = [f"{'file':<40} {'MB':>9} {'tokens':>12} {'bytes/tok':>9} {'chars/tok':>9}"]
    for s in files:
        name = s.path if len(s.path) <= 40 else "..." + s.path[-37:]
        lines.append(f"{name:<40} {s.bytes / 1e6:>9.2f} {s.tokens:>12,} "
                     f"{s.bytes_per_token:>9.3f} {s.chars_per_token:>9.3f}")
    lines.append("")
    lines.append(f"ordinary tokens: {vocab['ordinary_tokens']:,}; containing CJK: {vocab['cjk_tokens']:,} "
                 f"({100 * vocab['cjk_share']:.1f}%)")
    verdict = "ok: the only digit tokens are 0-9" if vocab["digits_ok"] else (
        f"FAIL: digit tokens {vocab['ascii_digit_tokens']}, multi-digit {vocab['multi_digit_tokens']}")
    lines.append(verdict)
    return "\n".join(lines)
