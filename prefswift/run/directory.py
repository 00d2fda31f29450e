"""The run directory: refuse to clobber an earlier run, find `latest` checkpoints."""
import logging
from pathlib import Path
from typing import Optional

from ..errors import ArgumentError
from .checkpoints import checkpoint_problem, checkpoints, newest_whole_checkpoint
from .logs import LOG_FILE, truncate_log_after
from .ownership import kept_line, remove_caches, remove_run, run_results, written_by_prefswift
from .saved_files import left_by_a_run

logger = logging.getLogger("prefswift")


def resolve_resume(run_dir: Path, resume: Optional[str], warn=print, overwrite: bool = False) -> Optional[Path]:
    """The checkpoint to resume from: `latest` is the newest whole one (checkpoints.checkpoint_problem), each
    newer one that is not whole skipped with a warning; a named one that is not whole is refused in one line.

    A resume never takes over another run's directory: a checkpoint that belongs to another run dir than `run_dir`
    (its real parent, symlinks followed; a relative path is taken from the working directory, else from `run_dir`) is
    refused in one line unless `overwrite` (--overwrite_output_dir true: `run_dir`'s own earlier results are replaced,
    see `prepare_run_dir`, and the other run's checkpoint is only read). The path returned is the real one."""
    if not resume:
        return None
    if resume.lower() == "latest":
        for ckpt in reversed(checkpoints(run_dir)):
            problem = checkpoint_problem(ckpt)
            if problem is None:
                return _own_checkpoint(run_dir, ckpt, resume, overwrite)
            warn(f"[prefswift] warning: skipping {ckpt.name}: {problem}")
        return None  # the ORPO script's convention: `latest` on a fresh output dir just starts training
    named = Path(resume).expanduser()
    if not named.is_absolute() and not named.exists() and (run_dir / named).exists():
        named = run_dir / named  # `checkpoint-2`: the run's own checkpoint-2
    problem = checkpoint_problem(named)
    if problem:
        raise ArgumentError(f"--resume_from_checkpoint {resume}: not a whole checkpoint ({problem}); pass `latest` "
                            "(the newest whole checkpoint) or another checkpoint-N dir")
    return _own_checkpoint(run_dir, named, resume, overwrite)


def checkpoint_run_dir(ckpt: Path) -> Path:
    """The run dir a checkpoint belongs to: the real folder holding it (symlinks followed)."""
    return Path(ckpt).expanduser().resolve().parent


def _own_checkpoint(run_dir: Path, ckpt: Path, resume: str, overwrite: bool) -> Path:
    owner = checkpoint_run_dir(ckpt)
    if owner != run_dir.resolve() and not overwrite:
        raise ArgumentError(f"--resume_from_checkpoint {resume} is {ckpt.expanduser().resolve()}, a checkpoint of "
                            f"the run in {owner}, not of --output_dir {run_dir}: resume it with --output_dir "
                            f"{owner}, or pass --overwrite_output_dir true to continue it in {run_dir} (replacing "
                            "any earlier run there)")
    return ckpt.expanduser().resolve()


