"""What a run is, read from its own files: its state, arguments, logged curves, checkpoints and eval results.

The one reader of a run directory for the commands that show runs (`prefswift web`). Nothing here writes into a run
except `record_outcome` / `clear_outcome`, which the training run itself calls.

A run's state:
  * running      its lock (`.prefswift.lock`, run/lock.py) is held by a live process;
  * finished     complete.json is there (written with the final adapter/model);
  * nonfinite    stopped on a nan/inf loss, gradient or weight (train/health.py), recorded in stopped.json;
  * failed       ended by any other error, recorded in stopped.json;
  * interrupted  Ctrl-C (recorded in stopped.json), or a run that ended without a word: a lock file left behind by a
                 killed process (kill -9, out of memory, a lost node), or no lock, no complete.json, no record.
A multi-node run is read the same way: only global rank 0 writes the run dir (shared by every node), and each
checkpoint's marker records how many processes trained it.
"""
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..arguments import ARGS_FILE
from ..arguments.algorithms import is_algorithm
from ..files import write_json_atomic
from ..train.checkpoint_files import MARKER, checkpoint_problem, checkpoints
from ..train.run_lock import LOCK_FILE

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

OUTCOME_FILE = "stopped.json"
COMPLETE_FILE = "complete.json"
LOG_FILE = "logging.jsonl"
STATES = ("running", "finished", "failed", "nonfinite", "interrupted")
SKIP_DIRS = ("adapter", "final", "images", "eval_result", "infer_result", "adapter.tmp", "final.tmp")


# ---------------------------------------------------------------- written by the training run itself

def record_outcome(run_dir: Path, error: BaseException, step: Optional[int]) -> None:
    """A run that ends without finishing says why, in stopped.json (rank 0 calls this as the error leaves training)."""
    if getattr(error, "run_state", None) in STATES:  # train/health.NonFiniteError: "nonfinite"
        state = error.run_state
    elif isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and error.code == 130):
        state = "interrupted"
    else:
        state = "failed"
    message = str(error).strip().splitlines()[0][:500] if str(error).strip() else type(error).__name__
    write_json_atomic(Path(run_dir) / OUTCOME_FILE, {"state": state, "message": message, "step": step,
                                                     "time": time.time()})


def clear_outcome(run_dir: Path) -> None:
    """Training (re)starts: an earlier attempt's stopped.json no longer describes the run."""
    (Path(run_dir) / OUTCOME_FILE).unlink(missing_ok=True)


# ---------------------------------------------------------------- reading

def lock_held(run_dir: Path) -> bool:
    """True while a live process holds the run's lock. Probed with a shared lock held for microseconds (RunDirLock
    retries briefly, so a run starting at that moment is not refused)."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_json(path: Path, notes: List[str], what: str) -> Optional[dict]:
    """A JSON file of the run, or None with a note saying what is wrong with it (absent files: None, no note)."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        notes.append(f"{path.name}: not readable JSON ({type(e).__name__}) — {what} not shown")
        return None
    return value if isinstance(value, dict) else None


@dataclass
class LogRead:
    rows: List[dict]
    notes: List[str] = field(default_factory=list)
    size: int = 0          # bytes read up to the end of the last whole line


