"""Built-in chat templates and the registry users and plugins add to.

Each built-in is checked in tests/test_templates.py against the model's own jinja chat template
(tests/fixtures/chat_templates/*.jinja) rendered by transformers.
"""
from __future__ import annotations

from typing import Dict, List

from prefswift.errors import ArgumentError, did_you_mean
from prefswift.templates.base import BOS_TOKEN, EOS_TOKEN, Template, TemplateSpec
from prefswift.templates.auto import AUTO, JinjaTemplate

_REGISTRY: Dict[str, TemplateSpec] = {}
_ALIASES: Dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(".", "_")


def register_template(spec: TemplateSpec, exist_ok: bool = False) -> TemplateSpec:
    """Add a template. Registering the identical spec twice is a no-op; a different spec under a
    taken name is an error unless exist_ok=True (then it replaces the old one)."""
    key = _key(spec.name)
    if key == AUTO:
        raise ArgumentError("'auto' is the model's own chat template: register your template under another name")
    old = _REGISTRY.get(key)
    if old is not None and old != spec and not exist_ok:
        raise ArgumentError(
            f"template '{spec.name}' is already registered — choose another name or pass exist_ok=True to replace it"
        )
    _REGISTRY[key] = spec
    for alias in spec.aliases:
        _ALIASES[_key(alias)] = key
    return spec


def get_template(name: str, tokenizer=None, model_name: str = "this model") -> Template:
    """The template `name`; `auto` is the tokenizer's own jinja chat template (templates.auto), so it needs
    `tokenizer`."""
    if _key(name) == AUTO:
        if tokenizer is None:
            raise ArgumentError("--template auto renders with the model's own chat template: load its tokenizer first")
        return JinjaTemplate(tokenizer, model_name)
    key = _key(name)
    key = key if key in _REGISTRY else _ALIASES.get(key, key)
    spec = _REGISTRY.get(key)
    if spec is None:
        known = sorted(_REGISTRY) + sorted(_ALIASES)
        hint = did_you_mean(key, known, show=lambda k: repr(_ALIASES.get(k, k)))
        raise ArgumentError(f"unknown template '{name}'{hint} — known templates: {', '.join(sorted(_REGISTRY))}, "
                            "or auto (the model's own chat template)")
    return Template(spec)


def list_templates() -> List[TemplateSpec]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------
_IM_START, _IM_END = "<|im_start|>", "<|im_end|>"


def _chatml(name: str, default_system=None, assistant_prefix=None, history_assistant_prefix=None,
            stop_words=(_IM_END,), **extra) -> TemplateSpec:
    return TemplateSpec(
        name=name,
        system_prefix=f"{_IM_START}system\n",
        system_suffix=f"{_IM_END}\n",
        user_prefix=f"{_IM_START}user\n",
        user_suffix=f"{_IM_END}\n",
        assistant_prefix=assistant_prefix or f"{_IM_START}assistant\n",
        assistant_suffix=f"{_IM_END}\n",
        history_assistant_prefix=history_assistant_prefix,
        default_system=default_system,
        stop_words=tuple(stop_words),
        **extra,
    )


