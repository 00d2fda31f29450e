"""Facts about the preference algorithms, read by the argument parser, the training recipe and DeepSpeed checks.

One place answers: which algorithms exist, which need a reference model, which `--loss_type` values each accepts
(and its default), the default beta and chosen-NLL weight, and which DPO loss types each DPO option acts for (as in
TRL 1.16's DPOTrainer). The loss formulas themselves are in `prefswift.train.losses`.
"""
from typing import Dict, List, Optional, Tuple

PAIRED_ALGORITHMS = ("orpo", "dpo", "simpo", "cpo")  # trained on (prompt, chosen, rejected) pairs
ALGORITHMS = PAIRED_ALGORITHMS + ("kto",)            # KTO: unpaired (prompt, completion, desirable?) rows
REFERENCE_FREE = ("orpo", "simpo", "cpo")
WITH_REFERENCE_MODEL = ("dpo", "kto")  # --ref_model_*, --precompute_ref_log_probs

DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
)  # fmt: skip
CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "simpo")
# DPO's "sft": the chosen NLL as a loss of its own (TRL 1.16's loss_type "sft"; --rpo_alpha adds it with a weight)
DPO_SFT = "sft"
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")  # apo_zero_unpaired has no KL term
# `--loss_type` values each algorithm accepts; the first is its default. ORPO and SimPO have one loss each.
LOSS_TYPES: Dict[str, Tuple[str, ...]] = {
    "dpo": DPO_LOSS_TYPES + (DPO_SFT,),
    "cpo": CPO_LOSS_TYPES,
    "orpo": ("orpo",),
    "simpo": ("simpo",),
    "kto": KTO_LOSS_TYPES,
}
DEFAULT_BETA = {"dpo": 0.1, "orpo": 0.1, "cpo": 0.1, "simpo": 2.0, "kto": 0.1}
# --cpo_alpha default: CPO adds the chosen NLL (TRL's CPOTrainer), SimPO is the paper's loss without it
DEFAULT_CPO_ALPHA = {"cpo": 1.0, "simpo": 0.0}

# DPO loss types that read each option (TRL 1.16 DPOTrainer._compute_loss)
LABEL_SMOOTHING_TYPES = {"dpo": ("robust", "exo_pair", "aot", "aot_unpaired"), "cpo": ("sigmoid", "simpo"),
                         "simpo": ("simpo",)}
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
F_DIVERGENCE_SHORT = {"js": "js_divergence", "alpha": "alpha_divergence"}
F_DIVERGENCE_LOSS_TYPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust", "discopop", DPO_SFT)
UNWEIGHTABLE_LOSS_TYPES = ("aot", "aot_unpaired")  # --use_weighting: batch-sorted losses have no per-pair weight


def needs_reference(algo: str) -> bool:
    """DPO and KTO compare against a reference model; ORPO, SimPO and CPO are reference-free."""
    return algo not in REFERENCE_FREE


def default_loss_type(algo: str) -> str:
    return LOSS_TYPES[algo][0]


def split_loss_types(loss_type: Optional[str]) -> List[str]:
    """`--loss_type sigmoid,sft` -> ["sigmoid", "sft"] (DPO combines several, MPO-style); None -> []."""
    return [t.strip() for t in str(loss_type).split(",") if t.strip()] if loss_type else []


def loss_type_help() -> str:
    return "; ".join(f"{algo}: {'|'.join(types)}" for algo, types in LOSS_TYPES.items() if len(types) > 1)
