"""`prefswift infer` dataset mode: answer every selected prompt into a JSONL file (see `data.selection`).

All prompts go to the engine at once (it batches them); answers are written in order as they finish. Prompt i is
drawn with seed --seed + i, so an answer does not depend on the other prompts.
"""
import dataclasses
import json
import time
from pathlib import Path

from ..arguments import RunArgs
from ..data.selection import result_path, select_pairs
from ..generation.local import LocalEngine, SamplingParams
from ..models.checkpoint import LoadedModel


def run_dataset_infer(args: RunArgs, loaded: LoadedModel, engine: LocalEngine, params: SamplingParams,
                      log=print) -> Path:
    """Generate an answer for every selected prompt; one JSON line each with prompt, response, chosen, rejected."""
    source = loaded.source
    rows, origin = select_pairs(args, loaded.template, loaded.tokenizer, saved=source.saved, ckpt_dir=source.ckpt_dir,
                                log=log)
    path = result_path(args.infer.infer_output, source.ckpt_dir, "infer_result", ".jsonl")
    start = time.time()
    prompts = [list(row["prompt_input_ids"]) for row in rows]
    each = [dataclasses.replace(params, seed=params.seed + i if params.seed is not None else None)
            for i in range(len(rows))]
    with open(path, "w", encoding="utf-8") as f:
        for i, (row, choices) in enumerate(zip(rows, engine.submit(prompts, each))):
            ex = row["example"]
            response = choices[0].text
            record = {"prompt": ex.prompt, "response": response, "chosen": ex.chosen, "rejected": ex.rejected}
            if ex.system is not None:
                record["system"] = ex.system
            if ex.history:
                record["history"] = [list(t) for t in ex.history]
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            log(f"[{i + 1}/{len(rows)}] {ex.prompt[:80]!r} -> {response[:120]!r}")
    log(f"[prefswift] {len(rows)} responses in {time.time() - start:.1f}s written to {path}")
    return path


__all__ = ["run_dataset_infer"]
