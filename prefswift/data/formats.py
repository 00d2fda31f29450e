"""Generic local-file formats: detect which one a row is in and convert it to a PreferenceExample.

Formats recognised without any registration (checked in this order, on a file's first row):

* a registered dataset's real schema (e.g. hh-rlhf-cn's `context`) — see `data.datasets.detect_source_format`
* **sharegpt** (LLaMA-Factory, the ORPO script's `--train_file`): `conversations` (or `messages`) = list of
  `{from, value}` or `{role, content}` turns ending with the user turn; `chosen` / `rejected` = one
  `{from: gpt, value}` message (a plain string also works); optional `system` column. Multi-turn histories are fine.
* **alpaca** (LLaMA-Factory): `instruction`, optional `input` (appended on a new line), optional `system`,
  optional `history` = [[user, assistant], ...]; `chosen` / `rejected` strings.
* **swift** (ms-swift 2.x): `query`, `response`, `rejected_response`, optional `history`, `system`.
* **hh-rlhf** (Anthropic HH-RLHF, the ORPO paper's data): no `prompt`; `chosen` / `rejected` are whole dialogues as
  text (`"\n\nHuman: ...\n\nAssistant: ..."`) that share everything before the last answer.
* **arena**: pairwise votes (`prefswift web`'s arena; Chatbot Arena's `winner` values): `prompt`, `response_a`,
  `response_b`, `winner` = model_a | model_b | tie | tie (bothbad). Ties and both-bad votes are counted and skipped.
* **trl**: `prompt` / `chosen` / `rejected` as strings, or as message lists (`prompt` = the conversation so
  far, `chosen` = [assistant message]); also TRL's "implicit prompt" form — no usable `prompt`, and `chosen` /
  `rejected` are whole conversations sharing a prefix, which becomes the prompt.

Converters raise `RowError` for a bad row (the pipeline reports or counts it) and `RowFiltered` for a row a
dataset deliberately leaves out (always counted, never an error).
"""
import ast
import json
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .example import PreferenceExample

Message = Tuple[str, str]  # (role, text) with role in system|user|assistant
Converter = Callable[[dict], PreferenceExample]

_ROLE_ALIASES = {
    "system": "system",
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
}
_ROLE_KEYS = ("role", "from")
_TEXT_KEYS = ("content", "value", "text")


class RowError(Exception):
    """A row that cannot become a preference pair. `reason` is the short key the summary counts by."""

    def __init__(self, field: str, problem: str, fix: str = "", reason: Optional[str] = None):
        super().__init__(problem)
        self.field = field
        self.problem = problem
        self.fix = fix
        self.reason = reason or f"{field}: {problem}"


