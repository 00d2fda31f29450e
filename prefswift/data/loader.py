"""Reading raw rows: local .json / .jsonl / .parquet files, a registered dataset's local copy, or the hub.

Local copy of a registered dataset (`--dataset NAME:SUBSET --dataset_dir DIR`). ROOT is DIR/NAME when that
folder exists, else DIR. For subset S (nothing for single-subset datasets) and split P (e.g. train, test,
train_prefs), the first of these that exists is read (EXT = jsonl, json or parquet):

  1. the spec's own file names (`local_files`), e.g. ROOT/dpo_en.json for dpo-en-zh-20k:en
  2. ROOT/S/P.EXT, or its shards ROOT/S/P-*.EXT, ROOT/S/data/P-*.EXT (a Hugging Face snapshot)
  3. ROOT/S_P.EXT or ROOT/S-P.EXT
  4. train split only: ROOT/S.EXT (a single-subset dataset also: ROOT/NAME.EXT)

A missing test split is fine (eval_ratio is used instead); a missing train split is an error listing the
paths tried. Only `fetch_from_hub` touches the network: it downloads the repository files of one subset/split
through prefswift.data.hub (both hubs alike) and reads them with `read_local_file`.
"""
import glob
import json
import os
from dataclasses import dataclass
from typing import Callable, List, Optional

from ..errors import DataError, data_error
from ..registry.hubs import HUB_NAMES, which_hub
from .sampled import is_side_file
from .hub import EXTS, split_files  # EXTS: one list of data file types for local copies and hub snapshots



@dataclass
class RawSource:
    """Rows read from one file or one hub split."""
    label: str                                   # names the file, or `dataset:subset (split)`
    rows: list
    line_numbers: Optional[List[int]] = None     # JSONL: 1-based line of each row
    converter: Optional[Callable] = None         # a registered dataset's converter; None = detect the format
    format_name: Optional[str] = None
    row_files: Optional[List[str]] = None        # a folder of several files: the file each row came from,
    file_positions: Optional[List[int]] = None   # its line there (file_lines) or its 0-based row in that file
    file_lines: Optional[List[bool]] = None

    def where(self, index: int) -> str:
        """`label` plus the JSONL line, for error messages (rows themselves are counted 0-based); for a folder of
        several files, the row's own file and its line (or row) there."""
        if self.row_files is not None and 0 <= index < len(self.row_files):
            kind = "line" if self.file_lines[index] else "row"
            return f"{self.row_files[index]} ({kind} {self.file_positions[index]})"
        if self.line_numbers is not None and 0 <= index < len(self.line_numbers):
            return f"{self.label} (line {self.line_numbers[index]})"
        return self.label

    def locate(self, index: int) -> str:
        """Where row `index` is, for reports: its JSONL/CSV line, else its 0-based row number."""
        where = self.where(index)
        return where if where != self.label else f"{self.label} row {index}"


# ---------------------------------------------------------------- local files

def _jsonl_rows(path: str, text: str) -> RawSource:
    rows, lines = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise data_error(f"{path} (line {lineno})", len(rows), "",
                             f"broken JSON line: {e.msg} at column {e.colno}",
                             "fix that line (JSONL = one complete JSON object per line)") from None
        lines.append(lineno)
    return RawSource(path, rows, lines)


DATA_TYPES = ("jsonl", "json", "parquet", "csv", "tsv")


