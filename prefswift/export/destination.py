"""Where an export goes, and the one rule for replacing it: only an earlier export (its args.json says so) and only
with --overwrite true. The export is written into a hidden temporary sibling folder that is renamed into place at
the end, so a refusal or a crash never leaves a half-written export behind.
"""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..arguments import ARGS_FILE
from ..errors import ArgumentError
from ..merge import replace_dir
from ..run.ownership import written_by_prefswift


def written_by_export(path: Path) -> bool:
    """A folder an earlier `prefswift export` wrote: prefswift's args.json (`run.ownership`) naming the export."""
    if not written_by_prefswift(path / ARGS_FILE):
        return False
    return json.loads((path / ARGS_FILE).read_text(encoding="utf-8")).get("command") == "export"


def check_destination(path: Path, overwrite: bool) -> None:
    """Refuse (one line, before any work) a destination that is a file, a folder prefswift's export did not write,
    or an earlier export without --overwrite true."""
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"--output_dir {path}: exists and is a file; choose another path")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not written_by_export(path):
        raise ArgumentError(f"--output_dir {path} already holds files prefswift export did not write; nothing there "
                            "is replaced — choose a new --output_dir")
    if not overwrite:
        raise ArgumentError(f"--output_dir {path} holds an earlier export; pass --overwrite true to replace it, or "
                            "choose another --output_dir")


@contextmanager
def staging_dir(output: Path):
    """A private temporary folder next to `output`; on success it becomes `output`, on any error it is removed."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    try:
        yield tmp
        replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_args(args, tmp: Path, source, to: str, outtype: str) -> None:
    """args.json of an export: what `written_by_export` recognises (and what it was exported from)."""
    flat = args.to_flat_dict()
    flat.update({"model_type": source.model_args.model_type, "exported_from": str(source.ckpt_dir or source.base.path),
                 "template": source.base.template, "to": to, "outtype": outtype})
    (tmp / ARGS_FILE).write_text(json.dumps(flat, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


__all__ = ["save_args", "check_destination", "staging_dir", "written_by_export"]
