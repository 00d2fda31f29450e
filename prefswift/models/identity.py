"""Which weights a directory holds, cheaply: a fingerprint for caches of numbers computed from a model.

The fingerprint covers the config (config.json / adapter_config.json bytes) and every weight file: its name, size,
modification time and, for safetensors, its header (every tensor's name, dtype, shape and offsets). Reading the
header is 8 bytes + a few kB per file, never the weights. A copy of a model with changed values lives in another
directory (the caller names the path) or has been rewritten (a new modification time): either gives another
fingerprint.
"""
import hashlib
import json
import struct
from pathlib import Path
from typing import Optional

CONFIG_FILES = ("config.json", "adapter_config.json", "generation_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return b""
        (length,) = struct.unpack("<Q", raw)
        return f.read(min(length, 100_000_000))


def weights_fingerprint(path: Optional[Path]) -> Optional[str]:
    """sha256 (hex) of a model or adapter directory's config and weight files (see the module docstring); None for
    None, the path itself for something that is not a local directory (e.g. a hub id)."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_dir():
        return str(path)
    h = hashlib.sha256()
    h.update(str(path.resolve()).encode())
    for name in CONFIG_FILES:
        f = path / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)):
        stat = f.stat()
        h.update(json.dumps([f.name, stat.st_size, stat.st_mtime_ns]).encode())
        if f.name.endswith(".safetensors"):
            h.update(_safetensors_header(f))
    return h.hexdigest()


__all__ = ["weights_fingerprint"]
