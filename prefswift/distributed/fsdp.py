"""`--fsdp full_shard|shard_grad_op [offload] [--fsdp_config FILE]`: PyTorch FSDP2 (`fully_shard`) through accelerate.

The Trainer is given `fsdp=True` and an FSDP2 `fsdp_config` (transformers' keys: version 2, reshard_after_forward —
full_shard: True, shard_grad_op: False —, cpu_offload, auto_wrap_policy / transformer_layer_cls_to_wrap,
activation_checkpointing, cpu_ram_efficient_loading). state_dict_type is FULL_STATE_DICT: the final save gathers the
whole adapter / model on rank 0 in the normal layout (loadable by plain PEFT / transformers).

Refused in one line before anything loads (`check_fsdp`):
  * one process (accelerate then runs it unsharded), or several GPUs per process (model parallel under FSDP);
  * a machine without CUDA: accelerate selects FSDP only for GPU process groups (accelerate/state.py puts
    DistributedType.FSDP on MULTI_GPU/NPU/XPU/... only); on CPU (gloo, MULTI_CPU) `--fsdp` would silently train as
    plain DDP — so it is refused rather than ignored (torch's fully_shard does run on gloo, but a model sharded before
    the Trainer is then wrapped in DDP by accelerate's MULTI_CPU path: `NotImplementedError: Operator
    c10d.broadcast_.default does not have a sharding strategy registered.`);
  * with --deepspeed (two sharding engines), with a model spread over several GPUs per process (--device_map), with
    FSDP1-only strategies (hybrid_shard, no_shard) or `version: 1` in the config;
  * a separately loaded reference model (full fine-tuning's frozen copy, --ref_model_type/--ref_model_id_or_path)
    unless --precompute_ref_log_probs true: it would have to be sharded by its own FSDP wrapping, which the Trainer
    does not build (LoRA's adapter-off reference is the sharded policy itself and works);
  * 4/8-bit QLoRA: FSDP2 shards the quantized base only with a bnb_4bit_quant_storage matching the compute dtype,
    which prefswift's loader does not set: use DDP (NPROC_PER_NODE) or DeepSpeed ZeRO-2 for QLoRA;
  * --sync_ref_model (TR-DPO mixes a second full model into the reference).
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from prefswift.errors import ArgumentError

STRATEGIES = {"full_shard": True, "shard_grad_op": False}  # -> reshard_after_forward
FSDP1_ONLY = ("hybrid_shard", "hybrid_shard_zero2", "no_shard")
KNOWN_KEYS = ("version", "reshard_after_forward", "cpu_offload", "auto_wrap_policy", "transformer_layer_cls_to_wrap",
              "min_num_params", "activation_checkpointing", "cpu_ram_efficient_loading", "state_dict_type")


def _tokens(fsdp) -> list:
    if fsdp is None:
        return []
    items = fsdp.split() if isinstance(fsdp, str) else [str(x) for x in fsdp]
    return [i.strip().lower() for i in items if i.strip()]


def read_fsdp_config(value: Optional[str]) -> dict:
    """--fsdp_config: a JSON file or an inline JSON object of FSDP2 settings ({} when not given)."""
    if not value:
        return {}
    text = str(value).strip()
    where = "--fsdp_config (inline JSON)" if text.startswith("{") else f"--fsdp_config {text}"
    if not text.startswith("{"):
        try:
            with open(text, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ArgumentError(f"{where}: cannot read the file ({exc.strerror}) — check the path") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArgumentError(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})") from None
    if not isinstance(config, dict):
        raise ArgumentError(f"{where}: an FSDP config must be a JSON object")
    config = {k[5:] if k.startswith("fsdp_") else k: v for k, v in config.items()}  # accelerate's fsdp_ prefix
    unknown = sorted(set(config) - set(KNOWN_KEYS))
    if unknown:
        raise ArgumentError(f"{where}: unknown key(s) {', '.join(unknown)} — known: {', '.join(KNOWN_KEYS)}")
    if int(config.get("version", 2)) != 2:
        raise ArgumentError(f"{where}: version {config['version']} — prefswift runs FSDP2 (version 2) only")
    if str(config.get("state_dict_type", "FULL_STATE_DICT")).upper() != "FULL_STATE_DICT":
        raise ArgumentError(f"{where}: state_dict_type {config['state_dict_type']} — the final adapter/model is saved "
                            "whole (FULL_STATE_DICT) so that plain PEFT/transformers load it")
    return config


def fsdp_config(fsdp, config_value: Optional[str]) -> Optional[dict]:
    """The Trainer's fsdp_config for --fsdp/--fsdp_config (None when FSDP is off)."""
    tokens = _tokens(fsdp)
    if not tokens:
        if config_value:
            raise ArgumentError("--fsdp_config without --fsdp: add --fsdp full_shard (or shard_grad_op)")
        return None
    bad = [t for t in tokens if t in FSDP1_ONLY]
    if bad:
        raise ArgumentError(f"--fsdp {bad[0]} is an FSDP1 strategy; prefswift runs FSDP2: use full_shard (parameters, "
                            "gradients and optimizer state sharded) or shard_grad_op (parameters kept after forward)")
    strategies = [t for t in tokens if t in STRATEGIES]
    if len(strategies) != 1:
        raise ArgumentError("--fsdp needs exactly one of full_shard, shard_grad_op (optionally with offload, auto_wrap)")
    config = {"version": 2, "reshard_after_forward": STRATEGIES[strategies[0]],
              "state_dict_type": "FULL_STATE_DICT"}
    if "offload" in tokens:
        config["cpu_offload"] = True
    config.update(read_fsdp_config(config_value))
    return config


