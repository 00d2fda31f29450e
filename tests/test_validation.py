"""One validation phase (prefswift.train.validation): every refusal that involves several options comes out of
`--dry_run` exactly as out of the real run — the same one `error:` line, exit code 2, before anything loads."""
import pytest
from typer.testing import CliRunner

from prefswift.cli import app

runner = CliRunner()
BASE = ["--model_type", "tiny-llama3", "--dataset", "demo"]


def _error_line(argv, tmp_path):
    result = runner.invoke(app, argv, catch_exceptions=False)
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert not any(tmp_path.iterdir()), "a refused command wrote into --output_dir"
    return lines[0]


# (algorithm, options, what the one line says); every row is a refusal of the run (validation.py, the algorithm's
# own `check`, or a check those call)
REFUSALS = [
    ("kto", ["--batch_size", "1"], "--batch_size 2 or more"),
    ("dpo", ["--max_tokens_per_batch", "100", "--batch_size", "2"], "replaces --per_device_train_batch_size"),
    ("dpo", ["--loss_type", "exo_pair"], "exo_pair needs --label_smoothing"),
    ("dpo", ["--loss_weights", "1", "2"], "--loss_weights has 2 value(s) for 1 loss type(s)"),
    ("dpo", ["--rpo_alpha", "0.5", "--loss_type", "sigmoid,sft"], "--rpo_alpha adds the sft loss"),
    ("dpo", ["--discopop_tau", "0.1"], "--discopop_tau acts only with --loss_type discopop"),
    ("dpo", ["--f_divergence_type", "js", "--loss_type", "bco_pair"], "works with the loss types"),
    ("dpo", ["--use_weighting", "true", "--loss_type", "aot"], "cannot weight aot"),
    ("dpo", ["--label_smoothing", "0.1"], "--label_smoothing 0.1 has no effect on `prefswift dpo`"),
    ("dpo", ["--sync_ref_model", "true"], "--sync_ref_model needs --sft_type full"),
    ("dpo", ["--ref_adapter_name_or_path", "x", "--sft_type", "full"], "--ref_adapter_name_or_path needs --sft_type"),
    ("cpo", ["--label_smoothing", "0.1", "--loss_type", "hinge"], "has no effect on `prefswift cpo`"),
    ("orpo", ["--use_4bit", "true", "--sft_type", "full"], "need --sft_type lora (QLoRA)"),
    ("orpo", ["--use_4bit", "true", "--adapter_name_or_path", "x"], "with 4/8-bit loading is not supported"),
    ("orpo", ["--dtype", "fp16", "--sft_type", "full"], "--dtype fp16 with --sft_type full needs a CUDA GPU"),
    ("orpo", ["--optim", "paged_adamw_8bit"], "--optim paged_adamw_8bit needs a CUDA GPU"),
    ("orpo", ["--save_steps", "2.5"], "give a whole number of steps"),
    ("dpo", ["--deepspeed", "zero3", "--use_4bit", "true"], "zero3 with 4/8-bit loading"),
    ("dpo", ["--deepspeed", "zero2", "--skip_nonfinite_steps", "1"], "does not apply with --deepspeed"),
    ("dpo", ["--deepspeed", "zero3", "--ref_model_type", "tiny-qwen"], "ZeRO-3"),
    ("orpo", ["--push_to_hub", "true"], "--push_to_hub true needs --hub_model_id"),
    ("orpo", ["--report_to", "wandb"], "--report_to wandb: not installed"),
    ("orpo", ["--max_prompt_length", "4096"], "must be positive and smaller than --max_length"),
    ("orpo", ["--columns", "{bad"], "--columns: expected a JSON object"),
]


@pytest.mark.parametrize("algo,options,needle", REFUSALS, ids=[f"{a}-{o[0][2:]}" for a, o, _ in REFUSALS])
def test_dry_run_refuses_exactly_what_the_run_refuses(algo, options, needle, tmp_path):
    if "wandb" in options and _installed("wandb"):
        pytest.skip("wandb is installed here: --report_to wandb is accepted")
    out = tmp_path / "run"
    out.mkdir()
    argv = [algo, *BASE, "--output_dir", str(out), *options]
    run = _error_line(argv, out)
    dry = _error_line(argv + ["--dry_run", "true"], out)
    assert run == dry
    assert needle in run, run


