"""The algorithm registry: what every preference algorithm is, read by the parser, --help, args.json, resume, eval,
lint and preview. One `AlgorithmSpec` per algorithm; the code that trains it lives in `prefswift.algorithms.<name>`.

The specs hold facts only (no torch), so a command line is parsed and `--help` answers before any heavy library
loads. A built-in spec names its objective as "module:Class" (imported when training starts, as transformers' auto
classes map names to modules); a plugin (`--custom_register_path`) passes the class itself through
`prefswift.algorithms.register_algorithm`, or adds a loss to a family with `prefswift.algorithms.register_loss`.

Options that act for some algorithms only say so with a group in their `commands` (`arguments.fields.arg`):
"@train" (every training algorithm), "@paired" (those trained on pairs), "@reference" (those with a reference model)
and "@settings" (the algorithms whose spec lists the option in `settings`).
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from ..errors import ArgumentError, did_you_mean

DATA_KINDS = ("paired", "unpaired", "sft")  # prompt-only rows (online algorithms): no pipeline or objective yet
# which model an algorithm trains: a causal LM (every policy-optimisation algorithm) or a sequence classifier with
# a scalar head (a reward model: AutoModelForSequenceClassification, num_labels=1)
HEADS = ("causal_lm", "sequence_classification")


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm: `prefswift <name>` trains it.

    data: paired (prompt, chosen, rejected), unpaired (prompt, completion, desirable?) or sft (whole conversations:
        `prefswift.data.sft`) rows ("prompt-only" is refused: nothing trains on prompts alone yet).
    needs_reference: compares against a reference model (adapter-disabled base, separate or precomputed).
    loss_types: the `--loss_type` values it accepts, the first its default; `loss_family` names the family a
        plugin's `register_loss(name, family=...)` adds to; `combines_losses`: several comma-separated types with
        `--loss_weights` (DPO).
    settings: the options of its own it reads (field names, e.g. "rpo_alpha"): they act for it and are refused by
        the algorithms that do not list them.
    defaults: its own defaults of shared options (e.g. {"beta": 0.1}, KTO's {"batch_size": 8}).
    objective: the objective class ("module:Class" or the class), built with `from_args(spec, pref)`; it
        implements `prefswift.algorithms.base.BatchObjective`.
    head: the model it trains, loads, merges and evaluates: "causal_lm" (AutoModelForCausalLM) or
        "sequence_classification" (AutoModelForSequenceClassification with one label: `prefswift rm`).
    """

    name: str
    summary: str
    objective: Union[str, Callable[..., Any]]
    data: str = "paired"
    needs_reference: bool = False
    loss_types: Tuple[str, ...] = ()
    loss_family: Optional[str] = None
    combines_losses: bool = False
    settings: Tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    head: str = "causal_lm"

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"AlgorithmSpec {self.name!r}: head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.data == "prompt-only":
            raise ValueError(f"AlgorithmSpec {self.name!r}: data 'prompt-only' is not implemented (no data pipeline, "
                             "collator or objective trains on prompts alone); use 'paired' or 'unpaired'")
        if self.data not in DATA_KINDS:
            raise ValueError(f"AlgorithmSpec {self.name!r}: data must be one of {', '.join(DATA_KINDS)}, "
                             f"got {self.data!r}")
        if not self.loss_types:
            raise ValueError(f"AlgorithmSpec {self.name!r}: give at least one loss type (its default)")
        if "beta" not in self.defaults:
            raise ValueError(f"AlgorithmSpec {self.name!r}: defaults needs a 'beta'")

    @property
    def paired(self) -> bool:
        return self.data == "paired"


# DPO loss types (TRL 1.16 DPOTrainer); "sft" is the chosen NLL as a loss of its own (--rpo_alpha adds it weighted)
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
)  # fmt: skip
DPO_SFT = "sft"
CPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "simpo")
KTO_LOSS_TYPES = ("kto", "apo_zero_unpaired")  # apo_zero_unpaired has no KL term
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
F_DIVERGENCE_SHORT = {"js": "js_divergence", "alpha": "alpha_divergence"}
DPO_SETTINGS = ("loss_weights", "label_smoothing", "rpo_alpha", "discopop_tau", "ld_alpha", "use_weighting",
                "f_divergence_type", "f_alpha_divergence_coef", "sync_ref_model", "ref_model_mixup_alpha",
                "ref_model_sync_steps", "ref_adapter_name_or_path")

