"""Batching preference pairs, in one of two layouts the pair forward (`prefswift.scoring.forward`) reads:

* `PairCollator`: chosen rows then rejected rows, each prompt + response (2B rows); packed: padding-free rows of
  several sequences, positions restarting per sequence (flash-attn varlen, or SDPA's block-diagonal mask).
* `PrefixSharedCollator`: one block per pair, prompt + chosen + rejected, with a 4D mask: one pair per row (B rows)
  or, with packing, several pairs per row (fewer rows, less padding).

Rows come from `prefswift.data.pipeline` as {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"} (+ optional
precomputed "ref_chosen_logps"/"ref_rejected_logps").
"""
from dataclasses import dataclass
from enum import IntEnum
from typing import Dict, List, Optional

import torch

from .batches import Batch, PackedPairs, PaddedPairs, PrefixSharedPairs
from .packing import fill_packed_rows, pack_into_rows


class Segment(IntEnum):
    """What a token of a prefix-shared row is. One coding for the collator's mask and the forward's scoring."""

    PAD = 0
    CHOSEN = 1
    REJECTED = 2
    PROMPT = 3


def round_up(n: int, multiple_of: Optional[int]) -> int:
    return -(-n // multiple_of) * multiple_of if multiple_of else n


def pad_right(seqs: List[List[int]], value: int, multiple_of: Optional[int] = None) -> torch.Tensor:
    length = round_up(max(len(s) for s in seqs), multiple_of)
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def pair_tokens(row: Dict) -> int:
    """The tokens of one pair in the data: prompt + chosen + rejected (the prompt once, whatever the layout)."""
    return len(row["prompt_input_ids"]) + len(row["chosen_input_ids"]) + len(row["rejected_input_ids"])


def add_reference_logps(batch: Batch, rows: List[Dict]) -> Batch:
    """Carry precomputed reference log-probs ([B] each) and a reward model's `margin` ([B]) when every row has them,
    and `num_tokens`: the tokens in the data (`pair_tokens` of every pair), for the console's tokens/s."""
    batch["num_tokens"] = torch.tensor(sum(pair_tokens(r) for r in rows), dtype=torch.long)
    if all("margin" in r for r in rows):  # a reward model's per-pair target margin (TRL's `margin` column)
        batch["margin"] = torch.tensor([float(r["margin"]) for r in rows], dtype=torch.float32)
    if all("ref_chosen_logps" in r for r in rows):
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            batch[key] = torch.tensor([float(r[key]) for r in rows], dtype=torch.float32)
    return batch


@dataclass
class PairCollator:
    """Chosen rows then rejected rows (2B sequences). With `packing`, padding-free: the sequences are packed one after
    another into rows (as long as the longest sequence, or all in `one_row` for flash-attn's varlen kernels), with
    no attention mask and position ids restarting at 0 for every sequence — transformers turns those restarts into
    a block-diagonal mask (SDPA/eager) or cu_seq_lens (flash_attention_2)."""

    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None
    packing: bool = False
    one_row: bool = False

    def __call__(self, rows: List[Dict]) -> Batch:
        """Returns (B pairs -> 2B sequences, chosen first): PaddedPairs with
        input_ids [2B, T], attention_mask [2B, T], completion_mask [2B, T] (1 on response tokens); packed: PackedPairs,
        position_ids, completion_mask and seq_id [R, T] (which sequence a token is: chosen i = i, rejected i = B + i,
        -1 = padding) and no attention mask. Plus ref_chosen_logps / ref_rejected_logps [B] when the rows carry
        precomputed reference log-probs.
        """
        seqs, masks = [], []
        for key in ("chosen_input_ids", "rejected_input_ids"):
            for r in rows:
                prompt, response = list(r["prompt_input_ids"]), list(r[key])
                seqs.append(prompt + response)
                masks.append([0] * len(prompt) + [1] * len(response))
        if self.packing:
            return add_reference_logps(self._packed(seqs, masks), rows)
        batch = PaddedPairs(
            input_ids=pad_right(seqs, self.pad_token_id, self.pad_to_multiple_of),
            attention_mask=pad_right([[1] * len(s) for s in seqs], 0, self.pad_to_multiple_of),
            completion_mask=pad_right(masks, 0, self.pad_to_multiple_of),
        )
        return add_reference_logps(batch, rows)

    def _layout(self, lengths: List[int]):
        """(rows, row length T): which sequences share each row (one per row unpacked) and the padded length."""
        T = sum(lengths) if self.packing and self.one_row else max(lengths)
        T = round_up(T, self.pad_to_multiple_of)
        return (pack_into_rows(lengths, T) if self.packing else [[i] for i in range(len(lengths))]), T

    def layout_tokens(self, rows: List[Dict]) -> int:
        """Tokens of the [rows, T] tensors `__call__` returns for `rows` (padding included): what the forward sees."""
        lengths = [len(r["prompt_input_ids"]) + len(r[key]) for key in ("chosen_input_ids", "rejected_input_ids")
                   for r in rows]
        layout, T = self._layout(lengths)
        return len(layout) * T

    def _packed(self, seqs: List[List[int]], masks: List[List[int]]) -> PackedPairs:
        lengths = [len(s) for s in seqs]
        layout, T = self._layout(lengths)
        input_ids, mask, seq_id, position_ids = fill_packed_rows(seqs, masks, layout, T, self.pad_token_id)
        return PackedPairs(input_ids=input_ids, position_ids=position_ids, completion_mask=mask, seq_id=seq_id)


class ListDataset(torch.utils.data.Dataset):
    """The encoded rows as a torch Dataset (the Trainer must not drop our columns)."""

    def __init__(self, rows: List[Dict]):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        return {k: v for k, v in row.items() if k not in ("example", "truncated")}


@dataclass
class PrefixSharedCollator:
    """One block per pair: prompt once, then chosen, then rejected (the main speed lever: the prompt's forward and
    backward run once instead of twice). With `packing`, several pairs share a row (`packing.pack_into_rows`: rows
    as long as the batch's longest pair, so less padding and the same attention cost per row); without, one pair
    per row.

    Position ids restart at 0 for every pair and again after the prompt for the rejected block (it continues from
    the prompt, like the chosen block), and a 4D boolean attention mask lets each response see its own prompt and
    itself, never the other response or another pair. The scored tokens are gathered by `pred_index`: a flat index
    into the [rows * T] positions whose hidden states predict them (the first rejected token is predicted from the
    last prompt token, not from the end of the chosen block).

    Returns input_ids [R, T], attention_mask [R, 1, T, T] (bool), position_ids [R, T] and, per pair (B, in the order
    of `rows`), pred_index / target_ids / score_seg [B, K] with score_seg a `Segment` per scored token (PROMPT tokens
    are scored only for ORPO's prompt+response NLL; PAD = padding); plus precomputed reference log-probs when the
    rows carry them.
    """

    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None
    packing: bool = False

    def _layout(self, lengths: List[int]):
        """(rows, row length T): which pairs share each row (one per row unpacked) and the padded length."""
        T = round_up(max(lengths), self.pad_to_multiple_of)
        return (pack_into_rows(lengths, T) if self.packing else [[i] for i in range(len(lengths))]), T

    def layout_tokens(self, rows: List[Dict]) -> int:
        """Tokens of the [rows, T] tensors `__call__` returns for `rows` (padding included): what the forward sees."""
        layout, T = self._layout([pair_tokens(r) for r in rows])
        return len(layout) * T

    def __call__(self, rows: List[Dict]) -> PrefixSharedPairs:
        pairs = [tuple(list(r[k]) for k in ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids"))
                 for r in rows]
        layout, T = self._layout([len(p) + len(c) + len(j) for p, c, j in pairs])
        R = len(layout)
        input_ids = torch.full((R, T), self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((R, T), dtype=torch.long)
        pair_of = torch.full((R, T), -1, dtype=torch.long)          # which pair a position belongs to (-1: padding)
        seg = torch.full((R, T), int(Segment.PAD), dtype=torch.long)
        preds: List[List[int]] = [[] for _ in pairs]
        targets: List[List[int]] = [[] for _ in pairs]
        segs: List[List[int]] = [[] for _ in pairs]
        for row, members in enumerate(layout):
            at = 0
            for i in members:
                prompt, chosen, rejected = pairs[i]
                n_p, n_c, n_r = len(prompt), len(chosen), len(rejected)
                n = n_p + n_c + n_r
                input_ids[row, at:at + n] = torch.tensor(prompt + chosen + rejected, dtype=torch.long)
                position_ids[row, at:at + n] = torch.tensor(list(range(n_p + n_c)) + list(range(n_p, n_p + n_r)))
                pair_of[row, at:at + n] = i
                seg[row, at:at + n_p] = Segment.PROMPT
                seg[row, at + n_p:at + n_p + n_c] = Segment.CHOSEN
                seg[row, at + n_p + n_c:at + n] = Segment.REJECTED
                # prompt tokens 1.., chosen tokens, rejected tokens; each with the position that predicts it
                local = list(range(n_p + n_c - 1)) + [n_p - 1] + list(range(n_p + n_c, n - 1))
                base = row * T + at
                preds[i] = [base + t for t in local[: n - 1]]
                targets[i] = prompt[1:] + chosen + rejected
                segs[i] = [Segment.PROMPT] * (n_p - 1) + [Segment.CHOSEN] * n_c + [Segment.REJECTED] * n_r
                at += n
        batch = PrefixSharedPairs(input_ids=input_ids, attention_mask=prefix_shared_mask(pair_of, seg),
                                  position_ids=position_ids, pred_index=pad_right(preds, 0),
                                  target_ids=pad_right(targets, 0), score_seg=pad_right(segs, Segment.PAD))
        return add_reference_logps(batch, rows)


def prefix_shared_mask(pair_of: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """[R, 1, T, T] bool: a token sees earlier tokens of its own pair that are in its own segment or the prompt;
    padding sees itself only (no fully masked query row, which SDPA would turn into NaN)."""
    T = pair_of.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    same_pair = pair_of[:, :, None] == pair_of[:, None, :]
    visible = (seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == Segment.PROMPT)
    real_key = (pair_of >= 0)[:, None, :]
    mask = causal & same_pair & visible & real_key
    pad_query = (pair_of < 0)[:, :, None] & torch.eye(T, dtype=torch.bool)
    return (mask | pad_query).unsqueeze(1)
