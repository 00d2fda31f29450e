"""`prefswift deploy`: serve a checkpoint (and more LoRA runs on its base) behind an OpenAI-compatible API.

Supports what `infer` loads (--ckpt_dir RUN | adapter | checkpoint | merged dir, or --model_type/--model_id_or_path),
plus --adapters NAME=PATH ... on the same base, each a `model` a request may name; adapters added and dropped while
serving (POST/DELETE /v1/adapters); POST /v1/preference scores a pair as `prefswift eval` does. The HTTP layer is
`prefswift.serve.app`, generation `prefswift.generation.engine` (continuous batching), scoring `prefswift.evaluate`.

Steps: check where it may listen -> resolve and load the model -> the engine (+ adapters) -> the app -> uvicorn.
"""
import dataclasses
import socket
from pathlib import Path
from typing import List, Optional

from ..arguments import RunArgs
from ..errors import ArgumentError, PrefswiftError
from ..models.checkpoint import ModelSource, check_generates, load_for_inference, resolve_source, source_template
from ..run.state import is_run_dir, read_run
from ..serve.app import build_app
from ..generation.engine import Engine
from ..serve.server import check_exposure, effective_api_key, run_server
from ..generation.types import EngineError
from ..templates.check import check_template
from .common import run_command
from .deploy_preference import PairScorer


def main(argv: List[str]) -> None:
    run_command("deploy", argv, run_deploy)


def served_name(source: ModelSource, given: Optional[str]) -> str:
    """--served_model_name, else the run's name (a run dir's adapter/ or final/ is called by the run), else the
    model's directory name or model type."""
    if given:
        return given
    if source.ckpt_dir is not None:
        d = Path(source.ckpt_dir)
        return d.parent.name if d.name in ("adapter", "final") else d.name
    return source.model_args.model_type or Path(source.base.path).name


def base_name(source: ModelSource) -> str:
    return source.model_args.model_type or Path(source.base.path).name


def run_note(path) -> Optional[str]:
    """A line for a run dir that did not finish (still running, stopped on nan/inf, failed, interrupted): what is
    served is whatever it saved last."""
    if path is None or not is_run_dir(Path(path)):
        return None
    info = read_run(Path(path))
    if info.state == "finished":
        return None
    return f"the run {info.path} is {info.state} (step {info.step}); serving what it saved: {info.result or 'none'}"


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ArgumentError(f"--host {host} --port {port}: cannot listen there ({e.strerror}); pick another "
                                "--port, or a --host address of this machine") from None


class AdapterResolver:
    """NAME=PATH -> the adapter's source, its run's template and system prompt; refused unless it is a LoRA adapter
    trained on the served base."""

    def __init__(self, args: RunArgs, main: ModelSource):
        self.args, self.main = args, main

    def __call__(self, name: str, path: str):
        explicit = frozenset(self.args.explicit - {"model_id_or_path", "model_type", "template"})
        args = dataclasses.replace(self.args, model=dataclasses.replace(self.args.model, model_type=None,
                                                                        model_id_or_path=None, template=None),
                                   infer=dataclasses.replace(self.args.infer, ckpt_dir=path), explicit=explicit)
        try:
            source = resolve_source(args)
        except PrefswiftError as e:
            raise EngineError(400, f"adapter {name!r}: {e}", "invalid_adapter", "path") from None
        if source.adapter_dir is None:
            raise EngineError(400, f"adapter {name!r}: {path} is a full model, not a LoRA adapter; serve it with a "
                              "prefswift deploy of its own", "invalid_adapter", "path")
        if Path(source.base.path).resolve() != Path(self.main.base.path).resolve() or \
                source.pre_adapter != self.main.pre_adapter:
            raise EngineError(400, f"adapter {name!r}: trained on {source.base.path}, but this server's base is "
                              f"{self.main.base.path}; serve it with a prefswift deploy of its own",
                              "invalid_adapter", "path")
        return source, source_template(source), source.saved.get("system")


def run_deploy(args: RunArgs, *, log=print) -> None:
    d = args.deploy
    api_key = effective_api_key(d.api_key)
    check_exposure(d.host, api_key, d.allow_unauthenticated)
    check_port_free(d.host, d.port)
    note = run_note(args.infer.ckpt_dir)
    if note:
        log(f"[prefswift] deploy: warning: {note}")
    source = resolve_source(args)
    check_generates(source, "prefswift deploy")
    resolver = AdapterResolver(args, source)
    extra = [item.partition("=")[::2] for item in d.adapters]
    try:
        resolved = [(name, resolver(name, path)) for name, path in _unique(extra)]
    except EngineError as e:
        raise ArgumentError(f"--adapters: {e.message}") from None
    loaded = load_for_inference(source)
    note = template_note(loaded.tokenizer, loaded.template)
    if note:
        log(f"[prefswift] deploy: note: {note}")
    name = served_name(source, d.served_model_name)
    engine = Engine(loaded, name=name, base_name=base_name(source), system=source.saved.get("system"),
                    max_batch_size=d.max_batch_size, max_queue=d.max_queue)
    for adapter_name, (adapter_source, template, system) in resolved:
        try:
            engine.add_adapter(adapter_name, adapter_source, template, system)
        except EngineError as e:
            raise ArgumentError(f"--adapters {adapter_name}: {e.message}") from None
    app = build_app(engine, api_key=api_key, default_max_tokens=args.infer.max_new_tokens,
                    resolve_adapter=resolver, score_pair=PairScorer(loaded.tokenizer))
    log(f"[prefswift] deploy: {source.describe()} | template {loaded.template.name}"
        + ("" if api_key else " | no API key"))
    run_server(app, engine, d.host, d.port, log=log)


def template_note(tokenizer, template) -> Optional[str]:
    """One line when the model dir's own chat template (what another runtime reading the dir would use) does not give
    training's ids; deploy itself always formats prompts with the run's template."""
    problem = check_template(getattr(tokenizer, "chat_template", None), tokenizer, template)
    if problem is None:
        return None
    return (f"the model dir's chat template: {problem}; deploy formats prompts with training's template "
            f"{template.name}, but a runtime that reads the dir's chat_template would not (prefswift export writes "
            "training's template)")


def _unique(pairs):
    seen = set()
    for name, path in pairs:
        if name in seen:
            raise ArgumentError(f"--adapters: the name {name!r} is given twice; give every adapter its own name")
        seen.add(name)
        yield name, path


__all__ = ["main", "run_deploy"]
