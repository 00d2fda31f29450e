"""Batching and scoring unpaired (KTO) rows: prompt + completion per row, plus the mismatched KL row.

Rows come from `prefswift.data.pipeline` (unpaired mode) as {"prompt_input_ids", "completion_input_ids", "label"}
(+ "kl_completion_input_ids" from `prefswift.data.unpaired.add_kl_completions`, + precomputed "ref_logps" /
"ref_kl_logps"). The batch matches TRL's `DataCollatorForUnpairedPreference` (right padding, completion mask), with
the KL sequences under `kl_*` keys.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from ..arguments.fields import LOGPROB_CHUNK_SIZE
from .batches import UnpairedRows
from .collators import pad_right
from .forward import completion_logps

REFERENCE_KEYS = ("ref_logps", "ref_kl_logps")


def _sequences(rows: List[Dict], completion_key: str, pad_token_id: int, pad_to: Optional[int]) -> Dict:
    seqs, masks = [], []
    for r in rows:
        prompt, completion = list(r["prompt_input_ids"]), list(r[completion_key])
        seqs.append(prompt + completion)
        masks.append([0] * len(prompt) + [1] * len(completion))
    return {"input_ids": pad_right(seqs, pad_token_id, pad_to),
            "attention_mask": pad_right([[1] * len(s) for s in seqs], 0, pad_to),
            "completion_mask": pad_right(masks, 0, pad_to)}


@dataclass
class UnpairedCollator:
    """input_ids / attention_mask / completion_mask [B, T], label [B] (bool); kl_input_ids / kl_attention_mask /
    kl_completion_mask when the rows carry KL completions; ref_logps / ref_kl_logps [B] when precomputed."""

    pad_token_id: int
    pad_to_multiple_of: Optional[int] = None

    def __call__(self, rows: List[Dict]) -> UnpairedRows:
        batch = UnpairedRows(_sequences(rows, "completion_input_ids", self.pad_token_id, self.pad_to_multiple_of))
        if all("kl_completion_input_ids" in r for r in rows):
            kl = _sequences(rows, "kl_completion_input_ids", self.pad_token_id, self.pad_to_multiple_of)
            batch.update({f"kl_{k}": v for k, v in kl.items()})
        batch["label"] = torch.tensor([bool(r["label"]) for r in rows], dtype=torch.bool)
        # the tokens in the data (prompt + completion of every row), for the console's tokens/s
        batch["num_tokens"] = torch.tensor(sum(len(r["prompt_input_ids"]) + len(r["completion_input_ids"])
                                               for r in rows), dtype=torch.long)
        for key in REFERENCE_KEYS:
            if all(key in r for r in rows):
                batch[key] = torch.tensor([float(r[key]) for r in rows], dtype=torch.float32)
        return batch


@dataclass
class UnpairedLogps:
    logps: torch.Tensor                      # [B] sum of completion-token log-probs
    tokens: torch.Tensor                     # [B] completion token counts
    kl_logps: Optional[torch.Tensor] = None  # [B] the same for the KL rows (no gradient)


def unpaired_forward(model, batch, *, chunk_size: int = LOGPROB_CHUNK_SIZE, kl: bool = False) -> UnpairedLogps:
    """Completion log-probs of every row (with gradient when enabled) and, with `kl`, of every KL row (never with
    gradient: the KL estimate is a detached baseline, as in TRL)."""
    kl_logps = None
    if kl:
        with torch.no_grad():
            kl_logps, _ = completion_logps(model, batch["kl_input_ids"], batch["kl_attention_mask"],
                                           batch["kl_completion_mask"], chunk_size=chunk_size)
    logps, tokens = completion_logps(model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"],
                                     chunk_size=chunk_size)
    return UnpairedLogps(logps, tokens, kl_logps)


__all__ = ["UnpairedCollator", "UnpairedLogps", "unpaired_forward", "REFERENCE_KEYS"]
