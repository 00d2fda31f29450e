"""Padding-free packing: which pairs share a row, and batches filled to a token budget.

* `pack_into_rows`: several prefix-shared pairs (prompt + chosen + rejected) one after another in a row, first-fit
  decreasing into rows as long as the batch's longest pair. The row length (so the attention cost per row) does not
  grow; the number of rows, and with it the padding, shrinks. The loss is unchanged: every pair is still scored on
  its own (`PrefixSharedCollator` gives each pair its own positions and a block-diagonal mask).
* `TokenBudgetBatchSampler` (`--max_tokens_per_batch`): a variable number of pairs per batch, as many as fit in the
  budget once packed, drawn from neighbourhoods of similar length so the packed rows are nearly full.
"""
from __future__ import annotations

import random
from typing import Iterator, List, Sequence

import torch


def pack_into_rows(lengths: Sequence[int], capacity: int) -> List[List[int]]:
    """Indices of `lengths` grouped into rows of at most `capacity` tokens (first-fit decreasing; each length must
    be <= capacity). Rows and the pairs inside them come longest first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: List[List[int]] = []
    free: List[int] = []
    for i in order:
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            if lengths[i] > capacity:
                raise ValueError(f"a pair of {lengths[i]} tokens does not fit a row of {capacity}")
            rows.append([i])
            free.append(capacity - lengths[i])
    return rows


class TokenBudgetBatchSampler(torch.utils.data.Sampler):
    """Batches of pair indices whose packed layout holds at most `max_tokens` tokens (a pair longer than the budget
    gets a batch of its own). Each epoch: shuffle (seeded by seed + epoch), cut into megabatches of
    `megabatch_pairs`, sort each by length, fill batches greedily, then shuffle the batches — the scheme of
    transformers' LengthGroupedSampler with a token budget instead of a fixed count. Deterministic for a given
    seed and epoch, so a resumed run sees the same batches. `padding_free`: the budget holds the tokens themselves
    (padding-free rows, as flash-attn's varlen layout has them) instead of rows x the longest pair."""

    def __init__(self, lengths: Sequence[int], max_tokens: int, seed: int = 42, megabatch_pairs: int = 256,
                 shuffle: bool = True, padding_free: bool = False):
        self.lengths = [int(n) for n in lengths]
        self.max_tokens = int(max_tokens)
        self.padding_free = padding_free
        self.seed = seed
        self.megabatch_pairs = megabatch_pairs
        self.shuffle = shuffle
        self.epoch = 0
        self._batches = self._build(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = self._build(epoch)

    def _build(self, epoch: int) -> List[List[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed + epoch)
        if self.shuffle:
            rng.shuffle(order)
        batches: List[List[int]] = []
        for start in range(0, len(order), self.megabatch_pairs):
            mega = sorted(order[start:start + self.megabatch_pairs], key=lambda i: -self.lengths[i])
            batch: List[int] = []
            free: List[int] = []  # room left in each packed row; longest first, so batch[0] sets the row length
            total = 0             # padding-free: the tokens of the batch so far
            for i in mega:
                n = self.lengths[i]
                if self.padding_free:
                    if batch and total + n > self.max_tokens:
                        batches.append(batch)
                        batch, total = [], 0
                    batch.append(i)
                    total += n
                    continue
                row = next((r for r, room in enumerate(free) if n <= room), None)
                if row is None and batch and (len(free) + 1) * self.lengths[batch[0]] > self.max_tokens:
                    batches.append(batch)
                    batch, free = [], []
                if row is None:
                    free.append((self.lengths[batch[0]] if batch else n) - n)
                else:
                    free[row] -= n
                batch.append(i)
            if batch:
                batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    def mean_pairs_per_batch(self) -> float:
        return len(self.lengths) / max(1, len(self._batches))


__all__ = ["pack_into_rows", "TokenBudgetBatchSampler"]
