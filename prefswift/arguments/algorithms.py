"""Facts about the preference algorithms, read by the argument parser, the training recipe and DeepSpeed checks.

One place answers: which algorithms exist, which need a reference model, which `--loss_type` values each accepts
(and its default), and the default beta. The loss formulas themselves are in `prefswift.train.losses`.
"""
from typing import Dict, Tuple

PAIRED_ALGORITHMS = ("orpo", "dpo", "simpo", "cpo")  # trained on (prompt, chosen, rejected) pairs
ALGORITHMS = PAIRED_ALGORITHMS + ("kto",)            # KTO: unpaired (prompt, completion, desirable?) rows
REFERENCE_FREE = ("orpo", "simpo", "cpo")
WITH_REFERENCE_MODEL = ("dpo", "kto")  # --ref_model_*, --precompute_ref_log_probs

DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
)  # fmt: skip
CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "simpo")
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")  # apo_zero_unpaired has no KL term
# `--loss_type` values each algorithm accepts; the first is its default. ORPO and SimPO have one loss each.
LOSS_TYPES: Dict[str, Tuple[str, ...]] = {
    "dpo": DPO_LOSS_TYPES,
    "cpo": CPO_LOSS_TYPES,
    "orpo": ("orpo",),
    "simpo": ("simpo",),
    "kto": KTO_LOSS_TYPES,
}
DEFAULT_BETA = {"dpo": 0.1, "orpo": 0.1, "cpo": 0.1, "simpo": 2.0, "kto": 0.1}


def needs_reference(algo: str) -> bool:
    """DPO and KTO compare against a reference model; ORPO, SimPO and CPO are reference-free."""
    return algo not in REFERENCE_FREE


def default_loss_type(algo: str) -> str:
    return LOSS_TYPES[algo][0]


def loss_type_help() -> str:
    return "; ".join(f"{algo}: {'|'.join(types)}" for algo, types in LOSS_TYPES.items() if len(types) > 1)
