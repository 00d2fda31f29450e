"""Packing at the run level: packed rows train exactly like one pair per row, token-budget batches cover the data,
and the combinations that would do nothing are refused at parse time."""
import json

import pytest

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.errors import ArgumentError


def _varied_pairs(path, n=16):
    """Prompts and answers of very different lengths, so that short pairs fit next to long ones."""
    rows = []
    for i in range(n):
        words = " ".join(f"w{j}" for j in range(1 + (i * 7) % 23))
        rows.append({"prompt": f"Q{i}: {words}?" if i % 3 else f"Q{i}?",
                     "chosen": f"A good answer {i}" + " yes" * ((i * 5) % 11),
                     "rejected": "no" + " bad" * ((i * 3) % 13)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, algo, extra, out, callbacks=()):
    data = tmp_path / "pairs.jsonl"
    if not data.exists():
        _varied_pairs(data)
    argv = ["--model_type", "tiny-llama3", "--dataset", str(data), "--output_dir", str(tmp_path / out),
            "--logging_steps", "1", "--eval_ratio", "0", "--learning_rate", "1e-2", "--save_strategy", "no",
            "--lora_target_modules", "ALL", "--gradient_checkpointing", "false", "--lora_dropout_p", "0"] + extra
    run_dir = run_training(parse_command(algo, argv), algo, log=lambda *a, **k: None, callbacks=callbacks)
    return [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algo", ["dpo", "orpo"])
def test_packed_rows_train_like_one_pair_per_row(tmp_path, algo):
    steps = ["--max_steps", "3", "--batch_size", "8"]
    packed = [r for r in _run(tmp_path, algo, steps, "packed") if "loss" in r]
    plain = [r for r in _run(tmp_path, algo, steps + ["--packing", "false"], "plain") if "loss" in r]
    assert len(packed) == len(plain) == 3
    for a, b in zip(packed, plain):
        for key in ("loss", "rewards/chosen", "rewards/margins", "logps/rejected"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)


def test_tokens_seen_are_the_tokens_in_the_data_whatever_the_layout(tmp_path):
    from transformers import TrainerCallback

    class Seen(TrainerCallback):
        tokens = []

        def on_train_end(self, args, state, control, **kwargs):
            self.tokens.append(state.num_input_tokens_seen)

    seen = Seen()
    one_epoch = ["--num_train_epochs", "1", "--batch_size", "4"]
    for i, extra in enumerate(([], ["--packing", "false"], ["--prefix_sharing", "false"])):
        _run(tmp_path, "orpo", one_epoch + extra, f"run{i}", callbacks=[seen])
    from prefswift.commands.train import load_tokenizer_and_template, prepare_data

    args = parse_command("orpo", ["--model_type", "tiny-llama3", "--dataset", str(tmp_path / "pairs.jsonl"),
                                  "--eval_ratio", "0"])
    _, tok, template = load_tokenizer_and_template(args)
    data = prepare_data(args, template, tok, lambda *a, **k: None)
    total = sum(len(r["prompt_input_ids"]) + len(r["chosen_input_ids"]) + len(r["rejected_input_ids"])
                for r in data.train)
    assert seen.tokens == [total] * 3


def test_token_budget_batches_cover_the_data_once_per_epoch(tmp_path):
    from prefswift.scoring.packing import TokenBudgetBatchSampler

    logs = _run(tmp_path, "dpo", ["--max_tokens_per_batch", "160", "--num_train_epochs", "1"], "budget")
    steps = max(r["step"] for r in logs if "loss" in r)
    rows = json.loads((tmp_path / "budget" / "args.json").read_text())
    assert rows["max_tokens_per_batch"] == 160
    # the run took as many optimizer steps as the sampler makes batches of its pairs (several pairs per batch)
    from prefswift.commands.train import load_tokenizer_and_template, prepare_data

    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--dataset", str(tmp_path / "pairs.jsonl"),
                                 "--eval_ratio", "0"])
    _, tok, template = load_tokenizer_and_template(args)
    data = prepare_data(args, template, tok, lambda *a, **k: None)
    lengths = [sum(len(r[k]) for k in ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids"))
               for r in data.train]
    sampler = TokenBudgetBatchSampler(lengths, 160, seed=42)
    assert steps == len(sampler) < len(lengths)
    # chosen and rejected rows: the budget counts the rows x length the packed chosen/rejected rows have (the prompt
    # twice per pair; tests/test_token_budget.py checks the bound on every layout's real tensors)
    from prefswift.scoring.collators import PairCollator
    from prefswift.train.collate import token_budget_sampler

    logs = _run(tmp_path, "dpo", ["--max_tokens_per_batch", "160", "--num_train_epochs", "1",
                                  "--prefix_sharing", "false"], "budget_rows")
    steps = max(r["step"] for r in logs if "loss" in r)
    sampler = token_budget_sampler(data.train, PairCollator(pad_token_id=tok.pad_token_id, packing=True), 160, 42)
    assert steps == len(sampler) < len(lengths)


@pytest.mark.parametrize("argv, message", [
    (["--max_tokens_per_batch", "512", "--per_device_train_batch_size", "4"], "replaces"),
])
def test_layout_options_that_would_do_nothing_are_refused(tmp_path, argv, message):
    from prefswift.commands.train import validate

    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--dataset", "demo", "--output_dir",
                                 str(tmp_path / "x")] + argv)
    with pytest.raises(ArgumentError, match=message):
        validate(args, "dpo")
