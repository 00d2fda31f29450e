"""`prefswift sample`: make preference data from a policy and a scorer.

For each distinct prompt of --dataset (`data.prompts`): K completions from the policy (--ckpt_dir or --model_type /
--model_id_or_path), scored by --reward_model or --judge_model (`evaluate.scorers`); the best-scored completion
against the worst (or a random other) becomes one row of --output_file, which dpo/orpo/simpo/cpo/kto read without
flags (`data.sampled` has the row format). Prompts without a clear pair (identical samples, equal scores, ties) go
to <name>.dropped.jsonl and are counted in the summary line and <name>.summary.json.

Resume: prompts are generated in fixed blocks of --sample_batch_size, each block from a seed made of --seed and its
index, and each prompt's row is appended whole; --resume true regenerates the block of the first missing prompt and
writes from there, so the files end as an uninterrupted run's would.

Steps: check options -> resolve policy and scorer -> prompts -> earlier output (resume / overwrite) -> load ->
blocks: generate, score, choose, append -> summary.
"""
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List

from ..arguments import RunArgs
from ..data.prompts import collect_prompts
from ..data.sampled import (RowAppender, choose_pair, drop_summary, dropped_row, mix_seed, pair_row, read_rows,
                            resume_point, side_files)
from ..errors import ArgumentError
from ..files import write_json_atomic
from .common import run_command

