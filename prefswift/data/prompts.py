"""The prompts `prefswift sample` answers: the distinct prompts of --dataset, in order.

A row gives its prompt (with its system prompt and earlier turns) in any format training reads — the prompt of a
preference pair, or of an unpaired KTO row — or as a prompt-only row: `prompt` (a string or a list of messages
ending with the user's turn), `messages` / `conversations` (a trailing assistant turn is left out), `instruction`
(+ `input`), or `query`; `system` and `history` as in the paired formats. Registered datasets give the prompts of
their train split. `--train_dataset_sample N` keeps N prompts (drawn with --dataset_seed, like training's rows);
`name#N` keeps N of one dataset's. Rows without a usable prompt are dropped and counted (--check_dataset_strategy
error stops at the first one), and a prompt repeated by later rows is answered once (counted).
"""
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..arguments.fields import DataArguments
from ..errors import DataError, data_error
from . import dataset_info
from .datasets import detect_source_format, get_dataset_spec, parse_dataset_arg
from .formats import (RowError, _history_pairs, _optional_str, apply_columns, check_texts, maybe_parse,
                      normalize_messages, required_str, split_conversation)
from .loader import RawSource, load_registered, read_local_file
from .pipeline import parse_columns, sample_rows

# columns that hold an answer: a row with none of them is a prompt-only row
ANSWER_COLUMNS = ("chosen", "rejected", "response", "rejected_response", "completion", "output")


@dataclass(frozen=True)
class PromptItem:
    prompt: str
    system: Optional[str] = None
    history: Tuple[Tuple[str, str], ...] = ()
    origin: Optional[str] = None

    @property
    def key(self) -> tuple:
        return self.system, self.history, self.prompt


@dataclass
class PromptSet:
    items: List[PromptItem]
    sources: List[str]            # labels of the files / splits read
    rows: int                     # rows read
    dropped: Dict[str, int]       # rows without a usable prompt, by reason
    repeats: int                  # rows whose prompt an earlier row already had


def _messages_prompt(row: dict, field: str) -> Tuple[Optional[str], List[Tuple[str, str]], str]:
    value = maybe_parse(row[field])
    msgs = [("user", value)] if isinstance(value, str) else normalize_messages(value, field)
    if msgs and msgs[-1][0] == "assistant":  # an SFT conversation: its answer is not part of the prompt
        msgs = msgs[:-1]
    system, history, prompt = split_conversation(msgs, field)
    return _optional_str(row, "system") or system, history or _history_pairs(row), prompt


def prompt_only(row: dict) -> Tuple[Optional[str], List[Tuple[str, str]], str]:
    """(system, history, prompt) of a row that holds no answer."""
    for field in ("conversations", "messages", "prompt"):
        if row.get(field) is not None:
            return _messages_prompt(row, field)
    if "instruction" in row:
        extra = _optional_str(row, "input")
        instruction = required_str(row, "instruction")
        return (_optional_str(row, "system"), _history_pairs(row),
                f"{instruction}\n{extra}" if extra else instruction)
    if "query" in row:
        return _optional_str(row, "system"), _history_pairs(row), required_str(row, "query")
    raise RowError("", f"no prompt (columns: {', '.join(sorted(map(str, row))) or 'none'})",
                   "give a prompt, messages, instruction or query column, or map yours with --columns",
                   reason="no prompt")


def prompt_of(row, converter=None) -> PromptItem:
    """The prompt of one row (RowError when it has none); `converter`: a registered dataset's own."""
    if not isinstance(row, dict):
        raise RowError("", f"expected a JSON object, got {type(row).__name__}", "one object per row",
                       reason="row is not an object")
    if converter is None and not any(k in row for k in ANSWER_COLUMNS):
        system, history, prompt = prompt_only(row)
    else:
        ex = (converter or detect_source_format(row)[1])(row)
        system, history, prompt = ex.system, ex.history, ex.prompt
    item = PromptItem(prompt=prompt, system=system, history=tuple((u, a) for u, a in history))
    check_texts(item, ("prompt",))
    return item


def _sources(ref, args: DataArguments, hub, token, log) -> List[RawSource]:
    declared = None if ref.local else dataset_info.lookup(args.dataset_dir, ref.name)
    if ref.local or declared:
        path, columns = (ref.name, None) if ref.local else declared
        source = read_local_file(path)
        return [(source, parse_columns(columns))]
    spec = get_dataset_spec(ref.name)
    out = []
    for subset in spec.resolve_subsets(ref.subsets):
        out += [(s, None) for s in load_registered(spec, subset, spec.train_split, dataset_dir=args.dataset_dir,
                                                   hub=hub, token=token, log=log)]
    return out


def collect_prompts(args: DataArguments, *, hub: Optional[str] = None, token: Optional[str] = None,
                    log=print) -> PromptSet:
    """Every distinct prompt of --dataset (see the module docstring)."""
    if not args.dataset:
        raise DataError("no prompts: pass --dataset NAME or --dataset FILE.jsonl (try --dataset demo)")
    columns = parse_columns(args.columns)
    dropped: Counter = Counter()
    labels, items, rows = [], [], 0
    for ref in (parse_dataset_arg(t) for t in args.dataset):
        found: List[PromptItem] = []
        for source, declared_columns in _sources(ref, args, hub, token, log):
            labels.append(source.label)
            rows += len(source.rows)
            for i, raw in enumerate(source.rows):
                try:
                    item = prompt_of(apply_columns(raw, columns or declared_columns), source.converter)
                except RowError as e:
                    if args.check_dataset_strategy == "error":
                        raise data_error(source.where(i), i, e.field, e.problem, e.fix) from None
                    dropped[e.reason] += 1
                    continue
                if args.system is not None:
                    item = PromptItem(item.prompt, args.system, item.history)
                found.append(PromptItem(item.prompt, item.system, item.history, source.locate(i)))
        items += sample_rows(found, ref.sample, args.dataset_seed)
    seen, unique = set(), []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            unique.append(item)
    repeats = len(items) - len(unique)
    unique = sample_rows(unique, args.train_dataset_sample, args.dataset_seed, repeat=False)
    if not unique:
        raise DataError(f"no prompts in {', '.join(args.dataset)}" +
                        (f" (dropped: {', '.join(f'{k} {v}' for k, v in dropped.items())})" if dropped else ""))
    return PromptSet(unique, labels, rows, dict(dropped), repeats)


__all__ = ["PromptItem", "PromptSet", "collect_prompts", "prompt_of", "prompt_only", "ANSWER_COLUMNS"]
