"""Resumes are safe: the checkpoint's own arguments carry over, contradictions are refused, a finished run is left
alone, and Ctrl-C says where the run stopped and how to continue it."""
import json
from pathlib import Path

import pytest
from transformers import TrainerCallback

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.errors import ArgumentError

BASE = ["--model_type", "tiny-llama3", "--dataset", "demo#24", "--eval_ratio", "0", "--logging_steps", "1",
        "--save_steps", "1", "--lora_target_modules", "q_proj,v_proj"]


def train(out, *extra, callbacks=()):
    logs = []
    run_training(parse_command("orpo", [*BASE, "--output_dir", str(out), *extra]), "orpo",
                 log=lambda *a, **k: logs.append(" ".join(map(str, a))), callbacks=callbacks)
    return logs


def log_rows(out):
    return [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]


def test_resume_takes_the_checkpoints_arguments_for_what_is_not_given(tmp_path):
    import shutil

    out = tmp_path / "run"
    train(out, "--gradient_accumulation_steps", "2", "--num_train_epochs", "3", "--learning_rate", "1e-4",
          "--max_steps", "2")
    whole = [(r["step"], r["loss"], r["learning_rate"]) for r in log_rows(out) if "loss" in r]
    for gone in ("checkpoint-2", "adapter"):  # as if the run had been killed after its first step
        shutil.rmtree(out / gone)
    (out / "complete.json").unlink()
    # the ORPO script's resume line: without --gradient_accumulation_steps / --num_train_epochs / --learning_rate
    train(out, "--resume_from_checkpoint", "latest")
    saved = json.loads((out / "checkpoint-2" / "args.json").read_text())
    assert (saved["gradient_accumulation_steps"], saved["num_train_epochs"], saved["learning_rate"],
            saved["max_steps"]) == (2, 3.0, 1e-4, 2)
    resumed = [(r["step"], r["loss"], r["learning_rate"]) for r in log_rows(out) if "loss" in r]
    assert [s for s, _, _ in resumed] == [1, 2]
    assert resumed[1] == pytest.approx(whole[1], abs=1e-6)  # the resumed run equals the uninterrupted one


@pytest.mark.parametrize("flag,value", [("--lora_rank", "16"), ("--learning_rate", "1e-3"),
                                        ("--lora_target_modules", "ALL"), ("--max_tokens_per_batch", "512")])
def test_resume_refuses_an_explicit_contradiction_in_one_line(tmp_path, flag, value):
    out = tmp_path / "run"
    train(out, "--max_steps", "1")
    with pytest.raises(ArgumentError) as err:
        train(out, "--resume_from_checkpoint", "latest", "--max_steps", "2", flag, value)
    msg = str(err.value)
    assert f"{flag} " in msg and "contradicts the checkpoint checkpoint-1" in msg and "\n" not in msg


def test_resuming_a_finished_run_writes_nothing(tmp_path):
    out = tmp_path / "run"
    train(out, "--max_steps", "2")
    adapter = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    before = sorted(p.name for p in out.iterdir())
    logs = train(out, "--max_steps", "2", "--resume_from_checkpoint", "latest")
    assert any("is complete (step 2 of 2); nothing to resume" in line for line in logs)
    assert sorted(p.name for p in out.iterdir()) == before
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    # asking for more steps continues it
    train(out, "--max_steps", "3", "--resume_from_checkpoint", "latest")
    assert (out / "checkpoint-3").is_dir()