BUILTIN = (
    AlgorithmSpec("orpo", "Train with ORPO (reference-free: NLL + odds-ratio term).", "prefswift.algorithms.orpo:ORPO",
                  loss_types=("orpo",), settings=("orpo_nll_scope",), defaults={"beta": 0.1}),
    AlgorithmSpec("dpo", "Train with DPO (reference: adapter-disabled base, a separate model, or precomputed).",
                  "prefswift.algorithms.dpo:DPO", needs_reference=True, loss_types=DPO_LOSS_TYPES + (DPO_SFT,),
                  loss_family="dpo", combines_losses=True, settings=DPO_SETTINGS, defaults={"beta": 0.1}),
    AlgorithmSpec("simpo", "Train with SimPO (reference-free, length-normalised, target margin).",
                  "prefswift.algorithms.simpo:SimPO", loss_types=("simpo",),
                  settings=("label_smoothing", "simpo_gamma", "cpo_alpha"), defaults={"beta": 2.0}),
    AlgorithmSpec("cpo", "Train with CPO (reference-free, with chosen NLL).", "prefswift.algorithms.cpo:CPO",
                  loss_types=CPO_LOSS_TYPES, settings=("label_smoothing", "simpo_gamma", "cpo_alpha"),
                  defaults={"beta": 0.1}),
    AlgorithmSpec("kto", "Train with KTO on unpaired rows (prompt, completion, desirable or not) or on pairs split "
                  "into both.", "prefswift.algorithms.kto:KTO", data="unpaired", needs_reference=True,
                  loss_types=KTO_LOSS_TYPES, settings=("desirable_weight", "undesirable_weight"),
                  # the KL baseline comes from the other rows of the batch (TRL's KTOConfig: 8 per device)
                  defaults={"beta": 0.1, "batch_size": 8}),
    AlgorithmSpec("rm", "Train a Bradley-Terry reward model (a scalar head on the last token; TRL's RewardTrainer "
                  "loss, optional reward centering).", "prefswift.algorithms.reward:RewardModel",
                  loss_types=("bradley_terry",), settings=("center_rewards_coefficient",),
                  # beta does not act (refused by the objective); a sequence classifier reads one row per sequence
                  defaults={"beta": 1.0, "prefix_sharing": False, "packing": False},
                  head="sequence_classification"),
    AlgorithmSpec("sft", "Supervised fine-tuning: the NLL of the assistant's answers (messages, ShareGPT, Alpaca or "
                  "prompt-completion rows); the stage before DPO (`prefswift dpo --adapter_name_or_path RUN`).",
                  "prefswift.algorithms.sft:SFT", data="sft", loss_types=("nll",), settings=("loss_on",),
                  # beta does not act (refused by the objective); one sequence per conversation, no pair layout
                  defaults={"beta": 1.0, "prefix_sharing": False}),
)

_SPECS: Dict[str, AlgorithmSpec] = {spec.name: spec for spec in BUILTIN}
_FAMILY_LOSSES: Dict[str, List[str]] = {}   # family -> loss names plugins registered
# commands that are not algorithms: a plugin algorithm may not take their names
RESERVED = ("list", "preview", "infer", "eval", "merge-lora", "lint", "export", "sample")


