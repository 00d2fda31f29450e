"""prefswift started by SLURM's srun: the job's variables become the launch variables ms-swift's convention reads.

Two ways to start a job with srun, both understood (variables already set by hand win, and nothing changes outside
an srun step — inside an sbatch script itself SLURM_STEP_ID is unset, so a plain `prefswift ...` there stays one
process):

  * one task per node (`#SBATCH --ntasks-per-node=1`, `NPROC_PER_NODE=8 srun prefswift ...`): each task starts torchrun
    for its node: NNODES = SLURM_NNODES, NODE_RANK = SLURM_NODEID, MASTER_ADDR = the first host of SLURM_JOB_NODELIST;
  * one task per process (`--ntasks-per-node=8`, `srun prefswift ...`): srun is the launcher: RANK = SLURM_PROCID,
    WORLD_SIZE = SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID, LOCAL_WORLD_SIZE = the tasks on this node.

MASTER_PORT, when not set, is derived from SLURM_JOB_ID (every node computes the same one).
"""
from __future__ import annotations

import os
import re
from typing import Dict, Mapping, MutableMapping, Optional

from ..errors import ArgumentError

PORT_BASE, PORT_SPAN = 20000, 20000


def first_host(nodelist: str) -> str:
    """The first host of a SLURM hostlist: 'gpu[03-05,9],cpu1' -> 'gpu03', 'node7' -> 'node7'."""
    text = nodelist.strip()
    m = re.match(r"^([^\[,]*)(?:\[([^\]]*)\])?", text)
    if not m or not (m.group(1) or m.group(2)):
        raise ArgumentError(f"SLURM_JOB_NODELIST={nodelist!r} is not a SLURM host list — set MASTER_ADDR by hand")
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def _int(env: Mapping[str, str], *names: str) -> Optional[int]:
    for name in names:
        raw = (env.get(name) or "").strip()
        m = re.match(r"^(\d+)", raw)  # SLURM_TASKS_PER_NODE can read '8(x2)'
        if m:
            return int(m.group(1))
    return None


def slurm_launch_env(env: Mapping[str, str]) -> Dict[str, str]:
    """The launch variables an srun-started prefswift should see (only those not set already); {} outside srun."""
    if not (env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID")):
        return {}
    if any((env.get(n) or "").strip() for n in ("LOCAL_RANK", "WORLD_SIZE")):
        return {}  # already under torchrun / accelerate launch inside the srun step
    nnodes = _int(env, "SLURM_NNODES", "SLURM_JOB_NUM_NODES") or 1
    ntasks = _int(env, "SLURM_NTASKS", "SLURM_NPROCS") or nnodes
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    out: Dict[str, str] = {}
    if nodelist:
        out["MASTER_ADDR"] = first_host(nodelist)
    job = _int(env, "SLURM_JOB_ID", "SLURM_JOBID")
    out["MASTER_PORT"] = str(PORT_BASE + (job or 0) % PORT_SPAN)
    if ntasks > nnodes:  # one task per process: srun started every rank
        local = _int(env, "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE") or max(1, ntasks // nnodes)
        out.update(RANK=str(_int(env, "SLURM_PROCID") or 0), WORLD_SIZE=str(ntasks),
                   LOCAL_RANK=str(_int(env, "SLURM_LOCALID") or 0), LOCAL_WORLD_SIZE=str(local))
    else:  # one task per node: it starts torchrun for this node
        out.update(NNODES=str(nnodes), NODE_RANK=str(_int(env, "SLURM_NODEID") or 0),
                   NPROC_PER_NODE=str(_int(env, "SLURM_GPUS_ON_NODE") or 1))
    return {k: v for k, v in out.items() if not (env.get(k) or "").strip()}


def apply_slurm_env(env: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Set `slurm_launch_env` in the environment (os.environ by default); returns what it set."""
    env = os.environ if env is None else env
    added = slurm_launch_env(env)
    env.update(added)
    return added
