"""A chat template as a handful of string fragments, and the encoder that follows from them.

A conversation renders as::

    prefix
    system_prefix + system + system_suffix                      (when there is a system prompt)
    user_prefix + user + user_suffix
        + history_assistant_prefix + answer + assistant_suffix   (each earlier turn)
    user_prefix + query + user_suffix + assistant_prefix        (= render_prompt: what the model sees)
    response_prefix + response + assistant_suffix               (= render_response: what is trained)

Fragments may contain ``{{bos_token}}`` / ``{{eos_token}}``; they are replaced by the tokenizer's own
BOS/EOS text when encoding (like the variables of a jinja chat template). Text is always tokenized with
``add_special_tokens=False``, so a BOS token comes only from the template text: a doubled BOS is impossible.
The token ids therefore equal ``tokenizer.apply_chat_template(messages, tokenize=True)`` for the same
conversation, since transformers renders the jinja text and tokenizes it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from prefswift.errors import ArgumentError

BOS_TOKEN = "{{bos_token}}"
EOS_TOKEN = "{{eos_token}}"

History = Sequence[Tuple[str, str]]


@dataclass(frozen=True)
class TemplateSpec:
    """Declarative description of a chat format. See the module docstring for how fragments combine."""

    name: str
    prefix: str = ""
    system_prefix: str = ""
    system_suffix: str = ""
    user_prefix: str = ""
    user_suffix: str = ""
    assistant_prefix: str = ""
    assistant_suffix: str = ""
    default_system: Optional[str] = None
    stop_words: Tuple[str, ...] = ()
    supports_system: bool = True
    # Earlier assistant turns open with this instead of assistant_prefix (None: same as assistant_prefix).
    # Qwen3's non-thinking format needs it: only the final turn carries the empty <think></think> block.
    history_assistant_prefix: Optional[str] = None
    # Text before every answer that belongs to the answer's tokens (Mistral's ' ' after [/INST]).
    response_prefix: str = ""
    # The system prompt goes inside the first user turn, after user_prefix (Mistral): no system block.
    system_in_first_user: bool = False
    # Strip whitespace around every message, as a jinja `| trim` does (Llama 3).
    strip_content: bool = False
    # The system block is rendered even with no system prompt (Llama 3.1's date header).
    system_always: bool = False
    # The system prompt keeps its whitespace even when strip_content trims the messages (Gemma 3).
    keep_system_whitespace: bool = False
    # Text after the last answer only, not after earlier ones (Phi-3 ends a finished conversation with EOS).
    final_suffix: str = ""
    # The official jinja renders a finished answer unlike the generated one (DeepSeek-R1 drops the '<think>' its
    # generation prompt opens): a model's own template is recognised as this one by its prompts alone.
    match_prompts_only: bool = False
    # Checked token for token against this official jinja file (tests/fixtures/chat_templates/); () = not checked.
    official: Tuple[str, ...] = ()
    aliases: Tuple[str, ...] = ()
    description: str = ""


def fill_special_tokens(tokenizer: Any, text: str) -> str:
    """Replace ``{{bos_token}}`` / ``{{eos_token}}`` in a fragment by the tokenizer's own tokens."""
    if BOS_TOKEN not in text and EOS_TOKEN not in text:
        return text
    if tokenizer is None:
        return text
    bos = getattr(tokenizer, "bos_token", None) or ""
    eos = getattr(tokenizer, "eos_token", None)
    if EOS_TOKEN in text and not eos:
        raise ArgumentError(
            "the chat template ends turns with the tokenizer's eos_token but this tokenizer has none — "
            "set eos_token in tokenizer_config.json or pick another --template"
        )
    return text.replace(BOS_TOKEN, str(bos)).replace(EOS_TOKEN, str(eos or ""))


def _check_text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ArgumentError(f"{what} must be text, got {type(value).__name__}: {value!r}")
    return value


