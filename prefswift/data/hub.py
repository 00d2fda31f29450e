"""Registered datasets from ModelScope or Hugging Face: one code path for both hubs.

1. Download the repository's README.md (its YAML `configs:` says which files hold each subset/split).
2. Download only those files (or, without `configs:`, the files the usual layouts name: SUBSET/SPLIT.jsonl,
   SUBSET/data/SPLIT-*.parquet, data/SPLIT-*.parquet, SUBSET_SPLIT.json, ...) through the hub's snapshot download
   (prefswift.registry.hub_client), which keeps them in the client's own cache and resumes partial files.
3. Read them locally (prefswift.data.loader.fetch_from_hub with read_local_file: .jsonl/.json/.parquet).

No `MsDataset` and no `datasets.load_dataset(hub_id)`: both depend on `datasets` internals that change between
major versions; this works on datasets 4.x and 5.x. When the hub cannot be reached, the files cached by an
earlier run are used (one log line says so).
"""
import glob
import os
from typing import Callable, List, Optional, Tuple

from ..errors import DataError
from ..registry.hub_client import cache_first, failure_kind, first_line, mark_unreachable, refusal_line, snapshot
from ..registry.hubs import HUB_NAMES
from .sampled import is_side_file

EXTS = ("jsonl", "json", "parquet", "jsonl.gz", "json.gz")  # Anthropic/hh-rlhf ships train.jsonl.gz


class HubUnreachable(Exception):
    """The hub could not be reached and nothing usable is cached (the caller names --dataset_dir)."""


