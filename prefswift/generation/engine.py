"""The generation engine shared by `prefswift deploy` (HTTP) and `prefswift web` (chat, arena): one model, many LoRA
adapters on it, requests from many threads batched together by one scheduler thread.

API (all methods are thread-safe; nothing here knows about HTTP)::

    from prefswift.generation.engine import Engine, SamplingParams, EngineError

    engine = Engine(loaded, name="my-run")           # loaded: models.checkpoint.LoadedModel (load_for_inference)
    engine.add_adapter("other-run", source)          # a second run's adapter (source: models.checkpoint.ModelSource)
    engine.start()                                   # the scheduler thread
    engine.models()                                  # ["my-run", "other-run", ...]: what `model` may name
    ids = engine.chat_prompt_ids("other-run", [{"role": "user", "content": "Hi"}])   # that run's template + system
    handle = engine.submit(ids, SamplingParams(max_tokens=64, temperature=0.7, n=2, stop=["\\n\\n"], seed=1,
                                               logprobs=True, top_logprobs=3), model="other-run")
    handles = engine.submit_many([(ids, params), ...])   # several requests that join the batch together
    for delta in handle:                             # Delta(index, text, token_ids, logprobs, finish_reason)
                                                     # (async code: submit(..., loop=loop); await handle.aget())
        print(delta.index, delta.text, end="")       # streamed pieces; finish_reason set on a choice's last piece
    choices = handle.result()                        # or, instead of iterating: [Choice(...)] once all finished
    handle.cancel()                                  # a client gone: its rows leave the batch at the next step
    engine.run_exclusive(fn)                         # fn(model) between two steps (scoring with the same weights)
    engine.remove_adapter("other-run"); engine.shutdown()   # shutdown: finish what is in flight, then stop

Errors are `EngineError(status, message, code)` (`QueueFull` = 429, unknown model = 404, bad parameters = 400).

How it batches (continuous batching over a plain transformers model): every running sequence is one row of a
left-padded batch with one DynamicCache. Each step feeds every row its last token (one forward for all rows, a
different LoRA adapter per row through PEFT's `adapter_names`) and samples the next one per row (`sampler`: its own
temperature, top_k, top_p, repetition penalty, seed). New requests join between steps: their prompts are prefilled
together and their cache rows appended to the running batch; finished or cancelled rows are dropped at once, so a short
answer never waits for a long one.
Stops: the template's end-of-turn tokens and stop words (`templates.stops.stop_tokens`, as `prefswift infer`) and the
request's own stop strings; the text never contains them.
"""
import asyncio
import dataclasses
import itertools
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from ..models.checkpoint import LoadedModel, ModelSource
from ..models.lora import peft_from_pretrained
from ..templates.stops import stop_tokens
from .batch import RowBatch
from .prompts import chat_to_turns
from .sampler import sample_next
from .types import Choice, Delta, EngineError, QueueFull, SamplingParams, TokenLogprob

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass
class ServedModel:
    """One name `model` may take: the base (adapter None) or a LoRA adapter, with its run's template and system."""

    name: str
    source: ModelSource
    template: object
    system: Optional[str]
    adapter: Optional[str] = None   # the PEFT adapter name inside the model


