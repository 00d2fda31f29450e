"""Unpaired preference rows for KTO: one prompt, one completion, and whether that completion is desirable.

Formats (detected on a file's first row, before the paired formats; registered datasets name their converter):

* **trl** unpaired (TRL's KTO format, e.g. trl-lib/kto-mix-14k): `prompt`, `completion`, `label` (bool); prompt and
  completion as strings or as message lists (`prompt` = the conversation so far, `completion` = [assistant message]).
* **sharegpt** with `kto_tag` (LLaMA-Factory's KTO data): `conversations` / `messages` ending with the assistant's
  answer, which is the completion; `kto_tag` (or `label`) says whether it is desirable; optional `system`.
* **alpaca** with `kto_tag` (LLaMA-Factory): `instruction`, optional `input`, `output`, `kto_tag` (or `label`),
  optional `system` and `history` (or `prompt` / `query` / `response`, the names a dataset_info.json maps them to).

Paired rows (any paired format) are split into a desirable and an undesirable row by `unpair`, in the order TRL's
`unpair_preference_dataset` produces (per block of 1000 pairs: every chosen row, then every rejected row).
`add_kl_completions` gives every row the mismatched completion TRL's KTOTrainer uses for its KL estimate.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..errors import ArgumentError
from .example import PreferenceExample
from .formats import (RowError, _history_pairs, _optional_str, check_texts, maybe_parse, missing,
                      normalize_message, normalize_messages, required_str, split_conversation, wrong_type)

# the block size of TRL's unpairing (`datasets.Dataset.map(batched=True)` default): order within a block is kept
UNPAIR_BLOCK = 1000
LABEL_FIELDS = ("kto_tag", "label")


@dataclass
class UnpairedExample:
    """One KTO row: `completion` answers `prompt` (after `history`); `label` True = desirable."""

    prompt: str
    completion: str
    label: bool
    system: Optional[str] = None
    history: List[Tuple[str, str]] = field(default_factory=list)


class UnpairedDataError(ArgumentError):
    """Unpaired rows given to a command that trains or scores pairs."""

    def __init__(self, where: str):
        super().__init__(f"{where}: unpaired rows (a completion and a desirable/undesirable label, no chosen/rejected "
                         "pair): `prefswift kto` trains on them (`prefswift preview` shows them); this command needs "
                         "chosen + rejected pairs")


# ---------------------------------------------------------------- converters

def _label(row: dict) -> bool:
    name = next((f for f in LABEL_FIELDS if f in row), None)
    if name is None or row[name] is None:
        raise missing("label")
    value = row[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise RowError(name, f"expected true or false, got {value!r}", "label each row true (desirable) or false",
                   reason=f"bad {name}")


def convert_unpaired_trl(row: dict) -> UnpairedExample:
    """TRL's unpaired format: prompt (string or messages), completion (string or [assistant message]), label."""
    if row.get("prompt") is None:
        raise missing("prompt")
    prompt = maybe_parse(row["prompt"])
    if isinstance(prompt, str):
        system, history, query = None, [], prompt
    else:
        system, history, query = split_conversation(normalize_messages(prompt, "prompt"), "prompt")
    if row.get("completion") is None:
        raise missing("completion")
    completion = maybe_parse(row["completion"])
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list):
        messages = [normalize_message(m, "completion") for m in completion]
        if len(messages) != 1 or messages[0][0] != "assistant":
            raise RowError("completion", f"holds {len(messages)} message(s), expected one assistant answer",
                           "give the answer as one {\"role\": \"assistant\", ...} message or a string",
                           reason="bad conversation in completion")
        completion = messages[0][1]
    if not isinstance(completion, str):
        raise wrong_type("completion", completion, "a string or one assistant message")
    return UnpairedExample(prompt=query, completion=completion, label=_label(row),
                           system=_optional_str(row, "system") or system, history=history)


