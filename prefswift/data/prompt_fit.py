"""A prompt past --max_prompt_length, shortened in its content only: the template's own tokens stay.

Cutting the rendered prompt's token ids from the left (plain keep_end) removes `<|begin_of_text|>` and the first
turn's header, and the model then trains on a sequence that starts mid-word with no role marker. `fit_prompt` instead
shortens the conversation and renders it again, the question the pair answers (the last user message) last:

1. the oldest earlier turns go first (a (user, assistant) turn at a time);
2. then the system prompt keeps only its start (it loses its end, from a word boundary where it has spaces), down
   to no system prompt at all, until the whole last user message fits;
3. only then, with no system prompt and no earlier turn left, the last user message keeps its most recent part (its
   end, from a word boundary where it has spaces).

When not even a part of the last user message fits (or only whitespace would be left), `fit_prompt` returns None and
the pipeline drops the pair with a count: a pair is never trained on an empty question. Every prompt it returns is
the template's rendering of a real conversation — BOS where the template has one and every turn header intact — and
at most `budget` tokens long.
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
    system_cut: bool        # the system prompt lost its end (or all of it)


def _text_part(tokenizer: Any, text: str, keep: int, from_end: bool) -> str:
    """The part of `text` that its first (or, from_end, last) `keep` tokens spell, tokenized alone; when the cut falls
    inside a word of a text with spaces, that partial word is left out."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if keep >= len(ids):
        return text
    if keep <= 0:
        return ""
    whole = tokenizer.decode(ids, skip_special_tokens=False)
    part = tokenizer.decode(ids[len(ids) - keep:] if from_end else ids[:keep], skip_special_tokens=False)
    if from_end:
        rest = whole[:len(whole) - len(part)] if whole.endswith(part) else ""
        edges = (rest[-1:], part[:1])      # the characters either side of the cut
    else:
        rest = whole[len(part):] if whole.startswith(part) else ""
        edges = (part[-1:], rest[:1])
    if rest and part and not any(c.isspace() for c in edges) and any(c.isspace() for c in part):
        words = part.split(None, 1) if from_end else part.rsplit(None, 1)
        part = (words[1] if from_end else words[0]) if len(words) > 1 else ""
    return part.lstrip() if from_end else part.rstrip()


def text_tail(tokenizer: Any, text: str, keep: int) -> str:
    """The end of `text` that its last `keep` tokens spell, starting at a word boundary (see `_text_part`)."""
    return _text_part(tokenizer, text, keep, from_end=True)


def text_head(tokenizer: Any, text: str, keep: int) -> str:
    """The start of `text` that its first `keep` tokens spell, ending at a word boundary (see `_text_part`)."""
    return _text_part(tokenizer, text, keep, from_end=False)


def _longest_part(tokenizer: Any, text: str, part: Callable[[Any, str, int], str],
                  fits: Callable[[str], Optional[List[int]]]) -> Optional[Tuple[str, List[int]]]:
    """(the longest `part` (text_head or text_tail) of `text` whose prompt fits, its ids) by bisecting the number of
    kept tokens; None when even the empty text does not fit."""
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
        kept = part(tokenizer, text, mid)
        ids = fits(kept)
        if ids is None:
            hi = mid
        else:
            lo, best = mid, (kept, ids)
    return best


def fit_prompt(template: Any, tokenizer: Any, system: Optional[str], history: Optional[Sequence[Tuple[str, str]]],
               query: str, budget: int) -> Optional[FittedPrompt]:
    """The conversation shortened in its content until its rendered prompt has at most `budget` tokens (see the
    module docstring), or None when no part of the last user message fits with the template's headers."""
    history = [tuple(turn) for turn in history or []]

    def encode(sys_text, turns, text) -> Optional[List[int]]:
        ids = template.encode_prompt(tokenizer, sys_text, turns, text)
        return ids if len(ids) <= budget else None

    for dropped in range(len(history) + 1):
        ids = encode(system, history[dropped:], query)
        if ids is not None:
            return FittedPrompt(system, list(history[dropped:]), query, ids, dropped, False, False)
    dropped = len(history)
    sys_text = template.resolve_system(system)
    if sys_text:
        found = _longest_part(tokenizer, sys_text, text_head, lambda text: encode(text, [], query))
        if found is not None:  # the whole question fits with (a start of) the system prompt, or with none
            kept = found[0] if found[0].strip() else ""
            return FittedPrompt(kept, [], query, encode(kept, [], query), dropped, False, True)
    found = _longest_part(tokenizer, query, text_tail, lambda text: encode("", [], text))
    if found is None or not found[0].strip():
        return None  # not even a part of the question fits: the pair is dropped, never trained on an empty question
    return FittedPrompt("", [], found[0], found[1], dropped, True, bool(sys_text))


__all__ = ["FittedPrompt", "fit_prompt", "text_head", "text_tail"]
