"""Trainer throughput: our model vs transformers' LlamaForCausalLM, the loader vs the trainer, GPU MFU.

    nice -n 10 python bench/train.py              # CPU parts; GPU parts when CUDA is available
    python bench/train.py --quick                 # fewer steps

1. Model step on CPU: the same config (GQA, SwiGLU, untied, fp32) and batch for
   both models, weights copied from ours into the HF model, forward + backward
   + torch AdamW step. The two alternate in rounds so load from other processes
   hits both alike; tokens/s is the median over rounds, and the ratio is ours/HF
   in this one run. Both wall-clock and CPU-time rates are reported: on a
   shared machine the process's CPU time (one thread) is the steadier measure,
   and its ratio is the median of per-round ratios (printed with their range).
2. Loader: tokens/s of `train.data.train_loader` (memory-mapped shards of the
   bundled sample, shuffled windows, the main process, no workers) against the
   tokens/s the trainer consumes from (1). A loader worker runs in parallel
   with the trainer, so this ratio is the headroom.
3. GPU (only with CUDA): MFU of the `1b` preset at seq 4096 in bf16 with
   flash-attn (torch engine math: fwd + bwd + AdamW on one device), and
   flash-attn vs SDPA for that model.

Writes bench/out/train.json, with the load average next to the numbers.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from crawl2model.scaling.shapes import ModelConfig, get_preset
from crawl2model.train.model import Transformer, train_flops_per_token

ROOT = Path(__file__).resolve().parent.parent


CPU_MODEL = ModelConfig(n_layers=4, d_model=256, n_heads=8, n_kv_heads=4, ffn_dim=704, vocab_size=8192, seq_len=256)


def hf_llama(ours: Transformer):
    """transformers' Llama with our config and our weights (through the exporter's mapping)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from crawl2model.train.export_hf import hf_config, hf_state_dict

    config = hf_config(ours.cfg, torch.float32, None, None)
    config.pop("architectures"), config.pop("model_type"), config.pop("torch_dtype")
    model = LlamaForCausalLM(LlamaConfig(**config, attn_implementation="sdpa"))
    model.load_state_dict(hf_state_dict(ours.state_dict(), ours.cfg))
    return model


def _ours_step(model, opt, batch):
    loss = model(batch[:, :-1], batch[:, 1:])
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _hf_step(model, opt, batch):
    loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss  # HF shifts labels itself
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def model_step_bench(cfg: ModelConfig, batch_size: int, rounds: int, steps_per_round: int) -> dict:
    torch.manual_seed(0)
    ours = Transformer(cfg)
    hf = hf_llama(copy.deepcopy(ours))
    batch = torch.randint(0, cfg.vocab_size, (batch_size, cfg.seq_len + 1))
    with torch.no_grad():  # same maths: same logits before timing anything
        diff = (ours(batch[:, :-1]) - hf(input_ids=batch[:, :-1]).logits).abs().max().item()
    runs = {"ours": (ours, _ours_step), "hf": (hf, _hf_step)}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for name, (m, _) in runs.items()}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    tokens = batch_size * cfg.seq_len * steps_per_round
    for r in range(rounds + 1):
        for name, (model, step) in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps_per_round):
                step(model, opts[name], batch)
            if r:  # round 0 warms up allocators and kernels
                wall[name].append(tokens / (time.perf_counter() - t0))
                cpu[name].append(tokens / (time.process_time() - c0))
    result = {"config": dataclasses.asdict(cfg), "batch_size": batch_size, "rounds": rounds,
              "steps_per_round": steps_per_round, "max_logit_diff": diff}
    for name in runs:
        result[f"{name}_tokens_per_s"] = statistics.median(wall[name])
        result[f"{name}_tokens_per_cpu_s"] = statistics.median(cpu[name])
    # Each round's two runs are adjacent in time, so their ratio cancels slow drifts in machine load.
    per_round = sorted(o / h for o, h in zip(cpu["ours"], cpu["hf"]))
    result["ratio"] = result["ours_tokens_per_s"] / result["hf_tokens_per_s"]
    result["ratio_cpu_time"] = statistics.median(per_round)
    result["ratio_cpu_time_range"] = [per_round[0], per_round[-1]]
    return result


def loader_bench(seq_len: int, batch_size: int, n_batches: int) -> dict:
    from crawl2model.corpora.token_sample import build
    from crawl2model.train.data import train_loader

    with tempfile.TemporaryDirectory() as tmp:
        info = build(Path(tmp), vocab_size=512)
        loader = iter(train_loader(str(Path(tmp) / "train"), seq_len, batch_size, batch_size, seed=0,
                                   num_workers=0))
        next(loader)  # maps the shards
        t0 = time.perf_counter()
        for _ in range(n_batches):
            next(loader)
        seconds = time.perf_counter() - t0
    return {"shard_tokens": info["train_tokens"], "batches": n_batches,
            "tokens_per_s": n_batches * batch_size * seq_len / seconds}


