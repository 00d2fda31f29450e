"""What a run directory says about its run: one reader for every command that shows or uses a run (web, deploy,
export, eval, infer), so none of them imports the trainer.

A run dir (`--output_dir`) holds, as training writes them:
  args.json          the flat arguments of the prefswift command (written when training starts; `arguments`)
  logging.jsonl      one JSON object a logged step (`logs.py`)
  checkpoint-N/      whole checkpoints (their marker `checkpoint_complete.json` last; `checkpoints.py`)
  adapter/ | final/  the final LoRA adapter | full model (written whole, by rename)
  complete.json      {"global_step", "max_steps"}: the run reached its last step (`write_complete`)
  stopped.json       {"reason", "step", "message"}: the run ended early after `step` steps, and why (`write_stopped`)
  .prefswift.lock    held (flock) by the training process for the run's life, holding its pid and host, touched every
                     30 s (`lock.py`)
  images/*.png       the plots

`read_run(path)` turns those into a `RunInfo`; its `state` is one of STATES:
  running      the lock file names a live process on this machine, or names another host (a multi-node job's rank 0,
               the run dir on shared storage) and the run wrote (its lock's heartbeat, logging.jsonl) within FRESH_S
  finished     complete.json exists
  non-finite   stopped on a nan/inf loss, gradient or weight (stopped.json)
  failed       stopped on an error (stopped.json)
  unknown      the lock file names another host and the run has written nothing for FRESH_S: this machine cannot see
               that host's processes, so it cannot tell a run still busy there (a long save) from one killed with it
  interrupted  stopped by Ctrl-C (stopped.json), or killed: neither finished nor stopped nor running
`host` names the other machine for `running` and `unknown` there; `last_write_s` is how long ago the run wrote.
"""
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..arguments import ARGS_FILE
from ..files import write_json_atomic
from .checkpoints import checkpoint_problem, checkpoint_world_size, checkpoints
from .lock import LOCK_FILE, read_lock, this_host
from .logs import LOG_FILE, read_log
from .ownership import written_by_prefswift
from .saved_files import left_by_a_run

COMPLETE_FILE = "complete.json"
STOPPED_FILE = "stopped.json"
STATES = ("running", "finished", "non-finite", "failed", "interrupted", "unknown")
# a run whose lock names another host is `running` while it wrote within this many seconds (its lock's heartbeat is
# every lock.HEARTBEAT_S; shared file systems may show a file's time a minute late)
FRESH_S = 300.0
STOP_REASONS = ("non-finite", "failed", "interrupted")


def write_complete(run_dir: Path, global_step: int, max_steps: int) -> None:
    """Written with the final adapter/model: the run reached its last step."""
    write_json_atomic(Path(run_dir) / COMPLETE_FILE, {"global_step": global_step, "max_steps": max_steps})


def read_complete(run_dir: Path) -> Optional[Dict]:
    return _read_json(Path(run_dir) / COMPLETE_FILE)


def write_stopped(run_dir: Path, reason: str, step: int, message: str) -> None:
    """The run ends early (`reason`: one of STOP_REASONS) at `step`; `message` is the line the user was shown."""
    if reason not in STOP_REASONS:
        raise ValueError(f"unknown stop reason {reason!r}")
    write_json_atomic(Path(run_dir) / STOPPED_FILE, {"reason": reason, "step": step, "message": message})


def clear_stopped(run_dir: Path) -> None:
    """A run (re)starts in `run_dir`: an earlier stop record no longer describes it."""
    (Path(run_dir) / STOPPED_FILE).unlink(missing_ok=True)


@dataclass
class CheckpointInfo:
    path: Path
    step: int
    problem: Optional[str]  # None for a whole checkpoint, else why it cannot be used
    world_size: Optional[int] = None  # the processes that saved it (a multi-node run: all of its ranks)


