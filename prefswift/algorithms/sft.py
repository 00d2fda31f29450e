"""SFT: the negative log-likelihood of the assistant's answers, the stage before DPO.

    loss = - sum_{t in T} log pi(y_t | y_<t) / |T|

T: the trained tokens of the batch — every assistant answer with its end-of-turn token (`--loss_on last`: only each
conversation's final answer; prompt-completion rows: only the completion), never the prompt, headers or system text.
One token-level mean over the batch, as TRL's SFTTrainer computes it (`per_token_loss.sum() / num_tokens`); under
DDP the token count is pooled over the ranks, so N processes train as one process with the same global batch.
The log-probs come from the chunked LM head (`prefswift.scoring.logprobs`): no [tokens, vocab] tensor is built.

Metrics: `num_trained_tokens` (per batch) besides the loss.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Tuple

import torch

from ..errors import ArgumentError
from ..scoring.sft import sft_forward
from .base import BatchObjective, ScoringContext


@dataclass
class SFT(BatchObjective):
    loss_on: str = "all"
    beta: float = 1.0          # no beta acts (refused when given); kept for the objective contract
    loss_type: str = "nll"
    algo: ClassVar[str] = "sft"

    @classmethod
    def from_args(cls, pref) -> "SFT":
        return cls(loss_on=pref.loss_on)

    def loss(self, logps_sum: torch.Tensor, count: torch.Tensor, ctx: ScoringContext) -> torch.Tensor:
        if ctx.world_size > 1:  # DDP averages the ranks' gradients: divide by the mean count per rank
            count = ctx.reduce_sum(count.detach().float().reshape(1)).reshape(()) / ctx.world_size
        return -logps_sum / count.clamp(min=1)

    def batch_loss(self, ctx: ScoringContext, model, batch) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        logps_sum, count = sft_forward(model, batch, chunk_size=ctx.chunk_size)
        return self.loss(logps_sum, count, ctx), {"num_trained_tokens": count.detach().float()}

    def reference_values(self, ctx, model, batch) -> Dict[str, torch.Tensor]:
        raise NotImplementedError("SFT has no reference model")

    def check(self, args) -> None:
        unused = [f"--{name}" for name in ("beta", "loss_type", "max_prompt_length") if name in args.explicit]
        if unused:
            raise ArgumentError(f"prefswift sft: {', '.join(unused)} does not act for SFT (its loss is the NLL of the "
                                "answer tokens; a conversation keeps its start when it is longer than --max_length): "
                                "drop it")

    def describe(self) -> str:
        return f"sft (NLL on {'every' if self.loss_on == 'all' else 'the last'} assistant answer)"


__all__ = ["SFT"]