class Handle:
    """The caller's side of one request: a stream of Deltas (iterate it) or the finished choices (`result`)."""

    def __init__(self, request_id: int, n: int, prompt_tokens: int, loop=None, stream: bool = True):
        self.id, self.n, self.prompt_tokens = request_id, n, prompt_tokens
        self.stream = stream                # False: only each choice's last piece is delivered (its text is whole
        #                                     in `choices` by then): no wake-up of the reader per token
        self.cancelled = threading.Event()
        self._q: "queue.Queue" = queue.Queue()
        self._loop = loop                   # an asyncio loop: pieces go to an asyncio.Queue read by `aget`
        self._aq = asyncio.Queue() if loop is not None else None
        self.choices = [Choice(i) for i in range(n)]
        self._open = n

    def _deliver(self, item) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._aq.put_nowait, item)
        else:
            self._q.put(item)

    def _put(self, delta: Delta) -> None:
        c = self.choices[delta.index]
        c.text += delta.text
        c.token_ids += delta.token_ids
        c.logprobs += delta.logprobs
        if delta.finish_reason:
            c.finish_reason = delta.finish_reason
        if self.stream or delta.finish_reason:
            self._deliver(delta)

    def _fail(self, error: Exception) -> None:
        self._deliver(error)

    def _take(self, item) -> Optional[Delta]:
        if isinstance(item, Exception):
            self._open = 0
            raise item
        if item.finish_reason:
            self._open -= 1
        return item

    async def aget(self) -> Optional[Delta]:
        """`get` for a handle submitted with an asyncio loop (await it on that loop)."""
        if self._open == 0:
            return None
        return self._take(await self._aq.get())

    def get(self, timeout: Optional[float] = None) -> Optional[Delta]:
        """The next Delta; None once every choice has finished (raises the engine's error if it failed)."""
        if self._open == 0:
            return None
        return self._take(self._q.get(timeout=timeout))

    def __iter__(self):
        while True:
            item = self.get()
            if item is None:
                return
            yield item

    def result(self) -> List[Choice]:
        for _ in self:
            pass
        return self.choices

    def cancel(self) -> None:
        self.cancelled.set()

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.choices)


@dataclass
class _Pending:
    handle: Handle
    prompt_ids: List[int]
    params: SamplingParams
    served: ServedModel


