"""KTO's data and command line: unpaired formats (TRL, LLaMA-Factory's sharegpt/alpaca with kto_tag), pairs split in
TRL's order, the KL completions, counted drops, refusals, `preview`, `--help` and the registry entry."""
import json

import pytest
from typer.testing import CliRunner

from prefswift.arguments import parse_command
from prefswift.arguments.fields import DataArguments
from prefswift.cli import app
from prefswift.train.validation import validate
from prefswift.data.datasets import get_dataset_spec
from prefswift.data.example import PreferenceExample
from prefswift.data.pipeline import build_preference_data
from prefswift.data.unpaired import (UNPAIR_BLOCK, UnpairedDataError, UnpairedExample, add_kl_completions,
                                     detect_unpaired_format, unpair)
from prefswift.errors import ArgumentError, DataError
from prefswift.templates import get_template
from prefswift.algorithms.kto import kto_losses, weight_advice

runner = CliRunner()


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def tok(tiny_llama3_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama3_dir)


def build(tok, path, unpaired=True, **data):
    logs = []
    prepared = build_preference_data(DataArguments(dataset=[path], eval_ratio=0.0, **data), get_template("llama3"),
                                     tok, log=logs.append, unpaired=unpaired)
    return prepared, "\n".join(map(str, logs))


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize("row,expected", [
    ({"prompt": "Hi", "completion": "Hello!", "label": True}, ("trl-unpaired", "Hi", "Hello!", True, None, [])),
    ({"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "A"},
                 {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}],
      "completion": [{"role": "assistant", "content": "D"}], "label": False},
     ("trl-unpaired", "C", "D", False, "Be kind.", [("A", "B")])),
    ({"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
                        {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}], "kto_tag": False},
     ("sharegpt-kto", "Q2", "A2", False, None, [("Q1", "A1")])),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "label": 1,
      "system": "S"}, ("sharegpt-kto", "Q", "A", True, "S", [])),
    ({"instruction": "Translate", "input": "chat", "output": "cat", "kto_tag": "true"},
     ("alpaca-kto", "Translate\nchat", "cat", True, None, [])),
])
def test_unpaired_formats(row, expected):
    name, convert = detect_unpaired_format(row)
    ex = convert(row)
    assert (name, ex.prompt, ex.completion, ex.label, ex.system, ex.history) == expected


def test_paired_rows_are_not_unpaired_formats():
    assert detect_unpaired_format({"prompt": "p", "chosen": "c", "rejected": "r"}) is None
    assert detect_unpaired_format({"instruction": "p", "output": "o"}) is None  # no label: not KTO data


def test_llama_factory_columns_map_kto_tag(tok, tmp_path):
    path = write(tmp_path / "lf.jsonl", [
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}], "tag": True},
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}], "tag": False}])
    prepared, _ = build(tok, path, columns='{"kto_tag": "tag"}')
    assert [r["label"] for r in prepared.train] == [True, False]


def test_llama_factory_dataset_info_alpaca_kto(tok, tmp_path):
    write(tmp_path / "kto.jsonl", [{"instruction": "Say", "input": "hi", "output": "hi!", "label": True},
                                   {"instruction": "Say", "input": "bye", "output": "no", "label": False}])
    (tmp_path / "dataset_info.json").write_text(json.dumps({"kto_demo": {"file_name": "kto.jsonl", "columns": {
        "prompt": "instruction", "query": "input", "response": "output", "kto_tag": "label"}}}))
    prepared, _ = build(tok, "kto_demo", dataset_dir=str(tmp_path))
    ex = prepared.train[0]["example"]
    assert (ex.prompt, ex.completion, ex.label) == ("Say\nhi", "hi!", True)
    assert prepared.train[1]["label"] is False


def test_bad_rows_are_counted_or_named(tok, tmp_path):
    rows = [{"prompt": "p1", "completion": "good", "label": True},
            {"prompt": "p2", "completion": "  ", "label": False},
            {"prompt": "p3", "completion": "x", "label": "maybe"},
            {"prompt": "p4", "completion": "y"}]
    path = write(tmp_path / "bad.jsonl", rows)
    prepared, _ = build(tok, path, check_dataset_strategy="discard")
    assert len(prepared.train) == 1
    assert prepared.summary.dropped == {"empty completion": 1, "bad label": 1, "missing label": 1}
    with pytest.raises(DataError, match=r"bad\.jsonl \(line 2\), row 1, field 'completion': is empty"):
        build(tok, path, check_dataset_strategy="error")
    with pytest.raises(DataError, match=r"row 0, field 'label': expected true or false, got 'maybe'"):
        build(tok, write(tmp_path / "bad2.jsonl", rows[2:3]), check_dataset_strategy="error")


