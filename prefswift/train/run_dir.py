"""The run directory: refuse to clobber an earlier run, find `latest` checkpoints."""
import logging
import re
import shutil
from pathlib import Path
from typing import Optional

from ..errors import ArgumentError

logger = logging.getLogger("prefswift")
CKPT = re.compile(r"^checkpoint-(\d+)$")


def checkpoints(run_dir: Path):
    """checkpoint-N dirs of a run, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := CKPT.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_resume(run_dir: Path, resume: Optional[str]) -> Optional[Path]:
    if not resume:
        return None
    if resume.lower() == "latest":
        # the Trainer writes trainer_state.json last: a checkpoint without it was cut short (killed mid-save)
        for ckpt in reversed(checkpoints(run_dir)):
            if (ckpt / "trainer_state.json").is_file():
                return ckpt
            logger.warning("skipping %s: incomplete (no trainer_state.json), probably killed while saving", ckpt)
        return None  # the ORPO script's convention: `latest` on a fresh output dir just starts training
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise ArgumentError(f"--resume_from_checkpoint {resume}: not a checkpoint dir (no trainer_state.json); "
                            "pass `latest` or a checkpoint-N dir")
    return path


def prepare_run_dir(run_dir: Path, resume_from: Optional[Path], overwrite: bool, is_main: bool) -> None:
    if resume_from is None and checkpoints(run_dir):
        if not overwrite:
            raise ArgumentError(f"--output_dir {run_dir} already holds a run ({checkpoints(run_dir)[-1].name}); "
                                "pass --resume_from_checkpoint latest to continue it, --overwrite_output_dir true "
                                "to start over, or another --output_dir")
        if is_main:
            for p in checkpoints(run_dir):
                shutil.rmtree(p)  # (logging.jsonl is restarted by the workflow whenever it does not resume)
            (run_dir / "complete.json").unlink(missing_ok=True)
    if is_main and overwrite and resume_from is None:  # a new run: an earlier run's reference log-probs go too
        from .reference_cache import remove_caches

        remove_caches(run_dir)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)


def restart_or_truncate_log(run_dir: Path, resume_from: Optional[Path], log) -> None:
    """Resuming: keep logging.jsonl up to the checkpoint's step (later rows are logged again). Else start it anew."""
    from .callbacks import truncate_log_after

    if resume_from is not None:
        log(f"[prefswift] resuming from {resume_from}")
        truncate_log_after(run_dir / "logging.jsonl", int(resume_from.name.split("-")[-1]))
    else:
        (run_dir / "logging.jsonl").unlink(missing_ok=True)


def interrupted_message(run_dir: Path, step: int) -> str:
    """Where a run stopped on Ctrl-C, which checkpoint exists, and the command that continues it."""
    import shlex
    import sys

    done = [c for c in checkpoints(run_dir) if (c / "trainer_state.json").is_file()]
    argv = [a for a in sys.argv[1:]]
    if "--resume_from_checkpoint" not in argv:
        argv += ["--resume_from_checkpoint", "latest"]
    if not done:
        return (f"[prefswift] interrupted at step {step}; no checkpoint was saved yet (one is written every "
                "--save_steps steps), so a new run starts from the beginning")
    return (f"[prefswift] interrupted at step {step}; the newest checkpoint is {done[-1]}. Continue with:\n"
            f"  prefswift {shlex.join(argv)}")