def _csv_rows(path: str, text: str, delimiter: str) -> RawSource:
    """A header row, then one pair per row (column names as in any other format: prompt, chosen, rejected, ...)."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    rows, lines = [], []
    for row in reader:
        rows.append({k: v for k, v in row.items() if k is not None})
        lines.append(reader.line_num)
    return RawSource(path, rows, lines)


def read_local_dir(path: str) -> RawSource:
    """A dataset folder: its README's `configs:` or the usual layouts (train.jsonl, data/train-*.parquet, ...) name
    the training files; a folder holding a single data file is read as that file."""
    from .hub import config_patterns, layout_patterns, match_files, read_card_configs

    readme = os.path.join(path, "README.md")
    patterns = config_patterns(read_card_configs(readme), None, "train") if os.path.isfile(readme) else None
    files = match_files(path, patterns) if patterns else match_files(path, layout_patterns(None, "train"),
                                                                     first_only=True)
    if not files:
        files = [os.path.join(path, f) for f in sorted(os.listdir(path))
                 if os.path.isfile(os.path.join(path, f)) and f.lower().rsplit(".", 1)[-1] in DATA_TYPES
                 and not is_side_file(os.path.join(path, f))]
        if len(files) != 1:
            raise data_error(path, None, "", "a directory without a training split (no README `configs:`, no "
                             "train.jsonl / data/train-*.parquet, not a single data file)",
                             "pass the data file itself, or lay the folder out like a hub dataset")
    sources = [read_local_file(f) for f in files]
    if len(sources) == 1:
        return sources[0]
    # several files: each row keeps its file (and line), so an error names the file, not the folder
    rows = [row for src in sources for row in src.rows]
    row_files = [src.label for src in sources for _ in src.rows]
    lines = [src.line_numbers[i] if src.line_numbers else i for src in sources for i in range(len(src.rows))]
    return RawSource(path, rows, row_files=row_files, file_positions=lines,
                     file_lines=[src.line_numbers is not None for src in sources for _ in src.rows])


def read_local_file(path: str) -> RawSource:
    """Rows of a .json (a list of rows; JSON lines are accepted too), .jsonl, .parquet, .csv or .tsv file (each also
    gzipped: .jsonl.gz, ...), or of a dataset folder (`read_local_dir`).

    Malformed syntax and empty files are always errors (never skipped): nothing sensible can be counted."""
    if os.path.isdir(path):
        return read_local_dir(path)
    if not os.path.isfile(path):
        raise data_error(path, None, "", "file not found", "check the path (relative paths start at the "
                         "current directory)")
    name = path.lower()
    gzipped = name.endswith(".gz")
    ext = (name[:-3] if gzipped else name).rsplit(".", 1)[-1]
    if ext not in DATA_TYPES:
        raise data_error(path, None, "", f"not a data file prefswift reads (.{ext})",
                         "save the rows as .jsonl, .json, .parquet or .csv (gzipped is fine)")
    if ext == "parquet":
        try:
            import pyarrow.parquet as pq
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - any pyarrow failure means an unreadable file
            raise data_error(path, None, "", f"unreadable parquet file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                             "re-export it, or convert it to .jsonl") from None
        source = RawSource(path, rows)
    else:
        import gzip

        try:
            with (gzip.open(path, "rt", encoding="utf-8-sig") if gzipped else open(path, encoding="utf-8-sig")) as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise data_error(path, None, "", f"not UTF-8 text ({e.reason} at byte {e.start})",
                             "save the file as UTF-8") from None
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise data_error(path, None, "", f"not a readable gzip file ({e})", "decompress it or fix it") from None
        if not text.strip():
            raise data_error(path, None, "", "the file is empty", "put preference rows in it")
        if ext in ("csv", "tsv"):
            source = _csv_rows(path, text, "\t" if ext == "tsv" else ",")
        elif ext == "jsonl":
            source = _jsonl_rows(path, text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                if e.msg == "Extra data" and text.lstrip().startswith("{"):
                    source = _jsonl_rows(path, text)  # JSON lines saved as .json
                    data = None
                else:
                    raise data_error(path, None, "", f"malformed JSON at line {e.lineno}, column {e.colno}: "
                                     f"{e.msg}", "fix the syntax (a .json file holds one list of rows; use "
                                     ".jsonl for one row per line)") from None
            else:
                if isinstance(data, dict):
                    data = [data]
                if not isinstance(data, list):
                    raise data_error(path, None, "", f"expected a JSON list of rows, got {type(data).__name__}",
                                     "wrap the rows in [ ... ]")
                source = RawSource(path, data)
    if not source.rows:
        raise data_error(path, None, "", "the file holds no rows", "put preference rows in it")
    return source


# ---------------------------------------------------------------- a registered dataset's local copy

def candidate_paths(spec, subset: str, split: str, dataset_dir: str) -> List[str]:
    """Glob patterns, in order, for one subset/split of a registered dataset under dataset_dir (see module doc)."""
    root = os.path.join(dataset_dir, spec.name)
    if not os.path.isdir(root):
        root = dataset_dir
    single = subset == "default"
    is_train = split == spec.train_split
    patterns: List[str] = []
    keys = [f"{subset}/{split}"] + ([split] if single else []) + ([subset] if is_train else [])
    patterns += [os.path.join(root, spec.local_files[k]) for k in keys if k in spec.local_files]
    base = root if single else os.path.join(root, subset)
    for ext in EXTS:
        patterns += [os.path.join(base, f"{split}.{ext}"), os.path.join(base, f"{split}-*.{ext}"),
                     os.path.join(base, "data", f"{split}-*.{ext}")]
    if not single:
        for ext in EXTS:
            patterns += [os.path.join(root, f"{subset}_{split}.{ext}"), os.path.join(root, f"{subset}-{split}.{ext}")]
    if is_train:
        stem = spec.name if single else subset
        patterns += [os.path.join(root, f"{stem}.{ext}") for ext in EXTS]
    return patterns


def find_local_files(spec, subset: str, split: str, dataset_dir: str) -> List[str]:
    for pattern in candidate_paths(spec, subset, split, dataset_dir):
        hits = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
        if hits:
            return hits
    return []


# ---------------------------------------------------------------- the hub

def fetch_from_hub(dataset_id: str, subset: Optional[str], split: str, hub: str, **kw) -> list:
    """All rows of one split from the hub (see prefswift.data.hub). The only function here that uses the network
    (tests replace it). kw: token, log. A split the repository does not have raises FileNotFoundError."""
    root, files = split_files(dataset_id, subset, split, hub, **kw)
    if not files:
        raise FileNotFoundError(f"no '{split}' files for subset {subset or 'default'} in the {HUB_NAMES[hub]} "
                                f"repository {dataset_id}")
    rows: list = []
    for path in files:
        rows += read_local_file(path).rows
    return rows


def hub_and_id(spec, hub: Optional[str], log=print) -> tuple:
    """(hub, dataset id) to load `spec` from: the requested hub, or the other one when only it has the dataset."""
    which = which_hub(hub)
    dataset_id = spec.ms_id if which == "modelscope" else spec.hf_id
    if dataset_id is None:  # only one hub has it
        which = "hf" if which == "modelscope" else "modelscope"
        dataset_id = spec.ms_id if which == "modelscope" else spec.hf_id
        if dataset_id is None:
            raise DataError(f"dataset '{spec.name}' has no hub id — pass --dataset_dir DIR with a local copy")
        log(f"[data] {spec.name}: not on the requested hub; loading {dataset_id} from {HUB_NAMES[which]}")
    return which, dataset_id


def load_from_hub(spec, subset: str, split: str, hub: Optional[str], log=print,
                  token: Optional[str] = None) -> Optional[RawSource]:
    """One subset/split from the hub; None when a non-train split is not in the repository."""
    which, dataset_id = hub_and_id(spec, hub, log)
    hub_name = HUB_NAMES[which]
    real_subset = None if subset == "default" else subset
    try:
        rows = fetch_from_hub(dataset_id, real_subset, split, which, **({"token": token} if token else {}))
    except DataError:  # a gated or missing repository: already one clear line
        raise
    except FileNotFoundError as e:
        if split != spec.train_split:
            return None
        raise DataError(f"dataset '{spec.name}': {e} — pick another subset (`prefswift list datasets`), or pass "
                        "--dataset_dir DIR with a local copy") from None
    except Exception as e:  # noqa: BLE001 - every other hub failure gets the same actionable message
        detail = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataError(f"dataset '{spec.name}': cannot load {hub_name} dataset {dataset_id} "
                        f"(subset {subset}, split {split}): {type(e).__name__}: {detail} — if this machine is "
                        "offline, copy the data here and pass --dataset_dir DIR "
                        "(layout: DIR/<subset>/<split>.jsonl|json|parquet)") from None
    label = f"{spec.name}:{subset} ({split})" if subset != "default" else f"{spec.name} ({split})"
    return RawSource(label, rows, converter=spec.converter, format_name=spec.name)


def load_registered(spec, subset: str, split: str, *, dataset_dir: Optional[str], hub: Optional[str],
                    log=print, token: Optional[str] = None) -> List[RawSource]:
    """Sources for one subset/split: the built-in copy, the --dataset_dir copy, or the hub.

    Returns [] when a non-train split has no local copy (the caller falls back to eval_ratio)."""
    local_dir = spec.builtin_dir or dataset_dir
    if local_dir is None:
        source = load_from_hub(spec, subset, split, hub, log, token=token)
        return [source] if source is not None else []
    files = find_local_files(spec, subset, split, local_dir)
    if not files:
        if split != spec.train_split:
            return []
        tried = [os.path.relpath(p, local_dir) for p in candidate_paths(spec, subset, split, local_dir)]
        shown = ", ".join(tried[:4]) + (f" (+{len(tried) - 4} more)" if len(tried) > 4 else "")
        raise DataError(f"dataset '{spec.name}' subset '{subset}': no {split} file in {local_dir} (looked for "
                        f"{shown}) — save the rows as {os.path.join(local_dir, shown.split(',')[0])}, "
                        "or drop --dataset_dir to download")
    sources = []
    for path in files:
        src = read_local_file(path)
        src.converter, src.format_name = spec.converter, spec.name
        if spec.builtin_dir:  # shipped with prefswift: name the dataset, not a path inside site-packages
            src.label = f"{spec.name} ({split})" if subset == "default" else f"{spec.name}:{subset} ({split})"
        sources.append(src)
    return sources
