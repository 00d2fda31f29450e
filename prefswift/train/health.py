"""Training that breaks says so.

`NonFiniteGuard`: a loss or gradient that is nan/inf stops the run at the step it happens, before the optimizer applies
it (the weights, the checkpoints and the final adapter stay finite), with one `error:` line naming the step and the
usual causes; `--skip_nonfinite_steps N` skips up to N such steps instead (the step is not applied). Weights that turn
non-finite after a step stop the run before anything of that step is saved.

`DivergenceWatch`: a loss that explodes without turning nan, or gradients that vanish, are warned about once each, in
the console and in the run's summary.
"""
import math
from pathlib import Path
from typing import List, Optional

import torch
from transformers import TrainerCallback

from ..errors import PrefswiftError
from ..run.checkpoints import newest_whole_checkpoint

# the loss is exploding when it rises past this multiple of its lowest logged value (and past twice its first one,
# so that a loss near 0 coming back to ordinary values is not taken for an explosion)
EXPLOSION_FACTOR = 10.0
# the model has stopped learning when the gradient norm is exactly 0 for this many logged steps in a row
ZERO_GRAD_LOGS = 3


class NonFiniteError(PrefswiftError):
    """Training produced nan/inf: the run stops, nothing non-finite is saved."""


def show(value: float) -> str:
    """nan, inf, -inf as such; other numbers as %g."""
    return str(value) if not math.isfinite(value) else f"{value:g}"


def all_finite(tensors) -> bool:
    """No nan/inf in any of `tensors`: each one's fp32-accumulated sum is finite (nan and inf propagate into it), one
    device sync, and no tensor-sized temporary (a full model's embedding matrix would need one)."""
    sums = [t.sum(dtype=torch.float32) for t in tensors if t is not None and t.numel()]
    return not sums or bool(torch.isfinite(torch.stack(sums)).all())


class NonFiniteGuard(TrainerCallback):
    """See the module doc. `trainer`: a PreferenceTrainer (its `take_step_losses()` are this step's micro-batch
    losses); `allowed`: --skip_nonfinite_steps; `warn`: prints a warning line (rank 0)."""

    def __init__(self, trainer, allowed: int, warn):
        self.trainer = trainer
        self.allowed = allowed
        self.skipped = 0
        self.warn = warn

    def _any_process(self, flag: bool) -> bool:
        accelerator = self.trainer.accelerator
        if accelerator.num_processes == 1:
            return flag
        return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), "sum").item() > 0)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        trainer = self.trainer
        losses = trainer.take_step_losses()
        bad_losses = [v for v in losses if not math.isfinite(v)]
        # with fp16 autocast the grad scaler's own overflow skips are normal: the loss is checked then, not the grads
        grads_checked = trainer.accelerator.scaler is None and not trainer.is_deepspeed_enabled
        bad_grads = grads_checked and not all_finite(p.grad for p in trainer.model.parameters())
        if not self._any_process(bool(bad_losses) or bad_grads):
            return
        step = state.global_step + 1
        what = (f"the loss is {show(bad_losses[0])}" if bad_losses else
                "the gradients are not finite (nan/inf)" if bad_grads else "the loss is not finite on another process")
        if self.skipped < self.allowed:
            self.skipped += 1
            for p in trainer.model.parameters():
                p.grad = None  # the optimizer leaves parameters without a gradient alone: the step is not applied
            self.warn(f"[prefswift] warning: step {step}: {what}; skipped, not applied ({self.skipped} of "
                      f"--skip_nonfinite_steps {self.allowed})")
            return
        raise NonFiniteError(f"step {step}: {what} — training stopped before applying it; {self._kept(args)}. "
                             f"{self._causes(args)}")

    def on_step_end(self, args, state, control, **kwargs):
        trainable = [p for p in self.trainer.model.parameters() if p.requires_grad]
        if not self._any_process(not all_finite(p.detach() for p in trainable)):
            return
        raise NonFiniteError(f"step {state.global_step}: the trained weights became non-finite (nan/inf); nothing of "
                             f"this step is saved — {self._kept(args)}. {self._causes(args)}")

    def _kept(self, args) -> str:
        ckpt = newest_whole_checkpoint(Path(args.output_dir))
        return (f"the newest good checkpoint is {ckpt}" if ckpt else
                "no checkpoint was saved and no adapter/model is written")

    def _causes(self, args) -> str:
        skips = f" ({self.skipped} already skipped)" if self.skipped else ""
        return (f"Usual causes: a learning rate too high (--learning_rate {args.learning_rate:g}), fp16 overflow "
                "(try --dtype bf16 or fp32), or bad data rows (check them with `prefswift lint`); "
                f"--skip_nonfinite_steps N skips up to N such steps{skips}")


class DivergenceWatch(TrainerCallback):
    """Warns once when the logged loss explodes (past EXPLOSION_FACTOR x its running minimum) and once when the gradient
    norm is 0 for ZERO_GRAD_LOGS logged steps in a row. `warn(line)` prints and records the warning."""

    def __init__(self, warn):
        self.warn = warn
        self.first: Optional[float] = None
        self.lowest: Optional[float] = None
        self.zero_grads = 0
        self.warned: List[str] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        loss, grad_norm = logs.get("loss"), logs.get("grad_norm")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            if (self.lowest is not None and self.lowest > 0 and loss > EXPLOSION_FACTOR * self.lowest
                    and loss > 2 * self.first):
                self._once("explodes", f"step {state.global_step}: the loss ({loss:g}) is over {EXPLOSION_FACTOR:g}x "
                                       f"its lowest value so far ({self.lowest:g}): training is diverging — lower "
                                       "--learning_rate")
            self.first = loss if self.first is None else self.first
            self.lowest = loss if self.lowest is None else min(self.lowest, loss)
        self.zero_grads = self.zero_grads + 1 if grad_norm == 0 else 0
        if self.zero_grads >= ZERO_GRAD_LOGS:
            self._once("zero_grads", f"step {state.global_step}: the gradient norm has been 0 for {self.zero_grads} "
                                     "logged steps: the model no longer learns (a collapsed or saturated run; its "
                                     "accuracy and margins mean nothing) — lower --learning_rate")

    def _once(self, kind: str, message: str) -> None:
        if kind in self.warned:
            return
        self.warned.append(kind)
        self.warn(f"[prefswift] warning: {message}")


__all__ = ["NonFiniteGuard", "NonFiniteError", "DivergenceWatch", "show"]