def resumed_plugin(output_dir: str, resume: str) -> Optional[str]:
    """The plugin file (--custom_register_path) the run being resumed was trained with, as its args.json names it:
    the run dir's for `latest`, else the checkpoint's own or its run dir's; None when the run had none. A plugin that
    is no longer where args.json says is one error line saying to pass its new path."""
    import json

    if resume.lower() == "latest":
        places = [Path(output_dir) / "args.json"]
    else:
        places = [Path(resume) / "args.json", Path(resume).parent / "args.json"]
    for args_file in places:
        try:
            saved = json.loads(args_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        plugin = saved.get("custom_register_path") if isinstance(saved, dict) else None
        if not plugin:
            return None
        if not Path(plugin).is_file():
            raise ArgumentError(f"--resume_from_checkpoint {resume}: the run was trained with the plugin {plugin} "
                                f"({args_file} names it), which is not there any more — pass --custom_register_path "
                                "with the plugin's path now")
        return plugin
    return None


def check_run_dir(run_dir: Path, resume_from: Optional[Path], overwrite: bool, resume: Optional[str] = None) -> bool:
    """The run-dir refusals, writing nothing (the validation phase and `--dry_run` call this, and `prepare_run_dir`
    again under the run's lock): an args.json prefswift did not write, results without one, an earlier run that is
    neither resumed nor overwritten. True when an earlier run's files are to be removed (overwrite or restart)."""
    # args.json first: rank 0 removes it last when starting over, so the other ranks never see the results without it
    ours = written_by_prefswift(run_dir / "args.json")
    found = run_results(run_dir, checkpoints(run_dir))
    if (run_dir / "args.json").exists() and not ours:
        raise ArgumentError(f"--output_dir {run_dir} holds an args.json that prefswift did not write; it is not "
                            "replaced — give another --output_dir")
    if (resume_from is not None and checkpoint_run_dir(resume_from) == run_dir.resolve()) or not found:
        return False  # resuming this run's own checkpoint continues it (another run's: see resolve_resume)
    if not ours:
        raise ArgumentError(f"--output_dir {run_dir} holds {', '.join(found)} without the args.json of a prefswift "
                            "run: prefswift replaces only what it wrote — give another --output_dir")
    if not (overwrite or restarts(run_dir, resume)):
        raise ArgumentError(f"--output_dir {run_dir} already holds a run ({', '.join(found)}); pass "
                            "--resume_from_checkpoint latest to continue it, --overwrite_output_dir true to start "
                            "over, or another --output_dir")
    return True


def restarts(run_dir: Path, resume: Optional[str]) -> bool:
    """`--resume_from_checkpoint latest` on an unfinished run without a whole checkpoint starts it over."""
    unfinished = not any(left_by_a_run(run_dir / n) for n in ("adapter", "final", "complete.json"))
    return unfinished and (resume or "").lower() == "latest"


def prepare_run_dir(run_dir: Path, resume_from: Optional[Path], overwrite: bool, is_main: bool,
                    resume: Optional[str] = None, log=None) -> None:
    """Refuse to replace an earlier run's results (checkpoints, adapter/, final/, complete.json, logging.jsonl)
    unless resuming its own checkpoint or --overwrite_output_dir true, and anything prefswift did not write in any case
    (`check_run_dir`). `--resume_from_checkpoint latest` on a run stopped before its first checkpoint starts it over."""
    if not check_run_dir(run_dir, resume_from, overwrite, resume):
        return
    if restarts(run_dir, resume) and log is not None:
        log(f"[prefswift] {run_dir} holds a run stopped before its first checkpoint: starting it over")
    if is_main:
        kept = remove_run(run_dir, checkpoints(run_dir))
        remove_caches(run_dir)  # a new run: an earlier run's reference log-probs go too
        if kept and log is not None:
            log(kept_line(run_dir, kept))


def restart_or_truncate_log(run_dir: Path, resume_from: Optional[Path], log) -> None:
    """Resuming: keep logging.jsonl up to the checkpoint's step (later rows are logged again). Else start it anew."""
    if resume_from is not None:
        log(f"[prefswift] resuming from {resume_from}")
        truncate_log_after(run_dir / LOG_FILE, int(resume_from.name.split("-")[-1]))
    else:
        (run_dir / LOG_FILE).unlink(missing_ok=True)


def interrupted_message(run_dir: Path, step: int) -> str:
    """Where a run stopped on Ctrl-C, which checkpoint exists, and the command that continues it."""
    import shlex
    import sys

    newest = newest_whole_checkpoint(run_dir)
    argv = [a for a in sys.argv[1:]]
    if "--resume_from_checkpoint" not in argv:
        argv += ["--resume_from_checkpoint", "latest"]
    if newest is None:
        return (f"[prefswift] interrupted at step {step}; no checkpoint was saved yet (one is written every "
                "--save_steps steps), so a new run starts from the beginning")
    return (f"[prefswift] interrupted at step {step}; the newest checkpoint is {newest}. Continue with:\n"
            f"  prefswift {shlex.join(argv)}")
