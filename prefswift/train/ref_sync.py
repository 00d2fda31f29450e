"""TR-DPO (`--sync_ref_model`): every --ref_model_sync_steps optimizer steps the reference becomes
a * policy + (1 - a) * reference (a = --ref_model_mixup_alpha), as TRL 1.16's SyncRefModelCallback does.

Full fine-tuning only (with LoRA the reference is the adapter-disabled base, there is no second model to mix into) and
not with precomputed reference log-probs (they would go stale); both are refused when the arguments are checked.
"""
import torch
from transformers import TrainerCallback

from ..errors import ArgumentError
from ..scoring.forward import unwrap_wrappers


class SyncReferenceCallback(TrainerCallback):
    def __init__(self, reference, policy, alpha: float, every: int):
        if [n for n, _ in reference.named_parameters()] != [n for n, _ in unwrap_wrappers(policy).named_parameters()]:
            raise ArgumentError("--sync_ref_model mixes the policy into the reference parameter by parameter: the "
                                "reference must have the policy's architecture (drop --ref_model_*, then the "
                                "reference is a copy of the starting weights)")
        self.reference = reference
        self.alpha = alpha
        self.every = every

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            mix_into(self.reference, unwrap_wrappers(model), self.alpha)


@torch.no_grad()
def mix_into(reference, policy, alpha: float) -> None:
    """reference <- alpha * policy + (1 - alpha) * reference, parameter by parameter (same architecture)."""
    for target, source in zip(reference.parameters(), policy.parameters(), strict=True):
        target.mul_(1.0 - alpha).add_(source.to(device=target.device, dtype=target.dtype), alpha=alpha)


__all__ = ["SyncReferenceCallback", "mix_into"]