def test_pair_commands_refuse_unpaired_rows_with_one_line(tok, tmp_path):
    path = write(tmp_path / "u.jsonl", [{"prompt": "p", "completion": "c", "label": True}])
    with pytest.raises(UnpairedDataError, match=r"u\.jsonl: unpaired rows.*prefswift kto"):
        build(tok, path, unpaired=False)


# ---------------------------------------------------------------- pairs -> rows, KL completions


def test_unpair_follows_trl_order_in_blocks_of_1000():
    pairs = [PreferenceExample(f"p{i}", f"c{i}", f"r{i}") for i in range(UNPAIR_BLOCK + 2)]
    rows = unpair(pairs + [UnpairedExample("u", "x", False)])
    first = rows[:2 * UNPAIR_BLOCK]
    assert [r.completion for r in first[:3]] == ["c0", "c1", "c2"] and first[UNPAIR_BLOCK].completion == "r0"
    assert all(r.label for r in first[:UNPAIR_BLOCK]) and not any(r.label for r in first[UNPAIR_BLOCK:])
    assert [(r.completion, r.label) for r in rows[2 * UNPAIR_BLOCK:]] == [
        ("c1000", True), ("c1001", True), ("r1000", False), ("r1001", False), ("x", False)]


def test_kl_completions_rotate_within_each_batch():
    rows = [{"completion_input_ids": [i]} for i in range(5)]
    add_kl_completions(rows, 2)
    assert [r["kl_completion_input_ids"] for r in rows] == [[1], [0], [3], [2], [4]]


def test_paired_file_trains_as_desirable_and_undesirable_rows(tok, tmp_path):
    path = write(tmp_path / "pairs.jsonl", [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"}
                                            for i in range(3)])
    prepared, logs = build(tok, path)
    assert [r["label"] for r in prepared.train] == [True] * 3 + [False] * 3
    assert tok.decode(prepared.train[3]["completion_input_ids"]).startswith("bad 0")
    assert prepared.summary.labels == {"desirable": 3, "undesirable": 3}
    assert "train 6 rows" in logs and "3 desirable, 3 undesirable" in logs and "undesirable" in logs


def test_kto_truncation_keeps_the_prompt_end_and_counts(tok, tmp_path):
    path = write(tmp_path / "long.jsonl", [{"prompt": "word " * 50, "completion": "answer " * 50, "label": True}])
    prepared, _ = build(tok, path, max_length=40, max_prompt_length=20)
    row = prepared.train[0]
    assert len(row["prompt_input_ids"]) == 20 and len(row["prompt_input_ids"] + row["completion_input_ids"]) == 40
    assert prepared.summary.truncated == 1
    with pytest.raises(DataError, match="no training rows left"):
        build(tok, path, max_length=40, max_prompt_length=20, truncation_strategy="delete")


# ---------------------------------------------------------------- loss, arguments, command line


def test_kto_losses_by_hand():
    import torch

    r, labels, kl = torch.tensor([0.4, -0.2]), torch.tensor([True, False]), torch.tensor(0.1)
    sig = lambda x: torch.sigmoid(torch.tensor(x))  # noqa: E731
    got = kto_losses(r, labels, kl, beta=2.0, loss_type="kto", desirable_weight=1.5, undesirable_weight=0.5)
    torch.testing.assert_close(got, torch.stack([1.5 * (1 - sig(2.0 * 0.3)), 0.5 * (1 - sig(2.0 * 0.3))]))
    got = kto_losses(r, labels, kl, beta=2.0, loss_type="apo_zero_unpaired")
    torch.testing.assert_close(got, torch.stack([1 - sig(0.8), sig(-0.4)]))


