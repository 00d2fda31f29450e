"""From one machine to a cluster, on this CPU (gloo): two "nodes" on one machine (two launches with NNODES=2, by the
ms-swift variables or by SLURM's as srun sets them) train what NPROC_PER_NODE=2 on one node trains; a rank killed
mid-run makes the other stop within the bound with one line; the run then resumes with 1 process (2 -> 1) and with 2
again (1 -> 2), each time continuing the same losses and learning rates.

The oracle for the losses is the one-node two-process run (itself equal to one process with the same global batch:
tests/test_distributed.py), compared step by step to 1e-5."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
STEPS, SAVE = 24, 2
TIMEOUT = 5  # --ddp_timeout of the killed run: the survivor must stop within TIMEOUT + 3 heartbeat intervals
LAUNCH_VARS = ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
               "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster") / "pairs.jsonl"
    rows = [{"prompt": f"Question {i}: what is {i} times two?", "chosen": f"Sure! It is {2 * i}.",
             "rejected": f"Whatever. It is {i}."} for i in range(32)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def options(data, out, *extra):
    """SGD and no dropout: the comparison checks the gradient averaging and the data order themselves."""
    return ["--model_type", "tiny-llama3", "--dataset", str(data), "--output_dir", str(out),
            "--max_steps", str(STEPS), "--save_steps", str(SAVE), "--logging_steps", "1", "--batch_size", "2",
            "--gradient_accumulation_steps", "1", "--eval_ratio", "0", "--learning_rate", "0.1", "--optim", "sgd",
            "--lr_scheduler_type", "linear", "--lora_dropout_p", "0", "--lora_target_modules", "ALL",
            "--gradient_checkpointing", "false", *extra]


def argv(data, out, *extra):
    return [sys.executable, "-m", "prefswift", "dpo", *options(data, out, *extra)]


def example(name, data, out):
    """examples/<name>.sh at tiny size: its own options, then ours (the later value of an option wins)."""
    return ["bash", str(ROOT / "examples" / f"{name}.sh"), *options(data, out)]


def environ(**launch):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS and not k.startswith("SLURM_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"], CUDA_VISIBLE_DEVICES="")
    env.update({k: str(v) for k, v in launch.items()})
    return env


def start(cmd, env):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def two_nodes(cmd, node_env):
    """Node 0 and node 1, one process each, started together; node_env(node) -> that node's launch variables."""
    procs = [start(cmd, environ(**node_env(node))) for node in (0, 1)]
    return finish(procs)


def rows(run):
    return [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]


def steps(run):
    return {r["step"]: (r["loss"], r["learning_rate"]) for r in rows(run) if "loss" in r}


def assert_same_steps(run, reference, from_step=1):
    got, want = steps(run), steps(reference)
    assert sorted(got) == list(range(1, STEPS + 1)), sorted(got)
    for step in range(from_step, STEPS + 1):
        assert abs(got[step][0] - want[step][0]) < 1e-5, (step, got[step], want[step])
        assert abs(got[step][1] - want[step][1]) < 1e-12, (step, got[step], want[step])


@pytest.fixture(scope="module")
def one_node(pairs, tmp_path_factory):
    """The oracle: NPROC_PER_NODE=2 on one node."""
    out = tmp_path_factory.mktemp("one_node") / "run"
    finish([start(argv(pairs, out), environ(NPROC_PER_NODE=2))])
    return out


def test_two_nodes_by_nnodes_and_node_rank_train_as_one_node(pairs, one_node, tmp_path):
    port = free_port()
    out = tmp_path / "run"
    (out0, _), _ = two_nodes(example("multinode_torchrun", pairs, out), lambda node: dict(
        NNODES=2, NODE_RANK=node, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NPROC_PER_NODE=1))
    assert_same_steps(out, one_node)
    # node 0 announces the one world of 2 it trains in (was "local rank 0/1 (world size 1): CPU")
    assert "devices: local rank 0/1 (world size 2): CPU + DDP across 2 processes [gloo]" in out0, out0[-2000:]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(out.glob(".prefswift-node-*"))  # the shared-storage markers are gone


