"""Which template a model directory's own chat template is: a built-in only when it renders the same text.

A built-in is picked for a jinja chat template when both render the same text for a few probe conversations (with
and without a system prompt, with history, with the generation prompt); otherwise the answer is `auto` — the jinja
itself (templates.auto). A guess by marker strings (`<|im_start|>` ⇒ ChatML) would train Llama 3.1 with Llama 3's
format, or Qwen2.5 without its default system prompt; comparing renderings cannot.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

from prefswift.templates.auto import AUTO

_PROBES = [
    # (system, history, query, response)
    (None, [], "What is the capital of France?", "Paris."),
    ("You are terse.", [("Hi there", "Hello! How can I help?")], "Count to three.", "one, two, three"),
]


def read_chat_template(path: Path) -> Optional[str]:
    """The chat template a model directory ships (tokenizer_config.json or chat_template.jinja), or None."""
    text = _tokenizer_config(path).get("chat_template")
    if isinstance(text, list):  # [{"name": "default", "template": ...}, ...]
        text = next((t.get("template") for t in text if isinstance(t, dict) and t.get("name") == "default"), None)
    if not (isinstance(text, str) and text.strip()) and (path / "chat_template.jinja").is_file():
        text = (path / "chat_template.jinja").read_text(encoding="utf-8")  # where transformers >= 4.50 saves it
    return text if isinstance(text, str) and text.strip() else None


def _tokenizer_config(path: Path) -> dict:
    try:
        return json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _token(value) -> str:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _messages(system, history, query, response=None, fold: bool = False) -> List[dict]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    for user, answer in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": query})
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    if fold and system is not None:
        messages = messages[1:]
        messages[0] = {"role": "user", "content": f"{system}\n\n{messages[0]['content']}"}
    return messages


def _render(chat_template: str, messages: List[dict], generation_prompt: bool, bos: str, eos: str) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=chat_template,
                                        add_generation_prompt=generation_prompt, bos_token=bos, eos_token=eos)
    return rendered[0]


def _official_renderings(chat_template: str, bos: str, eos: str) -> Optional[List[tuple]]:
    """[(prompt text, full text)] of each probe as the jinja renders it (system folded into the first user turn
    where the template refuses a system role, as `auto` does), or None when it cannot render them."""
    from jinja2.exceptions import TemplateError

    out = []
    for system, history, query, response in _PROBES:
        for fold in (False, True):
            try:
                prompt = _render(chat_template, _messages(system, history, query, fold=fold), True, bos, eos)
                full = _render(chat_template, _messages(system, history, query, response, fold=fold), False, bos,
                               eos)
                break
            except TemplateError:
                if fold or system is None:
                    return None
            except Exception:  # noqa: BLE001 - a template this jinja cannot run: not a built-in's
                return None
        out.append((prompt, full))
    return out


def matching_builtin(chat_template: str, bos_token: str = "", eos_token: str = "") -> Optional[str]:
    """The first built-in template (registry order) that renders every probe like `chat_template`, or None."""
    from prefswift.templates.base import fill_special_tokens
    from prefswift.templates.registry import BUILTIN_TEMPLATES, Template

    official = _official_renderings(chat_template, bos_token, eos_token)
    if official is None:
        return None

    tokens = SimpleNamespace(bos_token=bos_token, eos_token=eos_token)  # what fill_special_tokens reads
    for spec in BUILTIN_TEMPLATES:
        template = Template(spec)
        try:
            ours = []
            for system, history, query, response in _PROBES:
                prompt = fill_special_tokens(tokens, template.render_prompt(system, history, query))
                ours.append((prompt, prompt + fill_special_tokens(tokens, template.render_response(response))))
        except Exception:  # noqa: BLE001 - e.g. a template without system prompts
            continue
        if ours == official or spec.match_prompts_only and [p for p, _ in ours] == [p for p, _ in official]:
            return spec.name
    return None


def detect_template(path: Path) -> Optional[str]:
    """A built-in template name when the directory's chat template renders like one, `auto` when it has a chat
    template no built-in matches, None when it has none."""
    chat_template = read_chat_template(path)
    if chat_template is None:
        return None
    config = _tokenizer_config(path)
    found = matching_builtin(chat_template, _token(config.get("bos_token")), _token(config.get("eos_token")))
    return found or AUTO
