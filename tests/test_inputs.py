"""Every input gets a clear answer: contradictory flags, out-of-range values, options that do not apply, configs that
describe another command, missing report_to packages and DDP failures all end in one `error:` line with exit code 2."""
import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prefswift.arguments import COMMAND_SECTIONS, parse_command
from prefswift.arguments.fields import SECTIONS
from prefswift.arguments.parser import applies
from prefswift.arguments.values import base_type
from prefswift.cli import app
from prefswift.errors import ArgumentError

ROOT = Path(__file__).parent.parent


def cli(*argv):
    result = CliRunner().invoke(app, list(argv))
    return result.exit_code, result.output


# ---------------------------------------------------------------- contradictions and aliases

@pytest.mark.parametrize("argv,field,value", [
    (["--use_4bit", "True", "--use_8bit", "False"], "quantization_bit", 4),
    (["--use_8bit", "false", "--use_4bit", "true"], "quantization_bit", 4),
    (["--bf16", "true", "--fp16", "false"], "dtype", "bf16"),
    (["--use_4bit", "false"], "quantization_bit", 0),
])
def test_a_false_alias_never_undoes_a_true_one(argv, field, value):
    args = parse_command("orpo", argv)
    assert getattr(args.model, field) == value


@pytest.mark.parametrize("argv,flags", [
    (["--use_4bit", "true", "--use_8bit", "true"], ("--use_4bit", "--use_8bit")),
    (["--bf16", "true", "--fp16", "true"], ("--bf16", "--fp16")),
    (["--lora_rank", "8", "--lora_r", "16"], ("--lora_rank", "--lora_r")),
    (["--dtype", "fp32", "--bf16", "true"], ("--dtype", "--bf16")),
])
def test_aliases_that_disagree_are_an_error_naming_both(argv, flags):
    with pytest.raises(ArgumentError) as err:
        parse_command("dpo", argv)
    assert all(f in str(err.value) for f in flags) and "\n" not in str(err.value)


def test_repeating_one_flag_keeps_the_last_value():
    assert parse_command("dpo", ["--lora_rank", "8", "--lora_rank", "16"]).tuning.lora_rank == 16


# ---------------------------------------------------------------- options that do not apply

@pytest.mark.parametrize("command,flag,value", [
    ("orpo", "--rpo_alpha", "1"), ("orpo", "--simpo_gamma", "3"), ("orpo", "--label_smoothing", "0.3"),
    ("orpo", "--ref_model_type", "tiny-llama3"), ("simpo", "--precompute_ref_log_probs", "true"),
    ("dpo", "--orpo_nll_scope", "all"), ("dpo", "--cpo_alpha", "1"), ("merge-lora", "--temperature", "0.5"),
    ("eval", "--stream", "false"), ("eval", "--beta", "0.2"), ("infer", "--lora_rank", "8"),
])
def test_options_that_do_not_act_are_refused(command, flag, value):
    with pytest.raises(ArgumentError) as err:
        parse_command(command, [flag, value])
    assert f"unknown option {flag} for `prefswift {command}`" in str(err.value)


def test_help_lists_only_the_options_that_act():
    code, orpo = cli("orpo", "--help")
    assert code == 0 and "--orpo_nll_scope" in orpo and "--rpo_alpha" not in orpo and "--simpo_gamma" not in orpo
    _, dpo = cli("dpo", "--help")
    assert "--rpo_alpha" in dpo and "--orpo_nll_scope" not in dpo and "discopop" in dpo
    _, merge = cli("merge-lora", "--help")
    assert "--temperature" not in merge and "--push_to_hub" in merge


def test_eval_output_dir_is_where_results_go():
    args = parse_command("eval", ["--output_dir", "results/"])
    assert args.infer.infer_output == "results/"
    assert parse_command("merge-lora", ["--output_dir", "merged"]).infer.merge_output_dir == "merged"


# ---------------------------------------------------------------- configs

