"""A prefswift plugin: a new DPO-family loss and a whole new algorithm, in one file.

    prefswift dpo  --custom_register_path examples/plugins/my_losses.py --loss_type my_sigmoid --model_type ... --dataset ...
    prefswift slic --custom_register_path examples/plugins/my_losses.py --beta 1 --model_type ... --dataset ...

The path is stored in the run's args.json, so `prefswift merge-lora / infer / eval --ckpt_dir <run>` and
`--resume_from_checkpoint latest` find the loss and the algorithm again without repeating it.
"""
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F

from prefswift.algorithms import AlgorithmSpec, PairLoss, PairObjective, register_algorithm, register_loss


# 1. A DPO-family loss: `--loss_type my_sigmoid` of `prefswift dpo`. It gets the per-pair log-ratios
#    log pi(y|x) - log pi_ref(y|x) of the chosen and rejected responses ([B] each), beta, and as options
#    label_smoothing and the response token counts (chosen_lengths, rejected_lengths); it returns the per-pair loss.
#    This one is DPO's sigmoid loss written again: it trains exactly as `--loss_type sigmoid`.
@register_loss("my_sigmoid", family="dpo")
def my_sigmoid(chosen_logratios, rejected_logratios, *, beta, **options):
    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))


# 2. A whole algorithm: SLiC-HF's calibration loss (Zhao et al. 2023), reference-free:
#    max(0, beta - (log pi(chosen) - log pi(rejected))) + cpo_alpha * NLL(chosen), beta being the margin delta.
@dataclass
class SLiC(PairObjective):
    beta: float = 1.0
    cpo_alpha: float = 0.0
    loss_type: str = "slic"
    algo: ClassVar[str] = "slic"

    @classmethod
    def from_args(cls, pref):
        return cls(beta=1.0 if pref.beta is None else pref.beta,
                   cpo_alpha=0.0 if pref.cpo_alpha is None else pref.cpo_alpha)

    def pair_loss(self, pol, ref):  # pol: prefswift.scoring.forward.PairLogps; ref: None (reference-free)
        chosen, rejected = pol.chosen_logps, pol.rejected_logps
        loss = (self.beta - (chosen - rejected)).clamp(min=0).mean()
        metrics = {}
        if self.cpo_alpha:
            loss = loss + self.cpo_alpha * pol.chosen_nll
            metrics["nll_loss"] = pol.chosen_nll.detach()
        return PairLoss(loss, chosen.detach(), rejected.detach(), chosen, rejected, metrics)


register_algorithm(AlgorithmSpec(
    "slic", "Train with SLiC-HF's calibration loss (reference-free hinge on log-prob margins, optional NLL).",
    SLiC, data="paired", needs_reference=False, loss_types=("slic",), settings=("cpo_alpha",),
    defaults={"beta": 1.0}))
