"""Preference losses as pure functions of per-sequence log-probs ([B] tensors), with TRL 1.16's exact semantics.

Nothing here knows about models: the pair forward (`prefswift.scoring.forward`) turns a batch into per-sequence
log-prob sums and token counts, `prefswift.train.objectives` picks what each algorithm feeds the functions below and
adds the NLL term where the algorithm has one.

Which per-sequence log-probs each loss expects
-----------------------------------------------
DPO (`dpo_loss`)   sum over completion tokens for every loss type. `ipo` and `sigmoid_norm` are length-normalised
                   *inside the loss* (TRL: score / completion_tokens.clamp(min=1)): pass `chosen_lengths` /
                   `rejected_lengths` together with the sums and you get TRL's loss *and* TRL's rewards (which stay
                   `beta * (sum - ref_sum)`). Without lengths the inputs are used as given (pass means).
ORPO (`orpo_loss`) mean over completion tokens.
SimPO              mean over completion tokens.
CPO (`cpo_loss`)   sum for sigmoid|hinge, mean for ipo|simpo (TRL: `average_log_prob=loss_type in ["ipo","simpo"]`).
NLL                token-level mean over the whole batch (all masked-in tokens of all chosen rows pooled), as
                   `nn.CrossEntropyLoss()` does in TRL's ORPO/CPO and `-logps[mask].mean()` in TRL DPO's "sft".

Total loss per algorithm (TRL 1.16)
-----------------------------------
DPO   sum over the loss types of weight * dpo_loss(...).losses.mean() ("sft": the NLL of the chosen completion;
      rpo_alpha adds it with weight rpo_alpha, as TRL 1.16's `loss_type=["sigmoid","sft"], loss_weights=[1, a]`);
      with WPO every per-pair loss is multiplied by `wpo_weights` first (`prefswift.train.objectives`)
ORPO  NLL(chosen) + orpo_loss(...).losses.mean()   (losses = -beta * logsigmoid(log_odds))
CPO   cpo_loss(...).losses.mean() + cpo_alpha * NLL(chosen completion)   (no NLL term when cpo_alpha == 0)
SimPO simpo_loss(...).losses.mean()  (TRL: CPOTrainer(loss_type="simpo", cpo_alpha=0); with cpo_alpha>0 = CPO-SimPO)

Logged metrics (TRL's names; see the table in `prefswift.train.objectives`): rewards/chosen, rewards/rejected,
rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, nll_loss (when part of the loss) and ORPO's
log_odds_ratio / log_odds_chosen. TRL's logits/*, entropy and mean_token_accuracy are not computed: they would need
the full-vocabulary statistics the chunked LM head never materialises.
Across ranks the per-example values are gathered and averaged, then averaged over all calls since the last log (so
over gradient-accumulation micro-batches too), as TRL does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from prefswift.arguments.algorithms import CPO_LOSS_TYPES, DPO_LOSS_TYPES, F_DIVERGENCE_LOSS_TYPES
from prefswift.errors import ArgumentError

__all__ = [
    "DPO_LOSS_TYPES",
    "CPO_LOSS_TYPES",
    "LossOutput",
    "dpo_loss",
    "orpo_loss",
    "simpo_loss",
    "cpo_loss",
    "cpo_logps_kind",
    "f_divergence_scores",
    "wpo_weights",
    "log1mexp",
]

_DPO_MEAN_TYPES = ("ipo", "sigmoid_norm")
_CPO_MEAN_TYPES = ("ipo", "simpo")


@dataclass
class LossOutput:
    """losses: per-example loss [B] (differentiable; the batch loss is `losses.mean()`);
    chosen_rewards / rejected_rewards: [B], detached, as TRL logs them; extras: algorithm-specific [B] tensors
    (ORPO: `log_odds_ratio` = logsigmoid(log_odds), `log_odds_chosen` = log_odds; both detached)."""

    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)


def _check_type(loss_type: str, allowed: tuple[str, ...], flag: str) -> None:
    if loss_type not in allowed:
        raise ArgumentError(f"--{flag} '{loss_type}' is not supported — use one of: {', '.join(allowed)}")



def cpo_logps_kind(loss_type: str) -> str:
    """'mean' for CPO's ipo and simpo, 'sum' for sigmoid and hinge (TRL CPOTrainer.concatenated_forward)."""
    _check_type(loss_type, CPO_LOSS_TYPES, "loss_type")
    return "mean" if loss_type in _CPO_MEAN_TYPES else "sum"


def _smoothed_sigmoid_loss(z: Tensor, label_smoothing: float) -> Tensor:
    """-(1-ε)·logσ(z) - ε·logσ(-z): conservative DPO/CPO loss."""
    loss = -F.logsigmoid(z) * (1 - label_smoothing)
    if label_smoothing:
        loss = loss - F.logsigmoid(-z) * label_smoothing
    return loss


