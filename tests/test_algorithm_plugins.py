"""Algorithms as plugins (examples/plugins/my_losses.py): a DPO-family loss registered with `register_loss` trains
exactly as the built-in it re-implements, and its run is resumed, evaluated and merged from args.json alone (fresh
processes that are not told about the plugin); a whole algorithm registered with `register_algorithm` trains as the
built-in it equals in a limit (SLiC-HF with margin 1 and no NLL = CPO's hinge loss at beta 1 without NLL)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.registry.plugins import load_plugins

ROOT = Path(__file__).parent.parent
PLUGIN = ROOT / "examples" / "plugins" / "my_losses.py"


@pytest.fixture(scope="module", autouse=True)
def plugin_registered():
    """In-process runs: what `--custom_register_path` does on the command line. The registries are put back
    afterwards, so the other test modules see the built-in algorithms only."""
    from prefswift.algorithms import registry
    from prefswift.arguments import algorithms
    from prefswift.registry import plugins

    saved = (dict(algorithms._SPECS), {k: list(v) for k, v in algorithms._FAMILY_LOSSES.items()},
             {k: dict(v) for k, v in registry._LOSSES.items()}, set(plugins._loaded))
    load_plugins(str(PLUGIN))
    yield
    for target, value in zip((algorithms._SPECS, algorithms._FAMILY_LOSSES, registry._LOSSES, plugins._loaded),
                             saved):
        target.clear()
        target.update(value)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "pairs.jsonl"
    rows = [{"prompt": f"What is {i} plus {i + 1}?", "chosen": f"Sure! The answer is {2 * i + 1}.",
             "rejected": f"No. I will not say {i}."} for i in range(24)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def common(data, out, steps):
    return ["--model_type", "tiny-llama3", "--dataset", str(data), "--output_dir", str(out), "--max_steps", str(steps),
            "--save_steps", "3", "--logging_steps", "1", "--batch_size", "2", "--eval_ratio", "0",
            "--learning_rate", "1e-2", "--lr_scheduler_type", "constant", "--lora_target_modules", "ALL",
            "--gradient_checkpointing", "false", "--lora_dropout_p", "0"]


def train(algo, argv):
    return run_training(parse_command(algo, argv), algo, log=lambda *a, **k: None)


def logged(run, key="loss"):
    rows = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if key in r and "step" in r}


def cli(*argv):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NPROC_PER_NODE", None)
    proc = subprocess.run([sys.executable, "-m", "prefswift", *argv], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    builtin = train("dpo", common(data, root / "sigmoid", 5) + ["--loss_type", "sigmoid"])
    plugin = train("dpo", common(data, root / "plugin", 3) + ["--loss_type", "my_sigmoid",
                                                               "--custom_register_path", str(PLUGIN)])
    return builtin, plugin


def test_a_registered_loss_trains_as_the_builtin_it_reimplements(runs):
    builtin, plugin = runs
    ours, theirs = logged(plugin), logged(builtin)
    assert sorted(ours) == [1, 2, 3]
    for step in ours:
        assert abs(ours[step] - theirs[step]) <= 1e-6, (step, ours[step], theirs[step])
        for key in ("rewards/margins", "rewards/chosen", "logps/rejected"):
            assert abs(logged(plugin, key)[step] - logged(builtin, key)[step]) <= 1e-6, key
    saved = json.loads((plugin / "args.json").read_text())
    assert saved["loss_type"] == "my_sigmoid" and saved["custom_register_path"] == str(PLUGIN.resolve())


# slow, covered by a plugin run resumed from args.json:
#   test_resuming_with_the_plugins_loss_type_needs_no_custom_register_path
@pytest.mark.slow
def test_the_plugin_run_resumes_evaluates_and_merges_from_args_json_alone(runs, data, tmp_path):
    builtin, plugin = runs
    # resume with neither --custom_register_path nor --loss_type: both come from the checkpoint's args.json
    out = cli("dpo", *common(data, plugin, 5), "--resume_from_checkpoint", "latest")
    assert "resuming from" in out
    ours, theirs = logged(plugin), logged(builtin)
    assert sorted(ours) == [1, 2, 3, 4, 5]
    for step in (4, 5):  # constant learning rate: the resumed steps are the uninterrupted run's
        assert abs(ours[step] - theirs[step]) <= 1e-5, (step, ours[step], theirs[step])
    result = tmp_path / "eval.json"
    cli("eval", "--ckpt_dir", str(plugin), "--val_dataset", str(data), "--infer_output", str(result))
    record = json.loads(result.read_text())
    assert "loss_type my_sigmoid" in record["objective"] and record["metrics"]["pairs"] == 24
    merged = tmp_path / "merged"
    cli("merge-lora", "--ckpt_dir", str(plugin / "adapter"), "--merge_output_dir", str(merged))
    assert (merged / "config.json").is_file() and list(merged.glob("*.safetensors"))


def test_resuming_with_the_plugins_loss_type_needs_no_custom_register_path(runs, tmp_path):
    """Issue 27: `--loss_type my_sigmoid --resume_from_checkpoint latest` without --custom_register_path was refused
    as a loss that "does not apply to prefswift dpo"; the run's args.json names the plugin, so it is loaded. (The run
    is complete, so the resume ends at once: the command line was understood.)"""
    _, plugin = runs
    out = cli("dpo", "--output_dir", str(plugin), "--loss_type", "my_sigmoid", "--resume_from_checkpoint", "latest")
    assert "is complete" in out and "nothing to resume" in out, out
    moved = tmp_path / "moved"  # a run whose plugin file is gone: one line that says to pass its path
    moved.mkdir()
    saved = json.loads((plugin / "args.json").read_text())
    (moved / "args.json").write_text(json.dumps(dict(saved, custom_register_path=str(tmp_path / "gone.py"))))
    proc = subprocess.run([sys.executable, "-m", "prefswift", "dpo", "--output_dir", str(moved), "--loss_type",
                           "my_sigmoid", "--resume_from_checkpoint", "latest"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.strip() == (
        f"error: --resume_from_checkpoint latest: the run was trained with the plugin {tmp_path / 'gone.py'} "
        f"({moved / 'args.json'} names it), which is not there any more — pass --custom_register_path with the "
        "plugin's path now")


def test_a_registered_algorithm_is_a_command_and_trains(data, tmp_path):
    # chosen and rejected swapped: the tiny model starts far on the wrong side of the margin, so the hinge acts
    swapped = tmp_path / "swapped.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    swapped.write_text("".join(json.dumps(dict(r, chosen=r["rejected"], rejected=r["chosen"])) + "\n" for r in rows))
    slic = train("slic", common(swapped, tmp_path / "slic", 3) + ["--beta", "1", "--custom_register_path",
                                                                  str(PLUGIN)])
    hinge = train("cpo", common(swapped, tmp_path / "cpo", 3) + ["--loss_type", "hinge", "--beta", "1",
                                                                 "--cpo_alpha", "0"])
    ours, theirs = logged(slic), logged(hinge)
    assert sorted(ours) == [1, 2, 3] and any(v > 0 for v in ours.values())
    for step in ours:
        assert abs(ours[step] - theirs[step]) <= 1e-6, (step, ours[step], theirs[step])
    assert json.loads((slic / "args.json").read_text())["command"] == "slic"


def test_plugin_options_are_checked_like_builtin_ones():
    from prefswift.errors import ArgumentError

    with pytest.raises(ArgumentError, match="--label_smoothing 0.1 has no effect"):
        from prefswift.train.validation import validate

        validate(parse_command("dpo", ["--dataset", "demo", "--loss_type", "my_sigmoid",
                                       "--label_smoothing", "0.1"]), "dpo")
    with pytest.raises(ArgumentError, match="unknown option --rpo_alpha for `prefswift slic`"):
        parse_command("slic", ["--rpo_alpha", "1"])
    with pytest.raises(ArgumentError, match="my_sigmoid' does not apply to `prefswift cpo`"):
        parse_command("cpo", ["--loss_type", "my_sigmoid"])
    assert parse_command("dpo", ["--loss_type", "sigmoid,my_sigmoid", "--loss_weights", "1", "0.5"]).pref.loss_type


def test_register_loss_refuses_names_it_cannot_take():
    from prefswift.algorithms import register_loss

    with pytest.raises(ValueError, match="built into the dpo family"):
        register_loss("sigmoid")(lambda c, r, *, beta, **o: c)
    with pytest.raises(ValueError, match="no algorithm has the loss family 'ppo'"):
        register_loss("mine", family="ppo")(lambda c, r, *, beta, **o: c)


def test_a_plugin_the_registry_refuses_is_one_error_line(tmp_path):
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("from prefswift.algorithms import register_loss\n\n"
                   "@register_loss('sigmoid')\ndef mine(c, r, *, beta, **options):\n    return c\n")
    proc = subprocess.run([sys.executable, "-m", "prefswift", "dpo", "--custom_register_path", str(bad), "--dataset",
                           "demo"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: --custom_register_path {bad}, line 3: loss type 'sigmoid' is built into "
                                   "the dpo family; give the new loss another name")


@pytest.mark.parametrize("source, line, message", [
    ("import os\n\ndef broken(:\n    pass\n", 3, "SyntaxError: invalid syntax"),
    ("import json\n\n\ndef helper():\n    return undefined_name\n\n\nhelper()\n", 5,
     "NameError: name 'undefined_name' is not defined"),
    ("x = 1\nimport no_such_module_for_prefswift\n", 2,
     "ModuleNotFoundError: No module named 'no_such_module_for_prefswift'"),
    ("raise RuntimeError('plugin\\nbroke')\n", 1, "RuntimeError: plugin broke"),
])
def test_any_failure_loading_a_plugin_is_one_line_naming_the_file_and_line(tmp_path, source, line, message):
    """The oracle is the hand-written file: the line the failure is on, counted by hand, and Python's own message."""
    from prefswift.errors import ArgumentError

    bad = tmp_path / "broken_plugin.py"
    bad.write_text(source)
    with pytest.raises(ArgumentError) as caught:
        load_plugins(str(bad))
    assert str(caught.value) == f"--custom_register_path {bad}, line {line}: {message}"
    assert "prefswift_plugin_broken_plugin" not in sys.modules  # a half-run module is not left behind
