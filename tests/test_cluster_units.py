"""The pure parts of the cluster support: SLURM's variables, the global batch across world sizes, torchrun's report
of a killed worker, the heartbeat watch's verdicts (with an in-memory store and a hand-moved clock)."""
import io
import time

import pytest

from prefswift.distributed.slurm import first_host, slurm_launch_env
from prefswift.distributed.torchrun_output import LauncherNoiseFilter
from prefswift.distributed.watchdog import PeerWatch, bound_for
from prefswift.distributed.world_size import rescale_batch
from prefswift.errors import ArgumentError


@pytest.mark.parametrize("nodelist, first", [("node7", "node7"), ("gpu[03-05,9],cpu1", "gpu03"),
                                             ("a-1,b-2", "a-1"), ("rack1-n[12,14]", "rack1-n12")])
def test_first_host_of_a_slurm_hostlist(nodelist, first):
    assert first_host(nodelist) == first


SRUN = {"SLURM_STEP_ID": "0", "SLURM_JOB_ID": "1234", "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_NNODES": "2"}


def test_srun_one_task_per_node_starts_torchrun_per_node():
    env = {**SRUN, "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_NODEID": "1", "SLURM_GPUS_ON_NODE": "8"}
    assert slurm_launch_env(env) == {"MASTER_ADDR": "gpu01", "MASTER_PORT": str(20000 + 1234), "NNODES": "2",
                                     "NODE_RANK": "1", "NPROC_PER_NODE": "8"}


def test_srun_one_task_per_process_is_the_launcher():
    env = {**SRUN, "SLURM_NTASKS": "16", "SLURM_PROCID": "11", "SLURM_NODEID": "1", "SLURM_LOCALID": "3",
           "SLURM_TASKS_PER_NODE": "8(x2)", "MASTER_PORT": "29500"}
    assert slurm_launch_env(env) == {"MASTER_ADDR": "gpu01", "RANK": "11", "WORLD_SIZE": "16", "LOCAL_RANK": "3",
                                     "LOCAL_WORLD_SIZE": "8"}  # MASTER_PORT given: kept


def test_outside_srun_or_under_a_launcher_nothing_changes():
    assert slurm_launch_env({k: v for k, v in SRUN.items() if k != "SLURM_STEP_ID"}) == {}  # the sbatch script
    assert slurm_launch_env({**SRUN, "LOCAL_RANK": "0", "WORLD_SIZE": "2"}) == {}


@pytest.mark.parametrize("saved_world, world, bs, ga, explicit, expected", [
    (2, 1, 2, 1, {}, (2, 2)),          # 2 -> 1: accumulation takes the other process's share
    (1, 2, 2, 2, {}, (2, 1)),          # 1 -> 2
    (1, 2, 4, 1, {}, (2, 1)),          # accumulation cannot halve: the per-process batch does
    (4, 8, 1, 1, {}, None),            # 4 rows over 8 processes: refused
    (2, 1, 2, 1, {"explicit_batch": 4}, (4, 1)),
    (2, 1, 2, 1, {"explicit_accum": 3}, None),
])
def test_the_global_batch_is_kept_across_world_sizes(saved_world, world, bs, ga, explicit, expected):
    if expected is None:
        with pytest.raises(ArgumentError):
            rescale_batch(saved_world, world, bs, ga, **explicit)
    else:
        assert rescale_batch(saved_world, world, bs, ga, **explicit) == expected


REPORT = """W1207 06:20:51.517000 19000 /x/site-packages/torch/distributed/elastic/multiprocessing/api.py:900] Sending process 5 closing signal SIGTERM
Traceback (most recent call last):
  File "/x/torch/distributed/run.py", line 9, in <module>
torch.distributed.elastic.multiprocessing.errors.ChildFailedError: 
============================================================
prefswift FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-07_06:20:51
  host      : box
  rank      : 3 (local_rank: 1)
  exitcode  : -9 (pid: 6618) (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 6618
============================================================
"""


def test_a_worker_killed_by_a_signal_is_named_in_one_line():
    out = io.StringIO()
    flt = LauncherNoiseFilter(out)
    for line in REPORT.splitlines(keepends=True):
        flt.feed(line)
    flt.close()
    assert out.getvalue() == ("error: rank 3 (local rank 1 on this node) died: exit code -9, SIGKILL; torchrun "
                              "stopped this node's other ranks\n")


