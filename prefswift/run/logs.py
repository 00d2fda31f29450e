"""A run's `logging.jsonl`: one JSON object a logged step (TRL's metric names, `step`, `epoch`), appended by training
(`train/callbacks.py`) and read by the plots, the console's summary and every command that shows a run.

Reading is forgiving on purpose: a run that is writing its log can be read at any moment, so a last line cut in half
(or any line that is not a JSON object) is skipped and counted, never an error.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

LOG_FILE = "logging.jsonl"


@dataclass
class LogRows:
    rows: List[Dict] = field(default_factory=list)
    bad_lines: List[int] = field(default_factory=list)  # 1-based numbers of the lines that are not a JSON object


def read_log(path: Path) -> LogRows:
    """The rows of a logging.jsonl (a missing file has none); lines that are not JSON objects are listed, not read."""
    out = LogRows()
    path = Path(path)
    if not path.is_file():
        return out
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            out.rows.append(row)
        else:
            out.bad_lines.append(number)
    return out


def truncate_log_after(log_path: Path, step: int) -> None:
    """On resume, drop log rows written after the checkpoint we resume from (they will be logged again)."""
    if not log_path.is_file():
        return
    keep = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    tmp = log_path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    tmp.replace(log_path)


__all__ = ["LOG_FILE", "LogRows", "read_log", "truncate_log_after"]
