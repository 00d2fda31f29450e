"""No network unless asked, and a quiet console: every command, run as an online user would run it (no HF_HUB_OFFLINE,
no TRANSFORMERS_OFFLINE), under a guard (tests/netguard/sitecustomize.py) that records and refuses every connection to
a non-loopback address and every lookup of a non-local host name. A tiny model and the built-in demo data are local,
so no command has a reason to reach out: zero attempts. And none prints a line the user cannot act on."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "netguard")
ONLINE_UNSET = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "MODELSCOPE_OFFLINE")
NOISE = ("Skipping publisher trust check", "gemm_4bit_forward", "kernels-community", "Loading weights",
         "Writing model shards", "Matplotlib is building the font cache", "FutureWarning", "DeprecationWarning",
         "\r")


def online_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ONLINE_UNSET}
    env["PYTHONPATH"] = os.pathsep.join([GUARD, ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    env["NETGUARD_LOG"] = str(tmp_path / "netguard.log")
    env["MPLCONFIGDIR"] = str(tmp_path / "mpl")  # a new user's empty matplotlib cache: no font-cache line either
    return env


def run(env, *argv, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "prefswift", *map(str, argv)], env=env, cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"prefswift {' '.join(map(str, argv))}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_the_guard_itself_sees_a_connection(tmp_path):
    env = online_env(tmp_path)
    code = "import socket\ntry:\n    socket.create_connection(('example.com', 443), timeout=1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert "example.com" in (tmp_path / "netguard.log").read_text()


def test_no_command_reaches_the_network_or_prints_noise(tmp_path):
    env = online_env(tmp_path)
    run_dir = tmp_path / "run"
    out = [run(env, "--help"), run(env, "dpo", "--help"), run(env, "list", "models")]
    out.append(run(env, "orpo", "--model_type", "tiny-llama3", "--dataset", "demo#24", "--output_dir", run_dir,
                   "--max_steps", "2", "--save_steps", "2", "--logging_steps", "1", "--eval_ratio", "0.2"))
    adapter = run_dir / "adapter"
    out.append(run(env, "merge-lora", "--ckpt_dir", adapter, "--output_dir", tmp_path / "merged"))
    out.append(run(env, "infer", "--ckpt_dir", adapter, "--max_new_tokens", "4", stdin="What is 2?\n"))
    out.append(run(env, "eval", "--ckpt_dir", adapter, "--dataset", "demo#8"))
    out.append(run(env, "lint", "--model_type", "tiny-llama3", "--dataset", "demo#24",
                   "--output_dir", tmp_path / "lint"))
    log = tmp_path / "netguard.log"
    assert not log.exists(), f"connection attempts:\n{log.read_text()}"
    noisy = [line for text in out for line in text.split("\n") if any(n in line for n in NOISE)]
    assert not noisy, "lines the user cannot act on:\n" + "\n".join(noisy[:20])
