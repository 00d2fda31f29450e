"""Checkpoints that are whole or not used at all.

The Trainer writes a checkpoint-N dir file by file (weights, optimizer, scheduler, RNG states, trainer_state.json) and
a kill can stop it anywhere. prefswift adds `checkpoint_complete.json` last, after the Trainer and our args.json are
written: it lists every file of the checkpoint with its size. A checkpoint is used for a resume only when:

  * trainer_state.json is there and is whole JSON;
  * the marker is there and every file it lists has its recorded size (a checkpoint-N of a run whose other
    checkpoints carry no marker comes from a prefswift that did not write one: its files alone are checked);
  * its weights are there (adapter_model.safetensors, model.safetensors or the shards a .index.json names), every
    .safetensors file has a readable header and exactly the bytes the header describes;
  * optimizer.pt is there (unless the run saved only the model, or DeepSpeed keeps the optimizer in global_step*/)
    and every .pt/.pth/.bin file is a whole torch zip archive.

Before the Trainer writes into a checkpoint-N dir that already exists (an earlier attempt at the same step), the
marker is removed first, so a kill during the new save leaves it unmarked. Old checkpoints beyond --save_total_limit
are removed only after the new one is marked (`rotate`), so a kill never leaves the run without a whole checkpoint.
"""
import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

from ..files import write_json_atomic
from .saved_files import MARKER, STATE, holds_only_foreign, remove_saved

CKPT = re.compile(r"^checkpoint-(\d+)$")
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json", "adapter_model.bin",
           "pytorch_model.bin", "pytorch_model.bin.index.json")
OPTIMIZER = "optimizer.pt"
FSDP_OPTIMIZER = "optimizer.bin"  # accelerate's FSDP full optimizer state (with pytorch_model_fsdp.bin)
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def checkpoints(run_dir: Path) -> List[Path]:
    """checkpoint-N dirs of a run, oldest first. A checkpoint-N holding only files prefswift did not write (a user's
    file kept when the run's own were removed: `saved_files.remove_saved`) is not a checkpoint."""
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir()
             if p.is_dir() and (m := CKPT.match(p.name)) and not holds_only_foreign(p)]
    return [p for _, p in sorted(found)]


def mark_complete_checkpoint(ckpt: Path, world_size: int = 1) -> None:
    """Written last: `ckpt` holds every file the Trainer and prefswift save (names and sizes recorded), saved by
    `world_size` processes (a resume with another number keeps the global batch: distributed/world_size.py)."""
    files = {str(p.relative_to(ckpt)): p.stat().st_size for p in sorted(ckpt.rglob("*"))
             if p.is_file() and p.name != MARKER and not p.name.endswith(".tmp")}
    write_json_atomic(ckpt / MARKER, {"files": files, "world_size": world_size})