# slow, covered by two nodes as one: test_two_nodes_by_nnodes_and_node_rank_train_as_one_node; SLURM variables:
#   test_cluster_units.py
@pytest.mark.slow
def test_two_nodes_started_by_srun_train_as_one_node(pairs, one_node, tmp_path):
    """What srun sets for a 2-node job with one task per node (each task starts torchrun for its node)."""
    port = free_port()
    out = tmp_path / "run"
    two_nodes(example("multinode_slurm", pairs, out),
              lambda node: dict(SLURM_JOB_ID="4242", SLURM_STEP_ID="0", SLURM_NNODES=2, SLURM_NTASKS=2,
                                SLURM_PROCID=node, SLURM_NODEID=node, SLURM_LOCALID=0, SLURM_JOB_NODELIST="localhost",
                                MASTER_PORT=port))
    assert_same_steps(out, one_node)


def test_an_output_dir_the_nodes_do_not_share_is_refused_in_one_line(pairs, tmp_path):
    """Each "node" gives its own --output_dir, as two machines whose output/ is local disk."""
    port = free_port()
    procs = [start(argv(pairs, tmp_path / f"node{node}" / "run"),
                   environ(NNODES=2, NODE_RANK=node, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NPROC_PER_NODE=1))
             for node in (0, 1)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    for p, err in zip(procs, errs):
        assert p.returncode != 0 and "Traceback" not in err, err[-3000:]
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "is not on storage shared by all nodes: rank 0 does not see the marker of node 1" \
            in lines[0], err[-3000:]
    assert not (tmp_path / "node0" / "run" / "adapter").exists()
    assert not (tmp_path / "node1").exists()  # only global rank 0 writes (node 1's marker could not be written)


def descendants(pid):
    """Process ids below `pid` (from /proc), parents before children."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        pid = todo.pop(0)
        kids = [p for p, pp in parent.items() if pp == pid]
        found += kids
        todo += kids
    return found


def kill_node_one(pairs, out, nodes):
    """`nodes` "nodes" (one process each) train together; node 1's worker (rank 1) is SIGKILLed once checkpoint-2 is
    whole. Returns every node's exit code and stderr, and the seconds until the last survivor stopped."""
    port = free_port()
    procs = [start(argv(pairs, out, "--ddp_timeout", str(TIMEOUT)),
                   environ(NNODES=nodes, NODE_RANK=node, MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NPROC_PER_NODE=1))
             for node in range(nodes)]
    marker = out / "checkpoint-2" / "checkpoint_complete.json"
    deadline = time.monotonic() + 240
    while not marker.is_file() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.002)
    worker = descendants(procs[1].pid)[-1]  # prefswift -> torchrun -> the worker
    os.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    errs = {}
    for node in [0, *range(2, nodes), 1]:
        errs[node] = procs[node].communicate(timeout=120)[1]
    survivor_s = time.monotonic() - killed_at
    print(f"\nthe surviving ranks stopped {survivor_s:.1f} s after the kill (--ddp_timeout {TIMEOUT})")
    return dict(out=out, codes=tuple(p.returncode for p in procs), errs=tuple(errs[n] for n in range(nodes)),
                survivor_s=survivor_s)


@pytest.fixture(scope="module")
def killed(pairs, tmp_path_factory):
    """A two-node run whose rank 1 (node 1's worker) is SIGKILLed once checkpoint-2 is whole."""
    return kill_node_one(pairs, tmp_path_factory.mktemp("killed") / "run", 2)


