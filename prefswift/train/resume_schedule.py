"""A resumed run follows the learning-rate schedule of its own total from the step it resumes at.

On a resume the Trainer builds the schedule for this run's total steps (a new --max_steps / --num_train_epochs
included), then loads the checkpoint's scheduler and optimizer state. The optimizer's learning rate is then the one the
checkpoint's run had reached (0 at the end of a finished run), and the first resumed step would run at it. This
callback sets the learning rate to the new schedule's value at the resumed step before that step runs. When the total
is unchanged it is the value already there (the same product base_lr * lambda(step)), so an exact resume stays exact.
"""
import warnings

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback


class ResumedScheduleCallback(TrainerCallback):
    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        if state.global_step == 0 or not isinstance(lr_scheduler, LambdaLR):
            return  # a fresh run, or a schedule the Trainer does not own (DeepSpeed's, reduce_lr_on_plateau)
        lr_scheduler.last_epoch -= 1  # step() recomputes the rates at the same step with this run's lambdas
        with warnings.catch_warnings():  # the optimizer has not stepped in this process yet: expected here
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)")
            lr_scheduler.step()
