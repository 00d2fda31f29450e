"""DeepSpeed configs for the HF Trainer (`--deepspeed zero2|zero3|zero2_offload|zero3_offload|path.json`).

The shipped configs use "auto" for every value the HF Trainer fills from its own arguments (batch sizes,
gradient accumulation, clipping, fp16/bf16, optimizer hyper-parameters, hidden-size based bucket sizes), so the
command line stays the single source of truth. DeepSpeed itself is not imported here: it is a GPU extra.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from typing import Optional

from prefswift.arguments.algorithms import needs_reference
from prefswift.errors import ArgumentError

PACKAGED = ("zero2", "zero3", "zero2_offload", "zero3_offload")
# ms-swift 2.x spellings
ALIASES = {"default-zero2": "zero2", "default-zero3": "zero3",
           "zero2-offload": "zero2_offload", "zero3-offload": "zero3_offload"}
OFF_VALUES = ("", "none", "false", "no", "0")


def packaged_config_path(name: str) -> str:
    return str(resources.files("prefswift.distributed").joinpath("ds_configs", f"{name}.json"))


def _load_json_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ArgumentError(f"--deepspeed {path}: cannot read the file ({exc.strerror}) — check the path") from None
    return _parse(text, f"--deepspeed {path}")


def _parse(text: str, where: str) -> dict:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArgumentError(
            f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}) — fix the file"
        ) from None
    if not isinstance(config, dict):
        raise ArgumentError(f"{where}: a DeepSpeed config must be a JSON object, got {type(config).__name__}")
    zero = config.get("zero_optimization", {})
    if not isinstance(zero, dict):
        raise ArgumentError(f"{where}: zero_optimization must be a JSON object like {{\"stage\": 2}}")
    stage = zero.get("stage", 0)
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):
        raise ArgumentError(f"{where}: zero_optimization.stage is {stage!r} — use 0, 1, 2 or 3")
    return config


def resolve_deepspeed(value: Optional[str]) -> Optional[dict]:
    """--deepspeed value -> config dict (a fresh copy), or None when DeepSpeed is off.

    Accepts a packaged name (zero2, zero3, zero2_offload, zero3_offload; ms-swift's default-zero2/3),
    a path to a JSON file, or an inline JSON object.
    """
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in OFF_VALUES:
        return None
    name = ALIASES.get(text.lower(), text.lower())
    if name in PACKAGED and not os.path.exists(text):
        return _load_json_file(packaged_config_path(name))
    if text.startswith("{"):
        return _parse(text, "--deepspeed (inline JSON)")
    if os.path.isfile(text):
        return _load_json_file(text)
    raise ArgumentError(
        f"--deepspeed {text}: no such file and not a known config — pass one of {', '.join(PACKAGED)} "
        "or the path to a DeepSpeed JSON config"
    )


def zero_stage(config: Optional[dict]) -> Optional[int]:
    """ZeRO stage of a resolved config (0 when it has no zero_optimization), None when DeepSpeed is off."""
    if config is None:
        return None
    return int(config.get("zero_optimization", {}).get("stage", 0))


def is_offload(config: Optional[dict]) -> bool:
    """True when optimizer states or parameters are offloaded to CPU/NVMe."""
    if not config:
        return False
    zero = config.get("zero_optimization", {})
    return any(str(zero.get(key, {}).get("device", "none")).lower() in ("cpu", "nvme")
               for key in ("offload_optimizer", "offload_param"))


def check_deepspeed_with_reference(algo: str, stage: Optional[int], sft_type: str,
                                   precompute_ref_log_probs: bool, has_separate_ref: bool) -> str:
    """How the reference model is provided, or ArgumentError when that cannot work under ZeRO-3.

    Returns one of:
      "none"             the loss needs no reference (ORPO, SimPO, CPO)
      "precomputed"      reference log-probs are computed once before training
      "adapter_disabled" LoRA: the policy with its adapters switched off is the reference (no second model)
      "separate"         a second model (full fine-tuning, or --ref_model_type/--ref_model_id_or_path); fine without
                         ZeRO-3, where every process holds whole parameters

    Under ZeRO-3 every parameter is partitioned across processes and only DeepSpeed's engine can gather it
    for a forward pass; a second, separately loaded model would need its own DeepSpeed engine, which
    prefswift does not build. So ZeRO-3 + a separate reference is refused unless the log-probs are precomputed.
    """
    if not needs_reference(str(algo).lower()):
        return "none"
    if precompute_ref_log_probs:
        return "precomputed"
    full = str(sft_type).lower() == "full"
    if not full and not has_separate_ref:
        return "adapter_disabled"
    if stage == 3:
        why = ("a separate reference model (--ref_model_type / --ref_model_id_or_path)" if has_separate_ref
               else "full fine-tuning, whose reference is a second copy of the model")
        raise ArgumentError(
            f"--deepspeed with ZeRO-3 and {algo.upper()} using {why}: the reference would have to be "
            "partitioned by DeepSpeed too — pass --precompute_ref_log_probs true (reference log-probs computed "
            "once before training), or use --deepspeed zero2"
            + ("" if full else ", or drop the separate reference so the LoRA base model serves as reference")
        )
    return "separate"
