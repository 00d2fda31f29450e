"""Turn one raw value (a command-line string, a YAML/JSON value, an args.json entry) into a field's type and check it
against the field's declared choices and bounds. The parser and every section's `__post_init__` use this one
function, so a value is checked the same way however it arrives.
"""
import dataclasses
import json
import typing
from typing import Any, List

from ..errors import ArgumentError

TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}
BOUNDS = {"ge": (lambda v, b: v >= b, "at least"), "gt": (lambda v, b: v > b, "above"),
          "le": (lambda v, b: v <= b, "at most"), "lt": (lambda v, b: v < b, "below")}


def base_type(tp):
    """int for Optional[int], List[str] for Optional[List[str]], ..."""
    if typing.get_origin(tp) is typing.Union:
        return base_type(next(a for a in typing.get_args(tp) if a is not type(None)))
    return tp


def parse_bool(flag: str, text) -> bool:
    if isinstance(text, bool):
        return text
    s = str(text).strip().lower()
    if s in TRUE:
        return True
    if s in FALSE:
        return False
    raise ArgumentError(f"--{flag}: expected true or false, got {text!r}")


def check_value(f: dataclasses.Field, flag: str, value: Any) -> Any:
    """The field's choices and bounds (`arg(choices=..., ge=..., lt=...)`); None passes when it is the default."""
    if value is None:
        return value
    choices = f.metadata.get("choices")
    if callable(choices):
        choices = choices()
    items = value if isinstance(value, list) else str(value).replace(",", " ").split() \
        if f.metadata.get("tokens") else [value]
    for item in items:
        if choices and item not in choices:
            raise ArgumentError(f"--{flag}: {item!r} is not one of {', '.join(map(str, choices))}")
    own_check = f.metadata.get("check")
    if own_check is not None:
        own_check(flag, value)
    for key, (ok, words) in BOUNDS.items():
        bound = f.metadata.get(key)
        if bound is not None and not ok(value, bound):
            raise ArgumentError(f"--{flag}: {value!r} must be {words} {bound}")
    return value


def convert_value(f: dataclasses.Field, flag: str, raw: Any) -> Any:
    """`raw` as the field's type (idempotent on values that already have it), checked with `check_value`."""
    tp = base_type(f.type)
    if raw is None:
        return None
    if f.metadata.get("list"):
        items = raw if isinstance(raw, (list, tuple)) else [raw]
        out: List[Any] = []
        for item in items:
            out.extend(p.strip() for p in str(item).split(",") if p.strip())
        if typing.get_args(tp) == (float,):  # List[float]: every item a number
            try:
                out = [float(item) for item in out]
            except ValueError:
                raise ArgumentError(f"--{flag}: expected numbers, got {','.join(map(str, out))!r}") from None
        return check_value(f, flag, out)
    if isinstance(raw, str) and raw.lower() in ("none", "null") and f.default is None:
        return None
    try:
        if tp is bool:
            value = parse_bool(flag, raw)
        elif tp is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            value = int(raw)
        elif tp is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = float(raw)
        elif typing.get_origin(tp) is dict or tp is dict:
            value = raw if isinstance(raw, dict) else json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError
        else:
            value = str(raw)
    except (ValueError, TypeError):
        kind = "a JSON object" if typing.get_origin(tp) is dict else getattr(tp, "__name__", str(tp))
        raise ArgumentError(f"--{flag}: expected {kind}, got {raw!r}") from None
    return check_value(f, flag, value)


class Section:
    """Base of every argument section: values are converted and checked on construction, however they arrive
    (parser, args.json, code)."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            setattr(self, f.name, convert_value(f, f.name, getattr(self, f.name)))
