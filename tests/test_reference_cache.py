"""The precomputed reference cache belongs to one reference: another model (a perturbed copy) never reads it, and
--overwrite_output_dir removes the caches an earlier run wrote (and nothing else)."""
import json
import math
import shutil
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.models.identity import weights_fingerprint

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def perturbed_copy(src, dst, scale=0.05):
    """`src` with every floating weight moved by `scale` * N(0, 1) (same files, shapes and dtypes)."""
    shutil.copytree(src, dst)
    g = torch.Generator().manual_seed(1)
    for f in dst.glob("*.safetensors"):
        tensors = load_file(f)
        save_file({k: v + scale * torch.randn(v.shape, generator=g, dtype=v.dtype) if v.is_floating_point() else v
                   for k, v in tensors.items()}, f, metadata={"format": "pt"})
    return dst


def first_loss(run_dir):
    rows = [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines()]
    return next(r for r in rows if "loss" in r)["loss"]


def train(model_dir, data, out, *extra):
    args = parse_command("dpo", ["--model_id_or_path", str(model_dir), "--template", "llama3", "--dataset", str(data),
                                 "--output_dir", str(out), "--max_steps", "1", "--batch_size", "2",
                                 "--eval_ratio", "0", "--logging_steps", "1", "--precompute_ref_log_probs", "true",
                                 *extra])
    run_training(args, "dpo", log=lambda *a, **k: None)


def test_a_perturbed_copy_never_reads_the_first_models_cache(tmp_path, tiny_llama3_dir):
    """Run 1 on model A, run 2 on a perturbed copy of A in the same output dir (--overwrite_output_dir): run 2's
    reference is its own base (LoRA, adapter disabled) and its policy at step 1 is that base, so its step-1 DPO
    loss is -log sigmoid(0) = ln 2 — with A's cached log-probs it is not."""
    a = tmp_path / "A"
    shutil.copytree(tiny_llama3_dir, a)
    b = perturbed_copy(tiny_llama3_dir, tmp_path / "B")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} plus {i}?", "chosen": f"It is {2 * i}.",
                                        "rejected": "I will not say."}) + "\n" for i in range(4)))
    out = tmp_path / "run"
    train(a, data, out)
    assert first_loss(out) == pytest.approx(math.log(2), abs=1e-5)
    first_caches = sorted(p.name for p in out.glob("ref_logps_*.pt"))
    assert first_caches
    (out / "ref_logps_notes.txt").write_text("mine")  # not a cache prefswift wrote: it stays
    train(b, data, out, "--overwrite_output_dir", "true")
    assert first_loss(out) == pytest.approx(math.log(2), abs=1e-5)
    second_caches = sorted(p.name for p in out.glob("ref_logps_*.pt"))
    assert second_caches and not set(first_caches) & set(second_caches)  # run 1's caches were removed
    assert (out / "ref_logps_notes.txt").read_text() == "mine"


def test_the_weights_fingerprint_sees_rewritten_weights(tmp_path, tiny_llama3_dir):
    """Same directory, same shapes, other values written in place: another fingerprint; an untouched copy's is
    stable; a copy elsewhere is another model."""
    a = tmp_path / "A"
    shutil.copytree(tiny_llama3_dir, a)
    before = weights_fingerprint(a)
    assert weights_fingerprint(a) == before
    time.sleep(0.01)
    (f,) = a.glob("*.safetensors")
    tensors = load_file(f)
    save_file({k: v * 1.001 if v.is_floating_point() else v for k, v in tensors.items()}, f, metadata={"format": "pt"})
    assert weights_fingerprint(a) != before
    assert weights_fingerprint(perturbed_copy(a, tmp_path / "B", scale=0.0)) != weights_fingerprint(a)
