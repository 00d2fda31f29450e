"""Supervised fine-tuning rows: whole conversations, and the tokens the loss is taken on.

Formats (detected on a file's first row; registered datasets name their converter):

* **messages** (TRL / OpenAI) or **sharegpt** (`conversations` with `from`/`value`): a system message (or a `system`
  column), then user and assistant turns alternating, ending with an assistant turn. Every assistant turn is trained.
* **alpaca**: `instruction`, optional `input` (appended on a new line), `output`, optional `system` and `history`
  ([[user, assistant], ...]: trained too, as earlier assistant turns).
* **prompt-completion** (TRL): `prompt` and `completion`, each a string or messages; only the completion is trained
  (TRL's completion-only loss), even where the prompt holds earlier assistant turns.
* **swift** (ms-swift): `query`, `response`, optional `history` and `system`.
* a **preference pair** (any paired format `prefswift dpo` reads): its prompt and chosen answer.

`encode_sft` renders a conversation with the chat template and marks the trained tokens: the assistant's answers
with their end-of-turn suffix (`Template.render_response`), never the headers, prompts or system text; with
`loss_on="last"` only the final answer.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .example import PreferenceExample
from .formats import (RowError, _history_pairs, _optional_str, as_messages, detect_format, missing, normalize_messages,
                      required_str, wrong_type)
from .unpaired import UnpairedExample

LOSS_ON = ("all", "last")


@dataclass
class SftExample:
    """One conversation: `turns` = [(user, assistant), ...]; `trained` = which assistant turns carry the loss (None:
    all of them)."""

    turns: List[Tuple[str, str]]
    system: Optional[str] = None
    trained: Optional[Tuple[int, ...]] = None
    origin: Optional[str] = field(default=None, compare=False, repr=False)

    def key(self) -> tuple:
        """What makes two rows the same (duplicates, the eval split)."""
        return (self.system, tuple(map(tuple, self.turns)))


def _conversation(messages: Sequence[Tuple[str, str]], name: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """(system, [(user, assistant), ...]) of messages that alternate user/assistant and end with an answer."""
    msgs = list(messages)
    system = msgs.pop(0)[1] if msgs and msgs[0][0] == "system" else None
    if not msgs or msgs[-1][0] != "assistant":
        raise RowError(name, "does not end with an assistant answer",
                       "end each conversation with the assistant's answer (the text that is trained)",
                       reason=f"bad conversation in {name}")
    turns = []
    for i in range(0, len(msgs), 2):
        pair = msgs[i:i + 2]
        if len(pair) < 2 or pair[0][0] != "user" or pair[1][0] != "assistant":
            raise RowError(name, f"message {i} is out of order (roles must alternate user, assistant, ...)",
                           "make the turns alternate user/assistant after an optional system message",
                           reason=f"bad conversation in {name}")
        turns.append((pair[0][1], pair[1][1]))
    return system, turns


def convert_sft_messages(row: dict) -> SftExample:
    name = "messages" if "messages" in row else "conversations"
    if row.get(name) is None:
        raise missing(name)
    system, turns = _conversation(normalize_messages(row[name], name), name)
    return SftExample(turns, _optional_str(row, "system") or system)


def convert_sft_alpaca(row: dict) -> SftExample:
    instruction = required_str(row, "instruction")
    extra = _optional_str(row, "input")
    prompt = f"{instruction}\n{extra}" if extra else instruction
    return SftExample(_history_pairs(row) + [(prompt, required_str(row, "output"))], _optional_str(row, "system"))


def convert_sft_alpaca_zh(row: dict) -> SftExample:
    """alpaca-gpt4-data-zh: an `input` opening with "输入：" (input:) loses it, as in ms-swift."""
    value = row.get("input")
    if isinstance(value, str) and value.startswith("输入："):
        row = dict(row, input=value[3:])
    return convert_sft_alpaca(row)


def convert_sft_swift(row: dict) -> SftExample:
    return SftExample(_history_pairs(row) + [(required_str(row, "query"), required_str(row, "response"))],
                      _optional_str(row, "system"))


def convert_sft_prompt_completion(row: dict) -> SftExample:
    """TRL's prompt-completion rows: only the completion (one assistant answer) is trained."""
    prompt = as_messages(row, "prompt", "user")
    completion = as_messages(row, "completion", "assistant")
    if len(completion) != 1 or completion[0][0] != "assistant":
        raise RowError("completion", f"holds {len(completion)} message(s), expected one assistant answer",
                       "give the completion as a string or one assistant message", reason="bad completion")
    system, turns = _conversation(prompt + completion, "prompt")
    return SftExample(turns, _optional_str(row, "system") or system, trained=(len(turns) - 1,))


def from_preference(ex: Any) -> SftExample:
    """A preference pair's prompt and chosen answer (a desirable KTO row's completion) as a conversation."""
    if isinstance(ex, UnpairedExample):
        return SftExample(list(ex.history) + [(ex.prompt, ex.completion)], ex.system)
    return SftExample(list(ex.history) + [(ex.prompt, ex.chosen)], ex.system)


def _pair_to_sft(row: dict) -> SftExample:
    return from_preference(detect_format(row)[1](row))


