"""Every training command runs at its own defaults: only a model, a dataset and (to keep it short) one step."""
import json

import pytest

from prefswift.arguments import parse_command
from prefswift.arguments.algorithms import algorithm_names
from prefswift.commands.train import main


@pytest.mark.parametrize("algo", algorithm_names())
def test_every_training_command_runs_at_its_defaults(tmp_path, algo):
    out = tmp_path / "run"
    main(algo, ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--max_steps", "1", "--output_dir", str(out)])
    assert json.loads((out / "complete.json").read_text())["global_step"] == 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_kto_defaults_to_trls_batch_size_and_still_refuses_an_explicit_1():
    from trl import KTOConfig

    from prefswift.train.validation import validate
    from prefswift.errors import ArgumentError

    args = parse_command("kto", ["--model_type", "tiny-llama3", "--dataset", "demo#8"])
    trl_default = KTOConfig.__dataclass_fields__["per_device_train_batch_size"].default  # (building one needs a GPU)
    assert args.train.batch_size == trl_default == 8
    assert "batch_size" not in args.explicit
    assert parse_command("dpo", ["--model_type", "tiny-llama3"]).train.batch_size == 1
    with pytest.raises(ArgumentError, match="--batch_size 2 or more"):
        validate(parse_command("kto", ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--batch_size", "1"]),
                 "kto")
