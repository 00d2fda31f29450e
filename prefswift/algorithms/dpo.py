"""DPO and its family, as TRL 1.16's DPOTrainer: 14 loss types, several at once with weights (MPO), rpo_alpha's
chosen NLL, LD-DPO, WPO, f-divergences; plus the loss types plugins register (`register_loss(name, family="dpo")`).

Loss: sum over the loss types i of w_i * mean(loss_i) (`sft`: the chosen NLL; --rpo_alpha adds one with weight
rpo_alpha), each per-pair loss times the WPO weight with --use_weighting. Log-probs (and logps/*, rewards/*) are
summed over the response, the tokens past the shorter response's length weighted by --ld_alpha (LD-DPO).
Rewards: beta * (logps - reference logps).

`dpo_loss` takes per-sequence sums for every loss type: `ipo` and `sigmoid_norm` are length-normalised inside it
(TRL: score / completion_tokens.clamp(min=1)) when `chosen_lengths` / `rejected_lengths` are given; without them the
inputs are used as given (pass means).
"""
import math
from dataclasses import dataclass
from typing import ClassVar, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..arguments.algorithms import DPO_LOSS_TYPES, DPO_SFT, F_DIVERGENCE_SHORT, split_loss_types
from ..errors import ArgumentError
from ..scoring.forward import PairLogps
from .base import LossOutput, PairLoss, PairObjective, RefLogps, resolved_beta, resolved_loss_type
from .registry import is_registered_loss, registered_loss

LABEL_SMOOTHING_TYPES = ("robust", "exo_pair", "aot", "aot_unpaired")  # the loss types that read label_smoothing
F_DIVERGENCE_LOSS_TYPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", DPO_SFT)
UNWEIGHTABLE_LOSS_TYPES = ("aot", "aot_unpaired")  # WPO: batch-sorted losses have no per-pair weight
_MEAN_TYPES = ("ipo", "sigmoid_norm")


def dpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor, *,
             beta: float, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             chosen_lengths: Optional[Tensor] = None, rejected_lengths: Optional[Tensor] = None,
             discopop_tau: float = 0.05, f_divergence_type: str = "reverse_kl",
             f_alpha_divergence_coef: float = 0.5) -> LossOutput:
    """One built-in DPO loss type (TRL 1.16 DPOTrainer._compute_loss; WPO weighting is applied by the caller).

    `label_smoothing` is read by robust (flip probability, in [0, 0.5)), exo_pair (ε > 0) and aot/aot_unpaired.
    aot/aot_unpaired sort across the batch, so their per-example losses are not aligned with the input rows (only
    their mean is meaningful). `f_divergence_type` other than reverse_kl replaces the log-ratios by f'(ratio)
    (`f_divergence_scores`) in sigmoid, sigmoid_norm, hinge, ipo, exo_pair, robust and discopop; rewards stay
    beta * log-ratio."""
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"unknown DPO loss type {loss_type!r} (built-in: {', '.join(DPO_LOSS_TYPES)})")
    if f_divergence_type != "reverse_kl" and loss_type not in F_DIVERGENCE_LOSS_TYPES:
        raise ValueError(f"f-divergence {f_divergence_type} does not apply to the DPO loss type {loss_type}")
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
    elif loss_type in _MEAN_TYPES:
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
            raise ValueError("the exo_pair loss needs 0 < label_smoothing < 1 (the paper suggests 1e-3)")
        z = beta * delta
        # KL(q || p) with q = softmax over {chosen, rejected}, p = (1-ε, ε)
        losses = torch.sigmoid(z) * (F.logsigmoid(z) - math.log1p(-ls)) + torch.sigmoid(-z) * (
            F.logsigmoid(-z) - math.log(ls))
    elif loss_type == "nca_pair":
        cr, rr = beta * chosen_logratios, beta * rejected_logratios
        losses = -F.logsigmoid(cr) - 0.5 * F.logsigmoid(-cr) - 0.5 * F.logsigmoid(-rr)
    elif loss_type == "robust":
        if not 0.0 <= ls < 0.5:
            raise ValueError("the robust loss needs 0 <= label_smoothing < 0.5 (a typical value is 0.1)")
        z = beta * delta
        losses = (-(1 - ls) * F.logsigmoid(z) + ls * F.logsigmoid(-z)) / (1 - 2 * ls)
    elif loss_type == "bco_pair":
        losses = -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    elif loss_type == "sppo_hard":
        losses = (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    elif loss_type == "aot":
        sorted_policy = torch.sort(chosen_logps - rejected_logps, dim=0).values
        sorted_ref = torch.sort(ref_chosen_logps - ref_rejected_logps, dim=0).values
        losses = smoothed_sigmoid_loss(beta * (sorted_policy - sorted_ref), ls)
    elif loss_type == "aot_unpaired":
        d = torch.sort(chosen_logratios, dim=0).values - torch.sort(rejected_logratios, dim=0).values
        losses = smoothed_sigmoid_loss(beta * d, ls)
    elif loss_type == "apo_zero":
        losses = (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(beta * rejected_logratios)
    elif loss_type == "apo_down":
        losses = torch.sigmoid(beta * chosen_logratios) + (1 - torch.sigmoid(beta * delta))
    else:  # discopop
        z = beta * delta
        mix = torch.sigmoid(z / discopop_tau)
        losses = -F.logsigmoid(z) * (1 - mix) + torch.exp(-z) * mix
    return LossOutput(losses=losses, chosen_rewards=(beta * chosen_logratios).detach(),
                      rejected_rewards=(beta * rejected_logratios).detach())


def smoothed_sigmoid_loss(z: Tensor, label_smoothing: float) -> Tensor:
    """-(1-ε)·logσ(z) - ε·logσ(-z): conservative DPO/CPO loss."""
    loss = -F.logsigmoid(z) * (1 - label_smoothing)
    if label_smoothing:
        loss = loss - F.logsigmoid(-z) * label_smoothing
    return loss


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
    raise ValueError(f"unknown f-divergence {f_divergence_type!r} (reverse_kl, forward_kl, js_divergence, "
                     "alpha_divergence)")


def wpo_weights(chosen_aligned_mean: Tensor, rejected_aligned_mean: Tensor) -> Tensor:
    """WPO (Eq. 2 of arXiv 2406.11827, TRL's use_weighting): per-pair loss weight exp(c) * exp(r), where c / r are
    the mean over the response tokens of log p(token) - log sum_v p(v)^2 (detached: the weights get no gradient)."""
    return (torch.exp(chosen_aligned_mean) * torch.exp(rejected_aligned_mean)).detach()


@dataclass
class DPO(PairObjective):
    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    rpo_alpha: Optional[float] = None
    loss_weights: Tuple[float, ...] = ()
    discopop_tau: float = 0.05
    ld_alpha: Optional[float] = None
    use_weighting: bool = False
    f_divergence_type: str = "reverse_kl"
    f_alpha_divergence_coef: float = 0.5
    algo: ClassVar[str] = "dpo"

    def __post_init__(self):
        self.f_divergence_type = F_DIVERGENCE_SHORT.get(self.f_divergence_type, self.f_divergence_type)

    @classmethod
    def from_args(cls, pref) -> "DPO":
        return cls(beta=resolved_beta(cls.algo, pref), loss_type=resolved_loss_type(cls.algo, pref),
                   label_smoothing=pref.label_smoothing, rpo_alpha=pref.rpo_alpha,
                   loss_weights=tuple(pref.loss_weights), discopop_tau=pref.discopop_tau, ld_alpha=pref.ld_alpha,
                   use_weighting=pref.use_weighting, f_divergence_type=pref.f_divergence_type,
                   f_alpha_divergence_coef=pref.f_alpha_divergence_coef)

    @property
    def wpo(self) -> bool:
        return self.use_weighting

    @property
    def weighted_losses(self) -> List[Tuple[str, float]]:
        """(loss type, weight) pairs, `sft` last when --rpo_alpha adds it."""
        types = split_loss_types(self.loss_type)
        pairs = list(zip(types, self.loss_weights or [1.0] * len(types)))
        if self.rpo_alpha:
            pairs.append((DPO_SFT, self.rpo_alpha))
        return pairs

    def sequence_logps(self, logps: PairLogps) -> Tuple[Tensor, Tensor]:
        """Sums, LD-weighted with --ld_alpha (policy, live reference and precomputed reference alike)."""
        return logps.ld_logps(self.ld_alpha)

    def pair_loss(self, pol: PairLogps, ref: RefLogps) -> PairLoss:
        ref_c, ref_r = ref
        chosen, rejected = self.sequence_logps(pol)
        weighted = self.use_weighting and pol.chosen_wpo_mean is not None  # eval's rewards need no weights
        weights = wpo_weights(pol.chosen_wpo_mean, pol.rejected_wpo_mean) if weighted else None
        metrics, loss = {}, 0.0
        for loss_type, weight in self.weighted_losses:
            if loss_type == DPO_SFT:  # the pooled chosen NLL, broadcast to every pair as TRL does
                per_pair = pol.chosen_nll.expand(chosen.shape[0])
                metrics["nll_loss"] = pol.chosen_nll.detach()
            elif is_registered_loss("dpo", loss_type):
                per_pair = registered_loss("dpo", loss_type).fn(
                    chosen - ref_c, rejected - ref_r, beta=self.beta, label_smoothing=self.label_smoothing,
                    chosen_lengths=pol.chosen_tokens, rejected_lengths=pol.rejected_tokens)
            else:
                per_pair = dpo_loss(chosen, rejected, ref_c, ref_r, beta=self.beta, loss_type=loss_type,
                                    label_smoothing=self.label_smoothing, chosen_lengths=pol.chosen_tokens,
                                    rejected_lengths=pol.rejected_tokens, discopop_tau=self.discopop_tau,
                                    f_divergence_type=self.f_divergence_type,
                                    f_alpha_divergence_coef=self.f_alpha_divergence_coef).losses
            if weights is not None:
                per_pair = per_pair * weights
            loss = loss + per_pair.mean() * weight
        return PairLoss(loss, (self.beta * (chosen - ref_c)).detach(), (self.beta * (rejected - ref_r)).detach(),
                        chosen, rejected, metrics)

    def reference_key(self) -> str:
        return f"dpo ld_alpha={self.ld_alpha}" if self.ld_alpha is not None else "dpo"

    def check(self, args) -> None:
        check_dpo_options(self, args)


def check_dpo_options(objective: DPO, args) -> None:
    """DPO's option combinations that would not act (TRL 1.16 ignores most of them silently), refused in one line."""
    pref, explicit = args.pref, args.explicit
    types = split_loss_types(objective.loss_type)
    plugin = [t for t in types if is_registered_loss("dpo", t)]
    smoothing = set(LABEL_SMOOTHING_TYPES) | {t for t in plugin if registered_loss("dpo", t).label_smoothing}
    if pref.label_smoothing and not set(types) & smoothing:
        raise ArgumentError(f"--label_smoothing {pref.label_smoothing} has no effect on `prefswift dpo` with "
                            f"--loss_type {objective.loss_type}: it acts with {', '.join(sorted(smoothing))}; drop "
                            "it or change the loss type")
    if pref.loss_weights and len(pref.loss_weights) != len(types):
        raise ArgumentError(f"--loss_weights has {len(pref.loss_weights)} value(s) for {len(types)} loss type(s) "
                            f"({objective.loss_type}): give one weight per --loss_type")
    if "exo_pair" in types and not pref.label_smoothing:
        raise ArgumentError("--loss_type exo_pair needs --label_smoothing above 0 (the paper suggests 1e-3)")
    if "robust" in types and pref.label_smoothing >= 0.5:
        raise ArgumentError(f"--loss_type robust needs --label_smoothing below 0.5, got {pref.label_smoothing}")
    if pref.rpo_alpha and DPO_SFT in types:
        raise ArgumentError("--rpo_alpha adds the sft loss, which --loss_type already has: weight it with "
                            "--loss_weights instead")
    needs = {"discopop_tau": ("discopop" in types, "--loss_type discopop"),
             "f_alpha_divergence_coef": (objective.f_divergence_type == "alpha_divergence",
                                         "--f_divergence_type alpha_divergence"),
             "ref_model_mixup_alpha": (pref.sync_ref_model, "--sync_ref_model true"),
             "ref_model_sync_steps": (pref.sync_ref_model, "--sync_ref_model true")}
    for name, (acts, condition) in needs.items():
        if name in explicit and not acts:
            raise ArgumentError(f"--{name} acts only with {condition}; drop it or add that")
    if objective.f_divergence_type != "reverse_kl" and not set(types) <= set(F_DIVERGENCE_LOSS_TYPES):
        raise ArgumentError(f"--f_divergence_type {objective.f_divergence_type} works with the loss types "
                            f"{', '.join(F_DIVERGENCE_LOSS_TYPES)} (TRL 1.16), not with "
                            f"{', '.join(sorted(set(types) - set(F_DIVERGENCE_LOSS_TYPES)))}")
    if pref.use_weighting and set(types) & set(UNWEIGHTABLE_LOSS_TYPES):
        raise ArgumentError("--use_weighting (WPO) cannot weight aot / aot_unpaired: they compare the batch's sorted "
                            "log-ratios, not pairs")
    check_reference_options(args)


def check_reference_options(args) -> None:
    """DPO's reference options (--sync_ref_model, --ref_adapter_name_or_path) against the rest of the run."""
    m, pref, lora = args.model, args.pref, args.tuning.sft_type == "lora"
    separate = bool(m.ref_model_type or m.ref_model_id_or_path)
    if pref.sync_ref_model:
        if lora:
            raise ArgumentError("--sync_ref_model needs --sft_type full: with LoRA the reference is the "
                                "adapter-disabled base, there is no reference model to mix the policy into")
        if pref.precompute_ref_log_probs:
            raise ArgumentError("--sync_ref_model with --precompute_ref_log_probs: the reference changes during "
                                "training, so precomputed log-probs would go stale; drop one of them")
    if m.ref_adapter_name_or_path:
        if not lora:
            raise ArgumentError("--ref_adapter_name_or_path needs --sft_type lora (it is loaded next to the trained "
                                "adapter); for full fine-tuning merge it (prefswift merge-lora) and pass the merged "
                                "model as --ref_model_id_or_path")
        if separate:
            raise ArgumentError("--ref_adapter_name_or_path and --ref_model_type/--ref_model_id_or_path both set the "
                                "reference; keep one")
        if m.adapter_name_or_path:
            raise ArgumentError("--ref_adapter_name_or_path with --adapter_name_or_path: the starting adapter is "
                                "merged into the base, which is then already the reference; drop "
                                "--ref_adapter_name_or_path (or merge first and train on the merged model)")


__all__ = ["DPO", "dpo_loss", "f_divergence_scores", "wpo_weights", "smoothed_sigmoid_loss", "check_dpo_options"]
