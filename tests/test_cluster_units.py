"""The pure parts of the cluster support: SLURM's variables, the global batch across world sizes, torchrun's report
of a killed worker, the heartbeat watch's verdicts (with an in-memory store and a hand-moved clock)."""
import io

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
    zero.fail(verdict)
    assert lines.getvalue() == f"error: {verdict}; every rank stops — here\n" and exits == [1]


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

    watch = PeerWatch(DictStore(), 1, 2, bound=0.01, interval=0.01)
    watch.step = 5
    with pytest.raises(PrefswiftError, match="a collective failed after step 5 while every rank was still alive"):
        with watched(watch):
            raise RuntimeError("[gloo] Timed out waiting 600000ms for recv operation to complete")
