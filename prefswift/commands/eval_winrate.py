"""`prefswift eval --mode winrate`: the model and an opponent answer held-out prompts, a judge model picks.

The opponent is --compare_to, else the run's reference (DPO), else the weights the run started from (the base with the
adapter disabled, for reference-free runs too). The judge (`prefswift.evaluate.winrate`) compares by log-prob, in both
orders. Writes a table to the console, every judgment to <result>-judgments.jsonl (one row per prompt: both answers,
both orders' probabilities and verdicts, the outcome) and the summary to <result>.json.

A judge with the same weights as one of the compared models (the same base, adapter and merged SFT adapter) tends to
prefer its own answers (self-preference bias): the run says so in one warning line and the summary's
`judge_is_compared_model` names which side it is ("model" or "opponent"; null when it is neither).

Steps: resolve the model, its opponent and the judge -> load -> held-out prompts -> generate with both -> load the
judge -> judge both orders -> report.
"""
import dataclasses
import json
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..arguments import RunArgs
from ..data.selection import result_path, select_pairs
from ..errors import ArgumentError
from ..evaluate import write_json
from ..evaluate.winrate import JUDGE_PROMPT, Judge, format_winrate, judge_all, summarize
from ..generation.local import BASE, LocalEngine, sampling_params
from ..models.checkpoint import LoadedModel, ModelSource, check_generates, load_for_inference, resolve_source
from ..models.reference import resolve_named, resolve_reference

GENERATION_OPTIONS = ("max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample", "seed")


def opponent_of(args: RunArgs, source: ModelSource) -> Tuple[Optional[ModelSource], str]:
    """(the opponent's source, or None for the model with its adapter disabled; a description)."""
    if args.infer.compare_to:
        other = resolve_named(args, args.infer.compare_to, "--compare_to")
        return other, f"--compare_to: {other.describe()}"
    reference = resolve_reference(source, args.model)
    if reference is None:
        raise ArgumentError(f"--mode winrate: {source.describe()} records no reference or base model to play "
                            "against; pass --compare_to MODEL_OR_CKPT")
    return reference.source, reference.note


def weights_of(source: ModelSource, adapter: bool = True) -> Tuple:
    """What a source's weights are made of: base, merged SFT adapter, adapter (None with the adapter disabled)."""
    def real(path):
        return str(Path(path).expanduser().resolve()) if path is not None and Path(path).expanduser().exists() \
            else (str(path) if path is not None else None)
    return real(source.base.path), source.pre_adapter, real(source.adapter_dir) if adapter else None


def judge_is_compared_model(judge: ModelSource, model: ModelSource, opponent: Optional[ModelSource]) -> Optional[str]:
    """"model" or "opponent" when the judge has the same weights as that side (see the module docstring), else None.
    `opponent` None: the model with its adapter disabled."""
    mine = weights_of(judge)
    if mine == weights_of(model):
        return "model"
    if mine == (weights_of(model, adapter=False) if opponent is None else weights_of(opponent)):
        return "opponent"
    return None


def unique_prompts(rows: List[dict], log) -> List:
    """The examples of the pairs with distinct (system, history, prompt), in order; repeats are counted."""
    seen, out = set(), []
    for row in rows:
        ex = row["example"]
        key = (ex.system, tuple(map(tuple, ex.history)), ex.prompt)
        if key not in seen:
            seen.add(key)
            out.append(ex)
    if len(out) < len(rows):
        log(f"[prefswift] {len(out)} distinct prompts ({len(rows) - len(out)} pairs repeat an earlier pair's prompt)")
    return out


def answers(loaded: LoadedModel, examples, infer, *, base: bool = False) -> List[str]:
    """Every example's prompt answered by `loaded` (in its own template; `base`: with its adapter disabled), by the
    engine; prompt i drawn with seed --seed + i."""
    engine = LocalEngine(loaded)
    params = sampling_params(infer)
    prompts = [loaded.template.encode_prompt(loaded.tokenizer, ex.system, ex.history, ex.prompt) for ex in examples]
    each = [dataclasses.replace(params, seed=params.seed + i) for i in range(len(prompts))]
    try:
        return [choices[0].text for choices in engine.generate(prompts, each, model=BASE if base else None)]
    finally:
        engine.close()


def run_winrate(args: RunArgs, *, log=print) -> Path:
    source = resolve_source(args)
    check_generates(source, "prefswift eval --mode winrate")
    judge_source = resolve_named(args, args.infer.judge_model, "--judge_model")
    opponent, opponent_note = opponent_of(args, source)
    self_judge = judge_is_compared_model(judge_source, source, opponent)
    if self_judge:
        log(f"[prefswift] warning: --judge_model {args.infer.judge_model} has the same weights as the {self_judge} "
            "it judges: a judge tends to prefer its own answers (self-preference bias); the result records it as "
            "judge_is_compared_model — pass another --judge_model for an unbiased win rate")
    loaded = load_for_inference(source)
    rows, origin = select_pairs(args, loaded.template, loaded.tokenizer, saved=source.saved,
                                ckpt_dir=source.ckpt_dir, log=log)
    examples = unique_prompts(rows, log)
    start = time.time()
    log(f"[prefswift] answering {len(examples)} prompts with the model, then with the opponent ({opponent_note})")
    mine = answers(loaded, examples, args.infer)
    if opponent is None:
        theirs = answers(loaded, examples, args.infer, base=True)
    loaded = None  # one model in memory at a time
    if opponent is not None:
        theirs = answers(load_for_inference(opponent), examples, args.infer)
    judge_loaded = load_for_inference(judge_source)
    judge = Judge(judge_loaded.model, judge_loaded.tokenizer, judge_loaded.template)
    path = result_path(args.infer.infer_output, source.ckpt_dir, "eval_result", ".json")
    jsonl = path.with_name(path.stem + "-judgments.jsonl")
    items = [{"prompt": ex.prompt, "system": ex.system, "history": [list(t) for t in ex.history], "answer": a,
              "opponent_answer": b} for ex, a, b in zip(examples, mine, theirs)]
    with open(jsonl, "w", encoding="utf-8") as f:
        def write(row):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()

        outcomes = judge_all(judge, items, write, log=log)
    summary = summarize(outcomes)
    notes = [f"model:    {source.describe()}", f"opponent: {opponent_note}", f"judge:    {judge_source.describe()} "
             "(log-prob of replying A / B / C=tie, both orders; a win needs both orders)"]
    log(format_winrate(summary, f"[prefswift] win rate on {origin}", notes))
    record = {"mode": "winrate", "model": source.describe(), "ckpt_dir": str(source.ckpt_dir) if source.ckpt_dir
              else None, "opponent": opponent_note, "judge": judge_source.describe(),
              "judge_is_compared_model": self_judge, "data": origin, **summary,
              "generation": {name: getattr(args.infer, name) for name in GENERATION_OPTIONS},
              "judge_prompt": JUDGE_PROMPT, "judgments": str(jsonl), "seconds": round(time.time() - start, 2)}
    write_json(path, record)
    log(f"[prefswift] win rate written to {path}; every judgment in {jsonl.name}")
    return path


__all__ = ["run_winrate"]
