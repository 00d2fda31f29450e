"""`prefswift preview`: exactly what training would see for the first n pairs."""
import json

from typing import List

from ..arguments import RunArgs
from ..data.pipeline import build_preference_data
from ..models.loader import hub_kwargs, load_tokenizer, resolve_model
from ..templates import get_template
from .common import parse_or_help, run_user_command

TRAINED_OPEN, TRAINED_CLOSE = "\u27e6", "\u27e7"  # ⟦trained tokens⟧


def run_preview(args: RunArgs, n: int = 3, as_json: bool = False) -> str:
    m = args.model
    resolved = resolve_model(m.model_type, m.model_id_or_path, **hub_kwargs(m), template=m.template,
                             tokenizer_only=True)
    tokenizer = load_tokenizer(resolved.path)
    template = get_template(resolved.template)
    lines = []
    log = (lambda *a, **k: None) if as_json else (lambda msg="", *a, **k: lines.append(str(msg)))
    data = build_preference_data(args.data, template, tokenizer, hub=m.hub, token=m.hub_token, log=log)
    rows = data.train[:n]
    if as_json:
        out = []
        for r in rows:
            prompt, chosen, rejected = r["prompt_input_ids"], r["chosen_input_ids"], r["rejected_input_ids"]
            out.append({
                "prompt_input_ids": prompt, "chosen_input_ids": chosen, "rejected_input_ids": rejected,
                "chosen_labels": [-100] * len(prompt) + list(chosen),
                "rejected_labels": [-100] * len(prompt) + list(rejected),
                "prompt_text": tokenizer.decode(prompt), "chosen_text": tokenizer.decode(chosen),
                "rejected_text": tokenizer.decode(rejected),
            })
        return json.dumps({"template": template.name, "model_dir": str(resolved.path), "pairs": out,
                           "summary": data.summary.format()}, ensure_ascii=False, indent=1)
    lines.append(f"template: {template.name}   tokenizer: {resolved.path}")
    missing = template.missing_special_tokens(tokenizer)
    if missing:
        lines.append(f"warning: the tokenizer has no single tokens for {', '.join(missing)}: check --template")
    lines.append(f"{TRAINED_OPEN}...{TRAINED_CLOSE} marks the tokens the loss is computed on")
    for i, r in enumerate(rows):
        prompt, chosen, rejected = r["prompt_input_ids"], r["chosen_input_ids"], r["rejected_input_ids"]
        lines.append(f"\n=== pair {i}: prompt {len(prompt)} tokens, chosen {len(chosen)}, rejected {len(rejected)} ===")
        lines.append("--- chosen ---")
        lines.append(tokenizer.decode(prompt) + TRAINED_OPEN + tokenizer.decode(chosen) + TRAINED_CLOSE)
        lines.append("--- rejected ---")
        lines.append(tokenizer.decode(prompt) + TRAINED_OPEN + tokenizer.decode(rejected) + TRAINED_CLOSE)
    return "\n".join(lines)


def main(argv: List[str]) -> None:
    import typer

    def go():
        args = parse_or_help("preview", list(argv))
        typer.echo(run_preview(args, n=args.preview.n, as_json=args.preview.json))

    run_user_command(go)
