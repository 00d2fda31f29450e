"""The training console (issue 9 item 12): aligned metric lines, one bar only on a TTY, eval lines marked, rank 0
only, the summary table, the library noise silenced, and the Trainer's own printing replaced."""
import io
import logging
import re
import warnings

import pytest
import torch
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerControl, TrainerState, TrainingArguments

from prefswift.train.console import (ConsoleCallback, TrainSummary, format_line, format_summary, peak_memory,
                                     quiet_library_noise, use_console)


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class TTYStringIO(io.StringIO):
    def isatty(self):
        return True


def _state(step=0, max_steps=6, tokens=0, world_zero=True):
    state = TrainerState()
    state.global_step, state.max_steps, state.num_input_tokens_seen = step, max_steps, tokens
    state.is_world_process_zero = state.is_local_process_zero = world_zero
    return state


def _train_logs(loss, acc=1.0, margin=0.0038, lr=2.5e-5):
    return {"loss": loss, "grad_norm": 1.2, "learning_rate": lr, "rewards/accuracies": acc,
            "rewards/margins": margin, "rewards/chosen": -0.68, "rewards/rejected": -0.69}


def _simulate(console, clock, *, max_steps=6, logging_steps=2, start=0, world_zero=True, eval_losses=(6.93,)):
    """Drive `console` through the events the Trainer sends: 40 tokens and 1 s per step, logs every
    `logging_steps` (and at step 1), evals at the end (one per `eval_losses`), then the final averages."""
    state = _state(start, max_steps, tokens=40 * start, world_zero=world_zero)
    args, control = None, TrainerControl()
    console.on_train_begin(args, state, control)
    for step in range(start + 1, max_steps + 1):
        clock.t += 1.0
        state.global_step, state.num_input_tokens_seen = step, 40 * step
        console.on_step_end(args, state, control)
        if step == 1 or step % logging_steps == 0:
            console.on_log(args, state, control, logs=_train_logs(7.0 - step / 10))
    for loss in eval_losses:
        console.on_prediction_step(args, state, control)
        console.on_log(args, state, control, logs={"eval_loss": loss, "eval_rewards/accuracies": 0.5,
                                                   "eval_rewards/margins": -0.0001, "eval_runtime": 2.0})
    console.on_log(args, state, control, logs={"train_runtime": 6.0, "train_loss": 6.9, "total_flos": 1.0})
    console.on_train_end(args, state, control)
    return state


# ---------------------------------------------------------------------------------------------- lines

def test_metric_line_has_step_and_formatted_metrics():
    line = format_line("train", 4, 100, _train_logs(6.894012, margin=0.00383), "mem 1.0 MB")
    assert line == "train step   4/100  loss  6.8940  acc 1.000  margin +0.0038  lr 2.50e-05  mem 1.0 MB"


def test_metric_lines_align_even_with_missing_metrics():
    full = format_line("train", 10, 100, _train_logs(6.5), "mem 1.0 MB")
    no_rewards = format_line("train", 100, 100, {"loss": 12.25, "learning_rate": 1e-4}, "mem 1.0 MB")
    evl = format_line("eval", 100, 100, {"eval_loss": 6.4, "eval_rewards/accuracies": 0.75,
                                         "eval_rewards/margins": 1.5})
    for label in ("loss", "lr", "mem"):
        assert full.index(label) == no_rewards.index(label)
    for label in ("loss", "acc", "margin"):
        assert full.index(label) == evl.index(label)
    assert evl.startswith("eval  step 100/100") and "lr" not in evl


def test_no_bar_when_not_a_tty_lines_carry_eta_and_tokens():
    out, clock = io.StringIO(), FakeClock()
    _simulate(ConsoleCallback(stream=out, clock=clock), clock)
    text = out.getvalue()
    assert "\r" not in text and "%|" not in text  # no tqdm bar
    lines = text.splitlines()
    train = [l for l in lines if l.startswith("train")]
    assert [re.search(r"step (\d)/6", l).group(1) for l in train] == ["1", "2", "4", "6"]
    assert "loss  6.8000" in train[1] and "acc 1.000" in train[1] and "lr 2.50e-05" in train[1]
    assert "mem " in train[1]
    assert "eta 0:00:04" in train[1] and "40 tok/s" in train[1]  # 2 of 6 steps in 2 s; 40 tokens a second
    assert "eta" not in train[-1]  # finished
    evals = [l for l in lines if l.startswith("eval ")]
    assert len(evals) == 1 and "loss  6.9300" in evals[0]
    assert "train_runtime" not in text and "{" not in text  # no dicts, the final averages are not a line


def test_bar_on_a_tty_and_lines_above_it():
    out, clock = TTYStringIO(), FakeClock()
    console = ConsoleCallback(stream=out, clock=clock)
    _simulate(console, clock)
    text = out.getvalue()
    assert "6/6" in text and "%|" in text and "tok/s" in text  # the one bar: step/max_steps, tokens/s
    assert text.count("train step") == 4 and "eval  step 6/6" in text
    assert "eta" not in "".join(l for l in text.splitlines() if l.startswith("train step"))  # the bar has the ETA
    assert console.bar is None  # closed at train end


def test_only_rank_zero_prints():
    out, clock = TTYStringIO(), FakeClock()
    console = ConsoleCallback(stream=out, clock=clock)
    _simulate(console, clock, world_zero=False)
    assert out.getvalue() == "" and console.bar is None


