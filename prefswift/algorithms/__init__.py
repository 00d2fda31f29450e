"""Preference algorithms: one module each (dpo, orpo, simpo, cpo, kto; `reward`: rm's reward model), their shared
contract (`base`) and the doors for plugins (`register_loss`, `register_algorithm`; see `registry` and
examples/plugins/).

The facts about each algorithm (name, data kind, reference, loss types, options, defaults) are its `AlgorithmSpec`
in `prefswift.arguments.algorithms`, read before torch loads; the code that trains it is here.
"""
from ..arguments.algorithms import AlgorithmSpec, algorithm_names, get_spec
from .base import BatchObjective, LossOutput, PairLoss, PairObjective, ScoringContext
from .registry import build_objective, objective_class, register_algorithm, register_loss

__all__ = ["AlgorithmSpec", "BatchObjective", "PairObjective", "PairLoss", "LossOutput", "ScoringContext",
           "register_loss", "register_algorithm", "build_objective", "objective_class", "algorithm_names",
           "get_spec"]