class Engine:
    """See the module docstring."""

    def __init__(self, loaded: LoadedModel, *, name: str, base_name: Optional[str] = None, system: Optional[str] = None,
                 max_batch_size: int = 32, max_queue: int = 256, max_prefill_tokens: int = 4096):
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.max_batch_size, self.max_queue, self.max_prefill_tokens = max_batch_size, max_queue, max_prefill_tokens
        self.eos_ids, self.stop_strings = stop_tokens(loaded.tokenizer, loaded.template, loaded.model)
        config = getattr(self.model, "config", None)
        self.max_length = int(getattr(config, "max_position_embeddings", 0) or 0) or None
        self.device = next(self.model.parameters()).device
        self._served: Dict[str, ServedModel] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: List[_Pending] = []
        self._commands: List = []
        self._ids = itertools.count(1)
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._batch: Optional[RowBatch] = None
        self.steps = 0
        src = loaded.source
        if src.adapter_dir is not None:   # the checkpoint's adapter (PEFT calls it "default") and the base under it
            self._served[name] = ServedModel(name, src, loaded.template, system, adapter="default")
            if base_name and base_name != name:   # the base alone: no run of its own (no objective, no reference)
                base_src = dataclasses.replace(src, adapter_dir=None, ckpt_dir=None, saved={})
                self._served[base_name] = ServedModel(base_name, base_src, loaded.template, None, adapter=BASE_ADAPTER)
        else:
            self._served[name] = ServedModel(name, src, loaded.template, system, adapter=None)
        self.default_model = name

    # ------------------------------------------------------------------ models
    def models(self) -> List[str]:
        with self._lock:
            return list(self._served)

    def served(self, model: Optional[str]) -> ServedModel:
        with self._lock:
            name = model or self.default_model
            if name not in self._served:
                raise EngineError(404, f"model {name!r} is not served here; GET /v1/models lists: "
                                  f"{', '.join(self._served)}", "model_not_found", "model")
            return self._served[name]

    def add_adapter(self, name: str, source: ModelSource, template=None, system: Optional[str] = None) -> None:
        """Load `source.adapter_dir` as the model `name` (between two steps when the scheduler runs)."""
        with self._lock:
            if name in self._served:
                raise EngineError(409, f"model {name!r} is already served; DELETE /v1/adapters/{name} first",
                                  "model_exists", "name")
        self.run_exclusive(lambda model: self._load_adapter(name, source, template, system))

    def _load_adapter(self, name, source, template, system) -> None:
        from peft import PeftModel

        internal = f"a{next(self._ids)}"
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(source.adapter_dir), adapter_name=internal, is_trainable=False)
            else:   # a full model: the first adapter makes it a PeftModel; the full model stays as "__base__"
                self.model = peft_from_pretrained(self.model, str(source.adapter_dir), adapter_name=internal,
                                                  is_trainable=False)
                for s in self._served.values():
                    s.adapter = BASE_ADAPTER
        except (ValueError, OSError, RuntimeError, KeyError) as e:
            raise EngineError(400, f"{source.adapter_dir}: cannot load this adapter onto the served base "
                              f"({str(e).splitlines()[0][:200]})", "invalid_adapter") from None
        self.model.eval()
        with self._lock:
            self._served[name] = ServedModel(name, source, template, system, adapter=internal)

    def remove_adapter(self, name: str) -> None:
        served = self.served(name)
        if served.adapter in (None, BASE_ADAPTER):
            raise EngineError(400, f"model {name!r} is the base model, not an adapter; it cannot be removed",
                              "invalid_request_error", "name")

        def drop(model):
            busy = any(p.served is served for p in self._waiting) or (
                self._batch is not None and served.adapter in self._batch.adapters)
            if busy:
                raise EngineError(409, f"model {name!r} has requests in flight; retry when they have finished",
                                  "adapter_busy")
            with self._lock:
                del self._served[name]
            if served.adapter != "default":   # the checkpoint's own adapter stays loaded (cheap) but unnamed
                model.delete_adapter(served.adapter)

        self.run_exclusive(drop)

    def chat_prompt_ids(self, model: Optional[str], messages: List[dict]) -> List[int]:
        """The token ids the model sees for an OpenAI messages list: its run's template (and the run's system prompt
        when the messages have none), exactly as `prefswift preview` / training encode that conversation."""
        served = self.served(model)
        system, history, query = chat_to_turns(messages)
        if system is None:
            system = served.system
        return served.template.encode_prompt(self.tokenizer, system, history, query)

    # ------------------------------------------------------------------ requests
    def check_params(self, prompt_ids: List[int], p: SamplingParams) -> None:
        if not prompt_ids:
            raise EngineError(400, "the prompt is empty", param="prompt")
        if self.max_length and len(prompt_ids) + p.max_tokens > self.max_length:
            raise EngineError(400, f"the prompt ({len(prompt_ids)} tokens) plus max_tokens ({p.max_tokens}) exceeds "
                              f"the model's context of {self.max_length} tokens; shorten the prompt or lower "
                              "max_tokens", "context_length_exceeded", "max_tokens")
        if p.n > self.max_batch_size:
            raise EngineError(400, f"n={p.n} exceeds the server's --max_batch_size {self.max_batch_size}", param="n")
        if p.top_k < 0 or p.repetition_penalty <= 0:
            raise EngineError(400, f"top_k={p.top_k}, repetition_penalty={p.repetition_penalty}: top_k must be 0 (off) "
                              "or more, repetition_penalty above 0", param="top_k" if p.top_k < 0 else
                              "repetition_penalty")

    def submit(self, prompt_ids: List[int], params: SamplingParams, model: Optional[str] = None, loop=None,
               stream: bool = True) -> Handle:
        """Queue a request (`loop`: the caller's asyncio loop, to read it with `await handle.aget()`; `stream`
        False: only the last piece of each choice is delivered, read the text from `handle.choices`)."""
        return self.submit_many([(prompt_ids, params)], model, loop, stream)[0]

    def submit_many(self, requests, model: Optional[str] = None, loop=None, stream: bool = True) -> List[Handle]:
        """Queue [(prompt_ids, params), ...] at once: they join the batch together, in order (a batch of requests
        submitted to an idle engine is scheduled the same way every time, whatever ran before it)."""
        served = self.served(model)
        for prompt_ids, params in requests:
            self.check_params(prompt_ids, params)
        with self._lock:
            if self._stopping:
                raise EngineError(503, "the server is shutting down", "server_shutting_down")
            if len(self._waiting) + len(requests) > self.max_queue:
                raise QueueFull(retry_after=1 + len(self._waiting) // max(self.max_batch_size, 1))
            handles = []
            for prompt_ids, params in requests:
                handle = Handle(next(self._ids), params.n, len(prompt_ids), loop, stream)
                self._waiting.append(_Pending(handle, list(prompt_ids), params, served))
                handles.append(handle)
            self._wake.notify()
        return handles

    def run_exclusive(self, fn: Callable, timeout: Optional[float] = None):
        """fn(model) run by the scheduler between two steps (or here when it is not running); returns its result."""
        if self._thread is None or not self._thread.is_alive():
            return fn(self.model)
        done = queue.Queue()
        with self._lock:
            self._commands.append((fn, done))
            self._wake.notify()
        ok, value = done.get(timeout=timeout)
        if not ok:
            raise value
        return value

    # ------------------------------------------------------------------ scheduler
    def start(self) -> "Engine":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="prefswift-engine", daemon=True)
            self._thread.start()
        return self

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stop taking requests, finish those in flight (queued ones too), then stop the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def busy(self) -> int:
        """Requests queued or running."""
        with self._lock:
            running = len({r.handle.id for r in self._batch.rows}) if self._batch else 0
            return len(self._waiting) + running

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not (self._commands or self._waiting or self._batch or self._stopping):
                    self._wake.wait()
                if self._stopping and not (self._commands or self._waiting or self._batch):
                    return
                commands, self._commands = self._commands, []
            for fn, done in commands:
                try:
                    done.put((True, fn(self.model)))
                except Exception as e:  # noqa: BLE001 — handed to the caller's thread
                    done.put((False, e))
            try:
                self._step()
            except Exception as e:  # noqa: BLE001 — fail the requests in flight, keep serving
                self._fail_all(EngineError(500, f"generation failed: {type(e).__name__}: {e}", "engine_error"))

    def _fail_all(self, error: EngineError) -> None:
        if self._batch is not None:
            for h in {id(r.handle): r.handle for r in self._batch.rows}.values():
                h._fail(error)
        self._batch = None

    def _admit(self) -> List[_Pending]:
        """Waiting requests that fit the batch (rows and prefill tokens), oldest first; cancelled ones dropped."""
        rows = len(self._batch.rows) if self._batch else 0
        taken, tokens = [], 0
        with self._lock:
            keep = []
            for p in self._waiting:
                if p.handle.cancelled.is_set():
                    continue
                cost = len(p.prompt_ids) * p.params.n
                fits = rows + p.params.n <= self.max_batch_size and (
                    not taken or tokens + cost <= self.max_prefill_tokens)
                if fits and not keep:
                    taken.append(p)
                    rows += p.params.n
                    tokens += cost
                else:
                    keep.append(p)
            self._waiting = keep
        return taken

    @torch.inference_mode()
    def _step(self) -> None:
        if self._batch is not None:
            self._batch.drop_cancelled()
        newcomers = self._admit()
        if newcomers:
            fresh = RowBatch.prefill(self, newcomers)
            self._batch = fresh if self._batch is None or not self._batch.rows else self._batch.merge(fresh)
        if self._batch is not None and self._batch.rows:
            self._batch.decode(self)
            self.steps += 1
        if self._batch is not None and not self._batch.rows:
            self._batch = None

    # ------------------------------------------------------------------ used by RowBatch
    def forward(self, input_ids, attention_mask, position_ids, past, adapters: List[Optional[str]]):
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      cache=past, use_cache=True, logits_to_keep=1)
        if any(a is not None for a in adapters):
            kwargs["adapter_names"] = [a or BASE_ADAPTER for a in adapters]
        out = self.model(**kwargs)
        return out.logits[:, -1, :].float(), out.cache

    def sample(self, logits, rows) -> None:
        sample_next(self, logits, rows)


__all__ = ["Engine", "EngineError", "QueueFull", "SamplingParams", "Handle", "Delta", "Choice", "TokenLogprob",
           "ServedModel", "BASE_ADAPTER"]