def gpu_bench(steps: int) -> dict:
    """MFU of the 1b preset at seq 4096, bf16, flash-attn vs SDPA, one GPU."""
    from crawl2model.train.attention import flash_attn_func
    from crawl2model.train.metrics import peak_flops

    cfg = get_preset("1b")
    device = torch.device("cuda")
    peak = peak_flops(None)
    result = {"device": torch.cuda.get_device_name(), "config": "1b", "seq_len": cfg.seq_len,
              "peak_flops": peak, "flash_attn_installed": flash_attn_func() is not None}
    for backend in ("flash", "sdpa"):
        if backend == "flash" and flash_attn_func() is None:
            result[backend] = "skipped: flash-attn not installed"
            continue
        torch.manual_seed(0)
        model = Transformer(cfg, attention=backend).to(device, torch.bfloat16)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        batch = torch.randint(0, cfg.vocab_size, (1, cfg.seq_len + 1), device=device)
        for i in range(steps + 3):
            if i == 3:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            _ours_step(model, opt, batch)
        torch.cuda.synchronize()
        tps = steps * cfg.seq_len / (time.perf_counter() - t0)
        result[backend] = {"tokens_per_s": tps,
                           "mfu": tps * train_flops_per_token(cfg) / peak if peak else None,
                           "max_memory_gb": torch.cuda.max_memory_allocated() / 2**30}
        del model, opt
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on shared cores OpenMP spinning distorts both sides)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "train.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rounds, per_round = (3, 2) if args.quick else (7, 3)

    step = model_step_bench(CPU_MODEL, args.batch_size, rounds, per_round)
    loader = loader_bench(CPU_MODEL.seq_len, args.batch_size, 300 if args.quick else 2000)
    loader["trainer_tokens_per_s"] = step["ours_tokens_per_s"]
    loader["ratio"] = loader["tokens_per_s"] / step["ours_tokens_per_s"]
    gpu = gpu_bench(5 if args.quick else 20) if torch.cuda.is_available() else "skipped: no GPU"

    cfg = CPU_MODEL
    print(f"\nmodel step on CPU ({args.threads} thread(s)): {cfg.n_layers} layers, d {cfg.d_model}, "
          f"{cfg.n_heads} heads / {cfg.n_kv_heads} KV, FFN {cfg.ffn_dim}, vocab {cfg.vocab_size}, "
          f"batch {args.batch_size} x {cfg.seq_len}, fwd+bwd+AdamW (logits agree to {step['max_logit_diff']:.1e})")
    print(f"{'':34} {'tokens/s':>10} {'tokens/CPU-s':>13}")
    print(f"{'ours (train.model.Transformer)':34} {step['ours_tokens_per_s']:>10.0f} {step['ours_tokens_per_cpu_s']:>13.0f}")
    print(f"{'transformers LlamaForCausalLM':34} {step['hf_tokens_per_s']:>10.0f} {step['hf_tokens_per_cpu_s']:>13.0f}")
    low, high = step["ratio_cpu_time_range"]
    print(f"{'ratio ours / HF (goal >= 1.2)':34} {step['ratio']:>10.2f} {step['ratio_cpu_time']:>13.2f}"
          f"   (rounds {low:.2f}-{high:.2f})")
    print(f"\nloader (memory-mapped sample shards, {loader['shard_tokens']:,} tokens, 1 process): "
          f"{loader['tokens_per_s']:,.0f} tokens/s = {loader['ratio']:.0f}x the trainer's "
          f"{loader['trainer_tokens_per_s']:,.0f} (goal >= 100x)")
    if isinstance(gpu, str):
        print(f"\nGPU (1b preset, seq 4096, bf16, flash-attn vs SDPA): {gpu}")
    else:
        print(f"\nGPU {gpu['device']}, 1b preset, seq 4096, bf16:")
        for backend in ("flash", "sdpa"):
            r = gpu[backend]
            print(f"  {backend:6} " + (r if isinstance(r, str) else
                  f"{r['tokens_per_s']:,.0f} tokens/s, MFU {100 * r['mfu']:.1f}%" if r["mfu"] else
                  f"{r['tokens_per_s']:,.0f} tokens/s"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model_step": step, "loader": loader, "gpu": gpu, "threads": args.threads,
                               "load_avg_1min": os.getloadavg()[0]}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
