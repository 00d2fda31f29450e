"""ms-swift's launch convention: `NPROC_PER_NODE=N prefswift dpo ...` re-executes itself under torchrun.

Recognised environment: NPROC_PER_NODE (processes per node), NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT; under
srun, SLURM's variables stand in for them (distributed/slurm.py).
Nothing happens when NPROC_PER_NODE is unset, or when we already run under a launcher (torchrun,
`accelerate launch`, deepspeed: LOCAL_RANK or WORLD_SIZE is set).
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from prefswift.errors import ArgumentError

from .env import DistEnv, _env_int, dist_env  # noqa: F401  (dist_env: re-exported for callers of launch)

LAUNCHER_MARKERS = ("LOCAL_RANK", "WORLD_SIZE")


def under_launcher(env: Mapping[str, str]) -> bool:
    return any(env.get(name, "").strip() for name in LAUNCHER_MARKERS)


def find_free_port() -> int:
    """A TCP port that is free on this machine right now (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class LaunchSettings:
    nproc_per_node: int
    nnodes: int
    node_rank: int
    master_addr: Optional[str]
    master_port: Optional[int]


def launch_settings(env: Mapping[str, str], *, always: bool = False) -> Optional[LaunchSettings]:
    """Validated NPROC_PER_NODE/NNODES/... or None when no relaunch is wanted. `always`: launch even one process
    (DeepSpeed needs the process group torchrun sets up, also for a single process)."""
    if under_launcher(env):
        return None
    nnodes = _env_int(env, "NNODES", 1, minimum=1)
    # several nodes without NPROC_PER_NODE: one process per node (not one process that waits for nobody)
    nproc = _env_int(env, "NPROC_PER_NODE", 1 if (always or nnodes > 1) else None, minimum=1)
    if nproc is None:
        return None
    node_rank = _env_int(env, "NODE_RANK", 0, maximum=nnodes - 1)
    master_port = _env_int(env, "MASTER_PORT", None, minimum=1, maximum=65535)
    master_addr = (env.get("MASTER_ADDR") or "").strip() or None
    if nnodes > 1 and master_addr is None:
        raise ArgumentError(
            f"NNODES={nnodes} needs MASTER_ADDR — set it to the address of node 0 (the same on every node)"
        )
    if nproc == 1 and nnodes == 1 and not always:
        return None  # one process: nothing to launch
    return LaunchSettings(nproc, nnodes, node_rank, master_addr, master_port)


def torchrun_command(argv: Sequence[str], env: Mapping[str, str], *,
                     free_port: Callable[[], object] = find_free_port,
                     module: str = "prefswift", python: Optional[str] = None, always: bool = False
                     ) -> Optional[list]:
    """The torchrun command that re-runs `python -m prefswift <argv>`, or None when no relaunch is needed.

    argv: the CLI arguments without the program name (sys.argv[1:]).
    Pure apart from `free_port`, which is asked for a port only on one node without MASTER_PORT
    (several nodes must agree on a port, so there torchrun's default 29500 applies).
    """
    settings = launch_settings(env, always=always)
    if settings is None:
        return None
    cmd = [python or sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(settings.nproc_per_node)]
    if settings.nnodes > 1:
        cmd += ["--nnodes", str(settings.nnodes), "--node_rank", str(settings.node_rank)]
    if settings.master_addr is not None:
        cmd += ["--master_addr", settings.master_addr]
    port = settings.master_port
    if port is None and settings.nnodes == 1:
        port = free_port()
    if port is not None:
        cmd += ["--master_port", str(port)]
    return cmd + ["-m", module, *argv]


def exit_code(returncode: int) -> int:
    """A process's return code as a shell exit status; never 0 for a failure (signals -> 128 + signal)."""
    if returncode < 0:
        return 128 + (-returncode)
    return returncode


def maybe_relaunch(argv: Sequence[str], env: Optional[Mapping[str, str]] = None, *,
                   run: Optional[Callable] = None, module: str = "prefswift", always: bool = False) -> None:
    """If NPROC_PER_NODE asks for it (or `always`, for DeepSpeed), run ourselves under torchrun and exit with its
    status.

    torchrun stops every rank when one fails and then exits non-zero; we pass that status on.
    Returns (doing nothing) when no relaunch is needed.
    """
    env = os.environ if env is None else env
    cmd = torchrun_command(argv, env, module=module, always=always)
    if cmd is None:
        return
    if run is None:
        from .torchrun_output import run_torchrun

        run = run_torchrun
    print(f"[prefswift] launching: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    try:
        result = run(cmd, env=dict(env))
        code = exit_code(result.returncode)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT  # torchrun received the same Ctrl+C and stops its workers
    except OSError as exc:
        raise ArgumentError(f"could not start torchrun ({exc}) — check that torch is installed") from None
    sys.exit(code)


def visible_gpus_from_env(env: Mapping[str, str]) -> Optional[int]:
    """Number of GPUs CUDA_VISIBLE_DEVICES names, or None when it is unset."""
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    items = [x for x in raw.split(",") if x.strip()]
    # CUDA stops at the first invalid entry ("-1" hides everything)
    count = 0
    for item in items:
        if item.strip().startswith("-"):
            break
        count += 1
    return count


def describe_launch(argv: Sequence[str], env: Mapping[str, str], n_visible_gpus: Optional[int] = None,
                    free_memory: Optional[Sequence[int]] = None, *, use_deepspeed: bool = False) -> str:
    """What a run would do, without loading anything: the launch command and every local rank's device plan.

    n_visible_gpus None: taken from CUDA_VISIBLE_DEVICES in `env`, else measured with torch.
    Raises ArgumentError for the same bad shapes a real run would.
    """
    from prefswift.distributed.device_plan import FREE_MEMORY_ENV, gather_device_facts, parse_memory_list, plan_devices

    if free_memory is None and env.get(FREE_MEMORY_ENV):
        free_memory = parse_memory_list(env[FREE_MEMORY_ENV])
    if n_visible_gpus is None:
        n_visible_gpus = visible_gpus_from_env(env)
        if n_visible_gpus is None:
            facts = gather_device_facts(env)
            n_visible_gpus, free_memory = facts.n_visible_gpus, (free_memory or facts.free_memory or None)
    lines = []
    if under_launcher(env):
        de = dist_env(env)
        lines.append(f"launch: already under a launcher (rank {de.rank} of {de.world_size})")
        nproc, world, ranks = de.local_world_size, de.world_size, [de.local_rank]
    else:
        cmd = torchrun_command(argv, env, free_port=lambda: "<free port>", always=use_deepspeed)
        settings = launch_settings(env, always=use_deepspeed)
        if cmd is None:
            lines.append("launch: single process (set NPROC_PER_NODE=N to start N processes with torchrun)")
            nproc, world = 1, 1
        else:
            lines.append("launch: " + shlex.join(cmd))
            nproc, world = settings.nproc_per_node, settings.nproc_per_node * settings.nnodes
        ranks = range(nproc)
    gpu_word = f"{n_visible_gpus} visible GPU(s)"
    if free_memory:
        gpu_word += " with free memory " + ", ".join(f"{m / 1024**3:.1f}" for m in free_memory) + " GiB"
    lines.append(f"devices: {gpu_word}, {nproc} process(es) per node, world size {world}")
    for local_rank in ranks:
        plan = plan_devices(n_visible_gpus, nproc, local_rank, free_memory,
                            use_deepspeed=use_deepspeed, world_size=world)
        lines.append("  " + plan.describe())
    return "\n".join(lines)
