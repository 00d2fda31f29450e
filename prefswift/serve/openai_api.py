"""OpenAI's request and response bodies for /v1/chat/completions and /v1/completions, read into the engine's
SamplingParams and written back from its Choices and Deltas.

Every field a request may carry either acts or is refused with a 400 naming it (`EngineError`, OpenAI's error shape
is written by `app`): `n`, `temperature`, `top_p`, `max_tokens` (chat also `max_completion_tokens`), `stop`, `seed`,
`stream` (+ `stream_options.include_usage`), chat `logprobs`/`top_logprobs`, completions `logprobs` (an int: that many
alternatives per token), and vLLM's extra parameters `return_token_ids` (the prompt's and each choice's token ids in
the response), `top_k` (0 or -1: off) and `repetition_penalty` (transformers' definition, as `prefswift infer`).
Penalties, `logit_bias`, tools and response formats are accepted only at their neutral value.
"""
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..generation.types import Choice, Delta, EngineError, SamplingParams, TokenLogprob

COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream", "stream_options",
          "return_token_ids", "top_k", "repetition_penalty"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens", "logprobs", "top_logprobs"}
COMPLETION_FIELDS = COMMON | {"prompt", "logprobs", "echo"}
NEUTRAL = {"frequency_penalty": (0, 0.0, None), "presence_penalty": (0, 0.0, None), "logit_bias": (None, {}),
           "tools": (None, []), "tool_choice": (None, "none"), "response_format": (None, {"type": "text"}),
           "parallel_tool_calls": (None,), "best_of": (None, 1), "suffix": (None, ""), "user": (None,)}
MAX_TOP_LOGPROBS = 20


@dataclass
class Parsed:
    model: Optional[str]
    prompts: List[List[int]]
    params: SamplingParams
    stream: bool
    include_usage: bool
    return_token_ids: bool


def _bad(message: str, param: Optional[str] = None) -> EngineError:
    return EngineError(400, message, param=param)


def _number(body, name, default, lo=None, hi=None, integer=False, lo_open=False):
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise _bad(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}", name)
    if lo is not None and (value <= lo if lo_open else value < lo) or hi is not None and value > hi:
        span = f"{'above' if lo_open else 'at least'} {lo}" + (f" and at most {hi}" if hi is not None else "")
        raise _bad(f"{name} must be {span}, got {value}", name)
    return value


def _flag(body, name) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _bad(f"{name} must be true or false, got {value!r}", name)
    return value


def _check_fields(body: Dict[str, Any], allowed) -> None:
    for name, value in body.items():
        if name in allowed:
            continue
        if name in NEUTRAL:
            if value not in NEUTRAL[name]:
                raise _bad(f"{name}={value!r} is not supported by this server (only the neutral value); drop it", name)
            continue
        raise _bad(f"unknown or unsupported parameter {name!r}; supported: {', '.join(sorted(allowed))}", name)