class RowFiltered(Exception):
    """A row the dataset's own converter leaves out on purpose (e.g. a toxic source); counted by `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_texts(ex: Any, names: Sequence[str]) -> None:
    """Raise RowError unless every named field of a converted row is a non-empty string (and system one or None)."""
    for name in names:
        value = getattr(ex, name)
        if not isinstance(value, str):
            raise RowError(name, f"expected a string, got {type(value).__name__}", "fix the value's type",
                           reason=f"wrong type in {name}")
        if not value.strip():
            raise RowError(name, "is empty", f"give every row a non-empty {name}", reason=f"empty {name}")
    if ex.system is not None and not isinstance(ex.system, str):
        raise RowError("system", "expected a string", "fix the value's type", reason="wrong type in system")


def missing(field: str) -> RowError:
    return RowError(field, "is missing", f"add a '{field}' value or map your column with --columns",
                    reason=f"missing {field}")


def wrong_type(field: str, value: Any, expected: str) -> RowError:
    return RowError(field, f"expected {expected}, got {type(value).__name__}", "fix the value's type",
                    reason=f"wrong type in {field}")


# ---------------------------------------------------------------- messages

def _is_message(obj: Any) -> bool:
    return isinstance(obj, dict) and any(k in obj for k in _ROLE_KEYS) and any(k in obj for k in _TEXT_KEYS)


def maybe_parse(value: Any, *, history: bool = False) -> Any:
    """Some hub copies store messages (or history) as their JSON or Python repr; turn those back into objects.

    Only strings that parse to a message, a list of messages (or, with history=True, a list) are replaced, so
    a response that merely starts with `{` or `[` stays text."""
    if isinstance(value, str) and value[:1] in "[{":
        for parse in (json.loads, ast.literal_eval):
            try:
                obj = parse(value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if _is_message(obj) or (isinstance(obj, list) and (history or (obj and all(map(_is_message, obj))))):
                return obj
            return value
    return value


def normalize_message(msg: Any, field: str) -> Message:
    """`{from, value}` / `{role, content}` / `{role, text}` -> (system|user|assistant, text)."""
    if not isinstance(msg, dict):
        raise wrong_type(field, msg, "a message dict like {\"from\": \"human\", \"value\": \"...\"}")
    role = next((msg[k] for k in _ROLE_KEYS if k in msg), None)
    text = next((msg[k] for k in _TEXT_KEYS if k in msg), None)
    if role is None or text is None:
        raise RowError(field, f"message has keys {sorted(msg)}; expected from/value or role/content",
                       "use {\"from\": ..., \"value\": ...} or {\"role\": ..., \"content\": ...}",
                       reason=f"bad message in {field}")
    canon = _ROLE_ALIASES.get(str(role).lower())
    if canon is None:
        raise RowError(field, f"unknown role {role!r}", "use system, human/user or gpt/assistant",
                       reason=f"unknown role in {field}")
    if not isinstance(text, str):
        raise wrong_type(field, text, "message text as a string")
    return canon, text


def normalize_messages(value: Any, field: str) -> List[Message]:
    value = maybe_parse(value)
    if not isinstance(value, list):
        raise wrong_type(field, value, "a list of messages")
    return [normalize_message(m, field) for m in value]


def response_text(row: dict, field: str) -> str:
    """A response given as a string, a single assistant message, or a one-message list."""
    if field not in row or row[field] is None:
        raise missing(field)
    value = maybe_parse(row[field])
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return normalize_message(value, field)[1]
    if isinstance(value, list) and len(value) == 1:
        return normalize_message(value[0], field)[1]
    raise wrong_type(field, value, "a string or one {from: gpt, value} message")


def split_conversation(messages: Sequence[Message], field: str) -> Tuple[Optional[str], List[Tuple[str, str]], str]:
    """Messages ending with the user's turn -> (system, [(user, assistant), ...], last user text)."""
    msgs = list(messages)
    system = None
    if msgs and msgs[0][0] == "system":
        system = msgs.pop(0)[1]
    if not msgs:
        raise RowError(field, "has no user turn", "the conversation must end with the user's question",
                       reason="missing prompt")
    if msgs[-1][0] != "user":
        raise RowError(field, f"ends with a {msgs[-1][0]} turn, not the user's",
                       "the conversation must end with the user's question; chosen/rejected hold the answers",
                       reason=f"bad conversation in {field}")
    history: List[Tuple[str, str]] = []
    for i in range(0, len(msgs) - 1, 2):
        pair = msgs[i:i + 2]
        if len(pair) < 2 or pair[0][0] != "user" or pair[1][0] != "assistant":
            raise RowError(field, f"turn {i} is out of order (roles must alternate user, assistant, ...)",
                           "make turns alternate human/gpt", reason=f"bad conversation in {field}")
        history.append((pair[0][1], pair[1][1]))
    return system, history, msgs[-1][1]


def required_str(row: dict, field: str) -> str:
    value = row.get(field)
    if value is None:
        raise missing(field)
    if not isinstance(value, str):
        raise wrong_type(field, value, "a string")
    return value


def _optional_str(row: dict, field: str) -> Optional[str]:
    value = row.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise wrong_type(field, value, "a string")
    return value


def _history_pairs(row: dict, field: str = "history") -> List[Tuple[str, str]]:
    value = maybe_parse(row.get(field), history=True)
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type(field, value, "a list of [user, assistant] pairs")
    if value and isinstance(value[0], dict):  # history given as messages
        _system, pairs, _last = split_conversation(normalize_messages(value, field) + [("user", "")], field)
        return pairs
    pairs = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(t, str) for t in item)):
            raise RowError(field, "each item must be a [user, assistant] pair of strings", "fix the history",
                           reason=f"bad {field}")
        pairs.append((item[0], item[1]))
    return pairs


# ---------------------------------------------------------------- the generic formats

def convert_sharegpt(row: dict) -> PreferenceExample:
    field = "conversations" if "conversations" in row else "messages"
    if row.get(field) is None:
        raise missing(field)
    system, history, prompt = split_conversation(normalize_messages(row[field], field), field)
    system = _optional_str(row, "system") or system
    return PreferenceExample(prompt=prompt, chosen=response_text(row, "chosen"),
                             rejected=response_text(row, "rejected"), system=system, history=history)