def checkpoint_world_size(ckpt: Path) -> Optional[int]:
    """The number of processes that trained `ckpt` (None for a checkpoint from before it was recorded)."""
    try:
        return int(json.loads((Path(ckpt) / MARKER).read_text(encoding="utf-8"))["world_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unmark_checkpoint(ckpt: Path) -> None:
    """Before a checkpoint dir is written again: until the new save is marked, it is not whole."""
    (ckpt / MARKER).unlink(missing_ok=True)


def newest_whole_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest checkpoint-N of a run that `checkpoint_problem` finds whole, or None."""
    return next((c for c in reversed(checkpoints(Path(run_dir))) if checkpoint_problem(c) is None), None)


def checkpoint_problem(ckpt: Path) -> Optional[str]:
    """None when `ckpt` is a whole checkpoint to resume from, else what is wrong with it, naming the file."""
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        return f"{ckpt} is not a directory"
    state = ckpt / STATE
    if not state.is_file():
        return f"{state} is missing (cut short while saving, or not a checkpoint dir)"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return f"{state} is cut short (not whole JSON)"
    problem = _marker_problem(ckpt)
    if problem:
        return problem
    return _weights_problem(ckpt) or _optimizer_problem(ckpt) or _files_problem(ckpt)


def _marker_problem(ckpt: Path) -> Optional[str]:
    marker = ckpt / MARKER
    if not marker.is_file():
        if _run_writes_markers(ckpt.parent):
            return f"{marker} is missing: the save of {ckpt.name} was cut short"
        return None  # a run from before markers: its files are checked below
    try:
        files: Dict[str, int] = json.loads(marker.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{marker} is unreadable"
    for name, size in files.items():
        path = ckpt / name
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} has {path.stat().st_size} bytes, {size} when the checkpoint was saved"
    return None


def _run_writes_markers(run_dir: Path) -> bool:
    return any((p / MARKER).is_file() for p in checkpoints(run_dir))


def _weights_problem(ckpt: Path) -> Optional[str]:
    present = [name for name in WEIGHTS if (ckpt / name).is_file()]
    if not present and not _deepspeed(ckpt):
        return f"{ckpt / WEIGHTS[0]} (or {WEIGHTS[1]}) is missing"
    for index in (n for n in present if n.endswith(".index.json")):
        try:
            shards = set(json.loads((ckpt / index).read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, AttributeError, UnicodeDecodeError):
            return f"{ckpt / index} is unreadable"
        for shard in sorted(shards):
            if not (ckpt / shard).is_file():
                return f"{ckpt / shard} is missing"
    return None


def _optimizer_problem(ckpt: Path) -> Optional[str]:
    if (ckpt / OPTIMIZER).is_file() or (ckpt / FSDP_OPTIMIZER).is_file() or _deepspeed(ckpt):
        return None
    saved = ckpt / "args.json"
    try:
        only_model = saved.is_file() and json.loads(saved.read_text(encoding="utf-8")).get("save_only_model")
    except (ValueError, UnicodeDecodeError):
        return f"{saved} is unreadable"
    return None if only_model else f"{ckpt / OPTIMIZER} is missing"


def _files_problem(ckpt: Path) -> Optional[str]:
    for path in sorted(ckpt.iterdir()):
        if not path.is_file():
            continue
        if path.suffix == ".safetensors":
            problem = safetensors_problem(path)
        elif path.suffix in TORCH_SUFFIXES:
            problem = torch_archive_problem(path)
        else:
            continue
        if problem:
            return f"{path} {problem}"
    return None


def _deepspeed(ckpt: Path) -> bool:
    return any(p.is_dir() for p in ckpt.glob("global_step*"))


def is_deepspeed_checkpoint(ckpt: Path) -> bool:
    """DeepSpeed keeps its (ZeRO-partitioned) model and optimizer states in global_step*/ of the checkpoint."""
    return _deepspeed(Path(ckpt))


def safetensors_problem(path: Path) -> Optional[str]:
    """None when the header reads and the file holds exactly the bytes it describes (as the safetensors loader
    requires), else what is wrong."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"is cut short ({size} bytes, no header)"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"is cut short ({size} bytes; its header alone needs {n + 8})"
        try:
            header = json.loads(f.read(n).decode("utf-8"))
            end = max([int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"] or [0])
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
            return "has an unreadable header"
    if size != 8 + n + end:
        return f"is cut short ({size} bytes; its header describes {8 + n + end})"
    return None


def torch_archive_problem(path: Path) -> Optional[str]:
    """None for a whole zip archive (torch.save's format; its directory is written last), else what is wrong."""
    try:
        with zipfile.ZipFile(path) as z:
            size = path.stat().st_size
            if any(i.header_offset + i.compress_size > size for i in z.infolist()):
                return "is cut short"
    except (zipfile.BadZipFile, OSError, ValueError):
        return "is cut short (not a readable torch archive)"
    return None


def rotate(newest: Path, limit: Optional[int], checkpoints: List[Path]) -> None:
    """--save_total_limit: after `newest` is marked, remove the oldest checkpoints (by step) beyond the limit. Only
    checkpoints older than `newest` go; unwhole ones among them count as nothing and are removed first. A file the user
    put into one stays, with its folder (`saved_files.remove_saved`)."""
    if not limit:
        return
    older = [c for c in checkpoints if _step(c) < _step(newest)]
    whole = [c for c in older if checkpoint_problem(c) is None]
    keep = set(whole[len(whole) - (limit - 1):]) if limit > 1 else set()
    for c in older:
        if c not in keep:
            try:
                c.unlink() if c.is_symlink() else remove_saved(c, c.parent, [])
            except OSError:  # as rmtree(ignore_errors=True) before: rotation never stops a run
                pass


def _step(ckpt: Path) -> int:
    return int(ckpt.name.rsplit("-", 1)[-1])
