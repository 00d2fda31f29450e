"""Build the policy (LoRA or full) and, for DPO, the reference the arguments ask for."""
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ArgumentError
from ..models.loader import ResolvedModel, hub_kwargs, load_model, resolve_model
from ..models.precision import training_precision
from ..models.reference import names_other_weights
from ..models.lora import (add_lora, continue_adapter, count_parameters, enable_gradient_checkpointing,
                           frozen_copy, load_reference_adapter, merge_adapter_into_base)
from ..registry.models import default_lora_targets

logger = logging.getLogger("prefswift")


@dataclass
class Models:
    policy: object
    reference: Optional[object]   # None: adapter-disabled policy (LoRA), policy itself (precomputed) or not needed
    resolved: ResolvedModel
    note: str                     # one line describing the reference, for the run summary
    reference_dir: Optional[Path] = None  # the separate reference's weights (None: the policy's starting point)


def build_models(args, resolved: ResolvedModel, *, needs_reference: bool, device_map=None, max_memory=None,
                 head: str = "causal_lm", pad_token_id: Optional[int] = None) -> Models:
    """head: the spec's (`AlgorithmSpec.head`); "sequence_classification" loads a one-label classifier whose config
    pads with `pad_token_id` (the tokenizer's), and its LoRA adapter trains and saves the score head whole."""
    m, tuning, pref = args.model, args.tuning, args.pref
    if m.use_flash_attention and pref.prefix_sharing:
        # flash-attn kernels take no 4D mask; prefix-shared SDPA was 1.33x faster with 35% less memory than
        # flash-attn on concatenated rows (H200, Qwen2.5-1.5B shapes, bf16)
        logger.info("--use_flash_attention: prefix sharing runs on SDPA (faster here than flash-attn on separate "
                    "chosen/rejected rows); add --prefix_sharing false to use flash_attention_2")
        m = dataclasses.replace(m, use_flash_attention=False)
    quantized = bool(m.quantization_bit)
    precision = training_precision(m.dtype, full_finetune=tuning.sft_type == "full",
                                   deepspeed=bool(args.train.deepspeed))
    policy = load_model(resolved.path, m, spec=resolved.spec, device_map=device_map, max_memory=max_memory,
                        dtype=precision.weights, head=head, pad_token_id=pad_token_id)
    logger.info("precision: %s", precision.describe())
    continued = bool(m.adapter_name_or_path and m.continue_adapter)
    if m.adapter_name_or_path and not continued:  # (not with 4/8-bit loading: refused by prefswift.train.validation)
        policy = merge_adapter_into_base(policy, m.adapter_name_or_path)
        logger.info("merged the adapter %s into the base model (the start point)",
                    m.adapter_name_or_path)
    sft = f" + the SFT adapter {m.adapter_name_or_path} merged" if m.adapter_name_or_path and not continued else ""
    separate_ref = bool(m.ref_model_type or m.ref_model_id_or_path)
    reference, note, reference_dir = None, "none (reference-free objective)", None
    if needs_reference:
        if separate_ref and not names_other_weights(m) and tuning.sft_type == "lora":
            note = f"the base model{sft} with the LoRA adapter disabled (= --ref_model_*, no second copy)"
        elif separate_ref:
            ref_resolved = resolve_model(m.ref_model_type, m.ref_model_id_or_path, **hub_kwargs(m),
                                         template=resolved.template)  # its template is never used
            check_same_tokenizer(resolved.path, ref_resolved.path)
            reference = load_model(ref_resolved.path, m, spec=ref_resolved.spec, device_map=device_map,
                                   max_memory=max_memory, trainable=False)
            note, reference_dir = f"separate model {ref_resolved.path}", ref_resolved.path
            if m.ref_model == "base" and m.adapter_name_or_path:
                note = f"the bare base model {ref_resolved.path}, loaded separately (--ref_model base)"
        elif continued:
            note = f"the SFT model: a frozen copy of the adapter {m.adapter_name_or_path} (loaded as adapter \"ref\")"
        elif tuning.sft_type == "lora":
            note = (f"the SFT model (the base{sft}) with the new LoRA adapter disabled (no second copy)" if sft
                    else "the base model with the LoRA adapter disabled (no second copy)")
        elif pref.precompute_ref_log_probs:
            note = "the initial weights, log-probs precomputed before training (no second copy)"
        else:
            reference = frozen_copy(policy)
            if reference.dtype != precision.compute:  # the reference never trains: no fp32 master copy
                reference.to(precision.compute)
            note = "a frozen copy of the initial weights" + (f" (the base{sft})" if sft else "")
        if pref.precompute_ref_log_probs and reference is None:
            note += "; precomputed once before training"
    if continued:
        policy = continue_adapter(policy, m.adapter_name_or_path, reference=needs_reference)
    elif tuning.sft_type == "lora":
        default = resolved.spec.lora_target_modules if resolved.spec else default_lora_targets(policy.config)
        policy = add_lora(policy, tuning, default, quantized=quantized,
                          task_type="SEQ_CLS" if head == "sequence_classification" else "CAUSAL_LM")
        if needs_reference and m.ref_adapter_name_or_path:
            load_reference_adapter(policy, m.ref_adapter_name_or_path)
            note = f"the base model with the adapter {m.ref_adapter_name_or_path} (loaded as adapter \"ref\")"
            note += "; precomputed once before training" if pref.precompute_ref_log_probs else ""
    if tuning.gradient_checkpointing:
        enable_gradient_checkpointing(policy, is_peft=tuning.sft_type == "lora")
    trainable, total = count_parameters(policy)
    logger.info("trainable parameters: %s of %s (%.4f%%)", f"{trainable:,}", f"{total:,}",
                100 * trainable / max(total, 1))
    return Models(policy, reference, resolved, note, reference_dir)


def check_same_tokenizer(policy_dir, reference_dir, what: str = "the reference model") -> None:
    """A separate reference (or a model eval compares with) scores the policy's token ids: it must share the
    policy's vocabulary."""
    from ..models.loader import load_tokenizer

    policy, reference = load_tokenizer(policy_dir), load_tokenizer(reference_dir)
    if policy.get_vocab() != reference.get_vocab():
        raise ArgumentError(f"{what} {reference_dir} has another tokenizer than the policy "
                            f"{policy_dir} ({len(reference)} vs {len(policy)} tokens): its log-probs of the policy's "
                            "token ids would be meaningless — use a reference of the same model family")
