"""One run at a time per run dir: an exclusive advisory lock (`fcntl.flock`) on `<output_dir>/.prefswift.lock`, held
for the run's life.

The kernel releases a flock when its process ends however it ends (kill -9 included), so a lock file left by a dead
process is stale by construction: the next run takes it over. The file holds the holder's pid, which a refused run
names. Under DDP only rank 0 locks. `claimed_run_dir` also makes the run dir, and removes the folders it made when the
run is refused before anything was written into them.
"""
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import ArgumentError
from .ownership import check_output_path, first_missing

LOCK_FILE = ".prefswift.lock"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded against each other there
    fcntl = None


class RunDirLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        for _ in range(10):  # another run may remove the file between our open and our lock: lock the file again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise ArgumentError(f"--output_dir {self.path.parent} is in use by another prefswift run (pid "
                                    f"{holder}); wait for it to end, or give another --output_dir") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
                self.fd = fd
                return
            os.close(fd)
        raise ArgumentError(f"--output_dir {self.path.parent}: could not take its lock file {self.path}")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: a waiting run then locks a new file
        finally:
            os.close(self.fd)
            self.fd = None


@contextmanager
def claimed_run_dir(run_dir: Path, is_main: bool):
    """Make `run_dir` (one `error:` line when it cannot be: a file, below a file, read-only) and hold its lock (rank 0)
    until the block ends; a refused or failed run leaves no empty folder it made."""
    check_output_path(run_dir)
    made = first_missing(run_dir)
    try:
        if is_main:  # only global rank 0 writes the run dir (the others reach it once the process group is up)
            run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArgumentError(f"--output_dir {run_dir}: cannot create it ({e.strerror}); give a folder you can write "
                            "to") from None
    lock = RunDirLock(run_dir) if is_main else None
    try:
        if lock is not None:
            lock.acquire()
        yield
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
        if made is not None and is_main:
            remove_empty_dirs(run_dir, made)
        raise
    finally:
        if lock is not None:
            lock.release()


def remove_empty_dirs(path: Path, top: Path) -> None:
    """Remove `path` and its parents up to `top` while they are empty (a folder holding anything stays)."""
    while True:
        try:
            path.rmdir()
        except OSError:
            return
        if path == top:
            return
        path = path.parent
