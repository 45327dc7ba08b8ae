"""SFT: only the assistant's tokens carry loss (masked positions get zero gradient), and `crawl2model sft`
end to end on the bundled chat sample: the stage protocol, the loss going down, exact resume, generate."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_generate import CHAT, chat_tokenizer, hf_folder

from crawl2model.jobs.cli import main
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.train.chat import DEEPSEEK_TEMPLATE, load_chat_tokenizer, read_conversations
from crawl2model.train.finetune import encode, pad
from crawl2model.train.model import IGNORE, Transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = ModelConfig(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, ffn_dim=128, vocab_size=512, seq_len=128)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A randomly initialised tiny model as a Hugging Face folder, with a tokenizer without chat template."""
    folder = tmp_path_factory.mktemp("base")
    tokenizer = chat_tokenizer(folder / "tok", template=None)
    torch.manual_seed(0)
    return hf_folder(Transformer(CFG), tokenizer, folder / "hf")


@pytest.mark.parametrize("fused", [False, True])
def test_masked_positions_get_zero_gradient(base, fused):
    tok = load_chat_tokenizer(base)
    batch = pad([encode(tok, c, 129) for c in read_conversations(CHAT / "sft.jsonl")[-4:]], tok.eos_id)
    targets = batch["labels"][:, 1:]
    assert (targets != IGNORE).sum() < targets.numel() / 2  # prompts and padding are most of it
    torch.manual_seed(0)
    model = Transformer(CFG, fused=fused)
    hidden = []
    model.norm.register_forward_hook(lambda module, args, out: hidden.append(out) or out.retain_grad())
    model(batch["input_ids"][:, :-1], targets).backward()
    grad = hidden[0].grad.abs().sum(-1)  # d loss / d (final hidden state) per position
    assert (grad[targets == IGNORE] == 0).all() and (grad[targets != IGNORE] > 0).all()


def _run_file(folder: Path, init: Path, **extra) -> Path:
    table = {"init": str(init), "data": str(CHAT / "sft.jsonl"), "val_data": str(CHAT / "sft.jsonl"), "epochs": 3,
             "lr": 3e-3, "batch_size": 8, "warmup_steps": 2, "engine": "torch", "log_every": 4, "eval_every": 8,
             "save_every": 4, "num_workers": 0, **extra}
    path = folder / "sft.toml"
    path.write_text("[sft]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    return path


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


def test_sft_command_trains_resumes_and_generates(base, tmp_path, capsys):
    import transformers

    run_file, out = _run_file(tmp_path, base), tmp_path / "sft"
    assert main(["sft", "--config", str(run_file), "--output", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "sft" and report["docs_in"] == report["docs_out"] == 42
    assert report["steps"] == 16  # ceil(3 epochs x 42 / 8)
    losses = _losses(out)
    assert sum(losses[s] for s in range(13, 17)) / 4 < sum(losses[s] for s in range(1, 5)) / 4 - 0.5
    assert report["val_loss"] < losses[1]
    tokenizer = out / "tokenizer"
    assert json.loads((tokenizer / "tokenizer_config.json").read_text())["chat_template"] == DEEPSEEK_TEMPLATE
    assert transformers.AutoTokenizer.from_pretrained(tokenizer).apply_chat_template(
        read_conversations(CHAT / "sft.jsonl")[0], tokenize=False).startswith(load_chat_tokenizer(tokenizer).bos_token)

    from crawl2model.train.finetune import load_config
    from crawl2model.train.sft import PRESETS, SFTConfig

    resolved = load_config(SFTConfig, out / "run.toml", PRESETS, {})  # the resolved run file reads back
    assert (resolved.epochs, resolved.tokenizer, resolved.init) == (3, str(tokenizer), str(base))

    # The protocol: the same run is skipped; one from a checkpoint continues the same trajectory.
    assert main(["sft", "--config", str(run_file), "--output", str(out)]) == 0
    resumed = tmp_path / "resumed"
    assert main(["sft", "--config", str(run_file), "--output", str(resumed),
                 "--resume", str(out / "checkpoints" / "step-00000012")]) == 0
    want, got = _losses(out), _losses(resumed)
    assert sorted(got) == [13, 14, 15, 16] and all(got[s] == pytest.approx(want[s], abs=1e-6) for s in got)

    capsys.readouterr()
    assert main(["generate", "--model", str(out), "--prompt", "What is Debian?", "--max-new-tokens", "8"]) == 0
    assert capsys.readouterr().out.endswith("\n")  # a 16-step model's answer may well be blank


@pytest.mark.parametrize("change, message", [
    ({"data": "missing.jsonl"}, "input not found or empty: missing.jsonl"),
    ({"learning_rate": 1.0}, "unknown key 'learning_rate'"),
    ({"total_tokens": 1000}, "epochs"),
])
def test_sft_usage_errors_are_one_line(base, tmp_path, capsys, change, message):
    capsys.readouterr()
    assert main(["sft", "--config", str(_run_file(tmp_path, base, **change)), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


def test_a_bad_line_is_named(tmp_path):
    from crawl2model.core.errors import InputError

    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: no assistant message"):
        read_conversations(data)
    data.write_text('{"messages": [{"role": "robot", "content": "hi"}]}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:1: each message needs a role"):
        read_conversations(data)


def test_presets_are_the_papers(tmp_path):
    from crawl2model.core.errors import ConfigError
    from crawl2model.train.dpo import PRESETS as DPO_PRESETS
    from crawl2model.train.dpo import DPOConfig
    from crawl2model.train.finetune import load_config
    from crawl2model.train.sft import PRESETS, SFTConfig

    path = tmp_path / "run.toml"
    path.write_text('[sft]\npreset = "deepseek-67b"\ninit = "m"\ndata = "d.jsonl"\n'
                    '[dpo]\npreset = "deepseek"\ninit = "m"\ndata = "p.jsonl"\n')
    sft = load_config(SFTConfig, path, PRESETS, {})
    assert (sft.epochs, sft.lr) == (2.0, 5e-6)
    dpo = load_config(DPOConfig, path, DPO_PRESETS, {"beta": 0.2})
    assert (dpo.lr, dpo.batch_size, dpo.epochs, dpo.lr_schedule, dpo.beta) == (5e-6, 512, 1.0, "cosine", 0.2)
    path.write_text('[sft]\npreset = "deepseek-8b"\ninit = "m"\ndata = "d.jsonl"\n')
    with pytest.raises(ConfigError, match="unknown preset 'deepseek-8b'"):
        load_config(SFTConfig, path, PRESETS, {})


def test_the_loss_is_the_mean_over_a_steps_assistant_tokens_however_the_batch_is_split(base, tmp_path):
    """Gradient accumulation over micro-batches of different lengths: the same losses as one micro-batch."""
    losses = []
    for micro in (8, 2):
        out = tmp_path / f"micro{micro}"
        assert main(["sft", "--config", str(_run_file(tmp_path, base)), "--output", str(out), "--max-steps", "4",
                     "--micro-batch-size", str(micro), "--log-every", "1"]) == 0
        losses.append(list(_losses(out).values()))
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)
