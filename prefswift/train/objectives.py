"""From per-sequence log-probs to the training loss and TRL-named metrics, for each algorithm.

The loss formulas live in `prefswift.train.losses` (pure functions); this module only decides which log-probs each
algorithm feeds them (sums, averages, reference) and names the metrics the way TRL's trainers do (every one is a batch
mean of per-pair values; nll_loss is logged when it is part of the loss, ORPO also logs log_odds_ratio and
log_odds_chosen):

| algorithm | loss                                              | rewards/*                | logps/*    |
|-----------|---------------------------------------------------|--------------------------|------------|
| dpo       | sum_i w_i mean(loss_i) [+ rpo_alpha * chosen NLL] | beta * (logps - ref)     | sums       |
| orpo      | chosen NLL - mean(beta * logsigmoid(log odds))    | beta * avg logps         | averages   |
| simpo     | mean(simpo_loss) + cpo_alpha * NLL (if > 0)       | beta * avg logps         | averages   |
| cpo       | mean(cpo_loss) + cpo_alpha * chosen NLL           | beta * sum logps         | sums       |

DPO as TRL 1.16's DPOTrainer: loss types i with weights w_i (`sft` = the chosen NLL; --rpo_alpha adds one with weight
rpo_alpha), each per-pair loss times the WPO weight with --use_weighting; log-probs (and logps/*, rewards/*) with
the tokens past the shorter response's length weighted by --ld_alpha (LD-DPO); --f_divergence_type in the losses.
"""
import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from ..arguments.algorithms import (DEFAULT_BETA, DEFAULT_CPO_ALPHA, DPO_SFT, F_DIVERGENCE_SHORT, default_loss_type,
                                     needs_reference, split_loss_types)
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
    cpo_alpha: Optional[float] = None   # None: DEFAULT_CPO_ALPHA of the algorithm
    orpo_nll_scope: str = "response"  # "all" reproduces TRL's experimental ORPOTrainer
    # DPO family (TRL 1.16 DPOConfig)
    loss_weights: Tuple[float, ...] = ()
    discopop_tau: float = 0.05
    ld_alpha: Optional[float] = None
    use_weighting: bool = False
    f_divergence_type: str = "reverse_kl"
    f_alpha_divergence_coef: float = 0.5

    def __post_init__(self):
        if self.cpo_alpha is None:
            self.cpo_alpha = DEFAULT_CPO_ALPHA.get(self.algo, 0.0)
        self.f_divergence_type = F_DIVERGENCE_SHORT.get(self.f_divergence_type, self.f_divergence_type)

    @property
    def weighted_losses(self) -> List[Tuple[str, float]]:
        """DPO: (loss type, weight) pairs, `sft` last when --rpo_alpha adds it."""
        types = split_loss_types(self.loss_type)
        pairs = list(zip(types, self.loss_weights or [1.0] * len(types)))
        if self.rpo_alpha:
            pairs.append((DPO_SFT, self.rpo_alpha))
        return pairs

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
                   cpo_alpha=pref.cpo_alpha, orpo_nll_scope=pref.orpo_nll_scope,
                   loss_weights=tuple(pref.loss_weights), discopop_tau=pref.discopop_tau, ld_alpha=pref.ld_alpha,
                   use_weighting=pref.use_weighting, f_divergence_type=pref.f_divergence_type,
                   f_alpha_divergence_coef=pref.f_alpha_divergence_coef)

    def sequence_logps(self, logps: PairLogps) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (chosen, rejected) sequence log-probs the loss compares: sums, LD-weighted with --ld_alpha (policy,
        live reference and precomputed reference alike)."""
        return logps.ld_logps(self.ld_alpha)

    def compute(self, pol: PairLogps, ref: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Returns (scalar loss, {metric name: tensor of per-example values or a scalar})."""
        m: Dict[str, torch.Tensor] = {}
        if self.algo == "dpo":
            loss, logps_c, logps_r = self._dpo(pol, ref, m)
            ref_c, ref_r = ref
            chosen_r = self.beta * (logps_c - ref_c).detach()
            rejected_r = self.beta * (logps_r - ref_r).detach()
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
        """The implicit rewards ([B] chosen, [B] rejected) training logs as rewards/chosen and rewards/rejected (WPO
        weights only scale the loss: not needed here)."""
        _, m = dataclasses.replace(self, use_weighting=False).compute(pol, ref)
        return m["rewards/chosen"], m["rewards/rejected"]

    def describe(self) -> str:
        return f"{self.algo} (beta {self.beta:g}, loss_type {self.loss_type})"

    def _dpo(self, pol: PairLogps, ref, m: Dict[str, torch.Tensor]):
        """(loss, chosen logps, rejected logps): the weighted DPO loss types (TRL 1.16 DPOTrainer._compute_loss)."""
        ref_c, ref_r = ref
        chosen, rejected = self.sequence_logps(pol)
        weights = L.wpo_weights(pol.chosen_wpo_mean, pol.rejected_wpo_mean) if self.use_weighting else None
        loss = 0.0
        for loss_type, weight in self.weighted_losses:
            if loss_type == DPO_SFT:  # the pooled chosen NLL, broadcast to every pair as TRL does
                per_pair = pol.chosen_nll.expand(chosen.shape[0])
                m["nll_loss"] = pol.chosen_nll.detach()
            else:
                per_pair = L.dpo_loss(chosen, rejected, ref_c, ref_r, beta=self.beta, loss_type=loss_type,
                                      label_smoothing=self.label_smoothing, chosen_lengths=pol.chosen_tokens,
                                      rejected_lengths=pol.rejected_tokens, discopop_tau=self.discopop_tau,
                                      f_divergence_type=self.f_divergence_type,
                                      f_alpha_divergence_coef=self.f_alpha_divergence_coef).losses
            if weights is not None:
                per_pair = per_pair * weights
            loss = loss + per_pair.mean() * weight
        return loss, chosen, rejected
