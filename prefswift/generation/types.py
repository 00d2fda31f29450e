"""The engine's plain data: sampling parameters, streamed pieces, finished choices, and the errors it answers with."""
from dataclasses import dataclass, field
from typing import List, Optional


class EngineError(Exception):
    """A request the engine refuses: `status` is the HTTP status a server answers with."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error", param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


class QueueFull(EngineError):
    def __init__(self, retry_after: int):
        super().__init__(429, "the server is at capacity; retry after the Retry-After header's seconds",
                         "rate_limit_exceeded")
        self.retry_after = retry_after


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0        # 0: greedy
    top_p: float = 1.0
    top_k: int = 0                  # 0: off
    repetition_penalty: float = 1.0  # 1: off; as transformers' RepetitionPenaltyLogitsProcessor (prompt included)
    n: int = 1
    stop: List[str] = field(default_factory=list)
    seed: Optional[int] = None      # choice i draws from torch.Generator(seed + i): the same answer whatever else runs
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class TokenLogprob:
    token_id: int
    text: str
    logprob: float
    top: List["TokenLogprob"] = field(default_factory=list)


@dataclass
class Delta:
    index: int
    text: str
    token_ids: List[int]
    logprobs: List[TokenLogprob]
    finish_reason: Optional[str] = None


@dataclass
class Choice:
    index: int
    text: str = ""
    token_ids: List[int] = field(default_factory=list)
    logprobs: List[TokenLogprob] = field(default_factory=list)
    finish_reason: Optional[str] = None


__all__ = ["EngineError", "QueueFull", "SamplingParams", "TokenLogprob", "Delta", "Choice"]