def register_spec(spec: AlgorithmSpec, *, replace: bool = False) -> AlgorithmSpec:
    """Add an algorithm (`prefswift.algorithms.register_algorithm` is the public door)."""
    if spec.name in RESERVED:
        raise ValueError(f"algorithm name {spec.name!r} is a prefswift command; choose another")
    if spec.name in _SPECS and not replace and _SPECS[spec.name] != spec:
        raise ValueError(f"algorithm {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


def add_family_loss(family: str, name: str) -> None:
    """Make `--loss_type name` acceptable for every algorithm of `family` (the loss itself is registered with
    `prefswift.algorithms.register_loss`)."""
    if not any(s.loss_family == family for s in _SPECS.values()):
        families = sorted({s.loss_family for s in _SPECS.values() if s.loss_family})
        raise ValueError(f"no algorithm has the loss family {family!r} (families: {', '.join(families)})")
    builtin = {t for s in _SPECS.values() if s.loss_family == family for t in s.loss_types}
    if name in builtin:
        raise ValueError(f"loss type {name!r} is built into the {family} family; give the new loss another name")
    if name not in _FAMILY_LOSSES.setdefault(family, []):
        _FAMILY_LOSSES[family].append(name)


def algorithm_names() -> Tuple[str, ...]:
    return tuple(_SPECS)


def is_algorithm(command: str) -> bool:
    return command in _SPECS


def get_spec(name: str) -> AlgorithmSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ArgumentError(f"unknown algorithm {name!r}{did_you_mean(name, _SPECS)} — registered: "
                            f"{', '.join(_SPECS)} (a plugin's algorithm needs its --custom_register_path)") from None


def plugin_loss_types(algo: str) -> Tuple[str, ...]:
    family = _SPECS[algo].loss_family
    return tuple(_FAMILY_LOSSES.get(family, ())) if family else ()


def loss_types(algo: str) -> Tuple[str, ...]:
    """The `--loss_type` values `algo` accepts (built-in, then plugins'); the first is its default."""
    return _SPECS[algo].loss_types + plugin_loss_types(algo)


def needs_reference(algo: str) -> bool:
    """DPO and KTO compare against a reference model; ORPO, SimPO and CPO are reference-free."""
    return _SPECS[algo].needs_reference


def model_head(command: Optional[str]) -> str:
    """The head the run of `command` (args.json's "command") trained: its spec's, "causal_lm" for anything else."""
    spec = _SPECS.get(command) if command else None
    return spec.head if spec else "causal_lm"


def default_loss_type(algo: str) -> str:
    return _SPECS[algo].loss_types[0]


def default_beta(algo: str) -> Optional[float]:
    spec = _SPECS.get(algo)
    return spec.defaults["beta"] if spec else None


# defaults of commands that are not algorithms: `sample` draws K different completions, so it samples at full
# temperature from the whole distribution unless told otherwise
COMMAND_DEFAULTS: Dict[str, Dict[str, Any]] = {"sample": {"temperature": 1.0, "top_p": 1.0, "top_k": 0}}


def command_default(command: str, name: str, fallback: Any) -> Any:
    """A field's default for `command`: the algorithm's own (spec.defaults), a command's own (COMMAND_DEFAULTS) or
    the shared one."""
    spec = _SPECS.get(command)
    if spec is None:
        return COMMAND_DEFAULTS.get(command, {}).get(name, fallback)
    return spec.defaults.get(name, fallback) if name != "beta" else fallback


def split_loss_types(loss_type: Optional[str]) -> List[str]:
    """`--loss_type sigmoid,sft` -> ["sigmoid", "sft"] (DPO combines several, MPO-style); None -> []."""
    return [t.strip() for t in str(loss_type).split(",") if t.strip()] if loss_type else []


def group(name: str, option: str = "") -> Tuple[str, ...]:
    """The algorithms of a `commands` group: @train, @paired, @reference, or @settings (those listing `option`)."""
    if name == "@train":
        return tuple(_SPECS)
    if name == "@paired":
        return tuple(n for n, s in _SPECS.items() if s.paired)
    if name == "@reference":
        return tuple(n for n, s in _SPECS.items() if s.needs_reference)
    if name == "@settings":
        return tuple(n for n, s in _SPECS.items() if option in s.settings)
    raise ValueError(f"unknown command group {name!r}")


def expand_commands(commands: Optional[Tuple[str, ...]], option: str) -> Optional[Tuple[str, ...]]:
    """A field's `commands` with its groups replaced by today's algorithm names (None = every command)."""
    if commands is None:
        return None
    out: List[str] = []
    for c in commands:
        for name in (group(c, option) if c.startswith("@") else (c,)):
            if name not in out:
                out.append(name)
    return tuple(out)


def loss_type_help() -> str:
    return "; ".join(f"{algo}: {'|'.join(loss_types(algo))}" for algo in _SPECS if len(loss_types(algo)) > 1)
