"""Per-token log-probabilities without ever building [batch, seq, vocab] logits.

`token_logps` takes the backbone's last hidden states and the LM head, keeps only the positions that have a label,
and projects them through the head a chunk of tokens at a time. A trainable head runs each chunk under
`torch.utils.checkpoint`; a frozen linear head (LoRA, QLoRA) through `frozen_head.FrozenHeadLogps`, whose backward is
written out. Either way autograd keeps the chunk's hidden states (not its [chunk, vocab] logits) and the backward
pass recomputes the logits of one chunk at a time. Peak extra memory is therefore about
`chunk_size * vocab * 4 bytes` (x2-3 for softmax temporaries) instead of `tokens * vocab * bytes`.

Numerics: the head runs in the dtype of its weights/autocast (bf16 stays bf16 for the matmul), then the logits are
cast to float32 (float64 stays float64) *before* the log-softmax; the returned log-probs are float32 (or float64).

Alignment: no shifting is done here. `hidden[..., t, :]` is scored against `labels[..., t]`: the caller passes labels
already shifted (the pair forward in `prefswift.scoring.forward` does).

PEFT: the head is simply called as a module, so a LoRA-wrapped `lm_head` applies its adapter (TRL 1.16's fused head
reads `lm_head.weight` directly and therefore ignores a LoRA adapter on `lm_head`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..arguments.fields import GPU_LOGITS_BUDGET, LOGPROB_CHUNK_SIZE
from .frozen_head import frozen_head_logps, is_frozen_linear_head

__all__ = ["token_logps", "token_log_sum_sq_probs", "resolve_chunk_size"]


def resolve_chunk_size(requested: int, vocab_size: int, device_type: str) -> int:
    """--logprob_chunk_size, or for 0 (auto) the default of the device: LOGPROB_CHUNK_SIZE tokens on CPU, on a GPU
    as many tokens as GPU_LOGITS_BUDGET bytes of fp32 logits hold (never fewer than the CPU default)."""
    if requested:
        return requested
    if device_type != "cuda":
        return LOGPROB_CHUNK_SIZE
    return max(LOGPROB_CHUNK_SIZE, GPU_LOGITS_BUDGET // (4 * max(vocab_size, 1)) // 64 * 64)


def _score_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types, float64 stays float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _chunk_logits(lm_head: nn.Module, hidden_chunk: Tensor, logit_scale: float, logit_softcap: float | None):
    """Score-dtype logits of one chunk of tokens (scale, then soft-cap)."""
    logits = lm_head(hidden_chunk)
    logits = logits.to(_score_dtype(logits.dtype))
    if logit_scale != 1.0:
        logits = logits * logit_scale
    if logit_softcap is not None:
        logits = torch.tanh(logits / logit_softcap) * logit_softcap
    return logits


def _chunk_fn(lm_head: nn.Module, logit_scale: float, logit_softcap: float | None):
    """The per-chunk function: logits of one chunk of tokens, then the log-prob of each token's label."""

    def run(hidden_chunk: Tensor, target: Tensor) -> Tensor:
        logits = _chunk_logits(lm_head, hidden_chunk, logit_scale, logit_softcap)
        lse = torch.logsumexp(logits, dim=-1)
        return logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - lse

    return run


def _labelled_positions(hidden: Tensor, lm_head: nn.Module, labels: Tensor, ignore_index: int):
    """(hidden states of the labelled positions, their labels, their flat indices, the flat labels), on the head's
    device (model parallel: a device_map over several GPUs puts the head where it wants)."""
    head_device = next((p.device for p in lm_head.parameters() if p.device.type != "meta"), hidden.device)
    flat_hidden = hidden.to(head_device).reshape(-1, hidden.size(-1))
    flat_labels = labels.to(head_device).reshape(-1)
    positions = (flat_labels != ignore_index).nonzero().squeeze(-1)
    return flat_hidden.index_select(0, positions), flat_labels.index_select(0, positions), positions, flat_labels