def test_llama_factory_stage_and_pref_loss_must_match_the_command(tmp_path):
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text("stage: dpo\npref_loss: sigmoid\npref_ftx: 0.1\ndataset: demo\n")
    with pytest.raises(ArgumentError, match=r"trains DPO; run `prefswift dpo --config"):
        parse_command("orpo", ["--config", str(cfg)])
    orpo = tmp_path / "orpo.yaml"
    orpo.write_text("stage: dpo\npref_loss: orpo\npref_beta: 0.2\ndataset: demo\n")
    assert parse_command("orpo", ["--config", str(orpo)]).pref.beta == 0.2
    with pytest.raises(ArgumentError, match=r"trains ORPO; run `prefswift orpo"):
        parse_command("dpo", ["--config", str(orpo)])
    sft = tmp_path / "sft.yaml"
    sft.write_text("stage: sft\ndataset: demo\n")
    with pytest.raises(ArgumentError, match="stage: sft is not preference training"):
        parse_command("dpo", ["--config", str(sft)])


def test_a_training_config_reused_for_eval_keeps_what_acts_and_warns_once(tmp_path, caplog):
    cfg = tmp_path / "eval_config.yaml"
    cfg.write_text("model_name_or_path: x\nfinetuning_type: lora\nper_device_eval_batch_size: 4\ndataset: demo\n"
                   "lora_rank: 8\n")
    with caplog.at_level("WARNING", logger="prefswift"):
        args = parse_command("eval", ["--config", str(cfg)])
    assert args.model.model_id_or_path == "x" and args.data.dataset == ["demo"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "finetuning_type" in warnings[0] and "lora_rank" in warnings[0]


# ---------------------------------------------------------------- every field, every command

def bad_values(f):
    """Values the field must refuse: a wrong type, and each bound or choice it has."""
    tp = base_type(f.type)
    meta = f.metadata
    out = []
    if tp is bool:
        out.append("maybe")
    elif tp in (int, float):
        out.append("abc")
        for key, delta in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            if meta.get(key) is not None:
                out.append(str(meta[key] + delta))
    elif typing.get_origin(tp) is dict:
        out.append("{not json")
    if meta.get("choices") is not None and tp is str:
        out.append("bogus_choice")
    return out


CASES = [(command, f.name, value)
         for command, sections in COMMAND_SECTIONS.items()
         for section in sections for f in dataclasses.fields(SECTIONS[section]) if applies(f, command)
         for value in bad_values(f)]


@pytest.mark.parametrize("command,name,value", CASES)
def test_every_bad_value_is_one_error_line_with_exit_code_2(command, name, value):
    code, out = cli(command, f"--{name}", value)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2, out
    assert len(lines) == 1 and lines[0].startswith(f"error: --{name}"), out
    assert "Traceback" not in out


def test_the_table_covers_every_command_and_many_fields():
    assert {c for c, _, _ in CASES} == set(COMMAND_SECTIONS)
    assert len(CASES) > 150


# ---------------------------------------------------------------- before anything loads

def test_report_to_without_its_package_is_refused_before_anything_is_written(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "run"
    code, text = cli("dpo", "--model_type", "tiny-llama3", "--dataset", "demo", "--report_to", "swanlab",
                     "--output_dir", str(out))
    assert code == 2 and "pip install swanlab" in text and not out.exists()


@pytest.mark.slow  # a failing rank under DDP: test_distributed::test_failing_rank_makes_every_rank_exit_nonzero
def test_a_ddp_data_error_is_one_line_and_exit_code_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\nnot json\n')
    env = dict(os.environ, OMP_NUM_THREADS="1", NPROC_PER_NODE="2")
    proc = subprocess.run([sys.executable, "-m", "prefswift", "orpo", "--model_type", "tiny-llama3", "--dataset",
                           str(bad), "--output_dir", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr
    assert len(errors) == 1 and "bad.jsonl (line 2)" in errors[0]
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr


# ---------------------------------------------------------------- small gaps

def test_version_and_merge_lora_without_arguments():
    from prefswift import __version__
    from prefswift.cli import main

    proc = subprocess.run([sys.executable, "-m", "prefswift", "--version"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == f"prefswift {__version__}"
    code, out = cli("merge-lora")
    assert code == 2 and "merge-lora needs --ckpt_dir" in out
    assert callable(main)


def test_list_loads_a_plugin(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text("from prefswift.registry.models import ModelSpec, register_model\n"
                      "register_model(ModelSpec('listed-by-plugin', None, None, 'chatml'), overwrite=True)\n")
    code, out = cli("list", "models", "--custom-register-path", str(plugin))
    assert code == 0 and "listed-by-plugin" in out


def test_a_reference_with_another_tokenizer_is_refused(tiny_llama3_dir, tiny_qwen_dir):
    from prefswift.train.setup_model import check_same_tokenizer

    check_same_tokenizer(tiny_llama3_dir, tiny_llama3_dir)
    with pytest.raises(ArgumentError, match="has another tokenizer than the policy"):
        check_same_tokenizer(tiny_llama3_dir, tiny_qwen_dir)


def test_a_template_whose_control_tokens_the_tokenizer_lacks_is_named(tiny_llama3_dir, tiny_qwen_dir):
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    assert get_template("llama3").missing_special_tokens(load_tokenizer(tiny_llama3_dir)) == []
    missing = get_template("chatml").missing_special_tokens(load_tokenizer(tiny_llama3_dir))
    assert "<|im_start|>" in missing and "<|im_end|>" in missing
    code, out = cli("preview", "--model_id_or_path", str(tiny_llama3_dir), "--template", "chatml", "--dataset",
                    "demo", "-n", "1")
    assert code == 0 and "warning: the tokenizer has no single tokens for <|im_start|>" in out


def test_config_conveniences_peers_users_type(tmp_path):
    """TRL-style fractional --eval_steps/--save_steps, PEFT's all-linear, the strategies on the command line, the
    LLaMA-Factory guide's dataset short names, and --dry_run seeing dataset_info.json entries."""
    import json as _json

    from prefswift.train.training_args import training_arguments

    args = parse_command("dpo", ["--eval_steps", "0.2", "--save_steps", "0.5", "--save_strategy", "steps",
                                 "--lora_target_modules", "all-linear", "--dataset", "orca_dpo"])
    targs = training_arguments(args, tmp_path, has_eval=True)
    assert (targs.eval_steps, targs.save_steps) == (0.2, 0.5)
    assert args.tuning.lora_target_modules == ["all-linear"]
    with pytest.raises(ArgumentError, match="whole number of steps"):
        training_arguments(parse_command("dpo", ["--save_steps", "2.5"]), tmp_path, has_eval=False)
    with pytest.raises(ArgumentError, match="no eval data"):
        training_arguments(parse_command("dpo", ["--eval_strategy", "epoch"]), tmp_path, has_eval=False)
    from prefswift.data.datasets import get_dataset_spec

    assert get_dataset_spec("orca_dpo").name == "orca-dpo-pairs" and get_dataset_spec("dpo_en_zh").subsets
    data = tmp_path / "data"
    data.mkdir()
    (data / "mine.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    (data / "dataset_info.json").write_text(_json.dumps({"my_set": {"file_name": "mine.jsonl"}}))
    code, out = cli("dpo", "--model_type", "tiny-llama3", "--dataset", "my_set", "--dataset_dir", str(data),
                    "--dry_run", "true")
    assert code == 0 and "dry run: nothing was loaded" in out


def test_all_linear_targets_every_linear_but_the_head(tiny_llama3_dir):
    from prefswift.models.loader import load_model
    from prefswift.models.lora import all_linear_names, resolve_target_modules

    model = load_model(tiny_llama3_dir, parse_command("dpo", []).model)
    assert resolve_target_modules(model, ["all-linear"], []) == sorted(all_linear_names(model))
