"""Which GPUs each process uses, and how the model is spread over them.

`plan_devices` is a pure function of the facts (visible GPU count, processes per node, this process's
local rank, free memory per GPU), so every shape can be unit-tested without a GPU. `gather_device_facts`
is the only place that asks torch about the hardware.

Shapes (G visible GPUs, N processes per node):
  G == 0           -> "cpu"     (N > 1: DDP on CPU with the gloo backend)
  G == N == 1      -> "single"  (whole model on cuda:0)
  N == G > 1       -> "ddp"     (one GPU per process)
  N == 1 < G       -> "mp"      (one process, model spread over all G GPUs)
  1 < N < G, N | G -> "mp_ddp"  (each process spreads its model over G/N GPUs; DDP across processes)

MP+DDP layout: process r gets GPUs r, r+N, r+2N, ... (ms-swift's layout). Its first GPU therefore is
cuda:LOCAL_RANK, the device accelerate / the HF Trainer / NCCL pick for that process by default, so no GPU
is claimed by two processes' communicators (the classic MP+DDP start-up crash) and inputs land on the GPU
that holds the embeddings. Every process gets the same `max_memory` value per GPU -- derived from the
smallest free memory over ALL visible GPUs -- so transformers' balanced "auto" device_map produces the same
layer layout on every rank.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from prefswift.errors import ArgumentError

GIB = 1024**3
# max_memory bounds are rounded down to this step so that tiny differences in what two processes measured
# (or a few MiB allocated in between) do not change the layout.
MEMORY_STEP = 256 * 1024**2
# Free memory we keep out of the weights' budget for activations, logits and optimizer state.
DEFAULT_RESERVE_FRACTION = 0.2
# Set by a user (or a launcher) to pin the free memory per visible GPU: "24GiB,24GiB" or bytes "25769803776,...".
FREE_MEMORY_ENV = "PREFSWIFT_GPU_FREE_MEMORY"


@dataclass(frozen=True)
class DevicePlan:
    """Where one process (local_rank of local_world_size) puts its model.

    device_map: None (CPU, or DeepSpeed places the model), {"": gpu} (whole model on one GPU),
    or "auto" (balanced over `gpus`, bounded by `max_memory`, whose keys are exactly `gpus`).
    """

    world_size: int
    local_world_size: int
    local_rank: int
    gpus: tuple
    device_map: object
    max_memory: Optional[dict]
    mode: str

    @property
    def backend(self) -> str:
        """torch.distributed backend for this plan."""
        return "gloo" if self.mode == "cpu" else "nccl"

    @property
    def device(self) -> str:
        """The device inputs go to (the first GPU of this process, or cpu)."""
        return f"cuda:{self.gpus[0]}" if self.gpus else "cpu"

    def model_load_kwargs(self) -> dict:
        """Keyword arguments for `from_pretrained` (device_map, and max_memory when spreading over GPUs)."""
        if self.device_map is None:
            return {}
        kwargs = {"device_map": self.device_map}
        if self.device_map == "auto":
            if self.max_memory is None:
                raise ValueError("model-parallel plan has no max_memory: pass free_memory to plan_devices")
            kwargs["max_memory"] = dict(self.max_memory)
        return kwargs

    def describe(self) -> str:
        who = f"local rank {self.local_rank}/{self.local_world_size} (world size {self.world_size})"
        ddp = f" + DDP across {self.world_size} processes [{self.backend}]" if self.world_size > 1 else ""
        if self.mode == "cpu":
            return f"{who}: CPU{ddp}"
        gpus = ",".join(f"cuda:{g}" for g in self.gpus)
        if self.device_map is None:
            where = f"{gpus}, model placed by DeepSpeed"
        elif self.device_map == "auto":
            if self.max_memory:
                bound = f"max_memory {_gib(next(iter(self.max_memory.values())))} each"
            else:
                bound = "max_memory unknown (free memory not measured)"
            where = f"model parallel over {gpus} (device_map=auto, {bound})"
        else:
            where = f"whole model on {gpus}"
        return f"{who}: {where}{ddp}"


@dataclass(frozen=True)
class DeviceFacts:
    n_visible_gpus: int
    free_memory: Optional[list]  # bytes free per visible GPU, or None when not measured


def _gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f} GiB"


def _divisors(n: int) -> list:
    return [d for d in range(1, n + 1) if n % d == 0]


def gpus_for_rank(n_visible_gpus: int, local_world_size: int, local_rank: int) -> tuple:
    """GPU indices of one process: r, r+N, r+2N, ... (see module docstring for why interleaved)."""
    return tuple(range(local_rank, n_visible_gpus, local_world_size))


def plan_devices(
    n_visible_gpus: int,
    local_world_size: int,
    local_rank: int,
    free_memory: Optional[Sequence[int]],
    *,
    use_deepspeed: bool = False,
    reserve_fraction: float = DEFAULT_RESERVE_FRACTION,
    world_size: Optional[int] = None,
) -> DevicePlan:
    """Plan this process's devices. Pure: the same inputs always give the same plan.

    free_memory: free bytes per visible GPU (len == n_visible_gpus), or None when unknown (dry runs);
    world_size: all processes on all nodes (defaults to local_world_size, i.e. one node).
    Raises ArgumentError for shapes the user must change.
    """
    g, n = int(n_visible_gpus), int(local_world_size)
    if g < 0:
        raise ValueError(f"n_visible_gpus must be >= 0, got {g}")
    if n < 1:
        raise ArgumentError(f"NPROC_PER_NODE={n}: the number of processes per node must be at least 1")
    if not 0 <= local_rank < n:
        raise ValueError(f"local_rank {local_rank} is outside 0..{n - 1}")
    world = n if world_size is None else int(world_size)
    if world < n or world % n:
        raise ValueError(f"world_size {world} is not a multiple of local_world_size {n}")
    if not 0 <= reserve_fraction < 1:
        raise ValueError(f"reserve_fraction must be in [0, 1), got {reserve_fraction}")
    if free_memory is not None:
        free_memory = [int(m) for m in free_memory]
        if len(free_memory) != g:
            raise ValueError(f"free_memory has {len(free_memory)} entries for {g} visible GPUs")
        if any(m <= 0 for m in free_memory):
            raise ArgumentError(
                f"a visible GPU reports no free memory ({free_memory}) — free it or hide it with CUDA_VISIBLE_DEVICES"
            )

    if g == 0:  # DDP with gloo; DeepSpeed runs ZeRO on its CPU accelerator with gloo too
        return DevicePlan(world, n, local_rank, (), None, None, "cpu")

    if n > g:
        raise ArgumentError(
            f"NPROC_PER_NODE={n} but only {g} GPU(s) are visible — set NPROC_PER_NODE to one of "
            f"{_divisors(g)} (each process needs its own GPU), or make more GPUs visible with CUDA_VISIBLE_DEVICES"
        )
    if g % n:
        raise ArgumentError(
            f"NPROC_PER_NODE={n} does not divide the {g} visible GPUs evenly — set NPROC_PER_NODE to one of "
            f"{_divisors(g)}, or set CUDA_VISIBLE_DEVICES to {n * (g // n)} GPUs"
        )

    per_rank = g // n
    gpus = gpus_for_rank(g, n, local_rank)
    if per_rank > 1 and use_deepspeed:
        raise ArgumentError(
            f"--deepspeed cannot be combined with model parallelism ({n} process(es) on {g} visible GPUs gives each "
            f"process {per_rank} GPUs): DeepSpeed shards/partitions the model itself and needs exactly one GPU per "
            f"process — set NPROC_PER_NODE={g} (use --deepspeed zero3 if the model is too big for one GPU), "
            f"or drop --deepspeed to keep {per_rank}-GPU model parallelism per process"
        )

    if per_rank == 1:
        mode = "single" if world == 1 else "ddp"
        device_map = None if use_deepspeed else {"": gpus[0]}
        return DevicePlan(world, n, local_rank, gpus, device_map, None, mode)

    mode = "mp" if world == 1 else "mp_ddp"
    max_memory = None
    if free_memory is not None:
        bound = int(min(free_memory) * (1.0 - reserve_fraction)) // MEMORY_STEP * MEMORY_STEP
        if bound <= 0:
            raise ArgumentError(
                f"the smallest free GPU memory ({_gib(min(free_memory))}) leaves nothing for the model — "
                "free GPU memory or hide the busy GPU with CUDA_VISIBLE_DEVICES"
            )
        max_memory = {gpu: bound for gpu in gpus}
    return DevicePlan(world, n, local_rank, gpus, "auto", max_memory, mode)


def parse_memory_list(text: str) -> list:
    """'24GiB,20GB,1073741824' -> bytes per GPU (used for PREFSWIFT_GPU_FREE_MEMORY)."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    values = []
    for item in text.split(","):
        item = item.strip().lower()
        number = item.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = item[len(number):]
        try:
            if unit not in units:
                raise ValueError
            values.append(int(float(number) * units[unit]))
        except ValueError:
            raise ArgumentError(
                f"{FREE_MEMORY_ENV}={text!r}: '{item}' is not a memory size — use a comma list like 24GiB,24GiB"
            ) from None
    return values


def gather_device_facts(env: Optional[Mapping[str, str]] = None) -> DeviceFacts:
    """Ask torch how many GPUs are visible and how much memory each has free.

    Prefers NVML (no CUDA context is created on other processes' GPUs); falls back to
    torch.cuda.mem_get_info. PREFSWIFT_GPU_FREE_MEMORY in the environment overrides the measurement,
    which makes every process use exactly the same numbers.
    """
    import torch

    env = os.environ if env is None else env
    if not torch.cuda.is_available():
        return DeviceFacts(0, [])
    count = torch.cuda.device_count()
    pinned = env.get(FREE_MEMORY_ENV)
    if pinned:
        values = parse_memory_list(pinned)
        if len(values) != count:
            raise ArgumentError(
                f"{FREE_MEMORY_ENV} lists {len(values)} GPU(s) but {count} are visible — give one size per visible GPU"
            )
        return DeviceFacts(count, values)
    free = []
    for i in range(count):
        try:
            total = torch.cuda.get_device_properties(i).total_memory
            free.append(total - torch.cuda.device_memory_used(i))
        except Exception:  # no pynvml / NVML: measure through the CUDA runtime instead
            free.append(torch.cuda.mem_get_info(i)[0])
    return DeviceFacts(count, free)
