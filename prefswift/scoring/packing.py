"""Padding-free packing: which pairs share a row, and batches filled to a token budget.

* `pack_into_rows`: several prefix-shared pairs (prompt + chosen + rejected) one after another in a row, first-fit
  decreasing into rows as long as the batch's longest pair. The row length (so the attention cost per row) does not
  grow; the number of rows, and with it the padding, shrinks. The loss is unchanged: every pair is still scored on
  its own (`PrefixSharedCollator` gives each pair its own positions and a block-diagonal mask).
* `TokenBudgetBatchSampler` (`--max_tokens_per_batch`): a variable number of pairs per batch, as many as fit in the
  budget in the layout the forward gets (measured by the collator), drawn from neighbourhoods of similar length so
  the rows are nearly full.
"""
from __future__ import annotations

import random
from typing import Callable, Iterator, List, Optional, Sequence

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


def packed_tokens(lengths: Sequence[int], padding_free: bool = False) -> int:
    """Tokens of a batch laid out by `pack_into_rows` into rows as long as its longest item (rows x that length),
    or, `padding_free`, the tokens themselves."""
    if padding_free:
        return sum(lengths)
    longest = max(lengths)
    return len(pack_into_rows(lengths, longest)) * longest


class TokenBudgetBatchSampler(torch.utils.data.Sampler):
    """Batches of pair indices whose layout holds at most `max_tokens` tokens (a pair longer than the budget gets a
    batch of its own). Each epoch: shuffle (seeded by seed + epoch), cut into megabatches of `megabatch_pairs`, sort
    each by length, cut each into the longest runs that fit the budget, then shuffle the batches — the scheme of
    transformers' LengthGroupedSampler with a token budget instead of a fixed count. Deterministic for a given seed
    and epoch, so a resumed run sees the same batches.

    `batch_tokens(indices) -> int`: the tokens of the tensors the forward gets for those pairs (the collator's
    `layout_tokens`: rows x row length, padding included). Without it, `packed_tokens` of `lengths` (`padding_free`:
    their sum)."""

    def __init__(self, lengths: Sequence[int], max_tokens: int, seed: int = 42, megabatch_pairs: int = 256,
                 shuffle: bool = True, padding_free: bool = False,
                 batch_tokens: Optional[Callable[[List[int]], int]] = None):
        self.lengths = [int(n) for n in lengths]
        self.max_tokens = int(max_tokens)
        self.padding_free = padding_free
        self.batch_tokens = batch_tokens or self._packed_tokens
        self.seed = seed
        self.megabatch_pairs = megabatch_pairs
        self.shuffle = shuffle
        self.epoch = 0
        self._batches = self._build(0)

    def _packed_tokens(self, indices: List[int]) -> int:
        return packed_tokens([self.lengths[i] for i in indices], self.padding_free)

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
            batches += self._cut(mega)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _cut(self, mega: List[int]) -> List[List[int]]:
        """`mega` (longest first) cut into batches: from each start, the longest run whose layout fits the budget
        (found by doubling then bisecting, so a batch of k pairs costs O(log k) layouts); every batch returned was
        measured to fit, or is a single pair."""
        batches, start, n = [], 0, len(mega)
        while start < n:
            fits = lambda end: self.batch_tokens(mega[start:end]) <= self.max_tokens  # noqa: E731
            good, bad, step = start + 1, None, 1
            if fits(good):
                while good < n:
                    probe = min(good + step, n)
                    if not fits(probe):
                        bad = probe
                        break
                    good, step = probe, step * 2
                while bad is not None and bad - good > 1:
                    mid = (good + bad) // 2
                    good, bad = (mid, bad) if fits(mid) else (good, mid)
            batches.append(mega[start:good])
            start = good
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)

    def mean_pairs_per_batch(self) -> float:
        return len(self.lengths) / max(1, len(self._batches))


def fill_packed_rows(seqs: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], layout: List[List[int]], width: int,
                     pad_token_id: int):
    """[rows, width] tensors of sequences packed by `layout` (sequence indices per row): (input_ids, mask, seq_id,
    position_ids). Positions restart at 0 for every sequence; seq_id is -1 on the padding tail, whose positions form a
    sequence of their own that is never scored."""
    rows = len(layout)
    input_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    seq_id = torch.full((rows, width), -1, dtype=torch.long)
    position_ids = torch.zeros((rows, width), dtype=torch.long)
    for row, members in enumerate(layout):
        at = 0
        for i in members:
            n = len(seqs[i])
            input_ids[row, at:at + n] = torch.tensor(seqs[i], dtype=torch.long)
            mask[row, at:at + n] = torch.tensor(masks[i], dtype=torch.long)
            seq_id[row, at:at + n] = i
            position_ids[row, at:at + n] = torch.arange(n)
            at += n
        position_ids[row, at:] = torch.arange(width - at)
    return input_ids, mask, seq_id, position_ids


__all__ = ["fill_packed_rows", "pack_into_rows", "packed_tokens", "TokenBudgetBatchSampler"]