@dataclass
class RunInfo:
    path: Path
    args: Dict                       # args.json (flat), {} if unreadable
    state: str                       # one of STATES
    algorithm: Optional[str]
    model: Optional[str]             # --model_type, else --model_id_or_path
    step: int                        # the last step logged (or completed)
    max_steps: Optional[int]
    checkpoints: List[CheckpointInfo]
    result: Optional[Path]           # adapter/ or final/, when written
    logs: List[Dict]                 # logging.jsonl's rows
    notes: List[str] = field(default_factory=list)  # what is odd about the dir, said plainly (a cut log line, ...)
    stopped: Optional[Dict] = None   # stopped.json
    running_pid: Optional[int] = None
    host: Optional[str] = None            # the other machine the lock names (running or unknown there)
    last_write_s: Optional[float] = None  # seconds since the run last wrote (lock heartbeat, logging.jsonl)

    @property
    def processes(self) -> Optional[int]:
        """How many processes trained the run, as its newest checkpoint records (None before one is saved)."""
        return next((c.world_size for c in reversed(self.checkpoints) if c.world_size), None)

    def loadable(self) -> Optional[Path]:
        """What a chat with the run loads: its adapter/ or final/, else its newest whole checkpoint; None if neither."""
        if self.result is not None:
            return self.result
        return next((c.path for c in reversed(self.checkpoints) if c.problem is None), None)

    def best_eval(self, metric: str = "eval_loss") -> Optional[Dict]:
        """The logged eval row with the lowest `metric` (None without eval rows)."""
        rows = [r for r in self.logs if isinstance(r.get(metric), (int, float))]
        return min(rows, key=lambda r: r[metric]) if rows else None


def is_run_dir(path: Path) -> bool:
    """A training run's dir: an args.json prefswift wrote, not inside a checkpoint or a saved adapter/model."""
    path = Path(path)
    if path.name.startswith("checkpoint-") or path.name in ("adapter", "final"):
        return False
    return written_by_prefswift(path / ARGS_FILE)


def find_runs(root: Path, max_depth: int = 4) -> List[Path]:
    """Every run dir under `root` (itself included), sorted by path; checkpoints and results are not descended."""
    root = Path(root)
    found: List[Path] = []

    def walk(d: Path, depth: int) -> None:
        if is_run_dir(d):
            found.append(d)
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return found


def lock_holder(run_dir: Path) -> Optional[int]:
    """The pid in the run's lock file when that process is alive on this machine, else None (no lock, stale, or a
    lock held on another host: see `remote_holder`)."""
    record = read_lock(run_dir)
    if record is None or record.host not in (None, this_host()):
        return None
    try:
        os.kill(record.pid, 0)
    except OSError:
        return None
    return record.pid


@dataclass
class RemoteHolder:
    pid: int
    host: str
    last_write_s: float  # seconds since the run last wrote: its lock's heartbeat or a logged row

    @property
    def fresh(self) -> bool:
        return self.last_write_s <= FRESH_S


def remote_holder(run_dir: Path, now: Optional[float] = None) -> Optional[RemoteHolder]:
    """The lock's holder when the lock names another host, with how long ago the run last wrote; else None."""
    record = read_lock(run_dir)
    if record is None or record.host in (None, this_host()):
        return None
    times = [record.touched]
    try:
        times.append((Path(run_dir) / LOG_FILE).stat().st_mtime)
    except OSError:
        pass
    now = time.time() if now is None else now
    return RemoteHolder(record.pid, record.host, max(0.0, now - max(times)))


