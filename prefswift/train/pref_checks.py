"""Checks of the preference options that need several arguments at once (each value's own range, and whether the
option acts for the command at all, were checked when parsed). An option that would not act for the chosen loss
types is refused in one line instead of being ignored (TRL 1.16 ignores most of them silently)."""
from ..arguments import RunArgs
from ..arguments.algorithms import (DPO_SFT, F_DIVERGENCE_LOSS_TYPES, LABEL_SMOOTHING_TYPES, UNWEIGHTABLE_LOSS_TYPES,
                                    split_loss_types)
from ..errors import ArgumentError
from .collate import check_layout
from .kto import KTOObjective, check_kto, objective_for
from .objectives import Objective


def checked_objective(args: RunArgs, algo: str):
    """The objective the command trains with, after every check that needs several arguments at once: the batch
    layout, then KTO's batch size or the DPO-family options. One function for the run and --dry_run alike."""
    check_layout(args)
    objective = objective_for(algo, args.pref)
    if isinstance(objective, KTOObjective):
        check_kto(objective, args.train.batch_size)
    else:
        check_preference_options(args, algo, objective)
    return objective


def check_preference_options(args: RunArgs, algo: str, objective: Objective) -> None:
    pref, explicit = args.pref, args.explicit
    types = split_loss_types(objective.loss_type)
    if pref.label_smoothing and not set(types) & set(LABEL_SMOOTHING_TYPES.get(algo, ())):
        raise ArgumentError(f"--label_smoothing {pref.label_smoothing} has no effect on `prefswift {algo}` with "
                            f"--loss_type {objective.loss_type}: it acts with "
                            f"{', '.join(LABEL_SMOOTHING_TYPES[algo])}; drop it or change the loss type")
    if algo != "dpo":
        return
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
    _check_reference_options(args)


def _check_reference_options(args: RunArgs) -> None:
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


__all__ = ["check_preference_options"]
