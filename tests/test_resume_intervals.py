"""On a resume an explicit --save_steps / --logging_steps acts (the checkpoint's trainer_state.json carried the old
intervals, and the Trainer used them): hand-worked steps of checkpoints and log rows."""
import json
import shutil

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training

BASE = ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--eval_ratio", "0", "--batch_size", "2",
        "--lora_target_modules", "q_proj,v_proj", "--gradient_checkpointing", "false"]


def train(out, *extra):
    run_training(parse_command("orpo", [*BASE, "--output_dir", str(out), *extra]), "orpo", log=lambda *a, **k: None)


def test_explicit_intervals_act_on_a_resume(tmp_path):
    out = tmp_path / "run"
    train(out, "--max_steps", "2", "--save_steps", "1", "--logging_steps", "1")
    for gone in ("checkpoint-2", "adapter", "complete.json"):  # as if killed after its first step
        shutil.rmtree(out / gone) if (out / gone).is_dir() else (out / gone).unlink()
    train(out, "--resume_from_checkpoint", "latest", "--max_steps", "6", "--save_steps", "2", "--logging_steps", "2")
    # resumed at step 1: saves at 2, 4, 6 (every 2 steps), logs steps 2, 4, 6 after the kept row of step 1
    assert sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == [1, 2, 4, 6]
    rows = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 4, 6]
    saved = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert (saved["save_steps"], saved["logging_steps"]) == (2, 2)
