"""Every recipe in examples/ parses and plans its launch and devices (--dry_run true), and runs for real: the same
script, at tiny size on this CPU (PREFSWIFT_EXAMPLE_MODEL / PREFSWIFT_EXAMPLE_DATASET / MAX_STEPS, no visible GPU:
DDP and DeepSpeed over gloo, QLoRA on bitsandbytes' CPU backend). Recipes that cannot run on a CPU at all are named
in scripts/gpu_check.sh with their reason (GPU_ONLY_EXAMPLES)."""
import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# one training command each (iterative_dpo.sh and sft_then_dpo.sh run several: tests/test_iterative_dpo.py and
# tests/test_sft_then_dpo.py run them)
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.sh") if p.stem not in ("iterative_dpo", "sft_then_dpo"))
# what a recipe reads from the caller's environment; the dry run checks each recipe's own defaults
RECIPE_ENV = ("CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
              "PREFSWIFT_EXAMPLE_MODEL", "PREFSWIFT_EXAMPLE_DATASET", "MAX_STEPS")


def recipe_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in RECIPE_ENV}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_recipe(path, *extra, env_extra=None):
    return subprocess.run(["bash", str(path), "--dry_run", "true", *extra], capture_output=True, text=True,
                          env=recipe_env(**(env_extra or {})), timeout=120)


def test_there_are_recipes_for_every_launch_shape():
    names = {p.stem for p in EXAMPLES}
    assert {"single_gpu_lora_dpo", "ddp_4gpu_orpo", "mp_ddp_4gpu_dpo", "deepspeed_zero2_dpo",
            "deepspeed_zero3_dpo", "two_node_dpo"} <= names


@pytest.mark.slow  # every recipe runs for real below (test_recipe_runs_for_real_at_tiny_size, the two-node test)
@pytest.mark.parametrize("recipe", EXAMPLES, ids=lambda p: p.stem)
def test_recipe_dry_run(recipe):
    proc = run_recipe(recipe)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert "dry run: nothing was loaded or trained" in out
    text = recipe.read_text()
    if "NPROC_PER_NODE" in text:
        assert "torch.distributed.run" in out
    if recipe.stem == "mp_ddp_4gpu_dpo":  # seed 004: 2 replicas x 2 GPUs, disjoint, same layout
        assert "local rank 0/2" in out and "model parallel over cuda:0,cuda:2" in out
        assert "local rank 1/2" in out and "model parallel over cuda:1,cuda:3" in out
    if recipe.stem == "two_node_dpo":
        assert "--nnodes 2" in out and "--node_rank 0" in out
    if "deepspeed" in recipe.stem:
        assert "deepspeed: ZeRO-" in out


