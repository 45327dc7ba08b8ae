"""`crawl2model train`, `sft`, `dpo`, `export-hf` and `generate`.

    crawl2model train --config run.toml                          one process (CPU or one GPU)
    crawl2model train --config run.toml --nproc-per-node 8       re-launched under torchrun
    crawl2model train --config run.toml --launcher deepspeed --hostfile hosts   multi-node via DeepSpeed
    crawl2model train --config run.toml --resume                 continue from OUTPUT/checkpoints/latest
    crawl2model train --preset tiny --input TOKENS --max-steps 20 --warmup-steps 2   no run file
    crawl2model sft --config run.toml                            [sft] init = a checkpoint or HF folder
    crawl2model dpo --config run.toml --nproc-per-node 8         [dpo] init = the SFT run
    crawl2model export-hf --checkpoint OUT/checkpoints/step-00001000 --output hf/
    crawl2model generate --model hf/ --prompt "What is Debian?"  print an answer (greedy, KV cache)

Flags override the run file's [train] ([sft], [dpo]) table; sft and dpo take
their model's shape (and tokenizer) from `init`. Under a launcher (RANK set in the
environment) the command trains directly; otherwise, asked for several
processes, it starts the launcher with the same arguments and waits for it.
torch and DeepSpeed are imported only when a command runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from crawl2model.core.errors import ConfigError
from crawl2model.core.log import get_logger
from crawl2model.core.sizes import COUNT_HELP, parse_count

log = get_logger("train")

# [train] fields that have a flag: --max-steps, --lr, ...; booleans are --x/--no-x.
OVERRIDES = {"data": str, "val_data": str, "max_steps": int, "total_tokens": parse_count, "lr": float,
             "seq_len": int, "warmup_steps": int,
             "batch_size": int, "micro_batch_size": int, "engine": str, "dtype": str, "attention": str,
             "seed": int, "log_every": int, "eval_every": int, "save_every": int, "eval_windows": int,
             "num_workers": int, "activation_checkpointing": bool, "fused": bool}
# [sft] and [dpo] take the same flags (less total_tokens) and these; their modules name config and task.
FINETUNE_OVERRIDES = {"sft": {"init": str, "epochs": float, "tokenizer": str},
                      "dpo": {"init": str, "epochs": float, "tokenizer": str, "beta": float}}
# What a launched child must not do again: its parent holds the output's claim.
CHILD_ENV = "CRAWL2MODEL_TRAIN_CHILD"


def _overrides(command: str) -> dict:
    if command == "train":
        return OVERRIDES
    return {**{k: v for k, v in OVERRIDES.items() if k != "total_tokens"}, **FINETUNE_OVERRIDES[command]}


def _finetune_config(args: argparse.Namespace):
    """(model, [sft]/[dpo] config): the table of the run file (or none), flags over it; the model's
    shape and, unless given, the tokenizer from `init`."""
    import importlib

    from crawl2model.train import pretrained
    from crawl2model.train.finetune import load_config

    module = importlib.import_module(f"crawl2model.train.{args.command}")
    changes = {name: getattr(args, name) for name in _overrides(args.command) if getattr(args, name) is not None}
    cfg = load_config(module.CONFIG, args.config, module.PRESETS, changes)
    source = pretrained.load(cfg.init, weights=False)
    tokenizer = cfg.tokenizer or source.tokenizer
    if tokenizer is None:
        raise ConfigError(f"no tokenizer is known for {cfg.init}: set {args.command}.tokenizer")
    return source.cfg, dataclasses.replace(cfg, tokenizer=str(tokenizer))


def _config(args: argparse.Namespace):
    """(model, train) from the run file (a preset may stand in for its [model]), or from --preset
    with the shards' vocabulary; flags override."""
    from crawl2model.scaling.shapes import get_preset
    from crawl2model.train.config import TrainConfig, load_run_config

    if not args.config and not args.preset:
        raise ConfigError("give --config RUN.toml or --preset NAME (with --input and --max-steps)")
    if args.config:
        model, train = load_run_config(args.config, args.preset)
    else:
        model, train = get_preset(args.preset), TrainConfig(max_steps=1)
        if args.data:  # a preset's 102,400 rows would be mostly unused with a small test tokenizer
            from crawl2model.tokenizer.shards import shard_paths

            padded = shard_paths(args.data)[2].get("tokenizer", {}).get("padded_vocab_size")
            model.vocab_size = padded or model.vocab_size
    changes = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    if "total_tokens" in changes:
        changes["total_tokens"] = int(changes["total_tokens"])
    if "max_steps" in changes:
        changes.setdefault("total_tokens", None)
    elif "total_tokens" in changes:
        changes["max_steps"] = None
    train = dataclasses.replace(train, **changes)
    train.validate()
    return model, train


