"""A resumed run takes the steps its own total asks for, at the learning rates of its own schedule.

On a resume the Trainer builds the schedule for this run's total steps (a new --max_steps / --num_train_epochs
included), then loads the checkpoint's scheduler and optimizer state. The optimizer's learning rate is then the one the
checkpoint's run had reached (0 at the end of a finished run), and the first resumed step would run at it.
`ResumedScheduleCallback` sets the learning rate to the new schedule's value at the resumed step before that step
runs. When the total is unchanged it is the value already there (the same product base_lr * lambda(step)), so an exact
resume stays exact.

The checkpoint's trainer_state.json also carries the logging, eval and save intervals it was trained with, and the
Trainer takes them over this run's arguments. The arguments already hold the checkpoint's values unless the command
line gave others (train/resume.py adopts the rest), so `ResumedScheduleCallback` recomputes the intervals from this
run's arguments: an explicit --save_steps / --logging_steps / --eval_steps acts on a resume, as the docs promise
(transformers' note that the checkpoint's values win is dropped when only these differ: it is not so here).

A checkpoint of the run's last step (killed after that save, before the final adapter was written) leaves no step to
take, but the Trainer's loop takes one more step before it looks at the total: `NothingLeftCallback` ends `train()`
with `NothingLeftToTrain` before that step, after the checkpoint's weights are loaded.
"""
import logging
import warnings

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback


class NothingLeftToTrain(Exception):
    """Raised out of Trainer.train(): the resumed checkpoint is at (or past) the run's last step."""


INTERVALS = ("logging_steps", "eval_steps", "save_steps")


class _IntervalNote(logging.Filter):
    """Drops transformers' resume note when the only mismatches it lists are the intervals (recomputed here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        lines = str(record.getMessage()).split("\n")
        if not lines[0].startswith("Warning: The following arguments do not match"):
            return True
        return not all(line.strip().split(":")[0] in INTERVALS for line in lines[1:])


_INTERVAL_NOTE = _IntervalNote()


class ResumedScheduleCallback(TrainerCallback):
    def __init__(self):
        logging.getLogger("transformers.trainer_utils").addFilter(_INTERVAL_NOTE)  # once: filters are a set

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        if state.global_step > 0:  # resumed: this run's intervals, not the ones trainer_state.json carried
            state.compute_steps(args, state.max_steps)
        if state.global_step == 0 or not isinstance(lr_scheduler, LambdaLR):
            return  # a fresh run, or a schedule the Trainer does not own (DeepSpeed's, reduce_lr_on_plateau)
        lr_scheduler.last_epoch -= 1  # step() recomputes the rates at the same step with this run's lambdas
        with warnings.catch_warnings():  # the optimizer has not stepped in this process yet: expected here
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)")
            lr_scheduler.step()


class NothingLeftCallback(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if 0 < state.max_steps <= state.global_step:
            raise NothingLeftToTrain(f"step {state.global_step} of {state.max_steps}")