def test_weight_advice_matches_trl_ranges():
    """KTO paper eq. 8 as TRL words it: (w_D n_D) / (w_U n_U) in [1, 1.33]. 30 desirable vs 10 undesirable, both
    weights 1: w_D in [10/30, 1.33 * 10/30] = [0.33, 0.44] or w_U in [30/10/1.33, 30/10] = [2.26, 3.0]; inside either
    range (its ends included) no advice. 1 vs 3: w_D in [3.0, 3.99] or w_U in [0.25, 0.33]; 0 desirable counts as 1."""
    assert weight_advice(10, 10, 1.0, 1.0) is None
    assert weight_advice(30, 10, 1.0, 3.0) is None  # undesirable_weight in [30/10/1.33, 3]
    advice = weight_advice(30, 10, 1.0, 1.0)
    assert "--desirable_weight in [0.33, 0.44]" in advice and "--undesirable_weight in [2.26, 3.0]" in advice
    # (the two ranges state one condition, w_D n_D / (w_U n_U) in [1, 1.33], solved for either weight: they differ
    # only by rounding, e.g. 0.33 is inside the rounded desirable range while 1.0 is outside [0.74, 0.99])
    for w_d, w_u in ((0.33, 1.0), (0.44, 1.0), (0.4, 1.0), (1.0, 3.0), (1.0, 2.5)):
        assert weight_advice(30, 10, w_d, w_u) is None, (w_d, w_u)
    for w_d, w_u in ((0.32, 1.0), (0.45, 1.0)):
        assert weight_advice(30, 10, w_d, w_u) is not None, (w_d, w_u)
    advice = weight_advice(1, 3, 1.0, 1.0)
    assert "[3.0, 3.99]" in advice and "[0.25, 0.33]" in advice and "1 desirable vs 3 undesirable" in advice
    assert "[4.0, 5.32]" in weight_advice(0, 4, 1.0, 1.0)
    # the other weight scales each range: w_U = 2 -> w_D in [10 * 2/30, 1.33 * 0.667] = [0.67, 0.89]
    assert "--desirable_weight in [0.67, 0.89]" in weight_advice(30, 10, 1.0, 2.0)


def test_the_kto_command_gets_the_kto_objective():
    from prefswift.algorithms import PairObjective, build_objective
    from prefswift.algorithms.kto import KTO

    kto = build_objective("kto", parse_command("kto", ["--dataset", "x.jsonl"]).pref)
    assert isinstance(kto, KTO) and not isinstance(kto, PairObjective) and kto.loss_type == "kto"
    assert isinstance(build_objective("dpo", parse_command("dpo", []).pref), PairObjective)


def test_kto_arguments(tmp_path):
    args = parse_command("kto", ["--dataset", "x.jsonl", "--kto_chosen_weight", "1.3", "--undesirable_weight", "0.7",
                                 "--batch_size", "4"])
    objective = validate(args, "kto")
    assert (objective.loss_type, objective.beta, objective.desirable_weight, objective.undesirable_weight) == (
        "kto", 0.1, 1.3, 0.7)
    with pytest.raises(ArgumentError, match="--batch_size 2 or more"):
        validate(parse_command("kto", ["--dataset", "x.jsonl", "--batch_size", "1"]), "kto")
    validate(parse_command("kto", ["--dataset", "x.jsonl", "--loss_type", "apo_zero_unpaired"]), "kto")
    with pytest.raises(ArgumentError, match="sigmoid.*does not apply to `prefswift kto`"):
        parse_command("kto", ["--loss_type", "sigmoid"])
    with pytest.raises(ArgumentError, match="desirable_weight"):
        parse_command("dpo", ["--desirable_weight", "2"])
    with pytest.raises(ArgumentError, match="prefix_sharing.*orpo, dpo, simpo, cpo, rm only"):
        parse_command("kto", ["--prefix_sharing", "false"])
    config = tmp_path / "lf.yaml"
    config.write_text("stage: kto\npref_beta: 0.2\nkto_chosen_weight: 1.2\n")
    args = parse_command("kto", ["--config", str(config)])
    assert (args.pref.beta, args.pref.desirable_weight) == (0.2, 1.2)
    with pytest.raises(ArgumentError, match="stage: kto trains KTO; run `prefswift kto"):
        parse_command("dpo", ["--config", str(config)])


def test_help_lists_kto_and_its_values():
    out = runner.invoke(app, ["--help"]).output
    assert "kto" in out
    out = runner.invoke(app, ["kto", "--help"]).output
    assert "kto: kto|apo_zero_unpaired" in out and "--desirable_weight (--kto_chosen_weight)" in out
    assert "--undesirable_weight" in out and "--ref_model_type" in out and "--prefix_sharing" not in out


