"""A Bradley-Terry reward model (`prefswift rm`), as TRL 1.16's RewardTrainer trains it.

The model is a sequence classifier with one label (`AlgorithmSpec.head` "sequence_classification"); a sequence's reward
r is its score head at the last real token (`prefswift.models.reward.sequence_rewards`, one pooling for every path).
Batches are `PairCollator`'s: chosen rows then rejected rows, right-padded, one sequence per row. Per batch of B pairs:

    loss = mean_i -logsigmoid(r_chosen_i - r_rejected_i - margin_i)
           + center_rewards_coefficient * mean_i (r_chosen_i + r_rejected_i)^2      (only when the coefficient is set)

margin_i is 0 unless the rows carry a `margin` (TRL's optional column; the collator passes it as batch["margin"]).
prefswift's data pipeline reads prompt/chosen/rejected only, so on the command line the margin term is off; code that
builds its own rows may add "margin" to them.

Metrics, named as TRL's RewardTrainer logs them: accuracy (share of pairs with r_chosen > r_rejected), margin (mean
r_chosen - r_rejected), min_reward / mean_reward / max_reward (over the batch's 2B rewards, all ranks); and as the
other commands log them, so the console shows acc and margin: rewards/chosen, rewards/rejected, rewards/accuracies,
rewards/margins.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..errors import ArgumentError
from ..models.reward import sequence_rewards
from .base import BatchObjective, Metrics, ScoringContext


def reward_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: Optional[torch.Tensor] = None,
                center_rewards_coefficient: Optional[float] = None) -> torch.Tensor:
    """The Bradley-Terry loss of [B] chosen and rejected rewards (see the module docstring), in float32."""
    c, r = chosen.float(), rejected.float()
    diff = c - r if margin is None else c - r - margin.to(c)
    loss = -F.logsigmoid(diff).mean()
    if center_rewards_coefficient is not None:
        loss = loss + center_rewards_coefficient * torch.mean((c + r) ** 2)
    return loss


@dataclass
class RewardModel(BatchObjective):
    center_rewards_coefficient: Optional[float] = None
    beta: float = 1.0             # not part of the loss (--beta is refused); kept for the BatchObjective interface
    loss_type: str = "bradley_terry"
    algo: ClassVar[str] = "rm"

    @classmethod
    def from_args(cls, pref) -> "RewardModel":
        return cls(center_rewards_coefficient=pref.center_rewards_coefficient)

    def pair_rewards(self, model, batch) -> Tuple[torch.Tensor, torch.Tensor]:
        """([B] chosen, [B] rejected) rewards of a PairCollator batch (differentiable)."""
        rewards = sequence_rewards(model, batch["input_ids"], batch["attention_mask"])
        chosen, rejected = torch.chunk(rewards, 2)
        return chosen, rejected

    def compute(self, chosen: torch.Tensor, rejected: torch.Tensor, margin: Optional[torch.Tensor] = None,
                gather=None) -> Tuple[torch.Tensor, Metrics]:
        """(scalar loss, metrics) from the rewards of a batch. `gather` (all ranks' tensors, concatenated) makes
        min_reward / max_reward the extremes over every rank, as TRL's."""
        loss = reward_loss(chosen, rejected, margin, self.center_rewards_coefficient)
        c, r = chosen.detach().float(), rejected.detach().float()
        both = torch.cat([c, r])
        extremes = torch.stack([both.min(), both.max()])
        if gather is not None:
            extremes = gather(extremes).reshape(-1, 2)
            extremes = torch.stack([extremes[:, 0].min(), extremes[:, 1].max()])
        accurate, margins = (c > r).float(), c - r
        metrics = {"accuracy": accurate, "margin": margins, "min_reward": extremes[0], "mean_reward": both,
                   "max_reward": extremes[1], "rewards/chosen": c, "rewards/rejected": r,
                   "rewards/accuracies": accurate, "rewards/margins": margins}
        return loss, metrics

    def batch_loss(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, Metrics]:
        chosen, rejected = self.pair_rewards(model, batch)
        return self.compute(chosen, rejected, batch.get("margin"), gather=ctx.gather if ctx.world_size > 1 else None)

    def reference_values(self, ctx: ScoringContext, model, batch) -> Dict[str, torch.Tensor]:
        return {}  # no reference (--precompute_ref_log_probs is refused for rm when parsed)

    def check(self, args) -> None:
        pref, explicit = args.pref, args.explicit
        unused = [f"--{name}" for name in ("beta", "logprob_chunk_size") if name in explicit]
        if unused:
            raise ArgumentError(f"prefswift rm: {', '.join(unused)} does not act for a reward model (its loss is "
                                "-logsigmoid(r_chosen - r_rejected), scored by a scalar head, not log-probs): drop it")
        layout = [f"--{name} true" for name in ("prefix_sharing", "packing") if getattr(pref, name)]
        if layout:
            raise ArgumentError(f"prefswift rm: {' / '.join(layout)} does not apply: a sequence classifier reads "
                                "one sequence per row (chosen rows, then rejected rows); drop it")

    def describe(self) -> str:
        center = self.center_rewards_coefficient
        return "rm (Bradley-Terry" + (f", center_rewards_coefficient {center:g})" if center is not None else ")")


__all__ = ["RewardModel", "reward_loss"]