def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    *,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
    discopop_tau: float = 0.05,
    f_divergence_type: str = "reverse_kl",
    f_alpha_divergence_coef: float = 0.5,
) -> LossOutput:
    """DPO family (TRL 1.16 DPOTrainer._compute_loss; WPO weighting is applied by the caller: `wpo_weights`).

    Inputs are per-sequence log-probs [B]: sums over completion tokens (see module docstring for ipo /
    sigmoid_norm and `chosen_lengths`). `label_smoothing` is used by robust (flip probability, in [0, 0.5)),
    exo_pair (ε > 0) and aot/aot_unpaired. aot/aot_unpaired sort across the batch, so their per-example losses are
    not aligned with the input rows (only their mean is meaningful). `f_divergence_type` other than reverse_kl
    replaces the log-ratios by f'(ratio) (`f_divergence_scores`) in sigmoid, sigmoid_norm, hinge, ipo, exo_pair,
    robust and discopop; rewards stay beta * log-ratio."""
    _check_type(loss_type, DPO_LOSS_TYPES, "loss_type")
    if f_divergence_type != "reverse_kl" and loss_type not in F_DIVERGENCE_LOSS_TYPES:
        raise ArgumentError(f"--f_divergence_type {f_divergence_type} does not apply to --loss_type {loss_type}: "
                            f"use it with {', '.join(F_DIVERGENCE_LOSS_TYPES)}")
    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    chosen_scores = f_divergence_scores(chosen_logratios, f_divergence_type, f_alpha_divergence_coef)
    rejected_scores = f_divergence_scores(rejected_logratios, f_divergence_type, f_alpha_divergence_coef)
    delta = chosen_scores - rejected_scores
    ls = label_smoothing

    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * delta)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * delta)
    elif loss_type in _DPO_MEAN_TYPES:
        if (chosen_lengths is None) != (rejected_lengths is None):
            raise ValueError("pass both chosen_lengths and rejected_lengths, or neither")
        if chosen_lengths is not None:
            c = chosen_scores / chosen_lengths.to(chosen_scores.dtype).clamp(min=1.0)
            r = rejected_scores / rejected_lengths.to(rejected_scores.dtype).clamp(min=1.0)
            norm_delta = c - r
        else:
            norm_delta = delta
        if loss_type == "ipo":  # IPO eq. 17, beta plays tau
            losses = (norm_delta - 1 / (2 * beta)) ** 2
        else:
            losses = -F.logsigmoid(beta * norm_delta)
    elif loss_type == "exo_pair":
        if not 0.0 < ls < 1.0:
            raise ArgumentError("--loss_type exo_pair needs 0 < --label_smoothing < 1 — the paper suggests 1e-3")
        z = beta * delta
        # KL(q || p) with q = softmax over {chosen, rejected}, p = (1-ε, ε)
        losses = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-ls)) + torch.sigmoid(-z) * (
            F.logsigmoid(-z) - math.log(ls)
        )
    elif loss_type == "nca_pair":
        cr, rr = beta * chosen_logratios, beta * rejected_logratios
        losses = -F.logsigmoid(cr) - 0.5 * F.logsigmoid(-cr) - 0.5 * F.logsigmoid(-rr)
    elif loss_type == "robust":
        if not 0.0 <= ls < 0.5:
            raise ArgumentError("--loss_type robust needs 0 <= --label_smoothing < 0.5 — a typical value is 0.1")
        z = beta * delta
        losses = (-(1 - ls) * F.logsigmoid(z) + ls * F.logsigmoid(-z)) / (1 - 2 * ls)
    elif loss_type == "bco_pair":
        losses = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    elif loss_type == "sppo_hard":
        losses = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    elif loss_type == "aot":
        sorted_policy = torch.sort(chosen_logps - rejected_logps, dim=0).values
        sorted_ref = torch.sort(ref_chosen_logps - ref_rejected_logps, dim=0).values
        losses = _smoothed_sigmoid_loss(beta * (sorted_policy - sorted_ref), ls)
    elif loss_type == "aot_unpaired":
        d = torch.sort(chosen_logratios, dim=0).values - torch.sort(rejected_logratios, dim=0).values
        losses = _smoothed_sigmoid_loss(beta * d, ls)
    elif loss_type == "apo_zero":
        losses = (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(beta * rejected_logratios)
    elif loss_type == "apo_down":
        losses = torch.sigmoid(beta * chosen_logratios) + (1 - torch.sigmoid(beta * delta))
    else:  # discopop
        z = beta * delta
        mix = torch.sigmoid(z / discopop_tau)
        losses = -F.logsigmoid(z) * (1 - mix) + torch.exp(-z) * mix

    return LossOutput(
        losses=losses,
        chosen_rewards=(beta * chosen_logratios).detach(),
        rejected_rewards=(beta * rejected_logratios).detach(),
    )


def f_divergence_scores(logratios: Tensor, f_divergence_type: str, alpha: float = 0.5) -> Tensor:
    """f'(t) of the DPO f-divergence at t = pi/pi_ref, from log t (TRL 1.16 DPOTrainer._compute_loss):
    reverse_kl log t; forward_kl 1 - 1/t; js_divergence log 2 + logsigmoid(log t); alpha_divergence
    (t^(alpha-1) - 1)/(alpha-1) (log t for alpha = 1), its exponent computed in float32 and clamped (max 80;
    11 in fp16) like TRL."""
    if f_divergence_type == "reverse_kl":
        return logratios
    if f_divergence_type == "forward_kl":
        return 1 - torch.exp(-logratios)
    if f_divergence_type == "js_divergence":
        return math.log(2) + F.logsigmoid(logratios)
    if f_divergence_type == "alpha_divergence":
        if abs(alpha - 1.0) < 1e-6:  # the alpha -> 1 limit is log t
            return logratios
        t = (alpha - 1.0) * logratios
        clamp_max = 11.0 if t.dtype == torch.float16 else 80.0
        return (torch.exp(torch.clamp(t.float(), max=clamp_max)) - 1.0).to(t.dtype) * (1.0 / (alpha - 1.0))
    raise ArgumentError(f"--f_divergence_type {f_divergence_type!r} is not one of reverse_kl, forward_kl, "
                        "js_divergence, alpha_divergence")


def wpo_weights(chosen_aligned_mean: Tensor, rejected_aligned_mean: Tensor) -> Tensor:
    """WPO (Eq. 2 of arXiv 2406.11827, TRL's use_weighting): per-pair loss weight exp(c) * exp(r), where c / r are
    the mean over the response tokens of log p(token) - log sum_v p(v)^2 (detached: the weights get no gradient)."""
    return (torch.exp(chosen_aligned_mean) * torch.exp(rejected_aligned_mean)).detach()


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, accurate on both sides of -ln 2 (Mächler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(chosen_avg_logps: Tensor, rejected_avg_logps: Tensor, *, beta: float) -> LossOutput:
    """ORPO's odds-ratio term (λ = beta), computed in float32 (float64 stays float64) like TRL.

    log_odds = (c - r) - (log1mexp(c) - log1mexp(r)); losses = -beta * logsigmoid(log_odds).
    The full ORPO loss is `nll + losses.mean()`. Average log-probs of exactly 0 (probability 1) are clamped to
    -tiny so log1mexp stays finite (TRL returns inf/nan there)."""
    dtype = torch.float64 if chosen_avg_logps.dtype == torch.float64 else torch.float32
    c, r = chosen_avg_logps.to(dtype), rejected_avg_logps.to(dtype)
    tiny = torch.finfo(dtype).tiny
    log_odds = (c - r) - (log1mexp(c.clamp(max=-tiny)) - log1mexp(r.clamp(max=-tiny)))
    ratio = F.logsigmoid(log_odds)
    return LossOutput(
        losses=-beta * ratio,
        chosen_rewards=(beta * c).detach(),
        rejected_rewards=(beta * r).detach(),
        extras={"log_odds_ratio": ratio.detach(), "log_odds_chosen": log_odds.detach()},
    )


def cpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    *,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    simpo_gamma: float = 0.5,
    alpha: float = 0.0,
) -> LossOutput:
    """TRL CPOTrainer.cpo_loss: reference-free; sigmoid|hinge take summed, ipo|simpo averaged log-probs.

    `label_smoothing` applies to sigmoid and simpo only. `alpha != 0` is AlphaPO: rewards r = (1 - p^-alpha)/alpha
    with p = exp(logps) replace the log-probs everywhere (loss and logged rewards)."""
    _check_type(loss_type, CPO_LOSS_TYPES, "loss_type")
    if alpha != 0.0:
        chosen_r = (1 - torch.exp(chosen_logps).pow(-alpha)) / alpha
        rejected_r = (1 - torch.exp(rejected_logps).pow(-alpha)) / alpha
    else:
        chosen_r, rejected_r = chosen_logps, rejected_logps
    logits = chosen_r - rejected_r

    if loss_type == "simpo":
        losses = _smoothed_sigmoid_loss(beta * (logits - simpo_gamma / beta), label_smoothing)
    elif loss_type == "sigmoid":
        losses = _smoothed_sigmoid_loss(beta * logits, label_smoothing)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:  # ipo
        losses = (logits - 1 / (2 * beta)) ** 2
    return LossOutput(
        losses=losses,
        chosen_rewards=(beta * chosen_r).detach(),
        rejected_rewards=(beta * rejected_r).detach(),
    )


def simpo_loss(
    chosen_avg_logps: Tensor,
    rejected_avg_logps: Tensor,
    *,
    beta: float,
    gamma: float,
    label_smoothing: float = 0.0,
    alpha: float = 0.0,
) -> LossOutput:
    """SimPO: -logsigmoid(beta * (avg_c - avg_r) - gamma) (with label smoothing), rewards = beta * avg logps.
    Identical to TRL's CPOTrainer(loss_type="simpo", simpo_gamma=gamma) loss term."""
    return cpo_loss(
        chosen_avg_logps,
        rejected_avg_logps,
        beta=beta,
        loss_type="simpo",
        label_smoothing=label_smoothing,
        simpo_gamma=gamma,
        alpha=alpha,
    )