def _child_argv(args: argparse.Namespace, output: str) -> list[str]:
    """The same training command for each launched process, without the launch flags."""
    argv = [args.command, *(["--config", args.config] if args.config else []),
            *(["--preset", args.preset] if getattr(args, "preset", None) else []), "--output", output]
    for name, kind in _overrides(args.command).items():
        value = getattr(args, name)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        argv += ([flag] if value else ["--no-" + flag[2:]]) if kind is bool else [flag, str(value)]
    if args.resume:
        argv += ["--resume", args.resume]
    return argv


def _launch(args: argparse.Namespace, output: str) -> int:
    rest = _child_argv(args, output)
    if args.launcher == "deepspeed":
        cmd = ["deepspeed", "--no_local_rank"]
        if args.hostfile:
            cmd += ["--hostfile", args.hostfile]
        if args.nproc_per_node:
            cmd += ["--num_gpus", str(args.nproc_per_node)]
        cmd += ["--module", "crawl2model", *rest]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={args.nproc_per_node}", "-m", "crawl2model", *rest]
    log.info("launching: " + " ".join(cmd))
    return subprocess.call(cmd, env={**os.environ, CHILD_ENV: "1"})


def cmd_train(args: argparse.Namespace) -> int:
    """Train (pretraining, SFT or DPO: `args.command`) under the stage protocol; the process the
    user started owns the output.

    It fingerprints the resolved tables and the inputs (shards or JSONL, and the
    starting model), skips a finished run with the same ones, claims the folder
    (in place: checkpoints accumulate there) and writes config.json, report.json
    and _SUCCESS at the end. `--resume` may continue a finished run with other
    settings (continual training); `--overwrite` starts afresh.
    """
    from crawl2model.core.config import to_dict
    from crawl2model.core.stage import run_stage

    command = args.command
    _require_file_path(command, args.output)  # before the inputs are looked at
    model, train = _config(args) if command == "train" else _finetune_config(args)
    name = Path(args.config).stem if args.config else getattr(args, "preset", None) or command
    output = args.output or train.output_dir or str(Path("runs") / name)
    _require_file_path(command, output)
    if args.hostfile and args.launcher != "deepspeed":
        raise ConfigError("--hostfile needs --launcher deepspeed")
    under_launcher = "RANK" in os.environ
    launch = not under_launcher and ((args.nproc_per_node or 1) > 1 or args.launcher == "deepspeed")
    if os.environ.get(CHILD_ENV) or (under_launcher and os.environ.get("RANK") != "0"):
        _train_here(command, model, train, output, args.resume)
        return 0

    def body(out, timer) -> dict:
        if command != "train":
            from crawl2model.train.finetune import write_tokenizer

            write_tokenizer(train, Path(output))
        if launch:
            rc = _launch(args, output)
            if rc:
                raise TrainingFailed(f"the launched training processes failed (exit code {rc})")
            from crawl2model.core.fs import read_json

            return read_json(str(Path(output) / "report.json"))
        return _train_here(command, model, train, output, args.resume)

    config = {"model": to_dict(model), command: to_dict(train)}
    inputs = [p for p in (train.data, train.val_data, getattr(train, "init", None)) if p]
    run_stage(command, config, body, output=output, inputs=inputs, overwrite=bool(args.overwrite),
              in_place=True, extend=bool(args.resume), config_file=config)
    return 0


def _require_file_path(command: str, output: str | None) -> None:
    if output and "://" in output:
        raise ConfigError(f"{command}: the run folder must be a path on a local or shared filesystem, not {output} "
                          "(torch and DeepSpeed write checkpoints as files; mount the bucket, or read data from "
                          "s3:// and write the run to shared storage)")


class TrainingFailed(RuntimeError):
    """Launched ranks exited with an error; their own output says why."""


def _train_here(command: str, model, train, output: str, resume: str | None) -> dict:
    import importlib

    from crawl2model.train import pretrained, trainer

    task = None
    if command != "train":
        module = importlib.import_module(f"crawl2model.train.{command}")
        task = module.TASK(train, pretrained.load(train.init), Path(output))
    return trainer.run(model, train, output, resume=resume, task=task)


