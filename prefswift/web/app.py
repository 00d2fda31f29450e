"""The `prefswift web` server: a FastAPI app serving one static page (static/, no CDN) and its JSON + server-sent
events API.

  GET  /api/runs                      every run under --runs_dir (state, algorithm, model, step, best eval)
  GET  /api/run?name=N                one run whole: curves (logging.jsonl rows), args, eval results, checkpoints, notes
  GET  /api/events?run=N&rows=K       SSE: `runs` (the list, when it changes) and, with run=, `rows` (its log rows
                                      after the K the page has) and `run` (its state, notes, checkpoints)
  POST /api/chat                      SSE: {run, messages, options} -> `piece` events, then `done`
  GET  /api/arena/prompt              a prompt drawn from --prompt_file
  POST /api/arena/match               {run_a, run_b, prompt, options} -> two answers, positions shuffled, no names
  POST /api/arena/vote                {id, choice: A|B|tie|both_bad, annotator} -> one row appended to the votes file
                                      (the match waits on disk: a vote after a restart of the server still counts)
  GET  /api/arena/stats               votes, the win-rate table (evaluate.winrate), ties / both-bad counts
Every answer to a bad request is a 4xx with {"error": one line}; the server keeps serving.
"""
import asyncio
import json
import random
import secrets
import threading
from pathlib import Path
from typing import Dict, List, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ..run.state import read_run
from ..generation.prompts import chat_to_turns
from ..generation.types import EngineError
from ..serve.events import event_stream
from . import generation
from .arena import PendingMatches, VoteError, VoteFile, new_match, vote_row, winrate_table
from .runs import chat_targets, detail, runs_summaries, summary, training_runs

STATIC = Path(__file__).parent / "static"
POLL_S = 1.0


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class WebState:
    """What the server holds: where runs and votes are, the arena's prompts and open matches, loaded models."""

    def __init__(self, runs_dir: Path, votes: Path, prompts: List[str], api_key: Optional[str], engine=None):
        self.runs_dir = Path(runs_dir).resolve()
        self.votes = VoteFile(votes)
        self.prompts = prompts
        self.api_key = api_key
        self.models = generation.Engines()
        self.matches = PendingMatches(self.votes.path)
        self.rng = random.Random()
        self.lock = threading.Lock()

    def run_dir(self, name: Optional[str]) -> Path:
        """The run called `name` (its path under --runs_dir); 404 for anything else."""
        if not name:
            raise BadRequest("name: give a run's name (as /api/runs lists it)")
        path = (self.runs_dir / name).resolve()
        if path != self.runs_dir and self.runs_dir not in path.parents:
            raise BadRequest(f"run {name!r} is not under --runs_dir", 404)
        if path not in training_runs(self.runs_dir):
            raise BadRequest(f"no run {name!r} under {self.runs_dir} (is its args.json there?)", 404)
        return path

    def runs(self) -> List[dict]:
        return runs_summaries(self.runs_dir)

    def model_dir(self, name: str) -> str:
        targets = chat_targets(self.runs_dir)
        if name not in targets:
            raise BadRequest(f"{name!r}: no run or merged model of that name with an adapter, final model or whole "
                             "checkpoint to load (yet)", 404)
        return targets[name]


