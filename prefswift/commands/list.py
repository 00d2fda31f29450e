"""`prefswift list models|templates|datasets [WORD] [--family F]`: plain-text tables."""
from typing import List, Optional, Sequence

from ..data.datasets import list_datasets
from ..errors import ArgumentError, did_you_mean
from ..registry.models import list_families, list_models
from ..templates import list_templates


def table(headers: Sequence[str], rows: List[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _model_rows(family: Optional[str]) -> List[tuple]:
    specs = list_models()
    if family:
        known = list_families()
        if family.lower() not in known:
            raise ArgumentError(f"--family {family}: no such family{did_you_mean(family.lower(), known, show=repr)} "
                                f"— families: {', '.join(known)}")
        specs = [s for s in specs if s.family == family.lower()]
    return [(s.model_type, s.family or "-", s.size or "-", s.template or "(model's own)",
             s.ms_id or ("(built-in)" if s.builtin else "-"), s.hf_id or ("(built-in)" if s.builtin else "-"),
             "yes: --trust_remote_code true" if s.trust_remote_code else "", ",".join(s.lora_target_modules))
            for s in specs]


def render_list(what: str, word: Optional[str] = None, family: Optional[str] = None) -> str:
    what = what.lower().rstrip("s")
    if family and what != "model":
        raise ArgumentError("--family filters `prefswift list models` only")
    if what == "model":
        headers = ("model_type", "family", "size", "template", "modelscope id", "huggingface id", "remote code",
                   "lora DEFAULT")
        rows = _model_rows(family)
    elif what == "template":
        headers = ("template", "checked against official jinja", "default system", "stop words")
        rows = [(t.name, ", ".join(t.official) or "-", (t.default_system or "")[:40],
                 " ".join(repr(w) for w in t.stop_words)) for t in list_templates()]
        rows.append(("auto", "each fixture (the model's own)", "(the model's own)", "(read off the rendering)"))
    elif what == "dataset":
        headers = ("dataset", "modelscope id", "huggingface id", "subsets")
        rows = [(d.name, d.ms_id or "-", d.hf_id or "-", "/".join(d.subsets) or "-") for d in list_datasets()]
    else:
        raise ArgumentError(f"unknown list {what!r}: use `prefswift list models`, `templates` or `datasets`")
    if word:
        rows = [r for r in rows if any(word.lower() in str(x).lower() for x in r)]
        if not rows:
            return f"no {what}s match {word!r}"
    return table(headers, rows)


def main(what: str, custom_register_path=None, word: Optional[str] = None, family: Optional[str] = None) -> None:
    import typer

    from ..registry.plugins import load_plugins
    from .common import run_user_command

    def go():
        load_plugins(custom_register_path)
        typer.echo(render_list(what, word=word, family=family))

    run_user_command(go)
