"""A checkpoint is used for a resume only when it is whole: `latest` skips a broken one (with a warning naming the
file) and resumes from the one before, a named broken one is refused in one line, and every checkpoint a run writes
carries the completion marker last. The validators are checked against the loaders themselves (safetensors, torch)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.errors import ArgumentError
from prefswift.run.checkpoints import MARKER, checkpoint_problem, safetensors_problem, torch_archive_problem
from prefswift.run.directory import resolve_resume

BASE = ["--model_type", "tiny-llama3", "--dataset", "demo#24", "--eval_ratio", "0", "--logging_steps", "1",
        "--save_steps", "1", "--lora_target_modules", "q_proj,v_proj", "--learning_rate", "1e-3"]


def train(out, *extra):
    logs = []
    run_training(parse_command("orpo", [*BASE, "--output_dir", str(out), *extra]), "orpo",
                 log=lambda *a, **k: logs.append(" ".join(map(str, a))))
    return logs


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
    """A finished 3-step run, checkpoint-2 and -3 kept (--save_total_limit 2); copied by each test that changes it."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(out, "--max_steps", "3", "--save_total_limit", "2")
    return out


def unfinished_copy(run: Path, dest: Path) -> Path:
    """The run as if killed after its last save: no final adapter, no complete.json."""
    shutil.copytree(run, dest)
    shutil.rmtree(dest / "adapter")
    (dest / "complete.json").unlink()
    return dest


def cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


BREAKS = {  # name: (how the newest checkpoint is broken, the file the warning must name)
    "adapter missing": (lambda c: (c / "adapter_model.safetensors").unlink(), "adapter_model.safetensors"),
    "adapter header cut": (lambda c: cut(c / "adapter_model.safetensors", 4), "adapter_model.safetensors"),
    "adapter data cut": (lambda c: cut(c / "adapter_model.safetensors", -100), "adapter_model.safetensors"),
    "optimizer missing": (lambda c: (c / "optimizer.pt").unlink(), "optimizer.pt"),
    "optimizer cut": (lambda c: cut(c / "optimizer.pt", 1000), "optimizer.pt"),
    "state cut": (lambda c: cut(c / "trainer_state.json", 20), "trainer_state.json"),
    "killed before the marker": (lambda c: (c / MARKER).unlink(), MARKER),
}


@pytest.mark.parametrize("name", list(BREAKS))
def test_latest_skips_a_broken_newest_checkpoint_naming_the_file(three_steps, tmp_path, name):
    run = unfinished_copy(three_steps, tmp_path / "run")
    brk, file = BREAKS[name]
    brk(run / "checkpoint-3")
    warnings = []
    assert resolve_resume(run, "latest", warn=warnings.append) == run / "checkpoint-2"
    assert len(warnings) == 1 and warnings[0].startswith("[prefswift] warning: skipping checkpoint-3:")
    assert file in warnings[0]
    named = f"--resume_from_checkpoint .*checkpoint-3: not a whole checkpoint .*{file}"
    with pytest.raises(ArgumentError, match=named):
        resolve_resume(run, str(run / "checkpoint-3"))


def test_resume_latest_after_a_cut_short_adapter_continues_from_the_checkpoint_before(three_steps, tmp_path):
    run = unfinished_copy(three_steps, tmp_path / "run")
    cut(run / "checkpoint-3" / "adapter_model.safetensors", -100)
    logs = train(run, "--max_steps", "3", "--resume_from_checkpoint", "latest")
    assert any("warning: skipping checkpoint-3" in line for line in logs)
    assert any(f"resuming from {run / 'checkpoint-2'}" in line for line in logs)
    # redone from checkpoint-2: the same weights as the uninterrupted run's step 3
    for name in ("checkpoint-3/adapter_model.safetensors", "adapter/adapter_model.safetensors"):
        assert (run / name).read_bytes() == (three_steps / name).read_bytes()
    assert checkpoint_problem(run / "checkpoint-3") is None


def test_a_named_broken_checkpoint_is_one_error_line_with_exit_code_2(three_steps, tmp_path, capsys):
    from prefswift.cli import main

    run = unfinished_copy(three_steps, tmp_path / "run")
    (run / "checkpoint-2" / "optimizer.pt").unlink()
    with pytest.raises(SystemExit) as stop:
        main(["orpo", *BASE, "--output_dir", str(run), "--max_steps", "3",
              "--resume_from_checkpoint", str(run / "checkpoint-2")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --resume_from_checkpoint")
    assert "optimizer.pt is missing" in err[0]


def test_every_checkpoint_is_marked_whole_listing_its_files(three_steps):
    for step in (2, 3):
        ckpt = three_steps / f"checkpoint-{step}"
        files = json.loads((ckpt / MARKER).read_text())["files"]
        on_disk = {str(p.relative_to(ckpt)): p.stat().st_size for p in ckpt.rglob("*") if p.is_file()
                   and p.name != MARKER}
        assert files == on_disk
        assert {"adapter_model.safetensors", "optimizer.pt", "trainer_state.json", "args.json"} <= set(files)
        assert checkpoint_problem(ckpt) is None


def test_latest_without_a_whole_checkpoint_starts_the_run_again(three_steps, tmp_path):
    """Killed during its first save: `latest` has nothing whole to continue, so the run starts from step 0 (its own
    cut-short checkpoints are replaced); a finished run is never restarted this way."""
    from prefswift.run.directory import prepare_run_dir

    run = unfinished_copy(three_steps, tmp_path / "run")
    for ckpt in run.glob("checkpoint-*"):
        cut(ckpt / "optimizer.pt", 500)
    said = []
    assert resolve_resume(run, "latest", warn=said.append) is None and len(said) == 2
    finished = tmp_path / "finished"
    shutil.copytree(run, finished)
    (finished / "complete.json").write_text("{}")
    with pytest.raises(ArgumentError, match="already holds a run"):
        prepare_run_dir(finished, None, False, True, "latest", said.append)
    prepare_run_dir(run, None, False, True, "latest", said.append)
    assert "starting it over" in said[-1] and not list(run.glob("checkpoint-*"))


def test_save_total_limit_keeps_the_newest_whole_checkpoints(three_steps):
    assert sorted(p.name for p in three_steps.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]


def test_safetensors_check_agrees_with_the_safetensors_loader(tmp_path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    whole = tmp_path / "whole.safetensors"
    save_file({"a": torch.arange(12.0).reshape(3, 4), "b": torch.ones(5, dtype=torch.int64)}, str(whole))
    data = whole.read_bytes()
    part = tmp_path / "part.safetensors"
    for keep in sorted({0, 3, 8, 9, 20, len(data) // 2, len(data) - 41, len(data) - 1, len(data)}):
        part.write_bytes(data[:keep])
        try:
            load_file(str(part))
            loads = True
        except (SafetensorError, OSError, ValueError):
            loads = False
        assert (safetensors_problem(part) is None) == loads, keep
    assert safetensors_problem(whole) is None


def test_torch_archive_check_agrees_with_torch_load(tmp_path):
    whole = tmp_path / "whole.pt"
    torch.save({"state": {0: {"exp_avg": torch.randn(64)}}, "lr": 1e-3}, whole)
    data = whole.read_bytes()
    part = tmp_path / "part.pt"
    for keep in sorted({0, 10, 100, len(data) // 2, len(data) - 30, len(data) - 1, len(data)}):
        part.write_bytes(data[:keep])
        try:
            torch.load(part, weights_only=True)
            loads = True
        except (RuntimeError, EOFError, OSError, ValueError):
            loads = False
        assert (torch_archive_problem(part) is None) == loads, keep
