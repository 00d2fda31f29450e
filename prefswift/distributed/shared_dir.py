"""--output_dir on several nodes: it must be one directory that every node sees (shared storage).

Only global rank 0 writes the run (logs, checkpoints, the final adapter), but every rank reads the checkpoint it
resumes from, and a run whose nodes each see their own `output/...` would resume from nothing on all but node 0.
`check_shared_run_dir`, once the process group exists and rank 0 has created the run dir: the first rank of every node
writes a marker file named by the node into it, rank 0 looks for all of them, each node removes its own, and every rank stops with
one line naming the nodes that wrote elsewhere when it does not see them all.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import List

from ..errors import ArgumentError
from .env import DistEnv

MARKER_PREFIX = ".prefswift-node-"


def node_index(env: DistEnv) -> int:
    raw = os.environ.get("GROUP_RANK", "").strip()  # torchrun: this node's rank
    return int(raw) if raw.isdigit() else env.rank // max(1, env.local_world_size)


def check_shared_run_dir(run_dir: Path, env: DistEnv) -> None:
    """See the module doc. Nothing to do on one node."""
    if not env.is_distributed or env.local_world_size >= env.world_size:
        return
    import torch.distributed as dist

    token = [secrets.token_hex(4) if env.is_main else None]
    dist.broadcast_object_list(token, src=0)
    node = node_index(env)
    marker = Path(run_dir) / f"{MARKER_PREFIX}{node}-{token[0]}"
    wrote = None
    if env.is_local_main:
        try:
            marker.write_text(f"{node}\n", encoding="utf-8")
            wrote = (node, None)
        except OSError as exc:
            wrote = (node, exc.strerror or type(exc).__name__)
    reports: List = [None] * env.world_size
    dist.all_gather_object(reports, wrote)
    missing = []
    if env.is_main:
        for node_rank, problem in (r for r in reports if r is not None):
            if problem:
                missing.append(f"node {node_rank} (cannot write there: {problem})")
            elif not (Path(run_dir) / f"{MARKER_PREFIX}{node_rank}-{token[0]}").is_file():
                missing.append(f"node {node_rank}")
    verdict = [missing]
    dist.broadcast_object_list(verdict, src=0)
    if env.is_local_main:
        marker.unlink(missing_ok=True)  # each node removes its own (on unshared storage only it can)
    if verdict[0]:
        raise ArgumentError(
            f"--output_dir {run_dir} is not on storage shared by all nodes: rank 0 does not see the marker of "
            f"{', '.join(verdict[0])} — put it on a filesystem every node mounts at the same path")
