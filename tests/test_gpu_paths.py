"""GPU code paths, run on this CPU as far as they reach: QLoRA through bitsandbytes' CPU backend, the LM head under
the forward's autocast, a model dispatched with a device_map, and the precision checks of full fine-tuning."""
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError
from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
from prefswift.scoring.forward import pair_forward

ROWS = [{"prompt_input_ids": [5, 6, 7, 8], "chosen_input_ids": [9, 10, 11], "rejected_input_ids": [12, 13]},
        {"prompt_input_ids": [14, 15], "chosen_input_ids": [16], "rejected_input_ids": [17, 18, 19, 20]}]


def _train(tmp_path, algo, *extra):
    from prefswift.commands.train import run_training

    argv = ["--model_type", "tiny-llama3", "--dataset", "demo#16", "--eval_ratio", "0", "--max_steps", "2",
            "--logging_steps", "1", "--save_steps", "100", "--lora_target_modules", "ALL",
            "--output_dir", str(tmp_path / algo), *extra]
    return run_training(parse_command(algo, argv), algo, log=lambda *a, **k: None)


@pytest.mark.parametrize("algo,bits", [("orpo", "--use_4bit"), ("dpo", "--use_8bit")])
def test_qlora_trains_on_cpu_and_merges_to_the_adapters_function(tmp_path, algo, bits):
    """4-bit (nf4, double quant) and 8-bit bases load, train and learn; merge-lora writes a full-precision model
    whose logits equal the adapter applied to the full-precision base."""
    from peft import PeftModel

    from prefswift.merge import merge_lora
    from prefswift.models.tiny import ensure_tiny_model

    run = _train(tmp_path, algo, bits, "true", "--learning_rate", "1e-3")
    log = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert json.loads((run / "args.json").read_text())["quantization_bit"] == (4 if bits == "--use_4bit" else 8)

    merged = merge_lora(parse_command("merge-lora", ["--ckpt_dir", str(run / "adapter")]), None,
                        log=lambda *a: None)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    base = AutoModelForCausalLM.from_pretrained(str(ensure_tiny_model("tiny-llama3")), dtype=torch.float32)
    adapter = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    full = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(full(ids).logits, adapter(ids).logits, atol=1e-5, rtol=1e-5)


def test_lm_head_runs_under_the_forwards_autocast(tiny_llama3_dir):
    """accelerate wraps only the model's forward in autocast; the chunked head runs after it and must use the same
    compute dtype (QLoRA upcasts lm_head to fp32: without this every head GEMM is fp32)."""
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), dtype=torch.float32)
    model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward)  # what accelerate does
    seen = []
    model.lm_head.register_forward_hook(lambda m, i, o: seen.append((torch.is_autocast_enabled("cpu"), o.dtype)))
    for collator in (PairCollator(0), PrefixSharedCollator(0)):
        seen.clear()
        out = pair_forward(model, collator(ROWS), chunk_size=4)
        assert seen and all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen[1:])
        assert out.chosen_logps.dtype == torch.float32  # log-softmax still in fp32
    plain = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), dtype=torch.float32)
    seen.clear()
    plain.lm_head.register_forward_hook(lambda m, i, o: seen.append((torch.is_autocast_enabled("cpu"), o.dtype)))
    pair_forward(plain, PairCollator(0)(ROWS), chunk_size=4)
    assert all(not enabled and dtype == torch.float32 for enabled, dtype in seen[1:])  # no autocast: none added