class DictStore:
    """torch.distributed.Store's add/set/get/check, in memory."""

    def __init__(self):
        self.data = {}

    def add(self, key, n):
        self.data[key] = int(self.data.get(key, 0)) + n
        return self.data[key]

    def set(self, key, value):
        self.data[key] = value.encode() if isinstance(value, str) else value

    def get(self, key):
        return self.data[key]

    def check(self, keys):
        return all(k in self.data for k in keys)

    def compare_set(self, key, expected, desired):
        if self.data.get(key, b"") == expected.encode():
            self.data[key] = desired.encode()
        return self.data[key]


def test_rank_zero_declares_a_silent_rank_gone_after_the_bound_and_everyone_reads_it():
    store = DictStore()
    exits, lines = [], io.StringIO()
    zero = PeerWatch(store, 0, 3, bound=10, out=lines, exit=exits.append, note=lambda: " — here")
    two = PeerWatch(store, 2, 3, bound=10, out=lines, exit=exits.append)
    zero.step = 7
    for r in (1, 2):
        store.add(f"beat/{r}", 1)
    assert zero.check(now=0) is None
    store.add("beat/2", 1)  # rank 2 beats, rank 1 does not
    assert zero.check(now=9) is None
    store.add("beat/2", 1)
    verdict = zero.check(now=10.5)
    assert verdict == "rank 1 stopped responding (no heartbeat for 10 s) after step 7"
    assert two.check() == verdict  # the other ranks print rank 0's verdict
    two.fail(two.check())
    assert store.data["read/2"] == 1  # rank 2 has read it: rank 0 (the store's host) need not wait for it
    started = time.monotonic()
    zero.fail(verdict)
    assert time.monotonic() - started < 1
    assert lines.getvalue() == f"error: {verdict}; every rank stops\nerror: {verdict}; every rank stops — here\n"
    assert exits == [1, 1]


def test_rank_zero_keeps_the_store_up_until_every_running_rank_has_read_the_verdict():
    """Rank 0 (the store's host) exits only once the ranks that still run have read the verdict (rank 3 reads it
    1 s later here); not for the culprit or a rank that ended; at most 3 intervals + 2 s."""
    import threading

    store = DictStore()
    exits = []
    zero = PeerWatch(store, 0, 4, bound=5, interval=0.5, out=io.StringIO(), exit=exits.append)
    store.add("done/2", 1)
    reader = PeerWatch(store, 3, 4, bound=5, interval=0.5, out=io.StringIO(), exit=exits.append)
    verdict = zero.publish("rank 1 stopped responding (no heartbeat for 5 s) after step 3")
    threading.Timer(1.0, lambda: reader.fail(reader.check())).start()
    started = time.monotonic()
    zero.fail(verdict)
    waited = time.monotonic() - started
    assert 0.9 < waited < 2.5 and exits == [1, 1], waited
    store.data.pop("read/3")
    started = time.monotonic()
    zero.fail(verdict)  # rank 3 never reads it: rank 0 goes after 3 x 0.5 + 2 s
    assert 3.4 < time.monotonic() - started < 4.5


def test_a_rank_that_ended_is_not_dead_and_a_failing_rank_announces_itself():
    store = DictStore()
    zero = PeerWatch(store, 0, 2, bound=1)
    one = PeerWatch(store, 1, 2, bound=1)
    store.add("beat/1", 1)
    zero.check(now=0)
    one.stop()
    assert zero.check(now=5) is None
    store.data.pop("done/1")
    one.step = 4
    one.announce("OutOfMemoryError: CUDA out of memory")
    assert zero.check(now=6) == "rank 1 failed after step 4: OutOfMemoryError: CUDA out of memory"
    assert bound_for(600) == 60 and bound_for(5) == 5