def test_preview_shows_unpaired_rows(tmp_path):
    path = write(tmp_path / "u.jsonl", [{"prompt": "Hi", "completion": "Hello!", "label": True},
                                        {"prompt": "Yo", "completion": "Go away.", "label": False}])
    result = runner.invoke(app, ["preview", "--dataset", path, "--model_type", "tiny-llama3", "--eval_ratio", "0"])
    assert result.exit_code == 0, result.output
    assert "=== row 0 (desirable)" in result.output and "=== row 1 (undesirable)" in result.output
    assert "\u27e6Hello!<|eot_id|>\u27e7" in result.output
    result = runner.invoke(app, ["preview", "--dataset", path, "--model_type", "tiny-llama3", "--eval_ratio", "0",
                                 "--json"])
    rows = json.loads(result.output)["rows"]
    assert [r["label"] for r in rows] == [True, False] and rows[0]["completion_text"] == "Hello!<|eot_id|>"


def test_kto_mix_is_registered():
    spec = get_dataset_spec("trl-lib/kto-mix-14k")
    assert (spec.name, spec.test_split) == ("kto-mix-14k", "test")
    ex = spec.converter({"prompt": [{"role": "user", "content": "q"}],
                         "completion": [{"role": "assistant", "content": "a"}], "label": False})
    assert (ex.prompt, ex.completion, ex.label) == ("q", "a", False)


def test_lora_kto_run_with_precomputed_reference_equals_the_live_one(tmp_path):
    """`prefswift kto` on pairs with LoRA (reference = the adapter-disabled base): precomputed reference columns
    (cached next to the run) give the live run's losses and KL."""
    import torch

    from prefswift.commands.train import run_training

    data = write(tmp_path / "pairs.jsonl", [{"prompt": f"What is {i} plus {i}?", "chosen": f"It is {2 * i}.",
                                             "rejected": f"No idea about {i}."} for i in range(6)])

    def run(out, extra):
        argv = ["--model_type", "tiny-llama3", "--dataset", data, "--output_dir", str(tmp_path / out),
                "--max_steps", "3", "--logging_steps", "1", "--batch_size", "4", "--eval_ratio", "0",
                "--learning_rate", "1e-2", "--lora_target_modules", "ALL", "--lora_dropout_p", "0",
                "--gradient_checkpointing", "false", "--save_strategy", "no"] + extra
        run_dir = run_training(parse_command("kto", argv), "kto", log=lambda *a, **k: None)
        return [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines()]

    live = [r for r in run("live", []) if "loss" in r]
    pre = [r for r in run("pre", ["--precompute_ref_log_probs", "true"]) if "loss" in r]
    cache = torch.load(next((tmp_path / "pre").glob("ref_logps_train_*.pt")))
    assert set(cache) == {"ref_logps", "ref_kl_logps"} and len(cache["ref_logps"]) == 12
    assert len(live) == len(pre) == 3 and any(r["kl"] > 0 for r in live)
    for a, b in zip(live, pre):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["kl"] - b["kl"]) < 1e-5


@pytest.mark.slow  # two processes equal one: test_distributed.py::test_two_process_ddp_equals_one_process[dpo]
def test_two_process_ddp_equals_one_process(tmp_path):
    """apo_zero_unpaired (no KL baseline, whose rotation depends on the per-device batch): 2 DDP processes with 2
    rows each == 1 process with the same 4 rows per step — losses, weights and the pooled metrics."""
    import test_distributed as ddp_test

    data = write(tmp_path / "rows.jsonl", [{"prompt": f"Question {i}: what is {i} times two?",
                                            "completion": f"Sure! It is {2 * i}." if i % 3 else f"Whatever. {i}.",
                                            "label": bool(i % 3)} for i in range(32)])
    extra = ("--loss_type", "apo_zero_unpaired")
    ddp_test.train("kto", data, tmp_path / "single", nproc=1, batch_size=4, extra=extra)
    proc = ddp_test.train("kto", data, tmp_path / "ddp", nproc=2, batch_size=2, extra=extra)
    assert "DDP across 2 processes" in proc.stdout + proc.stderr
    ddp_test.assert_same_run(tmp_path / "single", tmp_path / "ddp")
    logged = [[r for r in map(json.loads, (tmp_path / run / "logging.jsonl").read_text().splitlines()) if "loss" in r]
              for run in ("single", "ddp")]
    assert len(logged[0]) == len(logged[1]) == 6
    for a, b in zip(*logged):
        for name in ("rewards/chosen", "logps/chosen", "rewards/rejected", "logps/rejected", "rewards/margins"):
            assert abs(a[name] - b[name]) < 1e-4, (name, a, b)
