"""Training behaviour on the tiny model: resume == uninterrupted, LoRA touches only adapters, precomputed reference
== live reference, run files written."""
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training


def _pairs(path, n=24):
    rows = [{"prompt": f"What is {i} plus {i + 1}?", "chosen": f"Sure! The answer is {2 * i + 1}.",
             "rejected": f"No. I will not say {i}."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _train(tmp_path, algo, extra, out="run", callbacks=()):
    data = tmp_path / "pairs.jsonl"
    if not data.exists():
        _pairs(data)
    argv = ["--model_type", "tiny-llama3", "--dataset", str(data), "--output_dir", str(tmp_path / out),
            "--max_steps", "6", "--save_steps", "3", "--logging_steps", "1", "--batch_size", "2",
            "--eval_ratio", "0", "--learning_rate", "1e-2", "--lora_target_modules", "ALL",
            "--gradient_checkpointing", "false", "--lora_dropout_p", "0.1"] + extra
    args = parse_command(algo, argv)
    return run_training(args, algo, log=lambda *a, **k: None, callbacks=callbacks)


def _losses(run_dir):
    rows = [json.loads(l) for l in (run_dir / "logging.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


class StopAt(TrainerCallback):
    """Simulates a kill right after the checkpoint at `step` was written."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.parametrize("algo", ["orpo", "dpo"])
def test_resume_latest_equals_uninterrupted(tmp_path, algo):
    full = _train(tmp_path, algo, [], out="full")
    _train(tmp_path, algo, [], out="cut", callbacks=[StopAt(3)])
    cut = tmp_path / "cut"
    assert (cut / "checkpoint-3").is_dir() and not (cut / "checkpoint-6").exists()
    _train(tmp_path, algo, ["--resume_from_checkpoint", "latest"], out="cut")
    a = load_file(full / "adapter" / "adapter_model.safetensors")
    b = load_file(cut / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)
    la, lb = _losses(full), _losses(cut)
    assert [s for s, _ in la] == [s for s, _ in lb] == [1, 2, 3, 4, 5, 6]
    for (_, x), (_, y) in zip(la, lb):
        assert abs(x - y) < 1e-5


def test_run_files_and_lora_only_adapter_weights(tmp_path):
    run = _train(tmp_path, "orpo", [])
    for name in ("args.json", "logging.jsonl", "adapter/adapter_model.safetensors", "adapter/args.json",
                 "checkpoint-3/args.json", "checkpoint-6/adapter_model.safetensors", "images/loss.png",
                 "images/rewards_accuracies.png", "images/rewards_margins.png"):
        assert (run / name).is_file(), name
    weights = load_file(run / "adapter" / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    rows = [r for r in map(json.loads, (run / "logging.jsonl").read_text().splitlines()) if "loss" in r]
    for key in ("loss", "nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/chosen", "rewards/rejected",
                "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert key in rows[0], key
    # a high learning rate on an easy pattern: the margin must grow
    assert rows[-1]["rewards/margins"] > rows[0]["rewards/margins"]
    saved = json.loads((run / "args.json").read_text())
    assert saved["model_type"] == "tiny-llama3" and saved["command"] == "orpo"


def test_lora_training_changes_only_adapter_parameters(tmp_path, tiny_llama3_dir):
    from prefswift.models.loader import load_model
    from prefswift.models.lora import add_lora

    args = parse_command("dpo", ["--lora_target_modules", "ALL"])
    base = load_model(tiny_llama3_dir, args.model)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = add_lora(base, args.tuning, ["q_proj"])
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    ids = torch.randint(0, 900, (2, 12))
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        clean = name.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" in name:
            assert p.requires_grad
        else:
            assert not p.requires_grad and torch.equal(p.detach(), before[clean]), name


def test_precomputed_reference_gives_the_same_losses(tmp_path):
    live = _train(tmp_path, "dpo", ["--lora_dropout_p", "0"], out="live")
    pre = _train(tmp_path, "dpo", ["--lora_dropout_p", "0", "--precompute_ref_log_probs", "true"], out="pre")
    assert list(pre.glob("ref_logps_train_*.pt"))
    for (s1, a), (s2, b) in zip(_losses(live), _losses(pre)):
        assert s1 == s2 and abs(a - b) < 1e-5


def test_existing_run_is_not_clobbered(tmp_path):
    from prefswift.errors import ArgumentError

    _train(tmp_path, "orpo", ["--max_steps", "3"])
    with pytest.raises(ArgumentError, match="already holds a run.*--resume_from_checkpoint latest"):
        _train(tmp_path, "orpo", ["--max_steps", "3"])


def _first_row(run_dir):
    return next(r for r in map(json.loads, (run_dir / "logging.jsonl").read_text().splitlines()) if "loss" in r)


@pytest.mark.parametrize("algo,extra,keys", [
    ("dpo", ["--sft_type", "full", "--learning_rate", "1e-4"], ["rewards/margins", "logps/chosen"]),
    ("dpo", ["--loss_type", "ipo", "--rpo_alpha", "0.5"], ["nll_loss", "rewards/margins"]),
    ("simpo", [], ["rewards/margins", "logps/chosen"]),
    ("cpo", [], ["nll_loss", "rewards/margins"]),
])
def test_algorithms_and_modes_run(tmp_path, algo, extra, keys):
    run = _train(tmp_path, algo, extra + ["--max_steps", "2", "--save_steps", "2"])
    row = _first_row(run)
    assert all(k in row for k in keys) and row["loss"] == row["loss"]  # not NaN
    saved = "final/model.safetensors" if "full" in extra else "adapter/adapter_model.safetensors"
    assert (run / saved).is_file()


def test_dpo_from_an_sft_adapter_uses_it_as_reference(tmp_path, tiny_llama3_dir):
    """Seed 003's flow: DPO starts from an SFT LoRA; at step 1 the policy equals the reference (margins 0)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir))
    torch.manual_seed(0)
    sft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    sft.save_pretrained(tmp_path / "sft")
    run = _train(tmp_path, "dpo", ["--adapter_name_or_path", str(tmp_path / "sft"), "--lora_dropout_p", "0",
                                   "--max_steps", "2", "--save_steps", "2"])
    row = _first_row(run)
    assert abs(row["rewards/margins"]) < 1e-6 and abs(row["rewards/chosen"]) < 1e-6
    # and the reference really is the SFT model, not the bare base: its log-probs differ from the base's
    plain = _train(tmp_path, "dpo", ["--lora_dropout_p", "0", "--max_steps", "2", "--save_steps", "2"], out="plain")
    assert abs(_first_row(plain)["logps/chosen"] - row["logps/chosen"]) > 1e-3


def test_dpo_with_a_separate_reference_model(tmp_path, tiny_llama3_dir):
    """--ref_model_id_or_path: a different model is the reference, so margins are not zero from step 1."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir))
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    ref.save_pretrained(tmp_path / "ref")
    AutoTokenizer.from_pretrained(str(tiny_llama3_dir)).save_pretrained(tmp_path / "ref")
    run = _train(tmp_path, "dpo", ["--ref_model_id_or_path", str(tmp_path / "ref"), "--max_steps", "1",
                                   "--save_steps", "1"])
    assert abs(_first_row(run)["rewards/margins"]) > 1e-4


def test_8bit_optimizer_without_cuda_is_a_clear_error(tmp_path):
    from prefswift.errors import ArgumentError

    if torch.cuda.is_available():
        pytest.skip("checks the no-CUDA error")
    with pytest.raises(ArgumentError, match="paged_adamw_8bit needs a CUDA GPU"):
        _train(tmp_path, "orpo", ["--optim", "paged_adamw_8bit", "--max_steps", "1"])
