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


class _RecordingCollator:
    """The run's own collator, recording what each batch holds: the pairs (by their token ids) and the shape of the
    input_ids tensor the forward receives."""

    def __init__(self, inner):
        self.inner, self.pairs, self.shapes = inner, [], []

    def layout_tokens(self, rows):  # what the token-budget sampler asks the collator (not recorded)
        return self.inner.layout_tokens(rows)

    def __call__(self, rows):
        batch = self.inner(rows)
        self.pairs.append([tuple(tuple(r[k]) for k in ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids"))
                           for r in rows])
        self.shapes.append(tuple(batch["input_ids"].shape))
        return batch


# the layouts a token budget must bound (padding-free rows are as long as their longest sequence: the budget counts
# rows x length, padding included)
BUDGET_LAYOUTS = [
    pytest.param([], id="prefix-shared-packed"),
    pytest.param(["--prefix_sharing", "false"], id="padding-free-rows"),
    pytest.param(["--packing", "false"], id="prefix-shared-one-pair-per-row"),
]


@pytest.mark.parametrize("layout", BUDGET_LAYOUTS)
def test_token_budget_batches_cover_the_data_once_per_epoch(tmp_path, monkeypatch, tiny_llama3_dir, layout):
    """One epoch under --max_tokens_per_batch: every pair of the data is trained on exactly once, batches hold
    several pairs, and no batch's input_ids tensor (rows x row length, padding included: what the forward computes
    on) holds more tokens than the budget, unless it is a single pair longer than the budget."""
    from prefswift.commands import train as train_command

    budget = 160
    recorders = []

    def recording_collator(*a, **k):
        recorders.append(_RecordingCollator(make_collator(*a, **k)))
        return recorders[-1]

    make_collator = train_command.make_collator
    monkeypatch.setattr(train_command, "make_collator", recording_collator)
    logs = _run(tmp_path, "dpo", ["--max_tokens_per_batch", str(budget), "--num_train_epochs", "1"] + layout, "run")
    (seen,) = recorders
    shared_prompt = "--prefix_sharing" in layout
    steps = max(r["step"] for r in logs if "loss" in r)
    assert steps == len(seen.pairs)                                 # one optimizer step per batch
    data = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    trained = [pair for batch in seen.pairs for pair in batch]
    assert len(trained) == len(data) == len(set(trained))           # each pair once, none twice
    assert max(len(b) for b in seen.pairs) > 1 and len(seen.pairs) < len(data)
    for pairs, shape in zip(seen.pairs, seen.shapes):
        tokens = shape[0] * shape[1]
        # a pair's own tokens in this layout (padding-free rows: the prompt once per response)
        longest = max(len(p) * (1 + shared_prompt) + len(c) + len(r) for p, c, r in pairs)
        # a single pair is the smallest batch there is: its layout may exceed the budget (padding-free rows pad the
        # shorter response to the longer one), anything larger must fit
        assert tokens <= budget or len(pairs) == 1, (shape, len(pairs), longest)
    # the pairs are the data's: decode them back to the rows' text through the run's tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama3_dir))
    texts = {tok.decode(c, skip_special_tokens=True).strip() for _, c, _ in trained}
    assert texts == {row["chosen"] for row in data}


@pytest.mark.parametrize("argv, message", [
    (["--max_tokens_per_batch", "512", "--per_device_train_batch_size", "4"], "replaces"),
])
def test_layout_options_that_would_do_nothing_are_refused(tmp_path, argv, message):
    from prefswift.train.validation import validate

    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--dataset", "demo", "--output_dir",
                                 str(tmp_path / "x")] + argv)
    with pytest.raises(ArgumentError, match=message):
        validate(args, "dpo")
