"""`prefswift --help`, `list`, `preview` (text and --json) through the real CLI."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from prefswift.cli import app

runner = CliRunner()


def invoke(*argv):
    result = runner.invoke(app, list(argv), catch_exceptions=False)
    return result.exit_code, result.output


def test_help_lists_only_working_commands():
    code, out = invoke("--help")
    assert code == 0
    for cmd in ("orpo", "dpo", "simpo", "cpo", "infer", "merge-lora", "export", "eval", "preview", "lint", "list"):
        assert cmd in out


def test_command_help_shows_every_spelling():
    code, out = invoke("orpo", "--help")
    assert code == 0 and "--lora_rank (--lora_r)" in out and "--use_4bit" in out and "--model_name_or_path" in out


@pytest.mark.parametrize("what,expected", [("models", ["yi-6b-chat", "llama3-8b-instruct", "qwen2.5-7b-instruct",
                                                       "qwen3-8b", "mistral-7b-instruct", "tiny-llama3"]),
                                           ("templates", ["chatml", "llama3", "qwen", "yi", "default"]),
                                           ("datasets", ["hh-rlhf-cn", "harmless_base_cn", "orpo-dpo-mix-40k",
                                                         "ultrafeedback", "demo"])])
def test_list(what, expected):
    code, out = invoke("list", what)
    assert code == 0
    for name in expected:
        assert name in out


def test_list_unknown_is_a_clear_error():
    code, out = invoke("list", "gpus")
    assert code == 2 and "error: unknown list" in out


def test_preview_marks_trained_tokens():
    code, out = invoke("preview", "--dataset", "demo", "--model_type", "tiny-llama3", "-n", "2")
    assert code == 0, out
    assert out.count("=== pair") == 2
    assert "<|begin_of_text|><|start_header_id|>user<|end_header_id|>" in out
    assert "\u27e6Sure!" in out or "\u27e6Great!" in out          # trained part starts at the response
    assert out.count("<|begin_of_text|>") == 4                      # one BOS per rendered sequence, never two
    assert "rows" in out and "p50" in out                           # the data summary


def test_preview_json_ids_and_labels(tiny_qwen_dir):
    code, out = invoke("preview", "--dataset", "demo", "--model_id_or_path", str(tiny_qwen_dir), "--template",
                       "qwen", "-n", "1", "--json")
    assert code == 0, out
    data = json.loads(out)
    pair = data["pairs"][0]
    n_prompt = len(pair["prompt_input_ids"])
    assert pair["chosen_labels"][:n_prompt] == [-100] * n_prompt
    assert pair["chosen_labels"][n_prompt:] == pair["chosen_input_ids"]
    assert pair["chosen_text"].endswith("<|im_end|>\n") and "<|im_start|>assistant\n" in pair["prompt_text"]


def test_preview_unknown_model_type_suggests():
    code, out = invoke("preview", "--dataset", "demo", "--model_type", "tiny-llama")
    assert code == 2 and "did you mean tiny-llama3" in out


@pytest.mark.parametrize("argv", [["dpo", "--help"], ["orpo", "--beta", "abc"], ["kto", "--bogus", "1"],
                                  ["infer", "--help"], ["eval", "--help"], ["merge-lora", "--help"], ["export", "--help"],
                                  ["preview", "--help"], ["lint", "--help"], ["list", "models"], ["--version"]])
def test_help_list_version_and_argument_errors_load_no_heavy_library(argv):
    """Fast start: these answer before torch, transformers or peft load (the benchmark script times them)."""
    code = ("import sys\nfrom prefswift.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('HEAVY ' + ' '.join(m for m in ('torch', 'transformers', 'peft', 'datasets') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().endswith("HEAVY"), proc.stderr[-2000:]
