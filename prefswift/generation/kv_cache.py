"""The engine's KV cache: transformers' `Cache` made of `GrowingLayer`s, DynamicLayers whose keys and values live in a
buffer with room to grow, so a decoding step writes its one token in place instead of concatenating (which copies the
whole cache of every layer at every step). The model sees the usual `keys` / `values` (views of the filled part).
Rows join and leave by building a new cache from tensors (`RowBatch`), never by the layer's own crop/select.
"""
from typing import Iterable, List, Optional, Tuple

import torch
from transformers.cache_utils import Cache, DynamicLayer

ROOM = 64  # tokens of room added whenever a buffer is full


class GrowingLayer(DynamicLayer):
    def __init__(self, keys: Optional[torch.Tensor] = None, values: Optional[torch.Tensor] = None):
        super().__init__()
        if keys is not None:
            self._fill(keys, values)

    def _fill(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        b, h, t, d = keys.shape
        self._k = keys.new_empty((b, h, t + ROOM, d))
        self._v = values.new_empty((b, h, t + ROOM, values.shape[-1]))
        self._k[:, :, :t] = keys
        self._v[:, :, :t] = values
        self.keys, self.values = self._k[:, :, :t], self._v[:, :, :t]
        self.device, self.is_initialized = keys.device, True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self._fill(key_states[:, :, :0], value_states[:, :, :0])

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        t, n = self.keys.shape[-2], key_states.shape[-2]
        if t + n > self._k.shape[-2]:
            keys, values = self.keys, self.values
            self._fill(torch.cat([keys, key_states], dim=-2), torch.cat([values, value_states], dim=-2))
            return self.keys, self.values
        self._k[:, :, t:t + n] = key_states
        self._v[:, :, t:t + n] = value_states
        self.keys, self.values = self._k[:, :, :t + n], self._v[:, :, :t + n]
        return self.keys, self.values


def new_cache(tensors: Optional[Iterable[Tuple[torch.Tensor, torch.Tensor]]] = None) -> Cache:
    """An empty cache (layers made as the model asks for them), or one holding these (keys, values) per layer."""
    if tensors is None:
        return Cache(layer_class_to_replicate=GrowingLayer)
    return Cache(layers=[GrowingLayer(k, v) for k, v in tensors])


def cache_tensors(cache: Cache) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


__all__ = ["GrowingLayer", "new_cache", "cache_tensors"]
