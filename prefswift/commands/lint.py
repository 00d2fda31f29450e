"""`prefswift lint`: a report on preference data before training (see `prefswift.lint`).

Loads --dataset / --val_dataset exactly as training would; with --model_type / --model_id_or_path it loads that
model's tokenizer (never its weights) to count tokens as training does, else lengths are characters and the token
checks are skipped. Prints a table, writes <output_dir>/lint_report.json; with --strict, exit code 1 when a check is
over its limit.

Steps: parse -> tokenizer (optional) -> load and check the pairs -> report -> exit code.
"""
from pathlib import Path
from typing import List, Tuple

from ..arguments import RunArgs
from ..errors import ArgumentError
from ..lint import LintReport, lint_dataset, write_report
from ..templates import get_template
from .common import run_command

STRICT_EXIT_CODE = 1  # a check over its limit (bad arguments and unreadable data exit with 2)


def main(argv: List[str]) -> None:
    import typer

    def body(args: RunArgs) -> None:
        report, _ = run_lint(args)
        if args.lint.strict and report.failed:
            raise typer.Exit(STRICT_EXIT_CODE)

    run_command("lint", argv, body)


def run_lint(args: RunArgs, *, log=print) -> Tuple[LintReport, Path]:
    """Lint the data the arguments name; returns the report and the path of lint_report.json."""
    m = args.model
    template = tokenizer = name = None
    if m.model_type or m.model_id_or_path:
        from ..models.loader import hub_kwargs, load_tokenizer, resolve_model

        resolved = resolve_model(m.model_type, m.model_id_or_path, **hub_kwargs(m), template=m.template,
                                 tokenizer_only=True)
        tokenizer = load_tokenizer(resolved.path, m.trust_remote_code)
        template = get_template(resolved.template, tokenizer, str(resolved.path))
        name = m.model_type or str(resolved.path)
    elif m.template:
        raise ArgumentError("--template shapes token counts: give it with --model_type or --model_id_or_path (the "
                            "special tokens of every registered template are checked without it)")
    report = lint_dataset(args.data, args.lint, template=template, tokenizer=tokenizer, tokenizer_name=name,
                          hub=m.hub, token=m.hub_token, log=log)
    log(report.format())
    path = write_report(report, args.lint.output_dir)
    log(f"[lint] report written to {path}")
    return report, path


__all__ = ["main", "run_lint"]
