"""`prefswift eval`: preference accuracy of a checkpoint or model on held-out pairs (see `prefswift.evaluate`).

Supports the same checkpoints and models as `infer`; pairs from --dataset (a registered dataset's own test split when
it has one), --val_dataset or --load_dataset_config true (the run's own eval split). Writes a table to the console and
a JSON file (<ckpt>/eval_result/<time>.json, or --infer_output).

Steps: resolve the checkpoint -> load -> select pairs -> score -> report.
"""
import time
from pathlib import Path
from typing import List

from ..arguments import RunArgs
from ..data.selection import result_path, select_pairs, wants_dataset
from ..errors import ArgumentError
from ..evaluate import eval_record, format_table, pair_logps, preference_metrics, write_json
from ..models.checkpoint import load_for_inference, resolve_source
from ..scoring.logprobs import resolve_chunk_size
from .common import run_command


def main(argv: List[str]) -> None:
    run_command("eval", argv, run_eval)


def run_eval(args: RunArgs, *, log=print) -> Path:
    """Evaluate the model named by --ckpt_dir / model flags on the selected pairs; returns the JSON path."""
    source = resolve_source(args)
    if not wants_dataset(args):
        raise ArgumentError("prefswift eval needs pairs: pass --dataset D (e.g. --dataset demo for its held-out "
                            "pairs), --val_dataset FILE, or --load_dataset_config true with a training --ckpt_dir")
    loaded = load_for_inference(source)
    rows, origin = select_pairs(args, loaded.template, loaded.tokenizer, saved=source.saved,
                                ckpt_dir=source.ckpt_dir, log=log)
    start = time.time()
    chunk = resolve_chunk_size(args.pref.logprob_chunk_size, loaded.model.config.vocab_size,
                               next(loaded.model.parameters()).device.type)
    pairs = pair_logps(loaded.model, rows, loaded.tokenizer.pad_token_id, chunk_size=chunk)
    metrics = preference_metrics(pairs)
    log(format_table(metrics, f"[prefswift] eval: {source.describe()} on {origin}"))
    record = eval_record(metrics, pairs, rows, model=source.describe(), ckpt_dir=source.ckpt_dir,
                         base_model=source.base.path, template=loaded.template.name, data=origin,
                         seconds=time.time() - start)
    path = write_json(result_path(args.infer.infer_output, source.ckpt_dir, "eval_result", ".json"), record)
    log(f"[prefswift] eval results written to {path}")
    return path


__all__ = ["main", "run_eval"]
