"""LLaMA-Factory's `dataset_info.json`: `--dataset my_set --dataset_dir data` finds
`data/dataset_info.json` -> {"my_set": {"file_name": "my.json", "ranking": true, "columns": {...}}}."""
import json
import os
from typing import Optional, Tuple

from ..errors import data_error

INFO_FILE = "dataset_info.json"


def lookup(dataset_dir: Optional[str], name: str) -> Optional[Tuple[str, Optional[dict]]]:
    """(local file path, column mapping) for a dataset declared in DIR/dataset_info.json, else None."""
    if not dataset_dir:
        return None
    info_path = os.path.join(dataset_dir, INFO_FILE)
    if not os.path.isfile(info_path):
        return None
    try:
        with open(info_path, encoding="utf-8") as f:
            info = json.load(f)
    except json.JSONDecodeError as e:
        raise data_error(info_path, None, "", f"not valid JSON ({e.msg} at line {e.lineno})",
                         "fix the file or remove it") from None
    entry = info.get(name) if isinstance(info, dict) else None
    if entry is None:
        return None
    file_name = entry.get("file_name") if isinstance(entry, dict) else None
    if not isinstance(file_name, str):
        raise data_error(info_path, None, f"{name}.file_name", "missing or not a string",
                         "name the data file relative to --dataset_dir")
    path = os.path.join(dataset_dir, file_name)
    if not os.path.exists(path):
        raise data_error(info_path, None, f"{name}.file_name", f"{path} does not exist", "fix the path")
    columns = entry.get("columns")
    return path, columns if isinstance(columns, dict) else None