def convert_alpaca(row: dict) -> PreferenceExample:
    instruction = required_str(row, "instruction")
    extra = _optional_str(row, "input")
    prompt = f"{instruction}\n{extra}" if extra else instruction
    return PreferenceExample(prompt=prompt, chosen=response_text(row, "chosen"),
                             rejected=response_text(row, "rejected"), system=_optional_str(row, "system"),
                             history=_history_pairs(row))


def convert_swift(row: dict) -> PreferenceExample:
    query = required_str(row, "query")
    return PreferenceExample(prompt=query, chosen=response_text(row, "response"),
                             rejected=response_text(row, "rejected_response"), system=_optional_str(row, "system"),
                             history=_history_pairs(row))


def as_messages(row: dict, field: str, default_role: str) -> List[Message]:
    """row[field] as messages: a string is one message of `default_role`; a message dict, or a list of them."""
    if field not in row or row[field] is None:
        raise missing(field)
    value = maybe_parse(row[field])
    if isinstance(value, str):
        return [(default_role, value)]
    if isinstance(value, dict):
        return [normalize_message(value, field)]
    if not isinstance(value, list):
        raise wrong_type(field, value, "a string or a list of messages")
    return normalize_messages(value, field)


def _final_answer(tail: List[Message], field: str) -> str:
    if len(tail) != 1 or tail[0][0] != "assistant":
        raise RowError(field, f"after the shared prompt it holds {len(tail)} message(s) "
                              f"({', '.join(r for r, _ in tail) or 'none'}), expected one assistant answer",
                       "chosen and rejected must differ only in the final assistant turn",
                       reason=f"bad conversation in {field}")
    return tail[0][1]


def convert_trl(row: dict) -> PreferenceExample:
    chosen = as_messages(row, "chosen", "assistant")
    rejected = as_messages(row, "rejected", "assistant")
    if any(role != "assistant" for role, _ in chosen + rejected):
        # implicit prompt: whole conversations sharing a prefix, which ends with the user's turn
        k = 0
        while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
            k += 1
        while k > 0 and chosen[k - 1][0] != "user":
            k -= 1
        context, c_tail, r_tail = chosen[:k], chosen[k:], rejected[k:]
        if not context:
            raise RowError("chosen", "chosen and rejected share no prompt (no common turns ending with the user's)",
                           "start both conversations with the same user turn(s)", reason="missing prompt")
    else:
        context = as_messages(row, "prompt", "user") if row.get("prompt") is not None else []
        if not context:
            raise missing("prompt")
        c_tail, r_tail = chosen, rejected
    system, history, prompt = split_conversation(context, "prompt")
    system = _optional_str(row, "system") or system
    if not history and row.get("history") is not None:
        history = _history_pairs(row)
    return PreferenceExample(prompt=prompt, chosen=_final_answer(c_tail, "chosen"),
                             rejected=_final_answer(r_tail, "rejected"), system=system, history=history)


# Chatbot Arena's vote values (lmsys/chatbot_arena_conversations `winner`); prefswift web's arena writes the same
ARENA_WINNERS = {"model_a": ("response_a", "response_b"), "model_b": ("response_b", "response_a")}
ARENA_SKIPPED = {"tie": "arena vote: tie", "tie (bothbad)": "arena vote: both bad"}


