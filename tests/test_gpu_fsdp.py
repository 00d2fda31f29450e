"""FSDP2 (--fsdp full_shard), run wherever 2 CUDA GPUs are present (scripts/gpu_check.sh; skipped here: accelerate
selects FSDP only for GPU process groups, so on CPU/gloo --fsdp is refused — tests/test_fsdp.py). LoRA DPO and
full-fine-tuning ORPO on 2 GPUs: the losses of 3 steps equal one process without FSDP with the same global batch (to
1e-5, fp32), the saved adapter / model loads in plain PEFT / transformers and gives the one-process result's logits,
and a checkpoint resumes exactly (to the same final weights)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                                reason="needs 2 CUDA GPUs")
ROOT = Path(__file__).parent.parent


def run(tmp_path, name, algo, nproc, batch_size, *extra, steps=3):
    data = tmp_path / "pairs.jsonl"
    if not data.exists():
        rows = [{"prompt": f"Question {i}: what is {i} times two?", "chosen": f"Sure! It is {2 * i}.",
                 "rejected": f"Whatever. It is {i}."} for i in range(32)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {k: v for k, v in os.environ.items() if k != "NPROC_PER_NODE"}
    env["CUDA_VISIBLE_DEVICES"] = "0,1" if nproc > 1 else "0"
    if nproc > 1:
        env["NPROC_PER_NODE"] = str(nproc)
    out = tmp_path / name
    cmd = [sys.executable, "-m", "prefswift", algo, "--model_type", "tiny-llama3", "--dataset", str(data),
           "--output_dir", str(out), "--max_steps", str(steps), "--save_steps", "2", "--logging_steps", "1",
           "--eval_ratio", "0", "--batch_size", str(batch_size), "--dtype", "fp32", "--optim", "sgd",
           "--learning_rate", "0.1", "--lora_dropout_p", "0", "--gradient_checkpointing", "false", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def losses(out):
    return [r["loss"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "loss" in r]


def logits(model):
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]], device="cuda:0")
    with torch.no_grad():
        return model.to("cuda:0")(ids).logits.float().cpu()


@pytest.mark.parametrize("algo, tuning", [("dpo", "lora"), ("orpo", "full")])
def test_fsdp2_on_two_gpus_equals_one_process(algo, tuning, tmp_path, tiny_llama3_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    one = run(tmp_path, "one", algo, 1, 4, "--sft_type", tuning)
    two = run(tmp_path, "fsdp", algo, 2, 2, "--sft_type", tuning, "--fsdp", "full_shard")
    for a, b in zip(losses(one), losses(two)):
        assert abs(a - b) < 1e-5, (losses(one), losses(two))
    if tuning == "lora":
        load = lambda out: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama3_dir),  # noqa
                                                      out / "adapter")
    else:
        load = lambda out: AutoModelForCausalLM.from_pretrained(out / "final")  # noqa
    torch.testing.assert_close(logits(load(two)), logits(load(one)), atol=1e-5, rtol=0)

    # exact resume under FSDP2: drop the last checkpoint and the end, resume, same final weights
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    shutil.rmtree(resumed / "checkpoint-3", ignore_errors=True)
    (resumed / "complete.json").unlink()
    run(tmp_path, "resumed", algo, 2, 2, "--sft_type", tuning, "--fsdp", "full_shard",
        "--resume_from_checkpoint", "latest")
    assert losses(resumed) == losses(two)
    torch.testing.assert_close(logits(load(resumed)), logits(load(two)), atol=1e-6, rtol=0)
