"""Parse command lines and config files into the argument dataclasses.

Accepted: `--flag value`, `--flag=value`, hyphens or underscores, any alias of a field, value-style booleans
(`--flag true/True/1/yes`, bare `--flag` = true), list fields with several values or commas,
`--config f.yaml|f.json` whose keys are the same fields (the command line wins). Unknown flags are an error
with a "did you mean" suggestion.
"""
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

from ..errors import ArgumentError, did_you_mean
from .algorithms import (COMMAND_DEFAULTS, expand_commands, get_spec, is_algorithm, loss_types, split_loss_types,
                         algorithm_names)
from .fields import SECTIONS, field_default, iter_fields
from .values import base_type, convert_value, parse_bool


@dataclasses.dataclass
class FieldInfo:
    section: str
    field: dataclasses.Field
    value: Any = None  # fixed value for value_aliases (e.g. use_4bit -> 4)

    @property
    def name(self):
        return self.field.name


def applies(f: dataclasses.Field, command: str) -> bool:
    """Whether a field acts for `command` (`arg(commands=...)`, groups such as "@paired" resolved through the
    algorithm registry; no list = every command that has its section)."""
    commands = acting_commands(f)
    return not command or commands is None or command in commands


def acting_commands(f: dataclasses.Field):
    """The commands a field acts for, today (plugins may have registered algorithms); None = all."""
    return expand_commands(f.metadata.get("commands"), f.name)


def build_index(sections: Iterable[str], command: str = "") -> Dict[str, FieldInfo]:
    """Map every accepted spelling (canonical name, aliases, value aliases) to its field, for the fields that act
    for `command`."""
    index: Dict[str, FieldInfo] = {}
    for section, f in iter_fields(sections):
        if not applies(f, command):
            continue
        index[f.name] = FieldInfo(section, f)
        for alias in f.metadata.get("aliases", ()):
            index[alias] = FieldInfo(section, f)
        for alias, value in f.metadata.get("value_aliases", {}).items():
            index[alias] = FieldInfo(section, f, value)
    return index


def convert(info: FieldInfo, flag: str, raw):
    """Turn a raw CLI string (or YAML value) into the field's type, checking choices and bounds."""
    if info.value is not None:  # value alias: --use_4bit True -> quantization_bit=4
        return info.value if parse_bool(flag, raw) else field_default(info.field)
    return convert_value(info.field, flag, raw)


def _suggest(name: str, index: Dict[str, FieldInfo]) -> str:
    return did_you_mean(name, index, cutoff=0.6, show=lambda k: "--" + k)


def split_argv(argv: List[str]) -> List[Tuple[str, List[str]]]:
    """[('flag', [values...]), ...]; a value never starts with `--` (negative numbers are values)."""
    pairs: List[Tuple[str, List[str]]] = []
    for tok in argv:
        if tok.startswith("--") and len(tok) > 2:
            key, eq, value = tok[2:].partition("=")
            pairs.append((key, [value] if eq else []))
        elif pairs:
            pairs[-1][1].append(tok)
        else:
            raise ArgumentError(f"unexpected argument {tok!r}: every option is written --name value")
    return pairs


