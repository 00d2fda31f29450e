"""The arena's votes: one JSONL row per vote, the rows `prefswift dpo --dataset votes.jsonl` trains on, and the
win-rate table computed from them the way `eval --mode winrate` computes its own (prefswift.evaluate.winrate).

A row (the `arena` format of prefswift.data.formats; `winner` takes Chatbot Arena's values):
  {"prompt", "response_a", "response_b", "model_a", "model_b", "winner": model_a | model_b | tie | tie (bothbad),
   "annotator", "tstamp" (unix seconds), "time" (UTC, ISO 8601), "match_id", "sample_a", "sample_b"}
`response_a` is what the person saw on the left, written by `model_a` (positions are drawn at random per match).

A match waits for its vote on disk, not in the server's memory (`PendingMatches`): one JSON file per match, written
atomically into `.<votes file name>.pending/` next to the votes file, removed once its vote is appended. A vote after a
restart of the server (or from another tab) therefore still finds its match, and a match already voted on is refused.
"""
import json
import os
import random
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..evaluate.winrate import summarize
from ..files import write_json_atomic

CHOICES = {"A": "model_a", "B": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}


class VoteError(ValueError):
    """A vote the arena refuses (answered with a 4xx and this message)."""


@dataclass
class Match:
    """Two answers to one prompt, waiting for a vote. `left`/`right`: (run name, sample index, response)."""
    prompt: str
    left: tuple
    right: tuple
    system: Optional[str] = None
    id: str = field(default_factory=lambda: secrets.token_hex(8))


MATCH_ID = re.compile(r"^[0-9a-f]{16}$")  # Match.id: 8 random bytes in hex (and so a safe file name)


class PendingMatches:
    """The matches shown and not voted on yet, one file each in `.<votes>.pending/` beside the votes file.
    Matches left unvoted for KEEP_S are removed when a new one is stored."""
    KEEP_S = 30 * 86400

    def __init__(self, votes: Path):
        votes = Path(votes)
        self.dir = votes.with_name(f".{votes.name}.pending")

    def _path(self, match_id: str) -> Optional[Path]:
        return self.dir / f"{match_id}.json" if MATCH_ID.match(match_id) else None

    def put(self, match: Match) -> None:
        self._prune()
        write_json_atomic(self._path(match.id), {**asdict(match), "created": time.time()})

    def get(self, match_id: str) -> Optional[Match]:
        """The open match `match_id`, or None (never shown, already voted on, or its file unreadable)."""
        path = self._path(match_id)
        try:
            saved = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
            return Match(prompt=saved["prompt"], left=tuple(saved["left"]), right=tuple(saved["right"]),
                         system=saved.get("system"), id=saved["id"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def drop(self, match_id: str) -> None:
        path = self._path(match_id)
        if path is not None:
            path.unlink(missing_ok=True)
            try:
                self.dir.rmdir()  # only when no other match waits
            except OSError:
                pass

    def _prune(self) -> None:
        if not self.dir.is_dir():
            return
        old = time.time() - self.KEEP_S
        for path in self.dir.glob("*.json"):
            try:
                if MATCH_ID.match(path.stem) and path.stat().st_mtime < old:
                    path.unlink()
            except OSError:
                pass


def new_match(prompt: str, first: tuple, second: tuple, rng: random.Random, system: Optional[str] = None) -> Match:
    """A match with the two answers in a random order: nobody can tell from the position which run wrote which."""
    left, right = (first, second) if rng.random() < 0.5 else (second, first)
    return Match(prompt=prompt, left=left, right=right, system=system)


def vote_row(match: Match, choice: str, annotator: str, now: Optional[float] = None) -> dict:
    if choice not in CHOICES:
        raise VoteError(f"choice {choice!r}: give one of {', '.join(CHOICES)}")
    annotator = (annotator or "").strip()
    if not annotator:
        raise VoteError("annotator: give your name (it is written with each vote)")
    now = time.time() if now is None else now
    row = {"prompt": match.prompt, "response_a": match.left[2], "response_b": match.right[2],
           "model_a": match.left[0], "model_b": match.right[0], "winner": CHOICES[choice], "annotator": annotator,
           "tstamp": round(now, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
           "match_id": match.id, "sample_a": match.left[1], "sample_b": match.right[1]}
    if match.system:
        row["system"] = match.system
    return row


class VoteFile:
    """Appends vote rows to a JSONL file: each row written whole with one write() under a lock and fsynced, so a
    crash leaves every earlier row intact."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()

    def append(self, row: dict) -> None:
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size and not self._ends_with_newline():
                    line = b"\n" + line  # a half line left by a crash stays a line of its own
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def rows(self) -> List[dict]:
        """Every whole vote row (lines that are not JSON objects are skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and row.get("winner") in CHOICES.values():
                out.append(row)
        return out


def outcome_for(row: dict, run: str) -> str:
    """The vote's outcome for `run` (one of the row's two runs): win, loss or tie (both-bad counts as a tie)."""
    if row["winner"] in ("tie", "tie (bothbad)"):
        return "tie"
    winner = row["model_a"] if row["winner"] == "model_a" else row["model_b"]
    return "win" if winner == run else "loss"


def winrate_table(rows: List[dict]) -> List[Dict]:
    """Per pair of distinct runs (alphabetical: the first is the one whose win rate is given): the counts and the
    win rate with its 95% Wilson interval from prefswift.evaluate.winrate.summarize (ties count half), plus how
    many of the ties were both-bad votes. Votes between two samples of one run have no pair to score."""
    pairs: Dict[tuple, List[dict]] = {}
    for row in rows:
        a, b = row.get("model_a"), row.get("model_b")
        if a and b and a != b:
            pairs.setdefault(tuple(sorted((a, b))), []).append(row)
    table = []
    for (first, second), votes in sorted(pairs.items()):
        summary = summarize([outcome_for(r, first) for r in votes])
        table.append({"run": first, "opponent": second, **summary,
                      "both_bad": sum(r["winner"] == "tie (bothbad)" for r in votes)})
    return table


__all__ = ["Match", "PendingMatches", "new_match", "vote_row", "VoteFile", "VoteError", "winrate_table", "outcome_for",
           "CHOICES"]
