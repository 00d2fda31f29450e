"""ORPO (Hong et al. 2024), as TRL's experimental ORPOTrainer: reference-free, the chosen NLL plus an odds-ratio term.

Loss: NLL(chosen) + mean(-beta * logsigmoid(log_odds)), log_odds = (c - r) - (log(1 - e^c) - log(1 - e^r)) of the
average response log-probs c, r (beta is the paper's lambda). The NLL covers the chosen response (the paper), or the
whole chosen sequence with --orpo_nll_scope all (TRL). Rewards: beta * average log-probs. Also logged:
log_odds_ratio (logsigmoid(log_odds)) and log_odds_chosen (log_odds).
"""
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..scoring.forward import PairLogps
from .base import LossOutput, PairLoss, PairObjective, RefLogps, resolved_beta


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, accurate on both sides of -ln 2 (Mächler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(chosen_avg_logps: Tensor, rejected_avg_logps: Tensor, *, beta: float) -> LossOutput:
    """ORPO's odds-ratio term (λ = beta), computed in float32 (float64 stays float64) like TRL.

    losses = -beta * logsigmoid(log_odds). Average log-probs of exactly 0 (probability 1) are clamped to -tiny so
    log1mexp stays finite (TRL returns inf/nan there)."""
    dtype = torch.float64 if chosen_avg_logps.dtype == torch.float64 else torch.float32
    c, r = chosen_avg_logps.to(dtype), rejected_avg_logps.to(dtype)
    tiny = torch.finfo(dtype).tiny
    log_odds = (c - r) - (log1mexp(c.clamp(max=-tiny)) - log1mexp(r.clamp(max=-tiny)))
    ratio = F.logsigmoid(log_odds)
    return LossOutput(losses=-beta * ratio, chosen_rewards=(beta * c).detach(), rejected_rewards=(beta * r).detach(),
                      extras={"log_odds_ratio": ratio.detach(), "log_odds_chosen": log_odds.detach()})


@dataclass
class ORPO(PairObjective):
    beta: float = 0.1
    loss_type: str = "orpo"
    orpo_nll_scope: str = "response"  # "all" reproduces TRL's experimental ORPOTrainer
    algo: ClassVar[str] = "orpo"

    @classmethod
    def from_args(cls, pref) -> "ORPO":
        return cls(beta=resolved_beta(cls.algo, pref), orpo_nll_scope=pref.orpo_nll_scope)

    @property
    def nll_all(self) -> bool:
        return self.orpo_nll_scope == "all"

    def pair_loss(self, pol: PairLogps, ref: RefLogps) -> PairLoss:
        c, r = pol.chosen_avg_logps, pol.rejected_avg_logps
        out = orpo_loss(c, r, beta=self.beta)
        nll = pol.chosen_nll_all if self.nll_all else pol.chosen_nll
        metrics = {"nll_loss": nll.detach(), "log_odds_ratio": out.extras["log_odds_ratio"],
                   "log_odds_chosen": out.extras["log_odds_chosen"]}
        return PairLoss(nll + out.losses.mean(), out.chosen_rewards, out.rejected_rewards, c, r, metrics)


__all__ = ["ORPO", "orpo_loss", "log1mexp"]
