"""`crawl2model quality-models ...`: train the fastText and KenLM models the filter uses.

    crawl2model quality-models train-classifier --input labelled.jsonl --output runs/x/domains
    crawl2model quality-models train-classifier --positive clean.jsonl --negative web.jsonl --lang en \\
        --quantize --output runs/x/quality
    crawl2model quality-models train-kenlm --input corpus.txt --lang en --order 5 --output runs/x/kenlm-en

Each command writes an output folder under the stage protocol (core/stage.py):
the model and its card, report.json, config.json and _SUCCESS; a rerun with
the same config and inputs is skipped, another one stops unless --overwrite.
Settings come from the flags, over the [quality-classifier] / [quality-kenlm]
table of `--config RUN.toml`, over the defaults in code. The filter's
--quality-model and --kenlm-dir (and remix's --classifier) take these folders.
"""
from __future__ import annotations

import argparse
import os

from crawl2model.core.config import add_config_argument, resolve, to_dict
from crawl2model.core.log import Timer, get_logger
from crawl2model.core.outputs import StageOutput
from crawl2model.core.stage import run_stage

CLASSIFIER_STAGE, KENLM_STAGE = "quality-classifier", "quality-kenlm"


def _add_common(p: argparse.ArgumentParser, output_help: str) -> None:
    p.add_argument("--output", metavar="DIR", help=output_help)
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace OUTPUT even if it is finished (with the same or other settings)")
    add_config_argument(p)


def _add_classifier_parser(sub) -> None:
    p = sub.add_parser(
        "train-classifier", help="train a fastText classifier (quality: --positive/--negative; any labels: --input)",
        description="Train a fastText supervised classifier, measure its accuracy on a held-out split and "
                    "write an output folder: model.bin (model.ftz with --quantize), model.card.json, report.json. "
                    "Inputs are JSON Lines, Parquet tables or text files (one document a line).")
    p.add_argument("--input", metavar="LABELLED", help="JSON Lines or Parquet with a text and a label field")
    p.add_argument("--text-field")
    p.add_argument("--label-field")
    p.add_argument("--positive", nargs="+", metavar="P", help="reference-quality documents (label hq)")
    p.add_argument("--negative", nargs="+", metavar="N", help="random web documents (label lq)")
    p.add_argument("--lang", help="prepare text as the filter's quality scorer does, for this language "
                                  "(give it for a quality model; default: text as it is)")
    _add_common(p, "output folder (model, card, report.json)")
    p.add_argument("--heldout", type=float, help="fraction held out for the accuracy (default 0.1)")
    p.add_argument("--epoch", type=int, help="default 10")
    p.add_argument("--lr", type=float, help="default 0.5")
    p.add_argument("--word-ngrams", type=int, help="default 2")
    p.add_argument("--dim", type=int, help="default 64")
    p.add_argument("--min-count", type=int, help="default 1")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--bucket", type=int, help="hashed word n-gram rows (default 200000)")
    p.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=None,
                   help="product-quantize to a small model.ftz (default: no)")
    p.set_defaults(func=_train_classifier)


def _add_kenlm_parser(sub) -> None:
    p = sub.add_parser(
        "train-kenlm", help="train a KenLM n-gram model (lmplz + build_binary)",
        description="Normalize and tokenize the text the way the filter scores it, run KenLM's lmplz, then "
                    "build_binary, into an output folder: kenlm_<lang>.binary, its card, report.json. "
                    "lmplz/build_binary come from quality_models/build_kenlm.sh.")
    p.add_argument("--input", nargs="+", metavar="TEXT",
                   help="text files (one document a line), JSON Lines or Parquet with a text field")
    p.add_argument("--text-field")
    p.add_argument("--lang", help="language of the text: decides the tokenizer and the model's name (default en)")
    p.add_argument("--order", type=int, help="default 5")
    p.add_argument("--prune", help="lmplz --prune thresholds per order (default '0 0 1')")
    p.add_argument("--memory", help="lmplz -S (default 20%%)")
    _add_common(p, "output folder (kenlm_<lang>.binary, card, report.json): a --kenlm-dir of the filter")
    p.add_argument("--bin-dir", help="folder with lmplz and build_binary (default: $KENLM_BIN or PATH)")
    p.set_defaults(func=_train_kenlm)


def _train_classifier(args: argparse.Namespace) -> int:
    from crawl2model.quality_models.classifier import ClassifierConfig, train_classifier_from_files

    cfg = resolve(ClassifierConfig, CLASSIFIER_STAGE, args)
    log = get_logger(CLASSIFIER_STAGE)

    def body(out: StageOutput, timer: Timer) -> dict:
        with timer.lap("train"), out.local_folder() as folder:  # fastText writes local files
            card = train_classifier_from_files(
                os.path.join(folder, "model.ftz" if cfg.quantize else "model.bin"), labelled=cfg.input,
                positive=cfg.positive, negative=cfg.negative, text_field=cfg.text_field,
                label_field=cfg.label_field, lang=cfg.lang, heldout=cfg.heldout, **cfg.train_args())
        log.info(f"held-out accuracy {card['heldout_accuracy']} on {card['heldout_examples']} examples")
        examples = card["train_examples"] + card["heldout_examples"] + card["skipped_empty"]
        # Held-out examples are measured, not trained on: they leave the training set like removed rows.
        return {"docs_in": examples, "docs_out": card["train_examples"], "removes_docs": True,
                "removed_by_reason": {"empty": card["skipped_empty"], "heldout": card["heldout_examples"]},
                **{k: card[k] for k in ("model", "bytes", "labels", "heldout_accuracy")}, "timings": timer.report()}

    run_stage(CLASSIFIER_STAGE, to_dict(cfg), body, output=cfg.output, inputs=cfg.inputs, overwrite=cfg.overwrite)
    return 0


def _train_kenlm(args: argparse.Namespace) -> int:
    from crawl2model.quality_models.kenlm_models import KenlmConfig, model_name, train_kenlm

    cfg = resolve(KenlmConfig, KENLM_STAGE, args)

    def body(out: StageOutput, timer: Timer) -> dict:
        with timer.lap("train"), out.local_folder() as folder:  # so do lmplz and build_binary
            card = train_kenlm(cfg.input, os.path.join(folder, model_name(cfg.lang)), lang=cfg.lang, order=cfg.order,
                               prune=cfg.prune, memory=cfg.memory, text_field=cfg.text_field, bin_dir=cfg.bin_dir)
        return {"docs_in": card["documents"] + card["skipped_empty"], "docs_out": card["documents"],
                "removes_docs": True, "removed_by_reason": {"empty": card["skipped_empty"]},
                **{k: card[k] for k in ("model", "bytes", "lang", "order", "sentences", "tokens")},
                "timings": timer.report()}

    run_stage(KENLM_STAGE, to_dict(cfg), body, output=cfg.output, inputs=cfg.input, overwrite=cfg.overwrite,
              skip_keys=("bin_dir", "memory"))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("quality-models", help="train the filter's fastText and KenLM models",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="quality_command", required=True, metavar="ACTION")
    _add_classifier_parser(sub)
    _add_kenlm_parser(sub)