def test_refusals_that_involve_paths(tmp_path):
    """The output dir and the adapter copy are checked in the same phase, before anything is written."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = tmp_path / "run"
    out.mkdir()
    cases = [([*BASE, "--output_dir", str(blocker / "run")], "lies below the file"),
             ([*BASE, "--output_dir", str(out), "--lora_adapter_dir", str(out / "adapter")], "overlaps --output_dir")]
    for options, needle in cases:
        run = _error_line(["orpo", *options], out)
        assert run == _error_line(["orpo", *options, "--dry_run", "true"], out) and needle in run, run


def test_no_training_data_is_one_line_for_both():
    run = runner.invoke(app, ["orpo", "--model_type", "tiny-llama3"], catch_exceptions=False)
    dry = runner.invoke(app, ["orpo", "--model_type", "tiny-llama3", "--dry_run", "true"], catch_exceptions=False)
    assert run.exit_code == dry.exit_code == 2
    assert run.output.strip() == dry.output.strip() == (
        "error: no training data: pass --dataset NAME or --dataset FILE.jsonl (try --dataset demo)")


def test_a_valid_command_passes_the_dry_run(tmp_path):
    result = runner.invoke(app, ["dpo", *BASE, "--output_dir", str(tmp_path / "run"), "--dry_run", "true"],
                           catch_exceptions=False)
    assert result.exit_code == 0 and "dry run: nothing was loaded or trained" in result.output, result.output
    assert not (tmp_path / "run").exists()


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _same_refusal(argv):
    """The run's one error line (exit 2) and the dry run's, which must be the same."""
    lines = []
    for extra in ([], ["--dry_run", "true"]):
        result = runner.invoke(app, argv + extra, catch_exceptions=False)
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert result.exit_code == 2 and len(errors) == 1, (extra, result.output)
        lines.append(errors[0])
    assert lines[0] == lines[1]
    return lines[0]


def test_the_run_dir_and_resume_refusals_are_the_dry_runs_too(tmp_path):
    """Issue 27: --dry_run exited 0 where the run exits 2. The oracle is the real run's refusal (and the README's
    wording of each rule); the output dir's files are left as they were."""
    import json

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "args.json").write_text('{"experiment": "mine"}')
    assert "holds an args.json that prefswift did not write" in _same_refusal(
        ["orpo", *BASE, "--output_dir", str(foreign)])
    assert (foreign / "args.json").read_text() == '{"experiment": "mine"}'

    finished = tmp_path / "finished"  # what a finished run leaves: its args.json, complete.json, log
    finished.mkdir()
    (finished / "args.json").write_text(json.dumps({"command": "orpo", "model_type": "tiny-llama3"}))
    (finished / "complete.json").write_text(json.dumps({"global_step": 3, "max_steps": 3}))
    (finished / "logging.jsonl").write_text("")
    assert "already holds a run (complete.json, logging.jsonl)" in _same_refusal(
        ["orpo", *BASE, "--output_dir", str(finished)])
    assert sorted(p.name for p in finished.iterdir()) == ["args.json", "complete.json", "logging.jsonl"]


def test_resuming_a_sync_ref_model_run_is_refused_by_the_dry_run_too(tmp_path):
    out = tmp_path / "trdpo"
    argv = ["dpo", *BASE, "--output_dir", str(out), "--sft_type", "full", "--sync_ref_model", "true",
            "--ref_model_sync_steps", "1", "--max_steps", "1", "--save_steps", "1", "--batch_size", "1",
            "--eval_ratio", "0", "--train_dataset_sample", "4", "--gradient_checkpointing", "false"]
    trained = runner.invoke(app, argv, catch_exceptions=False)
    assert trained.exit_code == 0 and (out / "checkpoint-1").is_dir(), trained.output
    line = _same_refusal(argv + ["--resume_from_checkpoint", "latest", "--max_steps", "2"])
    assert line.startswith("error: --sync_ref_model runs cannot be resumed"), line