SETTINGS = ("num_samples", "pair_strategy", "sample_batch_size")
GENERATION = ("seed", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens")


def main(argv: List[str]) -> None:
    run_command("sample", argv, lambda args: run_sample(args))


def check_options(args: RunArgs) -> None:
    if bool(args.sample.reward_model) == bool(args.infer.judge_model):
        raise ArgumentError("sample: pass one scorer, --reward_model DIR or --judge_model MODEL" +
                            (" (not both)" if args.sample.reward_model else ""))
    if args.infer.temperature <= 0:
        raise ArgumentError("sample: --temperature must be above 0 (greedy decoding draws one answer K times)")
    if not str(args.sample.output_file).endswith(".jsonl"):
        raise ArgumentError(f"--output_file {args.sample.output_file}: give a .jsonl file")


def _settings(args: RunArgs, policy: str, scorer: str, engine: str, prompts: int) -> dict:
    d = args.data
    return {"policy": policy, "scorer": scorer, "engine": engine, "dataset": list(d.dataset), "prompts": prompts,
            "system": d.system, "columns": d.columns, "train_dataset_sample": d.train_dataset_sample,
            "dataset_seed": d.dataset_seed, **{k: getattr(args.sample, k) for k in SETTINGS},
            **{k: getattr(args.infer, k) for k in GENERATION}}


def _earlier_output(args: RunArgs, paths, settings: dict, log):
    """(prompts done, dropped counts) of the earlier output a --resume run continues; refuses to mix runs."""
    out, dropped, summary = paths
    present = [p for p in paths if p.exists()]
    if not present:
        if args.sample.resume:
            log(f"[prefswift] --resume true: nothing at {out} yet; starting from the first prompt")
        return 0, Counter()
    if not summary.is_file():
        raise ArgumentError(f"--output_file {out}: it exists and was not written by prefswift sample (no "
                            f"{summary.name}); pass another --output_file")
    if not args.sample.resume:
        if not args.infer.overwrite:
            raise ArgumentError(f"--output_file {out} exists: --resume true continues it, --overwrite true replaces it")
        for p in present:
            p.unlink()
        return 0, Counter()
    before = json.loads(summary.read_text(encoding="utf-8")).get("settings", {})
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
        raise ArgumentError(f"--resume true: {out} was written with other settings ({', '.join(changed)}: "
                            f"{', '.join(repr(before.get(k)) for k in changed)}); rerun with those or pass another "
                            "--output_file")
    return resume_point(read_rows(out), read_rows(dropped))


def _load_policy(source, args: RunArgs, engine: str):
    from ..models.checkpoint import load_for_inference
    from ..models.loader import load_tokenizer
    from ..templates import get_template

    if engine == "vllm":
        from ..infer.sampling import VllmSampler

        tokenizer = load_tokenizer(source.tokenizer_dir, source.model_args.trust_remote_code)
        template = get_template(source.base.template, tokenizer, str(source.base.path))
        return VllmSampler(source.base.path, tokenizer, template, args.infer, args.sample.num_samples), tokenizer, \
            template, None
    from ..infer.sampling import EngineSampler

    loaded = load_for_inference(source)
    return EngineSampler(loaded, args.infer, args.sample.num_samples), loaded.tokenizer, loaded.template, loaded


def _load_scorer(args: RunArgs, template, device, judge_source):
    from ..evaluate.scorers import JudgeScorer, load_reward_scorer

    if args.sample.reward_model:
        return load_reward_scorer(args.sample.reward_model, template, batch_size=args.sample.score_batch_size,
                                  device=device)
    from ..evaluate.winrate import Judge
    from ..models.checkpoint import load_for_inference

    judge = load_for_inference(judge_source)
    return JudgeScorer(Judge(judge.model, judge.tokenizer, judge.template), f"judge {args.infer.judge_model}")


def run_sample(args: RunArgs, *, log=print) -> Path:
    from ..infer.sampling import pick_engine
    from ..models.checkpoint import resolve_source
    from ..models.reference import resolve_named

    check_options(args)
    s, m = args.sample, args.model
    out = Path(s.output_file).expanduser()
    dropped_path, summary_path = side_files(out)
    source = resolve_source(args)
    policy = str(source.ckpt_dir) if source.ckpt_dir is not None else (m.model_id_or_path or m.model_type)
    judge_source = resolve_named(args, args.infer.judge_model, "--judge_model") if args.infer.judge_model else None
    if s.reward_model:
        scorer_id = f"reward_model {Path(s.reward_model).expanduser().resolve()}"
    else:
        scorer_id = f"judge {args.infer.judge_model}"
    engine = pick_engine(s.sample_engine, source.adapter_dir is not None)
    prompts = collect_prompts(args.data, hub=m.hub, token=m.hub_token, log=log)
    items = prompts.items
    settings = _settings(args, policy, scorer_id, engine, len(items))
    done, drops = _earlier_output(args, (out, dropped_path, summary_path), settings, log)
    limit = len(items) if s.max_prompts < 0 else min(len(items), s.max_prompts)
    data_note = drop_summary(prompts.dropped) if prompts.dropped else ""
    log(f"[prefswift] {len(items)} prompts from {', '.join(prompts.sources)} ({prompts.rows} rows"
        + (f"; {prompts.repeats} repeat an earlier prompt" if prompts.repeats else "")
        + (f"; dropped: {data_note}" if data_note else "") + ")"
        + (f"; resuming after {done}" if done else ""))
    pairs = done - sum(drops.values())
    start = time.time()

    def write_summary(finished: bool) -> None:
        write_json_atomic(summary_path, {
            "settings": settings, "output_file": str(out), "dropped_file": str(dropped_path), "prompts_done": done,
            "pairs": pairs, "dropped": dict(drops), "finished": finished, "data_rows": prompts.rows,
            "data_dropped": prompts.dropped, "data_repeats": prompts.repeats, "seconds": round(time.time() - start, 2)},
            indent=2)

    write_summary(done >= len(items))
    if done < limit:
        sampler, tokenizer, template, loaded = _load_policy(source, args, engine)
        device = next(loaded.model.parameters()).device if loaded is not None else None
        scorer = _load_scorer(args, template, device, judge_source)
        writers = RowAppender(out), RowAppender(dropped_path)
        from tqdm.auto import tqdm

        bar = tqdm(total=limit, initial=done, unit="prompt", desc="sample", file=sys.stderr, dynamic_ncols=True)
        batch = s.sample_batch_size
        try:
            for block in range(done // batch, (limit + batch - 1) // batch):
                lo, hi = block * batch, min((block + 1) * batch, len(items))  # whole blocks: the same draws always
                encoded = [template.encode_prompt(tokenizer, it.system, list(it.history), it.prompt)
                           for it in items[lo:hi]]
                groups = sampler.sample(encoded, mix_seed(args.infer.seed, block))
                for index in range(max(lo, done), min(hi, limit)):
                    item, samples = items[index], groups[index - lo]
                    scores = scorer.score(item, samples)
                    pair, reason = choose_pair(samples, scores, s.pair_strategy,
                                               random.Random(mix_seed(args.infer.seed, index)))
                    if pair is None:
                        writers[1].write(dropped_row(item, index, samples, scores, reason, policy, scorer_id))
                        drops[reason] += 1
                    else:
                        writers[0].write(pair_row(item, index, samples, scores, pair, policy, scorer_id))
                        pairs += 1
                    done += 1
                    bar.update(1)
        except KeyboardInterrupt:
            bar.close()
            log(f"\n[prefswift] sample interrupted after {done} of {len(items)} prompts; every written row is whole: "
                "rerun with --resume true to continue")
            raise SystemExit(130) from None
        finally:
            bar.close()
            sampler.close()
            for w in writers:
                w.close()
            write_summary(done >= len(items))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch()
    left = f"; {len(items) - done} prompts left (--resume true continues)" if done < len(items) else ""
    log(f"[prefswift] sample: {done} of {len(items)} prompts, {pairs} pairs written to {out}; dropped "
        f"{sum(drops.values())} ({drop_summary(drops)}) into {dropped_path.name}{left}; summary in "
        f"{summary_path.name}")
    return out


__all__ = ["main", "run_sample", "check_options"]
