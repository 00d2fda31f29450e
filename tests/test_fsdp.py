"""--fsdp / --fsdp_config: the FSDP2 settings handed to the Trainer, and what is refused in one line before anything
loads. Training under FSDP2 needs CUDA (accelerate selects FSDP only for GPU process groups; on gloo it would silently
be DDP): the GPU form of the equality tests is tests/test_gpu_fsdp.py, run by scripts/gpu_check.sh."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefswift.arguments import parse_command
from prefswift.distributed.fsdp import check_fsdp, fsdp_config
from prefswift.errors import ArgumentError

ROOT = Path(__file__).parent.parent


def test_strategies_become_fsdp2_settings(tmp_path):
    assert fsdp_config("full_shard", None) == {"version": 2, "reshard_after_forward": True,
                                               "state_dict_type": "FULL_STATE_DICT"}
    assert fsdp_config(["shard_grad_op", "offload"], None)["reshard_after_forward"] is False
    assert fsdp_config(["shard_grad_op", "offload"], None)["cpu_offload"] is True
    path = tmp_path / "fsdp.json"
    path.write_text(json.dumps({"fsdp_transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"],
                                "activation_checkpointing": True}))
    config = fsdp_config("full_shard", str(path))
    assert config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"] and config["activation_checkpointing"]
    assert fsdp_config(None, None) is None


@pytest.mark.parametrize("fsdp, config, words", [
    ("hybrid_shard", None, "FSDP1 strategy"),
    ("offload", None, "exactly one of full_shard, shard_grad_op"),
    ("full_shard", '{"version": 1}', "FSDP2 (version 2) only"),
    ("full_shard", '{"state_dict_type": "SHARDED_STATE_DICT"}', "saved whole"),
    ("full_shard", '{"sharding": 1}', "unknown key(s) sharding"),
    ("full_shard", "/no/such.json", "cannot read the file"),
    (None, '{"version": 2}', "--fsdp_config without --fsdp"),
])
def test_bad_settings_are_refused(fsdp, config, words):
    with pytest.raises(ArgumentError, match=None) as err:
        fsdp_config(fsdp, config)
    assert words in str(err.value)


def args_for(algo, *extra):
    return parse_command(algo, ["--model_type", "tiny-llama3", "--dataset", "demo", *extra])


@pytest.mark.parametrize("algo, extra, env, words", [
    ("dpo", ["--fsdp", "full_shard"], {"NPROC_PER_NODE": "2"}, None),  # LoRA, adapter-off reference: fine
    ("orpo", ["--fsdp", "full_shard", "--sft_type", "full"], {"NPROC_PER_NODE": "2"}, None),  # no reference
    ("dpo", ["--fsdp", "full_shard", "--sft_type", "full", "--precompute_ref_log_probs", "true"],
     {"NPROC_PER_NODE": "2"}, None),
    ("dpo", ["--fsdp", "full_shard", "--sft_type", "full"], {"NPROC_PER_NODE": "2"}, "--precompute_ref_log_probs"),
    ("dpo", ["--fsdp", "full_shard"], {}, "this run has one"),
    ("dpo", ["--fsdp", "full_shard", "--quantization_bit", "4"], {"NPROC_PER_NODE": "2"}, "QLoRA"),
    ("dpo", ["--fsdp", "full_shard", "--deepspeed", "zero2"], {"NPROC_PER_NODE": "2"}, "one sharding engine"),
    ("dpo", ["--fsdp", "full_shard", "--device_map", "auto"], {"NPROC_PER_NODE": "2"}, "--device_map"),
    ("dpo", ["--fsdp", "full_shard"], {"NPROC_PER_NODE": "1", "NNODES": "2", "MASTER_ADDR": "a"},
     "1 process(es) per node see 2 GPUs"),
])
def test_combinations(algo, extra, env, words, monkeypatch):
    for name in ("NPROC_PER_NODE", "NNODES", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = args_for(algo, *extra)
    if words is None:
        assert check_fsdp(args, algo, cuda=True, n_gpus=2)["version"] == 2
    else:
        with pytest.raises(ArgumentError) as err:
            check_fsdp(args, algo, cuda=True, n_gpus=2)
        assert words in str(err.value)


def test_on_a_machine_without_cuda_fsdp_is_refused_in_one_line_before_anything_loads(tmp_path):
    env = dict(os.environ, NPROC_PER_NODE="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "prefswift", "dpo", "--model_type", "tiny-llama3", "--dataset",
                           "demo", "--fsdp", "full_shard", "--output_dir", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --fsdp needs CUDA GPUs: accelerate runs FSDP2 only on GPU process groups (on CPU it would silently "
        "train as plain DDP) — drop --fsdp here (NPROC_PER_NODE=N is DDP), or use --deepspeed zero3 to shard on CPU"]
    assert not (tmp_path / "run").exists()


def test_the_dry_run_refuses_fsdp_without_cuda_with_the_runs_line(tmp_path):
    """One validation phase: on this CPU machine --dry_run refuses what the run refuses (the line above); the FSDP2
    plan line it prints on a GPU machine is not tested here (no GPU)."""
    env = dict(os.environ, NPROC_PER_NODE="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "prefswift", "dpo", "--model_type", "tiny-llama3", "--dataset",
                           "demo", "--fsdp", "shard_grad_op", "--dry_run", "true"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --fsdp needs CUDA GPUs"), proc.stderr
