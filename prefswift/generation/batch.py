"""The running batch of the engine: one row per sequence being generated, one left-padded DynamicCache for all.

Layout: every row is `[0 ... 0, real tokens]` in the attention mask (left padding), so a row's next position id is the
number of its real tokens. Rows join by prefilling their prompts together and concatenating the two caches along the
batch (the shorter one padded on the left); rows leave by selecting the others (`batch_select_indices`), after which
columns that are padding in every row are cut off the left.
"""
from typing import List

import torch
import torch.nn.functional as F

from .kv_cache import cache_tensors as _layers
from .kv_cache import new_cache as _cache_from
from .row import Row


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """[B, H, T, D] -> [B, H, width, D], zeros on the left."""
    return F.pad(t, (0, 0, width - t.shape[-2], 0)) if width > t.shape[-2] else t


class RowBatch:
    def __init__(self, rows: List[Row], cache, mask: torch.Tensor):
        self.rows, self.cache, self.mask = rows, cache, mask

    @property
    def adapters(self):
        return {r.served.adapter for r in self.rows}

    @classmethod
    def prefill(cls, engine, pendings) -> "RowBatch":
        rows = [Row(engine, p, i) for p in pendings for i in range(p.params.n)]
        width = max(len(r.prompt_ids) for r in rows)
        pad = engine.tokenizer.pad_token_id if engine.tokenizer.pad_token_id is not None else engine.eos_ids[0]
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows], device=engine.device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows],
                            device=engine.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = engine.forward(ids, mask, positions, _cache_from(None), [r.served.adapter for r in rows])
        batch = cls(rows, cache, mask)
        engine.sample(logits, rows)
        batch._drop_finished()
        return batch

    def decode(self, engine) -> None:
        ids = torch.tensor([[r.last_token] for r in self.rows], device=self.mask.device)
        positions = self.mask.sum(-1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        adapters = [r.served.adapter for r in self.rows]
        logits, self.cache = engine.forward(ids, self.mask, positions, self.cache, adapters)
        engine.sample(logits, self.rows)
        self._drop_finished()

    def merge(self, other: "RowBatch") -> "RowBatch":
        width = max(self.mask.shape[1], other.mask.shape[1])
        layers = [(torch.cat([_left_pad(k1, width), _left_pad(k2, width)]),
                   torch.cat([_left_pad(v1, width), _left_pad(v2, width)]))
                  for (k1, v1), (k2, v2) in zip(_layers(self.cache), _layers(other.cache))]
        mask = torch.cat([F.pad(self.mask, (width - self.mask.shape[1], 0)),
                          F.pad(other.mask, (width - other.mask.shape[1], 0))])
        return RowBatch(self.rows + other.rows, _cache_from(layers), mask)

    def drop_cancelled(self) -> None:
        for r in self.rows:
            if r.handle.cancelled.is_set():
                r.finished = True
        self._drop_finished()

    def _drop_finished(self) -> None:
        keep = [i for i, r in enumerate(self.rows) if not r.finished]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[index]
        used = self.mask.any(0).nonzero()
        start = int(used[0]) if len(used) else 0
        self.mask = self.mask[:, start:]
        self.cache = _cache_from([(k[index, :, start:], v[index, :, start:]) for k, v in _layers(self.cache)])


__all__ = ["RowBatch"]
