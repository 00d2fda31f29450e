"""Answers for the chat and arena pages: the one place `prefswift web` generates text.

`stream_reply` is the adapter to the generation engine: today it loads a run's adapter/model through
prefswift.models.checkpoint (what `infer` loads) and generates with prefswift.infer.generate.Generator (its template's
stops), streaming through transformers' TextIteratorStreamer. `deploy`'s engine replaces the body of this module
alone: the pages only call `stream_reply` and `reply`.
"""
import threading
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional

from ..arguments import parse_command
from ..arguments.fields import InferArguments

GENERATION_FIELDS = ("max_new_tokens", "temperature", "top_p", "top_k", "do_sample", "seed", "repetition_penalty")


class ModelCache:
    """Loaded models by directory, the `keep` most recently used (an arena match needs two)."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.loaded: "OrderedDict[str, object]" = OrderedDict()
        self.lock = threading.Lock()

    def get(self, model_dir: str):
        from ..models.checkpoint import check_generates, load_for_inference, resolve_source

        with self.lock:
            if model_dir in self.loaded:
                self.loaded.move_to_end(model_dir)
                return self.loaded[model_dir]
            source = resolve_source(parse_command("infer", ["--ckpt_dir", model_dir]))
            check_generates(source, "prefswift web")
            while len(self.loaded) >= self.keep:
                self.loaded.popitem(last=False)
            self.loaded[model_dir] = load_for_inference(source)
            return self.loaded[model_dir]


GENERATE_LOCK = threading.Lock()  # one generation at a time: a CPU (or one GPU) serves the pages in turn


def generation_options(options: Dict) -> InferArguments:
    """InferArguments from a page's options (unknown keys refused; values checked as on the command line)."""
    unknown = sorted(set(options) - set(GENERATION_FIELDS))
    if unknown:
        from ..errors import ArgumentError

        raise ArgumentError(f"unknown generation option(s) {', '.join(unknown)}; known: {', '.join(GENERATION_FIELDS)}")
    return InferArguments(**options)


def stream_reply(cache: ModelCache, model_dir: str, messages: List[Dict], options: Dict) -> Iterator[str]:
    """Text pieces of the model's answer to `messages` ([{role: system|user|assistant, content}], ending with the
    user's turn), as they are generated; the last piece completes the text with the template's stops applied."""
    from transformers import TextIteratorStreamer

    from ..infer.generate import Generator, set_seed

    infer = generation_options(options)
    loaded = cache.get(model_dir)
    system, history, query = split_messages(messages)
    ids = loaded.template.encode_prompt(loaded.tokenizer, system, history, query)
    generator = Generator(loaded, infer)
    streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: Dict = {}

    def run():
        try:
            set_seed(infer.seed)
            result["text"] = generator.generate(ids, streamer=streamer)
        except BaseException as e:  # noqa: BLE001 - reported to the page after the stream ends
            result["error"] = e
            streamer.end()

    with GENERATE_LOCK:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        shown = ""
        for piece in streamer:
            shown += piece
            yield piece
        thread.join()
    if "error" in result:
        raise result["error"]
    final = result.get("text", shown)
    if final.startswith(shown) and len(final) > len(shown):
        yield final[len(shown):]
    elif not final.startswith(shown):
        yield {"replace": final}  # a stop string cut what was already shown: the page replaces the text


def reply(cache: ModelCache, model_dir: str, messages: List[Dict], options: Dict) -> str:
    """The whole answer (the arena shows both answers at once)."""
    text = ""
    for piece in stream_reply(cache, model_dir, messages, options):
        text = piece["replace"] if isinstance(piece, dict) else text + piece
    return text


def split_messages(messages: List[Dict]):
    """(system, [(user, assistant), ...], last user text) of a page's message list; ValueError when malformed."""
    system: Optional[str] = None
    turns = list(messages)
    if turns and turns[0].get("role") == "system":
        system = str(turns.pop(0).get("content") or "") or None
    if not turns or turns[-1].get("role") != "user":
        raise ValueError("messages: the last one must be the user's")
    history = []
    for i in range(0, len(turns) - 1, 2):
        user, assistant = turns[i], turns[i + 1]
        if user.get("role") != "user" or assistant.get("role") != "assistant":
            raise ValueError("messages: roles must alternate user, assistant, ... after an optional system message")
        history.append((str(user.get("content", "")), str(assistant.get("content", ""))))
    return system, history, str(turns[-1].get("content", ""))


__all__ = ["ModelCache", "stream_reply", "reply", "split_messages", "generation_options"]