def _stop(body) -> List[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise _bad("stop must be a non-empty string or a list of up to 4 of them", "stop")
    return stop


def _stream_options(body, stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise _bad("stream_options is only allowed with stream: true", "stream_options")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise _bad("stream_options supports only include_usage", "stream_options")
    return _flag(options, "include_usage")


def _params(body, default_max_tokens: int, max_n: int) -> SamplingParams:
    max_tokens = _number(body, "max_tokens", None, lo=1, integer=True)
    if "max_completion_tokens" in body:
        max_tokens = _number(body, "max_completion_tokens", None, lo=1, integer=True)
    return SamplingParams(
        max_tokens=max_tokens or default_max_tokens,
        temperature=float(_number(body, "temperature", 1.0, lo=0, hi=2)),
        top_p=float(_number(body, "top_p", 1.0, lo=0, hi=1, lo_open=True)),
        top_k=max(0, _number(body, "top_k", 0, lo=-1, integer=True)),
        repetition_penalty=float(_number(body, "repetition_penalty", 1.0, lo=0, lo_open=True)),
        n=_number(body, "n", 1, lo=1, hi=max_n, integer=True),
        stop=_stop(body),
        seed=_number(body, "seed", None, integer=True),
    )


def _model(body) -> Optional[str]:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad(f"model must be a string, got {model!r}", "model")
    return model


def parse_chat(body: Dict[str, Any], engine, default_max_tokens: int) -> Parsed:
    _check_fields(body, CHAT_FIELDS)
    if "messages" not in body:
        raise _bad("messages is required", "messages")
    params = _params(body, default_max_tokens, engine.max_batch_size)
    params.logprobs = _flag(body, "logprobs")
    params.top_logprobs = _number(body, "top_logprobs", 0, lo=0, hi=MAX_TOP_LOGPROBS, integer=True)
    if params.top_logprobs and not params.logprobs:
        raise _bad("top_logprobs needs logprobs: true", "top_logprobs")
    model = _model(body)
    stream = _flag(body, "stream")
    prompt = engine.chat_prompt_ids(model, body["messages"])
    return Parsed(model, [prompt], params, stream, _stream_options(body, stream), _flag(body, "return_token_ids"))


def _completion_prompts(prompt, tokenizer) -> List[List[int]]:
    def ids_of(p, where):
        if isinstance(p, str):
            return list(tokenizer(p)["input_ids"])
        if isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(tokenizer)
                                             for t in p):
            return list(p)
        raise _bad(f"{where} must be a string or a non-empty list of token ids below {len(tokenizer)}", "prompt")

    if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        return [ids_of(p, f"prompt[{i}]") for i, p in enumerate(prompt)]
    return [ids_of(prompt, "prompt")]


def parse_completion(body: Dict[str, Any], engine) -> Parsed:
    _check_fields(body, COMPLETION_FIELDS)
    if "prompt" not in body:
        raise _bad("prompt is required", "prompt")
    if _flag(body, "echo"):
        raise _bad("echo: true is not supported by this server; drop it", "echo")
    params = _params(body, 16, engine.max_batch_size)  # OpenAI's default for completions
    top = _number(body, "logprobs", None, lo=0, hi=5, integer=True)
    params.logprobs, params.top_logprobs = top is not None, top or 0
    engine.served(_model(body))  # an unknown model is a 404 before the prompt is read
    prompts = _completion_prompts(body["prompt"], engine.tokenizer)
    stream = _flag(body, "stream")
    return Parsed(_model(body), prompts, params, stream, _stream_options(body, stream), _flag(body, "return_token_ids"))


# ---------------------------------------------------------------------- responses
def _lp(entry: TokenLogprob) -> dict:
    return {"token": entry.text, "logprob": entry.logprob, "bytes": list(entry.text.encode("utf-8"))}


def chat_logprobs(entries: List[TokenLogprob]) -> dict:
    return {"content": [dict(_lp(e), top_logprobs=[_lp(t) for t in e.top]) for e in entries]}


def completion_logprobs(entries: List[TokenLogprob], start: int = 0) -> dict:
    offsets, at = [], start
    for e in entries:
        offsets.append(at)
        at += len(e.text)
    return {"tokens": [e.text for e in entries], "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [{t.text: t.logprob for t in e.top} for e in entries], "text_offset": offsets}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, choices: List[Choice], parsed: Parsed, prompt_tokens: int) -> dict:
    out = {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model, "choices": [
        dict({"index": c.index, "message": {"role": "assistant", "content": c.text}, "finish_reason": c.finish_reason,
              "logprobs": chat_logprobs(c.logprobs) if parsed.params.logprobs else None},
             **({"token_ids": c.token_ids} if parsed.return_token_ids else {}))
        for c in choices], "usage": usage(prompt_tokens, sum(len(c.token_ids) for c in choices))}
    if parsed.return_token_ids:
        out["prompt_token_ids"] = parsed.prompts[0]
    return out


def completion_response(rid: str, model: str, choices: List[Choice], parsed: Parsed, prompt_tokens: int) -> dict:
    out = {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model, "choices": [
        dict({"index": c.index, "text": c.text, "finish_reason": c.finish_reason,
              "logprobs": completion_logprobs(c.logprobs) if parsed.params.logprobs else None},
             **({"token_ids": c.token_ids} if parsed.return_token_ids else {}))
        for c in choices], "usage": usage(prompt_tokens, sum(len(c.token_ids) for c in choices))}
    if parsed.return_token_ids:
        out["prompt_token_ids"] = parsed.prompts
    return out


def chat_chunk(rid: str, model: str, created: int, index: int, delta: dict, finish=None, logprobs=None) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}


def chat_delta_chunk(rid, model, created, d: Delta, parsed: Parsed) -> dict:
    delta = {"content": d.text}
    if parsed.return_token_ids:
        delta["token_ids"] = d.token_ids
    return chat_chunk(rid, model, created, d.index, delta, d.finish_reason,
                      chat_logprobs(d.logprobs) if parsed.params.logprobs else None)


def completion_delta_chunk(rid, model, created, d: Delta, parsed: Parsed, index: int, offset: int) -> dict:
    choice = {"index": index, "text": d.text, "finish_reason": d.finish_reason,
              "logprobs": completion_logprobs(d.logprobs, offset) if parsed.params.logprobs else None}
    if parsed.return_token_ids:
        choice["token_ids"] = d.token_ids
    return {"id": rid, "object": "text_completion", "created": created, "model": model, "choices": [choice]}


__all__ = ["Parsed", "parse_chat", "parse_completion", "chat_response", "completion_response", "chat_chunk",
           "chat_delta_chunk", "completion_delta_chunk", "usage"]