def cmd_export_hf(args: argparse.Namespace) -> int:
    from crawl2model.train import export_hf
    from crawl2model.train.pretrained import checkpoint_folder

    ckpt = checkpoint_folder(args.checkpoint)
    out = export_hf.export(ckpt, args.output, args.tokenizer)
    log.info(f"exported {ckpt} -> {out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Print the model's continuation of --prompt (its answer, for a chat model)."""
    import torch

    from crawl2model.train import pretrained
    from crawl2model.train.chat import folder_template, load_chat_tokenizer
    from crawl2model.train.generate import generate

    if args.max_new_tokens < 1 or args.temperature < 0 or not 0 < args.top_p <= 1:
        raise ConfigError("--max-new-tokens must be >= 1, --temperature >= 0 and --top-p in (0, 1]")
    source = pretrained.load(args.model)
    tokenizer_dir = args.tokenizer or source.tokenizer
    if tokenizer_dir is None:
        raise ConfigError(f"no tokenizer is known for {args.model}: give --tokenizer DIR")
    tok = load_chat_tokenizer(tokenizer_dir)
    chat = args.chat if args.chat is not None else folder_template(tokenizer_dir) is not None
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    ids = tok.prompt_ids([{"role": "user", "content": prompt}]) if chat else tok.encode(prompt).ids
    if len(ids) >= source.cfg.seq_len:
        raise ConfigError(f"the prompt is {len(ids)} tokens; the model's context is {source.cfg.seq_len}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = source.model().to(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    out = generate(model, ids, args.max_new_tokens, eos_id=tok.eos_id, temperature=args.temperature,
                   top_p=args.top_p, vocab_limit=tok.tokenizer.get_vocab_size(), seed=args.seed)
    print(tok.tokenizer.decode(out, skip_special_tokens=True))
    return 0


def _flag_type(kind):
    """argparse type that reports a bad count like argparse reports a bad int."""
    if kind is not parse_count:
        return kind

    def count(text: str) -> float:
        try:
            return parse_count(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    count.__name__ = "count"
    return count


def _add_run_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """The flags train, sft and dpo share: output, resume, launch, and one per overridable key."""
    table = f"[{command}]"
    p.add_argument("--output", metavar="DIR", help=f"run folder (default: {table} output_dir, else runs/<config name>)")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="start the run folder afresh even if it holds a finished or unfinished run")
    p.add_argument("--resume", nargs="?", const="latest", metavar="CKPT",
                   help="continue from OUTPUT's latest checkpoint, or from CKPT (a step-* folder, e.g. of a "
                        "shorter run: continual training)")
    for name, kind in _overrides(command).items():
        if name == "data":
            continue
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"override {table} {name}")
        else:
            extra = f" ({COUNT_HELP})" if kind is parse_count else ""
            p.add_argument(flag, type=_flag_type(kind), metavar=name.upper(), help=f"override {table} {name}{extra}")
    p.add_argument("--nproc-per-node", type=int, metavar="N", help="processes (GPUs) per node; >1 starts torchrun")
    p.add_argument("--launcher", choices=("torchrun", "deepspeed"), default="torchrun",
                   help="launcher for several processes (deepspeed: multi-node with --hostfile)")
    p.add_argument("--hostfile", metavar="FILE", help="DeepSpeed hostfile (see infra/deepspeed/hostfile.example)")
    p.set_defaults(func=cmd_train)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="pretrain the model on token shards (DeepSpeed ZeRO-1 or torch DDP)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="RUN.toml", help="run file with [model] and [train] tables")
    p.add_argument("--preset", help="instead of --config: a model preset (tiny, small, 1b, ...), its vocab_size "
                                    "taken from the shards' tokenizer; [train] defaults plus the flags")
    p.add_argument("--input", "--data", dest="data", metavar="TOKENS",
                   help="token shard folder from `crawl2model tokenize` (overrides [train] data)")
    _add_run_arguments(p, "train")

    for command, what in (("sft", "supervised fine-tuning on conversations (assistant tokens only)"),
                          ("dpo", "direct preference optimisation on chosen/rejected pairs")):
        p = subparsers.add_parser(command, help=f"{what}, from a checkpoint or HF folder",
                                  description=f"{what[0].upper()}{what[1:]} (train/{command}.py says how), from "
                                              f"[{command}] init: a checkpoint or Hugging Face folder; the same "
                                              f"engines, checkpoints, resume and metrics as train.")
        p.add_argument("--config", metavar="RUN.toml", help=f"run file with a [{command}] table")
        p.add_argument("--input", "--data", dest="data", metavar="JSONL", help=f"examples (overrides [{command}] data)")
        _add_run_arguments(p, command)

    p = subparsers.add_parser("export-hf", help="export a checkpoint as a Hugging Face Llama folder",
                              description="Write config.json, model.safetensors and the tokenizer files that "
                                          "transformers' LlamaForCausalLM and AutoTokenizer load.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a step-* checkpoint folder (or a run/checkpoints folder: its latest)")
    p.add_argument("--output", required=True, metavar="HF_DIR", help="folder to write")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder (default: the one the run's shards name)")
    p.set_defaults(func=cmd_export_hf)

    p = subparsers.add_parser("generate", help="print a model's answer to a prompt (checkpoint or HF folder)",
                              description="Greedy (--temperature 0, the default) or sampled text from a checkpoint "
                                          "or Hugging Face folder, with a KV cache, stopping at EOS. A chat model "
                                          "(its tokenizer has a chat_template) gets the prompt as a user turn.")
    p.add_argument("--model", required=True, metavar="PATH",
                   help="a step-* checkpoint, a run or checkpoints folder (its latest), or a Hugging Face folder")
    p.add_argument("--prompt", required=True, help="the prompt text ('-': read it from stdin)")
    p.add_argument("--max-new-tokens", type=int, default=128, metavar="N", help="stop after N tokens (default 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 samples")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep this much probability mass")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                   help="apply the chat template (default: when the tokenizer has one)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder (default: the model's)")
    p.set_defaults(func=cmd_generate)