SFT_FORMATS: Dict[str, Callable[[dict], SftExample]] = {
    "messages": convert_sft_messages, "alpaca": convert_sft_alpaca, "swift": convert_sft_swift,
    "prompt-completion": convert_sft_prompt_completion, "pairs (prompt + chosen)": _pair_to_sft,
}


def detect_sft_format(row: Any) -> Tuple[str, Callable[[dict], SftExample]]:
    """(label, converter) of an SFT row; RowError naming the columns found when nothing fits."""
    if not isinstance(row, dict):
        raise wrong_type("", row, "a JSON object per row")
    if "chosen" in row or "rejected" in row:
        name = "pairs (prompt + chosen)"
    elif "messages" in row or "conversations" in row:
        name = "messages"
    elif "instruction" in row and "output" in row:
        name = "alpaca"
    elif "prompt" in row and "completion" in row:
        name = "prompt-completion"
    elif "query" in row and "response" in row:
        name = "swift"
    else:
        raise RowError("", f"unrecognised SFT format (columns: {', '.join(sorted(map(str, row))) or 'none'})",
                       "use messages (or sharegpt conversations), alpaca (instruction/input/output), prompt + "
                       "completion, or query + response; or map your columns with --columns",
                       reason="unrecognised format")
    return name, SFT_FORMATS[name]


def check_sft(ex: SftExample) -> None:
    """Raise RowError when a conversation cannot train anything."""
    if ex.system is not None and not isinstance(ex.system, str):
        raise RowError("system", "expected a string", "fix the value's type", reason="wrong type in system")
    for i, (user, answer) in enumerate(ex.turns):
        for role, text in (("user", user), ("assistant", answer)):
            if not isinstance(text, str):
                raise RowError(role, f"turn {i}: expected a string, got {type(text).__name__}",
                               "fix the value's type", reason=f"wrong type in {role} text")
            if not text.strip():
                raise RowError(role, f"turn {i} is empty", f"give every turn a non-empty {role} text",
                               reason=f"empty {role} turn")


# ---------------------------------------------------------------- encoding

def render_with_spans(template, ex: SftExample) -> Tuple[str, List[Tuple[int, int]]]:
    """(the conversation's text, the [start, end) character span of every assistant answer in it). Earlier answers
    open with the template's history prefix, the last with its assistant prefix, exactly as `render_prompt` writes a
    conversation's history and its final turn."""
    spec, turns = template.spec, ex.turns
    history_prefix = spec.assistant_prefix if spec.history_assistant_prefix is None else spec.history_assistant_prefix
    text = template.render_prompt(ex.system, turns[:-1], turns[-1][0]) + template.render_response(turns[-1][1])
    spans = []
    for i, (user, answer) in enumerate(turns):
        before = template.render_prompt(ex.system, turns[:i], user)
        if i < len(turns) - 1:
            before = before[:len(before) - len(spec.assistant_prefix)] + history_prefix
        response = template.render_response(answer)
        if not text.startswith(before + response):  # a template whose turns do not compose
            raise RowError("messages", f"template {template.name} renders turn {i} differently inside the "
                           "conversation", "use --loss_on last or another --template", reason="template mismatch")
        spans.append((len(before), len(before) + len(response)))
    return text, spans


def encode_sft(template, tokenizer, ex: SftExample, loss_on: str = "all") -> Tuple[List[int], List[int]]:
    """(input_ids, loss_mask): the token ids of the whole conversation as `tokenizer.apply_chat_template` gives them
    (the text tokenized in one piece), 1 on the tokens of the trained answers (those starting inside one)."""
    from ..templates.base import fill_special_tokens

    text, spans = render_with_spans(template, ex)
    trained = set(range(len(spans)) if ex.trained is None else ex.trained)
    if loss_on == "last":
        trained &= {len(spans) - 1}
    # {{bos_token}} / {{eos_token}} lie inside fragments, never across a span's edge: fill each prefix on its own
    filled = [(len(fill_special_tokens(tokenizer, text[:s])), len(fill_special_tokens(tokenizer, text[:e])))
              for i, (s, e) in enumerate(spans) if i in trained]
    full = fill_special_tokens(tokenizer, text)
    starts = _token_starts(tokenizer, full)
    ids = starts[0]
    mask = [int(any(s <= start < e for s, e in filled)) for start in starts[1]]
    return ids, mask


def _token_starts(tokenizer, text: str) -> Tuple[List[int], List[int]]:
    """(ids, the character each token starts at) of `text` tokenized in one piece."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [s for s, _ in enc["offset_mapping"]]
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    starts, done = [], 0
    for k in range(len(ids)):  # a slow tokenizer: where the decoded prefix of k tokens ends
        starts.append(done)
        done = len(tokenizer.decode(ids[:k + 1]))
    return ids, starts


def truncate_sft(ids: List[int], mask: List[int], max_length: int) -> Tuple[List[int], List[int], int]:
    """Keep the start (TRL's SFT truncation): (ids, mask, tokens cut)."""
    cut = max(0, len(ids) - max_length)
    return ids[:max_length], mask[:max_length], cut


__all__ = ["SftExample", "LOSS_ON", "detect_sft_format", "check_sft", "from_preference", "encode_sft",
           "render_with_spans", "truncate_sft", "SFT_FORMATS", "PreferenceExample"]
