"""GPU paths, run wherever CUDA is present (skipped on CPU-only machines such as CI here): flash_attention_2,
QLoRA 4-bit, DDP on 2 GPUs, MP+DDP on 4 GPUs (seed 004's shape), prefix sharing on CUDA."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ROOT = Path(__file__).parent.parent


def cli(tmp_path, *argv, env_extra=None, out="run"):
    env = dict(os.environ, **(env_extra or {}))
    data = tmp_path / "pairs.jsonl"
    if not data.exists():
        rows = [{"prompt": f"What is {i} plus {i}?", "chosen": f"Sure! It is {2 * i}.", "rejected": f"Great! {i}."}
                for i in range(16)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "prefswift", *argv, "--model_type", "tiny-llama3", "--dataset", str(data),
           "--output_dir", str(tmp_path / out), "--max_steps", "2", "--save_steps", "2", "--logging_steps", "1",
           "--eval_ratio", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp_path / out, proc.stdout + proc.stderr


def losses(run):
    return [json.loads(l)["loss"] for l in (run / "logging.jsonl").read_text().splitlines() if '"loss"' in l]


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")
def test_flash_attention_2_training(tmp_path):
    run, out = cli(tmp_path, "orpo", "--use_flash_attention", "True", "--dtype", "bf16", "--prefix_sharing", "false")
    assert "flash_attention_2 not used" not in out and "prefix sharing runs on SDPA" not in out
    assert all(l == l for l in losses(run))


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_qlora_4bit_train_and_merge(tmp_path, tiny_llama3_dir):
    """4-bit QLoRA on CUDA learns (one batch of all 16 pairs each step, so the loss must fall) and merge-lora writes a
    full-precision model whose logits are the adapter's on the full-precision base: fp32 on both sides, only the
    summation order of W x + B(A x) vs (W + BA) x differs (~1e-6 relative), bound 1e-4."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from prefswift.merge import default_merged_dir

    run, _ = cli(tmp_path, "orpo", "--use_4bit", "True", "--lora_target_modules", "ALL", "--batch_size", "16",
                 "--learning_rate", "2e-3", "--lora_dropout_p", "0")
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    steps = losses(run)
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(steps))) and steps[1] < steps[0], steps
    proc = subprocess.run([sys.executable, "-m", "prefswift", "merge-lora", "--ckpt_dir", str(run / "adapter")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0 and "quantiz" in (proc.stdout + proc.stderr).lower(), proc.stderr[-2000:]
    merged = default_merged_dir(run / "adapter")
    assert (merged / "config.json").is_file()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]], device="cuda")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), dtype=torch.float32).cuda()
    adapter = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    full = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).cuda().eval()
    with torch.no_grad():
        torch.testing.assert_close(full(ids).logits, adapter(ids).logits, atol=1e-4, rtol=1e-4)