def test_a_deepspeed_checkpoint_is_not_resumed_with_another_world_size(tmp_path, monkeypatch):
    from prefswift.arguments import parse_command
    from prefswift.run.checkpoints import mark_complete_checkpoint
    from prefswift.train.resume import world_size_change

    ckpt = tmp_path / "checkpoint-4"
    (ckpt / "global_step4").mkdir(parents=True)
    mark_complete_checkpoint(ckpt, world_size=2)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--dataset", "demo"])
    saved = {"batch_size": 2, "gradient_accumulation_steps": 1}
    with pytest.raises(ArgumentError, match="DeepSpeed checkpoint partitioned over 2 process"):
        world_size_change(args, ckpt, saved)
    (ckpt / "global_step4").rmdir()
    mark_complete_checkpoint(ckpt, world_size=2)
    assert world_size_change(args, ckpt, saved) == {"batch_size": 2, "gradient_accumulation_steps": 2}


def test_a_collective_failure_without_a_lost_rank_is_one_line():
    from prefswift.distributed.watchdog import watched
    from prefswift.errors import PrefswiftError

    import torch.distributed as dist

    watch = PeerWatch(DictStore(), 1, 2, bound=0.01, interval=0.01)
    watch.step = 5
    with pytest.raises(PrefswiftError, match="a collective failed after step 5 while every rank was still alive"):
        with watched(watch):
            raise dist.DistBackendError("[gloo] Timed out waiting 600000ms for recv operation to complete")


def silent_server():
    """A TCP server on 127.0.0.1 that accepts and never answers (a hub that hangs mid-upload)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server


def test_a_hub_timeout_or_a_broken_pipe_is_not_a_collective_failure_and_is_announced_at_once():
    """A push's ReadTimeout ('Read timed out.'), prefswift's own line about it, a BrokenPipeError: not a collective's
    failure, so the rank does not wait for a verdict about a collective; it tells the others what failed and raises it
    at once. The exceptions are real: requests against a silent server, a write to a closed socket."""
    import socket
    import time

    import requests

    from prefswift.distributed.watchdog import is_collective_failure, watched
    from prefswift.errors import PrefswiftError

    server = silent_server()
    try:
        with pytest.raises(requests.exceptions.ReadTimeout) as hub:
            requests.get(f"http://127.0.0.1:{server.getsockname()[1]}/api/models/me/run", timeout=0.3)
    finally:
        server.close()
    assert "timed out" in str(hub.value)  # the text that used to make it a collective failure
    a, b = socket.socketpair()
    b.close()
    with pytest.raises(BrokenPipeError) as pipe:
        for _ in range(100):
            a.send(b"x" * 65536)
    a.close()
    pushed = PrefswiftError(f"could not push out/adapter to Hugging Face repo me/run: {hub.value} — check the network")
    for exc in (hub.value, pipe.value, pushed):
        assert not is_collective_failure(exc), exc

    store = DictStore()
    watch = PeerWatch(store, 1, 2, bound=5, interval=1)
    watch.step = 12
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        with watched(watch):
            raise hub.value
    assert time.monotonic() - started < 1  # was: bound + 3 intervals waiting for a verdict, then a collective's line
    assert store.get("verdict").decode().startswith("rank 1 failed after step 12: ReadTimeout: ")


def test_real_torch_distributed_failures_are_collective_failures(tmp_path):
    """Two real gloo ranks (tests/gloo_errors.py): a barrier and DDP's gradient all-reduce that time out (plain
    RuntimeErrors raised by torch.distributed and by the autograd engine), a store nobody serves (DistNetworkError),
    a store key that never comes (DistStoreError), collectives after the peer exited."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = str(root / "tests" / "gloo_errors.py")
    peer = subprocess.Popen([sys.executable, script], env={**env, "RANK": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        zero = subprocess.run([sys.executable, script], env={**env, "RANK": "0"}, capture_output=True, text=True,
                              timeout=120)
    finally:
        peer.kill()
        peer.wait()
    seen = json.loads(zero.stdout.strip().splitlines()[-1])
    assert [(what, kind) for what, kind, _, _ in seen] == [
        ("barrier, peer late", "RuntimeError"), ("DDP backward, peer late", "RuntimeError"),
        ("store, nobody listens", "DistNetworkError"), ("store, key never set", "DistStoreError"),
        ("all_reduce, peer gone", "RuntimeError"), ("DDP forward, peer gone", "RuntimeError")], seen
    assert all(collective for _, _, collective, _ in seen), seen
