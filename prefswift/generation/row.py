"""One sequence being generated (choice `index` of a request): its tokens, its random generator, its stops, and what
of its text has been handed to the caller.

Stops: a token in the engine's eos ids (the template's end-of-turn token, the tokenizer's and the model's eos) ends the
choice without being part of it; a stop string (the template's longer stop words and the request's `stop`) ends it and
is cut from the text, together with everything after it. While the text ends with the beginning of a stop string (or
with half a UTF-8 character) that part is held back, so a streamed answer never shows a stop string.
"""
from typing import List, Optional

import torch

from .types import Delta


class Row:
    def __init__(self, engine, pending, index: int):
        self.engine, self.handle, self.index = engine, pending.handle, index
        self.served, self.params = pending.served, pending.params
        self.prompt_ids = pending.prompt_ids
        self.generated: List[int] = []
        self.logprobs = []
        self.last_token: Optional[int] = None
        self.finished = False
        self.sent_text, self.sent_tokens = 0, 0
        self.stops = [s for s in list(engine.stop_strings) + list(self.params.stop) if s]
        self.generator = None
        if self.params.temperature > 0:
            self.generator = torch.Generator(device=engine.device)
            if self.params.seed is not None:
                self.generator.manual_seed((self.params.seed + index) % 2 ** 63)
            else:
                self.generator.seed()

    def _text(self, ids) -> str:
        return self.engine.tokenizer.decode(ids, skip_special_tokens=True)

    def accept(self, token: int, logprob=None) -> None:
        """Take the sampled token (and its TokenLogprob when asked for); emit what can be shown; finish on a stop."""
        if token in self.engine.eos_ids:
            self._finish("stop", self._text(self.generated), len(self.generated))
            return
        self.generated.append(token)
        self.last_token = token
        if logprob is not None:
            self.logprobs.append(logprob)
        text = self._text(self.generated)
        cut = min((i for i in (text.find(s) for s in self.stops) if i != -1), default=-1)
        if cut != -1:
            self._finish("stop", text[:cut], self._tokens_for(cut))
        elif len(self.generated) >= self.params.max_tokens:
            self._finish("length", text, len(self.generated))
        else:
            safe = len(text) - self._held_back(text)
            tokens = len(self.generated) if safe == len(text) else self.sent_tokens
            self._emit(text[:safe], tokens, None)

    def _held_back(self, text: str) -> int:
        """Characters at the end of `text` that may still become a stop string (or a whole character)."""
        if text.endswith("\ufffd"):
            return len(text) - len(text.rstrip("\ufffd"))
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(text)), hold, -1):
                if text.endswith(s[:k]):
                    hold = k
                    break
        return hold

    def _tokens_for(self, chars: int) -> int:
        """The fewest generated tokens whose text reaches `chars` characters (the tokens before a stop string)."""
        for k in range(self.sent_tokens, len(self.generated) + 1):
            if len(self._text(self.generated[:k])) >= chars:
                return k
        return len(self.generated)

    def _emit(self, text: str, tokens: int, finish: Optional[str]) -> None:
        piece = text[self.sent_text:]
        if not piece and tokens == self.sent_tokens and finish is None:
            return
        span = slice(self.sent_tokens, tokens)
        delta = Delta(self.index, piece, self.generated[span], self.logprobs[span], finish)
        self.sent_text, self.sent_tokens = max(len(text), self.sent_text), max(tokens, self.sent_tokens)
        self.handle._put(delta)

    def _finish(self, reason: str, text: str, tokens: int) -> None:
        self.finished = True
        self._emit(text, tokens, reason)


__all__ = ["Row"]
