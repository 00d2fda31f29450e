"""SFT -> DPO on the tiny Llama 3 model, checked against plain transformers/PEFT.

`prefswift dpo --adapter_name_or_path <SFT run>` (default: the SFT adapter merged, a new adapter on top;
`--continue_adapter true`: the SFT adapter trained further, its frozen copy the reference):
* the reference is the SFT model: the first step's rewards are 0, and the policy's summed chosen log-probs of that step
  equal a plain PEFT forward of the SFT adapter over `apply_chat_template`'s token ids (one batch = all four pairs);
* `merge-lora` on the DPO run equals base + SFT + DPO applied in order with plain PEFT (`merge_and_unload`), 1e-5;
* args.json records the chain base -> SFT run -> DPO run.
"""
import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from prefswift.cli import app
from prefswift.data.demo import DEMO_DIR

runner = CliRunner()
COMMON = ["--model_type", "tiny-llama3", "--gradient_checkpointing", "false", "--save_steps", "1000",
          "--eval_ratio", "0"]
SHAPE = ["--lora_target_modules", "ALL", "--lora_dropout_p", "0"]  # (a continued adapter keeps the SFT run's)


def cli(*argv):
    result = runner.invoke(app, [str(a) for a in argv], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sft") / "run"
    cli("sft", *COMMON, *SHAPE, "--dataset", "demo-sft#64", "--output_dir", run, "--learning_rate", "5e-3",
        "--batch_size", "8", "--num_train_epochs", "1", "--lora_rank", "8")
    return run


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    with open(f"{DEMO_DIR}/demo.jsonl", encoding="utf-8") as f:
        path.write_text("".join(f.readline() for _ in range(4)), encoding="utf-8")
    return path


def _base(tiny_llama3_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_llama3_dir, dtype=torch.float32)


@torch.no_grad()
def _mean_chosen_logps(model, tok, pairs_path) -> float:
    """The mean over the pairs of sum log p(chosen tokens | prompt): full logits, ids from apply_chat_template."""
    total, rows = 0.0, [json.loads(line) for line in pairs_path.read_text().splitlines()]
    for row in rows:
        user = [{"role": "user", "content": row["prompt"]}]
        prompt = tok(tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
        full = tok(tok.apply_chat_template(user + [{"role": "assistant", "content": row["chosen"]}], tokenize=False),
                   add_special_tokens=False)["input_ids"]
        assert full[:len(prompt)] == prompt
        logps = model(input_ids=torch.tensor([full])).logits[0, :-1].log_softmax(-1)
        targets = torch.tensor(full[1:])
        total += logps.gather(-1, targets[:, None])[:, 0][len(prompt) - 1:].sum().item()
    return total / len(rows)


@pytest.mark.parametrize("continue_adapter", [False, True], ids=["merged", "continued"])
def test_dpo_from_sft_run(tmp_path, tiny_llama3_dir, sft_run, pairs, continue_adapter):
    run = tmp_path / "dpo"
    flag = "--adapter_name_or_path" if continue_adapter else "--sft_run"  # the spelling is an alias of it
    out = cli("dpo", *COMMON, flag, sft_run, "--dataset", pairs, "--output_dir", run, "--batch_size", "4",
              "--max_steps", "2", "--logging_steps", "1", "--learning_rate", "1e-2",
              *(["--continue_adapter", "true"] if continue_adapter else SHAPE))
    assert "reference: the SFT model" in out
    first = json.loads((run / "logging.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["rewards/chosen"] == 0 and first["rewards/rejected"] == 0

    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    sft = PeftModel.from_pretrained(_base(tiny_llama3_dir), str(sft_run / "adapter")).eval()
    expected = _mean_chosen_logps(sft, tok, pairs)
    assert abs(first["logps/chosen"] - expected) <= 1e-5 * abs(expected), (first["logps/chosen"], expected)

    lineage = json.loads((run / "args.json").read_text())["lineage"]
    assert [s["stage"] for s in lineage] == ["base", "sft", "dpo"]
    assert lineage[1]["run"] == str(sft_run) and lineage[2]["reference"].startswith("the SFT model")

    merged_dir = tmp_path / "merged"
    cli("merge-lora", "--ckpt_dir", run, "--merge_output_dir", merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).state_dict()
    start = _base(tiny_llama3_dir)
    if not continue_adapter:  # base + SFT, then the DPO adapter on top
        start = PeftModel.from_pretrained(start, str(sft_run / "adapter")).merge_and_unload()
    sft_only = {k: v.clone() for k, v in start.state_dict().items()}
    oracle = PeftModel.from_pretrained(start, str(run / "adapter")).merge_and_unload().state_dict()
    assert merged.keys() == oracle.keys()
    assert any((merged[k] - sft_only[k]).abs().max() > 1e-4 for k in merged)  # DPO changed the weights
    for k in oracle:
        assert torch.allclose(merged[k], oracle[k], atol=1e-5, rtol=0), k


def test_start_options_are_refused_where_they_cannot_act(tmp_path, pairs):
    for argv, message in ((["--continue_adapter", "true"], "--continue_adapter true trains the adapter"),
                          (["--ref_model", "base"], "--ref_model base: this run starts from the base")):
        result = runner.invoke(app, ["dpo", *COMMON, "--dataset", str(pairs), "--output_dir", str(tmp_path / "x"),
                                     *argv])
        assert result.exit_code != 0 and message in result.output, result.output


def test_ref_model_base_is_the_bare_base_only_when_asked(tmp_path, sft_run, pairs):
    run = tmp_path / "dpo"
    out = cli("dpo", *COMMON, *SHAPE, "--adapter_name_or_path", sft_run, "--dataset", pairs, "--output_dir", run,
              "--batch_size", "4", "--max_steps", "1", "--logging_steps", "1", "--ref_model", "base")
    assert "reference: the bare base model" in out
    first = json.loads((run / "logging.jsonl").read_text().splitlines()[0])
    assert first["rewards/chosen"] != 0  # the policy starts at the SFT model, the reference is the base
    lineage = json.loads((run / "args.json").read_text())["lineage"]
    assert "--ref_model base" in lineage[2]["reference"]
