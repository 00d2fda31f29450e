"""A template's fragments as a jinja chat template: what goes into an exported model (GGUF `tokenizer.chat_template`).

The jinja renders exactly what `Template.render_prompt` + `render_response` render, so the ids a chat runtime
feeds the model are the ids training saw (checked in tests against `apply_chat_template` on the exported file):

    [system?, user, assistant, ..., user] + add_generation_prompt  ->  render_prompt(system, history, q)
    [system?, user, ..., user, assistant]                           ->  render_prompt(...) + render_response(a)

Only plain jinja is used (string literals, `namespace`, `loop.first/last`, `| trim`), which llama.cpp's own jinja
engine and transformers both render.
"""
from .base import BOS_TOKEN, EOS_TOKEN, TemplateSpec

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"


def _expr(text: str) -> str:
    """A fragment as a jinja expression: string literals joined with the bos_token / eos_token variables."""
    parts = []
    rest = text
    while rest:
        cuts = [(rest.find(mark), mark) for mark in (BOS_TOKEN, EOS_TOKEN) if mark in rest]
        if not cuts:
            parts.append(_string(rest))
            break
        pos, mark = min(cuts)
        if pos:
            parts.append(_string(rest[:pos]))
        parts.append("bos_token" if mark == BOS_TOKEN else "eos_token")
        rest = rest[pos + len(mark):]
    return " + ".join(parts) if parts else "''"


def _out(text: str) -> str:
    return "{{ " + _expr(text) + " }}" if text else ""


def to_jinja(spec: TemplateSpec) -> str:
    """The jinja chat template of `spec`."""
    content = "message['content'] | trim" if spec.strip_content else "message['content']"
    system = "ns.system | trim" if spec.strip_content and not spec.keep_system_whitespace else "ns.system"
    history_prefix = spec.assistant_prefix if spec.history_assistant_prefix is None else spec.history_assistant_prefix
    system_block = _out(spec.system_prefix) + "{{ " + system + " }}" + _out(spec.system_suffix)
    j = ["{% set ns = namespace(system=" + _string(spec.default_system or "") + ", start=0) %}",
         "{% if messages and messages[0]['role'] == 'system' %}",
         "{% set ns.system = messages[0]['content'] %}{% set ns.start = 1 %}{% endif %}",
         _out(spec.prefix)]
    if not spec.system_in_first_user:
        j.append(system_block if spec.system_always else "{% if ns.system %}" + system_block + "{% endif %}")
    j.append("{% for message in messages[ns.start:] %}")
    j.append("{% if message['role'] == 'user' %}" + _out(spec.user_prefix))
    if spec.system_in_first_user:
        j.append("{% if loop.first and ns.system %}" + system_block + "{% endif %}")
    j.append("{{ " + content + " }}" + _out(spec.user_suffix))
    j.append("{% elif message['role'] == 'assistant' %}")
    j.append("{% if loop.last %}" + _out(spec.assistant_prefix) + "{% else %}" + _out(history_prefix) + "{% endif %}")
    j.append(_out(spec.response_prefix) + "{{ " + content + " }}" + _out(spec.assistant_suffix))
    if spec.final_suffix:  # after the last answer only (Phi-3's EOS)
        j.append("{% if loop.last %}" + _out(spec.final_suffix) + "{% endif %}")
    j.append("{% endif %}{% endfor %}")
    j.append("{% if add_generation_prompt %}" + _out(spec.assistant_prefix) + "{% endif %}")
    return "".join(j)


def runtime_jinja(template, tokenizer) -> str:
    """The chat template a runtime (llama.cpp, Ollama, transformers) should carry to format prompts as training did:
    the model's own jinja for `--template auto` (training rendered with exactly that), else one made from the
    built-in template's fragments."""
    if template.spec.name == "auto":
        return tokenizer.chat_template
    return to_jinja(template.spec)


__all__ = ["runtime_jinja", "to_jinja"]
