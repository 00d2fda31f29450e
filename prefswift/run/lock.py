"""One run at a time per run dir: an exclusive advisory lock (`fcntl.flock`) on `<output_dir>/.prefswift.lock`, held
for the run's life.

The kernel releases a flock when its process ends however it ends (kill -9 included), so a lock file left by a dead
process is stale by construction: the next run takes it over. The file holds the holder's pid on its first line (all
it held before) and its host's name on the second, which a refused run names. Under DDP only global rank 0 locks.
`claimed_run_dir` also makes the run dir, and removes the folders it made when the run is refused before anything was
written into them.

While it holds the lock, the run touches the lock file every HEARTBEAT_S seconds: a reader on another machine (the run
dir on shared storage, a multi-node job's rank 0 elsewhere), which cannot ask that machine whether the pid lives, reads
the run's liveness from that time instead (run/state.py).
"""
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ..errors import ArgumentError
from .ownership import check_output_path, first_missing

LOCK_FILE = ".prefswift.lock"
HEARTBEAT_S = 30.0

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded against each other there
    fcntl = None


@dataclass
class LockRecord:
    """What a run dir's lock file says: the holder's pid, its host (None in a file written before hosts were
    recorded), and when the holder last touched it (the file's mtime)."""
    pid: int
    host: Optional[str]
    touched: float


def this_host() -> str:
    return socket.gethostname()


def _fields(text: str) -> Tuple[str, Optional[str]]:
    """(the pid as written, the host or None) of a lock file's text."""
    lines = text.splitlines()
    host = lines[1].strip() if len(lines) > 1 else ""
    return (lines[0].strip() if lines else ""), host or None


def read_lock(run_dir: Path) -> Optional[LockRecord]:
    """The lock file of `run_dir`, or None when there is none (or it holds no pid)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        pid, host = _fields(path.read_text(encoding="utf-8", errors="replace"))
        return LockRecord(int(pid), host, path.stat().st_mtime)
    except (OSError, ValueError):
        return None


def holder_text(pid: str, host: Optional[str]) -> str:
    return f"pid {pid}" if host in (None, this_host()) else f"pid {pid} on {host}"


class RunDirLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd = None
        self.stop = threading.Event()
        self.beat: Optional[threading.Thread] = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        for _ in range(10):  # another run may remove the file between our open and our lock: lock the file again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid, host = _fields(os.pread(fd, 300, 0).decode("utf-8", "replace"))
                os.close(fd)
                holder = holder_text(pid or "unknown", host)
                raise ArgumentError(f"--output_dir {self.path.parent} is in use by another prefswift run ({holder}); "
                                    "wait for it to end, or give another --output_dir") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n{this_host()}\n".encode("utf-8"), 0)
                self.fd = fd
                self.beat = threading.Thread(target=self._heartbeat, name="prefswift-lock-heartbeat", daemon=True)
                self.beat.start()
                return
            os.close(fd)
        raise ArgumentError(f"--output_dir {self.path.parent}: could not take its lock file {self.path}")

    def _heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.fd)
            except (OSError, TypeError):  # released meanwhile
                return

    def release(self) -> None:
        if self.fd is None:
            return
        self.stop.set()
        if self.beat is not None:
            self.beat.join()
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
