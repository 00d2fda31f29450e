"""`prefswift.run.state.read_run`: what a run dir says about its run, for every command that shows or uses runs
(web, deploy, export): finished, running, killed, and damaged dirs said plainly, never an exception."""
import json
import os
import subprocess
import sys

import pytest

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.run.state import find_runs, read_run

TINY = ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--eval_ratio", "0", "--logging_steps", "1",
        "--save_steps", "1", "--lora_target_modules", "q_proj,v_proj", "--eval_strategy", "no", "--max_steps", "2"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "group" / "run"
    run_training(parse_command("orpo", [*TINY, "--output_dir", str(out)]), "orpo", log=lambda *a: None)
    return out


def test_a_finished_run_reads_back_as_training_wrote_it(finished_run):
    info = read_run(finished_run)
    args = json.loads((finished_run / "args.json").read_text())
    rows = [json.loads(line) for line in (finished_run / "logging.jsonl").read_text().splitlines()]
    assert info.state == "finished" and info.algorithm == "orpo" == args["command"]
    assert info.model == "tiny-llama3" and (info.step, info.max_steps) == (2, 2)
    assert info.result == finished_run / "adapter" and info.notes == []
    assert [c.step for c in info.checkpoints] == [1, 2] and all(c.problem is None for c in info.checkpoints)
    assert info.logs == rows
    # found from any folder above it; its checkpoints and adapter are not runs of their own
    assert find_runs(finished_run.parent.parent) == [finished_run]


def test_a_live_lock_is_running_and_a_dead_ones_run_is_interrupted(finished_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text(json.dumps({"command": "dpo", "model_type": "tiny-qwen"}))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".prefswift.lock").write_text(f"{sleeper.pid}\n")
        assert read_run(run).state == "running" and read_run(run).running_pid == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    assert read_run(run).state == "interrupted"  # killed: no complete.json, no stop record, no live holder


def test_a_damaged_run_dir_is_described_not_raised(finished_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    with open(run / "logging.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 3, "loss": 0.')  # a line cut in half by a writer
    (run / "checkpoint-1" / "adapter_model.safetensors").unlink()
    shutil.rmtree(run / "adapter")
    info = read_run(run)
    assert len(info.logs) == len(read_run(finished_run).logs)
    assert any("logging.jsonl line" in n for n in info.notes)
    assert any(n.startswith("checkpoint-1:") for n in info.notes)
    assert any("neither adapter/ nor final/" in n for n in info.notes)
    assert os.path.isdir(run / "checkpoint-2")
