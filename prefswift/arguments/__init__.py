"""Arguments: one dataclass tree (fields.py) parsed from CLI/config (parser.py), saved as args.json."""
import dataclasses
import json
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Dict, List, Optional

from ..errors import ArgumentError
from ..files import write_json_atomic
from .algorithms import algorithm_names, is_algorithm
from .fields import (DataArguments, DeployArguments, ExportArguments, InferArguments, LintArguments, ModelArguments,
                     PreferenceArguments, PreviewArguments, PushArguments, SECTIONS, SampleArguments, TrainArguments,
                     TuningArguments, WebArguments)
from .parser import help_text, parse_args

TRAIN_SECTIONS = ("model", "data", "tuning", "train", "pref", "push")
OTHER_SECTIONS = {
    "preview": ("model", "data", "preview"),
    "infer": ("model", "data", "infer"),
    "merge-lora": ("model", "infer", "push"),
    "eval": ("model", "data", "infer", "pref"),
    "lint": ("model", "data", "lint"),
    "sample": ("model", "data", "infer", "sample"),
    "deploy": ("model", "infer", "deploy"),
    "export": ("model", "infer", "export", "push"),
    "web": ("web", "deploy"),  # where it listens: deploy's options
}


class _CommandSections(Mapping):
    """command -> its argument sections: every registered algorithm (plugins' too) trains with TRAIN_SECTIONS."""

    def __getitem__(self, command: str):
        if is_algorithm(command):
            return TRAIN_SECTIONS
        return OTHER_SECTIONS[command]

    def __iter__(self):
        return iter(algorithm_names() + tuple(OTHER_SECTIONS))

    def __len__(self):
        return len(algorithm_names()) + len(OTHER_SECTIONS)


COMMAND_SECTIONS: Mapping = _CommandSections()
ARGS_FILE = "args.json"
SECRET_FIELDS = ("hub_token", "api_key")  # never written to args.json


@dataclasses.dataclass
class RunArgs:
    """Parsed arguments of one command. Sections are attributes (`args.model.model_type`)."""

    command: str
    model: Optional[ModelArguments] = None  # None for `web`, which loads no model of its own
    data: Optional[DataArguments] = None
    tuning: Optional[TuningArguments] = None
    train: Optional[TrainArguments] = None
    pref: Optional[PreferenceArguments] = None
    infer: Optional[InferArguments] = None
    preview: Optional[PreviewArguments] = None
    push: Optional[PushArguments] = None
    lint: Optional[LintArguments] = None
    sample: Optional[SampleArguments] = None
    deploy: Optional[DeployArguments] = None
    export: Optional[ExportArguments] = None
    web: Optional[WebArguments] = None
    explicit: frozenset = frozenset()
    lineage: tuple = ()  # a training run's chain (base -> SFT run -> this run): `prefswift.models.lineage`

    def to_flat_dict(self) -> Dict[str, Any]:
        """Flat {field: value} of every section present: the content of args.json."""
        out: Dict[str, Any] = {"command": self.command}
        for name in SECTIONS:
            section = getattr(self, name)
            if section is not None:
                out.update(dataclasses.asdict(section))
        for name in SECRET_FIELDS:
            out.pop(name, None)
        if self.lineage:
            out["lineage"] = list(self.lineage)
        return absolute_paths(out)

    def save(self, directory) -> Path:
        return write_json_atomic(Path(directory) / ARGS_FILE, self.to_flat_dict(), indent=2)


PATH_FIELDS = ("model_id_or_path", "reward_model", "output_file", "ref_model_id_or_path", "adapter_name_or_path",
               "ref_adapter_name_or_path", "custom_register_path", "dataset_dir", "deepspeed", "lora_adapter_dir")
LIST_PATH_FIELDS = ("dataset", "val_dataset")


def absolute_paths(flat: Dict[str, Any]) -> Dict[str, Any]:
    """Local paths as absolute paths, so args.json replays the run from any directory (a hub id or a registered
    name stays as written)."""
    def fix(value):
        if not isinstance(value, str) or not value:
            return value
        path, sep, sample = value.partition("#")  # `file.jsonl#100`
        p = Path(path).expanduser()
        return str(p.resolve()) + sep + sample if p.exists() else value

    out = dict(flat)
    for name in PATH_FIELDS:
        if name in out:
            out[name] = fix(out[name])
    for name in LIST_PATH_FIELDS:
        if isinstance(out.get(name), list):
            out[name] = [fix(v) for v in out[name]]
    return out


def parse_command(command: str, argv: List[str], defaults: Dict[str, Any] = None) -> RunArgs:
    sections = COMMAND_SECTIONS[command]
    argv = ["--n" if tok == "-n" else tok for tok in argv]  # the one short option: `preview -n 3`
    parsed, explicit = parse_args(list(argv), sections, defaults=defaults, command=command)
    return RunArgs(command=command, explicit=frozenset(explicit), **parsed)


def load_args_json(directory) -> Optional[Dict[str, Any]]:
    """args.json of a checkpoint / adapter / merged dir, or of its parent run dir; None if absent."""
    d = Path(directory)
    for cand in (d / ARGS_FILE, d.parent / ARGS_FILE):
        if cand.is_file():
            try:
                return json.loads(cand.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise ArgumentError(f"{cand}: not valid JSON ({e.msg} at line {e.lineno}); "
                                    "restore it or pass --model_type/--model_id_or_path explicitly") from None
    return None


def section_from_flat(cls, flat: Dict[str, Any]):
    """Rebuild one section dataclass from an args.json dict (unknown keys ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in flat.items() if k in names})


__all__ = ["RunArgs", "parse_command", "load_args_json", "section_from_flat", "help_text", "COMMAND_SECTIONS",
           "ModelArguments", "DataArguments", "TuningArguments", "TrainArguments", "PreferenceArguments",
           "InferArguments", "SampleArguments", "ARGS_FILE"]
