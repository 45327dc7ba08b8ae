"""`crawl2model tokenizer train|report`.

Heavy imports (tokenizers, transformers) happen inside the commands so that
`crawl2model --help` stays fast.
"""
from __future__ import annotations

import argparse
import json

from crawl2model.core.config import add_config_argument


def _train(args: argparse.Namespace) -> int:
    from crawl2model.core.config import resolve
    from crawl2model.tokenizer.train import TrainConfig, run

    run(resolve(TrainConfig, "tokenizer", args))
    return 0


def _report(args: argparse.Namespace) -> int:
    from crawl2model.tokenizer import files, report

    tok = files.load(args.tokenizer)
    per_file = [report.file_stats(tok, path) for path in args.text or []]
    vocab = report.vocab_stats(tok)
    print(report.format_report(per_file, vocab))
    if args.json:
        result = {"files": [{**vars(s), "bytes_per_token": s.bytes_per_token,
                             "chars_per_token": s.chars_per_token} for s in per_file],
                  "vocab": vocab, "tokenizer_sha256": files.fingerprint(args.tokenizer)}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
    return 0 if vocab["digits_ok"] else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="train and inspect the 100k byte-level BPE tokenizer",
                              description="Train the byte-level BPE tokenizer (DeepSeek-style pre-tokenization) "
                                          "or report how it compresses text.")
    sub = p.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train on text/JSONL/Parquet files or folders",
                       description="Sample text deterministically up to --max-bytes and train 100,000 "
                                   "ordinary tokens plus 15 specials; writes tokenizer.json, "
                                   "tokenizer_config.json, special_tokens_map.json and report.json.")
    t.add_argument("--input", nargs="+", metavar="PATH",
                   help="files or folders: .txt/.md(.gz), .jsonl(.gz) with a 'text' field, Parquet with a 'text' column")
    t.add_argument("--output", metavar="DIR", help="tokenizer folder (written atomically, with _SUCCESS)")
    t.add_argument("--vocab-size", type=int, help="ordinary tokens (default 100000)")
    t.add_argument("--max-bytes", metavar="SIZE", help="text to sample for training (default 2GB)")
    t.add_argument("--seed", type=int, help="sampling seed (default 0)")
    t.add_argument("--trainer", choices=("rustbpe", "hf"),
                   help="rustbpe (default: compiled, several times faster; also writes tokenizer.tiktoken) "
                        "or hf (tokenizers' BpeTrainer)")
    t.add_argument("--pretokenizer", choices=("clean", "deepseek-llm"),
                   help="clean (default: the project's rules) or deepseek-llm (DeepSeek LLM's published "
                        "pre-tokenizer, quirks included)")
    t.add_argument("--min-frequency", type=int, help="hf trainer: never merge rarer pairs (default 2)")
    t.add_argument("--padded-vocab-size", type=int,
                   help="model embedding rows, multiple of 128 (default 102400 when it fits)")
    t.add_argument("--model-max-length", type=int, help="recorded in tokenizer_config.json (default 4096)")
    t.add_argument("--overwrite", action="store_true", default=None, help="retrain even if DIR is finished")
    add_config_argument(t)
    t.set_defaults(func=_train)

    r = sub.add_parser("report", help="bytes/token per file and vocabulary checks",
                       description="Print bytes/token and chars/token for each file, the share of CJK "
                                   "tokens in the vocabulary, and check that the only digit tokens are "
                                   "the 10 single digits (exit code 1 if not).")
    r.add_argument("--tokenizer", required=True, metavar="DIR")
    r.add_argument("--text", nargs="*", metavar="FILE", help="text, JSONL or Parquet files to encode")
    r.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    r.set_defaults(func=_report)
