"""CPO (Xu et al. 2024), as TRL's experimental CPOTrainer: reference-free, a preference loss plus the chosen NLL.

Loss: mean(cpo_loss) + cpo_alpha * NLL(chosen response) (no NLL term when cpo_alpha is 0; default 1). sigmoid and
hinge compare summed log-probs, ipo and simpo averaged ones (TRL: `average_log_prob=loss_type in ["ipo","simpo"]`).
Rewards: beta * the log-probs compared. `prefswift simpo` is this family's simpo loss without the NLL.
"""
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from torch import Tensor

from ..arguments.algorithms import CPO_LOSS_TYPES
from ..errors import ArgumentError
from ..scoring.forward import PairLogps
from .base import LossOutput, PairLoss, PairObjective, RefLogps, resolved_beta, resolved_loss_type
from .dpo import smoothed_sigmoid_loss

MEAN_TYPES = ("ipo", "simpo")


def cpo_logps_kind(loss_type: str) -> str:
    """'mean' for CPO's ipo and simpo, 'sum' for sigmoid and hinge (TRL CPOTrainer.concatenated_forward)."""
    if loss_type not in CPO_LOSS_TYPES:
        raise ValueError(f"unknown CPO loss type {loss_type!r} ({', '.join(CPO_LOSS_TYPES)})")
    return "mean" if loss_type in MEAN_TYPES else "sum"


def cpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, *, beta: float, loss_type: str = "sigmoid",
             label_smoothing: float = 0.0, simpo_gamma: float = 0.5, alpha: float = 0.0) -> LossOutput:
    """TRL CPOTrainer.cpo_loss: sigmoid|hinge take summed, ipo|simpo averaged log-probs.

    `label_smoothing` applies to sigmoid and simpo only. `alpha != 0` is AlphaPO: rewards r = (1 - p^-alpha)/alpha
    with p = exp(logps) replace the log-probs everywhere (loss and logged rewards)."""
    cpo_logps_kind(loss_type)
    if alpha != 0.0:
        chosen_r = (1 - torch.exp(chosen_logps).pow(-alpha)) / alpha
        rejected_r = (1 - torch.exp(rejected_logps).pow(-alpha)) / alpha
    else:
        chosen_r, rejected_r = chosen_logps, rejected_logps
    logits = chosen_r - rejected_r
    if loss_type == "simpo":
        losses = smoothed_sigmoid_loss(beta * (logits - simpo_gamma / beta), label_smoothing)
    elif loss_type == "sigmoid":
        losses = smoothed_sigmoid_loss(beta * logits, label_smoothing)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:  # ipo
        losses = (logits - 1 / (2 * beta)) ** 2
    return LossOutput(losses=losses, chosen_rewards=(beta * chosen_r).detach(),
                      rejected_rewards=(beta * rejected_r).detach())


@dataclass
class CPO(PairObjective):
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    simpo_gamma: float = 0.5
    cpo_alpha: Optional[float] = 1.0
    algo: ClassVar[str] = "cpo"
    label_smoothing_types: ClassVar[tuple] = ("sigmoid", "simpo")

    @classmethod
    def from_args(cls, pref):
        kwargs = {} if pref.cpo_alpha is None else {"cpo_alpha": pref.cpo_alpha}
        return cls(beta=resolved_beta(cls.algo, pref), loss_type=resolved_loss_type(cls.algo, pref),
                   label_smoothing=pref.label_smoothing, simpo_gamma=pref.simpo_gamma, **kwargs)

    def compared_logps(self, pol: PairLogps):
        if cpo_logps_kind(self.loss_type) == "mean":
            return pol.chosen_avg_logps, pol.rejected_avg_logps
        return pol.chosen_logps, pol.rejected_logps

    def pair_loss(self, pol: PairLogps, ref: RefLogps) -> PairLoss:
        c, r = self.compared_logps(pol)
        out = cpo_loss(c, r, beta=self.beta, loss_type=self.loss_type, label_smoothing=self.label_smoothing,
                       simpo_gamma=self.simpo_gamma)
        loss, metrics = out.losses.mean(), {}
        if self.cpo_alpha:  # like DPO's rpo_alpha: nll_loss is logged only when it is part of the loss
            loss = loss + self.cpo_alpha * pol.chosen_nll
            metrics["nll_loss"] = pol.chosen_nll.detach()
        return PairLoss(loss, out.chosen_rewards, out.rejected_rewards, c, r, metrics)

    def check(self, args) -> None:
        check_label_smoothing(self, args, self.label_smoothing_types)


def check_label_smoothing(objective, args, acting) -> None:
    """--label_smoothing is refused where the loss type does not read it."""
    smoothing = args.pref.label_smoothing
    if smoothing and objective.loss_type not in acting:
        raise ArgumentError(f"--label_smoothing {smoothing} has no effect on `prefswift {objective.algo}` with "
                            f"--loss_type {objective.loss_type}: it acts with {', '.join(acting)}; drop it or "
                            "change the loss type")


__all__ = ["CPO", "cpo_loss", "cpo_logps_kind", "check_label_smoothing"]
