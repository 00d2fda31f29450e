"""KTO (Kahneman-Tversky Optimization) on unpaired rows: the loss, its KL baseline and TRL 1.16's metrics.

For a row with completion log-prob ratio r = log pi(y|x) - log pi_ref(y|x) (summed over completion tokens):

| loss_type         | desirable row (label true)        | undesirable row (label false)     |
|-------------------|-----------------------------------|-----------------------------------|
| kto               | 1 - sigmoid(beta * (r - z))       | 1 - sigmoid(beta * (z - r))       |
| apo_zero_unpaired | 1 - sigmoid(beta * r)             | sigmoid(beta * r)                 |

times --desirable_weight / --undesirable_weight; the loss is the mean over all rows of the batch. z, the KL baseline
(kto only), is the batch mean of log pi(y'|x) - log pi_ref(y'|x) over the mismatched KL rows (each prompt with the
previous row's completion: `prefswift.data.unpaired.add_kl_completions`), averaged over DDP ranks, clamped at 0 and
never differentiated. As in TRL's KTOTrainer, which needs the batch size > 1 for it.

Metrics, named as TRL logs them (per batch, over all ranks): kl (z; 0 for apo_zero_unpaired), rewards/chosen and
logps/chosen (means of beta * r and of the summed log-probs over the desirable rows, when the batch has some),
rewards/rejected and logps/rejected (the same over undesirable rows), rewards/margins (chosen - rejected, when the
batch has both).
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..data.unpaired import add_kl_completions, label_counts
from ..errors import ArgumentError
from ..scoring.unpaired import UnpairedLogps, unpaired_forward
from .base import BatchObjective, ScoringContext, resolved_beta, resolved_loss_type


def kto_losses(logratios: torch.Tensor, labels: torch.Tensor, kl: torch.Tensor, *, beta: float, loss_type: str,
               desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> torch.Tensor:
    """Per-row weighted losses ([B]) from the policy-reference log-prob ratios, labels (True = desirable) and the KL
    baseline (a scalar; unused by apo_zero_unpaired). See the module docstring."""
    if loss_type == "kto":
        desirable = 1 - F.sigmoid(beta * (logratios - kl))
        undesirable = 1 - F.sigmoid(beta * (kl - logratios))
    elif loss_type == "apo_zero_unpaired":
        desirable = 1 - F.sigmoid(beta * logratios)
        undesirable = F.sigmoid(beta * logratios)
    else:
        raise ValueError(f"unknown KTO loss type {loss_type!r} (kto, apo_zero_unpaired)")
    return torch.where(labels.bool(), desirable_weight * desirable, undesirable_weight * undesirable)


def kto_metrics(logps: torch.Tensor, rewards: torch.Tensor, labels: torch.Tensor, kl: torch.Tensor, gather=None
                ) -> Dict[str, torch.Tensor]:
    """TRL's KTO metrics of one batch. `gather` (`accelerator.gather`) pools the per-rank sums and counts first, so
    every rank returns the same numbers (and the same names)."""
    labels = labels.bool()
    des, und = labels.float(), (~labels).float()
    sums = torch.stack([des.sum(), und.sum(), (rewards * des).nansum(), (logps * des).nansum(),
                        (rewards * und).nansum(), (logps * und).nansum()]).detach().float()
    if gather is not None:
        sums = gather(sums).reshape(-1, sums.shape[0]).sum(0)
    n_des, n_und, r_des, l_des, r_und, l_und = sums
    out = {"kl": kl.detach().float().reshape(())}
    if n_des > 0:
        out["rewards/chosen"], out["logps/chosen"] = r_des / n_des, l_des / n_des
    if n_und > 0:
        out["rewards/rejected"], out["logps/rejected"] = r_und / n_und, l_und / n_und
    if n_des > 0 and n_und > 0:
        out["rewards/margins"] = out["rewards/chosen"] - out["rewards/rejected"]
    return out


def weight_advice(desirable: int, undesirable: int, desirable_weight: float, undesirable_weight: float
                  ) -> Optional[str]:
    """TRL's hint (KTO paper, eq. 8) when the label counts differ and neither weight is in its suggested range."""
    n_des, n_und = max(desirable, 1), max(undesirable, 1)
    if n_des == n_und:
        return None
    des_range = (round(n_und * undesirable_weight / n_des, 2), round(n_und * undesirable_weight / n_des * 1.33, 2))
    und_range = (round(n_des * desirable_weight / n_und / 1.33, 2), round(n_des * desirable_weight / n_und, 2))
    if des_range[0] <= desirable_weight <= des_range[1] or und_range[0] <= undesirable_weight <= und_range[1]:
        return None
    return (f"[prefswift] warning: {desirable} desirable vs {undesirable} undesirable rows: the KTO paper suggests "
            f"EITHER --desirable_weight in [{des_range[0]}, {des_range[1]}] OR --undesirable_weight in "
            f"[{und_range[0]}, {und_range[1]}] (not both)")