# slow, covered by the same kill among three nodes (the one verdict line, the bound, node 1's launcher line):
#   test_three_nodes_every_survivor_names_the_killed_rank
@pytest.mark.slow
def test_a_killed_rank_stops_the_other_within_the_bound_with_one_line(killed):
    err0, err1 = killed["errs"]
    assert killed["codes"][0] != 0 and killed["codes"][1] != 0
    bound = TIMEOUT + 3 * 2  # watchdog.bound_for(TIMEOUT) + 3 heartbeat intervals
    assert killed["survivor_s"] < bound + 10, killed["survivor_s"]
    lines = [line for line in err0.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err0, err0[-3000:]
    m = re.match(r"error: rank 1 stopped responding \(no heartbeat for 5 s\) after step (\d+); every rank stops — "
                 r"newest whole checkpoint: (\S+); continue with --resume_from_checkpoint latest$", lines[0])
    assert m, lines[0]
    assert int(m.group(1)) >= 2 and Path(m.group(2)).name.startswith("checkpoint-")
    # node 1: its launcher names the rank that died and how
    assert "error: rank 1 (local rank 0 on this node) died: exit code -9, SIGKILL" in err1, err1[-3000:]


VERDICT = re.compile(r"error: rank 1 stopped responding \(no heartbeat for 5 s\) after step (\d+); every rank stops — "
                     r"newest whole checkpoint: (\S+); continue with --resume_from_checkpoint latest$")


def assert_every_survivor_names_rank_one(result):
    """Every node but node 1 prints the one verdict line naming rank 1 (the same line: rank 0 keeps the store up until
    the others have read it), nothing else that looks like a failure; node 1's launcher names its killed worker."""
    lines = {}
    for node, (code, err) in enumerate(zip(result["codes"], result["errs"])):
        assert code != 0, (node, err[-3000:])
        if node == 1:
            assert "error: rank 1 (local rank 0 on this node) died: exit code -9, SIGKILL" in err, err[-3000:]
            continue
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and VERDICT.match(errors[0]), (node, err[-3000:])
        assert "Traceback" not in err and "TCPStore" not in err and "rank 0 is gone" not in err, (node, err[-3000:])
        lines[node] = errors[0]
    assert len(set(lines.values())) == 1, lines
    assert result["survivor_s"] < TIMEOUT + 3 * 2 + 10, result["survivor_s"]


def test_three_nodes_every_survivor_names_the_killed_rank(pairs, tmp_path):
    """NNODES=3 on loopback, node 1's worker killed: nodes 0 and 2 both name rank 1 (node 2 used to print a C++
    TCPStore trace and "rank 0 is gone": rank 0 exited at once on its verdict, taking the store with it)."""
    assert_every_survivor_names_rank_one(kill_node_one(pairs, tmp_path / "run", 3))


@pytest.mark.slow  # the same with one more node: test_three_nodes_every_survivor_names_the_killed_rank
def test_four_nodes_every_survivor_names_the_killed_rank(pairs, tmp_path):
    assert_every_survivor_names_rank_one(kill_node_one(pairs, tmp_path / "run", 4))


# slow, covered by another world size on resume:
#   test_cluster_units.py::test_the_global_batch_is_kept_across_world_sizes
@pytest.mark.slow
def test_the_killed_run_resumes_with_one_process_then_two(pairs, one_node, killed, tmp_path):
    """2 -> 1: --gradient_accumulation_steps 2 keeps the global batch of 4; 1 -> 2: back to 1. Every later step has the
    one-node run's loss and learning rate."""
    from prefswift.run.checkpoints import checkpoint_world_size, newest_whole_checkpoint

    run = tmp_path / "run"
    shutil.copytree(killed["out"], run)
    resumed_from = newest_whole_checkpoint(run)
    proc = subprocess.run(argv(pairs, run, "--resume_from_checkpoint", "latest"), capture_output=True, text=True,
                          env=environ(), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained by 2 process(es), this run has 1: --batch_size 2 --gradient_accumulation_steps 2" in proc.stderr
    assert_same_steps(run, one_node)
    assert checkpoint_world_size(run / f"checkpoint-{STEPS}") == 1
    assert int(resumed_from.name.split("-")[1]) < STEPS

    # 1 -> 2: from a checkpoint the one-process resume wrote
    again = tmp_path / "again"
    shutil.copytree(run, again)
    middle = int(resumed_from.name.split("-")[1]) + SAVE
    for ckpt in again.glob("checkpoint-*"):
        if int(ckpt.name.split("-")[1]) > middle:
            shutil.rmtree(ckpt)
    (again / "complete.json").unlink()
    proc = subprocess.run(argv(pairs, again, "--resume_from_checkpoint", "latest"), capture_output=True, text=True,
                          env=environ(NPROC_PER_NODE=2), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "this run has 2: --batch_size 2 --gradient_accumulation_steps 1" in proc.stderr
    assert_same_steps(again, one_node)


def faulty(data, out, *extra):
    """tests/faulty_worker.py under torchrun, 2 processes: `prefswift dpo` with the faults its environment names."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
            str(ROOT / "tests" / "faulty_worker.py"), "dpo", *options(data, out, *extra)]


def test_a_slow_rank0_save_outlives_the_timeout_and_a_stuck_rank_does_not(pairs, tmp_path):
    """--ddp_timeout 3 on gloo. Rank 0 writes checkpoint-2's optimizer state 8 s slower than usual, so the other rank
    waits for it longer than the timeout: the checkpoint is whole and training goes on (the waiting rank beats instead
    of blocking in a collective). Then rank 1 stops, alive, after step 3: rank 0's next collective gives up after the
    timeout (gloo used to keep its 30-minute default whatever --ddp_timeout said) and the run stops with one line."""
    out = tmp_path / "run"
    proc = start(faulty(pairs, out, "--ddp_timeout", "3"), environ(FAULT_SLOW_SAVE=8, FAULT_STALL="3:600"))
    marker = out / "checkpoint-2" / "checkpoint_complete.json"
    deadline = time.monotonic() + 240
    while not marker.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    marked_at = time.monotonic()
    try:
        err = proc.communicate(timeout=90)[1]
    except subprocess.TimeoutExpired:
        for pid in reversed(descendants(proc.pid)):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        err = proc.communicate()[1]
        pytest.fail("rank 1 stopped after step 3 and the run was still waiting for it 90 s later (--ddp_timeout 3): "
                    + err[-2000:])
    stopped_s = time.monotonic() - marked_at
    ckpt = out / "checkpoint-2"
    assert marker.is_file(), err[-3000:]
    waited = (ckpt / "optimizer.pt").stat().st_mtime - (ckpt / "rng_state_1.pth").stat().st_mtime
    assert waited > 3 * 2, waited  # rank 1 had its files written long before rank 0's save ended
    assert proc.returncode != 0 and not (out / "checkpoint-4").exists()
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0].startswith(
        "error: a collective failed after step 3 while every rank was still alive"), err[-3000:]
    # timeout 3 s, then the wait for a verdict (bound 3 s + 3 beats of 2 s), then torchrun's teardown
    assert stopped_s < 3 + 3 + 6 + 20, stopped_s


@pytest.mark.slow  # the same beating wait: test_a_slow_rank0_save_outlives_the_timeout_and_a_stuck_rank_does_not
def test_a_slow_final_save_outlives_the_timeout(pairs, tmp_path):
    """Rank 0 takes 8 s more before the final save (a slow upload), --ddp_timeout 3: the other rank waits for it
    beating, not in the final barrier, and the run ends whole."""
    out = tmp_path / "run"
    finish([start(faulty(pairs, out, "--ddp_timeout", "3", "--max_steps", "4"), environ(FAULT_SLOW_END=8))])
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "complete.json").is_file()


@pytest.mark.slow  # a killed worker's line from torchrun: test_three_nodes_every_survivor_names_the_killed_rank
def test_on_one_node_a_killed_rank_is_named_and_the_others_stop_at_once(pairs, tmp_path):
    out = tmp_path / "run"
    proc = start(argv(pairs, out), environ(NPROC_PER_NODE=2))
    marker = out / "checkpoint-2" / "checkpoint_complete.json"
    deadline = time.monotonic() + 240
    while not marker.is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    rank1 = descendants(proc.pid)[-1]  # prefswift -> torchrun -> rank 0, rank 1
    os.kill(rank1, signal.SIGKILL)
    killed_at = time.monotonic()
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode != 0 and time.monotonic() - killed_at < 30
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines == ["error: rank 1 (local rank 1 on this node) died: exit code -9, SIGKILL; torchrun stopped this "
                     "node's other ranks"], err[-3000:]
