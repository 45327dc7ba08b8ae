"""A checkpoint as a Hugging Face Llama folder: config.json, model.safetensors, the tokenizer; and back.

Our model is LLaMA's architecture with the rotate-half RoPE convention that
transformers uses, so the export only splits the fused projections (wqkv ->
q/k/v_proj, w13 -> gate/up_proj) and renames. No transformers import is needed
to write the folder; `LlamaForCausalLM.from_pretrained(folder)` reads it.
`from_hf` reads such a folder (ours or any plain Llama) back into our names.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from crawl2model.core.errors import InputError
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train.checkpoint import MODEL_FILE, read_state

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def hf_state_dict(weights: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    d, kv = cfg.d_model, cfg.kv_dim
    out = {"model.embed_tokens.weight": weights["tok_embeddings.weight"],
           "model.norm.weight": weights["norm.weight"]}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = weights["output.weight"]
    for i in range(cfg.n_layers):
        ours, hf = f"layers.{i}.", f"model.layers.{i}."
        q, k, v = weights[ours + "attn.wqkv.weight"].split([d, kv, kv])
        gate, up = weights[ours + "ffn.w13.weight"].chunk(2)
        out.update({
            hf + "self_attn.q_proj.weight": q, hf + "self_attn.k_proj.weight": k,
            hf + "self_attn.v_proj.weight": v, hf + "self_attn.o_proj.weight": weights[ours + "attn.wo.weight"],
            hf + "mlp.gate_proj.weight": gate, hf + "mlp.up_proj.weight": up,
            hf + "mlp.down_proj.weight": weights[ours + "ffn.w2.weight"],
            hf + "input_layernorm.weight": weights[ours + "attn_norm.weight"],
            hf + "post_attention_layernorm.weight": weights[ours + "ffn_norm.weight"],
        })
    return {k: v.contiguous() for k, v in out.items()}


def from_hf_state_dict(hf: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The inverse of `hf_state_dict`: HF Llama names -> ours, q/k/v and gate/up fused again."""
    out = {"tok_embeddings.weight": hf["model.embed_tokens.weight"], "norm.weight": hf["model.norm.weight"]}
    if not cfg.tie_embeddings:
        out["output.weight"] = hf["lm_head.weight"]
    for i in range(cfg.n_layers):
        ours, p = f"layers.{i}.", f"model.layers.{i}."
        attn, mlp = p + "self_attn.", p + "mlp."
        out.update({
            ours + "attn.wqkv.weight": torch.cat([hf[attn + f"{x}_proj.weight"] for x in "qkv"]),
            ours + "attn.wo.weight": hf[attn + "o_proj.weight"],
            ours + "ffn.w13.weight": torch.cat([hf[mlp + "gate_proj.weight"], hf[mlp + "up_proj.weight"]]),
            ours + "ffn.w2.weight": hf[mlp + "down_proj.weight"],
            ours + "attn_norm.weight": hf[p + "input_layernorm.weight"],
            ours + "ffn_norm.weight": hf[p + "post_attention_layernorm.weight"],
        })
    return out


def model_config_from_hf(config: dict, where: str) -> ModelConfig:
    """Our shape from a Llama config.json; refuses what our model does not compute (biases, RoPE scaling)."""
    if config.get("model_type") != "llama":
        raise InputError(f"{where}: model_type {config.get('model_type')!r} is not a Llama model")
    unsupported = [k for k in ("attention_bias", "mlp_bias", "rope_scaling") if config.get(k)]
    rope = config.get("rope_parameters") or {}  # transformers 5 writes rope_theta here
    if rope.get("rope_type", "default") != "default":
        unsupported.append(f"rope_type {rope['rope_type']}")
    if config.get("hidden_act", "silu") != "silu":
        unsupported.append(f"hidden_act {config['hidden_act']}")
    heads = config["num_attention_heads"]
    if config.get("head_dim", config["hidden_size"] // heads) != config["hidden_size"] // heads:
        unsupported.append("head_dim != hidden_size / num_attention_heads")
    if unsupported:
        raise InputError(f"{where}: not supported by this model: {', '.join(map(str, unsupported))}")
    cfg = ModelConfig(n_layers=config["num_hidden_layers"], d_model=config["hidden_size"], n_heads=heads,
                      n_kv_heads=config.get("num_key_value_heads", heads), ffn_dim=config["intermediate_size"],
                      vocab_size=config["vocab_size"], seq_len=config["max_position_embeddings"],
                      rope_theta=float(config.get("rope_theta") or rope.get("rope_theta", 10000.0)), norm_eps=config["rms_norm_eps"],
                      init_std=config.get("initializer_range", 0.006),
                      tie_embeddings=bool(config.get("tie_word_embeddings", False)))
    cfg.validate()
    return cfg


def from_hf(folder: str | Path, weights: bool = True) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(shape, weights in our names) of a Hugging Face Llama folder (one or several .safetensors files);
    `weights=False`: the shape only."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    cfg = model_config_from_hf(config, str(folder / "config.json"))
    files = sorted(folder.glob("*.safetensors"))
    if not weights:
        return cfg, {}
    if not files:
        raise InputError(f"{folder}: no .safetensors weights (a pickled pytorch_model.bin is not read)")
    hf = {k: v for f in files for k, v in load_file(str(f)).items()}
    return cfg, from_hf_state_dict(hf, cfg)


def hf_config(cfg: ModelConfig, dtype: torch.dtype, bos_id: int | None, eos_id: int | None) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model, "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.seq_len, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "rope_scaling": None, "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
        "initializer_range": cfg.init_std, "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": bos_id, "eos_token_id": eos_id, "torch_dtype": str(dtype).removeprefix("torch."),
        "use_cache": True,
    }


def export(checkpoint_dir: str | Path, output_dir: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
    """Write the HF folder; the tokenizer defaults to the one the run's token shards were made with."""
    from safetensors.torch import load_file, save_file

    ckpt, out = Path(checkpoint_dir), Path(output_dir)
    state = read_state(ckpt)
    cfg = ModelConfig(**state["model"])
    weights = load_file(str(ckpt / MODEL_FILE))
    tensors = hf_state_dict(weights, cfg)
    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir else run_tokenizer(state)
    bos_id = eos_id = None
    if tokenizer_dir is not None:
        special = json.loads((tokenizer_dir / "tokenizer_config.json").read_text()).get("crawl2model", {})
        bos_id, eos_id = special.get("bos_id"), special.get("eos_id")
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    dtype = next(iter(tensors.values())).dtype
    (out / "config.json").write_text(json.dumps(hf_config(cfg, dtype, bos_id, eos_id), indent=2) + "\n")
    if tokenizer_dir is not None:
        for name in TOKENIZER_FILES:
            if (tokenizer_dir / name).is_file():
                shutil.copy2(tokenizer_dir / name, out / name)
    return out


def run_tokenizer(state: dict) -> Path | None:
    """The tokenizer named by the run config, else by its token shards' manifest (if it still exists)."""
    from crawl2model.tokenizer.shards import shard_paths

    train = state.get("train", {})
    path = train.get("tokenizer")
    if not path and train.get("data"):
        path = shard_paths(train["data"])[2].get("tokenizer", {}).get("path")
    return Path(path) if path and (Path(path) / "tokenizer.json").is_file() else None
