"""Sampled preference files (`prefswift sample`): one pair out of K scored completions, the rows written, and what an
earlier (interrupted) run already wrote.

Files: `<name>.jsonl` holds one preference row per prompt that gave a pair, in prompt order — `prompt` (+ `system`,
`history`), `chosen`, `rejected` (TRL's format: every paired command reads it without --columns), and
`chosen_score`, `rejected_score`, `scores` and `samples` (all K, in the order drawn), `policy`, `scorer` and
`prompt_index`; `<name>.dropped.jsonl` one row per prompt that gave none, with its `reason`; `<name>.summary.json`
the settings and the counts. Each row is one line written whole and synced, so a killed run leaves whole rows and at
most one torn last line (cut off when the run resumes).
"""
import hashlib
import json
import math
import os
import random
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import ArgumentError

# why a prompt gives no pair
IDENTICAL = "all samples identical"
FEW = "fewer than 2 non-empty samples"
NOT_FINITE = "non-finite score"
ALL_EQUAL = "all scores equal"
TIE = "tie"  # chosen and rejected scored the same (or are the same text)
DROP_REASONS = (IDENTICAL, FEW, NOT_FINITE, ALL_EQUAL, TIE)
SCORE_FIELDS = ("chosen_score", "rejected_score", "scores", "samples")


def mix_seed(*parts: int) -> int:
    """A 32-bit seed (numpy's limit) from integers (the run's --seed with a block or prompt index): unrelated
    streams for neighbouring indices, the same on every machine."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def choose_pair(samples: Sequence[str], scores: Sequence[float], strategy: str,
                rng: random.Random) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """((chosen index, rejected index), None), or (None, the reason there is no pair). Chosen is the first
    best-scored non-empty sample; rejected the first worst-scored one (best_worst) or one of the others drawn with
    `rng` (best_random). Texts are compared without surrounding whitespace."""
    texts = [s.strip() for s in samples]
    if len(set(texts)) == 1:
        return None, IDENTICAL
    usable = [i for i, t in enumerate(texts) if t]
    if len(usable) < 2:
        return None, FEW
    if not all(math.isfinite(scores[i]) for i in usable):
        return None, NOT_FINITE
    if len({scores[i] for i in usable}) == 1:
        return None, ALL_EQUAL
    best = max(usable, key=lambda i: (scores[i], -i))
    if strategy == "best_worst":
        other = min(usable, key=lambda i: (scores[i], i))
    else:
        others = [i for i in usable if i != best]
        other = others[rng.randrange(len(others))]
    if scores[other] == scores[best] or texts[other] == texts[best]:
        return None, TIE
    return (best, other), None


def _prompt_fields(item) -> dict:
    row = {"prompt": item.prompt}
    if item.system is not None:
        row["system"] = item.system
    if item.history:
        row["history"] = [list(t) for t in item.history]
    return row


def _plain(scores: Sequence[float]) -> List[Optional[float]]:
    return [float(s) if math.isfinite(s) else None for s in scores]  # JSON has no NaN


def pair_row(item, index: int, samples: List[str], scores: List[float], pair: Tuple[int, int], policy: str,
             scorer: str) -> dict:
    best, other = pair
    return {**_prompt_fields(item), "chosen": samples[best], "rejected": samples[other],
            "chosen_score": float(scores[best]), "rejected_score": float(scores[other]), "scores": _plain(scores),
            "samples": list(samples), "policy": policy, "scorer": scorer, "prompt_index": index}


def dropped_row(item, index: int, samples: List[str], scores: List[float], reason: str, policy: str,
                scorer: str) -> dict:
    return {**_prompt_fields(item), "reason": reason, "scores": _plain(scores), "samples": list(samples),
            "policy": policy, "scorer": scorer, "prompt_index": index}


def side_files(path: Path) -> Tuple[Path, Path]:
    """(<name>.dropped.jsonl, <name>.summary.json) next to the output file."""
    stem = path.name[:-len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(stem + ".dropped.jsonl"), path.with_name(stem + ".summary.json")


SIDE_SUFFIXES = (".dropped.jsonl", ".summary.json")


def is_side_file(path) -> bool:
    """True for `<name>.dropped.jsonl` / `<name>.summary.json` lying next to `<name>.jsonl`: what `sample` writes
    besides its rows. They are never data (a folder in hub layout, data/train-*.jsonl, would otherwise match them)."""
    path = Path(path)
    for suffix in SIDE_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.with_name(path.name[:-len(suffix)] + ".jsonl").is_file()
    return False


def read_rows(path: Path) -> List[dict]:
    """The whole rows of a file being appended to; a torn last line (a killed writer) is cut off the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    rows = []
    for lineno, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ArgumentError(f"{path} (line {lineno}): not a whole JSON row ({e.msg}); this file was not written "
                                "by prefswift sample alone — pass another --output_file") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt_index"), int):
            raise ArgumentError(f"{path} (line {lineno}): no prompt_index; not a prefswift sample file — pass "
                                "another --output_file")
        rows.append(row)
    return rows


def resume_point(pairs: List[dict], dropped: List[dict]) -> Tuple[int, Counter]:
    """(how many prompts are done, dropped counts by reason) from what an earlier run wrote: prompts 0..n-1, each
    in exactly one of the two files."""
    done = sorted(r["prompt_index"] for r in pairs + dropped)
    if done != list(range(len(done))):
        raise ArgumentError("the sample files do not hold prompts 0..n-1 once each (written by runs with different "
                            "data or edited); pass another --output_file or --overwrite true")
    return len(done), Counter(r.get("reason", "?") for r in dropped)


class RowAppender:
    """Appends whole JSON lines, each flushed and synced before the next prompt starts."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def drop_summary(counts: Dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v) or "none"


def is_sampled_row(row) -> bool:
    """A row written by `prefswift sample` (or in its shape): a list of K samples next to the pair."""
    return isinstance(row, dict) and isinstance(row.get("samples"), list) and len(row["samples"]) >= 2


__all__ = ["mix_seed", "choose_pair", "pair_row", "dropped_row", "side_files", "read_rows", "resume_point",
           "RowAppender", "drop_summary", "is_sampled_row", "DROP_REASONS", "SCORE_FIELDS"]
