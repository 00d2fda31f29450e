"""Run torchrun and pass its workers' output through, minus the launcher's own noise.

When a worker fails, torchrun prints every rank's `error: ...` line and then its own `ChildFailedError` traceback and
failure report, and exits 1. Users of a single process get one `error:` line and exit code 2: so do they here. The
launcher's traceback and report are dropped, identical `error:` lines of several ranks are shown once, and a run
whose workers reported a user error exits 2. A worker's own traceback (a real bug) is passed through untouched.
A worker that died without a word (SIGKILL: the OOM killer, a lost node) gets the one line the report's root cause
gives: `error: rank 1 (local rank 1 on this node) died: exit code -9, SIGKILL; torchrun stopped this node's other
ranks`.
"""
from __future__ import annotations

import re
import subprocess
import sys
from typing import List, Optional, TextIO

LAUNCHER_FILES = ("torch/distributed/run.py", "torch/distributed/elastic", "torch/distributed/launcher")
# torchrun's own log lines (`W1129 23:35:27.517000 19000 .../torch/distributed/elastic/...] Sending process ...`) and
# its OMP_NUM_THREADS banner
LAUNCHER_LOG = re.compile(r"^[WEI]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ .*torch/distributed/")
BANNER = ("*****************************************", "Setting OMP_NUM_THREADS environment variable")
# torchrun's failure report (torch.distributed.elastic.multiprocessing.errors._FAILURE_FORMAT_TEMPLATE)
REPORT_RANK = re.compile(r"^\s+rank\s*: (\d+) \(local_rank: (\d+)\)")
REPORT_EXIT = re.compile(r"^\s+exitcode\s*: (-?\d+) \(pid: \d+\)\s*(?:\((\w+)\))?")
ROOT_CAUSE = "Root Cause (first observed failure):"


class LauncherNoiseFilter:
    """Feed it stderr lines; it writes what a user should see to `out`."""

    def __init__(self, out: TextIO):
        self.out = out
        self.errors_seen: List[str] = []
        self._traceback: Optional[List[str]] = None
        self._in_report = False
        self._in_root_cause = False
        self.root_cause: Optional[dict] = None  # rank, local_rank, exitcode, signal of the first failed worker

    def feed(self, line: str) -> None:
        if self._in_report:  # torchrun's "=====\nprefswift FAILED\n---- ... =====" block: skip to its end
            if line.startswith("====") and self._report_lines > 2:
                self._in_report = False
            self._report_lines += 1
            self._read_report(line)
            return
        if self._traceback is not None:
            self._traceback.append(line)
            if line[:1] not in (" ", "\t") and not line.startswith("Traceback"):  # the exception line ends it
                block, self._traceback = self._traceback, None
                if any(f in b for b in block for f in LAUNCHER_FILES) and "ChildFailedError" in line:
                    self._in_report, self._report_lines = True, 0
                else:
                    self.out.writelines(block)
            return
        if line.startswith("Traceback (most recent call last):"):
            self._traceback = [line]
            return
        if LAUNCHER_LOG.match(line) or line.startswith(BANNER):
            return
        if line.startswith("error: "):
            if line in self.errors_seen:
                return
            self.errors_seen.append(line)
        self.out.write(line)

    def _read_report(self, line: str) -> None:
        if line.startswith(ROOT_CAUSE):
            self._in_root_cause, self.root_cause = True, {}
        elif self._in_root_cause and (m := REPORT_RANK.match(line)):
            self.root_cause.update(rank=int(m.group(1)), local_rank=int(m.group(2)))
        elif self._in_root_cause and (m := REPORT_EXIT.match(line)):
            self.root_cause.update(exitcode=int(m.group(1)), signal=m.group(2))

    def died_line(self) -> Optional[str]:
        """One line for a worker that died without an `error:` line of its own (killed by a signal), else None."""
        cause = self.root_cause
        if self.errors_seen or not cause or "rank" not in cause or cause.get("exitcode", 0) >= 0:
            return None
        how = f"exit code {cause['exitcode']}" + (f", {cause['signal']}" if cause.get("signal") else "")
        return (f"error: rank {cause['rank']} (local rank {cause['local_rank']} on this node) died: {how}; torchrun "
                "stopped this node's other ranks\n")

    def close(self) -> None:
        if self._traceback:
            self.out.writelines(self._traceback)
        died = self.died_line()
        if died:
            self.out.write(died)
        self.out.flush()


def run_torchrun(cmd, env) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, env=env) with stderr filtered; exit code 2 when the workers reported a user error."""
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    flt = LauncherNoiseFilter(sys.stderr)
    try:
        for line in proc.stderr:
            flt.feed(line)
    finally:
        flt.close()
        returncode = proc.wait()
    if returncode != 0 and flt.errors_seen:
        returncode = 2
    return subprocess.CompletedProcess(cmd, returncode)
