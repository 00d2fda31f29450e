"""The public doors for plugins (a `--custom_register_path` file, or a `prefswift.plugins` entry point):

    from prefswift.algorithms import register_loss

    @register_loss("my_sigmoid", family="dpo")
    def my_sigmoid(chosen_logratios, rejected_logratios, *, beta, **options):
        return -torch.nn.functional.logsigmoid(beta * (chosen_logratios - rejected_logratios))

A loss of the "dpo" family gets what the built-in sigmoid/ipo/hinge losses get: the per-pair log-ratios
log pi(y|x) - log pi_ref(y|x) of the chosen and rejected responses ([B] each; LD-DPO weighted with --ld_alpha),
`beta`, and as `options` label_smoothing and the response token counts chosen_lengths / rejected_lengths. It
returns the per-pair loss [B]; `prefswift dpo --loss_type my_sigmoid` then trains with it, combined with other loss
types by --loss_weights, weighted by WPO, with the precomputed reference, packing, DDP and eval as any built-in one.

`register_algorithm(spec)` adds a whole algorithm (`prefswift <name>`): an `AlgorithmSpec` whose objective
implements `prefswift.algorithms.base.BatchObjective` (a paired one: subclass `PairObjective`, write `pair_loss`).
"""
import importlib
from dataclasses import dataclass
from typing import Callable, Dict

from ..arguments.algorithms import AlgorithmSpec, add_family_loss, get_spec, register_spec


@dataclass(frozen=True)
class RegisteredLoss:
    name: str
    family: str
    fn: Callable
    label_smoothing: bool  # whether --label_smoothing acts for it (passed as an option either way)


_LOSSES: Dict[str, Dict[str, RegisteredLoss]] = {}


def register_loss(name: str, family: str = "dpo", *, label_smoothing: bool = False, replace: bool = False):
    """Decorator: register `fn(chosen_logratios, rejected_logratios, *, beta, **options) -> per-pair loss` as
    `--loss_type name` of every algorithm of `family`. `label_smoothing=True`: the loss reads
    options["label_smoothing"] (else --label_smoothing is refused with it). A name another loss of the family already
    has is refused (ValueError), as `register_algorithm` refuses a taken name, unless `replace=True`; registering
    the same definition again (a plugin file read twice) is no change."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"register_loss: {name!r} is not a loss type name (letters, digits and _)")

    def decorate(fn: Callable) -> Callable:
        new = RegisteredLoss(name, family, fn, label_smoothing)
        old = _LOSSES.get(family, {}).get(name)
        if old is not None and not replace and not _same_loss(old, new):
            where = getattr(getattr(old.fn, "__code__", None), "co_filename", None) or repr(old.fn)
            raise ValueError(f"loss type {name!r} of the {family} family is already registered (by {where}); give "
                             "the new loss another name, or pass register_loss(..., replace=True)")
        add_family_loss(family, name)
        _LOSSES.setdefault(family, {})[name] = new
        return fn

    return decorate


def _same_loss(a: RegisteredLoss, b: RegisteredLoss) -> bool:
    """The same definition: one function, or the same source compiled again (a plugin module executed twice)."""
    if a.fn is b.fn:
        return a.label_smoothing == b.label_smoothing
    ca, cb = getattr(a.fn, "__code__", None), getattr(b.fn, "__code__", None)
    return (ca is not None and cb is not None and a.label_smoothing == b.label_smoothing
            and a.fn.__qualname__ == b.fn.__qualname__ and ca.co_code == cb.co_code and ca.co_consts == cb.co_consts
            and ca.co_names == cb.co_names)


def registered_loss(family: str, name: str) -> RegisteredLoss:
    return _LOSSES[family][name]


def is_registered_loss(family: str, name: str) -> bool:
    return name in _LOSSES.get(family, {})


def register_algorithm(spec: AlgorithmSpec, *, replace: bool = False) -> AlgorithmSpec:
    """Register a whole algorithm: `prefswift <spec.name>` trains it (with --custom_register_path on the command
    line; args.json keeps the path, so merge-lora, infer, eval and resume of its runs find it again)."""
    if not (isinstance(spec.objective, str) or isinstance(spec.objective, type)):
        raise ValueError(f"AlgorithmSpec {spec.name!r}: objective must be a class or 'module:Class'")
    return register_spec(spec, replace=replace)


def objective_class(algo: str):
    """The objective class of a registered algorithm (a built-in's "module:Class" imported now)."""
    target = get_spec(algo).objective
    if isinstance(target, str):
        module, _, name = target.partition(":")
        target = getattr(importlib.import_module(module), name)
    return target


def build_objective(algo: str, pref):
    """The objective `prefswift <algo>` trains with, from its preference options."""
    return objective_class(algo).from_args(pref)
