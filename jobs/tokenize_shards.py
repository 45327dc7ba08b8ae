"""Tokenize stage: document table -> token shards (Arrow IPC) + manifest.json.

    crawl2model tokenize --tokenizer runs/x/tokenizer --input runs/x/shards --output runs/x/tokens
    spark-submit jobs/tokenize_shards.py --tokenizer runs/x/tokenizer --input runs/x/shards --output runs/x/tokens

Each Spark task encodes one partition of documents and writes one shard
itself (`tokenizer.shards.write_shard`), returning a row of counts and the
shard's sha256; the driver turns those into manifest.json. The tokenizer
travels to the workers in a broadcast variable as an `EncoderSpec`: the text
of tokenizer.json, plus tokenizer.tiktoken and its regex where the folder has
them (rustbpe-trained), in which case tasks encode with tiktoken, several
times faster per core with the same ids (`--encoder` chooses). Documents
without text are counted as removed (`empty_text`), never dropped silently.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from crawl2model.core.errors import ConfigError, InputError
from crawl2model.jobs.stage import SparkStage

DESCRIPTION = (
    "Encode the 'text' of a Parquet document table (remix shards, or any table with text and "
    "doc_id, optional domain) with a trained tokenizer, and write memory-mappable Arrow IPC "
    "token shards (input_ids: large_list<uint32> with EOS appended, doc_id, domain), "
    "manifest.json (per shard: documents, tokens, sha256; totals; tokenizer hash) and report.json."
)
ENCODERS = ("auto", "tiktoken", "tokenizers")


@dataclass
class TokenizeConfig:
    input: list[str] = field(default_factory=list)
    output: str = ""
    tokenizer: str = ""
    # Shards to write; default: one per input partition (Spark reads ~128 MB of Parquet per task).
    num_shards: int | None = None
    # auto: tiktoken when the folder has a matching tokenizer.tiktoken, else tokenizers.
    encoder: str = "auto"
    overwrite: bool = False

    def validate(self) -> None:
        if isinstance(self.input, str):
            self.input = [self.input]
        for name in ("input", "output", "tokenizer"):
            if not getattr(self, name):
                raise ConfigError(f"tokenize: --{name} is required")
        from crawl2model.tokenizer.files import require_folder

        require_folder(self.tokenizer)  # a missing tokenizer fails before Spark starts
        if self.num_shards is not None and self.num_shards <= 0:
            raise ConfigError("tokenize: num_shards must be positive")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"tokenize: encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")


def run(spark, cfg: TokenizeConfig, out) -> dict:
    """Tokenize `cfg.input` into `out` (a claimed StageOutput); returns the report."""
    from crawl2model.pipeline.spark import one_partition_per_file
    from crawl2model.pipeline.tables import read_table

    with one_partition_per_file(spark):  # a shard per input file: the same layout on any cluster
        return _tokenize(spark, cfg, out, read_table(spark, cfg.input))


def _tokenize(spark, cfg: TokenizeConfig, out, df) -> dict:
    import pyarrow as pa
    import pyarrow.fs as pafs
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from tokenizers import Tokenizer

    from crawl2model.core.fs import write_json
    from crawl2model.core.log import get_logger
    from crawl2model.tokenizer import encoder, files, shards
    from crawl2model.tokenizer.specials import EOS

    log = get_logger("tokenize")
    spec = encoder.read_spec(cfg.tokenizer, cfg.encoder)
    tok = Tokenizer.from_str(spec.tokenizer_json)
    eos_id = tok.token_to_id(EOS)
    if eos_id is None:
        raise ConfigError(f"tokenize: {cfg.tokenizer} has no {EOS} token")
    if "text" not in df.columns or "doc_id" not in df.columns:
        raise InputError(f"tokenize: input needs 'text' and 'doc_id' columns, has {', '.join(df.columns)}")
    domain = F.col("domain").cast("string") if "domain" in df.columns else F.lit(None).cast("string")
    lang = F.col("lang").cast("string") if "lang" in df.columns else F.lit(None).cast("string")
    df = df.select("text", "doc_id", domain.alias("domain"), lang.alias("lang"))
    if cfg.num_shards:
        # Hash partitioning plus a sort makes shard contents independent of input layout.
        df = df.repartition(cfg.num_shards, "doc_id").sortWithinPartitions("doc_id")

    folder = out.tmp_path if isinstance(out.fs, pafs.LocalFileSystem) else out.tmp_uri
    shared = spark.sparkContext.broadcast(spec)
    log.info(f"encoding with {spec.backend}")

    def body(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        yield shards.write_shard(batches, shared.value, eos_id, folder, TaskContext.get().partitionId())

    results = [r.asDict() for r in df.mapInArrow(body, from_arrow_schema(shards.RESULT_SCHEMA)).collect()]
    tokenizer = {"path": cfg.tokenizer if "://" in cfg.tokenizer else os.path.abspath(cfg.tokenizer),
                 "sha256": files.fingerprint(cfg.tokenizer),
                 "eos_id": eos_id, "vocab_size": tok.get_vocab_size(),
                 "padded_vocab_size": files.read_config(cfg.tokenizer).get("padded_vocab_size")}
    listing = shards.manifest(results, tokenizer)
    write_json(out.fs, out.path(shards.MANIFEST), listing)
    documents, tokens = listing["documents"], listing["tokens"]
    skipped = sum(r["skipped_empty"] for r in results)
    nbytes = sum(r["bytes"] for r in results)
    per_lang: dict[str, list[int]] = {}
    for r in results:
        shards.add_counts(per_lang, json.loads(r["languages"]))
    encode_seconds = sum(r["encode_seconds"] for r in results)
    encode_cpu = sum(r["encode_cpu_seconds"] for r in results)
    log.info(f"{documents} documents -> {tokens:,} tokens in {len(listing['shards'])} shards "
             f"({skipped} empty skipped)")
    return {
        "docs_in": documents + skipped,
        "docs_out": documents,
        "removed_by_reason": {"empty_text": skipped} if skipped else {},
        "tokens": tokens,
        "bytes": nbytes,
        "bytes_per_token": round(nbytes / max(tokens - documents, 1), 4),
        "bytes_per_token_by_language": {name: round(b / max(t, 1), 4) for name, (b, t) in
                                        sorted(per_lang.items(), key=lambda kv: -kv[1][0])},
        "shards": len(listing["shards"]),
        "encoder": spec.backend,
        "encode_seconds_all_tasks": round(encode_seconds, 3),
        "encode_cpu_seconds_all_tasks": round(encode_cpu, 3),
        # Per core: bytes per CPU-second of the encoding threads (wall time also counts
        # waiting for a core on a shared host; that figure is the per-task one).
        "encode_mb_per_s_per_core": round(nbytes / 1e6 / encode_cpu, 3) if encode_cpu else None,
        "encode_mb_per_s_per_task_wall": round(nbytes / 1e6 / encode_seconds, 3) if encode_seconds else None,
        "tokenizer_sha256": tokenizer["sha256"],
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    from crawl2model.jobs.stage import add_io_arguments

    add_io_arguments(p, input_help="Parquet document table(s): folders or files",
                     output_help="token shard folder (written atomically, with _SUCCESS)")
    p.add_argument("--tokenizer", metavar="DIR", help="folder from `crawl2model tokenizer train`")
    p.add_argument("--num-shards", type=int, metavar="N",
                   help="write N shards, hashed by doc_id (default: one per input file)")
    p.add_argument("--encoder", choices=ENCODERS,
                   help="auto (default): tiktoken when the folder has a tokenizer.tiktoken that matches "
                        "tokenizer.json, else tokenizers")


STAGE = SparkStage(
    "tokenize", help="document table -> token shards", description=DESCRIPTION,
    add_arguments=add_arguments, config="crawl2model.jobs.tokenize_shards:TokenizeConfig",
    body="crawl2model.jobs.tokenize_shards:run")
register = STAGE.register

if __name__ == "__main__":
    sys.exit(STAGE.main())
