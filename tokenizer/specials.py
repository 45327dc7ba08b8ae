"""The 15 tokens after the ordinary vocabulary, and the byte-exact encode/decode they make possible.

Layout for `n` ordinary tokens (n = 100,000 in the paper):

    0 .. n-1       ordinary BPE tokens; the first 243 are the bytes that occur in
                   valid UTF-8, then the merges
    n              <｜begin▁of▁sentence｜>   (special)
    n + 1          <｜end▁of▁sentence｜>     (special)
    n + 2 .. n+14  the 13 bytes valid UTF-8 never contains: 0xC0, 0xC1, 0xF5..0xFF

Why the 13 bytes are not in the ordinary range: BPE training sees only valid
UTF-8, so those bytes never occur, and the paper counts them among the 15
specials (100,000 + 15 = 100,015). We therefore train on a 243-byte alphabet
and put the 13 bytes into the BPE model's vocabulary (not into the added-token
table) at n+2...: as model entries they are reached only through byte-level
mapping, so a text that literally contains "À" or "ÿ" (their byte-level glyphs)
is still encoded from its real UTF-8 bytes. DeepSeek's released tokenizer made
them added tokens, which turns the text "ü" into the byte 0xFC and breaks
decode(encode(x)) == x. BOS and EOS are also given model entries at n and n+1
so that the id space stays contiguous (`len(tokenizer) == n + 15`).
"""
from __future__ import annotations

from functools import lru_cache

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
INVALID_UTF8_BYTES: tuple[int, ...] = (0xC0, 0xC1, *range(0xF5, 0x100))
N_SPECIAL = 2 + len(INVALID_UTF8_BYTES)  # 15
PAPER_VOCAB_SIZE = 100_000
PAPER_PADDED_VOCAB_SIZE = 102_400
PAD_MULTIPLE = 128


@lru_cache(maxsize=1)
def byte_to_glyph() -> dict[int, str]:
    """GPT-2's byte-level table: each byte as a printable character (0x20 -> 'Ġ')."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def glyph_to_byte() -> dict[str, int]:
    return {g: b for b, g in byte_to_glyph().items()}


def valid_utf8_alphabet() -> list[str]:
    """The 243 byte glyphs BPE training starts from."""
    return [g for b, g in sorted(byte_to_glyph().items()) if b not in INVALID_UTF8_BYTES]


def special_layout(n_ordinary: int) -> dict[str, int]:
    """Token string -> id for the 15 tokens after `n_ordinary` ordinary tokens."""
    glyphs = byte_to_glyph()
    layout = {BOS: n_ordinary, EOS: n_ordinary + 1}
    for i, b in enumerate(INVALID_UTF8_BYTES):
        layout[glyphs[b]] = n_ordinary + 2 + i
    return layout


def padded_size(total: int, requested: int | None = None) -> int:
    """The model's embedding rows: the paper's 102,400 when it fits, else `total`
    rounded up to a multiple of 128; an explicit request must fit and be a multiple of 128."""
    if requested is None:
        return PAPER_PADDED_VOCAB_SIZE if total <= PAPER_PADDED_VOCAB_SIZE else -(-total // PAD_MULTIPLE) * PAD_MULTIPLE
    if requested < total or requested % PAD_MULTIPLE:
        raise ValueError(f"padded vocab size {requested} must be >= {total} and a multiple of {PAD_MULTIPLE}")
    return requested


def encode_bytes(tokenizer, data: bytes) -> list[int]:
    """Token ids for arbitrary bytes: valid UTF-8 runs through the tokenizer, every
    other byte as its single-byte token (the 13 specials or one of the 243)."""
    vocab = tokenizer.get_vocab()
    glyphs = byte_to_glyph()
    text = data.decode("utf-8", "surrogateescape")
    ids: list[int] = []
    run_start = 0
    for i, ch in enumerate(text):
        if "\udc80" <= ch <= "\udcff":
            if run_start < i:
                ids.extend(tokenizer.encode(text[run_start:i], add_special_tokens=False).ids)
            ids.append(vocab[glyphs[ord(ch) - 0xDC00]])
            run_start = i + 1
    if run_start < len(text):
        ids.extend(tokenizer.encode(text[run_start:], add_special_tokens=False).ids)
    return ids


def decode_bytes(tokenizer, ids: list[int]) -> bytes:
    """The exact bytes behind `ids` (special BOS/EOS contribute nothing)."""
    table = glyph_to_byte()
    out = bytearray()
    for i in ids:
        token = tokenizer.id_to_token(i)
        if token in (BOS, EOS):
            continue
        out.extend(table[g] for g in token)
    return bytes(out)
