"""The run directory: refuse to clobber an earlier run, find `latest` checkpoints."""
import logging
from pathlib import Path
from typing import Optional

from ..errors import ArgumentError
from .checkpoints import checkpoint_problem, checkpoints, newest_whole_checkpoint
from .logs import LOG_FILE, truncate_log_after
from .ownership import remove_caches, remove_run, run_results, written_by_prefswift

logger = logging.getLogger("prefswift")


def resolve_resume(run_dir: Path, resume: Optional[str], warn=print) -> Optional[Path]:
    """The checkpoint to resume from: `latest` is the newest whole one (checkpoints.checkpoint_problem), each
    newer one that is not whole skipped with a warning; a named one that is not whole is refused in one line."""
    if not resume:
        return None
    if resume.lower() == "latest":
        for ckpt in reversed(checkpoints(run_dir)):
            problem = checkpoint_problem(ckpt)
            if problem is None:
                return ckpt
            warn(f"[prefswift] warning: skipping {ckpt.name}: {problem}")
        return None  # the ORPO script's convention: `latest` on a fresh output dir just starts training
    problem = checkpoint_problem(Path(resume))
    if problem:
        raise ArgumentError(f"--resume_from_checkpoint {resume}: not a whole checkpoint ({problem}); pass `latest` "
                            "(the newest whole checkpoint) or another checkpoint-N dir")
    return Path(resume)


def prepare_run_dir(run_dir: Path, resume_from: Optional[Path], overwrite: bool, is_main: bool,
                    resume: Optional[str] = None, log=None) -> None:
    """Refuse to replace an earlier run's results (checkpoints, adapter/, final/, complete.json, logging.jsonl)
    unless resuming it or --overwrite_output_dir true, and anything prefswift did not write in any case.
    `--resume_from_checkpoint latest` on a run stopped before its first checkpoint starts it over."""

    # args.json first: rank 0 removes it last when starting over, so the other ranks never see the results without it
    ours = written_by_prefswift(run_dir / "args.json")
    found = run_results(run_dir, checkpoints(run_dir))
    if (run_dir / "args.json").exists() and not ours:
        raise ArgumentError(f"--output_dir {run_dir} holds an args.json that prefswift did not write; it is not "
                            "replaced — give another --output_dir")
    if resume_from is not None or not found:
        return
    if not ours:
        raise ArgumentError(f"--output_dir {run_dir} holds {', '.join(found)} without the args.json of a prefswift "
                            "run: prefswift replaces only what it wrote — give another --output_dir")
    unfinished = not any((run_dir / n).exists() for n in ("adapter", "final", "complete.json"))
    restart = unfinished and (resume or "").lower() == "latest"
    if not (overwrite or restart):
        raise ArgumentError(f"--output_dir {run_dir} already holds a run ({', '.join(found)}); pass "
                            "--resume_from_checkpoint latest to continue it, --overwrite_output_dir true to start "
                            "over, or another --output_dir")
    if restart and log is not None:
        log(f"[prefswift] {run_dir} holds a run stopped before its first checkpoint: starting it over")
    if is_main:
        remove_run(run_dir, checkpoints(run_dir))

        remove_caches(run_dir)  # a new run: an earlier run's reference log-probs go too


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
