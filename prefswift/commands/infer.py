"""`prefswift infer`: chat with a checkpoint or model, or answer a dataset's prompts into a JSONL file.

Supports: a LoRA checkpoint (base from its args.json), a merged or fully fine-tuned model, a plain model type or dir
(+ --adapter_name_or_path); `--merge_lora true` merges first (reusing <ckpt>-merged); greedy or sampled decoding with
the template's stop words, by the engine `deploy` serves with (`prefswift.generation`); interactive chat at a terminal,
JSON lines from a pipe; dataset mode with --dataset, --val_dataset or --load_dataset_config true.

Steps: resolve the checkpoint -> (merge) -> load -> dataset mode | chat.
"""
import dataclasses
import logging
import sys
from typing import List

from ..arguments import RunArgs
from ..data.selection import wants_dataset
from ..generation.local import LocalEngine, sampling_params
from ..infer.chat import ChatSession, run_chat
from ..infer.dataset_mode import run_dataset_infer
from ..merge import default_merged_dir, merge_lora
from ..models.checkpoint import MODEL_CONFIG, ModelSource, check_generates, load_for_inference, resolve_source
from ..errors import ArgumentError
from .common import run_command

logger = logging.getLogger("prefswift")


def main(argv: List[str]) -> None:
    import typer

    log = typer.echo if sys.stdin.isatty() else (lambda msg="": typer.echo(msg, err=True))
    run_command("infer", argv, lambda args: run_infer(args, log=log))


def check_generation(args: RunArgs) -> None:
    """Sampling settings that contradict each other (each value's own range was checked when parsed)."""
    infer = args.infer
    if infer.do_sample and infer.temperature == 0:
        raise ArgumentError("--temperature 0 with --do_sample true: temperature 0 means greedy decoding — drop "
                            "--do_sample (greedy is the default) or give a temperature above 0")
    if not infer.do_sample and "temperature" in args.explicit and infer.temperature > 0:
        logger.warning("--temperature %s has no effect without --do_sample true (decoding is greedy); add "
                       "--do_sample true to sample", infer.temperature)
    for name in ("top_p", "top_k"):
        if not infer.do_sample and name in args.explicit:
            logger.warning("--%s %s has no effect without --do_sample true (decoding is greedy); add --do_sample "
                           "true to sample", name, getattr(infer, name))


def run_infer(args: RunArgs, *, log=print, inp=None, out=None, err=None):
    """(merge first if asked) load, then dataset mode or interactive chat."""
    check_generation(args)
    source = resolve_source(args)
    check_generates(source, "prefswift infer")
    if args.infer.merge_lora and source.adapter_dir is not None:
        source = merged_source(args, source, log)
    loaded = load_for_inference(source)
    engine, params = LocalEngine(loaded), sampling_params(args.infer)
    log(f"[prefswift] infer: {source.describe()} | template {loaded.template.name}")
    try:
        if wants_dataset(args):
            return run_dataset_infer(args, loaded, engine, params, log=log)
        system = args.data.system if "system" in args.explicit else source.saved.get("system")
        session = ChatSession(engine, params, system=system, max_length=args.data.max_length)
        return run_chat(session, inp=inp, out=out, err=err, stream=args.infer.stream,
                        keep_history=args.infer.keep_history)
    finally:
        engine.close()


def merged_source(args: RunArgs, source: ModelSource, log) -> ModelSource:
    """--merge_lora true: merge into <ckpt>-merged (reused when it is already there), then load that."""
    merged = default_merged_dir(source.adapter_dir)
    if (merged / MODEL_CONFIG).is_file() and not args.infer.overwrite:
        log(f"[prefswift] using the merged model already in {merged} (--overwrite true to merge again)")
    else:
        merge_lora(args, None, log=log)
    explicit = set(args.explicit) - {"model_id_or_path", "adapter_name_or_path"}
    merged_args = dataclasses.replace(args, model=dataclasses.replace(args.model), explicit=frozenset(explicit),
                                      infer=dataclasses.replace(args.infer, ckpt_dir=str(merged)))
    new = resolve_source(merged_args)
    new.ckpt_dir = source.ckpt_dir  # results still go under the checkpoint the user named
    new.saved = source.saved
    return new


__all__ = ["main", "run_infer"]
