"""Answers for the chat and arena pages through `prefswift deploy`'s engine (prefswift.generation.engine), not a copy.

One Engine per base model: a LoRA run joins the engine of its base as an adapter (several runs on one base share the
weights, and their requests are batched together); a full model (final/, a merged dir) gets an engine of its own.
A run is served under the name of the directory loaded (its adapter/, final/ or newest whole checkpoint).
"""
import threading
from typing import Dict, Iterator, List

from ..arguments import parse_command
from ..arguments.fields import InferArguments
from ..generation.local import sampling_params
from ..generation.types import EngineError, SamplingParams

PAGE_OPTIONS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample", "seed")


class Engines:
    """The engines serving the runs the pages talk to (started on first use, shut down with the server)."""

    def __init__(self):
        self.engines: Dict[tuple, object] = {}
        self.lock = threading.Lock()

    def get(self, model_dir: str):
        """(engine, served name) for the model in `model_dir` (loaded on first use)."""
        from ..models.checkpoint import check_generates, load_for_inference, resolve_source, source_template
        from ..generation.engine import Engine

        with self.lock:
            for engine in self.engines.values():
                if model_dir in engine.models():
                    return engine, model_dir
            source = resolve_source(parse_command("infer", ["--ckpt_dir", model_dir]))
            check_generates(source, "prefswift web")
            key = ((str(source.base.path), source.pre_adapter) if source.adapter_dir is not None
                   else ("full", model_dir))
            system = source.saved.get("system")
            if key in self.engines:
                self.engines[key].add_adapter(model_dir, source, source_template(source), system)
            else:
                self.engines[key] = Engine(load_for_inference(source), name=model_dir, system=system).start()
            return self.engines[key], model_dir

    def shutdown(self) -> None:
        with self.lock:
            for engine in self.engines.values():
                engine.shutdown()
            self.engines.clear()


def sampling(options: Dict, n: int = 1) -> SamplingParams:
    """The engine's sampling parameters from a page's options (checked like the command line's: one error line)."""
    unknown = sorted(set(options) - set(PAGE_OPTIONS))
    if unknown:
        raise EngineError(400, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(PAGE_OPTIONS)}")
    try:
        infer = InferArguments(**options)
    except Exception as e:  # noqa: BLE001 - ArgumentError or a bad type: one line for the page
        raise EngineError(400, str(e)) from None
    return sampling_params(infer, n=n)  # as `prefswift infer` reads the same options


def stream_reply(engines: Engines, model_dir: str, messages: List[Dict], options: Dict) -> Iterator[str]:
    """Text pieces of the model's answer to `messages` ([{role, content}], OpenAI's form, ending with the user's
    turn), as the engine generates them (the template's stops never reach the text)."""
    params = sampling(options)
    engine, name = engines.get(model_dir)
    handle = engine.submit(engine.chat_prompt_ids(name, messages), params, model=name)
    try:
        for delta in handle:
            if delta.text:
                yield delta.text
    finally:
        handle.cancel()  # a page gone mid-answer: its row leaves the batch (a no-op once finished)


def answers(engines: Engines, model_dir: str, prompt: str, options: Dict, n: int) -> List[str]:
    """`n` whole answers to one prompt (the arena; n=2 for two samples of one run: choice i is drawn with seed+i)."""
    params = sampling(options, n)
    engine, name = engines.get(model_dir)
    handle = engine.submit(engine.chat_prompt_ids(name, [{"role": "user", "content": prompt}]), params, model=name,
                           stream=False)
    return [choice.text for choice in handle.result()]


__all__ = ["Engines", "stream_reply", "answers", "sampling"]
