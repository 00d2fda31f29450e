"""Batching and scoring SFT rows: the summed NLL of the trained tokens, through the chunked LM head.

Rows come from `prefswift.data.sft_pipeline` as {"input_ids", "loss_mask"}. Two layouts:

* padded: input_ids / attention_mask / loss_mask [B, T], right-padded (TRL's DataCollatorForLanguageModeling);
* packed (`--packing`, the default): the sequences one after another in rows as long as the batch's longest one
  (`packing.pack_into_rows`; all in one row for flash_attention_2's varlen kernels), no attention mask, position
  ids restarting at 0 for every sequence — transformers turns the restarts into a block-diagonal mask (SDPA/eager)
  or cu_seq_lens (flash-attn), so no token attends to another sequence — and `seq_id` so no token is scored from
  the previous sequence's last position (TRL's padding-free collator masks those labels the same way).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from ..arguments.fields import LOGPROB_CHUNK_SIZE
from .batches import Batch
from .collators import pad_right, round_up
from .forward import IGNORE, _backbone_hidden, _head_logps
from .packing import fill_packed_rows, pack_into_rows


class SftRows(Batch):
    """input_ids, attention_mask, loss_mask [B, T]: one right-padded sequence per row."""


class PackedSftRows(Batch):
    """input_ids, position_ids, loss_mask, seq_id [R, T]: sequences packed without padding between them (seq_id -1 =
    padding)."""


def sft_tokens(row: Dict) -> int:
    return len(row["input_ids"])


@dataclass
class SftCollator:
    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None
    packing: bool = False
    one_row: bool = False

    def _layout(self, lengths: List[int]):
        T = sum(lengths) if self.packing and self.one_row else max(lengths)
        T = round_up(T, self.pad_to_multiple_of)
        return (pack_into_rows(lengths, T) if self.packing else [[i] for i in range(len(lengths))]), T

    def layout_tokens(self, rows: List[Dict]) -> int:
        """Tokens of the tensors `__call__` returns for `rows`, padding included (the token budget's measure)."""
        layout, T = self._layout([sft_tokens(r) for r in rows])
        return len(layout) * T

    def __call__(self, rows: List[Dict]) -> Batch:
        seqs = [list(r["input_ids"]) for r in rows]
        masks = [list(r["loss_mask"]) for r in rows]
        if self.packing:
            batch = self._packed(seqs, masks)
        else:
            batch = SftRows(input_ids=pad_right(seqs, self.pad_token_id, self.pad_to_multiple_of),
                            attention_mask=pad_right([[1] * len(s) for s in seqs], 0, self.pad_to_multiple_of),
                            loss_mask=pad_right(masks, 0, self.pad_to_multiple_of))
        batch["num_tokens"] = torch.tensor(sum(len(s) for s in seqs), dtype=torch.long)
        return batch

    def _packed(self, seqs: List[List[int]], masks: List[List[int]]) -> PackedSftRows:
        lengths = [len(s) for s in seqs]
        layout, T = self._layout(lengths)
        input_ids, mask, seq_id, position_ids = fill_packed_rows(seqs, masks, layout, T, self.pad_token_id)
        return PackedSftRows(input_ids=input_ids, position_ids=position_ids, loss_mask=mask, seq_id=seq_id)


def sft_forward(model, batch: Batch, *, chunk_size: int = LOGPROB_CHUNK_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """(summed log-prob of the trained tokens, how many there are): one forward, the LM head in chunks of tokens."""
    input_ids = batch["input_ids"]
    if isinstance(batch, PackedSftRows):
        causal_lm, hidden, autocast = _backbone_hidden(model, input_ids=input_ids, position_ids=batch["position_ids"])
        seq_id = batch["seq_id"]
        real = (seq_id[:, 1:] == seq_id[:, :-1]) & (seq_id[:, 1:] >= 0)  # the predictor is in the same sequence
    elif isinstance(batch, SftRows):
        causal_lm, hidden, autocast = _backbone_hidden(model, input_ids=input_ids,
                                                       attention_mask=batch["attention_mask"])
        real = batch["attention_mask"][:, 1:].bool()
    else:
        raise TypeError(f"sft_forward: a batch from SftCollator, got {type(batch).__name__}")
    scored = batch["loss_mask"][:, 1:].bool() & real
    labels = input_ids[:, 1:].masked_fill(~scored, IGNORE)
    per_token = _head_logps(causal_lm, hidden[:, :-1], labels, chunk_size, autocast)
    return per_token.sum(), scored.sum()


__all__ = ["SftCollator", "SftRows", "PackedSftRows", "sft_forward", "sft_tokens"]