def read_run(path: Path) -> RunInfo:
    """Everything a run dir says about its run (never raises for a damaged dir: `notes` says what is wrong)."""
    path = Path(path)
    args = _read_json(path / ARGS_FILE) or {}
    log = read_log(path / LOG_FILE)
    notes = [f"{LOG_FILE} line {n} is not a whole JSON row (skipped; a run that is writing may show this briefly)"
             for n in log.bad_lines]
    ckpts = []
    for ckpt in checkpoints(path):
        problem = checkpoint_problem(ckpt)
        ckpts.append(CheckpointInfo(ckpt, _step(ckpt), problem, checkpoint_world_size(ckpt)))
        if problem:
            notes.append(f"{ckpt.name}: {problem}")
    complete, stopped, pid = read_complete(path), _read_json(path / STOPPED_FILE), lock_holder(path)
    remote = remote_holder(path) if pid is None else None
    result = next((path / n for n in ("adapter", "final") if (path / n).is_dir() and left_by_a_run(path / n)), None)
    steps = [r["step"] for r in log.rows if isinstance(r.get("step"), int)]
    step = max(steps, default=0)
    max_steps = None
    if complete:
        step, max_steps = max(step, complete.get("global_step", 0)), complete.get("max_steps")
    if pid is not None or (remote is not None and remote.fresh):
        state = "running"
    elif complete:
        state = "finished"
    elif stopped and stopped.get("reason") in STOP_REASONS:
        state = stopped["reason"]
        step = max(step, stopped.get("step") or 0)
    elif remote is not None:
        state = "unknown"
    else:
        state = "interrupted"
    missing = missing_checkpoints(args, {c.step for c in ckpts}, step if state not in ("running", "unknown") else
                                  max((c.step for c in ckpts), default=0))
    if missing:
        names = ", ".join(f"checkpoint-{n}" for n in missing)
        notes.append(f"{names} {'is' if len(missing) == 1 else 'are'} missing (deleted?): --save_steps "
                     f"{args['save_steps']:g} saved one there; a resume uses the newest whole checkpoint left")
    if state == "finished" and result is None:
        notes.append("complete.json says the run finished, but neither adapter/ nor final/ is here (moved or deleted)")
    if max_steps is None and isinstance(args.get("max_steps"), int) and args["max_steps"] > 0:
        max_steps = args["max_steps"]
    return RunInfo(path=path, args=args, state=state, algorithm=args.get("command"),
                   model=args.get("model_type") or args.get("model_id_or_path"), step=step, max_steps=max_steps,
                   checkpoints=ckpts, result=result, logs=log.rows, notes=notes, stopped=stopped,
                   **{"running_pid": pid, **_elsewhere(remote, state)})


def _elsewhere(remote: Optional["RemoteHolder"], state: str) -> Dict:
    """The RunInfo fields of a run whose lock names another host, while it reads as running or unknown there."""
    if remote is None or state not in ("running", "unknown"):
        return {}
    return {"running_pid": remote.pid, "host": remote.host, "last_write_s": remote.last_write_s}


def missing_checkpoints(args: Dict, found: set, upto: int) -> List[int]:
    """Steps up to `upto` where the run's arguments say a checkpoint is kept (--save_strategy steps with a whole
    --save_steps, the newest --save_total_limit of them) and none is there. [] when the arguments cannot say."""
    every, limit = args.get("save_steps"), args.get("save_total_limit")
    if args.get("save_strategy") != "steps" or not isinstance(every, (int, float)) or every < 1 or every % 1:
        return []
    kept = list(range(int(every), upto + 1, int(every)))
    kept = kept[-int(limit):] if isinstance(limit, int) and limit > 0 else kept
    return [n for n in kept if n not in found]


def eval_results(run_dir: Path) -> List[Dict]:
    """`prefswift eval` results saved under the run (RUN/adapter/eval_result/*.json, RUN/checkpoint-N/eval_result/
    ...), newest first: {file (relative to the run), mode, numbers (the finite numbers at its top and in `metrics`)}."""
    run_dir = Path(run_dir)
    out = []
    for path in [*run_dir.glob("eval_result/*.json"), *run_dir.glob("*/eval_result/*.json")]:
        record = _read_json(path)
        if record is None:
            continue
        flat = {**record, **(record.get("metrics") if isinstance(record.get("metrics"), dict) else {})}
        numbers = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v) and k != "seconds"}
        out.append({"file": str(path.relative_to(run_dir)), "mode": record.get("mode", "pairs"), "numbers": numbers,
                    "mtime": path.stat().st_mtime})
    return sorted(out, key=lambda r: -r["mtime"])


def _read_json(path: Path) -> Optional[Dict]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _step(ckpt: Path) -> int:
    try:
        return int(ckpt.name.rsplit("-", 1)[-1])
    except ValueError:
        return -1


__all__ = ["COMPLETE_FILE", "STOPPED_FILE", "STATES", "CheckpointInfo", "RunInfo", "clear_stopped", "find_runs",
           "eval_results", "missing_checkpoints",
           "is_run_dir", "lock_holder", "remote_holder", "FRESH_S", "read_complete", "read_run", "write_complete",
           "write_stopped"]
