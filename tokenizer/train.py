"""Byte-level BPE training: sampled text -> 100,000 ordinary tokens + 15 specials.

    crawl2model tokenizer train --input shards/ --output runs/x/tokenizer --max-bytes 2GB

Two trainers, one output. `rustbpe` (the default; nanochat's compiled BPE
trainer) counts the pre-tokens of the streamed sample in parallel and merges
with a heap: several times faster than Hugging Face's `BpeTrainer` at the same
vocabulary, with less memory. Its ranks become tokenizer.json's vocabulary
and merges (`tokenizer.ranks`) and are also saved as `tokenizer.tiktoken`,
which the tokenize job encodes with. `hf` trains with `tokenizers` as before
(and writes no tokenizer.tiktoken). Both run the same pre-tokenizer regex.

See `tokenizer.specials` for the id layout and why the 13 invalid-UTF-8 bytes
sit after BOS/EOS rather than in the trained alphabet.
"""
from __future__ import annotations

import functools
import json
import resource
from dataclasses import asdict, dataclass, field

from crawl2model.core.config import DEFAULT_SEED
from crawl2model.core.errors import ConfigError
from crawl2model.core.log import get_logger, interactive
from crawl2model.core.sizes import parse_size
from crawl2model.tokenizer import corpus, files, ranks
from crawl2model.tokenizer.pretokenize import PRESETS, encoding_pattern
from crawl2model.tokenizer.specials import (
    BOS,
    EOS,
    INVALID_UTF8_BYTES,
    N_SPECIAL,
    padded_size,
    special_layout,
    valid_utf8_alphabet,
)

log = get_logger("tokenizer")
TRAINERS = ("rustbpe", "hf")
# Documents handed to rustbpe per batch: it splits and counts a batch on all
# cores, so this bounds the text held at once (text files come in 64K chunks).
RUSTBPE_BATCH = 512


@dataclass
class TrainConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    # Ordinary tokens (the paper's 100,000); the specials follow them.
    vocab_size: int = 100_000
    # Text sampled for training; the paper used ~24 GB.
    max_bytes: int | str = "2GB"
    seed: int = DEFAULT_SEED
    # rustbpe (compiled, default) or hf (`tokenizers`' BpeTrainer).
    trainer: str = "rustbpe"
    # clean (the project's rules) or deepseek-llm (DeepSeek LLM's published pre-tokenizer).
    pretokenizer: str = "clean"
    # hf only: pairs seen fewer times are never merged (on small corpora this stops
    # BPE from memorizing one-off strings). rustbpe merges while any pair is left.
    min_frequency: int = 2
    # Embedding rows of the model (default: the paper's 102,400 when it fits).
    padded_vocab_size: int | None = None
    model_max_length: int = 4096
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        if not self.input:
            raise ConfigError("tokenizer train: --input is required")
        if not self.output:
            raise ConfigError("tokenizer train: --output is required")
        if self.trainer not in TRAINERS:
            raise ConfigError(f"tokenizer train: trainer must be one of {', '.join(TRAINERS)}, not {self.trainer!r}")
        if self.pretokenizer not in PRESETS:
            raise ConfigError(f"tokenizer train: pretokenizer must be one of {', '.join(PRESETS)}, "
                              f"not {self.pretokenizer!r}")
        self.max_bytes = parse_size(self.max_bytes)
        if self.max_bytes <= 0:
            raise ConfigError("tokenizer train: max_bytes must be positive")
        alphabet = len(valid_utf8_alphabet())
        if self.vocab_size <= alphabet:
            raise ConfigError(f"tokenizer train: vocab_size must exceed the {alphabet}-byte alphabet")
        try:
            padded_size(self.vocab_size + N_SPECIAL, self.padded_vocab_size)
        except ValueError as e:
            raise ConfigError(f"tokenizer train: {e}") from None


def new_tokenizer(pretokenizer: str = "clean"):
    """An untrained tokenizer with a pre-tokenizer preset and the byte-level decoder."""
    from tokenizers import Tokenizer, decoders, models

    from crawl2model.tokenizer.pretokenize import build_pre_tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = build_pre_tokenizer(pretokenizer)
    tok.decoder = decoders.ByteLevel()
    return tok


