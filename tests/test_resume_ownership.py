"""A resume never takes over another run's directory: `--output_dir A --resume_from_checkpoint B/checkpoint-1` with A
holding a finished run is refused in one line, and A is left byte for byte as it was, whichever way the checkpoint is
named (absolute path, path relative to the working directory, a symlink in A to B's checkpoint named or found by
`latest`). With --overwrite_output_dir true the run continues in A from B's checkpoint, and B is left as it was."""
import json
import os

import pytest

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.errors import ArgumentError

BASE = ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--eval_ratio", "0", "--logging_steps", "1",
        "--save_steps", "1", "--max_steps", "2", "--batch_size", "2", "--lora_target_modules", "q_proj,v_proj",
        "--gradient_checkpointing", "false"]


def train(out, *extra):
    logs = []
    run_training(parse_command("orpo", [*BASE, "--output_dir", str(out), *extra]), "orpo",
                 log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    return logs


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and not any(q.is_symlink() for q in p.parents)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train(root / "A")
    train(root / "B", "--seed", "7")
    return root


def test_another_runs_checkpoint_is_refused_in_one_line_however_it_is_named(runs, monkeypatch):
    a, b = runs / "A", runs / "B"
    before_a, before_b = snapshot(a), snapshot(b)
    assert (a / "complete.json").is_file() and (a / "checkpoint-2").is_dir()
    monkeypatch.chdir(runs)
    link = a / "checkpoint-9"
    os.symlink(b / "checkpoint-1", link)
    try:
        for named in (str(b / "checkpoint-1"), "B/checkpoint-1", str(link), "latest"):
            with pytest.raises(ArgumentError) as err:
                train(a, "--resume_from_checkpoint", named)
            msg = str(err.value)
            assert "\n" not in msg and f"the run in {b}" in msg and "--overwrite_output_dir true" in msg, named
    finally:
        link.unlink()
    assert snapshot(a) == before_a and snapshot(b) == before_b


def test_the_runs_own_checkpoint_by_a_relative_name_is_resumed(runs, monkeypatch, tmp_path):
    import shutil

    own = tmp_path / "own"
    shutil.copytree(runs / "A", own)
    for gone in ("checkpoint-2", "adapter", "complete.json"):  # as if killed after its first step
        shutil.rmtree(own / gone) if (own / gone).is_dir() else (own / gone).unlink()
    monkeypatch.chdir(tmp_path)  # `checkpoint-1` is not in the working directory: the run's own
    logs = train(own, "--resume_from_checkpoint", "checkpoint-1")
    assert any(f"resuming from {own / 'checkpoint-1'}" in line for line in logs)
    assert (own / "checkpoint-2").is_dir() and (own / "complete.json").is_file()


def test_overwrite_continues_the_other_runs_checkpoint_in_output_dir_and_leaves_it_alone(runs, tmp_path):
    import shutil

    a = tmp_path / "A"
    shutil.copytree(runs / "A", a)
    (a / "notes.txt").write_text("the user's")
    before_b = snapshot(runs / "B")
    train(a, "--resume_from_checkpoint", str(runs / "B" / "checkpoint-1"), "--overwrite_output_dir", "true")
    assert snapshot(runs / "B") == before_b
    assert (a / "notes.txt").read_text() == "the user's"
    assert not (a / "checkpoint-1").exists()  # A's earlier run was replaced, not mixed in
    rows = [json.loads(line) for line in (a / "logging.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2]  # continued from B's step 1
    b_rows = [json.loads(line) for line in (runs / "B" / "logging.jsonl").read_text().splitlines()]
    b_loss = [r["loss"] for r in b_rows if "loss" in r and r["step"] == 2]
    assert [r["loss"] for r in rows if "loss" in r] == pytest.approx(b_loss, abs=1e-5)  # B's run, continued
    assert json.loads((a / "args.json").read_text())["seed"] == 7  # B's arguments carried over
