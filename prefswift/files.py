"""Writing result files so that a reader (or a crash) never sees half of one."""
import json
import os
from pathlib import Path


def write_json_atomic(path, obj, indent: int = 1) -> Path:
    """`obj` as JSON (UTF-8, newline-terminated) in a temporary sibling, then renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
