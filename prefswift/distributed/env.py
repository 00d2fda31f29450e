"""This process's place in a distributed job, read from the variables torchrun / accelerate / deepspeed set.

`dist_env()` is the one reader of RANK / LOCAL_RANK / WORLD_SIZE / LOCAL_WORLD_SIZE in prefswift.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from prefswift.errors import ArgumentError


@dataclass(frozen=True)
class DistEnv:
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    is_main: bool  # global rank 0: the process that logs, saves and plots

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_local_main(self) -> bool:
        return self.local_rank == 0


def _env_int(env: Mapping[str, str], name: str, default: Optional[int], minimum: int = 0,
             maximum: Optional[int] = None) -> Optional[int]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"an integer >= {minimum}" if maximum is None else f"an integer in {minimum}..{maximum}"
        raise ArgumentError(f"environment variable {name}={raw!r} is not valid — set it to {bounds}")
    return value


def dist_env(env: Optional[Mapping[str, str]] = None) -> DistEnv:
    """This process's place in the job, from the variables torchrun / accelerate set (single process if none)."""
    env = os.environ if env is None else env
    world_size = _env_int(env, "WORLD_SIZE", 1, minimum=1)
    rank = _env_int(env, "RANK", 0, maximum=world_size - 1)
    local_rank = _env_int(env, "LOCAL_RANK", 0)
    default_local = min(world_size, _env_int(env, "NPROC_PER_NODE", world_size, minimum=1))
    local_world_size = _env_int(env, "LOCAL_WORLD_SIZE", default_local, minimum=1)
    if local_rank >= local_world_size:
        raise ArgumentError(
            f"LOCAL_RANK={local_rank} is not below LOCAL_WORLD_SIZE={local_world_size} — "
            "start the job with torchrun or NPROC_PER_NODE instead of setting these by hand"
        )
    return DistEnv(rank, local_rank, world_size, local_world_size, rank == 0)




# accelerate's documented switch for wrapping a model spread over several GPUs (a device_map) in DDP without
# device_ids; read by `Accelerator.prepare_model`.
BYPASS_DEVICE_MAP_ENV = "ACCELERATE_BYPASS_DEVICE_MAP"


def allow_ddp_over_device_map(env=None) -> None:
    """MP+DDP: let accelerate wrap a device_map-spread model in DDP. Call before the Trainer prepares the model."""
    (os.environ if env is None else env)[BYPASS_DEVICE_MAP_ENV] = "true"


def init_process_group(backend: str, timeout_s: float) -> None:
    """Create the process group (env:// as torchrun sets it) with --ddp_timeout as every collective's timeout, for the
    backends the Trainer would start without one: on CPU, accelerate starts gloo with torch's 30-minute default and
    ignores the Trainer's ddp_timeout (on GPU it passes it on itself). Nothing when a group exists already."""
    from datetime import timedelta

    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down before the interpreter exits (letting gloo's threads
    die with the process can abort a rank with `terminate called without an active exception`)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
