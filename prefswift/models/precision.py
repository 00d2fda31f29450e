"""Weights dtype and autocast for training: the one place that decides both.

LoRA / QLoRA: the frozen base is stored in --dtype (AUTO: bf16 where the GPU supports it, fp16 on older GPUs, fp32 on
CPU) and the Trainer's autocast runs in that half type on GPU; the adapter weights stay fp32 (peft).
Full fine-tuning without DeepSpeed: an optimizer stepping bf16 or fp16 weights loses most small updates (at a DPO
learning rate of 5e-7 about 1% of a 4096x4096 matrix's bf16 entries change at all in 10 steps) and fp16 weights
cannot be unscaled by the AMP grad scaler. So the trained weights stay fp32 ("master weights") and the half type is
used as autocast. DeepSpeed keeps fp32 master weights in its optimizer itself.
"""
from dataclasses import dataclass

import torch

from ..errors import ArgumentError
from .loader import default_device, resolve_dtype

HALF = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class Precision:
    weights: torch.dtype   # dtype the policy is loaded in
    compute: torch.dtype   # --dtype resolved: what the matmuls run in (and what frozen references are stored in)
    bf16: bool             # Trainer autocast in bf16
    fp16: bool             # Trainer autocast in fp16 (with a grad scaler)

    def describe(self) -> str:
        amp = "bf16 autocast" if self.bf16 else "fp16 autocast" if self.fp16 else "no autocast"
        return f"weights {str(self.weights).replace('torch.', '')}, {amp}"


def training_precision(dtype: str, *, full_finetune: bool, deepspeed: bool) -> Precision:
    device = default_device()
    resolved = resolve_dtype(dtype, device)
    master = full_finetune and not deepspeed and resolved in HALF
    if device == "cuda":
        return Precision(torch.float32 if master else resolved, resolved, resolved == torch.bfloat16,
                         resolved == torch.float16)
    if master and resolved == torch.float16:
        raise ArgumentError("--dtype fp16 with --sft_type full needs a CUDA GPU (fp16 mixed precision); on CPU use "
                            "--dtype bf16 or fp32")
    if master:  # CPU: fp32 master weights with bf16 autocast
        return Precision(torch.float32, resolved, True, False)
    return Precision(resolved, resolved, False, False)
