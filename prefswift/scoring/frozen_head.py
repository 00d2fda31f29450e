"""Log-probs through a frozen LM head (LoRA / QLoRA: the head does not train) with a hand-written backward.

Why not `torch.utils.checkpoint` around `lm_head(hidden)` as for a trainable head: under DeepSpeed ZeRO-3 the head's
weight is partitioned (shape [0]) outside a module forward, and checkpoint's recomputation runs outside any module
hook, so DeepSpeed never re-gathers it (`CheckpointError` at the first backward). Here the weight is gathered
explicitly (`deepspeed.zero.GatheredParameters`, a no-op for ordinary parameters) in forward and in backward, and the
backward needs no autograd graph of the head at all:

    logp_t = y[t] - logsumexp(y),   y = softcap(scale * (h W^T + b))
    d logp / dh = ((onehot(t) - softmax(y)) * dy/dx * scale) W,   dy/dx = 1 - tanh^2(scale * x / cap) (1 without cap)

Memory is that of the checkpointed path: the chunk's hidden states are saved, its [chunk, vocab] logits are rebuilt
in backward. The matmuls run in the dtype the forward's autocast gave the logits (bf16 under bf16 AMP), the softmax
in float32, as in the checkpointed path.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def is_frozen_linear_head(lm_head: nn.Module) -> bool:
    """A plain `nn.Linear` head whose parameters do not train and are not offloaded to `meta`."""
    if type(lm_head) is not nn.Linear:  # a LoRA-wrapped or quantized head goes through the module call
        return False
    params = [p for p in (lm_head.weight, lm_head.bias) if p is not None]
    return not any(p.requires_grad for p in params) and lm_head.weight.device.type != "meta"


def _gathered(params):
    """All of `params` materialised while inside (DeepSpeed ZeRO-3 partitions them); nothing to do for ordinary
    parameters or ones an outer context has gathered already."""
    partitioned = [p for p in params if getattr(p, "ds_id", None) is not None
                   and getattr(getattr(p, "ds_status", None), "name", "") != "AVAILABLE"]
    if partitioned:
        import deepspeed

        return deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None)
    return nullcontext()


def _score_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _logits(hidden: Tensor, weight: Tensor, bias, compute_dtype) -> Tensor:
    """h W^T + b in `compute_dtype` (None: as autocast / the inputs decide), then in the score dtype."""
    if compute_dtype is not None:
        hidden, weight = hidden.to(compute_dtype), weight.to(compute_dtype)
        bias = bias.to(compute_dtype) if bias is not None else None
    raw = F.linear(hidden, weight, bias)
    return raw, raw.to(_score_dtype(raw.dtype))


def _scaled(x: Tensor, scale: float, cap):
    z = x * scale if scale != 1.0 else x
    return torch.tanh(z / cap) * cap if cap is not None else z


def _forward_logps(hidden: Tensor, target: Tensor, weight: Tensor, bias, scale: float, cap):
    """(log-probs, the dtype the head's matmul ran in)."""
    with torch.no_grad(), _gathered([p for p in (weight, bias) if p is not None]):
        raw, x = _logits(hidden, weight, bias, None)
        y = _scaled(x, scale, cap)
        return y.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(y, dim=-1), raw.dtype


class FrozenHeadLogps(torch.autograd.Function):
    """log p(target) of one chunk of hidden states through a frozen linear head; gradient for the hidden states only."""

    @staticmethod
    def forward(ctx, hidden: Tensor, target: Tensor, weight: Tensor, bias, scale: float, cap):
        logps, compute_dtype = _forward_logps(hidden, target, weight, bias, scale, cap)
        ctx.save_for_backward(hidden, target)
        ctx.head = (weight, bias)
        ctx.scale, ctx.cap, ctx.compute_dtype = scale, cap, compute_dtype
        return logps

    @staticmethod
    def backward(ctx, grad_logps: Tensor):
        hidden, target = ctx.saved_tensors
        weight, bias = ctx.head
        with torch.no_grad(), _gathered([p for p in (weight, bias) if p is not None]):
            _raw, x = _logits(hidden, weight, bias, ctx.compute_dtype)
            z = x * ctx.scale if ctx.scale != 1.0 else x
            y = _scaled(x, ctx.scale, ctx.cap)
            grad_y = -torch.softmax(y, dim=-1)
            grad_y.scatter_add_(-1, target.unsqueeze(-1), torch.ones_like(grad_y[..., :1]))
            grad_y.mul_(grad_logps.to(grad_y.dtype).unsqueeze(-1))
            if ctx.cap is not None:
                grad_y.mul_(1 - torch.tanh(z / ctx.cap) ** 2)
            if ctx.scale != 1.0:
                grad_y.mul_(ctx.scale)
            grad_hidden = grad_y.to(ctx.compute_dtype) @ weight.to(ctx.compute_dtype)
        return grad_hidden.to(hidden.dtype), None, None, None, None, None


def frozen_head_logps(hidden: Tensor, target: Tensor, lm_head: nn.Linear, scale: float = 1.0, cap=None) -> Tensor:
    """log p(target) for a chunk; differentiable w.r.t. `hidden` when it requires grad."""
    if torch.is_grad_enabled() and hidden.requires_grad:
        return FrozenHeadLogps.apply(hidden, target, lm_head.weight, lm_head.bias, scale, cap)
    return _forward_logps(hidden, target, lm_head.weight, lm_head.bias, scale, cap)[0]
