"""`prefswift eval` of a KTO run: its implicit rewards on the unpaired rows (`prefswift.evaluate.unpaired`).

Rows as the run saw them: the run's own eval split (--load_dataset_config true) or --dataset / --val_dataset, pairs
split into a desirable and an undesirable row as for training, KL rows built with the run's batch size. The reference
is the one the run used (`models.reference`), scored with the same forward as training (`unpaired_forward`).
"""
import time
from pathlib import Path

from ..arguments import RunArgs, section_from_flat
from ..arguments.fields import TrainArguments
from ..data.selection import select_pairs
from ..data.unpaired import add_kl_completions
from ..evaluate import format_table
from ..evaluate.rewards import deltas
from ..evaluate.unpaired import kto_eval_metrics, matched_pairs, row_logps, with_rewards
from ..models.checkpoint import load_for_inference
from ..models.reference import resolve_named
from ..scoring.logprobs import resolve_chunk_size
from ..train.setup_model import check_same_tokenizer
from .eval_output import write_eval


def run_kto(args: RunArgs, source, objective, reference, *, log=print) -> Path:
    other_source = resolve_named(args, args.infer.compare_to, "--compare_to") if args.infer.compare_to else None
    loaded = load_for_inference(source)
    rows, origin = select_pairs(args, loaded.template, loaded.tokenizer, saved=source.saved,
                                ckpt_dir=source.ckpt_dir, log=log, unpaired=True)
    if objective.uses_kl:  # the mismatched completions training pairs each row with, in runs of its batch size
        add_kl_completions(rows, section_from_flat(TrainArguments, source.saved).batch_size)
    start = time.time()
    chunk = resolve_chunk_size(args.pref.logprob_chunk_size, loaded.model.config.vocab_size,
                               next(loaded.model.parameters()).device.type)
    pad = loaded.tokenizer.pad_token_id
    score = dict(kl=objective.uses_kl, chunk_size=chunk)
    if reference.adapter_disabled:
        with loaded.model.disable_adapter():
            ref = row_logps(loaded.model, rows, pad, **score)
    else:
        check_same_tokenizer(source.tokenizer_dir, reference.source.tokenizer_dir)
        ref = row_logps(load_for_inference(reference.source).model, rows, pad, **score)
    records = with_rewards(row_logps(loaded.model, rows, pad, **score), ref, objective.beta)
    pairs = matched_pairs(records, rows)
    metrics = kto_eval_metrics(records, pairs)
    other_metrics = other_pairs = None
    extra = {"objective": f"kto (beta {objective.beta:g}, loss_type {objective.loss_type})",
             "reference": reference.note}
    if other_source is not None:
        check_same_tokenizer(source.tokenizer_dir, other_source.tokenizer_dir, what="--compare_to")
        del loaded  # one model in memory at a time
        other = with_rewards(row_logps(load_for_inference(other_source).model, rows, pad, **score), ref,
                             objective.beta)
        other_pairs = matched_pairs(other, rows)
        other_metrics = kto_eval_metrics(other, other_pairs)
        extra["compare_to"] = {"model": other_source.describe(), "metrics": other_metrics,
                               "deltas": deltas(metrics, other_metrics), "rows": other}
    notes = [f"rewards: {extra['objective']} against {reference.note}",
             f"rows: {metrics['rows']} ({metrics['desirable_rows']} desirable, {metrics['undesirable_rows']} "
             f"undesirable); accuracy over the {metrics['pairs']} prompts with one of each"]
    title = f"[prefswift] eval: {source.describe()} on {origin}"
    log(format_table(metrics, title, other_metrics, notes=notes) if metrics["pairs"] or metrics["rows"] else
        "no rows evaluated")
    return write_eval(args, source, metrics, records, rows, origin, start, pairs, other_pairs, log, **extra)


__all__ = ["run_kto"]
