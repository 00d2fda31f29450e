"""Which preference pairs `infer` (dataset mode) and `eval` run on.

Row selection (`select_pairs`):
  * `--load_dataset_config true`: the run's own eval split, rebuilt from its args.json (same datasets, eval_ratio,
    dataset_seed, system, lengths) — flags typed on this command line (e.g. --val_dataset_sample) win.
  * `--val_dataset V` (with or without --dataset): the rows of V.
  * `--dataset D`: all rows of D — or D's own test split when it is a registered dataset that has one
    (`demo` -> its held-out test pairs); with an explicit --eval_ratio, only that held-out share.
`--val_dataset_sample N` keeps N of them (drawn with --dataset_seed).
"""
import dataclasses
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..arguments import RunArgs, section_from_flat
from ..arguments.fields import DataArguments
from ..errors import ArgumentError
from .pipeline import build_preference_data


def _data_fields() -> set:
    return {f.name for f in dataclasses.fields(DataArguments)}


def wants_dataset(args: RunArgs) -> bool:
    d = args.data
    return bool(d.dataset or d.val_dataset or args.infer.load_dataset_config)


def effective_data_args(args: RunArgs, saved: dict, ckpt_dir: Optional[Path]) -> Tuple[DataArguments, bool]:
    """(data arguments to build, use the eval split?). `saved`: the checkpoint's args.json ({} if none)."""
    cli = args.data
    explicit = args.explicit
    overrides = {k: getattr(cli, k) for k in _data_fields() if k in explicit}
    if args.infer.load_dataset_config:
        if not saved or not saved.get("dataset"):
            where = ckpt_dir or "this model"
            raise ArgumentError(f"--load_dataset_config true: {where} has no args.json with a dataset; pass --dataset "
                                "(and --ckpt_dir of a training checkpoint to reuse its eval split)")
        values = dataclasses.asdict(section_from_flat(DataArguments, saved))
        values.update(overrides)
        values["train_dataset_sample"] = 1  # only the eval split is used: skip encoding the training rows
        return DataArguments(**values), True
    values = dataclasses.asdict(cli)
    if not values["dataset"]:
        values["dataset"], values["val_dataset"] = list(values["val_dataset"]), []
        use_eval = False
    else:
        use_eval = bool(values["val_dataset"])
    if "eval_ratio" in explicit:
        use_eval = True
    else:
        values["eval_ratio"] = 0.0
    if use_eval:
        values["train_dataset_sample"] = 1
    elif "train_dataset_sample" not in explicit:
        values["train_dataset_sample"] = values["val_dataset_sample"]
    return DataArguments(**values), use_eval


def select_pairs(args: RunArgs, template, tokenizer, *, saved: dict, ckpt_dir: Optional[Path], log=print,
                 unpaired: bool = False) -> Tuple[List[dict], str]:
    """Encoded pairs ({prompt_input_ids, chosen_input_ids, rejected_input_ids, example}) and where they came from.
    `saved` / `ckpt_dir`: the loaded checkpoint's args.json and directory (for --load_dataset_config). `unpaired`
    (a KTO run): KTO's rows ({prompt_input_ids, completion_input_ids, label, example}), pairs split into both."""
    data_args, use_eval = effective_data_args(args, saved, ckpt_dir)

    def quiet_summary(msg="", *a, **k):
        if not str(msg).startswith("[data] summary"):
            log(msg)

    data = build_preference_data(data_args, template, tokenizer, hub=args.model.hub, token=args.model.hub_token,
                                 log=quiet_summary, unpaired=unpaired, sample_test=not use_eval)
    s = data.summary
    if use_eval or data.eval:
        rows, origin = data.eval, s.eval_from
    else:
        rows, origin = data.train, ", ".join(st.label for st in s.sources)
    if not rows:
        if args.infer.load_dataset_config:
            raise ArgumentError(f"--load_dataset_config true: the run {ckpt_dir} had no eval split "
                                "(eval_ratio 0 and no val_dataset); pass --dataset FILE to choose pairs")
        raise ArgumentError(f"no pairs to use from {', '.join(data_args.dataset)} ({s.one_line()})")
    n = data_args.val_dataset_sample
    if n is not None and n > 0:
        rows = rows[:n]
    dropped = f"; {s.one_line()}" if s.dropped_total else ""
    log(f"[prefswift] {len(rows)} {'rows' if unpaired else 'pairs'} from {origin}{dropped}")
    return rows, origin


def result_path(infer_output: Optional[str], ckpt_dir: Optional[Path], kind: str, suffix: str) -> Path:
    """--infer_output FILE(.jsonl/.json) or DIR, else <ckpt>/<kind>/<time><suffix> for a checkpoint and
    ./<kind>/<time><suffix> for a plain model (never inside a hub cache)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if infer_output:
        p = Path(infer_output).expanduser()
        path = p if p.suffix in (".json", ".jsonl") else p / f"{stamp}{suffix}"
    else:
        path = (ckpt_dir if ckpt_dir is not None else Path.cwd()) / kind / f"{stamp}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["wants_dataset", "effective_data_args", "select_pairs", "result_path"]
