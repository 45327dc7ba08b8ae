"""Chat data: the messages format, the chat template, and which tokens an assistant said.

    {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}   one JSONL line

A conversation becomes token ids the way transformers' `apply_chat_template`
makes them: the template (Jinja, stored as `chat_template` in the tokenizer
folder's tokenizer_config.json) renders the whole conversation to one string,
which is tokenized as a whole. The default is DeepSeek LLM Chat's:

    <bos>User: {user}\\n\\nAssistant: {assistant}<eos>User: ...\\n\\nAssistant:

Training learns only what the assistant says: assistant message i spans the
characters from the end of `render(messages[:i], add_generation_prompt=True)`
to the end of `render(messages[:i+1])` (its text and the EOS that ends it), and
a token is learnt when its characters overlap such a span. That needs a
template whose renders of a conversation's prefixes are prefixes of each
other, which every common template is; one that is not is refused.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from crawl2model.core.errors import ConfigError, InputError

DEEPSEEK_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% elif message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% else %}{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
ROLES = ("system", "user", "assistant")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

Messages = list[dict[str, str]]


@cache
def _compile(template: str):
    """The template compiled as transformers compiles it (sandboxed; trim_blocks, lstrip_blocks)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise ConfigError(f"chat template does not parse: {e}") from None


@dataclass
class ChatTokenizer:
    """A `tokenizers.Tokenizer` with its chat template and special tokens."""

    tokenizer: Any
    template: str
    bos_token: str
    eos_token: str

    @property
    def eos_id(self) -> int:
        return self.tokenizer.token_to_id(self.eos_token)

    def render(self, messages: Messages, add_generation_prompt: bool = False) -> str:
        return _compile(self.template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                              bos_token=self.bos_token, eos_token=self.eos_token)

    def encode(self, text: str) -> Any:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def prompt_ids(self, messages: Messages) -> list[int]:
        """The ids a model continues to answer: the conversation so far plus the assistant's cue."""
        return self.encode(self.render(messages, add_generation_prompt=True)).ids

    def encode_chat(self, messages: Messages, last_only: bool = False) -> tuple[list[int], list[bool]]:
        """(ids, learnt): the conversation's ids and, per id, whether an assistant said it
        (with `last_only`, the last message: a preference pair's answer)."""
        text = self.render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant" or (last_only and i != len(messages) - 1):
                continue
            before, upto = self.render(messages[:i], add_generation_prompt=True), self.render(messages[: i + 1])
            if not (upto.startswith(before) and text.startswith(upto)):
                raise ConfigError("the chat template renders a conversation's start differently from the whole "
                                  "conversation; the assistant's tokens cannot be found")
            spans.append((len(before), len(upto)))
        encoding = self.encode(text)
        learnt = [any(start < e and end > s for s, e in spans) for start, end in encoding.offsets]
        return encoding.ids, learnt


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    if not (folder / "tokenizer.json").is_file():
        raise InputError(f"no tokenizer.json in {folder}")
    return json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))


def folder_template(folder: str | Path) -> str | None:
    """The chat template a tokenizer folder carries (a chat model's), None for a base model's."""
    return _tokenizer_config(Path(folder)).get("chat_template")


def load_chat_tokenizer(folder: str | Path, template: str | None = None) -> ChatTokenizer:
    """The folder's tokenizer with `template`, else the folder's own chat_template, else DeepSeek's."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    config = _tokenizer_config(folder)
    template = template or config.get("chat_template") or DEEPSEEK_TEMPLATE

    def token(key: str) -> str:  # a string, or transformers' serialised AddedToken {"content": ...}
        value = config.get(key) or ""
        return value.get("content", "") if isinstance(value, dict) else value

    if not token("eos_token"):
        raise InputError(f"{folder / 'tokenizer_config.json'}: no eos_token (generation and the template need one)")
    return ChatTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")), template, token("bos_token"),
                         token("eos_token"))


def write_tokenizer_folder(source: str | Path, target: str | Path, template: str) -> Path:
    """Copy a tokenizer folder with `template` as its tokenizer_config.json `chat_template`
    (what transformers' apply_chat_template reads); the source folder is not changed unless
    it is the target."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file() and source.resolve() != target.resolve():
            shutil.copy2(source / name, target / name)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = template
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return target


def _check_messages(messages: Any, where: str) -> Messages:
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: 'messages' must be a non-empty list")
    for m in messages:
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            raise InputError(f"{where}: each message needs a role ({', '.join(ROLES)}) and a string content, "
                             f"got {json.dumps(m)[:80]}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_jsonl(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, object) per non-empty line; a line that is not a JSON object is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"chat data not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object")
            rows.append((where, row))
    if not rows:
        raise InputError(f"{path}: no examples")
    return rows


def read_conversations(path: str | Path) -> list[Messages]:
    """The `messages` of each line of a JSONL file; each needs an assistant message to learn from."""
    out = []
    for where, row in read_jsonl(path):
        messages = _check_messages(row.get("messages"), where)
        if not any(m["role"] == "assistant" for m in messages):
            raise InputError(f"{where}: no assistant message to learn from")
        out.append(messages)
    return out


def read_preferences(path: str | Path) -> list[tuple[Messages, str, str]]:
    """(prompt messages, chosen answer, rejected answer) per line of `{"prompt" | "messages", "chosen", "rejected"}`.

    `prompt` is a string (one user turn) or a message list; `chosen`/`rejected` are
    strings or a one-message assistant list (the conversational form TRL also reads)."""
    out = []
    for where, row in read_jsonl(path):
        prompt = row.get("prompt", row.get("messages"))
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        prompt = _check_messages(prompt, where)
        answers = []
        for key in ("chosen", "rejected"):
            value = row.get(key)
            if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
                value = value[0].get("content") if value[0].get("role") == "assistant" else None
            if not isinstance(value, str):
                raise InputError(f"{where}: '{key}' must be the assistant's answer (a string)")
            answers.append(value)
        out.append((prompt, *answers))
    return out
