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
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001 - an installed plugin that fails: one line naming it and the line
                raise ArgumentError(f"plugin entry point {ep.name} ({ep.value}){_deepest(e)}: "
                                    f"{_describe(e)}") from None
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
    except Exception as e:  # noqa: BLE001 - any failure in the user's file (a syntax error, a NameError, a registration
        # the registries refuse): one line naming the file and the line, not a traceback
        sys.modules.pop(spec.name, None)
        raise ArgumentError(f"--custom_register_path {custom_register_path}{_where(e, path)}: "
                            f"{_describe(e)}") from None
    _loaded.add(str(path))


def _where(error: BaseException, path: Path) -> str:
    """`, line N` of the plugin file where the failure happened (its deepest frame in that file), or ''."""
    if isinstance(error, SyntaxError) and error.lineno and error.filename and Path(error.filename).resolve() == path:
        return f", line {error.lineno}"
    line = None
    tb = error.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f", line {line}" if line else ""


def _deepest(error: BaseException) -> str:
    """`, FILE line N` of the innermost frame the failure passed through (an installed plugin's own module)."""
    if isinstance(error, SyntaxError) and error.filename and error.lineno:
        return f", {error.filename} line {error.lineno}"
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f", {tb.tb_frame.f_code.co_filename} line {tb.tb_lineno}" if tb is not None else ""


def _describe(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        text = f"{type(error).__name__}: {error.msg}"
    elif isinstance(error, (ValueError, ArgumentError)):  # the registries' own refusals read as sentences
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}".rstrip(": ")
    return " ".join(text.split())  # one line, whatever the message holds
