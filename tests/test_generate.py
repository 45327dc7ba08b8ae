"""`crawl2model generate` and the chat template: our greedy decoding equals transformers' generate on the
exported model, and our chat rendering gives apply_chat_template's ids."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from crawl2model.core.resources import resource
from crawl2model.scaling.shapes import ModelConfig
from crawl2model.tokenizer import files
from crawl2model.tokenizer.specials import N_SPECIAL
from crawl2model.tokenizer.train import add_specials, train_bpe
from crawl2model.train import chat
from crawl2model.train.export_hf import from_hf, hf_config, hf_state_dict
from crawl2model.train.generate import generate, next_token
from crawl2model.train.model import Transformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHAT = resource("crawl2model.jobs", "chat_sample")


def chat_tokenizer(folder: Path, template: str | None = chat.DEEPSEEK_TEMPLATE) -> Path:
    """A 400-token BPE of the bundled chat sample in `folder` (with `template` as its chat_template)."""
    texts = [m["content"] for c in chat.read_conversations(CHAT / "sft.jsonl") for m in c]
    tok, n_ordinary = add_specials(train_bpe(texts, 400 - N_SPECIAL))
    folder.mkdir(parents=True, exist_ok=True)
    files.write_folder(tok, str(folder), n_ordinary, tok.get_vocab_size(), 256)
    return chat.write_tokenizer_folder(folder, folder, template) if template else folder


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return chat_tokenizer(tmp_path_factory.mktemp("tok"))


def hf_folder(model: Transformer, tokenizer_dir: Path, folder: Path) -> Path:
    """`model` as a Hugging Face Llama folder with the tokenizer's files (what export-hf writes)."""
    from safetensors.torch import save_file

    from crawl2model.train.checkpoint import model_weights

    folder.mkdir(parents=True)
    save_file(hf_state_dict(model_weights(model), model.cfg), str(folder / "model.safetensors"))
    eos = chat.load_chat_tokenizer(tokenizer_dir).eos_id
    (folder / "config.json").write_text(json.dumps(hf_config(model.cfg, torch.float32, eos - 1, eos)))
    for name in chat.TOKENIZER_FILES:
        (folder / name).write_bytes((tokenizer_dir / name).read_bytes())
    return folder


def test_chat_template_gives_apply_chat_templates_ids_and_marks_the_assistant(tokenizer_dir):
    transformers = pytest.importorskip("transformers")
    hf_tok = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    tok = chat.load_chat_tokenizer(tokenizer_dir)
    for messages in chat.read_conversations(CHAT / "sft.jsonl")[-3:]:
        ids, learnt = tok.encode_chat(messages)
        assert ids == list(hf_tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        prompt = hf_tok.apply_chat_template(messages[:1], add_generation_prompt=True, return_dict=True)
        assert tok.prompt_ids(messages[:1]) == list(prompt["input_ids"])
        said = tok.tokenizer.decode([i for i, keep in zip(ids, learnt) if keep], skip_special_tokens=False)
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        assert said.replace(" ", "") == "".join(a + tok.eos_token for a in answers).replace(" ", "")
        assert not learnt[0] and learnt[-1]  # BOS is context, the closing EOS is learnt


def test_greedy_generation_equals_transformers_generate(tokenizer_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = ModelConfig(n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, ffn_dim=128, vocab_size=400, seq_len=64,
                      init_std=0.05)  # wider than the 0.006 init: clear argmaxes, no near-ties
    torch.manual_seed(0)
    model = Transformer(cfg)
    hf_dir = hf_folder(model, tokenizer_dir, tmp_path / "hf")
    loaded_cfg, weights = from_hf(hf_dir)
    assert loaded_cfg == cfg and all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    hf = transformers.LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    tok = chat.load_chat_tokenizer(tokenizer_dir)
    prompt = tok.prompt_ids([{"role": "user", "content": "How do I install a package on Debian?"}])
    ours = generate(model, prompt, 24, eos_id=None)
    want = hf.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False, eos_token_id=None,
                       pad_token_id=0)[0, len(prompt):].tolist()
    assert ours == want and len(set(ours)) > 1


def test_top_p_keeps_the_smallest_set_holding_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    g = torch.Generator().manual_seed(0)
    draws = {next_token(logits, 1.0, 0.7, g) for _ in range(200)}
    assert draws == {0, 1}
    assert next_token(logits, 0.0, 1.0, None) == 0


def test_generate_command_prints_an_answer(tokenizer_dir, tmp_path, capsys):
    from crawl2model.jobs.cli import main

    cfg = ModelConfig(n_layers=1, d_model=32, n_heads=2, n_kv_heads=1, ffn_dim=64, vocab_size=512, seq_len=64)
    torch.manual_seed(0)
    hf_dir = hf_folder(Transformer(dataclasses.replace(cfg)), tokenizer_dir, tmp_path / "hf")
    capsys.readouterr()
    assert main(["generate", "--model", str(hf_dir), "--prompt", "What is Debian?", "--max-new-tokens", "5",
                 "--temperature", "0.8", "--top-p", "0.9"]) == 0
    assert capsys.readouterr().out.strip()
    assert main(["generate", "--model", str(hf_dir), "--prompt", "x", "--top-p", "0"]) == 2
    assert main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "x"]) == 2
