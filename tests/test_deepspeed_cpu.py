"""DeepSpeed ZeRO-2/3 for real on this CPU (deepspeed's CPU accelerator, gloo): the loss curve equals the run without
DeepSpeed. ZeRO-3 with LoRA exercises the frozen LM head whose weight is partitioned (gathered explicitly in forward
and backward), zero.Init loading (TrainingArguments before the model), and precomputed reference log-probs from
partitioned weights, sharded over ranks."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")


_RUNS = {}  # (algo, nproc, extra) -> losses: one run serves every test that needs the same baseline


def losses(algo, out, nproc, *extra):
    key = (algo, nproc, extra)
    if key not in _RUNS:
        _RUNS[key] = _train_losses(algo, out, nproc, *extra)
    return _RUNS[key]


def _train_losses(algo, out, nproc, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NPROC_PER_NODE", None)
    if nproc > 1:
        env["NPROC_PER_NODE"] = str(nproc)
    argv = [sys.executable, "-m", "prefswift", algo, "--model_type", "tiny-llama3", "--dataset", "demo#16",
            "--eval_ratio", "0", "--max_steps", "2", "--logging_steps", "1", "--save_steps", "100",
            "--output_dir", str(out), *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


@pytest.mark.parametrize("nproc,extra", [
    # LoRA, partitioned frozen head (numbers under DeepSpeed: the sharded-precompute test below, slow; ZeRO-2/3
    # training: the recipes in test_examples)
    pytest.param(1, ["--deepspeed", "zero3"], marks=pytest.mark.slow),
    # long two-process runs: ZeRO-2/3 across ranks run by default in test_examples (the DeepSpeed recipes)
    pytest.param(2, ["--deepspeed", "zero3", "--precompute_ref_log_probs", "true"],  # + precompute, gathered weights
                 marks=pytest.mark.slow),
    pytest.param(2, ["--deepspeed", "zero2", "--sft_type", "full"], marks=pytest.mark.slow),  # full FT, frozen copy
])
def test_deepspeed_on_cpu_matches_the_run_without_it(tmp_path, nproc, extra):
    plain_extra = [x for x in extra if x not in ("--deepspeed", "zero2", "zero3")]
    want = losses("dpo", tmp_path / "plain", nproc, *plain_extra)
    got = losses("dpo", tmp_path / "ds", nproc, *extra)
    assert len(got) == len(want) == 2
    assert got == pytest.approx(want, abs=2e-4)
    assert (tmp_path / "ds" / ("final" if "full" in extra else "adapter")).is_dir()


def test_zero3_with_a_separate_reference_is_refused_once_before_launch(tmp_path):
    env = dict(os.environ, NPROC_PER_NODE="2")
    proc = subprocess.run([sys.executable, "-m", "prefswift", "dpo", "--model_type", "tiny-llama3", "--dataset",
                           "demo#8", "--sft_type", "full", "--deepspeed", "zero3", "--output_dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--precompute_ref_log_probs true" in errors[0]
    assert "launching" not in proc.stderr and "Traceback" not in proc.stderr


# slow, covered by two ranks under DeepSpeed:
#   test_examples.py::test_recipe_runs_for_real_at_tiny_size[deepspeed_zero3_dpo]; precomputed reference log-probs
#   equal the live ones: test_training.py::test_precomputed_reference_gives_the_same_losses, test_reference_cache.py
@pytest.mark.slow
def test_precomputed_reference_sharded_over_two_ranks_equals_the_live_reference(tmp_path):
    """Each DDP rank precomputes every second row and the shards are exchanged: the same losses as computing the
    reference on the fly."""
    live = losses("dpo", tmp_path / "live", 2)
    pre = losses("dpo", tmp_path / "pre", 2, "--precompute_ref_log_probs", "true")
    assert pre == pytest.approx(live, abs=1e-5)
