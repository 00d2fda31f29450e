"""What prefswift wrote itself, and may therefore replace; where a run may write at all.

prefswift deletes or replaces only what it can identify as its own: a run dir with its `args.json` (the flat
arguments of a prefswift command), an adapter dir holding that `args.json` and nothing but the files an adapter save
writes. Anything else is refused in one line before any work.
"""
import json
import os
import re
import shutil
from pathlib import Path
from typing import List, Optional

from ..arguments import ARGS_FILE, COMMAND_SECTIONS
from ..errors import ArgumentError
from .saved_files import RESULT_DIRS, left_by_a_run, remove_saved

# what `save_final` writes into an adapter dir: peft's adapter, the tokenizer's files, args.json, the Trainer's
# training_args.bin
ADAPTER_FILES = frozenset({
    ARGS_FILE, "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md",
    "training_args.bin", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt",
    "generation_config.json"})
# what a training run writes into its --output_dir besides checkpoint-N dirs (and the lock file while it runs)
RUN_RESULTS = ("adapter", "final", "complete.json", "logging.jsonl")
# args.json last (see directory.prepare_run_dir); images/ holds the plots below, and only they are removed from it
RUN_EXTRAS = ("adapter.tmp", "final.tmp", "stopped.json", ARGS_FILE)
PLOTS_DIR = "images"
# the metrics training plots into images/ (train/plots.py), one PNG each, besides the overview
PLOTTED = ("loss", "rewards/accuracies", "rewards/margins", "eval_loss", "nll_loss", "eval_rewards/accuracies")
OVERVIEW_PLOT = "overview.png"


def plot_file(key: str) -> str:
    """The PNG a logged metric is plotted to in images/ (`rewards/margins` -> rewards_margins.png)."""
    return key.replace("/", "_") + ".png"


PLOT_FILES = frozenset({OVERVIEW_PLOT, *(plot_file(k) for k in PLOTTED)})


def written_by_prefswift(args_file: Path) -> bool:
    """True when `args_file` is the args.json a prefswift command saved (a JSON object naming one of its commands
    and holding its model arguments)."""
    try:
        saved = json.loads(args_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("command") in COMMAND_SECTIONS and "model_type" in saved


def check_adapter_dir(path: Path, run_dir: Path) -> None:
    """--lora_adapter_dir: refused unless absent, empty, or an adapter prefswift saved there (only its files)."""
    path = Path(path).expanduser().resolve()
    if path == run_dir or run_dir in path.parents or path in run_dir.parents:
        raise ArgumentError(f"--lora_adapter_dir {path}: overlaps --output_dir {run_dir}; the adapter is always "
                            "saved in output_dir/adapter, so give --lora_adapter_dir a folder of its own")
    check_output_path(path, "--lora_adapter_dir")
    if not path.exists() or not any(path.iterdir()):
        return
    foreign = sorted(p.name for p in path.iterdir() if p.name not in ADAPTER_FILES or not p.is_file())
    if foreign or not written_by_prefswift(path / ARGS_FILE):
        what = (f"holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which prefswift did not write"
                if foreign else f"has no {ARGS_FILE} of a prefswift run, so it is not an adapter prefswift saved")
        raise ArgumentError(f"--lora_adapter_dir {path} {what}; nothing there is replaced — give an empty or new "
                            "folder")


def replace_dir(source: Path, target: Path) -> None:
    """Copy `source` to `target`, replacing an adapter prefswift saved there before (see `check_adapter_dir`): the
    copy is written next to it and swapped in, so `target` is never half written."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def check_output_path(path: Path, flag: str = "--output_dir") -> None:
    """A folder can be made (or is) at `path`: not a file, not below a file, writable. Nothing is created."""
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"{flag} {path} is a file, not a folder; give a folder path")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ArgumentError(f"{flag} {path} lies below the file {existing}; give a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ArgumentError(f"{flag} {path}: {existing} is not writable (read-only file system or no permission); "
                            "give a folder you can write to")


def first_missing(path: Path) -> Optional[Path]:
    """The topmost folder of `path` that does not exist yet (what making `path` creates), or None."""
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def run_results(run_dir: Path, checkpoints: List[Path]) -> List[str]:
    """The results of an earlier run in `run_dir` that a new run would replace: checkpoints, the final adapter or
    model, complete.json, logging.jsonl."""
    return [p.name for p in checkpoints] + [n for n in RUN_RESULTS if left_by_a_run(run_dir / n)]


def remove_run(run_dir: Path, checkpoints: List[Path]) -> List[str]:
    """--overwrite_output_dir true: remove an earlier prefswift run's own files (its cached reference log-probs go
    through ``remove_caches``, called right after). Inside checkpoint-N, adapter/ and final/ only the files a save
    writes go (`saved_files`); a user's file stays, and so does the folder holding it. args.json goes last. Returns
    what was kept there (paths relative to `run_dir`, a kept folder with a trailing /)."""
    kept: List[str] = []
    remove_plots(run_dir / PLOTS_DIR)
    images = run_dir / PLOTS_DIR
    if images.is_dir() and not images.is_symlink():
        kept += [str(p.relative_to(run_dir)) + ("/" if p.is_dir() else "") for p in sorted(images.iterdir())]
    for name in sorted(RESULT_DIRS):  # `eval`/`infer` results of the run dir itself go with the run
        if (run_dir / name).is_dir() and not (run_dir / name).is_symlink():
            remove_saved(run_dir / name, run_dir, kept)
    for p in [*checkpoints, *(run_dir / n for n in RUN_RESULTS + RUN_EXTRAS)]:
        if p.is_symlink():  # a link to another run's checkpoint: the link goes, never what it points to
            p.unlink()
        elif p.is_dir():
            remove_saved(p, run_dir, kept)
        elif p.exists():
            p.unlink()
    return kept


def kept_line(run_dir: Path, kept: List[str]) -> str:
    """The one line naming the files prefswift did not write that starting over left in place."""
    shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
    return (f"[prefswift] kept {len(kept)} {'file' if len(kept) == 1 else 'files'} prefswift did not write in "
            f"{run_dir}: {shown}")


def remove_plots(images: Path) -> None:
    """The plots a run wrote into images/ (PLOT_FILES); the folder goes too when nothing else is in it."""
    if not images.is_dir() or images.is_symlink():
        return
    for name in PLOT_FILES:
        path = images / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    try:
        images.rmdir()  # only when empty: a file the user put there stays, and so does its folder
    except OSError:
        pass


# the reference log-prob caches training writes (train/reference_cache.py) and their temporary names while writing:
# nothing else is ever removed
CACHE_FILE = re.compile(r"^ref_logps_(train|eval)_[0-9a-f]{16}\.(pt|tmp)$")


def remove_caches(run_dir: Path) -> list:
    """Delete the reference caches an earlier run wrote in `run_dir` (--overwrite_output_dir); the removed paths."""
    if not run_dir.is_dir():
        return []
    stale = [p for p in run_dir.iterdir() if p.is_file() and CACHE_FILE.match(p.name)]
    for p in stale:
        p.unlink()
    return stale
