"""`prefswift eval`: a checkpoint or model measured on held-out preference pairs (see `prefswift.evaluate`), or
against an opponent by a judge model (`--mode winrate`, `commands/eval_winrate.py`); a reward model (`prefswift rm`)
by its pairwise accuracy (`commands/eval_rm.py`).

Supports the same checkpoints and models as `infer`; pairs from --dataset (a registered dataset's own test split when
it has one), --val_dataset or --load_dataset_config true (the run's own eval split). For a checkpoint of a training run
the implicit rewards are the ones its training logged, against the reference the run used (`models.reference`);
`--compare_to` scores a second model on the same pairs against the same reference, side by side. Writes a table to the
console, a JSON file (<ckpt>/eval_result/<time>.json, or --infer_output / --output_dir) and a margin plot beside it.

Steps: resolve the checkpoint -> the run's objective -> load -> select pairs -> score the reference -> score the
model (and --compare_to) -> report.
"""
import time
from pathlib import Path
from typing import List, Optional

from ..algorithms import BatchObjective, PairObjective, build_objective
from ..arguments import RunArgs, section_from_flat
from ..arguments.algorithms import get_spec, is_algorithm, needs_reference
from ..arguments.fields import ModelArguments, PreferenceArguments
from ..data.selection import select_pairs, wants_dataset
from ..errors import ArgumentError
from ..evaluate import deltas, evaluation_metrics, format_table, pair_logps
from ..evaluate.rewards import margin_kind
from ..models.checkpoint import LoadedModel, ModelSource, load_for_inference, resolve_source
from ..models.reference import Reference, resolve_named, resolve_reference
from ..models.reward import SEQUENCE_CLASSIFICATION
from ..scoring.logprobs import resolve_chunk_size
from ..train.setup_model import check_same_tokenizer
from .eval_output import write_eval
from .common import run_command
from .eval_kto import run_kto
from .eval_rm import run_rm
from .eval_winrate import GENERATION_OPTIONS, run_winrate



def main(argv: List[str]) -> None:
    run_command("eval", argv, run_eval)


def run_eval(args: RunArgs, *, log=print) -> Path:
    """Evaluate the model named by --ckpt_dir / model flags; returns the JSON path."""
    check_mode_options(args)
    if args.infer.mode == "winrate":
        return run_winrate(args, log=log)
    return run_pairs(args, log=log)


def check_mode_options(args: RunArgs) -> None:
    """Generation and judge options act only in --mode winrate; winrate needs a judge; both need pairs."""
    if args.infer.mode != "winrate":
        used = [f"--{name}" for name in GENERATION_OPTIONS + ("judge_model",) if name in args.explicit]
        if used:
            verb = "acts" if len(used) == 1 else "act"
            raise ArgumentError(f"{', '.join(used)}: {verb} only with --mode winrate (answers generated and judged); "
                                "drop it, or add --mode winrate --judge_model MODEL")
    elif not args.infer.judge_model:
        raise ArgumentError("--mode winrate needs --judge_model: a local model dir, model type or hub id (any causal "
                            "LM; e.g. --judge_model tiny-qwen to try the plumbing)")
    if not wants_dataset(args):
        raise ArgumentError("prefswift eval needs pairs: pass --dataset D (e.g. --dataset demo for its held-out "
                            "pairs), --val_dataset FILE, or --load_dataset_config true with a training --ckpt_dir")


def run_objective(source: ModelSource, cli: ModelArguments) -> Optional[BatchObjective]:
    """The objective the run trained with (args.json), whose rewards eval reports; DPO's (default beta) for a model
    given a reference with --ref_model_*; None for a plain model (log-prob accuracy only)."""
    algo = source.saved.get("command")
    explicit_ref = bool(cli.ref_model_type or cli.ref_model_id_or_path)
    if algo and is_algorithm(algo):  # (a plugin's algorithm: its plugin was loaded from args.json)
        if get_spec(algo).data == "sft" and not explicit_ref:  # no rewards: a plain model (log-prob accuracy)
            return None
        if explicit_ref and not needs_reference(algo):
            raise ArgumentError(f"--ref_model_*: {source.ckpt_dir} was trained with {algo}, which is reference-free "
                                "(its rewards use no reference); drop --ref_model_*")
        objective = build_objective(algo, section_from_flat(PreferenceArguments, source.saved))
        if get_spec(algo).paired and not isinstance(objective, PairObjective):
            raise ArgumentError(f"{source.ckpt_dir} was trained with {algo}, whose objective has no pair rewards "
                                "(it is not a PairObjective); evaluate it as a plain model with --model_id_or_path")
        return objective
    if explicit_ref:
        return build_objective("dpo", PreferenceArguments())
    return None