def _valid_strings(texts):
    """Documents as strings rustbpe accepts: a lone surrogate (from a JSON escape) becomes U+FFFD."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        yield text


def train_rustbpe(texts, vocab_size: int, pretokenizer: str = "clean"):
    """Train the ordinary vocabulary with rustbpe; returns (tokenizer without specials, ordinary ranks).

    rustbpe starts from all 256 bytes, 13 of which valid UTF-8 never holds,
    so it is asked for 13 more tokens than the ordinary vocabulary.
    """
    import rustbpe

    trainer = rustbpe.Tokenizer()
    trainer.train_from_iterator(_valid_strings(texts), vocab_size + len(INVALID_UTF8_BYTES),
                                buffer_size=RUSTBPE_BATCH, pattern=encoding_pattern(pretokenizer)[0])
    ordinary = ranks.from_rustbpe(trainer.get_mergeable_ranks())
    tok = new_tokenizer(pretokenizer)
    tok.model = ranks.hf_model(ordinary)
    return tok, ordinary


def train_bpe(texts, vocab_size: int, min_frequency: int = 2, show_progress: bool = False,
              pretokenizer: str = "clean"):
    """Train the ordinary vocabulary (no specials yet) with `tokenizers` on an iterator of documents."""
    from tokenizers import trainers

    tok = new_tokenizer(pretokenizer)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  initial_alphabet=valid_utf8_alphabet(), special_tokens=[],
                                  show_progress=show_progress)
    tok.train_from_iterator(texts, trainer)
    return tok


def add_specials(tok):
    """Append BOS, EOS and the 13 byte tokens after the ordinary vocabulary.

    Done on the serialized form because `add_special_tokens` cannot choose ids
    and the byte tokens must be model entries, not added tokens.
    """
    from tokenizers import Tokenizer

    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    n = len(vocab)
    if sorted(vocab.values()) != list(range(n)):
        raise ValueError("ordinary vocabulary ids are not 0..n-1")
    layout = special_layout(n)
    clash = set(layout) & set(vocab)
    if clash:
        raise ValueError(f"special tokens already in the ordinary vocabulary: {sorted(clash)}")
    vocab.update(layout)
    data["added_tokens"] = [
        {"id": layout[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for t in (BOS, EOS)
    ]
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False)), n


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def run(cfg: TrainConfig) -> dict:
    """Train and write the tokenizer folder under the stage protocol; returns the report."""
    from crawl2model.core.config import to_dict
    from crawl2model.core.stage import run_stage

    def body(out, timer) -> dict:
        inputs = corpus.discover(cfg.input)
        stats = corpus.SampleStats()
        log.info(f"{len(inputs)} files, ~{sum(f.est_bytes for f in inputs) / 1e6:,.1f} MB of text; "
                 f"sampling up to {cfg.max_bytes / 1e6:,.1f} MB with seed {cfg.seed}")
        texts = corpus.sample(inputs, cfg.max_bytes, cfg.seed, stats, progress=log.info)
        tiktoken = None
        if cfg.trainer == "rustbpe":
            tok, ordinary = train_rustbpe(texts, cfg.vocab_size, cfg.pretokenizer)
            pattern, exact = encoding_pattern(cfg.pretokenizer)
            tiktoken = (ranks.dumps(ranks.with_specials(ordinary)), pattern, exact)
        else:
            tok = train_bpe(texts, cfg.vocab_size, cfg.min_frequency, show_progress=interactive(),
                            pretokenizer=cfg.pretokenizer)
        timer.mark("train")
        tok, n_ordinary = add_specials(tok)
        if n_ordinary < cfg.vocab_size:
            log.warning(f"the sample supports only {n_ordinary} ordinary tokens of the {cfg.vocab_size} "
                        f"asked for (too little text or min_frequency too high)")
        total = n_ordinary + N_SPECIAL
        padded = padded_size(total, cfg.padded_vocab_size)
        write_tokenizer = functools.partial(files.write_folder, tok, n_ordinary=n_ordinary, padded_vocab_size=padded,
                                            model_max_length=cfg.model_max_length, tiktoken=tiktoken,
                                            extra={"seed": cfg.seed, "sampled_bytes": stats.bytes_kept,
                                                   "trainer": cfg.trainer, "pretokenizer": cfg.pretokenizer})
        with out.local_folder() as folder:  # the tokenizers library writes local files
            write_tokenizer(folder)
        log.info(f"{n_ordinary:,} ordinary + {N_SPECIAL} special = {total:,} tokens (padded {padded:,}) "
                 f"in {timer.laps['train']:.1f} s")
        # Documents in: those read; out: those sampled into training; the rest were not sampled.
        return {
            "docs_in": stats.docs_seen,
            "docs_out": stats.docs_kept,
            "removed_by_reason": ({"not_sampled": stats.docs_seen - stats.docs_kept}
                                  if stats.docs_seen > stats.docs_kept else {}),
            "trainer": cfg.trainer,
            "pretokenizer": cfg.pretokenizer,
            "ordinary_tokens": n_ordinary,
            "special_tokens": N_SPECIAL,
            "total_tokens": total,
            "padded_vocab_size": padded,
            "timings": timer.report(),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "sample": asdict(stats),
        }

    return run_stage("tokenizer", to_dict(cfg), body, output=cfg.output, inputs=cfg.input,
                     overwrite=bool(cfg.overwrite))
