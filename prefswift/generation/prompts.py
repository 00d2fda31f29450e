"""OpenAI chat messages -> (system, history, query), the form a prefswift template encodes (`Template.encode_prompt`).

Accepted: an optional leading system (or `developer`) message, then user/assistant turns alternating, ending with a
user message. Content is a string or a list of text parts (`[{"type": "text", "text": ...}]`). Anything else (tool
calls, images, two users in a row) is refused with one line naming the message.
"""
from typing import List, Optional, Tuple

from .types import EngineError


def _bad(message: str):
    return EngineError(400, message, param="messages")


def message_text(i: int, message) -> str:
    if not isinstance(message, dict):
        raise _bad(f"messages[{i}] must be an object with role and content")
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad(f"messages[{i}].content[{j}]: only text parts ({{\"type\": \"text\", \"text\": ...}}) are "
                           "supported by this text model")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad(f"messages[{i}].content must be a string or a list of text parts")


def chat_to_turns(messages) -> Tuple[Optional[str], List[Tuple[str, str]], str]:
    """(system or None, [(user, assistant), ...], the last user message)."""
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list")
    system = None
    rest = list(enumerate(messages))
    if isinstance(messages[0], dict) and messages[0].get("role") in ("system", "developer"):
        system = message_text(0, messages[0])
        rest = rest[1:]
    turns: List[str] = []
    for i, m in rest:
        role = m.get("role") if isinstance(m, dict) else None
        want = "user" if len(turns) % 2 == 0 else "assistant"
        if role != want:
            where = "only the first message may be a system message" if role in ("system", "developer") else \
                f"expected a {want} message (roles alternate user/assistant after an optional system message)"
            raise _bad(f"messages[{i}]: role {role!r}: {where}")
        turns.append(message_text(i, m))
    if len(turns) % 2 == 0:
        raise _bad("the last message must be a user message (the model answers it)")
    history = [(turns[k], turns[k + 1]) for k in range(0, len(turns) - 1, 2)]
    return system, history, turns[-1]


__all__ = ["chat_to_turns", "message_text"]
