"""`prefswift eval`: preference accuracy and margins, checked against a direct full-logits computation."""
import json

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError
from test_merge import adapter_model, make_adapter

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft vs transformers 5

ROWS = [
    {"prompt": "What is 2 plus 2?", "chosen": "It is 4.", "rejected": "It is five, I think, but maybe not."},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Red"},
    {"prompt": "Say hello.", "chosen": "Hello there, friend!", "rejected": "Go away."},
    {"prompt": "你好吗？", "chosen": "我很好，谢谢！", "rejected": "不好。"},
    {"prompt": "Count to three.", "chosen": "One, two, three.", "rejected": "One, two."},
    {"prompt": "What is the opposite of up?", "chosen": "Down.", "rejected": "Sideways, probably."},
]


def test_preference_metrics_by_hand():
    from prefswift.evaluate import format_table, preference_metrics

    pairs = [
        {"chosen_logp": -2.0, "rejected_logp": -6.0, "chosen_tokens": 2, "rejected_tokens": 2},  # avg -1 > -3
        {"chosen_logp": -6.0, "rejected_logp": -4.0, "chosen_tokens": 6, "rejected_tokens": 2},  # avg -1 > -2, sum <
        {"chosen_logp": -3.0, "rejected_logp": -3.0, "chosen_tokens": 1, "rejected_tokens": 1},  # tie: not correct
    ]
    m = preference_metrics(pairs)
    assert m["pairs"] == 3
    assert m["accuracy_avg"] == pytest.approx(2 / 3) and m["accuracy_sum"] == pytest.approx(1 / 3)
    assert m["margin_sum"] == pytest.approx((4 - 2 + 0) / 3)
    assert m["margin_avg"] == pytest.approx((2 + 1 + 0) / 3)
    assert m["chosen_avg_logp"] == pytest.approx((-1 - 1 - 3) / 3)
    table = format_table(m)
    assert "0.6667" in table and "0.3333" in table and "pairs: 3" in table
    assert preference_metrics([]) == {"pairs": 0}


def direct_logps(model, tokenizer, template, rows):
    """Sum of response-token log-probs from the full logits of one unpadded sequence at a time."""
    from prefswift.data.example import PreferenceExample

    out = []
    for r in rows:
        ids = template.encode_example(tokenizer, PreferenceExample(r["prompt"], r["chosen"], r["rejected"]))
        p = ids["prompt_input_ids"]
        rec = {}
        for key in ("chosen", "rejected"):
            resp = ids[f"{key}_input_ids"]
            seq = torch.tensor([p + resp])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=seq).logits[0].double(), -1)
            targets = seq[0, len(p):]
            rec[f"{key}_logp"] = logp[len(p) - 1:-1].gather(-1, targets[:, None]).sum().item()
            rec[f"{key}_tokens"] = len(resp)
        out.append(rec)
    return out


@pytest.mark.parametrize("model_type,template_name", [("tiny-llama3", "llama3"), ("tiny-qwen", "qwen")])
def test_eval_numbers_match_a_direct_computation(tmp_path, model_type, template_name):
    from prefswift.commands.eval import run_eval
    from prefswift.evaluate import preference_metrics
    from prefswift.models.loader import load_tokenizer
    from prefswift.models.tiny import ensure_tiny_model
    from prefswift.templates import get_template

    data = tmp_path / "held_out.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    ckpt = make_adapter(model_type, tmp_path / "run" / "checkpoint-7", scale=3.0)
    path = run_eval(parse_command("eval", ["--ckpt_dir", str(ckpt), "--dataset", str(data)]), log=lambda *a: None)
    assert path.parent == ckpt / "eval_result" and path.suffix == ".json"
    result = json.loads(path.read_text())

    model = adapter_model(ckpt, ensure_tiny_model(model_type))
    want_pairs = direct_logps(model, load_tokenizer(ckpt), get_template(template_name), ROWS)
    assert len(result["pairs"]) == len(ROWS)
    for got, want, row in zip(result["pairs"], want_pairs, ROWS):
        assert got["prompt"] == row["prompt"]
        assert got["chosen_tokens"] == want["chosen_tokens"] and got["rejected_tokens"] == want["rejected_tokens"]
        assert got["chosen_logp"] == pytest.approx(want["chosen_logp"], abs=1e-3)
        assert got["rejected_logp"] == pytest.approx(want["rejected_logp"], abs=1e-3)
    want = preference_metrics(want_pairs)
    for key, value in want.items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-4), key
    assert 0 < want["accuracy_sum"] < 1 or 0 < want["accuracy_avg"] < 1  # the data really discriminates


def test_eval_plain_model_and_output_path(tmp_path, capsys):
    from prefswift.commands.eval import run_eval

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    out = tmp_path / "results" / "base.json"
    args = parse_command("eval", ["--model_type", "tiny-qwen", "--dataset", str(data), "--val_dataset_sample", "4",
                                  "--infer_output", str(out)])
    assert run_eval(args) == out
    result = json.loads(out.read_text())
    assert result["metrics"]["pairs"] == 4 and result["ckpt_dir"] is None
    printed = capsys.readouterr().out
    assert "accuracy (chosen > rejected)" in printed and "avg log-prob" in printed and str(out) in printed
    with pytest.raises(ArgumentError, match="needs pairs"):
        run_eval(parse_command("eval", ["--model_type", "tiny-qwen"]))


def test_eval_cli_on_the_runs_own_eval_split(tmp_path):
    from typer.testing import CliRunner

    from prefswift.cli import app

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    ckpt = make_adapter("tiny-llama3", tmp_path / "run" / "checkpoint-1",
                        train_argv=["--dataset", str(data), "--eval_ratio", "0.5"])
    res = CliRunner().invoke(app, ["eval", "--ckpt_dir", str(ckpt), "--load_dataset_config", "true"])
    assert res.exit_code == 0, res.output
    (path,) = (ckpt / "eval_result").glob("*.json")
    assert json.loads(path.read_text())["metrics"]["pairs"] == 3


def test_a_sample_of_a_datasets_own_test_split(tmp_path):
    """`--dataset demo#8` evaluates 8 of demo's held-out pairs (it used to evaluate all 60: `#8` did not act)."""
    from prefswift.commands.eval import run_eval

    def prompts(*dataset):
        out = tmp_path / f"{len(dataset)}-{dataset[0].replace('#', '_')}.json"
        run_eval(parse_command("eval", ["--model_type", "tiny-qwen", *dataset, "--infer_output", str(out)]),
                 log=lambda *a, **k: None)
        return [p["prompt"] for p in json.loads(out.read_text())["pairs"]]

    whole = prompts("--dataset", "demo")
    some = prompts("--dataset", "demo#8")
    assert len(whole) == 60 and len(some) == 8 == len(set(some)) and set(some) <= set(whole)
    assert prompts("--dataset", "demo#8") == some  # the same 8 again (--dataset_seed)
    assert len(prompts("--dataset", "demo#500")) == 60  # more than there are: each held-out pair once