def reference_logps(reference: Reference, loaded: LoadedModel, rows, chunk: int, reduce=None):
    """The reference's log-probs of every pair (summed, and as `reduce` — the objective's sequence log-probs — gives
    them): the loaded policy with its adapter disabled, or the separate reference model (loaded for this and
    released)."""
    pad = loaded.tokenizer.pad_token_id
    if reference.adapter_disabled:
        with loaded.model.disable_adapter():
            return pair_logps(loaded.model, rows, pad, chunk_size=chunk, reduce=reduce)
    check_same_tokenizer(loaded.source.tokenizer_dir, reference.source.tokenizer_dir)
    return pair_logps(load_for_inference(reference.source).model, rows, pad, chunk_size=chunk, reduce=reduce)


def run_pairs(args: RunArgs, *, log=print) -> Path:
    source = resolve_source(args)
    if source.head == SEQUENCE_CLASSIFICATION:  # a reward model (prefswift rm): pairwise accuracy of its scores
        return run_rm(args, source, build_objective(source.saved["command"],
                                                    section_from_flat(PreferenceArguments, source.saved)), log=log)
    objective = run_objective(source, args.model)
    reference = None
    if objective is not None and objective.needs_reference:
        reference = resolve_reference(source, args.model)
        if reference is None:
            raise ArgumentError(f"{source.describe()}: no reference to measure {objective.algo} rewards against is "
                                "recorded; pass --ref_model_id_or_path / --ref_model_type")
    if objective is not None and get_spec(objective.algo).data == "unpaired":  # KTO's rows, rewards and KL
        return run_kto(args, source, objective, reference, log=log)
    other_source = resolve_named(args, args.infer.compare_to, "--compare_to") if args.infer.compare_to else None
    loaded = load_for_inference(source)
    rows, origin = select_pairs(args, loaded.template, loaded.tokenizer, saved=source.saved,
                                ckpt_dir=source.ckpt_dir, log=log)
    start = time.time()
    chunk = resolve_chunk_size(args.pref.logprob_chunk_size, loaded.model.config.vocab_size,
                               next(loaded.model.parameters()).device.type)
    # the reduction training applies to policy and reference alike (sums, LD-weighted with --ld_alpha)
    reduce = objective.sequence_logps if objective else None
    ref = reference_logps(reference, loaded, rows, chunk, reduce) if reference is not None else None
    score = dict(chunk_size=chunk, reference=ref, rewards=objective.rewards if objective else None,
                 nll_all=bool(objective and objective.nll_all), reduce=reduce)
    pad = loaded.tokenizer.pad_token_id
    pairs = pair_logps(loaded.model, rows, pad, **score)
    metrics = evaluation_metrics(pairs)
    other_pairs = other_metrics = None
    if other_source is not None:
        check_same_tokenizer(source.tokenizer_dir, other_source.tokenizer_dir, what="--compare_to")
        del loaded  # one model in memory at a time
        other_pairs = pair_logps(load_for_inference(other_source).model, rows, pad, **score)
        other_metrics = evaluation_metrics(other_pairs)
    notes = describe(objective, reference, pairs, other_source)
    log(format_table(metrics, f"[prefswift] eval: {source.describe()} on {origin}", other_metrics, notes=notes))
    extra = {"objective": objective.describe() if objective else None,
             "reference": reference.note if reference else None, "length_bias_margin": margin_kind(pairs)}
    if other_source is not None:
        extra["compare_to"] = {"model": other_source.describe(), "metrics": other_metrics,
                               "deltas": deltas(metrics, other_metrics), "pairs": other_pairs}
    return write_eval(args, source, metrics, pairs, rows, origin, start, pairs, other_pairs, log, **extra)


def describe(objective: Optional[PairObjective], reference: Optional[Reference], pairs, other: Optional[ModelSource]):
    """The lines under the table's title: whose rewards, against what, which margin the length split uses."""
    if objective is None:
        lines = ["rewards: none (an SFT run, or a model without a training run's args.json; --ref_model_* gives DPO "
                 "rewards)"]
    elif reference is not None:
        lines = [f"rewards: {objective.describe()} against {reference.note}",
                 "KL est.: log pi - log pi_ref of the chosen responses (not samples of pi: can be negative)"]
    else:
        lines = [f"rewards: {objective.describe()}, reference-free (the rewards its training logs)"]
    lines.append(f"length: split by response tokens; margin = {margin_kind(pairs)} margin")
    if other is not None:
        lines.append(f"compare_to: {other.describe()}")
    return lines


__all__ = ["main", "run_eval"]
