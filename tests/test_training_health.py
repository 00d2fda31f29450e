"""When training breaks it says so: a nan/inf loss stops the run at its step (nothing non-finite saved), or is skipped
with --skip_nonfinite_steps; infer/merge-lora/eval refuse a non-finite adapter; an exploding or dead run is warned
about in the console and the summary."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.errors import ArgumentError, PrefswiftError
from prefswift.train.console import format_line

REPO = Path(__file__).parent.parent
# fp16 weights and a learning rate of 1e3 on the tiny model: steps 1 and 2 are applied, the loss of step 3 and after
# is nan (no autocast on the CPU: the weights themselves are fp16)
BROKEN = ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--eval_ratio", "0", "--logging_steps", "1",
          "--save_steps", "1", "--lora_target_modules", "q_proj,v_proj", "--gradient_checkpointing", "false",
          "--eval_strategy", "no", "--dtype", "fp16", "--learning_rate", "1e3", "--max_steps", "5"]


def all_finite(safetensors_file: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_file(str(safetensors_file)).values())


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("nan") / "run"
    try:
        run_training(parse_command("dpo", [*BROKEN, "--output_dir", str(out)]), "dpo", log=lambda *a: None)
    except PrefswiftError as e:
        return out, str(e)
    return out, None  # not stopped


def test_a_nonfinite_loss_stops_the_run_at_its_step_and_saves_nothing_nonfinite(stopped_run):
    out, message = stopped_run
    assert message is not None, "the run went on past a nan loss"
    assert message.startswith("step 3: the loss is nan") and "\n" not in message
    for cause in ("--learning_rate 1000", "fp16", "bad data rows", "--skip_nonfinite_steps"):
        assert cause in message
    assert f"the newest good checkpoint is {out / 'checkpoint-2'}" in message
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert all(all_finite(out / c / "adapter_model.safetensors") for c in ("checkpoint-1", "checkpoint-2"))
    assert not (out / "adapter").exists() and not (out / "complete.json").exists()  # not reported as a success


def test_skip_nonfinite_steps_skips_them_and_keeps_the_weights_finite(tmp_path):
    out = tmp_path / "run"
    lines = []
    run_training(parse_command("dpo", [*BROKEN, "--output_dir", str(out), "--skip_nonfinite_steps", "5"]), "dpo",
                 log=lines.append)
    for name in ("adapter", "checkpoint-3", "checkpoint-5"):
        assert all_finite(out / name / "adapter_model.safetensors")
    rows = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows if "loss" in r][2:] == ["nan"] * 3  # logged as nan, not 0 and not null
    # a skipped step is not applied: the adapter is the one of step 2
    first = load_file(str(out / "checkpoint-2" / "adapter_model.safetensors"))
    final = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert all(torch.equal(first[k], final[k]) for k in first)


def test_one_more_nonfinite_step_than_allowed_stops_the_run(tmp_path):
    with pytest.raises(PrefswiftError, match=r"^step 4: the loss is nan .*\(1 already skipped\)"):
        run_training(parse_command("dpo", [*BROKEN, "--output_dir", str(tmp_path / "run"), "--skip_nonfinite_steps",
                                           "1"]), "dpo", log=lambda *a: None)


def test_skip_nonfinite_steps_is_checked_when_parsed():
    with pytest.raises(ArgumentError, match="--skip_nonfinite_steps: -1 must be at least 0"):
        parse_command("dpo", ["--model_type", "tiny-llama3", "--skip_nonfinite_steps", "-1"])


def test_nan_and_inf_are_printed_as_such():
    line = format_line("train", 2, 3, {"loss": float("nan"), "rewards/margins": float("inf"), "learning_rate": 1e3})
    assert "loss     nan" in line and "margin     inf" in line and "0.0000" not in line


def test_infer_merge_and_eval_refuse_an_adapter_with_nonfinite_weights(stopped_run, tmp_path):
    out, _ = stopped_run
    broken = tmp_path / "broken"
    shutil.copytree(out / "checkpoint-1", broken)
    weights = load_file(str(broken / "adapter_model.safetensors"))
    name = sorted(weights)[0]
    weights[name][0, 0] = float("nan")
    save_file(weights, str(broken / "adapter_model.safetensors"))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for argv, stdin in ((["merge-lora", "--ckpt_dir", str(broken)], None),
                        (["infer", "--ckpt_dir", str(broken)], "What is 2?\n"),
                        (["eval", "--ckpt_dir", str(broken), "--dataset", "demo#2"], None)):
        proc = subprocess.run([sys.executable, "-m", "prefswift", *argv], env=env, input=stdin, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (argv, proc.stderr[-2000:])
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "not finite" in errors[0] and name in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "broken-merged").exists()


# ---------------------------------------------------------------------------------------------- divergence

def watch(rows):
    """Feed DivergenceWatch logged rows [(loss, grad_norm)], return its warnings."""
    from transformers import TrainerControl, TrainerState

    from prefswift.train.health import DivergenceWatch

    warnings = []
    w = DivergenceWatch(warnings.append)
    state = TrainerState()
    for step, (loss, grad_norm) in enumerate(rows, 1):
        state.global_step = step
        w.on_log(None, state, TrainerControl(), logs={"loss": loss, "grad_norm": grad_norm})
    return warnings


def test_an_exploding_loss_is_warned_about_once():
    # the fp32 run: ORPO's loss from 6.9 to 14,083,972, then flat
    warnings = watch([(6.94, 1.2), (6.90, 3.0), (14083972.0, 9e6), (3e6, 1.0), (20e6, 5.0)])
    assert len(warnings) == 1 and warnings[0].startswith("[prefswift] warning: step 3: the loss (1.4084e+07)")
    # a DPO loss that went near 0 and comes back to ordinary values is not an explosion
    assert watch([(0.693, 1.0), (0.05, 1.0), (0.004, 1.0), (0.3, 1.0), (0.6, 1.0)]) == []


def test_a_gradient_norm_stuck_at_zero_is_warned_about_once():
    warnings = watch([(6.9, 1.0), (6.97, 0.0), (6.97, 0.0), (6.97, 0.0), (6.97, 0.0)])
    assert len(warnings) == 1 and "step 4: the gradient norm has been 0 for 3 logged steps" in warnings[0]
    assert watch([(6.9, 0.0), (6.9, 0.0), (6.9, 1e-3), (6.9, 0.0)]) == []


def test_a_collapsed_fp32_run_finishes_with_the_warning_in_console_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    lines = []
    # the tiny model at a learning rate of 1e3 in fp32: the gradient norm is 0 from step 3 on
    run_training(parse_command("orpo", ["--model_type", "tiny-llama3", "--dataset", "demo#16", "--eval_ratio", "0",
                                        "--logging_steps", "1", "--learning_rate", "1e3", "--max_steps", "5",
                                        "--save_strategy", "no", "--output_dir", str(out)]), "orpo", log=lines.append)
    printed = capsys.readouterr().out
    assert printed.count("[prefswift] warning: ") == 1 and "gradient norm has been 0" in printed
    summary = lines[-1]
    assert summary.startswith("==> training summary") and "  warning " in summary


def test_a_run_stopped_on_nan_reads_as_non_finite_for_every_command_that_shows_runs(stopped_run):
    from prefswift.run.state import read_run

    out, message = stopped_run
    info = read_run(out)
    # step 3 (the one named) was not applied: the run stopped after 2 steps
    assert info.state == "non-finite" and info.stopped["step"] == 2 and info.stopped["message"] == message
    assert info.result is None and [c.step for c in info.checkpoints] == [1, 2]