class Template:
    """Renders and encodes conversations for one TemplateSpec. Knows nothing about training."""

    def __init__(self, spec: TemplateSpec):
        self.spec = spec
        self.name = spec.name
        self.stop_words: List[str] = list(spec.stop_words)

    def __repr__(self) -> str:
        return f"Template({self.name!r})"

    def control_tokens(self, markers: bool = False) -> List[str]:
        """The template's control tokens (`<|im_start|>`, `<|eot_id|>`, ...) in order of appearance; `markers` adds
        its bracket and tag markers (Mistral's `[INST]`, `[/INST]`, `<s>`, `</s>`), which are plain text to some
        tokenizers but still the chat format, never content."""
        import re

        s = self.spec
        text = " ".join(str(v) for v in (s.prefix, s.system_prefix, s.system_suffix, s.user_prefix, s.user_suffix,
                                          s.assistant_prefix, s.assistant_suffix, s.response_prefix, s.final_suffix,
                                          s.history_assistant_prefix or "", *s.stop_words))
        pattern = r"<\|[^|<>\s]+\|>" + (r"|\[/?INST\]|</?s>" if markers else "")
        return list(dict.fromkeys(re.findall(pattern, text)))

    def missing_special_tokens(self, tokenizer) -> List[str]:
        """The template's control tokens that this tokenizer does not have as single tokens: with them the model sees
        its chat format spelled out as ordinary text. (Mistral's `[INST]` is plain text in its own tokenizer, so only
        `<|...|>` tokens are checked.)"""
        return [tok for tok in self.control_tokens()
                if len(tokenizer(tok, add_special_tokens=False)["input_ids"]) != 1]

    # ---- text -------------------------------------------------------------------------------
    def _content(self, text: str) -> str:
        return text.strip() if self.spec.strip_content else text

    def _system_content(self, text: str) -> str:
        return text if self.spec.keep_system_whitespace else self._content(text)

    def resolve_system(self, system: Optional[str]) -> str:
        """None -> the template's default system prompt (or none); "" -> explicitly no system prompt."""
        if system is None:
            return self.spec.default_system or ""
        _check_text(system, "system")
        if system and not self.spec.supports_system:
            raise ArgumentError(
                f"template '{self.name}' has no system prompt — drop the system text or pick a template "
                "that supports one (--template)"
            )
        return system

    def render_prompt(self, system: Optional[str], history: Optional[History], query: str) -> str:
        """Everything up to and including the assistant generation prefix."""
        s = self.spec
        sys_text = self.resolve_system(system)
        parts = [s.prefix]
        if (sys_text or s.system_always) and not s.system_in_first_user:
            parts.append(s.system_prefix + self._system_content(sys_text) + s.system_suffix)
        pending_system = sys_text if s.system_in_first_user else ""
        history_prefix = s.assistant_prefix if s.history_assistant_prefix is None else s.history_assistant_prefix
        for i, turn in enumerate(history or []):
            if len(turn) != 2:
                raise ArgumentError(f"history turn {i} must be a (user, assistant) pair, got {turn!r}")
            user, answer = (_check_text(turn[0], f"history[{i}] user"), _check_text(turn[1], f"history[{i}] assistant"))
            parts.append(self._user_turn(user, pending_system))
            pending_system = ""
            parts.append(history_prefix + s.response_prefix + self._content(answer) + s.assistant_suffix)
        parts.append(self._user_turn(_check_text(query, "query"), pending_system))
        parts.append(s.assistant_prefix)
        return "".join(parts)

    def _user_turn(self, user: str, system_inside: str) -> str:
        s = self.spec
        head = s.user_prefix
        if system_inside:
            head += s.system_prefix + self._system_content(system_inside) + s.system_suffix
        return head + self._content(user) + s.user_suffix

    def render_response(self, response: str) -> str:
        """The answer plus the end-of-turn suffix: exactly the part that is trained."""
        s = self.spec
        answer = self._content(_check_text(response, "response"))
        return s.response_prefix + answer + s.assistant_suffix + s.final_suffix

    # ---- token ids --------------------------------------------------------------------------
    def _encode(self, tokenizer: Any, text: str) -> List[int]:
        text = fill_special_tokens(tokenizer, text)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_prompt(self, tokenizer: Any, system: Optional[str], history: Optional[History], query: str) -> List[int]:
        return self._encode(tokenizer, self.render_prompt(system, history, query))

    def encode_response(self, tokenizer: Any, response: str) -> List[int]:
        return self._encode(tokenizer, self.render_response(response))

    def encode_pair(self, tokenizer: Any, prompt_text: str, prompt_ids: List[int], response: str) -> List[int]:
        """Response ids as they come out of tokenizing prompt+response in one piece (what
        apply_chat_template does), falling back to tokenizing the response alone when the joint
        tokenization merges tokens across the boundary."""
        response_text = self.render_response(response)
        full = self._encode(tokenizer, prompt_text + response_text)
        n = len(prompt_ids)
        if full[:n] == prompt_ids and len(full) > n:
            return full[n:]
        return self._encode(tokenizer, response_text)

    def encode_example(self, tokenizer: Any, ex: Any) -> dict:
        """{"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"}; responses exclude the prompt."""
        prompt_text = self.render_prompt(ex.system, ex.history, ex.prompt)
        prompt_ids = self._encode(tokenizer, prompt_text)
        return {
            "prompt_input_ids": prompt_ids,
            "chosen_input_ids": self.encode_pair(tokenizer, prompt_text, prompt_ids, ex.chosen),
            "rejected_input_ids": self.encode_pair(tokenizer, prompt_text, prompt_ids, ex.rejected),
        }

    # ---- helpers for callers ------------------------------------------------------------------
    def to_messages(self, system: Optional[str], history: Optional[History], query: str,
                    response: Optional[str] = None) -> List[dict]:
        """The same conversation as a list of role/content messages (system resolved like render_prompt)."""
        messages = []
        sys_text = self.resolve_system(system)
        if sys_text:
            messages.append({"role": "system", "content": sys_text})
        for user, answer in history or []:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": query})
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        return messages