def convert_kto_sharegpt(row: dict) -> UnpairedExample:
    """LLaMA-Factory's KTO sharegpt rows: the conversation's last (assistant) turn is the completion."""
    name = "conversations" if "conversations" in row else "messages"
    if row.get(name) is None:
        raise missing(name)
    messages = normalize_messages(row[name], name)
    if not messages or messages[-1][0] != "assistant":
        raise RowError(name, "does not end with the assistant's answer",
                       "end each conversation with the answer the label judges", reason=f"bad conversation in {name}")
    system, history, query = split_conversation(messages[:-1], name)
    return UnpairedExample(prompt=query, completion=messages[-1][1], label=_label(row),
                           system=_optional_str(row, "system") or system, history=history)


def convert_kto_alpaca(row: dict) -> UnpairedExample:
    """LLaMA-Factory's KTO alpaca rows: instruction (+ input on a new line), output, kto_tag — or the same under the
    names its dataset_info.json maps them to (prompt, query, response)."""
    names = ("instruction", "input", "output") if "instruction" in row else ("prompt", "query", "response")
    instruction = required_str(row, names[0])
    extra = _optional_str(row, names[1])
    return UnpairedExample(prompt=f"{instruction}\n{extra}" if extra else instruction,
                           completion=required_str(row, names[2]), label=_label(row),
                           system=_optional_str(row, "system"), history=_history_pairs(row))


UNPAIRED_FORMATS: Dict[str, Callable[[dict], UnpairedExample]] = {
    "trl-unpaired": convert_unpaired_trl,
    "sharegpt-kto": convert_kto_sharegpt,
    "alpaca-kto": convert_kto_alpaca,
}


def detect_unpaired_format(row: Any) -> Optional[Tuple[str, Callable[[dict], UnpairedExample]]]:
    """(label, converter) when the row is unpaired (a label column and no chosen/rejected pair), else None."""
    if not isinstance(row, dict) or "chosen" in row or "rejected" in row:
        return None
    if not any(f in row for f in LABEL_FIELDS):
        return None
    if "conversations" in row or "messages" in row:
        name = "sharegpt-kto"
    elif "instruction" in row or ("prompt" in row and "response" in row):
        name = "alpaca-kto"
    elif "completion" in row:
        name = "trl-unpaired"
    else:
        return None
    return name, UNPAIRED_FORMATS[name]


def check_unpaired(ex: UnpairedExample) -> None:
    """Raise RowError when a converted row cannot train anything."""
    check_texts(ex, ("prompt", "completion"))


# ---------------------------------------------------------------- pairs -> rows, KL completions

def unpair(examples: Sequence[Union[PreferenceExample, UnpairedExample]]) -> List[UnpairedExample]:
    """Paired examples become a desirable and an undesirable row; unpaired ones stay. Like TRL's
    `unpair_preference_dataset`, each block of up to 1000 consecutive pairs gives its chosen rows, then its rejected
    rows."""
    out: List[UnpairedExample] = []
    block: List[PreferenceExample] = []

    def flush():
        for label in (True, False):
            out.extend(UnpairedExample(p.prompt, p.chosen if label else p.rejected, label, p.system, list(p.history))
                       for p in block)
        block.clear()

    for ex in examples:
        if isinstance(ex, UnpairedExample):
            flush()
            out.append(ex)
            continue
        block.append(ex)
        if len(block) == UNPAIR_BLOCK:
            flush()
    flush()
    return out


def add_kl_completions(rows: List[dict], batch_size: int) -> None:
    """`kl_completion_input_ids` for every encoded row: in each run of `batch_size` consecutive rows (the batches of a
    sequential sampler), row i gets row i-1's completion, the first row the last one's — TRL's mismatched
    (prompt, completion) pairs for the KL estimate."""
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        completions = [r["completion_input_ids"] for r in chunk]
        for row, kl in zip(chunk, completions[-1:] + completions[:-1]):
            row["kl_completion_input_ids"] = list(kl)


def label_counts(rows: Sequence[dict]) -> Tuple[int, int]:
    """(desirable, undesirable) rows."""
    desirable = sum(1 for r in rows if r["label"])
    return desirable, len(rows) - desirable


__all__ = ["UnpairedExample", "UnpairedDataError", "convert_unpaired_trl", "convert_kto_sharegpt",
           "convert_kto_alpaca", "detect_unpaired_format", "check_unpaired", "unpair", "add_kl_completions",
           "label_counts"]
