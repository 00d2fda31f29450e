"""The engine in this process, without HTTP: what `prefswift infer`, `eval --mode winrate` and `sample` generate with.

    local = LocalEngine(loaded)                        # loaded: models.checkpoint.LoadedModel
    params = sampling_params(args.infer)               # --infer's options -> SamplingParams (greedy unless do_sample)
    [choices] = local.generate([prompt_ids], params)   # all prompts submitted together, batched by the engine
    for piece in local.stream(prompt_ids, params):     # text as it is generated (closing the iterator cancels)
        ...
    local.close()

It is the same `Engine` (the same decoding loop, stops and sampling) that `prefswift deploy` serves: its scheduler
thread runs here and the calls below submit and wait. The engine's refusals become one-line `PrefswiftError`s.
"""
import dataclasses
from typing import Iterator, List, Optional, Sequence, Union

from ..errors import PrefswiftError
from .engine import Engine
from .types import Choice, EngineError, SamplingParams

MODEL = "model"   # the loaded model's name in its engine
BASE = "base"     # with an adapter: the base model under it (the adapter disabled)


def sampling_params(infer, *, n: int = 1, do_sample: Optional[bool] = None) -> SamplingParams:
    """The engine's parameters from the infer options (`arguments.fields.InferArguments`): max_new_tokens,
    repetition_penalty and seed always; temperature, top_p and top_k when sampling (`do_sample`, default
    --do_sample), greedy otherwise."""
    sample = infer.do_sample if do_sample is None else do_sample
    return SamplingParams(max_tokens=infer.max_new_tokens, temperature=infer.temperature if sample else 0.0,
                          top_p=infer.top_p if sample else 1.0, top_k=infer.top_k if sample else 0,
                          repetition_penalty=float(infer.repetition_penalty), n=n, seed=infer.seed)


class LocalEngine:
    def __init__(self, loaded, *, max_batch_size: int = 32):
        self.loaded = loaded
        self.engine = Engine(loaded, name=MODEL, base_name=BASE, max_batch_size=max_batch_size, max_queue=1 << 30)
        self.eos_ids, self.stop_strings = self.engine.eos_ids, self.engine.stop_strings

    def _submit(self, requests, model: Optional[str], stream: bool):
        try:
            return self.engine.start().submit_many(requests, model=model or MODEL, stream=stream)
        except EngineError as e:
            message = e.message.replace("max_tokens", "--max_new_tokens") if e.param == "max_tokens" else e.message
            raise PrefswiftError(f"generation: {message}") from None

    @staticmethod
    def _wait(handle) -> List[Choice]:
        try:
            return handle.result()
        except EngineError as e:
            raise PrefswiftError(f"generation: {e.message}") from None

    def submit(self, prompts: Sequence[List[int]], params: Union[SamplingParams, Sequence[SamplingParams]],
               model: Optional[str] = None) -> Iterator[List[Choice]]:
        """Submit every prompt at once (one params for all, or one each); yield each prompt's choices in order as
        they finish. `model`: MODEL (default) or BASE (the model with its adapter disabled)."""
        each = [params] * len(prompts) if isinstance(params, SamplingParams) else list(params)
        handles = self._submit(list(zip(prompts, each)), model, stream=False)
        try:
            for handle in handles:
                yield self._wait(handle)
        finally:
            for handle in handles:
                handle.cancel()   # a caller gone early (an error, Ctrl-C): the rest leave the batch

    def generate(self, prompts: Sequence[List[int]], params, model: Optional[str] = None) -> List[List[Choice]]:
        return list(self.submit(prompts, params, model))

    def stream(self, prompt_ids: List[int], params: SamplingParams, model: Optional[str] = None) -> Iterator[str]:
        """The answer's text in pieces as they are generated (stops never shown)."""
        [handle] = self._submit([(prompt_ids, dataclasses.replace(params, n=1))], model, stream=True)
        try:
            while True:
                try:
                    delta = handle.get()
                except EngineError as e:
                    raise PrefswiftError(f"generation: {e.message}") from None
                if delta is None:
                    return
                if delta.text:
                    yield delta.text
        finally:
            handle.cancel()

    def close(self) -> None:
        self.engine.shutdown()


__all__ = ["LocalEngine", "sampling_params", "MODEL", "BASE"]
