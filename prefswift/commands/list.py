"""`prefswift list models|templates|datasets`: plain-text tables."""
from typing import List, Sequence

from ..data.datasets import list_datasets
from ..errors import ArgumentError
from ..registry.models import list_models
from ..templates import list_templates


def table(headers: Sequence[str], rows: List[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def render_list(what: str) -> str:
    what = what.lower().rstrip("s")
    if what == "model":
        rows = [(s.model_type, s.template, s.ms_id or "(built-in)", s.hf_id or "(built-in)",
                 ",".join(s.lora_target_modules)) for s in list_models()]
        return table(("model_type", "template", "modelscope id", "huggingface id", "lora DEFAULT"), rows)
    if what == "template":
        rows = [(t.name, (t.default_system or "")[:50], " ".join(repr(w) for w in t.stop_words)) for t in
                list_templates()]
        return table(("template", "default system", "stop words"), rows)
    if what == "dataset":
        rows = [(d.name, d.ms_id or "-", d.hf_id or "-", "/".join(d.subsets) or "-") for d in list_datasets()]
        return table(("dataset", "modelscope id", "huggingface id", "subsets"), rows)
    raise ArgumentError(f"unknown list {what!r}: use `prefswift list models`, `templates` or `datasets`")


def main(what: str, custom_register_path=None) -> None:
    import typer

    from ..registry.plugins import load_plugins
    from .common import run_user_command

    def go():
        load_plugins(custom_register_path)
        typer.echo(render_list(what))

    run_user_command(go)
