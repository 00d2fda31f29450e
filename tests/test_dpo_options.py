"""The DPO family's options on the command line: parsed into the objective, listed in --help, refused where they
would not act (one line each), simpo's NLL default, and the reference adapter through the CLI recipe.
Their numbers against TRL are in test_losses.py, test_parity_trl.py and test_trajectory_trl.py."""
import json

import pytest

from prefswift.arguments import COMMAND_SECTIONS, help_text, parse_command
from prefswift.arguments.algorithms import F_DIVERGENCES, loss_types
from prefswift.commands.train import run_training
from prefswift.train.validation import validate
from prefswift.errors import ArgumentError

BASE = ["--model_type", "tiny-llama3", "--dataset", "pairs.jsonl"]


def _objective(algo, *argv):
    return validate(parse_command(algo, BASE + list(argv)), algo)


def test_several_loss_types_with_weights():
    o = _objective("dpo", "--loss_type", "sigmoid,bco_pair,sft", "--loss_weights", "0.8,0.2,1")
    assert o.weighted_losses == [("sigmoid", 0.8), ("bco_pair", 0.2), ("sft", 1.0)]
    assert _objective("dpo", "--loss_type", "sigmoid", "--rpo_alpha", "0.5").weighted_losses == [("sigmoid", 1.0),
                                                                                                 ("sft", 0.5)]
    assert _objective("dpo", "--loss_type", "ipo,hinge").weighted_losses == [("ipo", 1.0), ("hinge", 1.0)]


def test_dpo_options_reach_the_objective():
    o = _objective("dpo", "--loss_type", "discopop", "--discopop_tau", "0.2", "--ld_alpha", "0.4", "--use_weighting",
                   "true", "--f_divergence_type", "alpha", "--f_alpha_divergence_coef", "0.3")
    assert (o.discopop_tau, o.ld_alpha, o.use_weighting) == (0.2, 0.4, True)
    assert (o.f_divergence_type, o.f_alpha_divergence_coef) == ("alpha_divergence", 0.3)


def test_simpo_is_the_papers_loss_by_default_and_cpo_keeps_the_nll():
    assert _objective("simpo").cpo_alpha == 0.0
    assert _objective("simpo", "--cpo_alpha", "1").cpo_alpha == 1.0  # TRL's CPO-SimPO
    assert _objective("cpo").cpo_alpha == 1.0
    assert "--cpo_alpha 1 = TRL's CPO-SimPO" in help_text(COMMAND_SECTIONS["simpo"], "simpo")


def test_help_lists_every_accepted_value():
    text = help_text(COMMAND_SECTIONS["dpo"], "dpo")
    for value in loss_types("dpo") + F_DIVERGENCES:
        assert value in text, value
    for flag in ("--loss_weights", "--discopop_tau", "--ld_alpha", "--use_weighting", "--f_divergence_type",
                 "--f_alpha_divergence_coef", "--sync_ref_model", "--ref_model_mixup_alpha", "--ref_model_sync_steps",
                 "--ref_adapter_name_or_path", "--label_smoothing", "--rpo_alpha"):
        assert flag in text, flag
    assert "--ld_alpha" not in help_text(COMMAND_SECTIONS["orpo"], "orpo")


@pytest.mark.parametrize("algo,argv,match", [
    ("dpo", ["--loss_type", "sigmoid,sft", "--loss_weights", "1"], "one weight per --loss_type"),
    ("dpo", ["--loss_weights", "1,x"], "expected numbers"),
    ("dpo", ["--loss_type", "sigmoid,nope"], "'nope' does not apply"),
    ("dpo", ["--loss_type", "sigmoid,sigmoid"], "twice"),
    ("cpo", ["--loss_type", "sigmoid,hinge"], "only `prefswift dpo` combines"),
    ("dpo", ["--loss_type", "sigmoid,sft", "--rpo_alpha", "0.5"], "already has"),
    ("dpo", ["--label_smoothing", "0.1"], "no effect"),
    ("dpo", ["--loss_type", "exo_pair"], "above 0"),
    ("dpo", ["--loss_type", "robust", "--label_smoothing", "0.6"], "below 0.5"),
    ("cpo", ["--loss_type", "hinge", "--label_smoothing", "0.1"], "no effect"),
    ("dpo", ["--discopop_tau", "0.1"], "acts only with --loss_type discopop"),
    ("dpo", ["--f_alpha_divergence_coef", "0.3"], "alpha_divergence"),
    ("dpo", ["--loss_type", "bco_pair", "--f_divergence_type", "js"], "not with bco_pair"),
    ("dpo", ["--f_divergence_type", "hellinger"], "is not one of"),
    ("dpo", ["--loss_type", "aot", "--use_weighting", "true"], "cannot weight aot"),
    ("dpo", ["--ld_alpha", "1.5"], "at most 1"),
    ("orpo", ["--ld_alpha", "0.5"], "acts for dpo only"),
    ("dpo", ["--sync_ref_model", "true"], "needs --sft_type full"),
    ("dpo", ["--sync_ref_model", "true", "--sft_type", "full", "--precompute_ref_log_probs", "true"], "stale"),
    ("dpo", ["--ref_model_sync_steps", "8"], "acts only with --sync_ref_model"),
    ("dpo", ["--ref_adapter_name_or_path", "a", "--sft_type", "full"], "needs --sft_type lora"),
    ("dpo", ["--ref_adapter_name_or_path", "a", "--ref_model_type", "tiny-llama3"], "keep one"),
    ("dpo", ["--ref_adapter_name_or_path", "a", "--adapter_name_or_path", "b"], "merged into the base"),
])
def test_options_that_would_not_act_are_refused(algo, argv, match):
    with pytest.raises(ArgumentError, match=match):
        _objective(algo, *argv)


def _adapter(tmp_path, tiny_llama3_dir):
    """A non-zero LoRA adapter of the tiny model (other rank and targets than the trained one)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama3_dir),
                           LoraConfig(r=2, target_modules=["q_proj", "o_proj"], init_lora_weights=False))
    model.save_pretrained(str(tmp_path / "ref_adapter"))
    return tmp_path / "ref_adapter"


def test_ref_adapter_through_the_cli(tmp_path, tiny_llama3_dir):
    """The policy starts at the base (zero LoRA), the reference is base + the adapter: margins are non-zero from step
    1; the live and the precomputed reference agree; the saved adapter is the trained one only."""
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i}?", "chosen": f"It is {i}.", "rejected": "No."}) + "\n"
                            for i in range(4)))
    ref = _adapter(tmp_path, tiny_llama3_dir)
    first = {}
    for precompute in ("false", "true"):
        out = tmp_path / f"run-{precompute}"
        args = parse_command("dpo", ["--model_type", "tiny-llama3", "--dataset", str(data), "--output_dir", str(out),
                                     "--max_steps", "2", "--logging_steps", "1", "--batch_size", "4", "--eval_ratio",
                                     "0", "--save_strategy", "no", "--gradient_checkpointing", "false",
                                     "--ref_adapter_name_or_path", str(ref), "--precompute_ref_log_probs", precompute])
        run_training(args, "dpo", log=lambda *a, **k: None)
        logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
        first[precompute] = next(r for r in logged if "loss" in r)
        assert (out / "adapter" / "adapter_model.safetensors").is_file() and not (out / "adapter" / "ref").exists()
    assert abs(first["false"]["rewards/margins"]) > 1e-3
    for name in ("loss", "rewards/margins", "rewards/chosen"):
        assert abs(first["false"][name] - first["true"][name]) <= 1e-5 * max(1.0, abs(first["true"][name])), name
