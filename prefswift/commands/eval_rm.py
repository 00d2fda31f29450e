"""`prefswift eval` of a reward model (a `prefswift rm` run, its adapter, final or merged dir): pairwise accuracy.

Every held-out pair's prompt + chosen and prompt + rejected are scored by the reward model (the score head at the
last token, `prefswift.models.reward`), exactly as training scored them. Reported: pairwise_accuracy (the
share of pairs with r_chosen > r_rejected, strictly), reward_margin (mean r_chosen - r_rejected), the mean rewards,
and the length split of the other evaluations (`prefswift.evaluate.rewards.length_bias`). `--compare_to` scores a
second reward model on the same pairs. Pairs come from the same places as every eval (`data.selection.select_pairs`).
"""
import time
from pathlib import Path
from typing import Dict, List

from ..arguments import RunArgs
from ..errors import ArgumentError
from ..evaluate import format_table
from ..evaluate.rewards import deltas, length_bias, reward_metrics
from ..data.selection import select_pairs
from ..models.checkpoint import ModelSource, load_for_inference
from ..models.reference import resolve_named
from ..models.reward import SEQUENCE_CLASSIFICATION, score_token_ids
from ..train.setup_model import check_same_tokenizer
from .eval_output import write_eval


def reward_pairs(model, rows: List[dict], pad_token_id: int) -> List[Dict[str, float]]:
    """Per pair: reward_chosen, reward_rejected and the response token counts."""
    seqs = [list(r["prompt_input_ids"]) + list(r[key]) for r in rows
            for key in ("chosen_input_ids", "rejected_input_ids")]
    rewards = score_token_ids(model, seqs, pad_token_id).tolist()
    return [{"reward_chosen": rewards[2 * i], "reward_rejected": rewards[2 * i + 1],
             "chosen_tokens": len(r["chosen_input_ids"]), "rejected_tokens": len(r["rejected_input_ids"])}
            for i, r in enumerate(rows)]


def reward_model_metrics(pairs: List[Dict[str, float]]) -> Dict[str, float]:
    if not pairs:
        return {"pairs": 0}
    out = {"pairs": len(pairs)}
    rewards = reward_metrics(pairs)
    out["pairwise_accuracy"] = rewards.pop("reward_accuracy")
    out.update(rewards)
    out.update(length_bias(pairs))
    return out


def check_rm_options(args: RunArgs, source: ModelSource) -> None:
    used = [f"--{name}" for name in ("ref_model_type", "ref_model_id_or_path", "logprob_chunk_size")
            if name in args.explicit]
    if used:
        raise ArgumentError(f"{', '.join(used)}: {source.ckpt_dir or source.base.path} is a reward model (prefswift "
                            "rm): its scores use no reference and no log-probs; drop it")


def run_rm(args: RunArgs, source: ModelSource, objective, *, log=print) -> Path:
    check_rm_options(args, source)
    other_source = resolve_named(args, args.infer.compare_to, "--compare_to") if args.infer.compare_to else None
    if other_source is not None and other_source.head != SEQUENCE_CLASSIFICATION:
        raise ArgumentError(f"--compare_to {args.infer.compare_to}: not a reward model (prefswift rm run or its "
                            "adapter/final/merged dir); a reward model is compared with another reward model")
    loaded = load_for_inference(source)
    rows, origin = select_pairs(args, loaded.template, loaded.tokenizer, saved=source.saved,
                                ckpt_dir=source.ckpt_dir, log=log)
    start = time.time()
    pad = loaded.tokenizer.pad_token_id
    pairs = reward_pairs(loaded.model, rows, pad)
    metrics = reward_model_metrics(pairs)
    other_pairs = other_metrics = None
    extra = {"objective": objective.describe(), "reference": None, "length_bias_margin": "reward model"}
    if other_source is not None:
        check_same_tokenizer(source.tokenizer_dir, other_source.tokenizer_dir, what="--compare_to")
        del loaded  # one model in memory at a time
        other_pairs = reward_pairs(load_for_inference(other_source).model, rows, pad)
        other_metrics = reward_model_metrics(other_pairs)
        extra["compare_to"] = {"model": other_source.describe(), "metrics": other_metrics,
                               "deltas": deltas(metrics, other_metrics), "pairs": other_pairs}
    notes = [f"rewards: the reward model's score head ({objective.describe()}); pairwise accuracy = share of pairs "
             "with r_chosen > r_rejected", "length: split by response tokens; margin = reward margin"]
    if other_source is not None:
        notes.append(f"compare_to: {other_source.describe()}")
    log(format_table(metrics, f"[prefswift] eval: {source.describe()} on {origin}", other_metrics, notes=notes))
    return write_eval(args, source, metrics, pairs, rows, origin, start, pairs, other_pairs, log, **extra)


__all__ = ["run_rm", "reward_pairs", "reward_model_metrics"]