def convert_arena(row: dict) -> PreferenceExample:
    """A pairwise vote (prefswift web's arena, Chatbot Arena's `winner` values): `prompt`, `response_a`,
    `response_b`, `winner` = model_a | model_b | tie | tie (bothbad); optional `system`, `history`. The winner's
    response is chosen; ties and both-bad votes carry no preference and are skipped (counted by reason)."""
    winner = row.get("winner")
    if winner in ARENA_SKIPPED:
        raise RowFiltered(ARENA_SKIPPED[winner])
    if winner not in ARENA_WINNERS:
        raise RowError("winner", f"is {winner!r}", "use model_a, model_b, tie or \"tie (bothbad)\"",
                       reason="bad winner")
    chosen, rejected = ARENA_WINNERS[winner]
    return PreferenceExample(prompt=required_str(row, "prompt"), chosen=response_text(row, chosen),
                             rejected=response_text(row, rejected), system=_optional_str(row, "system"),
                             history=_history_pairs(row))


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def _hh_turns(text: str, field: str) -> List[Message]:
    """`"\n\nHuman: ...\n\nAssistant: ..."` -> [(user, ...), (assistant, ...), ...]."""
    parts = _HH_TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    if parts[0].strip() or len(parts) < 3:
        raise RowError(field, "is not a `\\n\\nHuman: ... \\n\\nAssistant: ...` dialogue",
                       "give whole dialogues, or use prompt/chosen/rejected columns", reason=f"bad dialogue in {field}")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [(roles[parts[i]], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]


def convert_hh_dialogues(row: dict) -> PreferenceExample:
    """Anthropic HH-RLHF: `chosen` and `rejected` are whole dialogues as text that share everything up to the last
    assistant turn; that shared part is the prompt (earlier turns become history)."""
    chosen = _hh_turns(required_str(row, "chosen"), "chosen")
    rejected = _hh_turns(required_str(row, "rejected"), "rejected")
    if chosen[:-1] != rejected[:-1]:
        raise RowError("rejected", "does not share the dialogue before its last answer with chosen",
                       "both must be the same conversation with a different last answer",
                       reason="chosen and rejected dialogues differ before the last answer")
    for field, turns in (("chosen", chosen), ("rejected", rejected)):
        if turns[-1][0] != "assistant":
            raise RowError(field, "does not end with an Assistant turn", "end each dialogue with the answer",
                           reason=f"bad dialogue in {field}")
    system, history, prompt = split_conversation(chosen[:-1], "chosen")
    return PreferenceExample(prompt=prompt, chosen=chosen[-1][1], rejected=rejected[-1][1], system=system,
                             history=history)


def _is_hh_dialogue(value: Any) -> bool:
    return isinstance(value, str) and "\n\nHuman:" in value[:200] and "\n\nAssistant:" in value


GENERIC_FORMATS: Dict[str, Converter] = {
    "sharegpt": convert_sharegpt,
    "alpaca": convert_alpaca,
    "swift": convert_swift,
    "hh-rlhf": convert_hh_dialogues,
    "trl": convert_trl,
    "arena": convert_arena,
}


def detect_generic_format(row: dict) -> Optional[str]:
    if "conversations" in row or "messages" in row:
        return "sharegpt"
    if "instruction" in row:
        return "alpaca"
    if "query" in row and ("response" in row or "rejected_response" in row):
        return "swift"
    if "winner" in row and "response_a" in row and "response_b" in row:
        return "arena"
    if "prompt" not in row and _is_hh_dialogue(row.get("chosen")):
        return "hh-rlhf"
    if "prompt" in row or isinstance(maybe_parse(row.get("chosen")), list):
        return "trl"
    return None


def detect_format(row: Any) -> Tuple[str, Converter]:
    """(label, converter) of the generic format a row is in (registered datasets' own schemas are matched first by
    `prefswift.data.datasets.detect_source_format`). Raises RowError naming the columns found when nothing fits."""
    if not isinstance(row, dict):
        raise wrong_type("", row, "a JSON object per row")
    name = detect_generic_format(row)
    if name is None:
        raise RowError("", f"unrecognised format (columns: {', '.join(sorted(map(str, row))) or 'none'})",
                       "use sharegpt (conversations+chosen+rejected), alpaca (instruction+chosen+rejected) or "
                       "prompt+chosen+rejected, or map your columns with --columns '{\"yours\": \"prompt\"}'",
                       reason="unrecognised format")
    return name, GENERIC_FORMATS[name]


# ---------------------------------------------------------------- column mapping

CANONICAL_COLUMNS = frozenset({
    "prompt", "chosen", "rejected", "system", "history", "instruction", "input", "query", "response",
    "rejected_response", "conversations", "messages",
    "completion", "label", "kto_tag", "output",  # unpaired (KTO) rows: prefswift.data.unpaired
})


def apply_columns(row: Any, columns: Optional[Dict[str, str]]) -> Any:
    """Rename columns before detection. `{"their_name": "prompt"}` renames their_name -> prompt.

    The LLaMA-Factory direction (`{"prompt": "their_name"}`, as in its dataset_info.json) is accepted too:
    when the key is a canonical name the row lacks and the value is a column the row has, it renames value -> key.
    """
    if not columns or not isinstance(row, dict):
        return row
    out = dict(row)
    for src, dst in columns.items():
        if src in row:
            out[dst] = out.pop(src) if src in out else row[src]
        elif src in CANONICAL_COLUMNS and dst in row:
            out[src] = out.pop(dst) if dst in out else row[dst]
    return out