def test_summary_counts_this_session_and_keeps_best_eval():
    out, clock = io.StringIO(), FakeClock()
    console = ConsoleCallback(stream=out, clock=clock)
    _simulate(console, clock, start=2, eval_losses=(6.95, 6.90, 6.97))
    run = console.summary()
    assert "resuming at step 2/6" in out.getvalue()
    assert (run.start_step, run.steps, run.max_steps) == (2, 6, 6)
    assert run.wall_s == pytest.approx(4.0) and run.tokens == 160 and run.tokens_per_s == pytest.approx(40.0)
    assert run.best_eval["eval_loss"] == 6.90
    assert run.final_train["loss"] == pytest.approx(6.4) and run.final_train_step == 6
    assert run.peak_bytes > 0 and run.peak_kind in ("GPU", "RSS")


def test_format_summary_names_the_paths(tmp_path):
    for name in ("checkpoint-3", "checkpoint-6", "adapter", "images"):
        (tmp_path / name).mkdir()
    (tmp_path / "logging.jsonl").write_text("{}\n")
    for png in ("overview.png", "loss.png"):
        (tmp_path / "images" / png).write_bytes(b"")
    run = TrainSummary(start_step=0, steps=6, max_steps=6, wall_s=75.0, tokens=12000, peak_bytes=3 * 2 ** 30,
                       peak_kind="GPU", final_train=_train_logs(6.4), final_train_step=6,
                       best_eval={"eval_loss": 6.9, "eval_rewards/accuracies": 0.5}, best_eval_step=3)
    text = format_summary(run, tmp_path, tmp_path / "adapter")
    rows = dict(re.split(r"\s{2,}", l.strip(), maxsplit=1) for l in text.splitlines()[1:])
    assert text.splitlines()[0] == "==> training summary"
    assert rows["steps"] == "6/6" and rows["wall time"] == "0:01:15"
    assert rows["tokens/s"].startswith("160 ") and rows["peak memory"] == "3.0 GB (GPU)"
    assert "loss  6.4000" in rows["final train"] and rows["final train"].endswith("(step 6)")
    assert "loss  6.9000" in rows["best eval"] and rows["best eval"].endswith("(step 3)")
    assert rows["adapter"] == str(tmp_path / "adapter")
    assert str(tmp_path / "checkpoint-3") in rows["checkpoints"] and "checkpoint-6" in rows["checkpoints"]
    assert rows["logs"] == str(tmp_path / "logging.jsonl")
    assert rows["plots"].startswith(str(tmp_path / "images" / "overview.png"))
    full = format_summary(TrainSummary(steps=6, max_steps=6), tmp_path, tmp_path / "final")
    assert "  model " in full and "best eval" not in full


def test_peak_memory_is_positive():
    n, kind = peak_memory()
    assert n > 10 * 2 ** 20 and kind in ("GPU", "RSS")


# ---------------------------------------------------------------------------------------------- noise

def test_quiet_library_noise_filters_only_those_messages(caplog):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_library_noise()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
                      "`is_activation_checkpointing` instead.", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]
    log = logging.getLogger("accelerate.accelerator")
    with caplog.at_level(logging.INFO):
        log.info("The used dataset had no length, returning gathered tensors. You should drop the remainder "
                 "yourself.")
        log.info("another accelerate line")
    assert [r.getMessage() for r in caplog.records] == ["another accelerate line"]


# ---------------------------------------------------------------------------------------------- a real Trainer

class _TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(4, 1)

    def forward(self, input_ids=None, labels=None):
        return {"loss": self.w(input_ids.float()).pow(2).mean()}


def test_real_trainer_prints_only_through_the_console(tmp_path, capsys):
    rows = [{"input_ids": torch.arange(4) + i, "labels": torch.zeros(1)} for i in range(16)]
    targs = TrainingArguments(output_dir=str(tmp_path), max_steps=4, logging_steps=2, per_device_train_batch_size=2,
                              disable_tqdm=True, include_num_input_tokens_seen="all", report_to="none", use_cpu=True,
                              save_strategy="no", logging_first_step=True)
    trainer = Trainer(model=_TinyLM(), args=targs, train_dataset=rows)
    console = ConsoleCallback()
    use_console(trainer, console)
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert PrinterCallback not in kinds and ProgressCallback not in kinds and ConsoleCallback in kinds
    trainer.train()
    out = capsys.readouterr().out
    assert "{'loss'" not in out and "%|" not in out  # capsys is no TTY: no bar, no dicts
    assert [l.split()[2] for l in out.splitlines() if l.startswith("train step")] == ["1/4", "2/4", "4/4"]
    run = console.summary()
    assert run.steps == 4 and run.tokens == 4 * 2 * 4  # 4 steps x 2 rows x 4 input_ids
    use_console(trainer, console)  # idempotent
    assert sum(cb is console for cb in trainer.callback_handler.callbacks) == 1


# ---------------------------------------------------------------------------------------------- end to end

def test_orpo_run_prints_lines_and_summary(tmp_path, capsys, tiny_llama3_dir):
    from prefswift.arguments import parse_command
    from prefswift.commands.train import run_training

    said = []
    argv = ["--model_type", "tiny-llama3", "--dataset", "demo#16", "--max_steps", "4", "--logging_steps", "2",
            "--output_dir", str(tmp_path / "run")]
    run_dir = run_training(parse_command("orpo", argv), "orpo", log=said.append)
    out = capsys.readouterr().out + "\n".join(map(str, said))
    assert "{'loss'" not in out and "%|" not in out
    assert [l.split()[2] for l in out.splitlines() if l.startswith("train step")] == ["1/4", "2/4", "4/4"]
    assert any(l.startswith("eval  step ") for l in out.splitlines())
    assert "==> training summary" in out and str(run_dir / "adapter") in out
    assert (run_dir / "images" / "overview.png").is_file()
