"""The contract every algorithm's objective implements, and the pair objective the paired algorithms share.

`BatchObjective` is what the trainer (`prefswift.train.trainer.PreferenceTrainer`), `prefswift eval` and the
precomputed reference call. It scores its own batches through a `ScoringContext` (chunk size, the reference model,
the collectives), never through the trainer's internals.

`PairObjective` implements the pair forward (chosen and rejected in one pass, `prefswift.scoring.forward`) and the
reference log-probs once; a paired algorithm supplies only `pair_loss(policy, reference) -> PairLoss` from the
per-sequence log-probs, and gets TRL's metric names (every one a batch mean of per-pair values):
rewards/chosen, rewards/rejected, rewards/accuracies, rewards/margins, logps/chosen, logps/rejected, plus the
algorithm's own (nll_loss when it is part of the loss, ORPO's log_odds_*).
"""
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

import torch

from ..arguments.algorithms import default_beta, default_loss_type, get_spec
from ..scoring.forward import PairLogps, pair_forward

Metrics = Dict[str, torch.Tensor]
RefLogps = Optional[Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LossOutput:
    """A loss formula's result. losses: per-example loss [B] (differentiable; the batch loss is `losses.mean()`);
    chosen_rewards / rejected_rewards: [B], detached, as TRL logs them; extras: formula-specific [B] tensors."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringContext:
    """What an objective may use to score a batch. reference(model): a context manager yielding the model that
    scores the reference, without gradient; gather: all-gather over ranks (identity on one process); reduce_sum: the
    sum over ranks."""

    chunk_size: int
    reference: Callable[[object], AbstractContextManager]
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    world_size: int = 1


class BatchObjective(ABC):
    """An algorithm's objective: the loss and metrics of one batch, and the reference columns to precompute."""

    algo: ClassVar[str]   # the registered algorithm name (its AlgorithmSpec)
    beta: float
    loss_type: str

    @classmethod
    @abstractmethod
    def from_args(cls, pref) -> "BatchObjective":
        """The objective from the preference options (`arguments.PreferenceArguments`)."""

    @abstractmethod
    def batch_loss(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, Metrics]:
        """(scalar loss, {metric name: per-example values or a scalar}) of one collated batch."""

    @abstractmethod
    def reference_values(self, ctx: ScoringContext, model, batch) -> Dict[str, torch.Tensor]:
        """The reference columns of one batch ({column: [B]}) that `--precompute_ref_log_probs` stores per row."""

    @property
    def needs_reference(self) -> bool:
        return get_spec(self.algo).needs_reference

    def check(self, args) -> None:
        """Refuse (ArgumentError, one line) option combinations this algorithm cannot honour; run by the one
        validation phase (`prefswift.train.validation`) before anything loads."""

    def prepare_rows(self, train_rows: List[dict], eval_rows: List[dict], batch_size: int, log) -> None:
        """Add what the algorithm needs to the encoded rows before training (KTO: its KL completions)."""

    def reference_key(self) -> str:
        """What, besides the rows and the reference model, the precomputed reference columns depend on."""
        return self.algo

    def describe(self) -> str:
        return f"{self.algo} (beta {self.beta:g}, loss_type {self.loss_type})"


def resolved_beta(algo: str, pref) -> float:
    return default_beta(algo) if pref.beta is None else pref.beta


def resolved_loss_type(algo: str, pref) -> str:
    return pref.loss_type or default_loss_type(algo)


@dataclass
class PairLoss:
    """A paired algorithm's result for a batch: the scalar loss, the [B] rewards it logs (detached), the [B]
    sequence log-probs it compared (logged as logps/*) and its own metrics."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor
    metrics: Metrics = field(default_factory=dict)


class PairObjective(BatchObjective):
    """A paired algorithm: subclasses implement `pair_loss`; `sequence_logps` (plain sums here) is what is compared
    with the reference, and `nll_all` / `wpo` ask the forward for the whole-sequence NLL or the WPO statistics."""

    nll_all: bool = False
    wpo: bool = False

    @abstractmethod
    def pair_loss(self, pol: PairLogps, ref: RefLogps) -> PairLoss:
        """The loss from the policy's log-probs and (algorithms with a reference) the reference's (chosen, rejected)
        `sequence_logps`. Everything a paired loss may read is in `PairLogps`."""

    def sequence_logps(self, logps: PairLogps) -> Tuple[torch.Tensor, torch.Tensor]:
        return logps.chosen_logps, logps.rejected_logps

    def policy_logps(self, ctx: ScoringContext, model, batch) -> PairLogps:
        """The pair forward; under DDP the chosen NLL is pooled over the tokens of every rank, so N processes train
        as one process with the same global batch."""
        pol = pair_forward(model, batch, chunk_size=ctx.chunk_size, nll_all=self.nll_all, wpo=self.wpo)
        if ctx.world_size <= 1:
            return pol
        all_count = pol.chosen_nll_all_count if pol.chosen_nll_all_count is not None else pol.chosen_nll_count
        total = ctx.reduce_sum(torch.stack([pol.chosen_nll_count, all_count]).detach().float())
        return pol.pooled_over(total[0], total[1], ctx.world_size)

    def reference_logps(self, ctx: ScoringContext, model, batch) -> RefLogps:
        if not self.needs_reference:
            return None
        if "ref_chosen_logps" in batch:
            return batch["ref_chosen_logps"], batch["ref_rejected_logps"]
        chosen, rejected = self.reference_sequence_logps(ctx, model, batch)
        return chosen.detach(), rejected.detach()

    def reference_sequence_logps(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, torch.Tensor]:
        """The reference's (chosen, rejected) `sequence_logps` of a batch, scored now (no gradient)."""
        with ctx.reference(model) as ref:
            return self.sequence_logps(pair_forward(ref, batch, chunk_size=ctx.chunk_size))

    def batch_loss(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, Metrics]:
        pol = self.policy_logps(ctx, model, batch)
        return self.compute(pol, self.reference_logps(ctx, model, batch))

    def compute(self, pol: PairLogps, ref: RefLogps = None) -> Tuple[torch.Tensor, Metrics]:
        """(scalar loss, metrics) from the log-probs of a batch: `pair_loss` with the metrics TRL logs."""
        out = self.pair_loss(pol, ref)
        m = dict(out.metrics)
        m["rewards/chosen"], m["rewards/rejected"] = out.chosen_rewards, out.rejected_rewards
        m["rewards/accuracies"] = (out.chosen_rewards > out.rejected_rewards).float()
        m["rewards/margins"] = out.chosen_rewards - out.rejected_rewards
        m["logps/chosen"], m["logps/rejected"] = out.chosen_logps.detach(), out.rejected_logps.detach()
        return out.loss, m

    def rewards(self, pol: PairLogps, ref: RefLogps = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The implicit rewards ([B] chosen, [B] rejected) training logs as rewards/chosen and rewards/rejected."""
        out = self.pair_loss(pol, ref)
        return out.chosen_rewards, out.rejected_rewards

    def reference_values(self, ctx: ScoringContext, model, batch) -> Dict[str, torch.Tensor]:
        chosen, rejected = self.reference_sequence_logps(ctx, model, batch)
        return {"ref_chosen_logps": chosen, "ref_rejected_logps": rejected}