def _scatter_back(values: Tensor, positions: Tensor, flat_labels: Tensor, labels: Tensor) -> Tensor:
    """Per-position values in the labels' shape and device, 0 where unlabelled."""
    out = values.new_zeros(flat_labels.shape).index_copy(0, positions, values).view(labels.shape)
    return out.to(labels.device)


@torch.no_grad()
def token_log_sum_sq_probs(hidden: Tensor, lm_head: nn.Module, labels: Tensor, chunk_size: int = LOGPROB_CHUNK_SIZE,
                           ignore_index: int = -100, *, logit_scale: float = 1.0,
                           logit_softcap: float | None = None) -> Tensor:
    """log sum_v p(v)^2 of the next-token distribution at every labelled position (0 elsewhere), without gradient:
    the WPO weights' normaliser (TRL's `log_sum_sq_probs`). Same chunking, alignment and logit scale / soft-cap as
    `token_logps`; one extra LM-head pass over the labelled positions."""
    selected, _, positions, flat_labels = _labelled_positions(hidden, lm_head, labels, ignore_index)
    pieces = []
    for start in range(0, max(selected.size(0), 1), chunk_size):
        logits = _chunk_logits(lm_head, selected[start:start + chunk_size], logit_scale, logit_softcap)
        pieces.append(torch.logsumexp(2 * logits, dim=-1) - 2 * torch.logsumexp(logits, dim=-1))
    return _scatter_back(torch.cat(pieces), positions, flat_labels, labels)


def token_logps(
    hidden: Tensor,
    lm_head: nn.Module,
    labels: Tensor,
    chunk_size: int = LOGPROB_CHUNK_SIZE,
    ignore_index: int = -100,
    *,
    logit_scale: float = 1.0,
    logit_softcap: float | None = None,
) -> Tensor:
    """log p(labels) per position; 0 where `labels == ignore_index`.

    hidden: [N, H] or [B, T, H] final hidden states (after the final norm); labels: [N] or [B, T], already aligned
    with `hidden`. Only labelled positions are projected through `lm_head`, `chunk_size`
    tokens at a time, each chunk checkpointed. `logit_scale` multiplies the logits and `logit_softcap` applies
    `tanh(z / c) * c` afterwards (Gemma-2 style), matching TRL's fused head for models that declare them.
    Returns float32 (float64 for float64 hidden states).
    """
    if hidden.shape[:-1] != labels.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and labels {tuple(labels.shape)} do not align")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    # Model parallel (a device_map over several GPUs): compute where the head's weights are, return where the labels
    # came from (the caller's masks live there).
    selected_hidden, selected_labels, positions, flat_labels = _labelled_positions(hidden, lm_head, labels,
                                                                                   ignore_index)

    if is_frozen_linear_head(lm_head):  # LoRA/QLoRA: a hand-written backward (ZeRO-3-safe, see frozen_head)
        run = lambda h, t: frozen_head_logps(h, t, lm_head, logit_scale, logit_softcap)  # noqa: E731
        use_checkpoint = False
    else:
        run = _chunk_fn(lm_head, logit_scale, logit_softcap)
        head_trains = any(p.requires_grad for p in lm_head.parameters())
        use_checkpoint = torch.is_grad_enabled() and (hidden.requires_grad or head_trains)

    pieces = []
    n = selected_hidden.size(0)
    # At least one (possibly empty) chunk: the output stays connected to the graph even with no labelled position,
    # so an all-masked micro-batch still backpropagates (zeros) instead of failing.
    for start in range(0, max(n, 1), chunk_size):
        h_chunk = selected_hidden[start : start + chunk_size]
        t_chunk = selected_labels[start : start + chunk_size]
        if use_checkpoint:
            pieces.append(checkpoint(run, h_chunk, t_chunk, use_reentrant=False))
        else:
            pieces.append(run(h_chunk, t_chunk))
    return _scatter_back(torch.cat(pieces), positions, flat_labels, labels)
