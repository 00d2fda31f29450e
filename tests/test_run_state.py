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


def files_under(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_starting_over_removes_only_the_runs_own_files_and_leaves_no_checkpoint_lookalike(finished_run, tmp_path):
    """--overwrite_output_dir true on a real run with the user's files put inside its checkpoint and adapter folders:
    every file the run wrote goes (nothing of it is left, so nothing it writes is missing from prefswift's list), the
    user's files stay byte for byte with their folders, one line names them; what is left is no checkpoint and no
    result, so a new run in the folder trains and resumes as in an empty one."""
    import shutil

    from prefswift.data.selection import result_path
    from prefswift.run.directory import prepare_run_dir, resolve_resume

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    # what `prefswift eval` writes next to the adapter (data.selection.result_path names it): the run's too
    result_path(None, run / "adapter", "eval_result", ".json").write_text('{"mode": "pairs"}\n')
    result_path(None, run, "infer_result", ".jsonl").write_text('{"response": "hi"}\n')
    users = {"checkpoint-2/my_notes.txt": b"lr looked high here", "adapter/README_mine.md": b"# my adapter",
             "checkpoint-1/eval_result/my_table.csv": b"a,b\n", "checkpoint-2/plots/mine.png": b"png",
             "infer_result/README.md": b"which prompts these were",
             "notes.txt": b"top level"}
    for name, data in users.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    said = []
    prepare_run_dir(run.resolve(), None, overwrite=True, is_main=True, log=said.append)
    assert files_under(run) == users  # before: checkpoint-N/ and adapter/ were removed whole, the user's files too
    assert sorted(p.name for p in run.iterdir()) == ["adapter", "checkpoint-1", "checkpoint-2", "infer_result",
                                                     "notes.txt"]
    kept = [line for line in said if "did not write" in line]
    assert len(kept) == 1 and "\n" not in kept[0] and str(run.resolve()) in kept[0], said
    for name in ("checkpoint-2/my_notes.txt", "adapter/README_mine.md", "checkpoint-1/eval_result/my_table.csv",
                 "checkpoint-2/plots/"):
        assert name in kept[0], kept[0]
    # what is left is not a run: no checkpoint to resume, no result, no note about a broken checkpoint
    warned = []
    assert resolve_resume(run, "latest", warn=warned.append) is None and warned == []
    # a new run here needs no --overwrite_output_dir, and what it leaves reads as its own run alone
    run_training(parse_command("orpo", [*TINY, "--max_steps", "1", "--output_dir", str(run)]), "orpo",
                 log=lambda *a: None)
    info = read_run(run)
    assert info.state == "finished" and [c.step for c in info.checkpoints] == [1] and info.notes == []
    assert all(c.problem is None for c in info.checkpoints)
    assert {k: v for k, v in files_under(run).items() if k in users} == users


def test_save_total_limit_rotation_keeps_a_users_file_in_an_old_checkpoint(finished_run, tmp_path):
    import shutil

    from prefswift.run.checkpoints import checkpoints, rotate

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "checkpoint-1" / "why_this_one.txt").write_text("kept by hand")
    rotate(run / "checkpoint-2", 1, checkpoints(run))  # --save_total_limit 1 once checkpoint-2 is marked
    assert files_under(run / "checkpoint-1") == {"why_this_one.txt": b"kept by hand"}  # before: removed whole
    assert checkpoints(run) == [run / "checkpoint-2"]  # what is left of checkpoint-1 is no checkpoint