def planned_world_size(env) -> int:
    """The processes the run will have: under a launcher its WORLD_SIZE, else what NPROC_PER_NODE x NNODES start."""
    from .launch import launch_settings, under_launcher
    from .env import dist_env

    if under_launcher(env):
        return dist_env(env).world_size
    settings = launch_settings(env)
    return settings.nproc_per_node * settings.nnodes if settings else 1


def local_processes(env) -> int:
    from .launch import launch_settings, under_launcher
    from .env import dist_env

    if under_launcher(env):
        return dist_env(env).local_world_size
    settings = launch_settings(env)
    return settings.nproc_per_node if settings else 1


def check_fsdp(args, algo: str, *, cuda: Optional[bool] = None, n_gpus: Optional[int] = None) -> Optional[dict]:
    """Refuse what cannot work with --fsdp (module doc); the Trainer's fsdp_config, or None when FSDP is off."""
    t, m, pref = args.train, args.model, args.pref
    config = fsdp_config(t.fsdp, getattr(t, "fsdp_config", None))
    if config is None:
        return None
    if t.deepspeed:
        raise ArgumentError("--fsdp with --deepspeed: choose one sharding engine")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() != ""
    if not cuda:
        raise ArgumentError("--fsdp needs CUDA GPUs: accelerate runs FSDP2 only on GPU process groups (on CPU it would "
                            "silently train as plain DDP) — drop --fsdp here (NPROC_PER_NODE=N is DDP), or use "
                            "--deepspeed zero3 to shard on CPU")
    world = planned_world_size(os.environ)
    if world < 2:
        raise ArgumentError("--fsdp shards the model over processes, and this run has one: start several "
                            "(NPROC_PER_NODE=N, torchrun, or several nodes) — accelerate would run one process unsharded")
    if n_gpus is None:
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpus > local_processes(os.environ):
        raise ArgumentError(f"--fsdp needs one GPU per process, and {local_processes(os.environ)} process(es) per node "
                            f"see {n_gpus} GPUs (each would spread its model over several): set NPROC_PER_NODE="
                            f"{n_gpus}, or CUDA_VISIBLE_DEVICES to as many GPUs as processes")
    if m.device_map is not None:
        raise ArgumentError("--fsdp with --device_map: FSDP shards the model over processes, one GPU each — drop "
                            "--device_map")
    if m.quantization_bit:
        raise ArgumentError("--fsdp with 4/8-bit loading (QLoRA) is not supported: use DDP (NPROC_PER_NODE) or "
                            "--deepspeed zero2 for QLoRA")
    from prefswift.arguments.algorithms import needs_reference

    separate = bool(m.ref_model_type or m.ref_model_id_or_path) or args.tuning.sft_type == "full"
    if needs_reference(str(algo).lower()) and separate and not pref.precompute_ref_log_probs:
        raise ArgumentError(f"--fsdp and {algo.upper()} with a separately loaded reference model: it would need its "
                            "own FSDP sharding — pass --precompute_ref_log_probs true (reference log-probs computed "
                            "once before training)" + ("" if args.tuning.sft_type == "full" else
                                                       ", or drop the separate reference (the LoRA base serves)"))
    if getattr(pref, "sync_ref_model", False):
        raise ArgumentError("--fsdp with --sync_ref_model: the mixed reference model is a second full model; drop one")
    return config


__all__: Sequence[str] = ("check_fsdp", "fsdp_config", "read_fsdp_config")
