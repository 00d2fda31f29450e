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
from .algorithms import LOSS_TYPES
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


def build_index(sections: Iterable[str]) -> Dict[str, FieldInfo]:
    """Map every accepted spelling (canonical name, aliases, value aliases) to its field."""
    index: Dict[str, FieldInfo] = {}
    for section, f in iter_fields(sections):
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
                       "preprocessing_num_workers", "trust_remote_code", "eval_strategy", "save_strategy"}


def parse_args(argv: List[str], sections: Iterable[str], *, defaults: Dict[str, Any] = None,
               command: str = "") -> Tuple[Dict[str, Any], set]:
    """Parse argv (+ optional --config) into {section: dataclass instance}, plus the set of fields set explicitly.

    `defaults` are command-specific defaults (e.g. loss_type for simpo) applied before config and CLI.
    """
    sections = list(sections)
    index = build_index(sections)
    values: Dict[str, Any] = {}
    explicit = set()

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
            cmd = f" for `prefswift {command}`" if command else ""
            raise ArgumentError(f"unknown option --{key}{where}{cmd}{_suggest(name, index)}")
        values[info.name] = convert(info, key, raw)
        explicit.add(info.name)

    if config_path:
        for key, raw in load_config_file(config_path).items():
            if key in IGNORED_CONFIG_KEYS:
                continue
            assign(str(key), raw, config_path)
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
            elif defaults and f.name in defaults:
                kwargs[f.name] = defaults[f.name]
        result[section] = cls(**kwargs)
    if "pref" in result and command in LOSS_TYPES:
        check_loss_type(command, result["pref"].loss_type)
    return result, explicit


def check_loss_type(algo: str, loss_type) -> None:
    """`--loss_type` (LLaMA-Factory's `pref_loss`) must be one this command's algorithm has."""
    accepted = LOSS_TYPES[algo]
    if loss_type is None or loss_type in accepted:
        return
    owners = [a for a, types in LOSS_TYPES.items() if loss_type in types]
    hint = f"; {loss_type} is a loss of `prefswift {'` / `prefswift '.join(owners)}`" if owners else ""
    raise ArgumentError(f"--loss_type {loss_type!r} does not apply to `prefswift {algo}`, which accepts "
                        f"{', '.join(accepted)}{hint}")


def help_text(sections: Iterable[str]) -> str:
    lines = []
    for section in sections:
        lines.append(f"\n{section} options:")
        for f in dataclasses.fields(SECTIONS[section]):
            names = "--" + f.name
            extra = list(f.metadata.get("aliases", ())) + list(f.metadata.get("value_aliases", {}))
            if extra:
                names += " (" + ", ".join("--" + a for a in extra) + ")"
            default = field_default(f)
            lines.append(f"  {names}  [default: {default}]")
            if f.metadata.get("help"):
                lines.append(f"      {f.metadata['help']}")
    return "\n".join(lines)
