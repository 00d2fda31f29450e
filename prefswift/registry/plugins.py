"""User plugins: register models, templates and datasets from a Python file or a `prefswift.plugins` entry point."""
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Optional

from ..errors import ArgumentError

_loaded = set()


def load_plugins(custom_register_path: Optional[str] = None) -> None:
    for ep in entry_points(group="prefswift.plugins"):
        if ep.name not in _loaded:
            _loaded.add(ep.name)
            ep.load()
    if not custom_register_path:
        return
    path = Path(custom_register_path).expanduser().resolve()
    if str(path) in _loaded:
        return
    if not path.is_file():
        raise ArgumentError(f"--custom_register_path {custom_register_path}: file not found")
    spec = importlib.util.spec_from_file_location(f"prefswift_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)  # its register_model/template/dataset/loss/algorithm calls run here
    except ValueError as e:  # a registration the registries refuse (a taken name, a bad spec): one line, not a trace
        raise ArgumentError(f"--custom_register_path {custom_register_path}: {e}") from None
    _loaded.add(str(path))
