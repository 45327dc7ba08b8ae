"""`crawl2model quality-models ...`: train the fastText and KenLM models the filter uses.

    crawl2model quality-models train-classifier --input labelled.jsonl --output domain.bin
    crawl2model quality-models train-classifier --positive clean.jsonl --negative web.jsonl --output q.ftz
    crawl2model quality-models train-kenlm --input corpus.txt --order 5 --output en.binary
"""
from __future__ import annotations

import argparse
import os
import sys


def _add_classifier_parser(sub) -> None:
    p = sub.add_parser(
        "train-classifier", help="train a fastText classifier (quality: --positive/--negative; any labels: --input)",
        description="Train a fastText supervised classifier, print its held-out accuracy and write a model card "
                    "(MODEL.card.json). Inputs are JSON Lines, Parquet tables or text files (one document a line).")
    p.add_argument("--input", metavar="LABELLED", help="JSON Lines or Parquet with a text and a label field")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="label")
    p.add_argument("--positive", nargs="+", metavar="P", help="reference-quality documents (label hq)")
    p.add_argument("--negative", nargs="+", metavar="N", help="random web documents (label lq)")
    p.add_argument("--output", required=True, metavar="MODEL", help=".bin, or .ftz to quantize")
    p.add_argument("--heldout", type=float, default=0.1, help="fraction held out for the accuracy (default 0.1)")
    p.add_argument("--epoch", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--word-ngrams", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bucket", type=int, default=200_000, help="hashed word n-gram rows (default 200000)")
    p.add_argument("--quantize", action="store_true", help="product-quantize to a small .ftz")
    p.set_defaults(func=_train_classifier)


def _add_kenlm_parser(sub) -> None:
    p = sub.add_parser(
        "train-kenlm", help="train a KenLM n-gram model (lmplz + build_binary)",
        description="Normalize and tokenize the text the way the filter scores it, run KenLM's lmplz, "
                    "then build_binary. lmplz/build_binary come from quality_models/build_kenlm.sh.")
    p.add_argument("--input", nargs="+", required=True, metavar="TEXT",
                   help="text files (one document a line), JSON Lines or Parquet with a text field")
    p.add_argument("--text-field", default="text")
    p.add_argument("--lang", default="en", help="language of the text: decides the tokenizer (default en)")
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--prune", default="0 0 1", help="lmplz --prune thresholds per order (default '0 0 1')")
    p.add_argument("--memory", default="20%", help="lmplz -S (default 20%%)")
    p.add_argument("--output", required=True, metavar="MODEL", help="KenLM binary (.binary) or ARPA (.arpa)")
    p.add_argument("--bin-dir", help="folder with lmplz and build_binary (default: $KENLM_BIN or PATH)")
    p.set_defaults(func=_train_kenlm)


def _train_classifier(args: argparse.Namespace) -> int:
    from crawl2model.quality_models.classifier import train_classifier_from_files
    from crawl2model.core.errors import UsageError

    if bool(args.input) == bool(args.positive or args.negative):
        raise UsageError("give either --input, or --positive and --negative")
    if args.positive is not None and not (args.positive and args.negative):
        raise UsageError("--positive and --negative go together")
    card = train_classifier_from_files(
        args.output, labelled=args.input, positive=args.positive, negative=args.negative,
        text_field=args.text_field, label_field=args.label_field, heldout=args.heldout,
        epoch=args.epoch, lr=args.lr, word_ngrams=args.word_ngrams, dim=args.dim,
        min_count=args.min_count, seed=args.seed, bucket=args.bucket, quantize=args.quantize or args.output.endswith(".ftz"))
    print(f"held-out accuracy {card['heldout_accuracy']:.4f} on {card['heldout_examples']} examples; "
          f"wrote {os.path.join(os.path.dirname(args.output), card['model'])}", file=sys.stderr)
    return 0


def _train_kenlm(args: argparse.Namespace) -> int:
    from crawl2model.quality_models.kenlm_models import train_kenlm

    card = train_kenlm(args.input, args.output, lang=args.lang, order=args.order, prune=args.prune,
                       memory=args.memory, text_field=args.text_field, bin_dir=args.bin_dir)
    print(f"wrote {args.output} ({card['bytes']} bytes, {card['sentences']} sentences)", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("quality-models", help="train the filter's fastText and KenLM models",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="quality_command", required=True, metavar="ACTION")
    _add_classifier_parser(sub)
    _add_kenlm_parser(sub)
