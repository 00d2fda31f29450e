"""SimPO (Meng et al. 2024): reference-free, length-normalised, with a target margin gamma.

Loss: mean(-logsigmoid(beta * (avg_c - avg_r) - gamma)) (with --label_smoothing), plus cpo_alpha * NLL(chosen) when
--cpo_alpha > 0 (default 0: the paper's loss; 1 = TRL's CPO-SimPO). Identical to TRL's CPOTrainer(loss_type="simpo",
cpo_alpha=0). Rewards: beta * average log-probs.
"""
from dataclasses import dataclass
from typing import ClassVar, Optional

from torch import Tensor

from .base import LossOutput, resolved_beta
from .cpo import CPO, cpo_loss


def simpo_loss(chosen_avg_logps: Tensor, rejected_avg_logps: Tensor, *, beta: float, gamma: float,
               label_smoothing: float = 0.0, alpha: float = 0.0) -> LossOutput:
    """-logsigmoid(beta * (avg_c - avg_r) - gamma) (with label smoothing), rewards = beta * avg logps."""
    return cpo_loss(chosen_avg_logps, rejected_avg_logps, beta=beta, loss_type="simpo",
                    label_smoothing=label_smoothing, simpo_gamma=gamma, alpha=alpha)


@dataclass
class SimPO(CPO):
    beta: float = 2.0
    loss_type: str = "simpo"
    cpo_alpha: Optional[float] = 0.0
    algo: ClassVar[str] = "simpo"
    label_smoothing_types: ClassVar[tuple] = ("simpo",)

    @classmethod
    def from_args(cls, pref) -> "SimPO":
        kwargs = {} if pref.cpo_alpha is None else {"cpo_alpha": pref.cpo_alpha}
        return cls(beta=resolved_beta(cls.algo, pref), label_smoothing=pref.label_smoothing,
                   simpo_gamma=pref.simpo_gamma, **kwargs)


__all__ = ["SimPO", "simpo_loss"]
