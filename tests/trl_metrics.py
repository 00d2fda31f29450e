"""Test-only helpers that reproduce TRL 1.16's metric and label conventions, for the parity tests.

prefswift itself does not log TRL's logits/*, entropy or mean_token_accuracy (the chunked LM head never builds the
full-vocabulary logits they need); these reference implementations keep the parity tests able to check the numbers
prefswift does log against TRL's, on the same batches.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from prefswift.arguments.algorithms import DPO_LOSS_TYPES
from prefswift.errors import ArgumentError
from prefswift.scoring.logprobs import token_logps
from prefswift.algorithms.base import LossOutput


class TokenLogps(NamedTuple):
    """All fields have the labels' shape and are 0 where the label is ignored.

    logps:       log p(label), differentiable (prefswift's chunked `token_logps`).
    entropy:     entropy of the next-token distribution (no grad).
    mean_logits: mean over the vocabulary of the logits (no grad) — TRL DPO's `logits/chosen` source.
    is_top1:     bool, label == argmax of the logits (first index on ties) — TRL DPO's `mean_token_accuracy` source.
    """

    logps: Tensor
    entropy: Tensor
    mean_logits: Tensor
    is_top1: Tensor


def token_logps_with_stats(hidden: Tensor, lm_head: nn.Module, labels: Tensor, chunk_size: int = 1024,
                           ignore_index: int = -100) -> TokenLogps:
    """prefswift's log-probs plus TRL's per-token statistics, computed from the full logits (tests only)."""
    logps = token_logps(hidden, lm_head, labels, chunk_size=chunk_size, ignore_index=ignore_index)
    with torch.no_grad():
        logits = lm_head(hidden)
        logits = logits.to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
        mask = labels != ignore_index
        logp = logits.log_softmax(-1)
        entropy = -(logp.exp() * logp).sum(-1) * mask
        mean_logits = logits.mean(-1) * mask
        is_top1 = (logits.argmax(-1) == labels.clamp(min=0)) & mask
    return TokenLogps(logps, entropy, mean_logits, is_top1)


def sequence_logps(token_logps: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(sum of token log-probs over `mask`, number of masked-in tokens), each [B] in the log-probs' dtype.

    `sum / count.clamp(min=1)` is the average log-prob (ORPO, SimPO, CPO-ipo, DPO-ipo)."""
    mask = mask.to(token_logps.dtype)
    return (token_logps * mask).sum(-1), mask.sum(-1)


def next_token_labels(input_ids: Tensor, label_mask: Tensor, ignore_index: int = -100) -> Tensor:
    """Causal-LM labels aligned with the hidden states: position t is scored against token t+1.

    `label_mask[b, t]` says whether token t of the *input* is to be scored (e.g. the completion mask); the result has
    the input's shape with `ignore_index` in the last column and wherever the next token is not scored."""
    labels = input_ids.masked_fill(~label_mask.bool(), ignore_index)
    return torch.cat([labels[..., 1:], labels.new_full(labels[..., :1].shape, ignore_index)], dim=-1)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Token-weighted mean of `values` over `mask` across the whole batch (0 when the mask is empty)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)




def dpo_logps_kind(loss_type: str) -> str:
    """'mean' if the DPO loss type works on length-normalised log-prob differences (ipo, sigmoid_norm), else 'sum'.

    TRL 1.16 always *computes* summed log-probs and divides by the completion length inside the loss for these
    types; `dpo_loss` does the same when given `chosen_lengths`/`rejected_lengths`."""
    if loss_type == "sft":
        return "mean"  # token-level mean NLL of the chosen completion; use nll_loss
    if loss_type not in DPO_LOSS_TYPES:
        raise ArgumentError(f"--loss_type '{loss_type}' is not supported")
    return "mean" if loss_type in ("ipo", "sigmoid_norm") else "sum"


def nll_loss(token_logps: Tensor, mask: Tensor) -> Tensor:
    """Mean token cross-entropy over `mask`, pooled over the whole batch: -sum(logp * mask) / sum(mask).

    Pass the chosen rows only. Which tokens `mask` selects decides the flavour:
      - response tokens (default for ORPO; TRL CPO's BC term; TRL DPO's "sft" loss type, its rpo_alpha),
      - every non-padding token after the first (TRL experimental ORPOTrainer: CE over prompt+response; labels are
        `input_ids` where `attention_mask == 1`, shifted, so BOS is never a target).
    An empty mask gives 0 (TRL's DPO "sft" would give nan)."""
    mask = mask.to(token_logps.dtype)
    return -(token_logps * mask).sum() / mask.sum().clamp(min=1)


def _mean(x: Tensor, gather: Callable[[Tensor], Tensor] | None) -> Tensor:
    x = x.detach()
    return (gather(x) if gather is not None else x).float().mean()


def preference_metrics(
    algorithm: str,
    out: LossOutput,
    *,
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    nll: Tensor | None = None,
    logits_chosen: Tensor | None = None,
    logits_rejected: Tensor | None = None,
    entropy: Tensor | None = None,
    mean_token_accuracy: Tensor | None = None,
    gather: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """TRL-named metrics for one batch (scalar tensors, detached). See the module docstring for the table.

    algorithm: dpo | orpo | cpo | simpo. chosen_logps / rejected_logps: the per-sequence log-probs as TRL logs them
    (DPO: sums; ORPO: means; CPO/SimPO: what the loss consumed). The already-reduced scalars `nll`, `logits_*`,
    `entropy`, `mean_token_accuracy` are passed through under TRL's names when given (build them with
    `masked_mean` over the right mask). `gather` (e.g. `accelerator.gather_for_metrics`)
    is applied to per-example tensors before the mean, as TRL does."""
    if algorithm not in ("dpo", "orpo", "cpo", "simpo"):
        raise ValueError(f"unknown algorithm {algorithm!r}")
    cr, rr = out.chosen_rewards, out.rejected_rewards
    metrics = {
        "rewards/chosen": _mean(cr, gather),
        "rewards/rejected": _mean(rr, gather),
        "rewards/accuracies": _mean((cr > rr).float(), gather),
        "rewards/margins": _mean(cr - rr, gather),
        "logps/chosen": _mean(chosen_logps, gather),
        "logps/rejected": _mean(rejected_logps, gather),
    }
    passthrough = {
        "logits/chosen": logits_chosen,
        "logits/rejected": logits_rejected,
        "nll_loss": nll if algorithm != "dpo" else None,
        "entropy": entropy if algorithm == "dpo" else None,
        "mean_token_accuracy": mean_token_accuracy if algorithm == "dpo" else None,
    }
    for name, value in passthrough.items():
        if value is not None:
            metrics[name] = value.detach().float()
    if algorithm == "orpo":
        metrics["log_odds_ratio"] = _mean(out.extras["log_odds_ratio"], gather)
        metrics["log_odds_chosen"] = _mean(out.extras["log_odds_chosen"], gather)
    return metrics