DISPATCH_MAPS = [
    # CPU: the second layer and the LM head offloaded to disk — their weights stay on "meta" and accelerate's hooks
    # load them for each forward (the path a device_map with "disk"/"cpu" offload takes on a too-small GPU)
    pytest.param({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "cpu",
                  "model.rotary_emb": "cpu", "lm_head": "disk"}, id="cpu+disk-offload"),
    # GPU: the backbone split over two devices, hidden states crossing from cuda:0 to the CPU and back
    pytest.param({"model.embed_tokens": "cpu", "model.layers.0": 0, "model.layers.1": "cpu", "model.norm": 0,
                  "model.rotary_emb": 0, "lm_head": 0}, id="cuda+cpu",
                 marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")),
]


@pytest.mark.parametrize("device_map", DISPATCH_MAPS)
def test_a_dispatched_model_gives_the_same_numbers(tiny_llama3_dir, tmp_path, device_map):
    """A model spread with accelerate's dispatch (the device_map path: hooks that move weights and activations)
    scores pairs as the plain model does, in both layouts, with the offloaded LM head called as a module."""
    from accelerate import dispatch_model

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), dtype=torch.float32).eval()
    dispatched = dispatch_model(AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), dtype=torch.float32)
                                .eval(), device_map=device_map, offload_dir=str(tmp_path / "offload"))
    assert all(hasattr(dispatched.get_submodule(name), "_hf_hook") for name in device_map)
    if "disk" in device_map.values():  # really offloaded: no weights where the module lives between forwards
        assert dispatched.lm_head.weight.device.type == "meta"
        assert dispatched.model.layers[1].mlp.down_proj.weight.device.type == "meta"
    for collator in (PrefixSharedCollator(0), PairCollator(0)):
        with torch.no_grad():
            want = pair_forward(model, collator(ROWS), chunk_size=3)
            got = pair_forward(dispatched, collator(ROWS), chunk_size=3)
        for name in ("chosen_logps", "rejected_logps", "chosen_nll"):
            torch.testing.assert_close(getattr(got, name).cpu(), getattr(want, name), atol=1e-5, rtol=1e-6)


def test_token_logps_computes_where_the_head_is_and_returns_where_the_labels_are():
    from prefswift.scoring.logprobs import token_logps

    head = torch.nn.Linear(8, 16, bias=False)
    hidden = torch.randn(2, 5, 8)
    labels = torch.randint(0, 16, (2, 5))
    labels[0, :2] = -100
    calls = []
    head.register_forward_pre_hook(lambda m, args: calls.append(args[0].device))
    out = token_logps(hidden, head, labels, chunk_size=3)
    assert out.device == labels.device and set(calls) == {head.weight.device}
    want = torch.log_softmax(head(hidden), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(out, want * (labels != -100))


def test_full_finetuning_keeps_fp32_master_weights_and_learns_at_a_dpo_learning_rate(tmp_path):
    """--dtype bf16 --sft_type full: the policy trains in fp32 with bf16 autocast, so a 5e-7 learning rate still
    moves the weights (pure bf16 AdamW would round most of these updates away)."""
    from prefswift.models.tiny import ensure_tiny_model

    run = _train(tmp_path, "dpo", "--sft_type", "full", "--dtype", "bf16", "--learning_rate", "5e-7",
                 "--gradient_checkpointing", "false")
    before = AutoModelForCausalLM.from_pretrained(str(ensure_tiny_model("tiny-llama3")), dtype=torch.float32)
    after = AutoModelForCausalLM.from_pretrained(str(run / "final"), dtype=torch.float32)
    assert json.loads((run / "final" / "config.json").read_text())["dtype"] == "float32"
    w0, w1 = before.model.layers[0].mlp.down_proj.weight, after.model.layers[0].mlp.down_proj.weight
    changed = (w0 != w1).float().mean().item()
    assert changed > 0.5, changed  # in pure bf16 almost none of these entries would change


def test_fp16_full_finetuning_without_cuda_is_refused_before_loading(tmp_path):
    from prefswift.models.precision import training_precision

    if torch.cuda.is_available():
        pytest.skip("checks the CPU refusal")
    with pytest.raises(ArgumentError, match="--dtype fp16 with --sft_type full needs a CUDA GPU"):
        training_precision("fp16", full_finetune=True, deepspeed=False)
    assert training_precision("fp16", full_finetune=False, deepspeed=False).weights == torch.float16
    p = training_precision("bf16", full_finetune=True, deepspeed=False)
    assert (p.weights, p.compute, p.bf16, p.fp16) == (torch.float32, torch.bfloat16, True, False)


def test_use_flash_attention_keeps_prefix_sharing_on_sdpa(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="prefswift"):
        run = _train(tmp_path, "orpo", "--use_flash_attention", "true")
    assert any("prefix sharing runs on SDPA" in r.getMessage() for r in caplog.records)
    assert json.loads((run / "args.json").read_text())["use_flash_attention"] is True  # what the user asked, kept


def test_qlora_with_zero3_is_refused_in_one_line():
    from prefswift.train.validation import validate

    args = parse_command("dpo", ["--dataset", "demo", "--use_4bit", "true", "--deepspeed", "zero3"])
    with pytest.raises(ArgumentError, match="zero3 with 4/8-bit loading"):
        validate(args, "dpo")
