"""`prefswift preview`: exactly what training would see for the first n pairs (or, for unpaired KTO data, rows)."""
import json

from typing import List

from ..arguments import RunArgs
from ..data.pipeline import build_preference_data
from ..data.unpaired import UnpairedDataError
from ..models.loader import hub_kwargs, load_tokenizer, resolve_model
from ..templates import get_template
from .common import parse_or_help, run_user_command

TRAINED_OPEN, TRAINED_CLOSE = "\u27e6", "\u27e7"  # ⟦trained tokens⟧


def run_preview(args: RunArgs, n: int = 3, as_json: bool = False) -> str:
    m = args.model
    resolved = resolve_model(m.model_type, m.model_id_or_path, **hub_kwargs(m), template=m.template,
                             tokenizer_only=True)
    tokenizer = load_tokenizer(resolved.path, m.trust_remote_code)
    template = get_template(resolved.template, tokenizer, str(resolved.path))
    lines = []
    log = (lambda *a, **k: None) if as_json else (lambda msg="", *a, **k: lines.append(str(msg)))
    try:
        data = build_preference_data(args.data, template, tokenizer, hub=m.hub, token=m.hub_token, log=log)
    except UnpairedDataError:  # KTO data: show the rows `prefswift kto` trains on
        lines.clear()
        data = build_preference_data(args.data, template, tokenizer, hub=m.hub, token=m.hub_token, log=log,
                                     unpaired=True)
    unpaired = data.summary.unit == "rows"
    rows = data.train[:n]
    if as_json:
        show = _unpaired_json if unpaired else _pair_json
        return json.dumps({"template": template.name, "model_dir": str(resolved.path),
                           "rows" if unpaired else "pairs": [show(r, tokenizer) for r in rows],
                           "summary": data.summary.format()}, ensure_ascii=False, indent=1)
    lines.append(f"template: {template.name}   tokenizer: {resolved.path}")
    missing = template.missing_special_tokens(tokenizer)
    if missing:
        lines.append(f"[prefswift] warning: the tokenizer has no single tokens for {', '.join(missing)}: check --template")
    lines.append(f"{TRAINED_OPEN}...{TRAINED_CLOSE} marks the tokens the loss is computed on")
    for i, r in enumerate(rows):
        prompt = r["prompt_input_ids"]
        if unpaired:
            completion = r["completion_input_ids"]
            lines.append(f"\n=== row {i} ({'desirable' if r['label'] else 'undesirable'}): prompt {len(prompt)} "
                         f"tokens, completion {len(completion)}{_truncation_note(r)} ===")
            lines.append(_marked(tokenizer, prompt, completion))
            continue
        chosen, rejected = r["chosen_input_ids"], r["rejected_input_ids"]
        lines.append(f"\n=== pair {i}: prompt {len(prompt)} tokens, chosen {len(chosen)}, rejected {len(rejected)}"
                     f"{_truncation_note(r)} ===")
        lines.append("--- chosen ---")
        lines.append(_marked(tokenizer, prompt, chosen))
        lines.append("--- rejected ---")
        lines.append(_marked(tokenizer, prompt, rejected))
    return "\n".join(lines)


def _truncation_note(row: dict) -> str:
    """' | TRUNCATED: prompt -120 tokens (2 earlier turns dropped), chosen -3' for a row truncation cut, else ''."""
    cut = row.get("truncated")
    if not cut:
        return ""
    parts = []
    if cut["prompt"]:
        notes = [f"{cut['turns']} earlier turn{'s' * (cut['turns'] != 1)} dropped"] if cut["turns"] else []
        notes += [f"{part} cut" for part in cut.get("parts", ())]
        parts.append(f"prompt -{cut['prompt']} tokens" + (f" ({'; '.join(notes)})" if notes else ""))
    parts += [f"{k} -{v}" for k, v in cut.items() if k not in ("prompt", "turns", "parts") and v]
    return " | TRUNCATED: " + ", ".join(parts)


def _marked(tokenizer, prompt, response) -> str:
    return tokenizer.decode(prompt) + TRAINED_OPEN + tokenizer.decode(response) + TRAINED_CLOSE


def _pair_json(r: dict, tokenizer) -> dict:
    prompt, chosen, rejected = r["prompt_input_ids"], r["chosen_input_ids"], r["rejected_input_ids"]
    return {"prompt_input_ids": prompt, "chosen_input_ids": chosen, "rejected_input_ids": rejected,
            "chosen_labels": [-100] * len(prompt) + list(chosen),
            "rejected_labels": [-100] * len(prompt) + list(rejected),
            "prompt_text": tokenizer.decode(prompt), "chosen_text": tokenizer.decode(chosen),
            "rejected_text": tokenizer.decode(rejected), "truncated": r.get("truncated")}


def _unpaired_json(r: dict, tokenizer) -> dict:
    prompt, completion = r["prompt_input_ids"], r["completion_input_ids"]
    return {"prompt_input_ids": prompt, "completion_input_ids": completion, "label": r["label"],
            "labels": [-100] * len(prompt) + list(completion), "prompt_text": tokenizer.decode(prompt),
            "completion_text": tokenizer.decode(completion), "truncated": r.get("truncated")}


def main(argv: List[str]) -> None:
    import typer

    def go():
        args = parse_or_help("preview", list(argv))
        typer.echo(run_preview(args, n=args.preview.n, as_json=args.preview.json))

    run_user_command(go)
