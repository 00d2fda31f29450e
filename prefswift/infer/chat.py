"""Interactive chat (`prefswift infer` without a dataset).

At a terminal: answers are streamed token by token after a `<<< ` prompt. Commands (typed alone on a line):
  exit | quit        leave
  clear              forget the conversation history (the system prompt stays)
  reset-system       the next input becomes the new system prompt (empty: back to the starting one);
                     `reset-system TEXT` sets it directly. The history is cleared.
Multi-line input: end a line with a backslash `\\` to continue the message on the next line.

From a pipe (stdin not a terminal) the same input is read — one prompt per line, the same commands and `\\`
continuations — and every answer is written to stdout as one JSON line:
  {"query": ..., "response": ..., "turn": n, "prompt_tokens": n}
(`turn` counts the answered turns since the last clear; notices go to stderr), so scripts can parse it.
"""
import json
import sys
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Callable, List, Optional, TextIO, Tuple

from ..errors import PrefswiftError
from ..generation.local import LocalEngine, SamplingParams

EXIT_COMMANDS = ("exit", "quit")
CONTINUATION = "\\"


@dataclass
class Reply:
    query: str
    response: str
    prompt_ids: List[int]


@dataclass
class ChatSession:
    """Multi-turn state around the engine: history, system prompt, prompt budget. Answer k of the session is drawn
    with seed params.seed + k (sampling is reproducible turn by turn)."""

    engine: LocalEngine
    params: SamplingParams
    system: Optional[str] = None             # None: the template's default system prompt
    max_length: int = 2048                   # prompt + new tokens; oldest turns are dropped beyond it
    history: List[Tuple[str, str]] = field(default_factory=list)
    dropped_turns: int = 0
    asked: int = 0

    def __post_init__(self):
        self.start_system = self.system

    def prompt_ids(self, query: str) -> List[int]:
        lm = self.engine.loaded
        budget = max(1, self.max_length - self.params.max_tokens)
        while True:
            ids = lm.template.encode_prompt(lm.tokenizer, self.system, self.history, query)
            if len(ids) <= budget or not self.history:
                return ids
            self.history.pop(0)          # too long: forget the oldest turn
            self.dropped_turns += 1

    def ask(self, query: str, on_text: Optional[Callable[[str], None]] = None) -> Reply:
        """The answer to `query` after the history; `on_text` gets its pieces as they are generated."""
        ids = self.prompt_ids(query)
        params = replace(self.params, seed=None if self.params.seed is None else self.params.seed + self.asked)
        self.asked += 1
        pieces = []
        with closing(self.engine.stream(ids, params)) as stream:   # Ctrl-C: the answer leaves the batch at once
            for piece in stream:
                pieces.append(piece)
                if on_text is not None:
                    on_text(piece)
        response = "".join(pieces)
        self.history.append((query, response))
        return Reply(query, response, ids)

    def clear(self) -> None:
        self.history = []

    def reset_system(self, system: Optional[str]) -> None:
        self.system = system if system else self.start_system
        self.history = []


def writer(out: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text)
        out.flush()
    return write


def line_reader(inp: TextIO, out: Optional[TextIO]) -> Callable[[str], Optional[str]]:
    """prompt -> one line (None at end of input). At a real terminal: input() with readline line editing."""
    if out is not None and inp is sys.stdin and out is sys.stdout and inp.isatty():
        try:
            import readline  # noqa: F401  (arrow keys and history for input())
        except ImportError:
            pass

        def read_tty(prompt: str) -> Optional[str]:
            try:
                return input(prompt)
            except EOFError:
                return None

        return read_tty

    def read_stream(prompt: str) -> Optional[str]:
        if out is not None:
            out.write(prompt)
            out.flush()
        line = inp.readline()
        return line.rstrip("\r\n") if line else None

    return read_stream