def load_config_file(path: str) -> Dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ArgumentError(f"--config: file {path} not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as e:  # yaml.YAMLError / JSONDecodeError: one line with position
        msg = str(e).replace("\n", " ")
        raise ArgumentError(f"{path}: not valid {p.suffix.lstrip('.').upper() or 'JSON'}: {msg}") from None
    if not isinstance(data, dict):
        raise ArgumentError(f"{path}: expected a mapping of argument names to values")
    return data


# LLaMA-Factory config keys with no prefswift meaning: the stage is the command; plots are always written; data is
# always re-encoded; evaluation runs whenever there is an eval set.
IGNORED_CONFIG_KEYS = {"stage", "do_train", "do_eval", "do_predict", "plot_loss", "overwrite_cache",
                       "preprocessing_num_workers"}


# LLaMA-Factory's `stage: dpo` trains with `pref_loss`: orpo and simpo are their own prefswift commands
STAGE_DPO_LOSSES = {"orpo": "orpo", "simpo": "simpo"}


def check_stage(config: Dict[str, Any], path: str, command: str) -> None:
    """A LLaMA-Factory config's `stage` (and `pref_loss`) must describe the command it is run with."""
    stage = config.get("stage")
    if stage is None or not is_algorithm(command):
        return
    if str(stage) == "kto" and command != "kto":
        raise ArgumentError(f"{path}: stage: kto trains KTO; run `prefswift kto --config {path}`")
    if command == "kto":
        if str(stage) != "kto":
            raise ArgumentError(f"{path}: stage: {stage} is not KTO training; `prefswift kto` runs LLaMA-Factory's "
                                "`stage: kto` configs")
        return
    if str(stage) != "dpo":
        raise ArgumentError(f"{path}: stage: {stage} is not preference training; prefswift runs LLaMA-Factory's "
                            "`stage: dpo` configs (pref_loss sigmoid/hinge/ipo = dpo, orpo, simpo)")
    loss = str(config.get("pref_loss") or "sigmoid")
    algo = STAGE_DPO_LOSSES.get(loss, "dpo")
    if algo != command:
        raise ArgumentError(f"{path}: stage: dpo with pref_loss: {loss} trains {algo.upper()}; run "
                            f"`prefswift {algo} --config {path}`")


def parse_args(argv: List[str], sections: Iterable[str], *, defaults: Dict[str, Any] = None,
               command: str = "") -> Tuple[Dict[str, Any], set]:
    """Parse argv (+ optional --config) into {section: dataclass instance}, plus the set of fields set explicitly.

    `defaults` are command-specific defaults (e.g. loss_type for simpo) applied before config and CLI.
    """
    sections = list(sections)
    defaults = dict(defaults or {})
    index = build_index(sections, command)
    everywhere = build_index(SECTIONS)  # every spelling of every command, to say "does not apply" instead of unknown
    values: Dict[str, Any] = {}
    explicit = set()
    set_by: Dict[str, Tuple[str, str]] = {}  # field -> (flag, source) that set it
    weak = set()                             # fields set by a false value alias (--use_8bit false): never conflict
    ignored: List[str] = []                  # config keys that do not apply to this command

    pairs = split_argv(argv)
    config_path = None
    cli_pairs = []
    for key, vals in pairs:
        if key.replace("-", "_") == "config":
            if len(vals) != 1:
                raise ArgumentError("--config takes one file path")
            config_path = vals[0]
        else:
            cli_pairs.append((key, vals))

    def assign(key: str, raw, source: str):
        name = key.replace("-", "_")
        info = index.get(name)
        if info is None:
            where = f" in {source}" if source != "cli" else ""
            other = everywhere.get(name)
            if other is not None:
                if source != "cli":
                    ignored.append(key)
                    return
                acts = ", ".join(acting_commands(other.field) or ())
                raise ArgumentError(f"unknown option --{key} for `prefswift {command}`: " +
                                    (f"it acts for {acts} only" if acts else
                                     f"it is not one of its options (`prefswift {command} --help`)"))
            cmd = f" for `prefswift {command}`" if command else ""
            raise ArgumentError(f"unknown option --{key}{where}{cmd}{_suggest(name, index)}")
        false_alias = info.value is not None and not parse_bool(key, raw)
        value = convert(info, key, raw)
        prev = set_by.get(info.name)
        if prev is not None and prev[1] == source and info.name not in weak:
            if false_alias:
                return  # a false alias never undoes what another flag set: --use_4bit true --use_8bit false
            if values[info.name] != value and prev[0].replace("-", "_") != name:  # repeating one flag: last wins
                raise ArgumentError(f"--{prev[0]} and --{key} both set {info.name} ({values[info.name]!r} and "
                                    f"{value!r}); keep one of them")
        weak.discard(info.name)
        if false_alias:
            weak.add(info.name)
        values[info.name] = value
        explicit.add(info.name)
        set_by[info.name] = (key, source)

    if config_path:
        config = load_config_file(config_path)
        check_stage(config, config_path, command)
        for key, raw in config.items():
            if key in IGNORED_CONFIG_KEYS:
                continue
            assign(str(key), raw, config_path)
        if ignored:
            import logging

            logging.getLogger("prefswift").warning("%s: ignored %s (they do not apply to `prefswift %s`)",
                                                   config_path, ", ".join(ignored), command)
    for key, vals in cli_pairs:
        name = key.replace("-", "_")
        info = index.get(name)
        if info is None:
            assign(key, None, "cli")  # raises with suggestion
        if info.field.metadata.get("list"):
            raw = vals
        elif not vals:
            if base_type(info.field.type) is bool or info.value is not None:
                raw = "true"
            else:
                raise ArgumentError(f"--{key} needs a value")
        elif len(vals) > 1:
            raise ArgumentError(f"--{key} takes one value, got {' '.join(vals)!r} (quote values with spaces)")
        else:
            raw = vals[0]
        assign(key, raw, "cli")

    result = {}
    for section in sections:
        cls = SECTIONS[section]
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                kwargs[f.name] = values[f.name]
            elif f.name in defaults:
                kwargs[f.name] = defaults[f.name]
            elif is_algorithm(command) or command in COMMAND_DEFAULTS:
                kwargs[f.name] = field_default(f, command)
        result[section] = cls(**kwargs)
    if "pref" in result and is_algorithm(command):
        check_loss_type(command, result["pref"].loss_type)
    return result, explicit


def check_loss_type(algo: str, loss_type) -> None:
    """`--loss_type` (LLaMA-Factory's `pref_loss`) must be one this command's algorithm has."""
    accepted = loss_types(algo)
    names = split_loss_types(loss_type)
    if len(names) > 1 and not get_spec(algo).combines_losses:
        combining = " / ".join(f"`prefswift {a}`" for a in algorithm_names() if get_spec(a).combines_losses)
        raise ArgumentError(f"--loss_type {loss_type!r}: only {combining} combines several loss types; "
                            f"`prefswift {algo}` takes one of {', '.join(accepted)}")
    if len(set(names)) < len(names):
        raise ArgumentError(f"--loss_type {loss_type!r} names a loss type twice; give each once (weights: "
                            "--loss_weights)")
    for name in names:
        if name in accepted:
            continue
        owners = [a for a in algorithm_names() if name in loss_types(a)]
        hint = f"; {name} is a loss of `prefswift {'` / `prefswift '.join(owners)}`" if owners else ""
        raise ArgumentError(f"--loss_type {name!r} does not apply to `prefswift {algo}`, which accepts "
                            f"{', '.join(accepted)}{hint}")


def help_text(sections: Iterable[str], command: str = "") -> str:
    """The options of `command` (only the ones that act for it), by section."""
    lines = []
    for section in sections:
        lines.append(f"\n{section} options:")
        for f in dataclasses.fields(SECTIONS[section]):
            if not applies(f, command):
                continue
            names = "--" + f.name
            extra = list(f.metadata.get("aliases", ())) + list(f.metadata.get("value_aliases", {}))
            if extra:
                names += " (" + ", ".join("--" + a for a in extra) + ")"
            default = field_default(f, command)
            lines.append(f"  {names}  [default: {default}]")
            described = f.metadata.get("help")
            if described:
                lines.append(f"      {described() if callable(described) else described}")
    return "\n".join(lines)
