"""Trainer callbacks: logging.jsonl, args.json and the completion marker in every checkpoint (run/checkpoints.py),
plots at the end (rank 0 only)."""
import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

from ..distributed.watchdog import wait_for_all
from ..run.checkpoints import checkpoints, mark_complete_checkpoint, rotate, unmark_checkpoint
from .console import peak_memory
from .plots import write_plots


class RunFilesCallback(TrainerCallback):
    def __init__(self, run_dir, run_args):
        self.run_dir = Path(run_dir)
        self.run_args = run_args
        self.log_path = self.run_dir / "logging.jsonl"
        self.started = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        for k, v in logs.items():
            if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
                v = str(v)  # "nan", "inf", "-inf": JSON has no such numbers, and null would hide them
            row[k] = v
        if "loss" in logs:  # for the throughput and memory curves (prefswift web): tokens so far, seconds, peak MB
            row.setdefault("num_input_tokens_seen", int(getattr(state, "num_input_tokens_seen", 0) or 0))
            row["elapsed_s"] = round(time.time() - self.started, 3)
            row["peak_memory_mb"] = round(peak_memory()[0] / 2**20, 1)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        self._before_save(state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._before_save(state, control)

    def _before_save(self, state, control) -> None:
        """A checkpoint dir about to be written again (an earlier attempt at this step) is not whole until marked."""
        if control.should_save and state.is_world_process_zero:
            unmark_checkpoint(self.run_dir / f"checkpoint-{state.global_step}")

    def on_save(self, args, state, control, **kwargs):
        """After the Trainer's files: args.json, then the marker (last), then --save_total_limit's rotation.

        Rank 0 writes the weights and the optimizer alone (minutes for a big model on a slow disk) while the other
        ranks wait: they wait beating (`wait_for_all`), not in a collective that --ddp_timeout would end."""
        step = state.global_step
        wait_for_all(f"checkpoint-{step}/files")  # every rank's own files (rng_state_N.pth) before the marker
        if state.is_world_process_zero:
            ckpt = self.run_dir / f"checkpoint-{step}"
            if ckpt.is_dir():
                self.run_args.save(ckpt)
                mark_complete_checkpoint(ckpt, world_size=args.world_size)
                rotate(ckpt, self.run_args.train.save_total_limit, checkpoints(self.run_dir))
        wait_for_all(f"checkpoint-{step}/marked")  # the next step's all-reduce waits for nobody's disk

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.log_path.is_file():
            write_plots(self.log_path, self.run_dir / "images")