def read_log(path: Path, offset: int = 0) -> LogRead:
    """Rows of logging.jsonl from byte `offset` on. A last line without its newline is being written (or was cut by a
    kill): it is left for the next read, with a note. A broken line in the middle is skipped with a note naming it.
    "nan"/"inf" strings (how the run logs non-finite values) become floats."""
    out = LogRead(rows=[], size=offset)
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return out
    except OSError as e:
        out.notes.append(f"{path.name}: not readable ({e.strerror})")
        return out
    whole, sep, partial = data.rpartition(b"\n")
    if partial.strip():
        out.notes.append(f"{path.name}: its last line is half-written ({len(partial)} bytes without an end of line: "
                         "the run is writing it, or was stopped mid-write); the curves stop at the line before")
    out.size = offset + len(whole) + len(sep)
    for i, line in enumerate(whole.split(b"\n") if whole else [], start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            where = f"line {i}" if offset == 0 else "a line"
            out.notes.append(f"{path.name}: {where} is not JSON and is skipped")
            continue
        if isinstance(row, dict):
            out.rows.append({k: _number(v) for k, v in row.items()})
    return out


def _number(value):
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def run_state(run_dir: Path, notes: List[str]) -> Tuple[str, str]:
    """(state, one line saying why): see the module doc."""
    run_dir = Path(run_dir)
    if lock_held(run_dir):
        return "running", "its lock is held by a live process"
    outcome = read_json(run_dir / OUTCOME_FILE, notes, "how the run ended")
    if outcome and outcome.get("state") in STATES:
        step = f" at step {outcome['step']}" if outcome.get("step") is not None else ""
        return outcome["state"], f"{outcome['state']}{step}: {outcome.get('message', '')}"
    done = read_json(run_dir / COMPLETE_FILE, notes, "the final step")
    if done is not None:
        return "finished", f"step {done.get('global_step')} of {done.get('max_steps')}"
    if (run_dir / LOCK_FILE).is_file():
        return "interrupted", ("the process ended without cleaning up (killed, out of memory, or its node was lost): "
                               "its lock file is left behind")
    return "interrupted", "ended before its last step (no complete.json)"


def find_runs(root: Path, depth: int = 4) -> List[Path]:
    """Every training run under `root` (a folder with the args.json of a prefswift training command), sorted."""
    root = Path(root)
    found: List[Path] = []

    def walk(folder: Path, left: int) -> None:
        args = read_json(folder / ARGS_FILE, [], "")
        if args is not None and is_algorithm(str(args.get("command"))) and "model_type" in args:
            found.append(folder)
            return
        if left == 0:
            return
        try:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for sub in subs:
            if sub.name not in SKIP_DIRS and not sub.name.startswith("checkpoint-"):
                walk(sub, left - 1)

    walk(root, depth)
    return found


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def best_eval(rows: List[dict]) -> Optional[dict]:
    """The eval row with the lowest eval_loss: {step, eval_loss, eval accuracy/margin when logged}."""
    evals = [r for r in rows if _finite(r.get("eval_loss"))]
    if not evals:
        return None
    best = min(evals, key=lambda r: r["eval_loss"])
    return {k: best[k] for k in ("step", "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins") if k in best}


def expected_checkpoints(args: dict, last_step: int, newest: Optional[int]) -> List[int]:
    """The checkpoint steps a run with these arguments keeps on disk up to its last step (save_strategy steps with a
    whole number --save_steps; [] when that cannot be said from the arguments)."""
    every = args.get("save_steps")
    if args.get("save_strategy") != "steps" or not isinstance(every, (int, float)) or every < 1 or every % 1:
        return []
    top = last_step if newest is None else max(last_step, newest)
    steps = list(range(int(every), top + 1, int(every)))
    limit = args.get("save_total_limit")
    return steps[-int(limit):] if limit else steps


def checkpoint_rows(run_dir: Path, args: dict, last_step: int, running: bool, notes: List[str]) -> List[dict]:
    """Every checkpoint-N with whether it is whole (and what is wrong with it), and the processes that saved it; notes
    for checkpoints the run's --save_steps says should be there and are not."""
    rows = []
    found = checkpoints(run_dir)
    for ckpt in found:
        problem = checkpoint_problem(ckpt)
        marker = read_json(ckpt / MARKER, [], "")
        rows.append({"name": ckpt.name, "step": int(ckpt.name.split("-")[-1]), "whole": problem is None,
                     "problem": problem, "world_size": (marker or {}).get("world_size")})
        if problem is not None and not (running and ckpt == found[-1]):
            notes.append(f"{ckpt.name} is not whole: {problem}")
    steps = {r["step"] for r in rows}
    newest = max(steps) if steps else None
    upto = newest if running else last_step
    missing = [s for s in expected_checkpoints(args, last_step, None) if s not in steps and upto and s <= upto]
    if missing:
        names = ", ".join(f"checkpoint-{s}" for s in missing)
        notes.append(f"{names} {'is' if len(missing) == 1 else 'are'} missing (deleted?): --save_steps "
                     f"{args.get('save_steps'):g} saves one there; a resume uses the newest whole checkpoint left")
    return rows


def eval_results(run_dir: Path, notes: List[str]) -> List[dict]:
    """`prefswift eval` results saved under the run (RUN/adapter/eval_result/*.json, RUN/checkpoint-N/eval_result/,
    ...), newest first: {file, where, mode, numbers}."""
    out = []
    for path in sorted(run_dir.glob("*/eval_result/*.json")) + sorted(run_dir.glob("eval_result/*.json")):
        record = read_json(path, notes, "this eval result")
        if record is None:
            continue
        numbers = {k: v for k, v in record.items() if _finite(v) and k != "seconds"}
        out.append({"file": str(path.relative_to(run_dir)), "where": path.parent.parent.name,
                    "mode": record.get("mode", "pairs"), "numbers": numbers, "mtime": path.stat().st_mtime})
    return sorted(out, key=lambda r: -r["mtime"])


def describe_model(args: dict) -> str:
    return str(args.get("model_type") or args.get("model_id_or_path") or "?")


def last_train_step(rows: List[dict]) -> int:
    return max((int(r["step"]) for r in rows if isinstance(r.get("step"), (int, float))), default=0)


def last_logged_step(run_dir: Path) -> Optional[int]:
    """The newest step in the run's logging.jsonl (None before the first row)."""
    return last_train_step(read_log(Path(run_dir) / LOG_FILE).rows) or None


def read_run(run_dir: Path, root: Path, with_rows: bool = True) -> Dict:
    """Everything a page shows of one run. Never raises for a run's own files: what cannot be read becomes a note."""
    run_dir = Path(run_dir)
    notes: List[str] = []
    args = read_json(run_dir / ARGS_FILE, notes, "the arguments") or {}
    state, why = run_state(run_dir, notes)
    log = read_log(run_dir / LOG_FILE)
    notes += log.notes
    if not (run_dir / LOG_FILE).is_file():
        notes.append(f"no {LOG_FILE} yet: nothing logged")
    done = read_json(run_dir / COMPLETE_FILE, [], "") or {}
    step = last_train_step(log.rows)
    ckpts = checkpoint_rows(run_dir, args, step, state == "running", notes)
    if state == "finished" and not any((run_dir / d).is_dir() for d in ("adapter", "final")):
        notes.append("finished, but its adapter/ or final/ folder is gone: chat and arena cannot load it")
    world = next((c["world_size"] for c in reversed(ckpts) if c["world_size"]), None)
    out = {
        "name": str(run_dir.relative_to(root)) if run_dir != root else run_dir.name,
        "path": str(run_dir), "state": state, "state_note": why, "algorithm": args.get("command"),
        "model": describe_model(args), "step": step, "max_steps": done.get("max_steps") or args.get("max_steps"),
        "best_eval": best_eval(log.rows), "processes": world, "notes": notes, "checkpoints": ckpts,
        "updated": (run_dir / LOG_FILE).stat().st_mtime if (run_dir / LOG_FILE).is_file() else None,
        "chat": any((run_dir / d).is_dir() for d in ("adapter", "final")) or any(c["whole"] for c in ckpts),
    }
    if with_rows:
        out.update(args=args, rows=log.rows, log_size=log.size, eval_results=eval_results(run_dir, notes),
                   chat_dir=chat_dir(run_dir))
    return out


def chat_dir(run_dir: Path) -> Optional[str]:
    """What a chat with the run loads: its final adapter/model, else its newest whole checkpoint; None if neither."""
    for sub in ("adapter", "final"):
        if (run_dir / sub).is_dir():
            return str(run_dir / sub)
    whole = [c for c in checkpoints(run_dir) if checkpoint_problem(c) is None]
    return str(whole[-1]) if whole else None


__all__ = ["record_outcome", "clear_outcome", "lock_held", "read_log", "run_state", "find_runs", "read_run",
           "chat_dir", "last_logged_step", "STATES", "OUTCOME_FILE", "LOG_FILE"]
