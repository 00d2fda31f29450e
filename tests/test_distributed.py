"""Real 2-process DDP on CPU (gloo), launched the ms-swift way (NPROC_PER_NODE=2 prefswift ...): same loss curve and
final weights as one process with the same global batch and seed; `latest` resume under DDP."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "pairs.jsonl"
    rows = [{"prompt": f"Question {i}: what is {i} times two?", "chosen": f"Sure! It is {2 * i}.",
             "rejected": f"Whatever. It is {i}."} for i in range(32)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train(algo, data, out, nproc, batch_size, extra=(), steps=6):
    """SGD: Adam's m/sqrt(v) turns float-rounding differences of near-zero gradients into visible weight
    differences; with SGD the comparison checks DDP's gradient averaging itself."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NPROC_PER_NODE", None)
    if nproc > 1:
        env["NPROC_PER_NODE"] = str(nproc)
    argv = [sys.executable, "-m", "prefswift", algo, "--model_type", "tiny-llama3", "--dataset", str(data),
            "--output_dir", str(out), "--max_steps", str(steps), "--save_steps", "3", "--logging_steps", "1",
            "--batch_size", str(batch_size), "--eval_ratio", "0", "--learning_rate", "0.1", "--optim", "sgd",
            "--lora_dropout_p", "0", "--lora_target_modules", "ALL", "--gradient_checkpointing", "false",
            *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def losses(run):
    rows = [json.loads(l) for l in (run / "logging.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def assert_same_run(a, b):
    la, lb = losses(a), losses(b)
    assert [s for s, _ in la] == [s for s, _ in lb] == list(range(1, 7))
    for (_, x), (_, y) in zip(la, lb):
        assert abs(x - y) < 1e-5, (la, lb)
    wa = load_file(a / "adapter" / "adapter_model.safetensors")
    wb = load_file(b / "adapter" / "adapter_model.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0)


@pytest.mark.parametrize("algo", ["dpo", pytest.param("orpo", marks=pytest.mark.slow)])  # one DDP path
def test_two_process_ddp_equals_one_process(algo, pairs, tmp_path):
    single = tmp_path / "single"
    train(algo, pairs, single, nproc=1, batch_size=4)
    ddp = tmp_path / "ddp"
    proc = train(algo, pairs, ddp, nproc=2, batch_size=2)
    assert "DDP across 2 processes" in proc.stdout + proc.stderr
    assert_same_run(single, ddp)
    # only rank 0 writes run files: one row per logged step, not two
    assert len(losses(ddp)) == 6
    if algo == "dpo":  # a plugin's loss (examples/plugins: sigmoid written again) under DDP: the same run
        plugin = tmp_path / "plugin"
        train(algo, pairs, plugin, nproc=2, batch_size=2, extra=[
            "--custom_register_path", str(ROOT / "examples" / "plugins" / "my_losses.py"), "--loss_type", "my_sigmoid"])
        for (step, x), (_, y) in zip(losses(plugin), losses(ddp), strict=True):
            assert abs(x - y) <= 1e-6, (step, x, y)


@pytest.mark.slow  # resume: test_fault_injection, test_training; two processes: test_two_process_ddp_equals_one_process
def test_ddp_resume_latest(pairs, tmp_path):
    run = tmp_path / "run"
    train("dpo", pairs, run, nproc=2, batch_size=2)
    reference = tmp_path / "reference"
    shutil.copytree(run, reference)
    shutil.rmtree(run / "checkpoint-6")  # as if killed after checkpoint-3
    proc = train("dpo", pairs, run, nproc=2, batch_size=2, extra=["--resume_from_checkpoint", "latest"])
    assert "resuming from" in proc.stdout + proc.stderr and (run / "checkpoint-6").is_dir()
    assert_same_run(reference, run)


# slow, covered by a dying rank stops the others:
#   test_cluster.py::test_three_nodes_every_survivor_names_the_killed_rank
@pytest.mark.slow
def test_failing_rank_makes_every_rank_exit_nonzero(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", NPROC_PER_NODE="2")
    proc = subprocess.run([sys.executable, "-m", "prefswift", "orpo", "--model_type", "tiny-llama3", "--dataset",
                           str(tmp_path / "missing.jsonl"), "--output_dir", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    assert "missing.jsonl" in proc.stderr
