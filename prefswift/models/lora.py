"""LoRA set-up: which modules get adapters, and wrapping a model with peft."""
import logging
from contextlib import contextmanager, nullcontext
from typing import List, Optional, Sequence

from torch import nn

from ..errors import ArgumentError

logger = logging.getLogger("prefswift")


def _is_linear(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    # bitsandbytes' quantized linears (Linear4bit, Linear8bitLt) subclass nn.Linear in current releases; match
    # by name too so older ones are found without importing bitsandbytes here.
    return type(module).__name__ in ("Linear4bit", "Linear8bitLt")


def all_linear_names(model: nn.Module) -> List[str]:
    """Leaf names of every linear layer except the output head (what `--lora_target_modules ALL` means)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for name, module in model.named_modules():
        if module is head or not _is_linear(module):
            continue
        names.add(name.rsplit(".", 1)[-1])
    names.discard("lm_head")
    names.discard("score")  # a reward model's head: trained whole (modules_to_save), not through LoRA
    return sorted(names)


def resolve_target_modules(model: nn.Module, requested: Sequence[str], default: Sequence[str]) -> List[str]:
    requested = list(requested) or ["DEFAULT"]
    out: List[str] = []
    for item in requested:
        key = item.upper()
        if key in ("ALL", "ALL-LINEAR", "ALL_LINEAR"):  # ms-swift's ALL, PEFT's / TRL's all-linear
            out.extend(all_linear_names(model))
        elif key in ("DEFAULT", "AUTO"):
            out.extend(default)
        else:
            out.append(item)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in out if m not in present]
    if missing:
        raise ArgumentError(f"--lora_target_modules: {', '.join(missing)} not found in the model; "
                            f"its linear layers are {', '.join(all_linear_names(model))} (or use ALL)")
    return sorted(set(out))


def add_lora(model: nn.Module, tuning, default_targets: Sequence[str], *, quantized: bool = False,
             task_type: str = "CAUSAL_LM"):
    """A LoRA adapter on `model`. task_type "SEQ_CLS" (a reward model): peft trains and saves the classifier head
    (`score`) whole, as modules_to_save, so the adapter loads with plain PEFT on AutoModelForSequenceClassification."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if tuning.tuner_backend == "swift":
        logger.info("--tuner_backend swift: prefswift trains LoRA with peft (same weights and format)")
    if quantized:
        # checkpointing is switched on by build_models (activation_checkpointing_enable, non-reentrant); peft's own
        # switch calls transformers' deprecated gradient_checkpointing_enable (a FutureWarning on every QLoRA run)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = resolve_target_modules(model, tuning.lora_target_modules, default_targets)
    config = LoraConfig(r=tuning.lora_rank, lora_alpha=tuning.lora_alpha, lora_dropout=tuning.lora_dropout_p,
                        target_modules=targets, modules_to_save=tuning.lora_modules_to_save or None,
                        use_rslora=tuning.use_rslora, task_type=task_type)
    return get_peft_model(model, config)


def peft_from_pretrained(model: nn.Module, adapter_dir: str, **kwargs):
    """`PeftModel.from_pretrained`, without the FutureWarning peft causes by reading a property transformers 5
    deprecated (`is_gradient_checkpointing`): not the user's concern, and not theirs to fix."""
    import warnings

    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return PeftModel.from_pretrained(model, adapter_dir, **kwargs)


def merge_adapter_into_base(model: nn.Module, adapter_dir: str) -> nn.Module:
    """Fold an existing (e.g. SFT) adapter into the base weights; the result is a plain model."""
    try:
        peft_model = peft_from_pretrained(model, adapter_dir)
    except (ValueError, OSError) as e:
        raise ArgumentError(f"--adapter_name_or_path {adapter_dir}: not a LoRA adapter dir "
                            f"({str(e).splitlines()[0][:160]})") from None
    return peft_model.merge_and_unload()


def continue_adapter(model: nn.Module, adapter_dir: str, *, reference: bool) -> nn.Module:
    """--continue_adapter: the (SFT) adapter itself as the trained adapter; with `reference`, a frozen copy of it next
    to it as REF_ADAPTER (`reference_weights` switches to it), so the reference is the SFT model."""
    try:
        peft_model = peft_from_pretrained(model, adapter_dir, is_trainable=True)
    except (ValueError, OSError) as e:
        raise ArgumentError(f"--adapter_name_or_path {adapter_dir}: not a LoRA adapter dir "
                            f"({str(e).splitlines()[0][:160]})") from None
    if reference:
        load_reference_adapter(peft_model, adapter_dir)
    return peft_model


REF_ADAPTER = "ref"  # the reference adapter's name in the PeftModel (TRL 1.16's name for it)


def load_reference_adapter(peft_model, adapter_dir: str) -> None:
    """--ref_adapter_name_or_path: load a frozen second adapter named REF_ADAPTER next to the trained one (public
    peft API); `reference_weights` switches to it for the reference forward."""
    try:
        peft_model.load_adapter(adapter_dir, adapter_name=REF_ADAPTER, is_trainable=False)
    except (ValueError, OSError, KeyError, RuntimeError) as e:
        raise ArgumentError(f"--ref_adapter_name_or_path {adapter_dir}: cannot load it as a LoRA adapter of this "
                            f"model ({str(e).splitlines()[0][:160]})") from None


def reference_weights(policy):
    """Context in which `policy` computes the reference: its REF_ADAPTER when loaded, else the base model with the
    adapters disabled (LoRA), else the policy itself."""
    if REF_ADAPTER in (getattr(policy, "peft_config", None) or {}):
        return _active_adapter(policy, REF_ADAPTER)
    return policy.disable_adapter() if hasattr(policy, "disable_adapter") else nullcontext()


@contextmanager
def _active_adapter(peft_model, name: str):
    previous = peft_model.active_adapter
    peft_model.set_adapter(name, inference_mode=True)
    try:
        yield
    finally:
        peft_model.set_adapter(previous)  # trainable again (peft re-enables the gradients of the active adapter)


def parameter_size(param) -> int:
    """Elements of a parameter; under ZeRO-3 `numel()` is this rank's empty placeholder (0) and DeepSpeed keeps
    the full size in `ds_numel`."""
    return getattr(param, "ds_numel", None) or param.numel()


def count_parameters(model: nn.Module):
    trainable = sum(parameter_size(p) for p in model.parameters() if p.requires_grad)
    total = sum(parameter_size(p) for p in model.parameters())
    return trainable, total


def enable_gradient_checkpointing(model: nn.Module, is_peft: bool) -> None:
    # transformers >= 5.23 calls it activation checkpointing; older 5.x releases only have the old name
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "config"):
        model.config.use_cache = False
    if is_peft and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


def frozen_copy(model: nn.Module) -> Optional[nn.Module]:
    import copy

    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


__all__ = ["add_lora", "all_linear_names", "resolve_target_modules", "merge_adapter_into_base", "count_parameters",
           "enable_gradient_checkpointing", "frozen_copy", "REF_ADAPTER", "load_reference_adapter",
           "reference_weights"]
