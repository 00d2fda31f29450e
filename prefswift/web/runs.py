"""Runs as the pages show them: prefswift.run.state's RunInfo (the one reader of a run directory) as JSON."""
import math
from pathlib import Path
from typing import Dict, List, Optional

from ..arguments.algorithms import is_algorithm
from ..run.state import RunInfo, eval_results, find_runs, read_run

BEST_EVAL_KEYS = ("step", "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins")


def training_runs(root: Path) -> List[Path]:
    """The training runs under `root` (merged models and other commands' dirs are not runs)."""
    found = [(p, read_run_args(p)) for p in find_runs(root)]
    return [p for p, args in found if is_algorithm(str(args.get("command"))) and "merged_from" not in args]


def read_run_args(path: Path) -> Dict:
    from ..arguments import load_args_json

    try:
        return load_args_json(path) or {}
    except Exception:  # noqa: BLE001 - an unreadable args.json: not a run the pages can show
        return {}


def name_of(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root else path.name


def json_number(value):
    """nan/inf (a run logs them as strings, or a reader may meet floats) as strings: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def summary(info: RunInfo, root: Path) -> Dict:
    best = info.best_eval()
    return {
        "name": name_of(info.path, root), "state": info.state, "state_note": state_note(info), "host": info.host,
        "algorithm": info.algorithm, "model": info.model or "?", "step": info.step, "max_steps": info.max_steps,
        "best_eval": {k: best[k] for k in BEST_EVAL_KEYS if k in best} if best else None,
        "processes": info.processes, "notes": info.notes, "chat": info.loadable() is not None,
        "checkpoints": [{"name": c.path.name, "step": c.step, "whole": c.problem is None, "problem": c.problem,
                         "world_size": c.world_size} for c in info.checkpoints],
    }


def state_note(info: RunInfo) -> str:
    if info.host is not None:  # the lock names another machine: judged by how recently the run wrote
        ago = ago_text(info.last_write_s or 0.0)
        if info.state == "running":
            return f"training on {info.host} (pid {info.running_pid}), judged by its recent writes"
        return (f"on {info.host}, last write {ago} ago: still busy there (a long save?) or ended with that machine — "
                "this machine cannot see its processes")
    if info.state == "running":
        return f"training (pid {info.running_pid})"
    if info.stopped and info.state == info.stopped.get("reason"):
        return f"stopped at step {info.stopped.get('step')}: {str(info.stopped.get('message', '')).splitlines()[0]}"
    if info.state == "finished":
        return f"reached step {info.step}"
    return "ended without a word: killed, out of memory, or its node lost (no complete.json, no stopped.json)"


def ago_text(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def detail(info: RunInfo, root: Path) -> Dict:
    rows = [{k: json_number(v) for k, v in r.items()} for r in info.logs]
    return {**summary(info, root), "args": info.args, "rows": rows, "eval_results": eval_results(info.path)}


def runs_summaries(root: Path) -> List[Dict]:
    return [summary(read_run(p), root) for p in training_runs(root)]


def merged_models(root: Path) -> List[Path]:
    """Merged models under `root` (merge-lora's output: a model dir whose args.json records `merged_from`)."""
    return [p for p in find_runs(root) if "merged_from" in read_run_args(p) and (p / "config.json").is_file()]


def chat_targets(root: Path) -> Dict[str, Optional[str]]:
    """{name: the dir a chat loads} for every run that has something to load and every merged model."""
    out = {}
    for p in training_runs(root):
        loadable = read_run(p).loadable()
        if loadable is not None:
            out[name_of(p, root)] = str(loadable)
    for p in merged_models(root):
        out[name_of(p, root)] = str(p)
    return out


__all__ = ["training_runs", "summary", "detail", "runs_summaries", "chat_targets", "name_of"]