def read_card_configs(readme_path: str) -> list:
    """The `configs:` list of a dataset card's YAML front matter ([] when there is none)."""
    if not os.path.isfile(readme_path):
        return []
    with open(readme_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if not text.startswith("---"):
        return []
    end = text.find("\n---", 3)
    if end < 0:
        return []
    import yaml

    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError:
        return []
    configs = meta.get("configs") if isinstance(meta, dict) else None
    return configs if isinstance(configs, list) else []


def config_patterns(configs: list, subset: Optional[str], split: str) -> Optional[List[str]]:
    """Repo-relative glob patterns of one subset/split per the card's `configs:`; None = the card does not say."""
    if not configs:
        return None
    wanted = subset or "default"
    config = next((c for c in configs if isinstance(c, dict) and c.get("config_name") == wanted), None)
    if config is None and subset is None:
        defaults = [c for c in configs if isinstance(c, dict) and c.get("default")]
        config = defaults[0] if defaults else (configs[0] if len(configs) == 1 else None)
    if config is None:
        return None
    data_files = config.get("data_files")
    data_dir = (config.get("data_dir") or "").strip("/")
    paths: List[str] = []
    if isinstance(data_files, (str, list)) and not (isinstance(data_files, list) and data_files
                                                    and isinstance(data_files[0], dict)):
        if split == "train":  # a plain list of files is the train split
            paths = [data_files] if isinstance(data_files, str) else list(data_files)
    elif isinstance(data_files, list):
        for entry in data_files:
            if isinstance(entry, dict) and entry.get("split") == split:
                p = entry.get("path")
                paths += [p] if isinstance(p, str) else list(p or [])
    elif isinstance(data_files, dict):
        p = data_files.get(split)
        paths = [p] if isinstance(p, str) else list(p or [])
    elif data_files is None and data_dir:
        return layout_patterns(None, split, prefix=data_dir)
    if data_dir:
        paths = [f"{data_dir}/{p}" for p in paths]
    return paths or []


def layout_patterns(subset: Optional[str], split: str, prefix: str = "") -> List[str]:
    """The usual file layouts of one subset/split, most specific first (repo-relative globs)."""
    base = "/".join(x for x in (prefix, subset) if x)
    at = (lambda p: f"{base}/{p}") if base else (lambda p: p)
    pats: List[str] = []
    for ext in EXTS:
        pats += [at(f"{split}.{ext}"), at(f"{split}-*.{ext}"), at(f"data/{split}-*.{ext}"), at(f"data/{split}.{ext}"),
                 at(f"{split}/*.{ext}")]
    if subset:
        for ext in EXTS:
            pats += [f"{subset}_{split}.{ext}", f"{subset}-{split}.{ext}", f"data/{subset}/{split}-*.{ext}",
                     f"data/{subset}-{split}-*.{ext}"]
        if split == "train":
            pats += [f"{subset}.{ext}" for ext in EXTS]
    return pats


def _download_patterns(subset: Optional[str], split: str) -> List[str]:
    """What to download when the card has no `configs:` (fnmatch: `*` crosses folders)."""
    if subset:
        return [f"{subset}/*", f"{subset}_*", f"{subset}-*", f"{subset}.*", f"data/{subset}/*", f"data/{subset}-*"]
    return [f"*{split}*"]


def match_files(root: str, patterns: List[str], *, first_only: bool = False) -> List[str]:
    """Data files under root matching the patterns: all of them (a card's list), or with first_only those of the
    first pattern that matches anything (the usual layouts, most specific first)."""
    hits: List[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
            if (os.path.isfile(path) and path.lower().endswith(tuple("." + e for e in EXTS)) and path not in hits
                    and not is_side_file(path)):  # a sampled file's dropped rows and summary are not data
                hits.append(path)
        if hits and first_only:
            break
    return hits


def split_files(dataset_id: str, subset: Optional[str], split: str, hub: str, *, token: Optional[str] = None,
                log: Callable = print) -> Tuple[str, List[str]]:
    """(snapshot dir, local files) of one subset/split; [] when the repository has no such split.

    Raises DataError for a gated/private repo (how to log in) and a missing repo; HubUnreachable when the hub
    cannot be reached and no earlier run cached the files."""
    if cache_first():  # --check_model_is_latest false: files an earlier run fetched, with no request
        try:
            root = snapshot(hub, dataset_id, repo_type="dataset", allow_patterns=["README.md"], token=token,
                            local_only=True)
            patterns = config_patterns(read_card_configs(os.path.join(root, "README.md")), subset, split)
            files = split_files_in(root, patterns, subset, split)
            if files:
                return root, files
        except Exception:  # noqa: BLE001 - not cached: ask the hub as usual
            pass
    local_only, offline_cause = False, None
    try:
        root = snapshot(hub, dataset_id, repo_type="dataset", allow_patterns=["README.md"], token=token)
    except Exception as e:  # noqa: BLE001 - sorted below
        kind = failure_kind(e)
        if kind == "network":
            local_only, offline_cause = True, e
            mark_unreachable(hub)
            root = _cached(hub, dataset_id, ["README.md"], token, e)
            log(f"[data] {HUB_NAMES[hub]} unreachable ({first_line(e, 120)}); using the files cached for "
                f"{dataset_id}")
        else:
            raise hub_failure(e, hub, dataset_id) from None
    configs = read_card_configs(os.path.join(root, "README.md"))
    patterns = config_patterns(configs, subset, split)
    download = patterns if patterns is not None else _download_patterns(subset, split)
    if not download:
        return root, []
    try:
        root = snapshot(hub, dataset_id, repo_type="dataset", allow_patterns=download + ["README.md"],
                        token=token, local_only=local_only)
    except Exception as e:  # noqa: BLE001
        if failure_kind(e) != "network" and not local_only:
            raise hub_failure(e, hub, dataset_id) from None
        mark_unreachable(hub)
        local_only, offline_cause = True, offline_cause or e
        root = _cached(hub, dataset_id, download + ["README.md"], token, e)
    files = split_files_in(root, patterns, subset, split)
    if not files and local_only:  # offline, and an earlier run did not fetch this subset/split
        raise HubUnreachable(first_line(offline_cause, 160))
    return root, files


def split_files_in(root: str, patterns: Optional[List[str]], subset: Optional[str], split: str) -> List[str]:
    """The subset/split's files in a snapshot: those the card's `configs:` name, else the first usual layout found."""
    if patterns is not None:
        return match_files(root, patterns)
    return match_files(root, layout_patterns(subset, split), first_only=True)


def _cached(hub: str, dataset_id: str, patterns: List[str], token: Optional[str], cause: Exception) -> str:
    try:
        return snapshot(hub, dataset_id, repo_type="dataset", allow_patterns=patterns, token=token, local_only=True)
    except Exception:  # noqa: BLE001 - nothing cached: report the network failure
        raise HubUnreachable(first_line(cause, 160)) from None


def hub_failure(exc: Exception, hub: str, dataset_id: str) -> Exception:
    """One clear error for a hub refusal; other failures are returned unchanged for the caller's message."""
    from ..errors import did_you_mean
    from .datasets import list_datasets

    def closest() -> str:
        return did_you_mean(dataset_id, [i for i in ((s.hf_id if hub == "hf" else s.ms_id) for s in list_datasets())
                                         if i])

    other = "hf" if hub == "modelscope" else "modelscope"
    line = refusal_line(exc, hub, f"dataset {dataset_id}", closest, "check the id (`prefswift list datasets` shows "
                        f"the registered ones), or try --hub {other}")
    return DataError(line) if line else exc
