"""`--template auto`: the model's own jinja chat template, rendered by transformers' `apply_chat_template`.

A conversation is split into prompt and response the way TRL does it:

    prompt   = apply_chat_template(system + history + [user], add_generation_prompt=True)
    full     = apply_chat_template(system + history + [user, assistant])
    response = full[len(prompt):]            (refused when `full` does not start with `prompt`)

Templates that rewrite earlier turns (dropping reasoning blocks, say) break that identity: such a conversation is
refused in one line naming the model and what to pass instead. A template that raises on a system message (Gemma's
"System role not supported") gets the system prompt folded into the first user turn as `system + "\\n\\n" + user`,
which is what Gemma 3's own template does with a system message. The stop word is read off the rendering: the text
that follows an assistant answer in a rendered conversation (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`, ...).

Token ids: prompt and full text are tokenized with `add_special_tokens=False` (the rendering carries its own BOS),
exactly what `apply_chat_template(tokenize=True)` does, so ids equal transformers' own.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, List, Optional

from prefswift.errors import ArgumentError
from prefswift.templates.base import History, Template, TemplateSpec

AUTO = "auto"
_PROBE_ANSWER = "PREFSWIFT_PROBE_ANSWER"


def chat_template_text(tokenizer: Any) -> Optional[str]:
    """The tokenizer's default chat template text, or None when it has none."""
    text = getattr(tokenizer, "chat_template", None)
    if isinstance(text, dict):  # several named templates: transformers uses "default"
        text = text.get("default")
    return text if isinstance(text, str) and text.strip() else None


class JinjaTemplate(Template):
    """A Template whose text comes from the tokenizer's jinja chat template (see the module docstring)."""

    def __init__(self, tokenizer: Any, model_name: str = "this model"):
        if chat_template_text(tokenizer) is None:
            raise ArgumentError(f"{model_name}: --template auto needs the tokenizer's chat template, and this "
                                "tokenizer has none — pass --template NAME (see `prefswift list templates`)")
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.fold_system = False
        self._conversations: "OrderedDict[str, List[dict]]" = OrderedDict()  # rendered prompt -> its messages
        self.fold_system = self._system_needs_folding()
        end = self._turn_end()
        super().__init__(TemplateSpec(name=AUTO, stop_words=(end,) if end else (),
                                      description="the model's own jinja chat template"))

    def __repr__(self) -> str:
        return f"JinjaTemplate({self.model_name!r})"

    # ---- rendering ----------------------------------------------------------------------------
    def _render(self, messages: List[dict], generation_prompt: bool) -> str:
        from jinja2.exceptions import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=generation_prompt)
        except TemplateError as e:
            raise ArgumentError(f"{self.model_name}: its chat template refuses this conversation ({e}) — pass "
                                "--template NAME (see `prefswift list templates`)") from None

    def _system_needs_folding(self) -> bool:
        """True when the template raises on a system message (and renders the same turn without one)."""
        from jinja2.exceptions import TemplateError

        user = [{"role": "user", "content": "hi"}]
        try:
            self.tokenizer.apply_chat_template([{"role": "system", "content": "S"}] + user, tokenize=False,
                                               add_generation_prompt=True)
            return False
        except TemplateError:
            self._render(user, True)  # the template must work without a system message, else one line
            return True

    def _turn_end(self) -> str:
        """The text that closes an assistant turn in this template's rendering, whitespace trimmed."""
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE_ANSWER}]
        full = self._render(messages, False)
        at = full.rfind(_PROBE_ANSWER)
        return full[at + len(_PROBE_ANSWER):].strip() if at >= 0 else ""

    def messages(self, system: Optional[str], history: Optional[History], query: str,
                 response: Optional[str] = None) -> List[dict]:
        """The role/content messages handed to the jinja template (system folded in where it must be)."""
        messages = self.to_messages(system, history, query, response)
        if self.fold_system and messages and messages[0]["role"] == "system":
            system_text = messages.pop(0)["content"]
            messages[0] = {"role": "user", "content": f"{system_text}\n\n{messages[0]['content']}"}
        return messages

    def resolve_system(self, system: Optional[str]) -> str:
        """No default system prompt of prefswift's own: the jinja adds the model's default when it has one."""
        if system is None:
            return ""
        if not isinstance(system, str):
            raise ArgumentError(f"system must be text, got {type(system).__name__}: {system!r}")
        return system

    def render_prompt(self, system: Optional[str], history: Optional[History], query: str) -> str:
        if not isinstance(query, str):
            raise ArgumentError(f"query must be text, got {type(query).__name__}: {query!r}")
        for i, turn in enumerate(history or []):
            if len(turn) != 2 or not all(isinstance(t, str) for t in turn):
                raise ArgumentError(f"history turn {i} must be a (user, assistant) pair of texts, got {turn!r}")
        messages = self.messages(system, history, query)
        text = self._render(messages, True)
        self._conversations[text] = messages
        self._conversations.move_to_end(text)
        while len(self._conversations) > 4096:
            self._conversations.popitem(last=False)
        return text

    def render_full(self, prompt_text: str, response: str) -> str:
        """The whole conversation whose prompt rendered as `prompt_text`, answered by `response`."""
        if not isinstance(response, str):
            raise ArgumentError(f"response must be text, got {type(response).__name__}: {response!r}")
        messages = self._conversations.get(prompt_text)
        if messages is None:
            raise ArgumentError("internal: render the prompt with render_prompt before encoding its response")
        full = self._render(messages + [{"role": "assistant", "content": response}], False)
        if not full.startswith(prompt_text):
            raise ArgumentError(
                f"{self.model_name}: its chat template renders a finished conversation differently from the prompt "
                "it generates from (it rewrites earlier turns), so prompt and response cannot be split — pass "
                "--template NAME (see `prefswift list templates`)")
        return full

    def render_response(self, response: str) -> str:
        """Without a conversation the answer's own text and the turn end (preview and plain text only)."""
        return response + (self.stop_words[0] if self.stop_words else "")

    # ---- token ids ----------------------------------------------------------------------------
    def encode_pair(self, tokenizer: Any, prompt_text: str, prompt_ids: List[int], response: str) -> List[int]:
        full_text = self.render_full(prompt_text, response)
        full = self._encode(tokenizer, full_text)
        n = len(prompt_ids)
        if full[:n] == prompt_ids and len(full) > n:
            return full[n:]
        return self._encode(tokenizer, full_text[len(prompt_text):])

    def encode_response(self, tokenizer: Any, response: str) -> List[int]:
        return self._encode(tokenizer, self.render_response(response))

    def control_tokens(self, markers: bool = False) -> List[str]:
        """The tokenizer's own special tokens are the chat format: nothing to check against it."""
        return []