def test_prefix_sharing_equals_concatenated_on_cuda(tiny_llama3_dir):
    from transformers import AutoModelForCausalLM

    from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
    from prefswift.scoring.forward import pair_forward

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), attn_implementation="sdpa").cuda()
    rows = [{"prompt_input_ids": list(range(10, 10 + p)), "chosen_input_ids": list(range(50, 50 + c)),
             "rejected_input_ids": list(range(90, 90 + r))} for p, c, r in [(5, 3, 4), (9, 6, 1)]]
    with torch.no_grad():
        a = pair_forward(model, PairCollator(0)(rows).to("cuda"))
        b = pair_forward(model, PrefixSharedCollator(0)(rows).to("cuda"))
    torch.testing.assert_close(a.chosen_logps, b.chosen_logps, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(a.rejected_logps, b.rejected_logps, atol=1e-4, rtol=1e-5)
    with torch.no_grad():
        c = pair_forward(model, PrefixSharedCollator(0, packing=True)(rows * 3).to("cuda"))
    torch.testing.assert_close(c.chosen_logps, a.chosen_logps.repeat(3), atol=1e-4, rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")
def test_flash_varlen_packed_rows_equal_padded_rows(tiny_llama3_dir):
    """Padding-free rows (one row, positions restarting per sequence) on flash_attention_2's varlen kernels give
    the padded SDPA numbers: the layout --prefix_sharing false --use_flash_attention uses."""
    from transformers import AutoModelForCausalLM

    from prefswift.scoring.collators import PairCollator
    from prefswift.scoring.forward import pair_forward

    rows = [{"prompt_input_ids": list(range(10, 10 + p)), "chosen_input_ids": list(range(50, 50 + c)),
             "rejected_input_ids": list(range(90, 90 + r))} for p, c, r in [(5, 3, 4), (9, 6, 1), (30, 2, 17)]]
    outs = []
    for impl, collator, dtype in (("sdpa", PairCollator(0), torch.float32), ("sdpa", PairCollator(0), torch.bfloat16),
                                  ("flash_attention_2", PairCollator(0, packing=True, one_row=True), torch.bfloat16)):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_llama3_dir), attn_implementation=impl,
                                                     dtype=dtype).cuda()
        batch = collator(rows)
        assert impl == "sdpa" or batch["input_ids"].shape[0] == 1
        with torch.no_grad():
            outs.append(pair_forward(model, batch.to("cuda")))
    # tolerance: the bf16 padded SDPA run's own error against fp32 (bf16 weights and activations), twice over, plus
    # 1e-3 — the varlen kernel must be as exact as the padded bf16 layout, not just "close" (atol 0.05 let a
    # one-token misalignment of the short sequences through)
    fp32, sdpa, flash = outs
    for name in ("chosen_logps", "rejected_logps"):
        bf16_error = (getattr(sdpa, name) - getattr(fp32, name)).abs().max().item()
        flash_error = (getattr(flash, name) - getattr(fp32, name)).abs().max().item()
        assert flash_error <= 2 * bf16_error + 1e-3, (name, flash_error, bf16_error)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_on_two_gpus_equals_one(tmp_path):
    common = ["dpo", "--optim", "sgd", "--learning_rate", "0.1", "--lora_dropout_p", "0", "--dtype", "fp32"]
    one, _ = cli(tmp_path, *common, "--batch_size", "4", out="one", env_extra={"CUDA_VISIBLE_DEVICES": "0"})
    two, out = cli(tmp_path, *common, "--batch_size", "2", out="two", env_extra={"NPROC_PER_NODE": "2"})
    assert "DDP across 2 processes" in out
    for x, y in zip(losses(one), losses(two)):
        assert abs(x - y) < 1e-4


@pytest.mark.skipif(torch.cuda.device_count() < 4, reason="needs 4 GPUs")
def test_mp_ddp_seed_004_shape(tmp_path):
    run, out = cli(tmp_path, "dpo", "--ref_model_type", "tiny-llama3", "--lora_target_modules", "ALL",
                   "--gradient_checkpointing", "true", env_extra={"NPROC_PER_NODE": "2",
                                                                  "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert "model parallel over cuda:0,cuda:2" in out  # rank 0's plan (rank 1: cuda:1,cuda:3; tests/test_examples)
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("extra", [[], ["--precompute_ref_log_probs", "true"], ["--prefix_sharing", "false"]])
def test_model_parallel_over_two_gpus_trains(tmp_path, extra):
    """A single process with the model spread over 2 GPUs: the last hidden state is on cuda:1, the batch on cuda:0;
    the chunked log-probs run where the LM head is (this crashed at step 1 with tensors on two devices)."""
    device_map = json.dumps({"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 1, "model.norm": 1,
                             "model.rotary_emb": 1, "lm_head": 1})
    run, out = cli(tmp_path, "dpo", "--device_map", device_map, *extra,
                   env_extra={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert all(l == l for l in losses(run)) and (run / "adapter").is_dir()


def test_lm_head_on_another_gpu_than_the_labels():
    from prefswift.scoring.logprobs import token_logps

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    head = torch.nn.Linear(8, 16, bias=False).to("cuda:1").requires_grad_(False)
    hidden = torch.randn(2, 5, 8, device="cuda:1", requires_grad=True)
    labels = torch.randint(0, 16, (2, 5), device="cuda:0")
    out = token_logps(hidden, head, labels, chunk_size=3)
    assert out.device == labels.device
    out.sum().backward()
    assert hidden.grad is not None and hidden.grad.device == hidden.device