def replacing_undecodable(read_line: Callable[[str], Optional[str]], warn: Callable[[str], None]):
    """read_line whose lines hold U+FFFD where the input had bytes that are not UTF-8 (read as lone surrogates:
    `surrogateescape`), with one warning the first time."""
    warned = []

    def read(prompt: str) -> Optional[str]:
        line = read_line(prompt)
        if line is None or not any("\ud800" <= ch <= "\udfff" for ch in line):
            return line
        if not warned:
            warned.append(True)
            warn("[prefswift] warning: the input is not valid UTF-8; the bytes that are not were replaced by U+FFFD "
                 "— save the prompts as UTF-8 (warned once)")
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in line)

    return read


def read_message(read_line: Callable[[str], Optional[str]], prompt: str) -> Optional[str]:
    """One message: lines joined while they end with a backslash. None at end of input."""
    lines: List[str] = []
    while True:
        line = read_line(prompt if not lines else "... ")
        if line is None:
            return "\n".join(lines) if lines else None
        if line.endswith(CONTINUATION):
            lines.append(line[:-1])
            continue
        lines.append(line)
        return "\n".join(lines)


def run_chat(session: ChatSession, inp: TextIO = None, out: TextIO = None, err: TextIO = None,
             interactive: Optional[bool] = None, stream: bool = True, keep_history: bool = False) -> int:
    """The read-answer loop. Returns the number of answered turns. From a pipe every line is a conversation of its
    own unless `keep_history`; at a terminal the conversation goes on until `clear`."""
    inp = inp or sys.stdin
    if inp is sys.stdin and hasattr(inp, "reconfigure"):
        inp.reconfigure(errors="surrogateescape")  # bytes that are not UTF-8 reach `replacing_undecodable`
    out = out or sys.stdout
    err = err or sys.stderr
    if interactive is None:
        interactive = inp.isatty()
    say = (lambda msg: (out.write(msg + "\n"), out.flush())) if interactive else \
        (lambda msg: (err.write(msg + "\n"), err.flush()))
    if interactive:
        say("[prefswift] chat: `exit`/`quit` leaves, `clear` forgets the history, `reset-system` sets a new system "
            "prompt; end a line with \\ to continue it")
    read_line = replacing_undecodable(line_reader(inp, out if interactive else None), say)
    answered = 0
    while True:
        try:
            msg = read_message(read_line, "<<< ")
        except KeyboardInterrupt:  # Ctrl-C at the prompt leaves
            out.write("\n")
            break
        if msg is None:
            if interactive:  # Ctrl-D: leave the shell prompt on a line of its own
                out.write("\n")
                out.flush()
            break
        command = msg.strip()
        lowered = command.lower()
        if not command:
            continue
        if lowered in EXIT_COMMANDS:
            break
        if lowered == "clear":
            session.clear()
            say("[history cleared]")
            continue
        if lowered == "reset-system" or lowered.startswith("reset-system "):
            text = command[len("reset-system"):].strip()
            if not text:
                text = read_message(read_line, "<<<[system] ") or ""
            session.reset_system(text.strip() or None)
            say(f"[system prompt set: {session.system!r}; history cleared]" if session.system is not None
                else "[system prompt reset to the default; history cleared]")
            continue
        if not interactive and not keep_history:
            session.clear()
        try:
            before = session.dropped_turns
            if interactive and stream:
                reply = session.ask(msg, on_text=writer(out))
                out.write("\n")
            else:
                reply = session.ask(msg)
                if interactive:
                    out.write(reply.response + "\n")
            if session.dropped_turns > before:
                say(f"[{session.dropped_turns - before} oldest turn(s) dropped to fit max_length]")
        except PrefswiftError as e:
            say(f"error: {e}")
            continue
        except KeyboardInterrupt:  # Ctrl-C while answering stops the answer, not the chat
            say("\n[answer interrupted; not added to the history]")
            continue
        answered += 1
        if not interactive:
            out.write(json.dumps({"query": reply.query, "response": reply.response, "turn": len(session.history),
                                  "prompt_tokens": len(reply.prompt_ids)}, ensure_ascii=False) + "\n")
            out.flush()
        else:
            out.write("-" * 40 + "\n")
            out.flush()
    return answered


__all__ = ["ChatSession", "Reply", "run_chat", "read_message", "line_reader"]
