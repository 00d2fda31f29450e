"""Which model a checkpoint's rewards are measured against: the reference its run used (`prefswift eval`).

The same choice training makes (`prefswift.train.setup_model.build_models`), read back from the run's args.json:
  * `--ref_model_type/--ref_model_id_or_path` naming other weights than the policy's start: that separate model;
  * a LoRA adapter: the policy itself with the adapter disabled (its base, with the SFT adapter it started from
    merged in) — no second copy is loaded;
  * a merged adapter or a full fine-tuning result: the weights the run started from (the base model of args.json,
    plus its SFT adapter) — the frozen copy / adapter-disabled base training used.
Reference-free runs (ORPO, SimPO, CPO) have no reference for their rewards; the answer is then still the model they
started from, the natural opponent of a win-rate comparison.

`resolve_named`: the other models eval names by one value (--compare_to, --judge_model).
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional

from pathlib import Path

from ..arguments import RunArgs, section_from_flat
from ..arguments.fields import InferArguments, ModelArguments
from ..errors import ArgumentError
from .checkpoint import ModelSource, resolve_source
from .loader import hub_kwargs, resolve_model


def names_other_weights(m: ModelArguments) -> bool:
    """Whether --ref_model_* names weights other than the policy's starting point (else the reference is that
    starting point itself: the adapter-disabled base for LoRA, the initial weights for full fine-tuning)."""
    separate = bool(m.ref_model_type or m.ref_model_id_or_path)
    same = (m.ref_model_type in (None, m.model_type) and m.ref_model_id_or_path in (None, m.model_id_or_path)
            and not m.adapter_name_or_path)
    return separate and not same


@dataclass
class Reference:
    """`source` is None when the reference is the policy with its LoRA adapter disabled."""

    note: str
    source: Optional[ModelSource] = None

    @property
    def adapter_disabled(self) -> bool:
        return self.source is None


def _separate(policy: ModelSource, model_type, model_id_or_path, pre_adapter, note: str) -> Reference:
    margs = dataclasses.replace(policy.model_args, model_type=model_type, model_id_or_path=model_id_or_path,
                                adapter_name_or_path=None)
    # the reference scores the policy's token ids: it is read with the policy's template (as in training)
    base = resolve_model(model_type, model_id_or_path, **hub_kwargs(margs), template=policy.base.template)
    return Reference(note, ModelSource(base=base, model_args=margs, pre_adapter=pre_adapter))


def resolve_reference(policy: ModelSource, cli: ModelArguments) -> Optional[Reference]:
    """The reference of `policy` (see the module docstring); `cli`: this command's model arguments, whose
    --ref_model_* win over the run's. None: a plain model whose start point nothing records."""
    if cli.ref_model_type or cli.ref_model_id_or_path:
        return _separate(policy, cli.ref_model_type, cli.ref_model_id_or_path, None,
                         "separate model (--ref_model_*)")
    saved = policy.saved
    run = section_from_flat(ModelArguments, saved) if saved else None
    if run is not None and names_other_weights(run):
        return _separate(policy, run.ref_model_type, run.ref_model_id_or_path, None,
                         "separate model (the run's --ref_model_*)")
    if policy.adapter_dir is not None and saved.get("continue_adapter") and saved.get("adapter_name_or_path"):
        sft = saved["adapter_name_or_path"]  # the run trained its SFT adapter further: that adapter was its reference
        return Reference(f"the SFT model (the base + the adapter {sft} the run started from)",
                         ModelSource(base=policy.base, model_args=policy.model_args, pre_adapter=sft))
    if policy.adapter_dir is not None:
        merged = f" (+ the SFT adapter {policy.pre_adapter} merged in)" if policy.pre_adapter else ""
        return Reference(f"the base model with the LoRA adapter disabled{merged}")
    if saved.get("merged_from"):  # a merge-lora output: the base its adapter was trained on
        pre = saved.get("merged_sft_adapter")
        return _separate(policy, None, saved.get("base_model_id_or_path"), pre,
                         "the base model the merged adapter was trained on" + (" (+ its SFT adapter)" if pre else ""))
    if run is not None and saved.get("sft_type") == "full" and (run.model_type or run.model_id_or_path):
        return _separate(policy, run.model_type, run.model_id_or_path, run.adapter_name_or_path,
                         "the weights the full fine-tuning started from")
    return None


# model options a model named by --compare_to / --judge_model takes from the command line (where and how to load it,
# not which weights)
NAMED_MODEL_INHERITS = ("dtype", "hub", "hub_token", "device_map", "use_flash_attention", "check_model_is_latest")


def resolve_named(args: RunArgs, value: str, flag: str = "--compare_to") -> ModelSource:
    """A model named by one value: a checkpoint / run / model dir (as --ckpt_dir), else a model type or hub id."""
    margs = ModelArguments(**{name: getattr(args.model, name) for name in NAMED_MODEL_INHERITS})
    infer = InferArguments()
    if Path(value).expanduser().is_dir():
        infer.ckpt_dir = value
    elif value.startswith((".", "/", "~")):
        raise ArgumentError(f"{flag} {value}: no such directory (give a model or checkpoint dir, a model type from "
                            "`prefswift list models`, or a hub id)")
    else:
        margs.model_id_or_path = value
    explicit = frozenset(n for n in NAMED_MODEL_INHERITS if n in args.explicit) | {"model_id_or_path"}
    return resolve_source(RunArgs(command="eval", model=margs, data=args.data, infer=infer, pref=args.pref,
                                  explicit=explicit))


__all__ = ["Reference", "resolve_reference", "resolve_named", "names_other_weights"]
