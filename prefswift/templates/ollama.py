"""A template's fragments as an Ollama Modelfile: `TEMPLATE` (a Go text/template), `SYSTEM`, `PARAMETER stop`.

Ollama renders TEMPLATE with `.System` (the system text) and `.Messages` (every message, system ones included,
each with `.Role` and `.Content`), then tokenizes the text with llama.cpp, which parses special tokens and puts
BOS in front when the GGUF says `add_bos_token`. So the template leaves out a leading BOS that llama.cpp adds
itself (the GGUF's add_bos_token says whether training's prompts open with BOS). What it renders for
[system?, user, assistant, ..., user] is `Template.render_prompt` token for token (tested by rendering the Go
template with a small independent renderer and comparing ids with training's).

Not expressible in Go templates without functions Ollama lacks: the `| trim` of templates with `strip_content`
(Llama 3); a message with leading or trailing blanks renders them where training stripped them.
A final assistant message is a prefill Ollama continues, so it gets no end-of-turn suffix.
"""
import json
from typing import List

from .base import Template, fill_special_tokens


def _go_text(text: str) -> str:
    """Literal text for a Go template: `{{` would open an action, so it is written as an action printing it."""
    return text.replace("{{", "{{ \"{{\" }}")


def starts_with_bos(template: Template, tokenizer) -> bool:
    """Whether training's prompts open with the BOS token (from the template's text: training never lets the tokenizer
    add one). Written as the GGUF's `add_bos_token`, so llama.cpp puts BOS in front exactly when training did."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and fill_special_tokens(tokenizer, template.spec.prefix).startswith(bos)


def go_template(template: Template, tokenizer, drop_bos: bool) -> str:
    s = template.spec
    frag = {name: _go_text(fill_special_tokens(tokenizer, getattr(s, name) or ""))
            for name in ("prefix", "system_prefix", "system_suffix", "user_prefix", "user_suffix",
                         "assistant_prefix", "assistant_suffix", "response_prefix")}
    history = s.assistant_prefix if s.history_assistant_prefix is None else s.history_assistant_prefix
    frag["history_prefix"] = _go_text(fill_special_tokens(tokenizer, history))
    bos = getattr(tokenizer, "bos_token", None)
    if drop_bos and bos and frag["prefix"].startswith(bos):
        frag["prefix"] = frag["prefix"][len(bos):]
    system = frag["system_prefix"] + "{{ $.System }}" + frag["system_suffix"]
    out = [frag["prefix"]]
    if not s.system_in_first_user:
        out.append(system if s.system_always else "{{ if .System }}" + system + "{{ end }}")
    out.append("{{ range $i, $_ := .Messages }}")
    out.append("{{ $last := eq (len (slice $.Messages $i)) 1 }}")
    out.append("{{ if eq .Role \"user\" }}" + frag["user_prefix"])
    if s.system_in_first_user:  # Ollama puts the system text in .Messages too: the first user turn is index 1
        out.append("{{ if and $.System (eq $i 1) }}" + system + "{{ end }}")
    out.append("{{ .Content }}" + frag["user_suffix"] + "{{ if $last }}" + frag["assistant_prefix"] + "{{ end }}")
    out.append("{{ else if eq .Role \"assistant\" }}{{ if $last }}" + frag["assistant_prefix"] + "{{ else }}"
               + frag["history_prefix"] + "{{ end }}" + frag["response_prefix"] + "{{ .Content }}"
               + "{{ if not $last }}" + frag["assistant_suffix"] + "{{ end }}")
    out.append("{{ end }}{{ end }}")
    return "".join(out)


def stop_words(template: Template, tokenizer) -> List[str]:
    words = [fill_special_tokens(tokenizer, w) for w in template.stop_words]
    if tokenizer.eos_token:
        words.append(tokenizer.eos_token)
    return [w for w in dict.fromkeys(words) if w]


def _quoted(text: str) -> str:
    """A Modelfile value in triple quotes (Ollama reads it verbatim up to the closing triple quote)."""
    if '"""' in text:
        raise ValueError('a Modelfile value cannot contain """')
    return '"""' + text + '"""'


def modelfile(gguf_name: str, template: Template, tokenizer) -> str:
    """The Modelfile for a GGUF whose add_bos_token is `starts_with_bos(template, tokenizer)`."""
    drop_bos = starts_with_bos(template, tokenizer)
    lines = [f"FROM ./{gguf_name}", "TEMPLATE " + _quoted(go_template(template, tokenizer, drop_bos=drop_bos))]
    system = template.spec.default_system
    if system:
        lines.append("SYSTEM " + _quoted(system))
    for word in stop_words(template, tokenizer):
        lines.append("PARAMETER stop " + json.dumps(word, ensure_ascii=False))
    return "\n".join(lines) + "\n"


__all__ = ["go_template", "modelfile", "stop_words", "starts_with_bos"]