def test_dry_run_refuses_model_parallel_with_deepspeed():
    recipe = next(p for p in EXAMPLES if p.stem == "mp_ddp_4gpu_dpo")
    proc = run_recipe(recipe, "--deepspeed", "zero2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "DeepSpeed" in proc.stderr and "Traceback" not in proc.stderr


# ---- real runs at tiny size -------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def tiny_env(**extra):
    return recipe_env(**{"PREFSWIFT_EXAMPLE_MODEL": "tiny-llama3", "PREFSWIFT_EXAMPLE_DATASET": "demo#64",
                         "MAX_STEPS": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
                         "MASTER_PORT": free_port(), **extra})


def gpu_only_examples():
    """GPU_ONLY_EXAMPLES=(name:reason ...) in scripts/gpu_check.sh."""
    text = (ROOT / "scripts" / "gpu_check.sh").read_text()
    block = re.search(r"GPU_ONLY_EXAMPLES=\((.*?)\n\)", text, re.S)
    return dict(re.findall(r'"([\w.-]+):([^"]+)"', block.group(1))) if block else {}


# recipe -> the environment of its tiny CPU run; every recipe is here or in GPU_ONLY_EXAMPLES
TINY_RUNS = {
    "single_gpu_lora_dpo": {},
    "qlora_orpo_llama3": {},                        # bitsandbytes' CPU backend, adamw_torch (see CPU_ARGS)
    "ddp_4gpu_orpo": {"NPROC_PER_NODE": "2"},       # DDP over gloo
    # one process: its options all act; DDP over gloo runs above, its model-parallel half needs GPUs (gpu_check.sh)
    "mp_ddp_4gpu_dpo": {"NPROC_PER_NODE": "1"},
    "deepspeed_zero2_dpo": {"NPROC_PER_NODE": "1"},  # two processes under ZeRO-2: the two-node run below
    # full fine-tuning, every parameter partitioned; the reference precomputed (sharded) over 16 rows, not 64
    "deepspeed_zero3_dpo": {"NPROC_PER_NODE": "2", "PREFSWIFT_EXAMPLE_DATASET": "demo#16"},
}


# what a recipe's CPU form changes, each named with its reason in GPU_ONLY_EXAMPLES
CPU_ARGS = {"qlora_orpo_llama3": ["--optim", "adamw_torch"]}


def test_every_recipe_runs_on_cpu_or_is_named_in_the_gpu_check():
    # two_node_dpo: below; multinode_torchrun / multinode_slurm: tests/test_cluster.py (two "nodes" each)
    covered = set(TINY_RUNS) | {"two_node_dpo", "multinode_torchrun", "multinode_slurm"} | set(gpu_only_examples())
    assert {p.stem for p in EXAMPLES} <= covered
    assert set(CPU_ARGS) <= set(gpu_only_examples())


def trained(run_dir: Path):
    """The run's logged losses (finite) and that it saved what it trained."""
    rows = [json.loads(line) for line in (run_dir / "logging.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in rows if "train_loss" in r] + [r["loss"] for r in rows if "loss" in r]
    assert losses and all(math.isfinite(x) for x in losses), rows
    assert (run_dir / "adapter").is_dir() or (run_dir / "final").is_dir(), sorted(p.name for p in run_dir.iterdir())


def output_dir(recipe: Path, cwd: Path) -> Path:
    rel = re.search(r"--output_dir (\S+)", recipe.read_text()).group(1)
    return cwd / rel


def logged_parameter_counts(output):
    found = re.search(r"trainable parameters: ([\d,]+) of ([\d,]+)", output)
    return tuple(int(x.replace(",", "")) for x in found.groups())


# slow: each named test covers the same kind of run by default (the suite stays near 10 minutes on 2 cores)
SLOW_RUNS = {"ddp_4gpu_orpo": "test_distributed.py::test_two_process_ddp_equals_one_process, test_cluster.py",
             "deepspeed_zero2_dpo": "the deepspeed_zero3_dpo recipe (two ranks, DeepSpeed) below",
             "qlora_orpo_llama3": "test_gpu_paths.py::test_qlora_trains_on_cpu_and_merges_to_the_adapters_function",
             "single_gpu_lora_dpo": "the mp_ddp_4gpu_dpo recipe below, test_quickstart.py (one-process LoRA runs)"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_RUNS else n
                                  for n in sorted(TINY_RUNS)])
def test_recipe_runs_for_real_at_tiny_size(name, tmp_path, tiny_llama3_dir):
    recipe = ROOT / "examples" / f"{name}.sh"
    proc = subprocess.run(["bash", str(recipe), *CPU_ARGS.get(name, [])], capture_output=True, text=True, cwd=tmp_path,
                          env=tiny_env(**TINY_RUNS[name]), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    trained(output_dir(recipe, tmp_path))
    if name == "deepspeed_zero3_dpo":  # full fine-tuning: every parameter trains, counted though partitioned
        from transformers import AutoModelForCausalLM

        total = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_llama3_dir).parameters())
        assert logged_parameter_counts(proc.stdout + proc.stderr) == (total, total)


@pytest.mark.slow  # two nodes on this machine: test_cluster.py (examples/multinode_torchrun.sh, multinode_slurm.sh)
def test_two_node_recipe_runs_as_two_nodes_on_this_machine(tmp_path):
    """Node 0 and node 1 (one process each) started from the same script, as on two machines that share the
    directory the run is written to (--output_dir must be on shared storage: test_cluster.py)."""
    recipe = ROOT / "examples" / "two_node_dpo.sh"
    port = free_port()
    procs = []
    for node in (0, 1):
        env = tiny_env(NNODES="2", NODE_RANK=str(node), MASTER_ADDR="127.0.0.1", NPROC_PER_NODE="1")
        env["MASTER_PORT"] = port
        procs.append(subprocess.Popen(["bash", str(recipe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=tmp_path, env=env))
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-4000:]
    trained(output_dir(recipe, tmp_path))  # the global rank 0 writes the run
