"""The HTTP layer of `prefswift deploy`: a FastAPI app over one `Engine` (uvicorn serves it, see `serve.server`).

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions (server-sent events with
`stream: true`), POST /v1/adapters {"name", "path"} and DELETE /v1/adapters/{name} (LoRA adapters added and dropped
while serving), POST /v1/preference (a prompt and two responses scored as `prefswift eval` scores a pair).
Errors are OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with a 4xx status for every bad request;
a full queue is a 429 with Retry-After. With an API key every /v1 route wants `Authorization: Bearer KEY`.
A client that disconnects cancels its request: its rows leave the batch at the next step.
"""
import asyncio
import itertools
import json
import secrets
import time
from typing import Callable, Optional

from ..generation.engine import Engine
from .events import event_stream
from .openai_api import (chat_chunk, chat_delta_chunk, chat_response, completion_delta_chunk, completion_response,
                         parse_chat, parse_completion)
from ..generation.types import EngineError, QueueFull

POLL_DISCONNECT_S = 0.5


def error_body(status: int, message: str, code: Optional[str] = None, param: Optional[str] = None) -> dict:
    kind = {401: "authentication_error", 404: "invalid_request_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def build_app(engine: Engine, *, api_key: Optional[str] = None, default_max_tokens: int = 512,
              resolve_adapter: Optional[Callable] = None, score_pair: Optional[Callable] = None):
    """`resolve_adapter(name, path) -> (ModelSource, template, system)` for POST /v1/adapters;
    `score_pair(served, body) -> dict` for POST /v1/preference (both given by `commands.deploy`)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="prefswift deploy", docs_url=None, redoc_url=None, openapi_url=None)
    ids = itertools.count(1)

    def fail(status, message, code=None, param=None, headers=None):
        return JSONResponse(error_body(status, message, code, param), status_code=status, headers=headers)

    @app.exception_handler(EngineError)
    async def engine_error(request, e: EngineError):   # every route's refusals: OpenAI's error body, its status
        headers = {"Retry-After": str(e.retry_after)} if isinstance(e, QueueFull) else None
        return fail(e.status, e.message, e.code, e.param, headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return fail(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        return fail(500, f"internal error: {type(exc).__name__}: {exc}", "internal_error")

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                what = "a wrong API key" if given else "no API key"
                return fail(401, f"{what}: send the header Authorization: Bearer <the --api_key of the server>",
                            "invalid_api_key")
        return await call_next(request)

    async def read_json(request: Request) -> dict:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise EngineError(400, f"the request body is not valid JSON ({e})", "invalid_json") from None
        if not isinstance(body, dict):
            raise EngineError(400, "the request body must be a JSON object", "invalid_json")
        return body

    @app.get("/health")
    async def health():
        return {"status": "ok", "models": engine.models(), "in_flight": engine.busy}

    @app.get("/v1/models")
    async def models():
        created = int(time.time())
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "prefswift",
                                            "root": str(engine.served(name).source.describe())}
                                           for name in engine.models()]}

    async def run(request: Request, parsed, model: str, chat: bool):
        loop = asyncio.get_running_loop()
        handles = []
        try:
            for prompt in parsed.prompts:
                handles.append(engine.submit(prompt, parsed.params, parsed.model, loop=loop, stream=parsed.stream))
        except EngineError:
            for h in handles:
                h.cancel()
            raise
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{next(ids)}"
        prompt_tokens = sum(h.prompt_tokens for h in handles)
        if parsed.stream:
            return event_stream(stream(handles, rid, model, parsed, chat, prompt_tokens),
                                on_close=lambda: [h.cancel() for h in handles])
        try:
            for h in handles:
                while await wait_piece(request, h) is not None:
                    pass
        finally:
            for h in handles:
                h.cancel()       # a no-op once finished; frees the rows of a client that went away
        choices = [c for h in handles for c in h.choices]
        for k, c in enumerate(choices):
            c.index = k
        if any(c.finish_reason is None for c in choices):
            return fail(499, "the client closed the request", "client_closed")
        build = chat_response if chat else completion_response
        return JSONResponse(build(rid, model, choices, parsed, prompt_tokens))

    async def wait_piece(request: Request, handle):
        while True:
            try:
                return await asyncio.wait_for(handle.aget(), POLL_DISCONNECT_S)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    handle.cancel()
                    return None

    async def stream(handles, rid, model, parsed, chat, prompt_tokens):
        created = int(time.time())
        n = parsed.params.n
        try:
            if chat:
                for i in range(n):
                    yield sse(chat_chunk(rid, model, created, i, {"role": "assistant", "content": ""}))
            offsets = {}
            for k, h in enumerate(handles):     # several completion prompts: one after the other
                while True:
                    d = await h.aget()
                    if d is None:
                        break
                    index = k * n + d.index
                    if chat:
                        yield sse(chat_delta_chunk(rid, model, created, d, parsed))
                    else:
                        yield sse(completion_delta_chunk(rid, model, created, d, parsed, index, offsets.get(index, 0)))
                        offsets[index] = offsets.get(index, 0) + len(d.text)
            if parsed.include_usage:
                done = sum(h.completion_tokens for h in handles)
                yield sse({"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                           "created": created, "model": model, "choices": [],
                           "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": done,
                                     "total_tokens": prompt_tokens + done}})
            yield "data: [DONE]\n\n"
        except EngineError as e:
            yield sse(error_body(e.status, e.message, e.code, e.param))
        finally:   # the client went away (the task is cancelled) or all is sent: free the rows either way
            for h in handles:
                h.cancel()

    def sse(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await read_json(request)
        parsed = parse_chat(body, engine, default_max_tokens)
        return await run(request, parsed, engine.served(parsed.model).name, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await read_json(request)
        parsed = parse_completion(body, engine)
        return await run(request, parsed, engine.served(parsed.model).name, chat=False)

    @app.post("/v1/adapters")
    async def add_adapter(request: Request):
        body = await read_json(request)
        name, path = body.get("name"), body.get("path")
        if set(body) - {"name", "path"}:
            raise EngineError(400, f"unknown fields {sorted(set(body) - {'name', 'path'})}; send name and path")
        if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
            raise EngineError(400, "send {\"name\": NAME, \"path\": ADAPTER_OR_RUN_DIR}", param="name")
        if resolve_adapter is None:
            raise EngineError(501, "this server cannot load adapters", "not_implemented")
        source, template, system = await asyncio.to_thread(resolve_adapter, name, path)
        await asyncio.to_thread(engine.add_adapter, name, source, template, system)
        return {"id": name, "object": "model", "root": source.describe()}

    @app.delete("/v1/adapters/{name}")
    async def drop_adapter(name: str):
        await asyncio.to_thread(engine.remove_adapter, name)
        return {"id": name, "object": "model", "deleted": True}

    @app.post("/v1/preference")
    async def preference(request: Request):
        body = await read_json(request)
        if score_pair is None:
            raise EngineError(501, "this server does not score pairs", "not_implemented")
        model = body.get("model")
        served = engine.served(model if isinstance(model, str) else None)
        result = await asyncio.to_thread(lambda: engine.run_exclusive(lambda m: score_pair(served, body, m)))
        return dict(result, model=served.name, object="preference")

    return app


__all__ = ["build_app", "error_body"]