def sse(event: str, data) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(state: WebState) -> FastAPI:
    app = FastAPI(title="prefswift web", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BadRequest)
    async def bad_request(_request, exc: BadRequest):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body" and not isinstance(x, int))
        return JSONResponse({"error": f"{where or 'request body'}: {first.get('msg', 'invalid')}"}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if state.api_key and request.url.path.startswith("/api/"):
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.query_params.get("key", ""))
            if not secrets.compare_digest(given.encode(), state.api_key.encode()):
                return JSONResponse({"error": "this server needs its API key (Authorization: Bearer KEY)"}, 401)
        return await call_next(request)

    @app.get("/")
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    async def static(name: str):
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            raise BadRequest(f"no file {name!r}", 404)
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @app.get("/api/runs")
    async def runs():
        return {"runs_dir": str(state.runs_dir), "runs": await asyncio.to_thread(state.runs)}

    @app.get("/api/run")
    async def run(name: str = ""):
        path = state.run_dir(name)
        return await asyncio.to_thread(lambda: detail(read_run(path), state.runs_dir))

    @app.get("/api/events")
    async def events(request: Request, run: str = "", rows: int = 0):
        """`rows`: how many of the run's log rows the page has; only later ones are sent."""
        run_dir = state.run_dir(run) if run else None

        async def stream():
            last_runs, last_run, sent = None, None, max(0, rows)
            while not await request.is_disconnected():
                listing = await asyncio.to_thread(state.runs)
                if listing != last_runs:
                    last_runs = listing
                    yield sse("runs", listing)
                if run_dir is not None:
                    info = await asyncio.to_thread(read_run, run_dir)
                    if len(info.logs) > sent:
                        yield sse("rows", {"rows": detail(info, state.runs_dir)["rows"][sent:]})
                        sent = len(info.logs)
                    now = summary(info, state.runs_dir)
                    if now != last_run:
                        last_run = now
                        yield sse("run", now)
                yield ": keep-alive\n\n"
                await asyncio.sleep(POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/api/models")
    async def models():
        return {"models": sorted(await asyncio.to_thread(chat_targets, state.runs_dir))}

    @app.exception_handler(EngineError)
    async def engine_error(_request, exc: EngineError):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.post("/api/chat")
    async def chat(body: Dict):
        name, messages, options = body.get("run"), body.get("messages"), body.get("options") or {}
        chat_to_turns(messages)          # EngineError 400 for a malformed conversation
        generation.sampling(options)     # and for bad options, before anything streams
        model_dir = await asyncio.to_thread(state.model_dir, name)
        queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        gone = threading.Event()

        def produce():
            try:
                for piece in generation.stream_reply(state.models, model_dir, messages, options):
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
                    if gone.is_set():
                        return
                loop.call_soon_threadsafe(queue.put_nowait, ("done", ""))
            except Exception as e:  # noqa: BLE001 - one line to the page, the server keeps serving
                loop.call_soon_threadsafe(queue.put_nowait, ("error", one_line(e)))

        threading.Thread(target=produce, daemon=True).start()

        async def stream():
            try:
                while True:
                    kind, text = await queue.get()
                    yield sse(kind, {"text": text})
                    if kind in ("done", "error"):
                        return
            finally:
                gone.set()

        return event_stream(stream(), on_close=gone.set, headers={"Cache-Control": "no-store"})

    @app.get("/api/arena/prompt")
    async def arena_prompt():
        if not state.prompts:
            raise BadRequest("no --prompt_file was given to prefswift web: type a prompt", 404)
        return {"prompt": state.rng.choice(state.prompts)}

    @app.post("/api/arena/match")
    async def arena_match(body: Dict):
        run_a, run_b = body.get("run_a"), body.get("run_b")
        prompt, options = str(body.get("prompt") or "").strip(), dict(body.get("options") or {})
        if not prompt:
            raise BadRequest("prompt: type one, or draw one from the prompt file")
        if not run_a or not run_b:
            raise BadRequest("run_a, run_b: pick two runs (the same run twice: two samples of it)")
        generation.sampling(options)  # EngineError 400 for bad options
        dirs = [await asyncio.to_thread(state.model_dir, r) for r in (run_a, run_b)]
        seed = int(options.get("seed", 42))
        try:
            if run_a == run_b:  # two samples of one run: always sampled, choice i drawn with seed + i
                texts = await asyncio.to_thread(generation.answers, state.models, dirs[0], prompt,
                                                dict(options, do_sample=True, seed=seed), 2)
                answers = [(run_a, 0, texts[0]), (run_b, 1, texts[1])]
            else:  # each side draws its own sample
                answers = []
                for k, (name, model_dir) in enumerate(zip((run_a, run_b), dirs)):
                    text = await asyncio.to_thread(generation.answers, state.models, model_dir, prompt,
                                                   dict(options, seed=seed + k), 1)
                    answers.append((name, 0, text[0]))
        except EngineError:
            raise
        except Exception as e:  # noqa: BLE001 - one line to the page
            raise BadRequest(one_line(e), 500) from None
        match = new_match(prompt, answers[0], answers[1], state.rng)
        with state.lock:
            try:
                state.matches.put(match)
            except OSError as e:  # the votes file's folder cannot be written: one line, the server keeps serving
                raise BadRequest(f"cannot keep the match beside {state.votes.path}: {e.strerror or e}", 500) from None
        return {"id": match.id, "prompt": prompt, "A": match.left[2], "B": match.right[2]}

    @app.post("/api/arena/vote")
    async def arena_vote(body: Dict):
        match_id = str(body.get("id"))
        with state.lock:
            match = state.matches.get(match_id)
            if any(r.get("match_id") == match_id for r in state.votes.rows()):
                state.matches.drop(match_id)  # voted on just before a crash, its file left: the row written counts
                raise BadRequest(f"match {match_id} was already voted on ({state.votes.path}): start a new match", 409)
            if match is None:
                raise BadRequest("no open match with this id: start a new match", 404)
            try:
                row = vote_row(match, str(body.get("choice")), str(body.get("annotator") or ""))
            except VoteError as e:
                raise BadRequest(str(e)) from None
            try:
                state.votes.append(row)
                state.matches.drop(match.id)
            except OSError as e:
                raise BadRequest(f"cannot write the vote to {state.votes.path}: {e.strerror or e}", 500) from None
        return {"written": str(state.votes.path), "A": row["model_a"], "B": row["model_b"], "winner": row["winner"]}

    @app.get("/api/arena/stats")
    async def arena_stats():
        rows = await asyncio.to_thread(state.votes.rows)
        counts = {w: sum(r["winner"] == w for r in rows) for w in ("model_a", "model_b", "tie", "tie (bothbad)")}
        return {"file": str(state.votes.path), "votes": len(rows), "counts": counts, "table": winrate_table(rows)}

    return app


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


__all__ = ["create_app", "WebState"]
