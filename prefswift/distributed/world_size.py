"""Resuming with a different number of processes (2 -> 1, 1 -> 2, 16 -> 8 ...): the same global batch per step.

An optimizer step of a run consumes `batch_size x gradient_accumulation_steps x world_size` rows, in the order of
one shuffled dataset (accelerate deals consecutive batches to the ranks, and gradient accumulation takes consecutive
batches), and the learning-rate schedule counts optimizer steps. So a checkpoint continues exactly — the same rows in
each later step, the same schedule — with another world size when the product stays the same: the per-process
batch size is kept and the accumulation steps take up the difference (2 processes x 1 -> 1 process x 2); when that
does not divide, the largest smaller per-process batch that does. An explicit --batch_size /
--gradient_accumulation_steps that differs from the checkpoint's is accepted when it keeps the global batch, refused
in one line when not (the checkpoint's own values, given again, count as not given).
"""
from __future__ import annotations

from typing import Optional, Tuple

from ..errors import ArgumentError


def rescale_batch(saved_world: int, world: int, batch_size: int, grad_accum: int,
                  explicit_batch: Optional[int] = None, explicit_accum: Optional[int] = None) -> Tuple[int, int]:
    """(batch_size, gradient_accumulation_steps) for `world` processes that keep the checkpoint's global batch
    (`batch_size x grad_accum x saved_world`); `explicit_*`: the values the command line gives, if any."""
    total = batch_size * grad_accum * saved_world
    where = (f"the checkpoint was trained by {saved_world} process(es) with a global batch of {total} rows "
             f"(--batch_size {batch_size} x --gradient_accumulation_steps {grad_accum} x {saved_world})")
    if explicit_batch is not None or explicit_accum is not None:
        bs = explicit_batch if explicit_batch is not None else None
        ga = explicit_accum if explicit_accum is not None else None
        if bs is None:
            bs = total // (ga * world) if total % (ga * world) == 0 else 0
        if ga is None:
            ga = total // (bs * world) if total % (bs * world) == 0 else 0
        if not bs or not ga or bs * ga * world != total:
            raise ArgumentError(f"{where}; with {world} process(es) give --batch_size and --gradient_accumulation_steps "
                                f"whose product is {total / world:g}, or drop them and prefswift picks them")
        return bs, ga
    if total % world:
        raise ArgumentError(f"{where}; {world} processes cannot share it evenly — resume with a number of processes "
                            f"that divides {total}")
    per_process = total // world
    for bs in range(min(batch_size, per_process), 0, -1):
        if per_process % bs == 0:
            return bs, per_process // bs
    raise AssertionError("unreachable: a per-process batch of 1 always divides")
