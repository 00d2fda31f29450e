"""The codebase's shape and the contracts the architecture promises: small files, one source per fact, typed
arguments that reach where they act, choices and ranges refused at parse time."""
import os
from pathlib import Path

import pytest

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError

PACKAGE = Path(__file__).resolve().parent.parent / "prefswift"


def test_no_module_over_500_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


@pytest.mark.parametrize("command,argv,needle", [
    ("orpo", ["--loss_type", "sigmoid"], "does not apply to `prefswift orpo`"),
    ("simpo", ["--loss_type", "hinge"], "does not apply to `prefswift simpo`"),
    ("dpo", ["--pref_loss", "orpo"], "orpo is a loss of `prefswift orpo`"),
    ("dpo", ["--loss_type", "bogus"], "does not apply to `prefswift dpo`"),
    ("cpo", ["--loss_type", "apo_zero"], "does not apply to `prefswift cpo`"),
])
def test_loss_type_is_checked_per_command_at_parse_time(command, argv, needle):
    with pytest.raises(ArgumentError, match=needle):
        parse_command(command, ["--dataset", "demo", *argv])


def test_every_accepted_loss_type_parses_and_is_in_the_help():
    from prefswift.arguments.algorithms import algorithm_names, loss_types
    from prefswift.arguments.fields import PreferenceArguments, SECTIONS  # noqa: F401
    from prefswift.arguments.parser import help_text

    text = help_text(["pref"])
    for algo, types in ((a, loss_types(a)) for a in algorithm_names()):
        for loss_type in types:
            assert parse_command(algo, ["--loss_type", loss_type]).pref.loss_type == loss_type
            if len(types) > 1:
                assert loss_type in text


@pytest.mark.parametrize("argv,needle", [
    (["--lora_rank", "0"], "--lora_rank: 0 must be at least 1"),
    (["--batch_size", "0"], "--batch_size"),
    (["--lora_dropout", "2"], "--lora_dropout: 2.0 must be below 1"),
    (["--logging_steps", "0"], "--logging_steps"),
    (["--beta", "0"], "--beta: 0.0 must be above 0"),
    (["--eval_ratio", "1"], "--eval_ratio"),
])
def test_out_of_range_values_are_one_line_errors(argv, needle):
    with pytest.raises(ArgumentError) as err:
        parse_command("dpo", ["--dataset", "demo", *argv])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_sections_check_their_values_however_they_are_built():
    from prefswift.arguments.fields import DataArguments

    with pytest.raises(ArgumentError, match="check_dataset_strategy"):
        DataArguments(dataset=["x.jsonl"], check_dataset_strategy="ignore")
    data = DataArguments(dataset="x.jsonl", columns='{"q": "prompt"}')  # strings as typed on a command line
    assert data.dataset == ["x.jsonl"] and data.columns == {"q": "prompt"}


def test_hub_choice_reaches_dataset_download(monkeypatch, tiny_llama3_dir):
    """`--hub hf` is a model argument; the training recipe hands it to the data pipeline."""
    from prefswift.commands.train import prepare_data
    from prefswift.data import loader
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    seen = []

    def fake_fetch(dataset_id, subset, split, hub):
        seen.append((dataset_id, hub))
        return [{"prompt": f"q{i}", "prompt_id": str(i), "chosen": [{"role": "user", "content": f"q{i}"},
                 {"role": "assistant", "content": "good"}], "rejected": [{"role": "user", "content": f"q{i}"},
                 {"role": "assistant", "content": "bad"}]} for i in range(4)]

    monkeypatch.setattr(loader, "fetch_from_hub", fake_fetch)
    monkeypatch.delenv("USE_HF", raising=False)
    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--hub", "hf", "--dataset", "ultrafeedback"])
    data = prepare_data(args, get_template("llama3"), load_tokenizer(tiny_llama3_dir), lambda *a, **k: None)
    assert seen and all(hub == "hf" for _, hub in seen) and len(data.train) == 4


def test_one_hub_helper_for_models_and_datasets(monkeypatch):
    from prefswift.registry.hubs import which_hub

    monkeypatch.delenv("USE_HF", raising=False)
    assert [which_hub(h) for h in ("auto", None, "hf", "modelscope")] == ["modelscope", "modelscope", "hf",
                                                                          "modelscope"]
    monkeypatch.setenv("USE_HF", "1")
    assert which_hub("auto") == "hf" and which_hub("modelscope") == "modelscope"


def test_device_map_json_is_parsed():
    from prefswift.models.loader import parse_device_map

    assert parse_device_map('{"": "cpu"}') == {"": "cpu"}
    assert parse_device_map("auto") == "auto" and parse_device_map(None) is None
    with pytest.raises(ArgumentError.__mro__[1], match="--device_map"):
        parse_device_map('{"": cpu}')


def test_prefix_shared_segments_use_one_coding():
    import torch

    from prefswift.scoring.collators import PrefixSharedCollator, Segment

    batch = PrefixSharedCollator(pad_token_id=0)([
        {"prompt_input_ids": [1, 2, 3], "chosen_input_ids": [4, 5], "rejected_input_ids": [6]},
        {"prompt_input_ids": [1, 2], "chosen_input_ids": [7], "rejected_input_ids": [8, 9, 10]},
    ])
    assert batch["score_seg"].tolist() == [
        [Segment.PROMPT, Segment.PROMPT, Segment.CHOSEN, Segment.CHOSEN, Segment.REJECTED],
        [Segment.PROMPT, Segment.CHOSEN, Segment.REJECTED, Segment.REJECTED, Segment.REJECTED],
    ]
    # the targets the segments label: prompt tokens after the first, then chosen, then rejected
    assert batch["target_ids"][0].tolist() == [2, 3, 4, 5, 6]
    mask = batch["attention_mask"][0, 0]
    assert not mask[5, 3] and not mask[5, 4]           # the rejected token never sees the chosen ones
    assert mask[5, :3].all() and mask[4, :4].all()      # both responses see the whole prompt
    assert torch.equal(mask[6:, 6:], torch.eye(mask.shape[0] - 6, dtype=torch.bool))  # padding sees itself only


def test_every_import_of_prefswift_is_acyclic_and_layered():
    """The same check CI runs (`lint-imports`), here so a plain pytest run catches a layer violation too."""
    import shutil
    import subprocess
    import sys

    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    out = subprocess.run([exe, "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
