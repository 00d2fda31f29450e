"""From per-sequence log-probs to the training loss and TRL-named metrics, for each algorithm.

The loss formulas live in `prefswift.train.losses` (pure functions); this module only decides which log-probs each
algorithm feeds them (sums, averages, reference) and names the metrics the way TRL's trainers do (every one is a batch
mean of per-pair values; nll_loss is logged when it is part of the loss, ORPO also logs log_odds_ratio and
log_odds_chosen):

| algorithm | loss                                              | rewards/*                | logps/*    |
|-----------|---------------------------------------------------|--------------------------|------------|
| dpo       | mean(dpo_loss) [+ rpo_alpha * chosen NLL]         | beta * (logps - ref)     | sums       |
| orpo      | chosen NLL - mean(beta * logsigmoid(log odds))    | beta * avg logps         | averages   |
| simpo     | mean(simpo_loss) + cpo_alpha * NLL (if > 0)       | beta * avg logps         | averages   |
| cpo       | mean(cpo_loss) + cpo_alpha * chosen NLL           | beta * sum logps         | sums       |
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ..arguments.algorithms import DEFAULT_BETA, default_loss_type, needs_reference
from ..scoring.forward import PairLogps
from . import losses as L


@dataclass
class Objective:
    algo: str                 # dpo | orpo | simpo | cpo
    beta: float
    loss_type: str
    label_smoothing: float = 0.0
    rpo_alpha: Optional[float] = None
    simpo_gamma: float = 0.5
    cpo_alpha: float = 1.0
    orpo_nll_scope: str = "response"  # "all" reproduces TRL's experimental ORPOTrainer

    @property
    def needs_reference(self) -> bool:
        return needs_reference(self.algo)

    @property
    def nll_all(self) -> bool:
        return self.algo == "orpo" and self.orpo_nll_scope == "all"

    @classmethod
    def from_args(cls, algo: str, pref) -> "Objective":
        loss_type = pref.loss_type or default_loss_type(algo)
        return cls(algo=algo, beta=DEFAULT_BETA[algo] if pref.beta is None else pref.beta, loss_type=loss_type,
                   label_smoothing=pref.label_smoothing, rpo_alpha=pref.rpo_alpha, simpo_gamma=pref.simpo_gamma,
                   cpo_alpha=pref.cpo_alpha, orpo_nll_scope=pref.orpo_nll_scope)

    def compute(self, pol: PairLogps, ref: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Returns (scalar loss, {metric name: tensor of per-example values or a scalar})."""
        m: Dict[str, torch.Tensor] = {}
        if self.algo == "dpo":
            ref_c, ref_r = ref
            out = L.dpo_loss(pol.chosen_logps, pol.rejected_logps, ref_c, ref_r, beta=self.beta,
                             loss_type=self.loss_type, label_smoothing=self.label_smoothing,
                             chosen_lengths=pol.chosen_tokens, rejected_lengths=pol.rejected_tokens)
            loss = out.losses.mean()
            if self.rpo_alpha:
                loss = loss + self.rpo_alpha * pol.chosen_nll
                m["nll_loss"] = pol.chosen_nll.detach()
            chosen_r = self.beta * (pol.chosen_logps - ref_c).detach()
            rejected_r = self.beta * (pol.rejected_logps - ref_r).detach()
            logps_c, logps_r = pol.chosen_logps, pol.rejected_logps
        elif self.algo == "orpo":
            out = L.orpo_loss(pol.chosen_avg_logps, pol.rejected_avg_logps, beta=self.beta)
            nll = pol.chosen_nll_all if self.nll_all else pol.chosen_nll
            loss = nll + out.losses.mean()
            m["nll_loss"] = nll.detach()
            m["log_odds_ratio"] = out.extras["log_odds_ratio"].detach()
            m["log_odds_chosen"] = out.extras["log_odds_chosen"].detach()
            chosen_r, rejected_r = out.chosen_rewards.detach(), out.rejected_rewards.detach()
            logps_c, logps_r = pol.chosen_avg_logps, pol.rejected_avg_logps
        elif self.algo in ("simpo", "cpo"):
            avg = self.algo == "simpo" or L.cpo_logps_kind(self.loss_type) == "mean"
            c = pol.chosen_avg_logps if avg else pol.chosen_logps
            r = pol.rejected_avg_logps if avg else pol.rejected_logps
            if self.algo == "simpo":
                out = L.simpo_loss(c, r, beta=self.beta, gamma=self.simpo_gamma, label_smoothing=self.label_smoothing)
            else:
                out = L.cpo_loss(c, r, beta=self.beta, loss_type=self.loss_type, label_smoothing=self.label_smoothing)
            loss = out.losses.mean()
            if self.cpo_alpha:  # like DPO's rpo_alpha: nll_loss is logged only when it is part of the loss
                loss = loss + self.cpo_alpha * pol.chosen_nll
                m["nll_loss"] = pol.chosen_nll.detach()
            chosen_r, rejected_r = out.chosen_rewards.detach(), out.rejected_rewards.detach()
            logps_c, logps_r = c, r
        else:
            raise ValueError(f"unknown algorithm {self.algo}")
        m["rewards/chosen"] = chosen_r
        m["rewards/rejected"] = rejected_r
        m["rewards/accuracies"] = (chosen_r > rejected_r).float()
        m["rewards/margins"] = chosen_r - rejected_r
        m["logps/chosen"] = logps_c.detach()
        m["logps/rejected"] = logps_r.detach()
        return loss, m

    def rewards(self, pol: PairLogps, ref: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The implicit rewards ([B] chosen, [B] rejected) training logs as rewards/chosen and rewards/rejected."""
        _, m = self.compute(pol, ref)
        return m["rewards/chosen"], m["rewards/rejected"]

    def describe(self) -> str:
        return f"{self.algo} (beta {self.beta:g}, loss_type {self.loss_type})"