BUILTIN_TEMPLATES = [
    _chatml("chatml", description="ChatML (<|im_start|>/<|im_end|>) without a default system prompt."),
    _chatml(
        "qwen",
        default_system="You are a helpful assistant.",
        stop_words=(_IM_END, "<|endoftext|>"),
        aliases=("qwen2", "qwen1_5"),
        official=("qwen2_7b_instruct.jinja",),
        description="Qwen1.5 / Qwen2 chat: ChatML with default system 'You are a helpful assistant.'",
    ),
    _chatml(
        "qwen2_5",
        default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
        stop_words=(_IM_END, "<|endoftext|>"),
        official=("qwen2_5_7b_instruct.jinja",),
        description="Qwen2.5 chat: ChatML with Qwen2.5's default system prompt.",
    ),
    _chatml(
        "qwen3",
        # Qwen3-8B's jinja (tests/fixtures/chat_templates/qwen3_8b.jinja) renders assistant turns after the
        # last user message as '<|im_start|>assistant\n<think>\n' + reasoning + '\n</think>\n\n' + answer, and
        # earlier ones as '<|im_start|>assistant\n' + answer (reasoning dropped). With no reasoning that is an
        # empty think block on the final turn only, and it equals the enable_thinking=False generation prompt.
        # Not reproduced: splitting '<think>...</think>' out of a message's text, reasoning_content, tools,
        # and the lstrip('\n') of the final answer.
        assistant_prefix=f"{_IM_START}assistant\n<think>\n\n</think>\n\n",
        history_assistant_prefix=f"{_IM_START}assistant\n",
        stop_words=(_IM_END, "<|endoftext|>"),
        official=("qwen3_8b.jinja",),
        description="Qwen3 in non-thinking mode (enable_thinking=False): ChatML, empty <think></think> "
                    "block before the answer of the last turn, none in earlier turns; no default system.",
    ),
    TemplateSpec(
        name="llama3",
        prefix="<|begin_of_text|>",
        system_prefix="<|start_header_id|>system<|end_header_id|>\n\n",
        system_suffix="<|eot_id|>",
        user_prefix="<|start_header_id|>user<|end_header_id|>\n\n",
        user_suffix="<|eot_id|>",
        assistant_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant_suffix="<|eot_id|>",
        stop_words=("<|eot_id|>", "<|end_of_text|>"),
        strip_content=True,
        aliases=("llama_3", "llama3_instruct"),
        official=("llama3_8b_instruct.jinja",),
        description="Llama 3 Instruct: <|begin_of_text|>, header ids, <|eot_id|>; contents trimmed like its jinja.",
    ),
    _chatml(
        "yi",
        stop_words=(_IM_END, "<|endoftext|>"),
        aliases=("yi_chat",),
        official=("yi_6b_chat.jinja",),
        description="Yi chat (Yi-6B/34B-Chat): ChatML, no default system prompt.",
    ),
    TemplateSpec(
        name="mistral",
        prefix="<s>",
        user_prefix=" [INST] ",
        user_suffix=" [/INST]",
        system_suffix="\n\n",
        system_in_first_user=True,
        response_prefix=" ",
        assistant_suffix="</s>",
        stop_words=("</s>",),
        aliases=("mistral_instruct",),
        official=("mistral_7b_instruct_v0_2.jinja",),
        description="Mistral-7B-Instruct v0.1/v0.2: <s> [INST] ... [/INST] answer</s>; the system prompt "
                    "is put before the first user message.",
    ),
    TemplateSpec(
        name="llama3_1",
        prefix="<|begin_of_text|>",
        # The official template always renders this header, with date_string's default when none is passed.
        system_prefix="<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                      "Today Date: 26 Jul 2024\n\n",
        system_suffix="<|eot_id|>",
        system_always=True,
        user_prefix="<|start_header_id|>user<|end_header_id|>\n\n",
        user_suffix="<|eot_id|>",
        assistant_prefix="<|start_header_id|>assistant<|end_header_id|>\n\n",
        assistant_suffix="<|eot_id|>",
        stop_words=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
        strip_content=True,
        aliases=("llama3_3", "llama3.1", "llama3.3"),
        official=("llama3_1_8b_instruct.jinja",),
        description="Llama 3.1 / 3.3 Instruct: Llama 3 plus the system header with the knowledge-cutoff date, "
                    "always rendered (no tools).",
    ),
    TemplateSpec(
        name="gemma",
        prefix="<bos>",
        system_suffix="\n\n",
        system_in_first_user=True,
        keep_system_whitespace=True,
        user_prefix="<start_of_turn>user\n",
        user_suffix="<end_of_turn>\n",
        assistant_prefix="<start_of_turn>model\n",
        assistant_suffix="<end_of_turn>\n",
        stop_words=("<end_of_turn>", "<eos>"),
        strip_content=True,
        aliases=("gemma2", "gemma3", "gemma_it"),
        official=("gemma2_it.jinja", "gemma3_it.jinja"),
        description="Gemma 2 / 3 it: <start_of_turn>user/model ... <end_of_turn>; the system prompt opens the first "
                    "user turn followed by a blank line (Gemma 3's template; Gemma 2's refuses a system role).",
    ),
    TemplateSpec(
        name="phi3",
        system_prefix="<|system|>\n",
        system_suffix="<|end|>\n",
        user_prefix="<|user|>\n",
        user_suffix="<|end|>\n",
        assistant_prefix="<|assistant|>\n",
        assistant_suffix="<|end|>\n",
        final_suffix=EOS_TOKEN,
        stop_words=("<|end|>", "<|endoftext|>"),
        aliases=("phi3_5", "phi_3"),
        official=("phi3_mini_instruct.jinja", "phi3_5_mini_instruct.jinja"),
        description="Phi-3 / Phi-3.5 instruct: <|user|>/<|assistant|> ... <|end|>, the tokenizer's EOS after the "
                    "last answer.",
    ),
    TemplateSpec(
        name="deepseek_r1",
        prefix=BOS_TOKEN,
        user_prefix="<｜User｜>",
        # the generation prompt opens the reasoning block; earlier answers render without it (the official template
        # drops reasoning from history), so the trained response is reasoning + '</think>' + answer + EOS
        assistant_prefix="<｜Assistant｜><think>\n",
        history_assistant_prefix="<｜Assistant｜>",
        assistant_suffix="<｜end▁of▁sentence｜>",
        stop_words=("<｜end▁of▁sentence｜>",),
        aliases=("deepseek_r1_distill",),
        match_prompts_only=True,
        official=("deepseek_r1_distill.jinja",),
        description="DeepSeek-R1-Distill: BOS, system text, <｜User｜>...<｜Assistant｜><think>\\n; the "
                    "prompt and history equal the official template, the response continues the opened <think>.",
    ),
    TemplateSpec(
        name="default",
        prefix=BOS_TOKEN,
        system_prefix="System: ",
        system_suffix="\n\n",
        user_prefix="User: ",
        user_suffix="\n\n",
        assistant_prefix="Assistant: ",
        assistant_suffix=EOS_TOKEN,
        stop_words=("\nUser:",),
        aliases=("base",),
        description="For base models: plain 'System:/User:/Assistant:' text, the tokenizer's BOS first "
                    "(if it has one) and its EOS ending each answer.",
    ),
]

for _spec in BUILTIN_TEMPLATES:
    register_template(_spec)
