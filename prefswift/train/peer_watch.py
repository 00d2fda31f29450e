"""The training run's side of `prefswift.distributed.watchdog`: the watch started once the process group exists, the
step it reports, and where the run stands (its newest whole checkpoint) in the line every rank prints when one is gone.
"""
from pathlib import Path
from typing import Optional

from transformers import TrainerCallback

from ..distributed.env import dist_env
from ..distributed.watchdog import PeerWatch, start_peer_watch
from ..run.checkpoints import newest_whole_checkpoint


class StepBeat(TrainerCallback):
    """Keeps the watch's 'last completed step' current."""

    def __init__(self, watch: PeerWatch):
        self.watch = watch

    def on_train_begin(self, args, state, control, **kwargs):
        self.watch.step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        self.watch.step = state.global_step


def where_the_run_stands(run_dir: Path) -> str:
    ckpt = newest_whole_checkpoint(run_dir)
    if ckpt is None:
        return " — no whole checkpoint yet"
    return f" — newest whole checkpoint: {ckpt}; continue with --resume_from_checkpoint latest"


def watch_peers(trainer, run_dir: Path, ddp_timeout: float) -> Optional[PeerWatch]:
    """Start this rank's PeerWatch (None for one process) and let the trainer report its steps to it."""
    env = dist_env()
    if not env.is_distributed:
        return None
    watch = start_peer_watch(env.rank, env.world_size, ddp_timeout, lambda: where_the_run_stands(run_dir))
    # first: a step is complete for the watch before any other callback's collective (the nan/inf guard's) runs
    trainer.callback_handler.callbacks.insert(0, StepBeat(watch))
    return watch