@dataclass
class KTO(BatchObjective):
    """Scores unpaired batches (`prefswift.scoring.unpaired`): the policy's and the reference's completion log-probs,
    and for `kto` those of the mismatched KL rows."""

    beta: float = 0.1
    loss_type: str = "kto"
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    algo: ClassVar[str] = "kto"

    @property
    def uses_kl(self) -> bool:
        return self.loss_type != "apo_zero_unpaired"

    @classmethod
    def from_args(cls, pref) -> "KTO":
        return cls(beta=resolved_beta(cls.algo, pref), loss_type=resolved_loss_type(cls.algo, pref),
                   desirable_weight=pref.desirable_weight, undesirable_weight=pref.undesirable_weight)

    def _reference(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if "ref_logps" in batch:
            return batch["ref_logps"], batch.get("ref_kl_logps")
        with ctx.reference(model) as ref:
            out: UnpairedLogps = unpaired_forward(ref, batch, chunk_size=ctx.chunk_size, kl=self.uses_kl)
        return out.logps, out.kl_logps

    def reference_values(self, ctx: ScoringContext, model, batch) -> Dict[str, torch.Tensor]:
        logps, kl_logps = self._reference(ctx, model, batch)
        return {"ref_logps": logps, **({"ref_kl_logps": kl_logps} if kl_logps is not None else {})}

    def reference_key(self) -> str:
        return f"kto uses_kl={self.uses_kl}"

    def kl_baseline(self, pol: UnpairedLogps, ref_kl_logps: Optional[torch.Tensor], gather=None) -> torch.Tensor:
        if not self.uses_kl:
            return torch.zeros((), device=pol.logps.device)
        kl = (pol.kl_logps - ref_kl_logps).mean().detach()
        if gather is not None:
            kl = gather(kl.reshape(1)).mean()
        return kl.clamp(min=0)

    def compute(self, pol: UnpairedLogps, ref_logps: torch.Tensor, ref_kl_logps: Optional[torch.Tensor],
                labels: torch.Tensor, gather=None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(scalar loss, metrics) from the policy's and the reference's log-probs of one batch."""
        kl = self.kl_baseline(pol, ref_kl_logps, gather)
        logratios = pol.logps - ref_logps
        losses = kto_losses(logratios, labels, kl, beta=self.beta, loss_type=self.loss_type,
                            desirable_weight=self.desirable_weight, undesirable_weight=self.undesirable_weight)
        metrics = kto_metrics(pol.logps.detach(), self.beta * logratios.detach(), labels, kl, gather)
        return losses.nanmean(), metrics

    def batch_loss(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        pol = unpaired_forward(model, batch, chunk_size=ctx.chunk_size, kl=self.uses_kl)
        ref_logps, ref_kl_logps = self._reference(ctx, model, batch)
        # a plain all-gather: gather_for_metrics would cut the last batch of an uneven loader to its real samples,
        # which would cut these per-rank sums instead
        return self.compute(pol, ref_logps, ref_kl_logps, batch["label"], gather=ctx.gather)

    def check(self, args) -> None:
        if self.uses_kl and args.train.batch_size < 2:
            raise ArgumentError("prefswift kto --loss_type kto needs --batch_size 2 or more: the KL baseline comes "
                                "from the other rows of the batch (with one row it would equal the row's own "
                                "reward); or use --loss_type apo_zero_unpaired, which has no KL term")

    def prepare_rows(self, train_rows, eval_rows, batch_size: int, log) -> None:
        """KL completions for every row (in batches of the training batch size, as TRL; eval rows too), and TRL's
        hint when the label counts call for other weights."""
        if self.uses_kl:
            add_kl_completions(train_rows, batch_size)
            add_kl_completions(eval_rows, batch_size)
        advice = weight_advice(*label_counts(train_rows), self.desirable_weight, self.undesirable_weight)
        if advice:
            log(advice)


__all__ = ["KTO", "kto_losses", "kto_metrics", "weight_advice"]
