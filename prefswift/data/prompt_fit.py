"""A prompt past --max_prompt_length, shortened in its content only: the template's own tokens stay.

Cutting the rendered prompt's token ids from the left (plain keep_end) removes `<|begin_of_text|>` and the first
turn's header, and the model then trains on a sequence that starts mid-word with no role marker. `fit_prompt` instead
shortens the conversation and renders it again:

1. the oldest earlier turns go first (a (user, assistant) turn at a time);
2. then the last user message keeps only its most recent part (its end, from a word boundary where it has spaces);
3. then the system prompt keeps its end too (only when the headers and the system prompt alone are too long).

Every prompt it returns is the template's rendering of a real conversation — BOS where the template has one and
every turn header intact — and at most `budget` tokens long.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class FittedPrompt:
    system: Optional[str]
    history: List[Tuple[str, str]]
    query: str
    ids: List[int]
    turns_dropped: int      # earlier (user, assistant) turns left out
    query_cut: bool         # the last user message lost its start
    system_cut: bool        # the system prompt lost its start


def text_tail(tokenizer: Any, text: str, keep: int) -> str:
    """The end of `text` that its last `keep` tokens spell (tokenized alone), starting at a word boundary when the
    cut falls inside a word of a text with spaces."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if keep >= len(ids):
        return text
    if keep <= 0:
        return ""
    whole = tokenizer.decode(ids, skip_special_tokens=False)
    tail = tokenizer.decode(ids[len(ids) - keep:], skip_special_tokens=False)
    before = whole[:len(whole) - len(tail)] if whole.endswith(tail) else ""
    if before and not before[-1].isspace() and tail and not tail[0].isspace() and any(c.isspace() for c in tail):
        tail = tail.split(None, 1)[1] if len(tail.split(None, 1)) > 1 else ""
    return tail.lstrip()


def _longest_tail(tokenizer: Any, text: str, fits: Callable[[str], Optional[List[int]]]
                  ) -> Optional[Tuple[str, List[int]]]:
    """(the longest tail of `text` whose prompt fits, its ids) by bisecting the number of kept tokens; None when even
    the empty text does not fit."""
    ids = fits(text)
    if ids is not None:
        return text, ids
    ids = fits("")
    if ids is None:
        return None
    best = ("", ids)
    lo, hi = 0, len(tokenizer(text, add_special_tokens=False)["input_ids"])  # fits / does not fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tail = text_tail(tokenizer, text, mid)
        ids = fits(tail)
        if ids is None:
            hi = mid
        else:
            lo, best = mid, (tail, ids)
    return best


def fit_prompt(template: Any, tokenizer: Any, system: Optional[str], history: Optional[Sequence[Tuple[str, str]]],
               query: str, budget: int) -> Optional[FittedPrompt]:
    """The conversation shortened in its content until its rendered prompt has at most `budget` tokens (see the
    module docstring), or None when the template's headers alone are longer."""
    history = [tuple(turn) for turn in history or []]

    def encode(sys_text, turns, text) -> Optional[List[int]]:
        ids = template.encode_prompt(tokenizer, sys_text, turns, text)
        return ids if len(ids) <= budget else None

    for dropped in range(len(history) + 1):
        ids = encode(system, history[dropped:], query)
        if ids is not None:
            return FittedPrompt(system, list(history[dropped:]), query, ids, dropped, False, False)
    dropped = len(history)
    found = _longest_tail(tokenizer, query, lambda text: encode(system, [], text))
    if found is not None:
        return FittedPrompt(system, [], found[0], found[1], dropped, True, False)
    sys_text = template.resolve_system(system)
    if not sys_text:
        return None
    found = _longest_tail(tokenizer, sys_text, lambda text: encode(text, [], ""))
    if found is None:
        return None
    return FittedPrompt(found[0], [], "", found[1], dropped, True, True)


__all__ = ["FittedPrompt", "fit_prompt", "text_tail"]
