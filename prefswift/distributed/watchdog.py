"""Failure, not hang: the ranks of a distributed run watch each other and all stop, within a bound, when one is gone.

Collectives (DDP's gradient all-reduce, metric gathering, barriers, FSDP's gathers) wait for every rank. When a rank
dies (OOM, SIGKILL, a lost node), NCCL waits up to the process group's timeout and gloo either fails at once with a
bare "Connection closed by peer" or waits too; neither says which rank is gone. `PeerWatch` gives every rank a
heartbeat in a small key-value store (`torch.distributed.TCPStore`, hosted by global rank 0 on a port the OS picks; the
port goes to the other ranks once over the process group). A background thread of every rank counts its own beat up
every `interval` seconds; rank 0 reads everyone's, and a rank whose beat has not moved for `bound` seconds — by rank 0's
own clock, so the nodes' clocks need not agree — is declared gone: rank 0 publishes one verdict line, every rank prints
it and exits with code 1, also when its main thread is blocked inside a collective; rank 0, the store's host, exits
only once the other running ranks have read the verdict (`linger`). A rank whose main thread fails (an exception that
is not a collective's: `is_collective_failure` goes by type and where it was raised) publishes its own verdict before
it exits. The other ranks notice a lost rank 0 (the store host) by the store no longer answering.

What one rank does alone while the others wait (rank 0 writing a checkpoint, saving and uploading the result) is
waited for in `PeerWatch.barrier` (`wait_for_all`): in the store, beating, for as long as that rank lives — never in a
collective that --ddp_timeout would end.

So a rank that dies never leaves the others waiting longer than `bound` + 2 x `interval` (`bound_for`: the smaller of
--ddp_timeout and 60 s; --ddp_timeout is also the process group's own timeout, on every backend, for a collective that
waits for a rank which is alive but stuck).
A run that ends normally marks each rank done after the final barrier, so nobody mistakes an ending rank for a dead
one.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Dict, Optional

from prefswift.errors import PrefswiftError

MAX_BOUND_S = 60.0
INTERVAL_S = 2.0
BARRIER_POLL_S = 0.1
_ACTIVE: Optional["PeerWatch"] = None  # this process's started watch (one per rank)
VERDICT = "verdict"


def bound_for(ddp_timeout: float) -> float:
    """Seconds without a heartbeat after which a rank counts as gone."""
    return float(min(ddp_timeout, MAX_BOUND_S))


def open_store(rank: int, timeout_s: float):
    """The heartbeat store: hosted by rank 0 (all interfaces, a free port), reached by the others at MASTER_ADDR.
    Needs the process group (the port is broadcast over it)."""
    import torch.distributed as dist

    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    timeout = timedelta(seconds=max(5.0, timeout_s))
    if rank == 0:
        store = dist.TCPStore(host, 0, None, True, timeout, wait_for_workers=False)
        port = [store.port]
    else:
        store, port = None, [None]
    dist.broadcast_object_list(port, src=0)
    if store is None:
        store = dist.TCPStore(host, int(port[0]), None, False, timeout)
    return store


class PeerWatch:
    """See the module doc. `note()`: where the run stands (e.g. its newest whole checkpoint), added to the line."""

    def __init__(self, store, rank: int, world_size: int, bound: float, interval: float = INTERVAL_S,
                 note: Callable[[], str] = lambda: "", out=None, exit: Callable[[int], None] = os._exit):
        self.store, self.rank, self.world_size = store, rank, world_size
        self.bound, self.interval = bound, interval
        self.note, self.out, self._exit = note, out, exit
        self.step = 0  # this rank's last completed optimizer step (StepBeat keeps it current)
        self._stopping = threading.Event()
        self._verdict = threading.Event()  # this rank knows the verdict (its watch thread ends the process)
        self._barriers: Dict[str, int] = {}
        self._exited = threading.Event()  # set once the exit function returned (only a test's does)
        self._seen: Dict[int, tuple] = {}  # rank -> (beat, monotonic time it was first seen)
        self._thread = threading.Thread(target=self._loop, name="prefswift-peer-watch", daemon=True)

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "PeerWatch":
        global _ACTIVE
        self._beat()
        self._thread.start()
        _ACTIVE = self
        return self

    def stop(self) -> None:
        """This rank ends normally: it is done (not dead) for the others, and stops watching."""
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = None
        if self._stopping.is_set():
            return
        self._stopping.set()
        try:
            self.store.add(f"done/{self.rank}", 1)
        except Exception:  # noqa: BLE001  (the store host already ended: nothing to tell)
            pass

    def announce(self, what: str) -> None:
        """This rank fails (not in a collective): tell the others, once, before it exits (rank 0, the store's host,
        stays until they have read it)."""
        self._stopping.set()
        try:
            self.publish(f"rank {self.rank} failed after step {self.step}: {what}")
        except Exception:  # noqa: BLE001
            return
        if self.rank == 0:
            self.linger(culprit=0)

    def await_verdict(self) -> bool:
        """The main thread's collective failed: give the watch time to name the rank that is gone (it then ends the
        process: this call does not return once the verdict is known). False when no verdict came within the bound."""
        if not self._verdict.wait(self.bound + 3 * self.interval):
            return False
        self._exited.wait()  # the watch thread prints the line and ends the process
        return True

    def barrier(self, name: str) -> None:
        """Wait until every rank has reached the barrier `name` (once per run), as long as it takes: the ranks keep
        beating meanwhile, so the wait ends at a verdict when one of them is gone, never at a timeout while they
        live. For what one rank does alone while the others wait (rank 0 saving a checkpoint, uploading)."""
        self._barriers[name] = self._barriers.get(name, 0) + 1  # every rank passes the same barriers in order
        key = f"barrier/{name}/{self._barriers[name]}"
        self.store.add(key, 1)
        pause = 0.005
        while self.store.add(key, 0) < self.world_size:
            time.sleep(pause)
            pause = min(2 * pause, BARRIER_POLL_S)

    def publish(self, verdict: str) -> str:
        """Make `verdict` the run's verdict unless another was published first; the run's verdict."""
        return _text(self.store.compare_set(VERDICT, "", verdict))

    def linger(self, culprit: int) -> None:
        """Rank 0 hosts the store: before it exits, wait until every other rank that is still running (not the
        culprit, not done) has read the verdict, so each prints it instead of finding the store gone. They look every
        interval: at most 3 intervals + 2 s."""
        deadline = time.monotonic() + 3 * self.interval + 2
        waiting = [r for r in range(1, self.world_size) if r != culprit]
        while waiting and time.monotonic() < deadline:
            try:
                waiting = [r for r in waiting if not (self.store.add(f"read/{r}", 0) or self.store.add(f"done/{r}", 0))]
            except Exception:  # noqa: BLE001
                return
            if waiting:
                time.sleep(min(0.05, self.interval))

    # ---- the thread ----------------------------------------------------------------------------------------------
    def _beat(self) -> None:
        self.store.add(f"beat/{self.rank}", 1)

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self._beat()
                verdict = self.check()
            except Exception as exc:  # noqa: BLE001  (the store cannot be reached: its host is gone)
                if self._stopping.is_set():
                    return
                verdict = (f"rank 0 is gone (its heartbeat store at {os.environ.get('MASTER_ADDR', '127.0.0.1')} "
                           f"does not answer: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}) "
                           f"after step {self.step}")
            if verdict and not self._stopping.is_set():
                self.fail(verdict)
                return

    def check(self, now: Optional[float] = None) -> Optional[str]:
        """The published verdict, or (rank 0) the one this check reaches, or None while every rank is alive."""
        if self.store.check([VERDICT]):
            return _text(self.store.get(VERDICT))
        if self.rank != 0:
            return None
        now = time.monotonic() if now is None else now
        for r in range(1, self.world_size):
            if self.store.add(f"done/{r}", 0):
                continue
            beat = self.store.add(f"beat/{r}", 0)
            seen = self._seen.get(r)
            if seen is None or seen[0] != beat:
                self._seen[r] = (beat, now)
            elif now - seen[1] > self.bound:
                # the ranks step together: rank 0's last completed step is the run's
                return self.publish(f"rank {r} stopped responding (no heartbeat for {self.bound:.0f} s) after step "
                                    f"{self.step}")
        return None

    def fail(self, verdict: str) -> None:
        note = ""
        try:
            note = self.note()
        except Exception:  # noqa: BLE001  (a note is a courtesy; the line and the exit are what matter)
            pass
        line = f"error: {verdict}; every rank stops{note}"
        self._verdict.set()
        print(line, file=self.out or sys.stderr, flush=True)
        try:
            if self.rank == 0:
                self.linger(culprit_of(verdict))
            else:
                self.store.add(f"read/{self.rank}", 1)
        except Exception:  # noqa: BLE001  (the store is gone: the others find that out themselves)
            pass
        self._exit(1)
        self._exited.set()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def culprit_of(verdict: str) -> int:
    """The rank a verdict names ('rank 3 stopped responding ...' -> 3); -1 when it names none."""
    m = re.match(r"rank (\d+) ", verdict)
    return int(m.group(1)) if m else -1


def start_peer_watch(rank: int, world_size: int, ddp_timeout: float, note: Callable[[], str] = lambda: "",
                     interval: float = INTERVAL_S) -> Optional[PeerWatch]:
    """A started PeerWatch for this rank, or None for a single process."""
    if world_size < 2:
        return None
    bound = bound_for(ddp_timeout)
    return PeerWatch(open_store(rank, bound), rank, world_size, bound, interval, note).start()


# Where a collective's failure is raised from: torch.distributed's own functions (barrier, all_reduce, the object
# collectives, the store), DDP's forward and DeepSpeed's comm; DDP's gradient all-reduce fails inside the autograd
# engine's backward.
_COLLECTIVE_MODULES = ("torch.distributed", "torch.nn.parallel", "deepspeed.comm")
_BACKWARD_MODULES = ("torch.autograd",)
# what the communication libraries (C++) put in the errors they raise through the autograd engine: their source path,
# or gloo's state after a timeout
_BACKEND_SOURCES = ("/gloo/", "ProcessGroupNCCL", "NCCL", "pair closure")


def raised_in(exc: BaseException) -> str:
    """The module of the innermost Python frame `exc` was raised from ('' when unknown)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", ""))


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def is_collective_failure(exc: BaseException) -> bool:
    """A failure of the communication between ranks, by its type and where it was raised (never by its text alone:
    a hub upload's `ReadTimeout` or a `BrokenPipeError` is no collective's failure):
    torch.distributed's own errors (DistError: DistBackendError, DistNetworkError, DistStoreError, ...) anywhere;
    a plain RuntimeError raised by torch.distributed's functions or DDP (gloo's 'Connection closed by peer' and
    timeouts are plain RuntimeErrors); one raised by the autograd engine (DDP's gradient all-reduce) only when it comes
    from gloo/NCCL."""
    import torch.distributed as dist

    if isinstance(exc, dist.DistError):
        return True
    if type(exc) is not RuntimeError:
        return False
    where = raised_in(exc)
    if _within(where, _COLLECTIVE_MODULES):
        return True
    return _within(where, _BACKWARD_MODULES) and any(s in str(exc) for s in _BACKEND_SOURCES)


@contextmanager
def watched(watch: Optional[PeerWatch]):
    """Run the body under `watch`: a collective failure waits for the watch's verdict (the process then ends with its
    line); any other exception is announced to the other ranks, then raised as usual; a normal end marks this rank
    done."""
    if watch is None:
        yield
        return
    try:
        yield
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C reaches every rank: each ends with its own message
        watch.stop()
        raise
    except Exception as exc:
        if is_collective_failure(exc):
            if not watch.await_verdict():  # every rank still beats: one is stuck, or the network failed
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                raise PrefswiftError(f"a collective failed after step {watch.step} while every rank was still "
                                     f"alive ({first}); the newest whole checkpoint stays valid") from exc
        else:
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            watch.announce(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)  # rank 0 lingers
        raise
    else:
        watch.barrier("end")  # rank 0 may still save or upload the result: the others wait for it, beating
        watch.stop()


def wait_for_all(name: str) -> None:
    """Every rank waits here for the others: with a watch, beating (as long as each lives: `PeerWatch.barrier`);
    without one, torch.distributed's barrier (bounded by --ddp_timeout); one process: nothing to wait for."""
    if _ACTIVE is not None:
        _ACTIVE.barrier(name)
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
