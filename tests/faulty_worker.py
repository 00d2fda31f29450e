"""A training worker with injected faults, for tests/test_cluster.py. Run it under torchrun (one process per rank)
with the arguments of `prefswift <algo> ...`: it trains as `prefswift <algo>` does (the same run_training, the same
one-line errors), with these faults from the environment:

  FAULT_SLOW_SAVE=S   rank 0 writes every checkpoint's optimizer.pt S seconds slower (a slow disk: the other ranks
                      wait for rank 0's save)
  FAULT_SLOW_END=S    rank 0 takes S seconds more at the end of training, before the result is saved (a slow final
                      save or upload)
  FAULT_STALL=STEP:S  rank 1 stops for S seconds after step STEP (alive: its heartbeat goes on; stuck: the next
                      collective waits for it)
"""
import os
import sys
import time

import torch
import typer
from transformers import TrainerCallback


class Faults(TrainerCallback):
    def __init__(self, rank: int):
        self.rank = rank
        stall = os.environ.get("FAULT_STALL")
        self.stall = tuple(float(x) for x in stall.split(":")) if stall else None

    def on_step_end(self, args, state, control, **kwargs):
        if self.rank == 1 and self.stall and state.global_step == int(self.stall[0]):
            time.sleep(self.stall[1])

    def on_train_end(self, args, state, control, **kwargs):
        if self.rank == 0 and os.environ.get("FAULT_SLOW_END"):
            time.sleep(float(os.environ["FAULT_SLOW_END"]))


def slow_optimizer_writes(seconds: float) -> None:
    write = torch.save

    def slow_save(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            time.sleep(seconds)
        return write(obj, f, *args, **kwargs)

    torch.save = slow_save


def main() -> None:
    from prefswift.commands.common import parse_or_help, run_user_command, setup_logging
    from prefswift.commands.train import exit_worker, run_training

    rank = int(os.environ["RANK"])
    if rank == 0 and os.environ.get("FAULT_SLOW_SAVE"):
        slow_optimizer_writes(float(os.environ["FAULT_SLOW_SAVE"]))
    algo, argv = sys.argv[1], sys.argv[2:]

    def go():
        args = parse_or_help(algo, argv)
        setup_logging()
        run_training(args, algo, callbacks=[Faults(rank)])

    try:
        run_user_command(go)  # a user error: its one line, then exit code 2 (typer.Exit)
    except typer.Exit as stop:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(stop.exit_code)
    exit_worker()


if __name__ == "__main__":
    main()