class Interrupt(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt


def test_ctrl_c_says_where_it_stopped_and_how_to_continue(tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr("sys.argv", ["prefswift", "orpo", "--output_dir", str(out), "--max_steps", "5"])
    logs = []
    with pytest.raises(SystemExit) as stop:
        run_training(parse_command("orpo", [*BASE, "--output_dir", str(out), "--max_steps", "5"]), "orpo",
                     log=logs.append, callbacks=[Interrupt()])
    assert stop.value.code == 130
    message = "\n".join(logs)
    assert "interrupted at step 2" in message and "checkpoint-1" in message  # step 2 ended before its save
    assert "--resume_from_checkpoint latest" in message and "prefswift orpo --output_dir" in message


@pytest.mark.slow  # args.json replayed from another directory: test_resume's printed-command test
def test_args_json_replays_a_plugin_run_from_another_directory(tmp_path, tiny_llama3_dir):
    """A run trained with --custom_register_path (its own model type and template) and a relative model path is
    merged and evaluated from another directory with --ckpt_dir alone."""
    import os
    import shutil
    import subprocess
    import sys

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    shutil.copytree(tiny_llama3_dir, work / "my_model")
    (work / "plug.py").write_text(
        "from prefswift.registry.models import ModelSpec, register_model\n"
        "from prefswift.templates import TemplateSpec, get_template, register_template\n"
        "import dataclasses\n"
        "register_template(dataclasses.replace(get_template('llama3').spec, name='my-llama3', aliases=()),\n"
        "                  exist_ok=True)\n"
        "register_model(ModelSpec('my-llama', None, None, 'my-llama3'), overwrite=True)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))

    def prefswift(cwd, *argv):
        proc = subprocess.run([sys.executable, "-m", "prefswift", *argv], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    prefswift(work, "orpo", "--custom_register_path", "plug.py", "--model_type", "my-llama", "--model_id_or_path",
              "./my_model", "--dataset", "demo#8", "--eval_ratio", "0", "--max_steps", "1", "--output_dir", "run")
    saved = json.loads((work / "run" / "args.json").read_text())
    assert saved["model_id_or_path"] == str(work / "my_model") and saved["custom_register_path"] == str(
        work / "plug.py")
    prefswift(elsewhere, "merge-lora", "--ckpt_dir", str(work / "run" / "adapter"))
    prefswift(elsewhere, "eval", "--ckpt_dir", str(work / "run" / "adapter"), "--dataset", "demo#4")


def test_the_continue_command_ctrl_c_prints_runs_verbatim_with_relative_paths(tmp_path, tiny_llama3_dir, monkeypatch):
    """Relative --dataset and --model_id_or_path (stored absolute in args.json) are the same values when the printed
    command is run again from the same directory."""
    import shlex
    import shutil

    from prefswift.cli import main

    shutil.copytree(tiny_llama3_dir, tmp_path / "my_model")
    (tmp_path / "data").mkdir()
    demo = Path(__file__).parent.parent / "prefswift" / "data" / "demo_data" / "demo.jsonl"
    (tmp_path / "data" / "uf.jsonl").write_text("".join(demo.read_text().splitlines(keepends=True)[:24]))
    monkeypatch.chdir(tmp_path)
    argv = ["orpo", "--model_type", "tiny-llama3", "--model_id_or_path", "my_model", "--dataset", "data/uf.jsonl",
            "--output_dir", "out", "--eval_ratio", "0", "--save_steps", "1", "--max_steps", "3", "--logging_steps", "1",
            "--lora_target_modules", "q_proj,v_proj"]
    monkeypatch.setattr("sys.argv", ["prefswift", *argv])
    logs = []
    with pytest.raises(SystemExit):
        run_training(parse_command("orpo", argv[1:]), "orpo", log=logs.append, callbacks=[Interrupt()])
    printed = "\n".join(logs).split("Continue with:\n")[1].strip()
    assert printed.startswith("prefswift orpo ") and "--dataset data/uf.jsonl" in printed
    command = shlex.split(printed)
    try:
        main(command[1:])
    except SystemExit as e:
        assert e.code in (0, None)
    assert (tmp_path / "out" / "complete.json").is_file()
    assert [r["step"] for r in log_rows(tmp_path / "out") if "loss" in r] == [1, 2, 3]


@pytest.mark.parametrize("algo,same,different", [
    ("orpo", ["--beta", "0.1"], ["--beta", "0.2"]),  # the seed ORPO guide's resume line on a run without --beta
    ("simpo", ["--beta", "2.0"], ["--beta", "0.1"]),
    ("dpo", ["--loss_type", "sigmoid", "--loss_weights", "1"], ["--loss_type", "ipo"]),
    ("orpo", ["--max_prompt_length", "1024"], ["--max_prompt_length", "512"]),  # half of --max_length 2048
])
def test_a_value_equal_to_what_the_run_used_by_default_is_no_contradiction(tmp_path, algo, same, different):
    """Defaults as documented (TRL's ORPO/DPO beta 0.1, SimPO's paper beta 2.0, DPO's sigmoid loss, the prompt limit
    half of --max_length): repeating one is the same run; another value is still refused."""
    from prefswift.train.resume import adopt_checkpoint_args

    ckpt = tmp_path / "checkpoint-2"
    first = [*BASE, "--output_dir", str(tmp_path)]
    parse_command(algo, first).save(ckpt)
    resume = [*first, "--resume_from_checkpoint", "latest"]
    adopted = adopt_checkpoint_args(parse_command(algo, [*resume, *same]), ckpt)
    assert adopted.pref.beta == parse_command(algo, [*resume, *same]).pref.beta
    with pytest.raises(ArgumentError, match=f"{different[0]} {different[1]} contradicts the checkpoint"):
        adopt_checkpoint_args(parse_command(algo, [*resume, *different]), ckpt)


class InterruptAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """transformers' cosine schedule, written out: the factor of the peak rate for optimizer step `step` (0-based)."""
    import math

    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * progress)))


def test_a_resume_with_another_max_steps_follows_the_new_schedule_from_its_step(tmp_path):
    """Killed at step 3 of 6 (checkpoint-2), resumed to 4 steps, then extended to 7: each step runs at the rate of
    the schedule of the total it ran under, at its own step, and every step changes the weights."""
    import hashlib

    out = tmp_path / "run"
    lr = 1e-3
    with pytest.raises(SystemExit):
        train(out, "--max_steps", "6", "--learning_rate", str(lr), "--lr_scheduler_type", "cosine", "--warmup_steps",
              "1", callbacks=[InterruptAt(3)])
    train(out, "--max_steps", "4", "--resume_from_checkpoint", "latest")
    train(out, "--max_steps", "7", "--resume_from_checkpoint", "latest")
    logged = {r["step"]: r["learning_rate"] for r in log_rows(out) if "loss" in r}
    totals = {1: 6, 2: 6, 3: 4, 4: 4, 5: 7, 6: 7, 7: 7}
    assert sorted(logged) == list(totals)
    for step, total in totals.items():
        assert logged[step] == pytest.approx(lr * cosine_with_warmup(step - 1, total, 1), rel=1e-6, abs=1e-12), step
    digests = [hashlib.sha256((out / f"checkpoint-{s}" / "adapter_model.safetensors").read_bytes()).hexdigest()
               for s in range(2, 8)]
    assert len(set(digests)) == len(digests)  # no step after the warm-up step ran at rate 0
