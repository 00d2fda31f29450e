"""Training from an SFT run: which adapter a run starts from, which reference it compares with, and the chain
(base -> SFT run -> this run) recorded in args.json as `lineage`.

`--adapter_name_or_path X` (X: an SFT run dir, its `adapter/`, or any LoRA adapter dir; LLaMA-Factory's spelling for
the same thing) starts a run from that adapter in one of two ways:

* default: the adapter is merged into the base and a new LoRA adapter is trained on top; the reference (DPO, KTO) is
  the SFT model itself (the merged weights, with the new adapter disabled — no second copy);
* `--continue_adapter true`: the SFT adapter itself is trained further, and a frozen copy of it, loaded next to it as
  adapter "ref", is the reference.

Either way the reference is the SFT model — never the bare base (the join where LLaMA-Factory users get hurt), unless
`--ref_model base` asks for it (then the base is loaded as a separate reference model). `merge-lora`, `infer`,
`eval` and `sample` on the run rebuild the chain from args.json (`prefswift.models.checkpoint.resolve_source`).
"""
import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Tuple

from ..arguments import ARGS_FILE, RunArgs
from ..errors import ArgumentError

ADAPTER_CONFIG = "adapter_config.json"


def start_adapter(value: str, flag: str = "--adapter_name_or_path") -> Tuple[Path, Optional[Path]]:
    """(the LoRA adapter dir, the run dir it belongs to or None) of an SFT run dir, a checkpoint or an adapter dir."""
    path = Path(value).expanduser().resolve()
    if (path / ADAPTER_CONFIG).is_file():
        return path, (path.parent if (path.parent / ARGS_FILE).is_file() else None)
    if (path / "adapter" / ADAPTER_CONFIG).is_file():
        return path / "adapter", path
    if (path / "final" / "config.json").is_file():
        raise ArgumentError(f"{flag} {value}: that run fine-tuned the full model (final/ holds its weights, no "
                            f"adapter): start from it with --model_id_or_path {path / 'final'}")
    if not path.exists():
        raise ArgumentError(f"{flag} {value}: no such directory")
    raise ArgumentError(f"{flag} {value}: neither a LoRA adapter ({ADAPTER_CONFIG}) nor a run dir with an adapter/; "
                        "point it at the SFT run, its adapter/ or a checkpoint-N")


def _saved(directory: Optional[Path]) -> dict:
    path = directory / ARGS_FILE if directory is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def check_start_options(args: RunArgs) -> None:
    """--continue_adapter / --ref_model against the rest of the run (one line each)."""
    m, explicit = args.model, args.explicit
    if m.continue_adapter:
        if not m.adapter_name_or_path:
            raise ArgumentError("--continue_adapter true trains the adapter --adapter_name_or_path names: give it "
                                "(an SFT run dir or adapter dir)")
        if args.tuning.sft_type != "lora":
            raise ArgumentError("--continue_adapter true needs --sft_type lora (it trains the SFT LoRA adapter)")
        shape = [f"--{n}" for n in ("lora_rank", "lora_alpha", "lora_target_modules", "lora_dropout_p")
                 if n in explicit]
        if shape:
            raise ArgumentError(f"--continue_adapter true: {', '.join(shape)} does not act (the adapter keeps the "
                                "shape it was trained with); drop it")
        if m.ref_adapter_name_or_path:
            raise ArgumentError("--continue_adapter true: the reference is already the frozen SFT adapter; drop "
                                "--ref_adapter_name_or_path")
    if m.ref_model == "base":
        if not m.adapter_name_or_path:
            raise ArgumentError("--ref_model base: this run starts from the base model, whose reference is the base "
                                "already; drop it (it chooses the base over an SFT start, --adapter_name_or_path)")
        if {"ref_model_type", "ref_model_id_or_path", "ref_adapter_name_or_path"} & set(explicit):
            raise ArgumentError("--ref_model base and --ref_model_type/--ref_model_id_or_path/"
                                "--ref_adapter_name_or_path all choose the reference: keep one")


def with_sft_start(args: RunArgs, run_dir: Path) -> RunArgs:
    """The arguments with --adapter_name_or_path resolved to the adapter dir, --ref_model base turned into the
    separate reference it means, and the lineage for args.json."""
    m = args.model
    check_start_options(args)
    base = {"stage": "base", "model": m.model_id_or_path or m.model_type}
    if not m.adapter_name_or_path:
        return dataclasses.replace(args, lineage=(base, {"stage": args.command, "run": str(run_dir)}))
    adapter, sft_run = start_adapter(m.adapter_name_or_path)
    saved = _saved(sft_run) or _saved(adapter)
    if saved.get("adapter_name_or_path") and not saved.get("continue_adapter"):
        raise ArgumentError(f"--adapter_name_or_path {m.adapter_name_or_path}: that run itself trained on top of the "
                            f"adapter {saved['adapter_name_or_path']}, so its adapter alone is not the whole model: "
                            "merge it first (prefswift merge-lora --ckpt_dir RUN) and start from the merged model "
                            "with --model_id_or_path")
    chain: List[dict] = list(saved.get("lineage") or [base])[:-1] or [base]
    chain.append({"stage": saved.get("command", "adapter"), "run": str(sft_run or adapter), "adapter": str(adapter),
                  "used": "trained further (--continue_adapter)" if m.continue_adapter else "merged into the base"})
    reference = ("the base model (--ref_model base)" if m.ref_model == "base" else
                 "the SFT model (frozen copy of its adapter)" if m.continue_adapter else "the SFT model (merged)")
    chain.append({"stage": args.command, "run": str(run_dir), "reference": reference})
    model = dataclasses.replace(m, adapter_name_or_path=str(adapter))
    if m.ref_model == "base":
        model = dataclasses.replace(model, ref_model_type=m.model_type, ref_model_id_or_path=m.model_id_or_path)
    return dataclasses.replace(args, model=model, lineage=tuple(chain))


def continued_adapter(saved: dict) -> bool:
    """Whether a run trained its start adapter further (then that adapter is no SFT layer under the run's own)."""
    return bool(saved.get("continue_adapter"))


__all__ = ["start_adapter", "with_sft_start", "check_start_options", "continued_adapter"]
