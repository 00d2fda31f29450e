"""Does a chat template (jinja, as a runtime renders it) give the token ids training gave? The check behind
`prefswift export` and the start of `prefswift deploy`: a model served with another template answers garbage.

    from prefswift.templates.check import check_template, check_gguf_template
    problem = check_template(tokenizer.chat_template, tokenizer, get_template("llama3"))
    problem = check_gguf_template("out/model-q8_0.gguf")   # the template and tokenizer the file itself carries
    if problem: print(problem)                               # one line naming the first conversation that differs

Each probe conversation is rendered by transformers' `apply_chat_template` (its jinja engine) and tokenized without
added special tokens, then compared with `Template.encode_prompt` (the generation prompt: the ids training saw) and
with training's rendering of the whole conversation with its answer, tokenized in one piece. (Training tokenizes an
answer apart from its prompt when the two would merge tokens across the boundary; a runtime never tokenizes the
answer it generates, so only the one-piece form is a runtime's.)
"""
from typing import List, Optional, Sequence, Tuple

from .base import Template, fill_special_tokens

# (system or None, history, query, answer): plain, with a system prompt, multi-turn, non-ASCII
PROBES: Tuple[Tuple[Optional[str], Sequence[Tuple[str, str]], str, str], ...] = (
    (None, (), "What is 2 + 3?", "Sure! 2 + 3 = 5."),
    ("You are a terse assistant.", (), "Name a colour.", "Great! Blue."),
    ("Answer briefly.", (("Hi there.", "Hello! How can I help?"),), "Count to three.", "1, 2, 3."),
    (None, (("你好", "你好！"),), "Spell 'cat'.", "C-A-T."),
)


def _ids(tokenizer, chat_template: str, messages: List[dict], generation: bool) -> List[int]:
    text = tokenizer.apply_chat_template(messages, chat_template=chat_template, tokenize=False,
                                         add_generation_prompt=generation)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _first_difference(a: List[int], b: List[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check_template(chat_template: Optional[str], tokenizer, template: Template,
                   probes=PROBES) -> Optional[str]:
    """None when `chat_template` reproduces `template`'s training ids on every probe; else one line saying where
    the first one differs (which conversation, which token position, what each gives)."""
    if not chat_template:
        return f"no chat template: the runtime will not format prompts as training did (template {template.name})"
    for n, (system, history, query, answer) in enumerate(probes):
        if system and not template.spec.supports_system:
            continue
        prompt_text = template.render_prompt(system, history, query)
        want_prompt = template.encode_prompt(tokenizer, system, history, query)
        full_text = fill_special_tokens(tokenizer, prompt_text + template.render_response(answer))
        want_full = list(tokenizer(full_text, add_special_tokens=False)["input_ids"])
        prompt_messages = template.to_messages(system, history, query)
        full_messages = template.to_messages(system, history, query, answer)
        try:
            got_prompt = _ids(tokenizer, chat_template, prompt_messages, True)
            got_full = _ids(tokenizer, chat_template, full_messages, False)
        except Exception as e:  # noqa: BLE001 - a broken jinja template is the finding itself
            return f"the chat template does not render ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        for what, got, want in (("generation prompt", got_prompt, want_prompt), ("conversation", got_full, want_full)):
            if got != want:
                i = _first_difference(got, want)
                return (f"chat template differs from training's (template {template.name}) on probe {n + 1} "
                        f"{what} at token {i}: runtime {tokenizer.decode(got[i:i + 4])!r} vs training "
                        f"{tokenizer.decode(want[i:i + 4])!r}")
    return None


def gguf_metadata(path, *keys: str) -> dict:
    """String metadata of a GGUF file (missing keys left out)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    out = {}
    for key in keys:
        field = reader.get_field(key)
        if field is not None:
            out[key] = field.contents()
    return out


def check_gguf_template(path, template: Optional[Template] = None) -> Optional[str]:
    """`check_template` on a GGUF file: its own tokenizer (as transformers rebuilds it from the file) and its
    `tokenizer.chat_template`, against `template` (default: the one prefswift recorded in the file)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from .registry import get_template

    path = Path(path)
    meta = gguf_metadata(path, "tokenizer.chat_template", "prefswift.template")
    if template is None:
        if "prefswift.template" not in meta:
            return f"{path}: no prefswift.template in its metadata; pass the training template to check against"
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if template is None:
        template = get_template(meta["prefswift.template"], tokenizer, str(path))
    problem = check_template(meta.get("tokenizer.chat_template"), tokenizer, template)
    return f"{path}: {problem}" if problem else None


__all__ = ["check_template", "check_gguf_template", "gguf_metadata", "PROBES"]
