"""Batching preference pairs, in one of two layouts the pair forward (`prefswift.scoring.forward`) reads:

* `PairCollator`: chosen rows then rejected rows, each prompt + response (2B rows).
* `PrefixSharedCollator`: one row per pair, prompt + chosen + rejected, with a 4D mask (B rows).

Rows come from `prefswift.data.pipeline` as {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids"} (+ optional
precomputed "ref_chosen_logps"/"ref_rejected_logps").
"""
from dataclasses import dataclass
from enum import IntEnum
from typing import Dict, List, Optional

import torch


class Segment(IntEnum):
    """What a token of a prefix-shared row is. One coding for the collator's mask and the forward's scoring."""

    PAD = 0
    CHOSEN = 1
    REJECTED = 2
    PROMPT = 3


def pad_right(seqs: List[List[int]], value: int, multiple_of: Optional[int] = None) -> torch.Tensor:
    length = max(len(s) for s in seqs)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def add_reference_logps(batch: Dict[str, torch.Tensor], rows: List[Dict]) -> Dict[str, torch.Tensor]:
    """Carry precomputed reference log-probs ([B] each) when every row has them."""
    if all("ref_chosen_logps" in r for r in rows):
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            batch[key] = torch.tensor([float(r[key]) for r in rows], dtype=torch.float32)
    return batch


@dataclass
class PairCollator:
    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None

    def __call__(self, rows: List[Dict]) -> Dict[str, torch.Tensor]:
        """Returns (B pairs -> 2B rows, chosen first):
        input_ids [2B, T], attention_mask [2B, T], completion_mask [2B, T] (1 on response tokens),
        and ref_chosen_logps / ref_rejected_logps [B] when the rows carry precomputed reference log-probs.
        """
        seqs, masks = [], []
        for key in ("chosen_input_ids", "rejected_input_ids"):
            for r in rows:
                prompt, response = list(r["prompt_input_ids"]), list(r[key])
                seqs.append(prompt + response)
                masks.append([0] * len(prompt) + [1] * len(response))
        batch = {
            "input_ids": pad_right(seqs, self.pad_token_id, self.pad_to_multiple_of),
            "attention_mask": pad_right([[1] * len(s) for s in seqs], 0, self.pad_to_multiple_of),
            "completion_mask": pad_right(masks, 0, self.pad_to_multiple_of),
        }
        return add_reference_logps(batch, rows)


class ListDataset(torch.utils.data.Dataset):
    """The encoded rows as a torch Dataset (the Trainer must not drop our columns)."""

    def __init__(self, rows: List[Dict]):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        return {k: v for k, v in row.items() if k != "example"}


@dataclass
class PrefixSharedCollator:
    """One row per pair: prompt once, then chosen, then rejected (the main speed lever: the prompt's forward and
    backward run once instead of twice).

    Position ids restart for the rejected block (it continues from the prompt, like the chosen block), and a 4D
    boolean attention mask lets each response see the prompt and itself but never the other response. The scored
    tokens are gathered by `pred_index` (the position whose hidden state predicts them): the first rejected token is
    predicted from the last prompt token, not from the end of the chosen block.

    Returns input_ids [B, T], attention_mask [B, 1, T, T] (bool), position_ids [B, T], pred_index / target_ids /
    score_seg [B, K] with score_seg a `Segment` per scored token (PROMPT tokens are scored only for ORPO's
    prompt+response NLL; PAD = padding); plus precomputed reference log-probs when the rows carry them.
    """

    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None

    def __call__(self, rows: List[Dict]) -> Dict[str, torch.Tensor]:
        seqs, positions, preds, targets, segs = [], [], [], [], []
        for r in rows:
            prompt, chosen, rejected = (list(r[k]) for k in ("prompt_input_ids", "chosen_input_ids",
                                                                 "rejected_input_ids"))
            n_p, n_c, n_r = len(prompt), len(chosen), len(rejected)
            seqs.append(prompt + chosen + rejected)
            positions.append(list(range(n_p + n_c)) + list(range(n_p, n_p + n_r)))
            # prompt tokens 1.., chosen tokens, rejected tokens; each with the index of its predicting position
            pred = list(range(n_p - 1)) + list(range(n_p - 1, n_p + n_c - 1)) + \
                [n_p - 1] + list(range(n_p + n_c, n_p + n_c + n_r - 1))
            preds.append(pred[: n_p - 1 + n_c + n_r])
            targets.append(prompt[1:] + chosen + rejected)
            segs.append([Segment.PROMPT] * (n_p - 1) + [Segment.CHOSEN] * n_c + [Segment.REJECTED] * n_r)
        input_ids = pad_right(seqs, self.pad_token_id, self.pad_to_multiple_of)
        T = input_ids.shape[1]
        mask = torch.zeros(len(rows), 1, T, T, dtype=torch.bool)
        idx = torch.arange(T)
        causal = idx[None, :] <= idx[:, None]
        for b, r in enumerate(rows):
            n_p, n_c, n_r = len(r["prompt_input_ids"]), len(r["chosen_input_ids"]), len(r["rejected_input_ids"])
            seg = torch.full((T,), int(Segment.PAD), dtype=torch.long)
            seg[:n_p] = Segment.PROMPT
            seg[n_p:n_p + n_c] = Segment.CHOSEN
            seg[n_p + n_c:n_p + n_c + n_r] = Segment.REJECTED
            # a token sees earlier tokens of its own segment and the prompt; never the other response or padding
            same = (seg[None, :] == seg[:, None]) | (seg[None, :] == Segment.PROMPT)
            mask[b, 0] = causal & same & (seg[None, :] != Segment.PAD)
            pad = seg == Segment.PAD
            mask[b, 0, pad, pad] = True  # padding rows see themselves only (no all-masked rows)
        batch = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "position_ids": pad_right(positions, 0, self.pad_to_multiple_of),
            "pred_index": pad_right(preds, 0),
            "target_ids": pad_right(targets, 0),
            "score_seg": pad_right(segs, Segment.PAD),
        }
        return add_reference_logps(batch, rows)
